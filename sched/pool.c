/*
 * sched/pool.c — pools, workers, the worker loop, the default pool, fork.
 */
#include "sched/observe.h"

#include <ctype.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Thread_local ws_worker *ws_self WS_TLS;
_Thread_local char ws_token WS_TLS;
uint64_t ws_fork_gen;
static _Atomic(unsigned) ws_pool_seq; /* pools created so far: weft_pool.seq */

/* Empty rounds (each a sweep of all victims, then a sched_yield) before a
 * worker parks, and before it parks again once woken: a stream of tiny
 * tasks keeps workers awake, a pool with nothing to do is asleep within
 * tens of microseconds. A round yields rather than pauses: where threads
 * outnumber cores (an external submitter beside a pool as large as the
 * machine), a worker that spins with pause holds a core the submitter
 * waits for until its time slice ends; a yield hands the core over at once
 * and takes about as long as the 32 pauses it replaced did here
 * (docs/benchmarks.md, "Idle rounds yield").
 * On a loaded machine a yield can hand the core to another program for
 * its time slice, and 80 of them kept an idle worker runnable, not parked,
 * for ~200 ms. So the worker also parks after WS_IDLE_SLOW_YIELDS yields
 * of one idle spell that each kept it off the CPU for over WS_IDLE_SLOW_NS
 * (quiet, a round is about a microsecond). Two, not one: a vCPU the host
 * deschedules once in a stream of external spawns finds the stream's
 * items when it comes back, and parking there would cost the producer
 * wake-ups (bench/published/2026-12-03-idle-cap/). */
enum { WS_IDLE_ROUNDS = 80, WS_WOKEN_ROUNDS = 16, WS_IDLE_SLOW_YIELDS = 2 };
#define WS_IDLE_SLOW_NS 200000u

static uint64_t ws_rand(ws_worker *w)
{
    /* xorshift64*: a per-worker victim picker, no shared state. */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ---- submission rings --------------------------------------------------- */

wq_ring *ws_ring_lease(struct weft_pool *p)
{
    uint64_t m = atomic_load_explicit(&p->rings_leased, memory_order_relaxed);
    unsigned i;
    for (;;) {
        if (m == UINT64_MAX)
            return NULL;
        i = (unsigned)__builtin_ctzll(~m);
        /* seq_cst (acquire and more): see ws.h. Pairs with the release
         * fetch_and of ws_flow_ring_return and the seq_cst load of the mask in
         * ws_rings_nonempty. */
        if (atomic_compare_exchange_weak_explicit(&p->rings_leased, &m, m | (uint64_t)1 << i,
                                                  memory_order_seq_cst, memory_order_relaxed))
            break;
    }
    /* Relaxed: only the bit's holder writes rings[i], and earlier holders'
     * stores reached us through the CAS above. */
    wq_ring *r = atomic_load_explicit(&p->rings[i], memory_order_relaxed);
    if (!r) {
        r = wq_ring_new();
        if (!r) {
            /* Release, as ws_flow_ring_return: nothing was pushed. */
            atomic_fetch_and_explicit(&p->rings_leased, ~((uint64_t)1 << i), memory_order_release);
            return NULL;
        }
        r->tag = i;
        /* seq_cst: pairs with the workers' loads of rings[i] (acquire in
         * ws_rings_take: the ring's initialization; seq_cst in
         * ws_rings_nonempty, which must see it once it sees the bit). */
        atomic_store_explicit(&p->rings[i], r, memory_order_seq_cst);
    }
    /* Our flow counts the pushes from here (ws_flow_ring_count). Relaxed:
     * the last writer of tail handed the ring over to us. */
    r->mark = atomic_load_explicit(&r->tail, memory_order_relaxed);
    r->light = ws_asym_on();
    r->yields = 0;
    /* A parker that saw no bit in the mask after its announce skips the
     * membarrier (ws_park_wait), so a light ring's lessee must see that
     * announce by itself: a seq_cst fence after our seq_cst CAS puts every
     * later (relaxed) load of sleepers after the announce, which preceded
     * the parker's load of the mask, which preceded our CAS in the single
     * total order (C11 7.17.3: a load after a seq_cst fence sees every
     * modification that precedes the fence in that order). Not under
     * ThreadSanitizer (no light rings there, and it has no fences). */
    if (r->light)
        atomic_thread_fence(memory_order_seq_cst);
    return r;
}

void ws_flow_ring_return(ws_flow *f)
{
    wq_ring *r = ws_flow_ring(f);
    if (!r)
        return;
    /* Release pairs with the next lessee's CAS: our reads and the
     * producer's pushes (which we synchronized with) come first. */
    atomic_fetch_and_explicit(&f->pool->rings_leased, ~((uint64_t)1 << r->tag),
                              memory_order_release);
}

bool ws_rings_nonempty(struct weft_pool *p)
{
    /* seq_cst pairs with ws_ring_lease's CAS and store: a ring whose first
     * push came before our announce in the seq_cst order is seen here. A
     * bit cleared since means that ring's flow finished: it is empty. */
    uint64_t m = atomic_load_explicit(&p->rings_leased, memory_order_seq_cst);
    while (m) {
        unsigned i = (unsigned)__builtin_ctzll(m);
        m &= m - 1;
        wq_ring *r = atomic_load_explicit(&p->rings[i], memory_order_seq_cst);
        if (r && wq_ring_nonempty(r))
            return true;
    }
    return false;
}

/* A batch from one of the leased rings. The ring that gave the last batch
 * is looked at first for up to WS_RING_STREAK batches in a row, then the
 * next one, so that each producer's ring waits at most that many batches
 * per ring ahead of it.
 *
 * A ring whose producer is still pushing and holds less than a batch is
 * left to fill, for at most WS_RING_DEFER_NS, looked at no more often than
 * every WS_RING_LOOK_NS meanwhile: a worker that takes items one by one as
 * they come reads tail, and the slot lines, right after each push, and so
 * makes the producer's next RMW of tail wait for the line to come back
 * (perf: 73% of a producer's time on that RMW, the worker idle-spinning
 * between single items). "Still pushing" is tail having moved by two or
 * more since this worker's last look; a first look after a sleep, or at a
 * ring whose tail moved by one or stands still, takes at once, so a lone
 * submission waits for nothing. A
 * deferred search counts as empty for the worker loop (a spin round before
 * the next look), never for parking: ws_rings_nonempty sees the items.
 * The mask is a hint here (relaxed): the parking recheck is what makes a
 * missed ring harmless. */
enum { WS_RING_STREAK = 8, WS_RING_DEFER_NS = 2000, WS_RING_LOOK_NS = 200 };

static size_t ws_rings_take(ws_worker *w, wq_item *batch, size_t max)
{
    struct weft_pool *p = w->pool;
    uint64_t m = atomic_load_explicit(&p->rings_leased, memory_order_relaxed);
    if (!m)
        return 0;
    uint64_t now = 0;
    if (w->ring_look_at && (now = ws_now_ns()) < w->ring_look_at)
        return 0;
    unsigned start = w->ring_next % WS_RINGS;
    /* Rotate so that bit start comes first. */
    uint64_t rot = start ? (m >> start) | (m << (WS_RINGS - start)) : m;
    while (rot) {
        unsigned k = (unsigned)__builtin_ctzll(rot);
        rot &= rot - 1;
        unsigned i = (start + k) % WS_RINGS;
        /* Acquire pairs with ws_ring_lease's seq_cst store: the ring is
         * initialized. */
        wq_ring *r = atomic_load_explicit(&p->rings[i], memory_order_acquire);
        if (!r)
            continue;
        /* Relaxed: only a heuristic; the pop reads them again. */
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
        if (t == h)
            continue;
        uint64_t seen = w->ring_seen[i];
        w->ring_seen[i] = t;
        if (t - h < WQ_RING_BATCH && seen && t - seen >= 2) {
            if (!now)
                now = ws_now_ns();
            if (!w->ring_defer_since)
                w->ring_defer_since = now;
            if (now - w->ring_defer_since < WS_RING_DEFER_NS) {
                w->ring_look_at = now + WS_RING_LOOK_NS;
                continue;
            }
        }
        /* Our share of what is there, when peers may take the rest: what we
         * take waits behind the task we run first (see ws_inject_take). */
        uint64_t share = (t - h + p->nworkers - 1) / p->nworkers;
        size_t n = wq_ring_pop_batch(r, batch, share < max ? (size_t)share : max);
        if (n) {
            w->ring_defer_since = 0;
            w->ring_look_at = 0;
            if (i != start || ++w->ring_streak >= WS_RING_STREAK) {
                w->ring_streak = 0;
                w->ring_next = i == start ? i + 1 : i;
            }
            return n;
        }
    }
    return 0;
}

/* The rest of a batch (items[1..n)) into our batch, which is empty:
 * we run it from there one by one, and a peer takes it over should we be
 * stuck in a long task (ws_rescue). A sleeper must wake to watch it: the
 * fill's release store, then the publisher's half of the parking pairing
 * (a parker's recheck loads the batch seq_cst, sched/park.c): ws_notify's
 * seq_cst RMW, or ws_notify_light when light_ring says the items came from
 * a light ring, which stays leased until they have run: a parker that
 * announced itself sees the lease and runs the membarrier, and one that
 * saw no lease read the mask before the lease in the total order, so the
 * lessee's fence makes its first push's notify see the announce, and wake
 * it (docs/inject.md, "A worker's batch"; tests/model/batch_light.pml). */
static void ws_batch_keep(ws_worker *w, const wq_item *items, size_t n, bool light_ring)
{
    if (n < 2)
        return;
    wq_batch_fill(&w->batch, items + 1, n - 1);
    if (light_ring && w->batch.light)
        ws_notify_light(w->pool, 1);
    else
        ws_notify(w->pool, 1);
}

/* Takes a batch from the injection queue (first, when inject_first) or a
 * leased submission ring (our share of what it held: ws_rings_take): the
 * oldest item into out, to run now.
 *
 * With other workers, the rest goes into our batch (ws_batch_keep): no
 * fence and no RMW per item, where our deque's shared part costs both
 * (two workers on one producer ran at half the rate of one when each
 * batch was published there), and a peer rescues it if we get stuck. On a
 * one-worker pool (or, should the batch hold items still, which the
 * callers' order rules out) it goes onto our deque, where we take them
 * oldest first, published with other workers around. A WS_LOCAL item
 * there is an external opener's: counted in its local_pending, which only
 * that thread touches, so on our deque it becomes WS_REMOTE, which ws_run
 * counts down in state also when it comes back "popped" (as it does for
 * every injected item it is handed directly, a batch's included). We take
 * no more than the deque has room for, so nothing can fail. */
static bool ws_inject_take(ws_worker *w, wq_item *out, bool inject_first)
{
    wq_deque *d = &w->deque;
    int64_t room = wq_deque_room(d);
    if (room < WQ_INJECT_BATCH - 1)
        room = d->arr->mask + 1 - wq_deque_size(d); /* refresh top_seen */
    size_t max = room >= WQ_INJECT_BATCH - 1 ? WQ_INJECT_BATCH : (size_t)room + 1;
    _Static_assert((int)WQ_RING_BATCH == (int)WQ_INJECT_BATCH, "one batch size");
    _Static_assert((int)WQ_BATCH_CAP >= (int)WQ_RING_BATCH - 1, "a ring's batch fits");
    wq_item batch[WQ_INJECT_BATCH];
    size_t n;
    bool from_ring = false;
    if (inject_first) {
        n = wq_inject_pop_batch(&w->pool->inject, batch, max);
        if (!n)
            from_ring = (n = ws_rings_take(w, batch, max)) != 0;
    } else {
        from_ring = (n = ws_rings_take(w, batch, max)) != 0;
        if (!n)
            n = wq_inject_pop_batch(&w->pool->inject, batch, max);
    }
    if (!n)
        return false;
    *out = batch[0];
    if (w->others && wq_batch_empty(&w->batch)) {
        ws_batch_keep(w, batch, n, from_ring);
    } else {
        for (size_t k = n; k-- > 1;) {
            uintptr_t w2 = batch[k].w[2];
            if ((w2 & WS_KIND_MASK) == WS_LOCAL)
                batch[k].w[2] = (w2 & ~(uintptr_t)WS_KIND_MASK) | WS_REMOTE;
            bool put = wq_deque_try_put(d, &batch[k]);
            (void)put; /* room was checked */
        }
        if (n > 1 && w->others)
            ws_publish(w, true); /* a publish wakes sleepers */
    }
    /* Spawned by a thread that is no worker of this pool: counted here. */
    WS_STAT(w, injected, n);
    WS_STAT(w, tasks_spawned, n);
    ws_trace(w, WS_EV_INJECT, n, 0);
    return true;
}

/* A peer's batch that has not moved for this long is taken over: its
 * worker is in a long task (a membarrier to every running thread of the
 * process, once per such task at most). */
enum { WS_RESCUE_NS = 50000 };

/* Takes over a peer's batch that stood still for WS_RESCUE_NS since we
 * first saw it so: the oldest item into out, the rest into our own batch
 * (empty: we look only when we have nothing). The first look at a batch
 * only starts the watch. */
static bool ws_rescue(ws_worker *w, wq_item *out)
{
    struct weft_pool *p = w->pool;
    uint64_t now = ws_now_ns();
    for (unsigned k = 0; k < p->nworkers; k++) {
        ws_worker *v = p->workers[k];
        uint64_t next;
        if (v == w || !wq_batch_peek(&v->batch, &next))
            continue;
        if (w->rescue_peer != k + 1 || w->rescue_next != next) {
            w->rescue_peer = k + 1;
            w->rescue_next = next;
            w->rescue_since = now;
            return false;
        }
        if (now - w->rescue_since < WS_RESCUE_NS || !wq_batch_empty(&w->batch))
            return false;
        wq_item got[WQ_BATCH_CAP];
        size_t n = wq_batch_rescue(&v->batch, got, ws_asym_heavy);
        w->rescue_peer = 0;
        if (!n)
            return false;
        *out = got[0];
        ws_batch_keep(w, got, n, false);
        WS_STAT(w, rescued, n);
        return true;
    }
    return false;
}

/* Any worker of p: whether a peer holds a batch (a hint, relaxed): then we
 * do not sleep, but watch it (ws_rescue). */
static bool ws_peer_batch(ws_worker *w)
{
    struct weft_pool *p = w->pool;
    uint64_t next;
    for (unsigned k = 0; k < p->nworkers; k++)
        if (p->workers[k] != w && wq_batch_peek(&p->workers[k]->batch, &next))
            return true;
    return false;
}

bool ws_find_work(ws_worker *w, wq_item *out)
{
    struct weft_pool *p = w->pool;
    unsigned n = p->nworkers;
    /* Async-closed flows waiting for a worker to run their done: the whole
     * stack at once. Acquire pairs with the seq_cst push in
     * ws_flow_async_defer (we then see each flow's done_next). */
    if (WS_UNLIKELY(atomic_load_explicit(&p->async_done, memory_order_relaxed) != NULL)) {
        ws_flow *list = atomic_exchange_explicit(&p->async_done, NULL, memory_order_acquire);
        if (list) {
            out->w[2] = (uintptr_t)list | WS_DONE;
            return true;
        }
    }
    /* Now and then the injection queue first: while peers always have
     * work to steal, external submissions would otherwise wait for the
     * whole job. */
    if (WS_UNLIKELY(--w->inject_tick == 0)) {
        w->inject_tick = WS_INJECT_TICK;
        if (ws_inject_take(w, out, true))
            return true;
    }
    /* A leased ring before a peer: its items are there for the taking in
     * a batch, where a steal takes one item and pulls the line its owner
     * pops from. The relaxed mask is a hint, as in ws_rings_take. */
    if (n > 1 && atomic_load_explicit(&p->rings_leased, memory_order_relaxed) &&
        ws_inject_take(w, out, false))
        return true;
    if (n > 1) {
        unsigned start = (unsigned)(ws_rand(w) % n);
        for (unsigned k = 0; k < n; k++) {
            ws_worker *v = p->workers[(start + k) % n];
            if (v == w)
                continue;
            for (int tries = 0; tries < 4; tries++) {
                int r = wq_deque_steal(&v->deque, out);
                WS_STAT(w, steal_attempts, 1);
                if (r == WQ_STOLEN) {
                    WS_STAT(w, steals, 1);
                    WS_PROBE3(steal, p, w->index, v->index);
                    ws_trace(w, WS_EV_STEAL, v->index, 0);
                    return true;
                }
                if (r == WQ_EMPTY)
                    break;
            }
        }
    }
    if (ws_inject_take(w, out, false))
        return true;
    return n > 1 && ws_rescue(w, out);
}

/* A worker that returns into the scheduler from a task in a child of
 * fork() (the task forked and returned; ws_check_forked): the pool has no
 * other workers and never will, so waiting or looking for work would hang
 * or run the parent's tasks a second time. The child exits instead, with
 * status 0 and as _exit does: without the atexit handlers and stdio
 * buffers it copied from the parent, which are the parent's to run and
 * flush. */
void ws_forked_exit(void)
{
    _exit(0);
}

bool ws_help(ws_worker *w)
{
    wq_item it;
    ws_check_forked(w);
    if (!ws_may_nest(w))
        return false;
    /* Our own deque first: what a helped task left there is ours to run. */
    if (ws_take(w, &it)) {
        ws_run(w, &it, true);
        return true;
    }
    if (!wq_batch_take(&w->batch, &it) && !ws_find_work(w, &it))
        return false;
    ws_run(w, &it, false);
    return true;
}

/* Time spent searching without finding (spin_ns): from the first empty
 * search until work is found or the worker parks. */
static inline void ws_spin_end(ws_worker *w, unsigned idle, uint64_t since)
{
#if WS_OBSERVE
    if (idle)
        WS_STAT(w, spin_ns, ws_now_ns() - since);
#else
    (void)w, (void)idle, (void)since;
#endif
}

/* The worker loop's run of an item it found, and of each item of another
 * flow or context its streak ended at (ws_run_streak). */
static inline void ws_run_found(ws_worker *w, wq_item *it, bool popped)
{
    do {
        ws_done_follow(w, it);
        ws_probes_poll(w);
    } while (ws_run_streak(w, it, &popped));
}

static void ws_worker_loop(ws_worker *w)
{
    struct weft_pool *p = w->pool;
    unsigned idle = 0, slow = 0; /* empty rounds, and slow yields among them */
    uint64_t since = 0;
    bool pass = false; /* owes a ws_pass_wake (ws_park_wait) */
    for (;;) {
        wq_item it;
        ws_check_forked(w);
        if (ws_take(w, &it)) {
            ws_spin_end(w, idle, since);
            if (WS_UNLIKELY(pass))
                pass = false, ws_pass_wake(p);
            ws_run_found(w, &it, true);
            idle = slow = 0;
            continue;
        }
        if (wq_batch_take(&w->batch, &it) || ws_find_work(w, &it)) {
            ws_spin_end(w, idle, since);
            if (WS_UNLIKELY(pass))
                pass = false, ws_pass_wake(p);
            ws_run_found(w, &it, false);
            idle = slow = 0;
            continue;
        }
        ws_done_flush(w); /* nothing to do: no count may wait on us */
        /* Acquire pairs with ws_pool_stop's seq_cst store of stopping. */
        if (atomic_load_explicit(&p->stopping, memory_order_acquire))
            return;
        if (WS_OBSERVE && idle == 0)
            since = ws_now_ns();
        idle++;
        if ((idle < WS_IDLE_ROUNDS && slow < WS_IDLE_SLOW_YIELDS) || ws_peer_batch(w)) {
            /* An idle round (until WS_IDLE_ROUNDS of them, or
             * WS_IDLE_SLOW_YIELDS slow yields); past them, a peer's
             * batch: watch it (ws_rescue), do not sleep. */
            uint64_t t0 = ws_now_ns();
            sched_yield();
            if (ws_now_ns() - t0 > WS_IDLE_SLOW_NS)
                slow++;
        } else {
            slow = 0;
            ws_spin_end(w, idle, since);
            pass = ws_park_wait(p, w, pass);
            /* Woken: the first look at a ring takes what it finds. */
            memset(w->ring_seen, 0, sizeof w->ring_seen);
            w->ring_defer_since = 0;
            w->ring_look_at = 0;
            since = WS_OBSERVE ? ws_now_ns() : 0;
            idle = WS_IDLE_ROUNDS - WS_WOKEN_ROUNDS; /* woken: look around, then sleep again */
        }
    }
}

static void *ws_worker_main(void *arg)
{
    ws_worker *w = arg;
    ws_self = w;
    weft_thread_.worker = ws_owner_line(w); /* the inline join's worker */
    weft_thread_.self = w;                  /* what the flows it opens name as owner */
    weft_thread_.pool = w->pool;
    char name[32];
    snprintf(name, sizeof name, "%s-%u", w->pool->name, w->index);
    name[15] = 0; /* the kernel's limit */
    pthread_setname_np(pthread_self(), name);

    /* Half of the stack weft asked for, below where the worker starts (near
     * the top: only the thread's TLS is above). Derived, not asked of
     * pthread_getattr_np, which allocates and can fail. */
    char here;
    w->nest_limit = (uintptr_t)&here - w->pool->stack_size / 2;

    struct weft_pool *p = w->pool;
    if (p->on_worker_start)
        p->on_worker_start(p, w->index, p->worker_arg);
    ws_worker_loop(w);
    if (p->on_worker_stop)
        p->on_worker_stop(p, w->index, p->worker_arg);
    return NULL;
}

/* ---- worker count ------------------------------------------------------ */

unsigned ws_cpu_quota(const char *cpu_max_path)
{
    FILE *f = fopen(cpu_max_path, "r");
    if (!f)
        return 0;
    char quota[32] = "";
    unsigned long long period = 0;
    int got = fscanf(f, "%31s %llu", quota, &period);
    fclose(f);
    if (got != 2 || period == 0 || !isdigit((unsigned char)quota[0]))
        return 0; /* "max": no quota */
    unsigned long long q = strtoull(quota, NULL, 10);
    unsigned long long cpus = (q + period - 1) / period; /* rounded up */
    return cpus == 0 ? 1 : cpus > UINT_MAX ? UINT_MAX : (unsigned)cpus;
}

/* The cgroup v2 quota of this process's cgroup, or 0. */
static unsigned ws_cgroup_quota(void)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return 0;
    char line[512], path[600];
    unsigned best = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = 0;
        /* Walk up to the root: a parent's quota limits us too. */
        char *rel = line + 3;
        for (;;) {
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", rel[1] ? rel : "");
            unsigned q = ws_cpu_quota(path);
            if (q && (!best || q < best))
                best = q;
            if (!rel[1])
                break;
            char *slash = strrchr(rel, '/');
            if (slash == rel)
                rel[1] = 0;
            else
                *slash = 0;
        }
    }
    fclose(f);
    return best;
}

unsigned ws_default_workers(void)
{
    unsigned n = 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = (unsigned)CPU_COUNT(&set);
    else {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (unsigned)c : 1;
    }
    unsigned q = ws_cgroup_quota();
    if (q && q < n)
        n = q;
    if (n > WEFT_MAX_WORKERS)
        n = WEFT_MAX_WORKERS;
    return n ? n : 1;
}

/* 0 and *n set, or EINVAL for a $WEFT_WORKERS that is not 1..max. */
static int ws_env_workers(unsigned *n)
{
    const char *s = getenv("WEFT_WORKERS");
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    /* Digits only: strtoul would also take leading blanks and a sign. */
    if (errno || *end || v < 1 || v > WEFT_MAX_WORKERS || s[0] < '0' || s[0] > '9')
        return EINVAL;
    *n = (unsigned)v;
    return 0;
}

/* ---- create / destroy -------------------------------------------------- */

static void ws_pool_free(struct weft_pool *p)
{
    ws_trace_destroy(p, false); /* nothing left but on a failed create */
    if (p->workers) {
        for (unsigned i = 0; i < p->nworkers; i++) {
            if (p->workers[i]) {
                wq_deque_destroy(&p->workers[i]->deque);
                free(p->workers[i]);
            }
        }
        free(p->workers);
    }
    wq_inject_destroy(&p->inject); /* nothing when its init failed */
    for (unsigned i = 0; i < WS_RINGS; i++)
        wq_ring_free(atomic_load_explicit(&p->rings[i], memory_order_relaxed));
    free(p);
}

static void ws_pool_stop(struct weft_pool *p, unsigned started)
{
    /* seq_cst pairs with the sleepers' seq_cst check of stopping in
     * ws_park_wait; then wake every sleeper. */
    atomic_store_explicit(&p->stopping, 1, memory_order_seq_cst);
    /* Pairs with the sleepers' acquire load of epoch in ws_park_wait: a
     * worker between its load and its futex_wait returns at once. */
    atomic_fetch_add_explicit(&p->park.epoch, 1, memory_order_seq_cst);
    ws_futex_wake(&p->park.epoch, INT_MAX);
    for (unsigned i = 0; i < started; i++)
        pthread_join(p->workers[i]->thread, NULL);
}

int weft_pool_create(weft_pool **out, const weft_pool_config *cfg)
{
    if (!out)
        return EINVAL;
    *out = NULL;
    weft_pool_config def = {0};
    if (!cfg)
        cfg = &def;
    if (cfg->flags & ~WEFT_POOL_NO_CTX)
        return EINVAL;
    unsigned n = cfg->workers;
    if (n > WEFT_MAX_WORKERS)
        return EINVAL;
    size_t stack = cfg->stack_size ? cfg->stack_size : WS_WORKER_STACK;
    if (stack < WEFT_MIN_STACK_SIZE)
        return EINVAL;
    if (n == 0) {
        n = ws_default_workers();
        int err = ws_env_workers(&n);
        if (err)
            return err;
    }

    /* Before any of this pool's rings is leased or worker parks. */
    ws_asym_init();
    struct weft_pool *p = aligned_alloc(WQ_CACHELINE, (sizeof *p + WQ_CACHELINE - 1) / WQ_CACHELINE * WQ_CACHELINE);
    if (!p)
        return ENOMEM;
    memset(p, 0, sizeof *p);
    p->nworkers = n;
    p->flags = cfg->flags;
    p->stack_size = stack;
    p->on_worker_start = cfg->on_worker_start;
    p->on_worker_stop = cfg->on_worker_stop;
    p->worker_arg = cfg->worker_arg;
    p->seq = atomic_fetch_add_explicit(&ws_pool_seq, 1, memory_order_relaxed);
    p->fork_gen = ws_fork_gen;
    snprintf(p->name, sizeof p->name, "%s", cfg->name && *cfg->name ? cfg->name : "weft");
    /* Leave room for "-<index>" in the 15-character thread name. */
    p->name[10] = 0;
    atomic_init(&p->park.epoch, 0);
    atomic_init(&p->park.sleepers, 0);
    atomic_init(&p->park.waking, 0);
    atomic_init(&p->cancel_epoch, 1);
    atomic_init(&p->ext_open, 0);
    atomic_init(&p->async_done, NULL);
    atomic_init(&p->rings_leased, 0);
    for (unsigned i = 0; i < WS_RINGS; i++)
        atomic_init(&p->rings[i], NULL);
    atomic_init(&p->dones_running, 0);
    atomic_init(&p->closing, 0);
    atomic_init(&p->stopping, 0);

    int err = wq_inject_init(&p->inject, WS_INJECT_LOG2_BLOCK);
    if (err) {
        ws_pool_free(p);
        return err;
    }
    p->workers = calloc(n, sizeof *p->workers);
    if (!p->workers) {
        ws_pool_free(p);
        return ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        ws_worker *w = aligned_alloc(WQ_CACHELINE, (sizeof *w + WQ_CACHELINE - 1) / WQ_CACHELINE * WQ_CACHELINE);
        if (!w) {
            ws_pool_free(p);
            return ENOMEM;
        }
        memset(w, 0, sizeof *w);
        p->workers[i] = w;
        w->pool = p;
        w->index = i;
        w->sleepers = &p->park.sleepers;
        w->inject_tick = WS_INJECT_TICK;
        w->others = n > 1;
        w->with_ctx = !(cfg->flags & WEFT_POOL_NO_CTX);
        w->rng = 0x9E3779B97F4A7C15ULL * (i + 1) ^ (uintptr_t)p;
        wq_batch_init(&w->batch, ws_asym_on());
        if ((err = wq_deque_init(&w->deque, 10)) != 0) {
            ws_pool_free(p);
            return err;
        }
        /* The inline join's mode: NO_CTX pools run it with no scope. */
        atomic_store_explicit(&w->deque.user_mode, w->with_ctx ? 0u : WEFT_MODE_NO_CTX_,
                              memory_order_relaxed);
        /* Without counters no depth is recorded: the inline close never
         * needs the library for it. */
        w->deque.user_depth = WS_OBSERVE ? 0 : INT64_MAX;
        if (w->others) /* nothing is shared yet: the first push publishes */
            wq_deque_hint_set(&w->deque, WQ_HINT_DRAINED);
    }

    ws_trace_from_env(p); /* before the workers start: they see its buffers */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    err = pthread_attr_setstacksize(&attr, stack);
    if (err) {
        pthread_attr_destroy(&attr);
        ws_pool_free(p);
        return EINVAL;
    }
    for (unsigned i = 0; i < n; i++) {
        err = pthread_create(&p->workers[i]->thread, &attr, ws_worker_main, p->workers[i]);
        if (err) {
            pthread_attr_destroy(&attr);
            ws_pool_stop(p, i);
            ws_pool_free(p);
            return err == EAGAIN ? EAGAIN : ENOMEM;
        }
    }
    pthread_attr_destroy(&attr);
    WS_PROBE2(pool_create, p, n);
    *out = p;
    return 0;
}

bool ws_pool_usable(const struct weft_pool *p)
{
    return p->fork_gen == ws_fork_gen;
}

/* Whether a worker of p has a flow open although no external flow is: a
 * task returned without closing the flow it opened. The pool is then never
 * idle for sure (the flow's tasks may be anywhere), so it stays. The loads
 * are relaxed: destroy saw ext_open at 0 (seq_cst), which happens after the
 * close of the external flow each task ran under, and so after every
 * close's count made by those tasks. (A flow that on_worker_start or
 * on_worker_stop opens and closes on its own thread is not under such a
 * flow: a destroy racing with it may say EBUSY once.) */
static bool ws_pool_flows_left(const struct weft_pool *p)
{
    for (unsigned i = 0; i < p->nworkers; i++)
        if (atomic_load_explicit(&p->workers[i]->deque.user_open, memory_order_relaxed) != 0)
            return true;
    return false;
}

/* weft_pool_destroy for any usable pool, the default one included. */
/* A done that signalled its caller (an eventfd, say) is still running when
 * the caller may already destroy the pool: its flow counts in ext_open
 * until it returns. While dones are running, give them about 2 ms in all
 * to return before deciding: a done's tail after its signal takes
 * microseconds, and a done that is still at work (one that waits for the
 * destroyer, say) must not hold the destroyer, often an event loop, for
 * long before its EBUSY. Only an optimization of when the answer comes:
 * the check below decides, and a flow still open is EBUSY either way. */
static void ws_pool_wait_dones(struct weft_pool *p)
{
    /* Naps of 1 us doubling to 256 us, then of 256 us, up to 2 ms. */
    for (long nap = 1000, waited = 0; waited < 2000000; waited += nap,
              nap = nap < 256000 ? nap * 2 : 256000) {
        if (atomic_load_explicit(&p->ext_open, memory_order_relaxed) == 0 ||
            atomic_load_explicit(&p->dones_running, memory_order_relaxed) == 0)
            return;
        struct timespec ts = {0, nap};
        nanosleep(&ts, NULL);
    }
}

static int ws_pool_destroy(struct weft_pool *p)
{
    if (ws_self && ws_self->pool == p)
        return EDEADLK;
    ws_pool_wait_dones(p);
    /* Claim the pool: a second destroy, or a flow open racing with us, sees
     * closing. seq_cst pairs with the seq_cst increment of ext_open in
     * weft_flow_open: either the opener sees closing or we see its flow.
     * (Workers watch only stopping, so backing off below stops nobody.) */
    for (int expected = 0; !atomic_compare_exchange_strong_explicit(
             &p->closing, &expected, 1, memory_order_seq_cst, memory_order_relaxed);
         expected = 0) {
        /* Another destroy is deciding: with a flow open it will back off,
         * and so do we; otherwise wait for its verdict. seq_cst pairs with
         * the opener's increment (as below); acquire with ws_pool_stop. */
        if (atomic_load_explicit(&p->ext_open, memory_order_seq_cst) != 0)
            return EBUSY;
        if (atomic_load_explicit(&p->stopping, memory_order_acquire))
            return EINVAL;
        sched_yield();
    }
    /* seq_cst pairs with weft_flow_open's increment of ext_open (either
     * it sees closing or we see its flow), and, as an acquire, with the
     * release decrement at each external flow's close. */
    if (atomic_load_explicit(&p->ext_open, memory_order_seq_cst) != 0 || ws_pool_flows_left(p)) {
        /* seq_cst pairs with the openers' seq_cst loads of closing. */
        atomic_store_explicit(&p->closing, 0, memory_order_seq_cst);
        return EBUSY;
    }
    ws_pool_stop(p, p->nworkers);
    /* The workers are joined: the counters are final and the trace whole. */
    ws_stats_report(p, "destroyed");
    ws_trace_destroy(p, true);
    WS_PROBE1(pool_destroy, p);
    ws_pool_free(p);
    return 0;
}

int weft_pool_destroy(weft_pool *p)
{
    if (!p || p->is_default || !ws_pool_usable(p))
        return EINVAL;
    return ws_pool_destroy(p);
}

unsigned weft_pool_workers(const weft_pool *p)
{
    return p ? p->nworkers : 0;
}

int weft_worker_index(void)
{
    return ws_self ? (int)ws_self->index : -1;
}

/* ---- the default pool and fork ---------------------------------------- */

static _Atomic(struct weft_pool *) ws_default;
static pthread_mutex_t ws_default_lock = PTHREAD_MUTEX_INITIALIZER;
/* Pools orphaned by fork() stay reachable here (the child cannot free them:
 * their threads do not exist), so leak checkers do not report them. */
static struct weft_pool *ws_orphaned_default;

static void ws_atfork_prepare(void)
{
    pthread_mutex_lock(&ws_default_lock);
}

static void ws_atfork_parent(void)
{
    pthread_mutex_unlock(&ws_default_lock);
}

static void ws_atfork_child(void)
{
    /* Every pool of the parent is now unusable here: its workers did not
     * cross the fork. New generation; the default pool starts afresh. */
    ws_fork_gen++;
    ws_asym_forget();
    struct weft_pool *old = atomic_load_explicit(&ws_default, memory_order_relaxed);
    if (old)
        ws_orphaned_default = old;
    atomic_store_explicit(&ws_default, NULL, memory_order_relaxed);
    /* The prepare handler locked it in the forking thread, which is the
     * child's only thread: unlocking is defined, re-initializing is not. */
    pthread_mutex_unlock(&ws_default_lock);
    /* The forking thread's own deque: no item below INT64_MAX is private
     * any more, so an inline join or close in flight takes nothing back
     * (if it kept the owner line in a register; if it reads the worker
     * again it finds none) and calls the library, which exits here
     * (weft_join_rest_, weft_flow_close_rest_). */
    if (ws_self)
        ws_self->deque.split_own = INT64_MAX;
    ws_self = NULL;
    weft_thread_.worker = NULL; /* new inline joins call the library here */
    weft_thread_.self = NULL;
    weft_thread_.pool = NULL;
    ws_cur_flow = NULL;
}

__attribute__((constructor)) static void ws_init(void)
{
    pthread_atfork(ws_atfork_prepare, ws_atfork_parent, ws_atfork_child);
}

/* $WEFT_STATS and $WEFT_TRACE: the default pool's counters and trace when
 * the process exits (it is never destroyed unless
 * weft_default_pool_shutdown is called). */
static void ws_default_at_exit(void)
{
    /* Acquire pairs with the release store in ws_default_pool. */
    struct weft_pool *p = atomic_load_explicit(&ws_default, memory_order_acquire);
    if (p && ws_pool_usable(p)) {
        ws_stats_report(p, "at exit");
        weft_trace_stop(p); /* EINVAL, and nothing, when not tracing */
    }
}

struct weft_pool *ws_default_pool(int *err)
{
    /* Acquire pairs with the release store below: a thread that sees the
     * pointer sees the pool fully built. */
    struct weft_pool *p = atomic_load_explicit(&ws_default, memory_order_acquire);
    if (WS_LIKELY(p))
        return p;
    pthread_mutex_lock(&ws_default_lock);
    p = atomic_load_explicit(&ws_default, memory_order_relaxed);
    if (!p) {
        /* A failure is not remembered: the next call tries again (after the
         * caller fixed $WEFT_WORKERS, say). */
        *err = weft_pool_create(&p, NULL);
        if (*err == 0) {
            p->is_default = true;
            atomic_store_explicit(&ws_default, p, memory_order_release);
            static bool at_exit_armed;
            if (!at_exit_armed && (getenv("WEFT_STATS") || getenv("WEFT_TRACE")))
                at_exit_armed = atexit(ws_default_at_exit) == 0;
        }
    }
    pthread_mutex_unlock(&ws_default_lock);
    return p;
}

weft_pool *weft_default_pool(void)
{
    int err;
    return ws_default_pool(&err);
}

int weft_default_pool_shutdown(void)
{
    pthread_mutex_lock(&ws_default_lock);
    struct weft_pool *p = atomic_load_explicit(&ws_default, memory_order_relaxed);
    int err = 0;
    if (p) {
        /* The pointer goes first, so no new use finds it; put back if the
         * pool turns out busy. Uses racing with us are the caller's race
         * (see weft.h). */
        atomic_store_explicit(&ws_default, NULL, memory_order_relaxed);
        err = ws_pool_destroy(p);
        if (err) /* release pairs with the acquire loads of ws_default */
            atomic_store_explicit(&ws_default, p, memory_order_release);
    }
    pthread_mutex_unlock(&ws_default_lock);
    return err;
}
