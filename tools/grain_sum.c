/*
 * tools/grain_sum.c — the worked example of docs/profiling.md: a sum over
 * N uint64 with weft_for, at a grain given on the command line, so that a
 * grain that is too fine or too coarse can be seen in the counters
 * ($WEFT_STATS), the USDT probes (perf) and the timeline trace ($WEFT_TRACE).
 *
 *   grain_sum [N] [GRAIN] [REPS]
 *
 *   N      elements (default 100000000: 800 MB)
 *   GRAIN  weft_for's grain: 0 (weft's default: N / (8 x workers)), 1, or
 *          any count; "half" means N/2
 *   REPS   sums to run, each timed (default 3), after one serial loop
 *          over the same array for scale
 *
 * The pool is named "sum" ($WEFT_WORKERS workers, else one per CPU) and
 * destroyed at the end, so $WEFT_STATS=1 prints its counters then and
 * $WEFT_TRACE=path writes its trace then.
 *
 * Build (from the repository root, against a build of the library in
 * build/h-prof):
 *   cc -O2 -g -fno-omit-frame-pointer -rdynamic -Iinclude -Ibuild/h-prof/include \
 *      tools/grain_sum.c -o build/h-prof/grain_sum \
 *      -Lbuild/h-prof -lweft -Wl,-rpath,$PWD/build/h-prof
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <weft.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct sum_arg {
    const uint64_t    *a;
    _Atomic(uint64_t)  total;
} sum_arg;

/* One piece: a plain loop, then one atomic add. Global (-rdynamic), so a
 * profile and a trace name it. */
void sum_piece(size_t begin, size_t end, void *p)
{
    sum_arg *s = p;
    uint64_t t = 0;
    for (size_t i = begin; i < end; i++)
        t += s->a[i];
    atomic_fetch_add_explicit(&s->total, t, memory_order_relaxed);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* in order with $WEFT_STATS's stderr */
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000000u;
    size_t grain = 0;
    if (argc > 2)
        grain = strcmp(argv[2], "half") == 0 ? n / 2 : strtoull(argv[2], NULL, 10);
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    if (n == 0 || reps <= 0) {
        fprintf(stderr, "usage: %s [N] [GRAIN|half] [REPS]\n", argv[0]);
        return 2;
    }
    uint64_t *a = malloc(n * sizeof *a);
    if (!a) {
        perror("malloc");
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        a[i] = i & 0xff;
    /* sum of (i & 255) over 0..n-1 */
    uint64_t want = (uint64_t)(n / 256) * (255 * 256 / 2);
    for (size_t i = n / 256 * 256; i < n; i++)
        want += i & 0xff;

    /* The serial loop, for scale. */
    {
        sum_arg s = {.a = a};
        atomic_init(&s.total, 0);
        double t0 = now_s();
        sum_piece(0, n, &s);
        double t1 = now_s();
        if (atomic_load(&s.total) != want)
            return 1;
        printf("serial loop: %.1f ms\n", (t1 - t0) * 1e3);
    }

    weft_pool *pool;
    weft_pool_config cfg = {.name = "sum"};
    int err = weft_pool_create(&pool, &cfg);
    if (err) {
        fprintf(stderr, "weft_pool_create: %s\n", strerror(err));
        return 1;
    }
    size_t eff = grain ? grain : n / (8 * (size_t)weft_pool_workers(pool));
    printf("sum of %zu uint64, grain %zu%s, %u workers\n", n, eff, grain ? "" : " (default)",
           weft_pool_workers(pool));
    for (int r = 0; r < reps; r++) {
        sum_arg s = {.a = a};
        atomic_init(&s.total, 0);
        double t0 = now_s();
        err = weft_for(pool, 0, n, grain, sum_piece, &s);
        double t1 = now_s();
        uint64_t got = atomic_load(&s.total);
        printf("  rep %d: %8.1f ms%s\n", r, (t1 - t0) * 1e3, err || got != want ? "  WRONG" : "");
        if (err || got != want)
            return 1;
    }
    weft_pool_destroy(pool);
    free(a);
    return 0;
}
