/*
 * bench/workloads_omp.cpp — the workloads as OpenMP tasks (gcc's libgomp).
 * OpenMP has no way for a thread outside a parallel region to hand work to
 * a team, so the external-submission workloads have no OpenMP version.
 *
 * SPDX-License-Identifier: MIT
 */
#include "peers.hpp"
#include "timing.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>

namespace omp_wl {

static uint64_t fib_rec(int n)
{
    if (n < 2)
        return (uint64_t)n;
    uint64_t x, y;
#pragma omp task shared(x)
    x = fib_rec(n - 1);
    y = fib_rec(n - 2);
#pragma omp taskwait
    return x + y;
}

uint64_t fib(int n, unsigned threads)
{
    uint64_t r = 0;
#pragma omp parallel num_threads(threads)
#pragma omp single
    r = fib_rec(n);
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
    for (int i = 0; i < k; i++) {
        nq_arg *c = &kids[i];
#pragma omp task firstprivate(c)
        nq_rec(c);
    }
#pragma omp taskwait
    for (int i = 0; i < k; i++)
        a->r += kids[i].r;
}

uint64_t nqueens(int n, unsigned threads)
{
    nq_arg a{};
    a.n = n;
#pragma omp parallel num_threads(threads)
#pragma omp single
    nq_rec(&a);
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
    for (int i = 0; i < k; i++) {
        uts_arg *c = &kids[i];
        c->t = a->t;
        c->count = 0;
        uts_child(&a->node, i, &c->node);
#pragma omp task firstprivate(c)
        uts_rec(c);
    }
#pragma omp taskwait
    for (int i = 0; i < k; i++)
        a->count += kids[i].count;
    if (kids != local)
        std::free(kids);
}

uint64_t uts(const uts_params *t, unsigned threads)
{
    uts_arg a{};
    a.t = t;
    uts_root(t, &a.node);
#pragma omp parallel num_threads(threads)
#pragma omp single
    uts_rec(&a);
    return a.count;
}

static uint64_t sky_rec(uint64_t num, uint64_t size)
{
    if (size == 1)
        return num;
    uint64_t r[SKYNET_DIV];
    uint64_t sub = size / SKYNET_DIV;
    for (int i = 0; i < SKYNET_DIV; i++) {
#pragma omp task shared(r) firstprivate(i)
        r[i] = sky_rec(num + (uint64_t)i * sub, sub);
    }
#pragma omp taskwait
    uint64_t s = 0;
    for (int i = 0; i < SKYNET_DIV; i++)
        s += r[i];
    return s;
}

uint64_t skynet(uint64_t leaves, unsigned threads)
{
    uint64_t r = 0;
#pragma omp parallel num_threads(threads)
#pragma omp single
    r = sky_rec(0, leaves);
    return r;
}

static void ms_rec(int32_t *a, int32_t *tmp, size_t n)
{
    if (n <= MSORT_CUTOFF) {
        msort_serial(a, tmp, n);
        return;
    }
    size_t mid = n / 2;
#pragma omp task
    ms_rec(a, tmp, mid);
    ms_rec(a + mid, tmp + mid, n - mid);
#pragma omp taskwait
    msort_merge(a, tmp, mid, n);
}

void msort(int32_t *a, int32_t *tmp, size_t n, unsigned threads)
{
#pragma omp parallel num_threads(threads)
#pragma omp single
    ms_rec(a, tmp, n);
}

uint64_t reduce(const uint64_t *a, size_t n, unsigned threads)
{
    /* Static schedule over chunks of the shared leaf kernel: what
     * `parallel for reduction` does, with the same inner loop as the others. */
    const size_t chunk = 1u << 16;
    const long nchunks = (long)((n + chunk - 1) / chunk);
    uint64_t s = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : s) schedule(static)
    for (long c = 0; c < nchunks; c++) {
        size_t lo = (size_t)c * chunk, hi = lo + chunk < n ? lo + chunk : n;
        s += sum_range(a, lo, hi);
    }
    return s;
}

double idle(unsigned threads, double seconds)
{
    for (int i = 0; i < 20; i++)
        if (fib(20, threads) != fib_expect(20))
            return -1.0;
    return bench_idle_cpu(seconds);
}

} // namespace omp_wl
