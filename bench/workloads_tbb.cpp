/*
 * bench/workloads_tbb.cpp — the workloads on oneTBB: task_group for
 * fork-join, parallel_reduce for the reduction, task_arena::enqueue for
 * work submitted by threads outside the arena.
 *
 * SPDX-License-Identifier: MIT
 */
#include "peers.hpp"
#include "timing.h"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_reduce.h>
#include <oneapi/tbb/task_group.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace tbb_wl {

static uint64_t fib_rec(int n)
{
    if (n < 2)
        return (uint64_t)n;
    uint64_t x, y;
    tbb::task_group g;
    g.run([&] { x = fib_rec(n - 1); });
    y = fib_rec(n - 2);
    g.wait();
    return x + y;
}

uint64_t fib(tbb::task_arena &a, int n)
{
    uint64_t r = 0;
    a.execute([&] { r = fib_rec(n); });
    return r;
}

static void nq_rec(nq_arg *a)
{
    if (a->row == a->n) {
        a->r = 1;
        return;
    }
    nq_arg kids[NQ_MAX];
    int k = nq_children(a, kids);
    a->r = 0;
    if (k == 0)
        return;
    tbb::task_group g;
    for (int i = 0; i < k; i++) {
        nq_arg *c = &kids[i];
        g.run([c] { nq_rec(c); });
    }
    g.wait();
    for (int i = 0; i < k; i++)
        a->r += kids[i].r;
}

uint64_t nqueens(tbb::task_arena &ar, int n)
{
    nq_arg a{};
    a.n = n;
    ar.execute([&] { nq_rec(&a); });
    return a.r;
}

struct uts_arg {
    const uts_params *t;
    uts_node          node;
    uint64_t          count;
};

static void uts_rec(uts_arg *a)
{
    int k = uts_num_children(a->t, &a->node);
    a->count = 1;
    if (k == 0)
        return;
    uts_arg local[8];
    uts_arg *kids = k <= 8 ? local : static_cast<uts_arg *>(std::malloc(sizeof(uts_arg) * k));
    if (!kids)
        std::abort();
    tbb::task_group g;
    for (int i = 0; i < k; i++) {
        uts_arg *c = &kids[i];
        c->t = a->t;
        c->count = 0;
        uts_child(&a->node, i, &c->node);
        g.run([c] { uts_rec(c); });
    }
    g.wait();
    for (int i = 0; i < k; i++)
        a->count += kids[i].count;
    if (kids != local)
        std::free(kids);
}

uint64_t uts(tbb::task_arena &ar, const uts_params *t)
{
    uts_arg a{};
    a.t = t;
    uts_root(t, &a.node);
    ar.execute([&] { uts_rec(&a); });
    return a.count;
}

static uint64_t sky_rec(uint64_t num, uint64_t size)
{
    if (size == 1)
        return num;
    uint64_t r[SKYNET_DIV];
    uint64_t sub = size / SKYNET_DIV;
    tbb::task_group g;
    for (int i = 0; i < SKYNET_DIV; i++)
        g.run([&r, i, num, sub] { r[i] = sky_rec(num + (uint64_t)i * sub, sub); });
    g.wait();
    uint64_t s = 0;
    for (int i = 0; i < SKYNET_DIV; i++)
        s += r[i];
    return s;
}

uint64_t skynet(tbb::task_arena &a, uint64_t leaves)
{
    uint64_t r = 0;
    a.execute([&] { r = sky_rec(0, leaves); });
    return r;
}

static void ms_rec(int32_t *a, int32_t *tmp, size_t n)
{
    if (n <= MSORT_CUTOFF) {
        msort_serial(a, tmp, n);
        return;
    }
    size_t mid = n / 2;
    tbb::task_group g;
    g.run([=] { ms_rec(a, tmp, mid); });
    ms_rec(a + mid, tmp + mid, n - mid);
    g.wait();
    msort_merge(a, tmp, mid, n);
}

void msort(tbb::task_arena &ar, int32_t *a, int32_t *tmp, size_t n)
{
    ar.execute([&] { ms_rec(a, tmp, n); });
}

uint64_t reduce(tbb::task_arena &ar, const uint64_t *v, size_t n)
{
    uint64_t r = 0;
    ar.execute([&] {
        r = tbb::parallel_reduce(
            tbb::blocked_range<size_t>(0, n), uint64_t{0},
            [v](const tbb::blocked_range<size_t> &rg, uint64_t acc) {
                return acc + sum_range(v, rg.begin(), rg.end());
            },
            [](uint64_t x, uint64_t y) { return x + y; });
    });
    return r;
}

namespace {

/* What a submitter waits on: the last of its tasks wakes it. */
struct latch {
    std::atomic<size_t>     left;
    std::mutex              m;
    std::condition_variable cv;
    bool                    done = false;

    explicit latch(size_t n) : left(n) {}
    void count_down()
    {
        if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            std::lock_guard<std::mutex> g(m);
            done = true;
            cv.notify_one();
        }
    }
    void wait()
    {
        std::unique_lock<std::mutex> g(m);
        cv.wait(g, [this] { return done; });
    }
};

void enqueue_and_wait(tbb::task_arena &a, uint64_t *slots, size_t n)
{
    latch l(n);
    for (size_t i = 0; i < n; i++) {
        uint64_t *s = &slots[i];
        a.enqueue([s, &l] {
            tiny_body(s);
            l.count_down();
        });
    }
    if (n)
        l.wait();
}

} // namespace

void tiny_enqueue(tbb::task_arena &a, uint64_t *slots, size_t n, unsigned threads)
{
    if (threads <= 1) {
        enqueue_and_wait(a, slots, n);
        return;
    }
    std::vector<std::thread> ts;
    size_t per = n / threads;
    for (unsigned t = 0; t < threads; t++) {
        size_t lo = t * per, hi = t + 1 == threads ? n : lo + per;
        ts.emplace_back([&a, slots, lo, hi] { enqueue_and_wait(a, slots + lo, hi - lo); });
    }
    for (auto &t : ts)
        t.join();
}

void tiny_task_group(tbb::task_arena &a, uint64_t *slots, size_t n)
{
    a.execute([&] {
        tbb::task_group g;
        for (size_t i = 0; i < n; i++) {
            uint64_t *s = &slots[i];
            g.run([s] { tiny_body(s); });
        }
        g.wait();
    });
}

void wake(tbb::task_arena &a, int samples, long gap_ns, double *lat_ns)
{
    for (int i = 0; i < samples; i++) {
        bench_sleep_ns(gap_ns);
        latch l(1);
        int64_t started = 0;
        int64_t t0 = bench_now_ns();
        a.enqueue([&] {
            started = bench_now_ns();
            l.count_down();
        });
        l.wait();
        lat_ns[i] = (double)(started - t0);
    }
}

double idle(unsigned workers, double seconds)
{
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism, workers + 1);
    tbb::task_arena a((int)workers, 0);
    std::vector<uint64_t> slots(100000);
    for (int i = 0; i < 20; i++)
        tiny_enqueue(a, slots.data(), slots.size(), 1);
    if (!tiny_check(slots.data(), slots.size(), 20))
        return -1.0;
    return bench_idle_cpu(seconds);
}

} // namespace tbb_wl
