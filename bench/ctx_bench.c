/*
 * bench/ctx_bench.c — what context snapshots cost (issue 4's bar).
 *
 * A plain C program (no google-benchmark), linked with the weft library:
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -I include bench/ctx_bench.c libweft.a \
 *      -lurcu -lurcu-cds -lck -lpthread -o ctx_bench
 *   ./ctx_bench [n=30] [rounds=7]
 *
 *  1. fib(n), spawn-heavy: a flow per call, both children spawned, no
 *     cutoff; on a pool with snapshots vs a WEFT_POOL_NO_CTX pool, 1 and 2
 *     workers; rounds interleaved (ctx, no-ctx, ctx+vars, no-ctx+vars, ...
 *     in every round) so that drift in the machine hits all alike; min and
 *     median per configuration and the ctx / no-ctx ratios. The bar: at most
 *     1.10x. The "+3 vars" variant has the root task set three variables
 *     before it starts fib, so every snapshot is a non-empty context (the
 *     root's flow pins it once; every spawn below borrows it).
 *  2. weft_ctx_get with 1, 8 and 64 variables set, ns per read, beside a
 *     plain _Thread_local read (inline, forced to reload each time) and the
 *     same read through a non-inlined call; inside a task on a worker (the
 *     task's borrowed snapshot) and on a plain thread (its own context).
 *  3. weft_ctx_set on a plain thread with 1, 4 and 16 variables set, ns per
 *     set, all of them plain or all with lifetime hooks
 *     (weft_ctx_var_create_ops; the hooks are one atomic add each): a set
 *     copies the node and retains every hooked value in it, the freed node
 *     releases them. And fib with three hooked variables set, which should
 *     cost what the "+3 vars" row costs: spawns retain nothing.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "weft.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define V(x) ((void *)(uintptr_t)(x))

__attribute__((noreturn)) static void die(const char *what, int err)
{
    fprintf(stderr, "ctx_bench: %s: %s\n", what, strerror(err));
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double minimum(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

/* ---- fib ---------------------------------------------------------------- */

typedef struct fib_arg {
    int      n;
    uint64_t r;
} fib_arg;

static int fib_task(void *p)
{
    fib_arg *a = p;
    if (a->n < 2) {
        a->r = (uint64_t)a->n;
        return 0;
    }
    fib_arg x = {a->n - 1, 0}, y = {a->n - 2, 0};
    weft_flow f;
    int rc = weft_flow_open(&f, NULL);
    if (rc)
        return rc;
    int s1 = weft_spawn(&f, fib_task, &x);
    int s2 = weft_spawn(&f, fib_task, &y);
    rc = weft_flow_close(&f);
    a->r = x.r + y.r;
    return rc ? rc : s1 ? s1 : s2;
}

static weft_ctx_var *vars[64];
static weft_ctx_var *hvars[16]; /* with hooks */
static bool fib_hooked;          /* fib_root_with_vars sets hvars instead */

/* The root sets three variables first: non-empty snapshots everywhere. */
static int fib_root_with_vars(void *p)
{
    for (int i = 0; i < 3; i++) {
        int err = weft_ctx_set(fib_hooked ? hvars[i] : vars[i], V(0x100 + i));
        if (err)
            return err;
    }
    return fib_task(p);
}

static uint64_t fib_serial(int n)
{
    uint64_t a = 0, b = 1;
    for (int i = 0; i < n; i++) {
        uint64_t t = a + b;
        a = b;
        b = t;
    }
    return a;
}

static double time_fib(weft_pool *p, int n, bool with_vars)
{
    fib_arg a = {n, 0};
    double t0 = now_s();
    weft_flow f;
    int err = weft_flow_open(&f, p);
    if (err)
        die("weft_flow_open", err);
    if ((err = weft_spawn(&f, with_vars ? fib_root_with_vars : fib_task, &a)))
        die("weft_spawn", err);
    if ((err = weft_flow_close(&f)))
        die("fib", err);
    double t = now_s() - t0;
    if (a.r != fib_serial(n)) {
        fprintf(stderr, "ctx_bench: fib(%d) = %llu, wrong\n", n, (unsigned long long)a.r);
        exit(1);
    }
    return t;
}

enum { MAXROUNDS = 101 };

static void bench_fib(int n, int rounds)
{
    static const unsigned workers[] = {1, 2};
    printf("fib(%d), a flow per call, both children spawned, no cutoff; %d rounds interleaved\n", n,
           rounds);
    printf("%-8s %-10s %10s %10s %10s %10s %12s %12s\n", "workers", "variant", "ctx min",
           "ctx med", "noctx min", "noctx med", "ratio(min)", "ratio(med)");
    for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++) {
        weft_pool *pc, *pn;
        weft_pool_config cc = {.workers = workers[w], .name = "ctx"},
                         cn = {.workers = workers[w], .flags = WEFT_POOL_NO_CTX, .name = "noctx"};
        int err;
        if ((err = weft_pool_create(&pc, &cc)) || (err = weft_pool_create(&pn, &cn)))
            die("weft_pool_create", err);
        /* warm-up: deques grown, stacks touched */
        time_fib(pc, n, false);
        time_fib(pn, n, false);
        static double t[4][MAXROUNDS];
        for (int r = 0; r < rounds; r++) {
            /* alternate the order within a round as well */
            if (r % 2 == 0) {
                t[0][r] = time_fib(pc, n, false);
                t[1][r] = time_fib(pn, n, false);
                t[2][r] = time_fib(pc, n, true);
                t[3][r] = time_fib(pn, n, true);
            } else {
                t[3][r] = time_fib(pn, n, true);
                t[2][r] = time_fib(pc, n, true);
                t[1][r] = time_fib(pn, n, false);
                t[0][r] = time_fib(pc, n, false);
            }
        }
        for (int v = 0; v < 2; v++) {
            double cmin = minimum(t[2 * v], rounds), nmin = minimum(t[2 * v + 1], rounds);
            double cmed = median(t[2 * v], rounds), nmed = median(t[2 * v + 1], rounds);
            printf("%-8u %-10s %8.1fms %8.1fms %8.1fms %8.1fms %11.3fx %11.3fx\n", workers[w],
                   v ? "+3 vars" : "empty", cmin * 1e3, cmed * 1e3, nmin * 1e3, nmed * 1e3,
                   cmin / nmin, cmed / nmed);
        }
        if ((err = weft_pool_destroy(pc)) || (err = weft_pool_destroy(pn)))
            die("weft_pool_destroy", err);
    }
}

/* ---- weft_ctx_get -------------------------------------------------------- */

static _Thread_local void *tl_value = V(0x77);

__attribute__((noinline)) static void *tl_read_call(void)
{
    __asm__ volatile("" ::: "memory");
    return tl_value;
}

enum { READS = 20 * 1000 * 1000, REPS = 5 };

struct get_result {
    double get_ns[3]; /* 1, 8, 64 variables set */
    double tls_ns, tls_call_ns;
};

static const int nset[3] = {1, 8, 64};

/* Reads in the current context: the variables 0..k-1 have been set. */
static double time_gets(int k)
{
    double best = 1e9;
    for (int rep = 0; rep < REPS; rep++) {
        uintptr_t sum = 0;
        double t0 = now_s();
        for (int i = 0; i < READS; i++)
            sum += (uintptr_t)weft_ctx_get(vars[i & (k - 1)]);
        double t = (now_s() - t0) / READS * 1e9;
        if (sum == 42)
            puts(""); /* keep sum alive */
        best = t < best ? t : best;
    }
    return best;
}

static double time_tls(bool call)
{
    double best = 1e9;
    for (int rep = 0; rep < REPS; rep++) {
        uintptr_t sum = 0;
        double t0 = now_s();
        if (call) {
            for (int i = 0; i < READS; i++)
                sum += (uintptr_t)tl_read_call();
        } else {
            for (int i = 0; i < READS; i++) {
                __asm__ volatile("" ::: "memory"); /* reload every time */
                sum += (uintptr_t)tl_value;
            }
        }
        double t = (now_s() - t0) / READS * 1e9;
        if (sum == 42)
            puts("");
        best = t < best ? t : best;
    }
    return best;
}

struct k_arg {
    int    k;
    double ns;
};

/* In a task: set k variables in a context of their own, then spawn a child
 * that reads them in its borrowed snapshot (the common case on a worker). */
static int read_child(void *p)
{
    struct k_arg *a = p;
    a->ns = time_gets(a->k);
    return 0;
}

static int set_then_read(void *p)
{
    struct k_arg *a = p;
    for (int i = 0; i < a->k; i++) {
        int err = weft_ctx_set(vars[i], V(0x1000 + i));
        if (err)
            return err;
    }
    weft_flow f;
    int err = weft_flow_open(&f, NULL);
    if (err)
        return err;
    weft_spawn(&f, read_child, a);
    return weft_flow_close(&f);
}

static int tls_in_task(void *p)
{
    struct get_result *r = p;
    r->tls_ns = time_tls(false);
    r->tls_call_ns = time_tls(true);
    return 0;
}

static void bench_get(void)
{
    struct get_result task = {{0}, 0, 0}, thread = {{0}, 0, 0};
    weft_pool *p;
    weft_pool_config cfg = {.workers = 1, .name = "get"};
    int err = weft_pool_create(&p, &cfg);
    if (err)
        die("weft_pool_create", err);
    for (int j = 0; j < 3; j++) {
        struct k_arg a = {nset[j], 0};
        weft_flow f;
        if ((err = weft_flow_open(&f, p)))
            die("weft_flow_open", err);
        weft_spawn(&f, set_then_read, &a);
        if ((err = weft_flow_close(&f)))
            die("set_then_read", err);
        task.get_ns[j] = a.ns;
    }
    weft_flow f;
    if ((err = weft_flow_open(&f, p)))
        die("weft_flow_open", err);
    weft_spawn(&f, tls_in_task, &task);
    if ((err = weft_flow_close(&f)))
        die("tls_in_task", err);
    if ((err = weft_pool_destroy(p)))
        die("weft_pool_destroy", err);

    /* On this plain thread, in its own context. */
    for (int j = 0; j < 3; j++) {
        for (int i = 0; i < nset[j]; i++)
            if ((err = weft_ctx_set(vars[i], V(0x2000 + i))))
                die("weft_ctx_set", err);
        thread.get_ns[j] = time_gets(nset[j]);
    }
    thread.tls_ns = time_tls(false);
    thread.tls_call_ns = time_tls(true);

    printf("\nweft_ctx_get, ns per read (best of %d x %d reads, cycling over the set variables)\n",
           REPS, READS);
    printf("%-22s %8s %8s %8s %12s %16s\n", "where", "1 var", "8 vars", "64 vars",
           "TLS inline", "TLS via a call");
    const struct get_result *rs[2] = {&task, &thread};
    const char *names[2] = {"task on a worker", "plain thread"};
    for (int i = 0; i < 2; i++)
        printf("%-22s %8.2f %8.2f %8.2f %12.2f %16.2f\n", names[i], rs[i]->get_ns[0],
               rs[i]->get_ns[1], rs[i]->get_ns[2], rs[i]->tls_ns, rs[i]->tls_call_ns);
}

/* ---- weft_ctx_set -------------------------------------------------------- */

static atomic_long hook_count;

static void count_hook(void *value)
{
    (void)value;
    atomic_fetch_add_explicit(&hook_count, 1, memory_order_relaxed);
}

enum { SETS = 2 * 1000 * 1000 };

struct set_arg {
    weft_ctx_var **vs;
    int            k;
    double         ns;
};

/* In a scope of its own (weft_ctx_run): k variables set, then the first
 * one set over and over to alternating values. */
static int time_sets(void *p)
{
    struct set_arg *a = p;
    for (int i = 0; i < a->k; i++)
        if (weft_ctx_set(a->vs[i], V(0x3000 + i)))
            die("weft_ctx_set", ENOMEM);
    double best = 1e9;
    for (int rep = 0; rep < REPS; rep++) {
        double t0 = now_s();
        for (int i = 0; i < SETS; i++)
            if (weft_ctx_set(a->vs[0], V(0x4000 + (i & 1))))
                die("weft_ctx_set", ENOMEM);
        double t = (now_s() - t0) / SETS * 1e9;
        best = t < best ? t : best;
    }
    a->ns = best;
    return 0;
}

static void bench_set(int n, int rounds)
{
    static const int ks[3] = {1, 4, 16};
    double ns[2][3];
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 3; j++) {
            struct set_arg a = {h ? hvars : vars, ks[j], 0};
            weft_ctx *c = weft_ctx_capture();
            if (!c)
                die("weft_ctx_capture", ENOMEM);
            weft_ctx_run(c, time_sets, &a);
            weft_ctx_release(c);
            ns[h][j] = a.ns;
        }
    printf("\nweft_ctx_set on a plain thread, ns per set (best of %d x %d sets)\n", REPS, SETS);
    printf("%-22s %8s %8s %8s\n", "variables", "1 set", "4 set", "16 set");
    printf("%-22s %8.2f %8.2f %8.2f\n", "plain", ns[0][0], ns[0][1], ns[0][2]);
    printf("%-22s %8.2f %8.2f %8.2f\n", "with hooks", ns[1][0], ns[1][1], ns[1][2]);
    printf("(hooks called: %ld)\n", atomic_load(&hook_count));

    /* fib with three hooked variables set: the same interleaving as
     * bench_fib, on 1 worker, "+3 vars" plain vs hooked. */
    weft_pool *p;
    weft_pool_config cfg = {.workers = 1, .name = "ctx"};
    int err = weft_pool_create(&p, &cfg);
    if (err)
        die("weft_pool_create", err);
    time_fib(p, n, true);
    static double t[2][MAXROUNDS];
    for (int r = 0; r < rounds; r++)
        for (int h = 0; h < 2; h++) {
            int which = r % 2 ? 1 - h : h;
            fib_hooked = which;
            t[which][r] = time_fib(p, n, true);
        }
    fib_hooked = false;
    printf("\nfib(%d), 1 worker, +3 vars: plain min %.1fms med %.1fms, hooked min %.1fms "
           "med %.1fms, ratio(min) %.3fx\n",
           n, minimum(t[0], rounds) * 1e3, median(t[0], rounds) * 1e3,
           minimum(t[1], rounds) * 1e3, median(t[1], rounds) * 1e3,
           minimum(t[1], rounds) / minimum(t[0], rounds));
    if ((err = weft_pool_destroy(p)))
        die("weft_pool_destroy", err);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 30;
    int rounds = argc > 2 ? atoi(argv[2]) : 7;
    if (n < 2 || n > 40 || rounds < 1 || rounds > MAXROUNDS) {
        fprintf(stderr, "usage: ctx_bench [n: 2..40] [rounds: 1..%d]\n", MAXROUNDS);
        return 2;
    }
    for (int i = 0; i < 64; i++) {
        int err = weft_ctx_var_create(&vars[i], "bench", NULL);
        if (err)
            die("weft_ctx_var_create", err);
    }
    weft_ctx_var_ops ops = {count_hook, count_hook};
    for (int i = 0; i < 16; i++) {
        int err = weft_ctx_var_create_ops(&hvars[i], "bench-hooked", NULL, &ops);
        if (err)
            die("weft_ctx_var_create_ops", err);
    }
    bench_fib(n, rounds);
    bench_get();
    bench_set(n, rounds);
    return 0;
}
