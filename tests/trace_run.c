/*
 * tests/trace_run.c — writes timeline traces of known workloads, for
 * tests/trace_check.py to read (CTest: trace_run, then trace_check; see the
 * block at the end of tests/CMakeLists.txt). Usage: trace_run DIR
 *
 * What it does, in this order (the $WEFT_TRACE stage first: a pool's file
 * name depends on how many pools the process created before it):
 *   - $WEFT_TRACE=DIR/env.json, then two pools ("envA", 2 workers; "envB",
 *     1 worker), a flow on each, both destroyed: their files must be
 *     DIR/env.json and DIR/env-1.json; weft_trace_start on a pool that
 *     $WEFT_TRACE already traces is EBUSY;
 *   - argument checks: weft_trace_start with a NULL pool or path, and
 *     weft_trace_stop with a NULL pool or on a pool that is not tracing,
 *     are EINVAL; a second weft_trace_start is EBUSY; a file that cannot be
 *     opened is reported by weft_trace_stop (ENOENT);
 *   - DIR/main.json: a 2-worker pool "tr" runs fib through weft_join, a
 *     task that opens a flow and spawns many leaves into it, a weft_for,
 *     then idles (from when both workers are seen parked), then one more
 *     flow wakes them;
 *   - DIR/small.json: the same pool traced again with $WEFT_TRACE_EVENTS=16,
 *     so that the buffers fill and events are dropped;
 *   - DIR/odd.json: a 1-worker pool whose name has a quote and a backslash
 *     (the file must still be JSON, the name intact) runs a chain of
 *     CHAIN_DEPTH nested joins (every span kept, nested, none cut short);
 *   - DIR/mid.json: a 1-worker pool traced from while a task runs that
 *     opened a flow before the start, then opens, fills and closes
 *     another and fills and closes the first (its spans nest inside the
 *     one span "(begun before the trace)");
 *   - DIR/expect.json: what the checker should find (span counts, thread
 *     names as the kernel has them, the idle window in trace time).
 *
 * Task functions are global (not static) and the program is linked with
 * -rdynamic (ENABLE_EXPORTS), so the trace names the tasks by symbol.
 * Built with WEFT_OBSERVE=OFF, weft_trace_start says ENOTSUP: the program
 * then writes DIR/SKIP and exits with 77 (skipped).
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

enum { FIB_N = 18, LEAVES = 300, FOR_N = 4096, FOR_GRAIN = 256, SMALL_EVENTS = 16,
       CHAIN_DEPTH = 300 };

static const char *dir;

static void path_of(char *out, size_t n, const char *file)
{
    snprintf(out, n, "%s/%s", dir, file);
}

static void remove_file(const char *file)
{
    char p[4096];
    path_of(p, sizeof p, file);
    if (unlink(p) != 0)
        CHECK(errno == ENOENT);
}

static long monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* ---- tasks (global: the trace names them by their dynamic symbol) ------ */

static atomic_long leaf_runs;
static atomic_uint leaf_sink;

int trace_leaf(void *p)
{
    (void)p;
    /* A little work, so that a thief has time to find some. */
    unsigned x = 1;
    for (unsigned i = 0; i < 2000; i++)
        x += i ^ (x >> 3);
    atomic_fetch_add_explicit(&leaf_sink, x, memory_order_relaxed);
    atomic_fetch_add_explicit(&leaf_runs, 1, memory_order_relaxed);
    return 0;
}

int trace_burst(void *p)
{
    int n = (int)(intptr_t)p;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    for (int i = 0; i < n; i++)
        CHECK_EQ(weft_spawn(&f, trace_leaf, NULL), 0);
    return weft_flow_close(&f);
}

int trace_fib(void *p)
{
    int n = *(int *)p;
    if (n < 2)
        return 0;
    int a = n - 1, b = n - 2;
    return weft_join(trace_fib, &a, trace_fib, &b);
}

static int chain_leaf(void *p)
{
    (void)p;
    return 0;
}

/* A join whose offered half is the chain one level down: CHAIN_DEPTH
 * nested spans on one worker. */
int trace_chain(void *p)
{
    long n = (long)(intptr_t)p;
    if (n == 0)
        return 0;
    return weft_join(trace_chain, (void *)(intptr_t)(n - 1), chain_leaf, NULL);
}

static long fib_joins(int n)
{
    return n < 2 ? 0 : 1 + fib_joins(n - 1) + fib_joins(n - 2);
}

static atomic_ulong for_sum;

static void trace_range(size_t b, size_t e, void *arg)
{
    (void)arg;
    unsigned long s = 0;
    for (size_t i = b; i < e; i++)
        s += i;
    atomic_fetch_add_explicit(&for_sum, s, memory_order_relaxed);
}

int trace_for_root(void *p)
{
    (void)p;
    return weft_for(NULL, 0, FOR_N, FOR_GRAIN, trace_range, NULL);
}

/* A task that opens a flow, then waits for the trace to start, then
 * spawns into a second flow and into the first, and closes both: a trace
 * that starts while it runs (mid.json). */
static atomic_int mid_state; /* 1: the task runs; 2: tracing */

int trace_mid(void *p)
{
    (void)p;
    weft_flow outer, inner;
    CHECK_EQ(weft_flow_open(&outer, NULL), 0);
    atomic_store(&mid_state, 1);
    while (atomic_load(&mid_state) != 2)
        sleep_us(1000);
    CHECK_EQ(weft_flow_open(&inner, NULL), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(weft_spawn(&inner, trace_leaf, NULL), 0);
    CHECK_EQ(weft_flow_close(&inner), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(weft_spawn(&outer, trace_leaf, NULL), 0);
    return weft_flow_close(&outer);
}

/* Runs fn(arg) as a task of pool, from this (non-worker) thread. */
static void run_root(weft_pool *pool, weft_fn fn, void *arg)
{
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    CHECK_EQ(weft_spawn(&f, fn, arg), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
}

/* ---- worker names, as the kernel has them --------------------------------- */

static char names[2][16];

static void on_start(weft_pool *pool, unsigned w, void *arg)
{
    (void)pool, (void)arg;
    if (w < 2)
        CHECK_EQ(pthread_getname_np(pthread_self(), names[w], sizeof names[w]), 0);
}

/* --------------------------------------------------------------------------- */

static void stage_env(void)
{
    STAGE("$WEFT_TRACE with two pools");
    char path[4096];
    path_of(path, sizeof path, "env.json");
    CHECK_EQ(setenv("WEFT_TRACE", path, 1), 0);
    weft_pool *a, *b;
    weft_pool_config ca = {.workers = 2, .name = "envA"}, cb = {.workers = 1, .name = "envB"};
    CHECK_EQ(weft_pool_create(&a, &ca), 0);
    CHECK_EQ(weft_pool_create(&b, &cb), 0);
    /* Nothing else may see it: later pools are traced only when asked. */
    CHECK_EQ(unsetenv("WEFT_TRACE"), 0);
    char other[4096];
    path_of(other, sizeof other, "unused.json");
    int r = weft_trace_start(a, other);
    if (r == ENOTSUP) {
        /* WEFT_OBSERVE=OFF: no traces at all. */
        CHECK_EQ(weft_pool_destroy(a), 0);
        CHECK_EQ(weft_pool_destroy(b), 0);
        path_of(path, sizeof path, "SKIP");
        FILE *f = fopen(path, "w");
        CHECK(f != NULL);
        fprintf(f, "weft_trace_start says ENOTSUP: the library was built with WEFT_OBSERVE=OFF\n");
        CHECK_EQ(fclose(f), 0);
        printf("skipped: the library was built without tracing (WEFT_OBSERVE=OFF)\n");
        exit(77);
    }
    CHECK_EQ(r, EBUSY); /* $WEFT_TRACE started it already */
    run_root(a, trace_burst, (void *)(intptr_t)50);
    run_root(b, trace_burst, (void *)(intptr_t)50);
    CHECK_EQ(weft_pool_destroy(a), 0); /* writes env.json */
    CHECK_EQ(weft_pool_destroy(b), 0); /* writes env-1.json */
    path_of(path, sizeof path, "env.json");
    CHECK(access(path, R_OK) == 0);
    path_of(path, sizeof path, "env-1.json");
    CHECK(access(path, R_OK) == 0);
}

int main(int argc, char **argv)
{
    watchdog_start(120);
    if (argc > 2) {
        fprintf(stderr, "usage: %s [DIR]\n", argv[0]);
        return 2;
    }
    dir = argc == 2 ? argv[1] : "trace_out";
    if (mkdir(dir, 0777) != 0)
        CHECK(errno == EEXIST);
    const char *outputs[] = {"SKIP",       "env.json",    "env-1.json",  "main.json",
                             "small.json", "expect.json", "unused.json", "mid.json"};
    for (size_t i = 0; i < sizeof outputs / sizeof *outputs; i++)
        remove_file(outputs[i]);
    CHECK_EQ(unsetenv("WEFT_TRACE_EVENTS"), 0);

    stage_env();

    STAGE("arguments");
    weft_pool *p;
    weft_pool_config cfg = {.workers = 2, .name = "tr", .on_worker_start = on_start};
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    char main_path[4096], small_path[4096], bad_path[4096];
    path_of(main_path, sizeof main_path, "main.json");
    path_of(small_path, sizeof small_path, "small.json");
    path_of(bad_path, sizeof bad_path, "no-such-dir/x.json");
    CHECK_EQ(weft_trace_start(NULL, main_path), EINVAL);
    CHECK_EQ(weft_trace_start(p, NULL), EINVAL);
    CHECK_EQ(weft_trace_stop(NULL), EINVAL);
    CHECK_EQ(weft_trace_stop(p), EINVAL); /* not tracing */
    /* A file that cannot be written: stop says why (and the trace ends). */
    CHECK_EQ(weft_trace_start(p, bad_path), 0);
    run_root(p, trace_leaf, NULL);
    CHECK_EQ(weft_trace_stop(p), ENOENT);
    CHECK_EQ(weft_trace_stop(p), EINVAL);

    STAGE("main trace");
    long t_before = monotonic_ns();
    CHECK_EQ(weft_trace_start(p, main_path), 0);
    long t_after = monotonic_ns();
    CHECK_EQ(weft_trace_start(p, main_path), EBUSY);
    CHECK_EQ(weft_trace_start(p, small_path), EBUSY);
    int n = FIB_N;
    run_root(p, trace_fib, &n);
    run_root(p, trace_burst, (void *)(intptr_t)LEAVES);
    run_root(p, trace_for_root, NULL);
    CHECK_EQ(atomic_load(&for_sum), (unsigned long)FOR_N * (FOR_N - 1) / 2);
    /* Idle: both workers park. On a loaded machine their idle rounds can
     * outlast any fixed sleep, so the window starts once both are seen
     * blocked (where /proc names no thread, after 200 ms). */
    if (!wait_threads_parked("tr-", 60))
        sleep_us(200000);
    long idle0 = monotonic_ns();
    sleep_us(100000);
    long idle1 = monotonic_ns();
    run_root(p, trace_burst, (void *)(intptr_t)LEAVES);
    CHECK_EQ(weft_trace_stop(p), 0);
    CHECK_EQ(weft_trace_stop(p), EINVAL);
    CHECK_EQ(atomic_load(&leaf_runs), 1 + 2 * LEAVES + 100);

    STAGE("small buffers");
    CHECK_EQ(setenv("WEFT_TRACE_EVENTS", "16", 1), 0);
    CHECK_EQ(weft_trace_start(p, small_path), 0);
    CHECK_EQ(unsetenv("WEFT_TRACE_EVENTS"), 0);
    n = 15;
    run_root(p, trace_fib, &n);
    run_root(p, trace_burst, (void *)(intptr_t)LEAVES);
    CHECK_EQ(weft_trace_stop(p), 0);
    CHECK_EQ(weft_pool_destroy(p), 0);

    STAGE("an odd name, deep nesting");
    char odd_path[4096];
    path_of(odd_path, sizeof odd_path, "odd.json");
    weft_pool_config odd = {.workers = 1, .name = "q\"b\\c"};
    CHECK_EQ(weft_pool_create(&p, &odd), 0);
    CHECK_EQ(weft_trace_start(p, odd_path), 0);
    run_root(p, trace_chain, (void *)(intptr_t)CHAIN_DEPTH);
    CHECK_EQ(weft_trace_stop(p), 0);
    CHECK_EQ(weft_pool_destroy(p), 0);

    STAGE("a trace started while a task runs");
    char mid_path[4096];
    path_of(mid_path, sizeof mid_path, "mid.json");
    weft_pool_config one = {.workers = 1, .name = "mid"};
    CHECK_EQ(weft_pool_create(&p, &one), 0);
    weft_flow mf;
    CHECK_EQ(weft_flow_open(&mf, p), 0);
    CHECK_EQ(weft_spawn(&mf, trace_mid, NULL), 0);
    while (atomic_load(&mid_state) != 1)
        sleep_us(1000);
    CHECK_EQ(weft_trace_start(p, mid_path), 0);
    atomic_store(&mid_state, 2);
    CHECK_EQ(weft_flow_close(&mf), 0);
    CHECK_EQ(weft_trace_stop(p), 0);
    CHECK_EQ(weft_pool_destroy(p), 0);

    STAGE("expectations");
    char path[4096];
    path_of(path, sizeof path, "expect.json");
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    /* The inner window of the idle period in trace time (µs from the
     * trace's start, which lies between t_before and t_after). */
    double idle_from_us = (double)(idle0 - t_before) / 1e3;
    double idle_to_us = (double)(idle1 - t_after) / 1e3;
    fprintf(f,
            "{\n"
            " \"main\": {\"pool\": \"tr\", \"workers\": 2, \"thread_names\": [\"%s\", \"%s\"],\n"
            "          \"spans\": {\"trace_fib\": %ld, \"trace_burst\": 2, \"trace_leaf\": %d,\n"
            "                    \"trace_for_root\": 1},\n"
            "          \"task_spans\": %ld, \"flow_spans\": 2, \"inject\": 4,\n"
            "          \"idle_us\": [%.3f, %.3f], \"buffer_events\": 65536},\n"
            " \"small\": {\"pool\": \"tr\", \"workers\": 2, \"buffer_events\": %d},\n"
            " \"odd\": {\"pool\": \"q\\\"b\\\\c\", \"workers\": 1, \"spans\": {\"trace_chain\": %d}},\n"
            " \"mid\": {\"pool\": \"mid\", \"workers\": 1, \"flow_spans\": 1,\n"
            "         \"spans\": {\"trace_leaf\": 20, \"(begun before the trace)\": 1}},\n"
            " \"env\": {\"pool\": \"envA\", \"workers\": 2, \"spans\": {\"trace_burst\": 1, \"trace_leaf\": 50}},\n"
            " \"env-1\": {\"pool\": \"envB\", \"workers\": 1, \"spans\": {\"trace_burst\": 1, \"trace_leaf\": 50}}\n"
            "}\n",
            names[0], names[1], fib_joins(FIB_N) + 1, 2 * LEAVES,
            /* fib spans, bursts, leaves, the for root, and the for's
             * offered halves (one per split: FOR_N / FOR_GRAIN - 1) */
            fib_joins(FIB_N) + 1 + 2 + 2 * LEAVES + 1 + (FOR_N / FOR_GRAIN - 1),
            idle_from_us, idle_to_us, SMALL_EVENTS, CHAIN_DEPTH + 1);
    CHECK_EQ(fclose(f), 0);
    printf("traces written to %s\n", dir);
    return 0;
}
