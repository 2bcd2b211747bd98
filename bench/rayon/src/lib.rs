//! bench/rayon — the harness's workloads on rayon (Debian's librust-rayon-dev),
//! written the way rayon teaches: `join` for divide and conquer (a node with
//! k children splits its child range in halves, k - 1 joins), `par_iter` for
//! the reduction, `scope` + `spawn` for tiny tasks and for the n-ary skynet
//! variant. The leaf kernels are the shared C ones (bench/workloads.h,
//! uts.h, timing.h), called through the C ABI; the declarations the harness
//! sees are in bench/workloads_rayon.h.
//!
//! Each worker count gets its own `ThreadPool` (`ThreadPoolBuilder::
//! num_threads`), made by `rayon_pool_create` and kept for the whole run,
//! like weft's pools. Work is started with `install`, so the calling thread
//! waits while the pool's n threads run it; the external-submission
//! workloads use `in_place_scope`, whose spawns go from the calling thread
//! into the pool.
//!
//! SPDX-License-Identifier: MIT

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::os::raw::{c_int, c_long};

const NQ_MAX: usize = 16;
const SKYNET_DIV: u64 = 10;
const MSORT_CUTOFF: usize = 4096;

/// bench/uts.h's uts_node.
#[repr(C)]
#[derive(Clone, Copy)]
struct UtsNode {
    state: [u8; 20],
    height: c_int,
}

/// bench/uts.h's uts_params, only ever passed back to C.
#[repr(C)]
pub struct UtsParams {
    _opaque: [u8; 0],
}

/// bench/workloads.h's nq_arg.
#[repr(C)]
#[derive(Clone, Copy)]
struct NqArg {
    n: c_int,
    row: c_int,
    b: [i8; NQ_MAX],
    r: u64,
}

extern "C" {
    fn uts_root(p: *const UtsParams, root: *mut UtsNode);
    fn uts_num_children(p: *const UtsParams, n: *const UtsNode) -> c_int;
    fn uts_child(parent: *const UtsNode, i: c_int, child: *mut UtsNode);
    fn nq_children_extern(a: *const NqArg, kids: *mut NqArg) -> c_int;
    fn sum_range(a: *const u64, begin: usize, end: usize) -> u64;
    fn msort_serial(a: *mut i32, tmp: *mut i32, n: usize);
    fn msort_merge(a: *mut i32, tmp: *mut i32, mid: usize, n: usize);
    fn fib_expect(n: c_int) -> u64;
    fn bench_now_ns() -> i64;
    fn bench_sleep_ns(ns: i64);
    fn bench_idle_cpu(seconds: f64) -> f64;
}

/// A raw pointer that may cross threads: every task gets a slot of its own.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// A pool of `workers` threads; null if rayon could not make it.
#[no_mangle]
pub extern "C" fn rayon_pool_create(workers: u32) -> *mut ThreadPool {
    match ThreadPoolBuilder::new()
        .num_threads(workers.max(1) as usize)
        .thread_name(|i| format!("rayon-{}", i))
        .build()
    {
        Ok(p) => Box::into_raw(Box::new(p)),
        Err(_) => std::ptr::null_mut(),
    }
}

/// # Safety
/// `p` comes from rayon_pool_create and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn rayon_pool_destroy(p: *mut ThreadPool) {
    if !p.is_null() {
        drop(Box::from_raw(p));
    }
}

/* ---- fib: a join per call, no cutoff --------------------------------------- */

fn fib_rec(n: c_int) -> u64 {
    if n < 2 {
        return n as u64;
    }
    let (x, y) = rayon::join(|| fib_rec(n - 1), || fib_rec(n - 2));
    x + y
}

/// # Safety
/// `p` is a live pool.
#[no_mangle]
pub unsafe extern "C" fn fib_rayon(p: *const ThreadPool, n: c_int) -> u64 {
    (*p).install(|| fib_rec(n))
}

/* ---- nqueens: the legal placements, split by join --------------------------- */

fn nq_rec(a: &NqArg) -> u64 {
    if a.row == a.n {
        return 1;
    }
    let mut kids = [NqArg { n: 0, row: 0, b: [0; NQ_MAX], r: 0 }; NQ_MAX];
    let k = unsafe { nq_children_extern(a, kids.as_mut_ptr()) } as usize;
    nq_split(&kids[..k])
}

fn nq_split(kids: &[NqArg]) -> u64 {
    match kids.len() {
        0 => 0,
        1 => nq_rec(&kids[0]),
        k => {
            let (l, r) = kids.split_at(k / 2);
            let (x, y) = rayon::join(|| nq_split(l), || nq_split(r));
            x + y
        }
    }
}

/// # Safety
/// `p` is a live pool; 0 <= n <= 16.
#[no_mangle]
pub unsafe extern "C" fn nqueens_rayon(p: *const ThreadPool, n: c_int) -> u64 {
    let root = NqArg { n, row: 0, b: [0; NQ_MAX], r: 0 };
    (*p).install(|| nq_rec(&root))
}

/* ---- UTS: a node's children, split by join; each made where it is counted -- */

struct Uts(*const UtsParams);
unsafe impl Sync for Uts {}

fn uts_rec(t: &Uts, node: &UtsNode) -> u64 {
    let k = unsafe { uts_num_children(t.0, node) };
    1 + uts_split(t, node, 0, k)
}

fn uts_split(t: &Uts, node: &UtsNode, lo: c_int, hi: c_int) -> u64 {
    match hi - lo {
        0 => 0,
        1 => {
            let mut c = UtsNode { state: [0; 20], height: 0 };
            unsafe { uts_child(node, lo, &mut c) };
            uts_rec(t, &c)
        }
        _ => {
            let mid = lo + (hi - lo) / 2;
            let (x, y) = rayon::join(|| uts_split(t, node, lo, mid), || uts_split(t, node, mid, hi));
            x + y
        }
    }
}

/// # Safety
/// `p` is a live pool, `t` one of uts.h's trees.
#[no_mangle]
pub unsafe extern "C" fn uts_rayon(p: *const ThreadPool, t: *const UtsParams) -> u64 {
    let mut root = UtsNode { state: [0; 20], height: 0 };
    uts_root(t, &mut root);
    let t = Uts(t);
    (*p).install(|| uts_rec(&t, &root))
}

/* ---- skynet: ten children per node, by join or by scope + spawn ------------- */

fn sky_join(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    sky_split(num, size / SKYNET_DIV, 0, SKYNET_DIV)
}

fn sky_split(num: u64, sub: u64, lo: u64, hi: u64) -> u64 {
    if hi - lo == 1 {
        return sky_join(num + lo * sub, sub);
    }
    let mid = lo + (hi - lo) / 2;
    let (x, y) = rayon::join(|| sky_split(num, sub, lo, mid), || sky_split(num, sub, mid, hi));
    x + y
}

fn sky_scope(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let sub = size / SKYNET_DIV;
    let mut r = [0u64; SKYNET_DIV as usize];
    rayon::scope(|s| {
        for (i, slot) in r.iter_mut().enumerate() {
            s.spawn(move |_| *slot = sky_scope(num + i as u64 * sub, sub));
        }
    });
    r.iter().sum()
}

/// # Safety
/// `p` is a live pool; leaves a power of ten.
#[no_mangle]
pub unsafe extern "C" fn skynet_rayon(p: *const ThreadPool, leaves: u64, scope: c_int) -> u64 {
    if scope != 0 {
        (*p).install(|| sky_scope(0, leaves))
    } else {
        (*p).install(|| sky_join(0, leaves))
    }
}

/* ---- mergesort: join per split down to the cutoff ---------------------------- */

fn ms_rec(a: &mut [i32], tmp: &mut [i32]) {
    let n = a.len();
    if n <= MSORT_CUTOFF {
        unsafe { msort_serial(a.as_mut_ptr(), tmp.as_mut_ptr(), n) };
        return;
    }
    let mid = n / 2;
    {
        let (a1, a2) = a.split_at_mut(mid);
        let (t1, t2) = tmp.split_at_mut(mid);
        rayon::join(|| ms_rec(a1, t1), || ms_rec(a2, t2));
    }
    unsafe { msort_merge(a.as_mut_ptr(), tmp.as_mut_ptr(), mid, n) };
}

/// # Safety
/// `p` is a live pool; a and tmp hold n elements each and do not overlap.
#[no_mangle]
pub unsafe extern "C" fn msort_rayon(p: *const ThreadPool, a: *mut i32, tmp: *mut i32, n: usize) {
    let a = std::slice::from_raw_parts_mut(a, n);
    let tmp = std::slice::from_raw_parts_mut(tmp, n);
    (*p).install(|| ms_rec(a, tmp));
}

/* ---- reduce: par_iter over 64 Ki-element chunks of the shared leaf ----------- */

/// # Safety
/// `p` is a live pool; a holds n elements.
#[no_mangle]
pub unsafe extern "C" fn reduce_rayon(p: *const ThreadPool, a: *const u64, n: usize) -> u64 {
    const CHUNK: usize = 1 << 16;
    let v = std::slice::from_raw_parts(a, n);
    (*p).install(|| {
        (0..(n + CHUNK - 1) / CHUNK)
            .into_par_iter()
            .map(|c| {
                let lo = c * CHUNK;
                sum_range(v.as_ptr(), lo, (lo + CHUNK).min(n))
            })
            .sum::<u64>()
    })
}

/* ---- tiny tasks: one spawn per slot ------------------------------------------- */

/// One thread's share: `in_place_scope` keeps the spawning loop on the
/// calling (external) thread; `scope` runs it on one of the pool's threads.
unsafe fn tiny_spawn(p: &ThreadPool, slots: SendPtr<u64>, n: usize, in_pool: bool) {
    let body = move |s: &rayon::Scope<'_>| {
        let slots = slots; // the whole SendPtr, not its field (edition 2021 captures)
        for i in 0..n {
            let slot = SendPtr(slots.0.add(i));
            s.spawn(move |_| {
                let slot = slot; // as above
                *slot.0 += 1; // bench/workloads.h's tiny_body
            });
        }
    };
    if in_pool {
        p.scope(body)
    } else {
        p.in_place_scope(body)
    }
}

/// n tiny tasks spawned from `threads` external threads (1: the caller
/// itself), each with its own scope; in_pool: one scope run inside the pool.
///
/// # Safety
/// `p` is a live pool; slots holds n elements.
#[no_mangle]
pub unsafe extern "C" fn tiny_rayon(p: *const ThreadPool, slots: *mut u64, n: usize, threads: u32,
                                    in_pool: c_int) -> c_int {
    let p = &*p;
    let slots = SendPtr(slots);
    if threads <= 1 {
        tiny_spawn(p, slots, n, in_pool != 0);
        return 0;
    }
    let t = threads as usize;
    let per = n / t;
    std::thread::scope(|s| {
        for k in 0..t {
            let lo = k * per;
            let cnt = if k + 1 == t { n - lo } else { per };
            let mine = SendPtr(slots.0.add(lo));
            s.spawn(move || {
                let mine = mine;
                tiny_spawn(p, mine, cnt, false)
            });
        }
    });
    0
}

/* ---- wake-up latency: a spawn from outside onto the idle pool ------------------ */

/// # Safety
/// `p` is a live pool; lat_ns holds `samples` elements.
#[no_mangle]
pub unsafe extern "C" fn wake_rayon(p: *const ThreadPool, samples: c_int, gap_ns: c_long,
                                    lat_ns: *mut f64) -> c_int {
    let p = &*p;
    for i in 0..samples.max(0) as usize {
        bench_sleep_ns(gap_ns as i64);
        let mut started = 0i64;
        let mut t0 = 0i64;
        p.in_place_scope(|s| {
            t0 = bench_now_ns();
            s.spawn(|_| started = bench_now_ns());
        });
        *lat_ns.add(i) = (started - t0) as f64;
    }
    0
}

/* ---- idle CPU ----------------------------------------------------------------------- */

/// CPU-seconds per second an idle pool of `workers` threads burns after some
/// work; negative on error.
#[no_mangle]
pub extern "C" fn idle_rayon(workers: u32, seconds: f64) -> f64 {
    let p = match ThreadPoolBuilder::new().num_threads(workers.max(1) as usize).build() {
        Ok(p) => p,
        Err(_) => return -1.0,
    };
    for _ in 0..20 {
        if p.install(|| fib_rec(20)) != unsafe { fib_expect(20) } {
            return -1.0;
        }
    }
    unsafe { bench_idle_cpu(seconds) }
}
