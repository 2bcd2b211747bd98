/*
 * Counters and worker hooks (weft_pool_stats, on_worker_start/stop):
 *   - argument checks: EINVAL for NULL pool or out and a worker out of
 *     range;
 *   - after N spawns into closed flows, the pool's sum has tasks_spawned
 *     == tasks_run == N (external spawns count where a worker took them
 *     from the injection queue: injected == N); tasks from a task count
 *     on the spawner's worker; with a canceled flow, tasks_spawned ==
 *     tasks_run + tasks_skipped and some were skipped;
 *   - weft_join counts its offered half: J joins -> tasks_run grows by J;
 *   - steals happen only with more than one worker (0 on a 1-worker pool,
 *     nonzero on 2 workers running a fork-join that needs them);
 *     steal_attempts >= steals;
 *   - parks and parked_ns grow while a pool idles (idling and spawning
 *     again until a park is counted: no fixed sleep outlasts the idle
 *     rounds on a loaded machine); max_deque reaches at
 *     least the depth of a spawn burst on one worker;
 *   - the per-worker values add up to the sum (but wakeups, whose sum also
 *     counts wake-ups sent by other threads, and max_deque, whose sum is
 *     the maximum);
 *   - on_worker_start and on_worker_stop run once on each worker thread,
 *     with its index and the user pointer, start before any task, stop at
 *     destroy; the sum read in on_worker_stop (as the $WEFT_STATS report
 *     at destroy reads it) has the wakeups of the idle pool before the
 *     destroy, not the destroy's own.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <string.h>

static int leaf(void *p)
{
    (void)p;
    return 0;
}

static void stats(weft_pool *p, int w, weft_stats *s)
{
    CHECK_EQ(weft_pool_stats(p, w, s), 0);
}

static void spawn_external(weft_pool *p, int n)
{
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (int i = 0; i < n; i++)
        CHECK_EQ(weft_spawn(&f, leaf, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
}

static int burst(void *p)
{
    int n = (int)(intptr_t)p;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    for (int i = 0; i < n; i++)
        CHECK_EQ(weft_spawn(&f, leaf, NULL), 0);
    return weft_flow_close(&f);
}

static int fib(void *p)
{
    int n = *(int *)p;
    if (n < 2)
        return 0;
    int a = n - 1, b = n - 2;
    return weft_join(fib, &a, fib, &b);
}

/* Joins in fib(n): one per call with n >= 2. */
static long fib_joins(int n)
{
    return n < 2 ? 0 : 1 + fib_joins(n - 1) + fib_joins(n - 2);
}

static int slow_leaf(void *p)
{
    (void)p;
    double end = now_s() + 0.002;
    while (now_s() < end)
        ;
    return 0;
}

static int slow_burst(void *p)
{
    (void)p;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    for (int i = 0; i < 20; i++)
        CHECK_EQ(weft_spawn(&f, slow_leaf, NULL), 0);
    return weft_flow_close(&f);
}

static int cancel_first(void *p)
{
    weft_flow *f = p;
    weft_flow_cancel(f);
    return 0;
}

typedef struct hooks {
    atomic_int started[4], stopped[4], bad;
    atomic_int tasks_before_start;
    uint64_t   wakeups_in_stop[4]; /* the pool's sum, read by on_stop */
} hooks;

static _Thread_local int hook_started_here;

static void on_start(weft_pool *p, unsigned w, void *arg)
{
    hooks *h = arg;
    if (w >= 4 || weft_worker_index() != (int)w || weft_pool_workers(p) != 2)
        atomic_store(&h->bad, 1);
    else
        atomic_fetch_add(&h->started[w], 1);
    hook_started_here = 1;
}

static void on_stop(weft_pool *p, unsigned w, void *arg)
{
    hooks *h = arg;
    weft_stats s;
    if (w >= 4 || !hook_started_here || weft_pool_stats(p, -1, &s) != 0) {
        atomic_store(&h->bad, 1);
    } else {
        h->wakeups_in_stop[w] = s.wakeups;
        atomic_fetch_add(&h->stopped[w], 1);
    }
}

static int check_started(void *p)
{
    hooks *h = p;
    if (!hook_started_here)
        atomic_fetch_add(&h->tasks_before_start, 1);
    return 0;
}

int main(void)
{
    watchdog_start(120);
    weft_stats s, w0, w1;
    weft_pool *one, *two;
    weft_pool_config c1 = {.workers = 1}, c2 = {.workers = 2};
    CHECK_EQ(weft_pool_create(&one, &c1), 0);
    CHECK_EQ(weft_pool_create(&two, &c2), 0);

    STAGE("arguments");
    CHECK_EQ(weft_pool_stats(NULL, -1, &s), EINVAL);
    CHECK_EQ(weft_pool_stats(one, -1, NULL), EINVAL);
    CHECK_EQ(weft_pool_stats(one, 1, &s), EINVAL);
    CHECK_EQ(weft_pool_stats(one, -2, &s), EINVAL);
    CHECK_EQ(weft_pool_stats(two, 2, &s), EINVAL);

    STAGE("external spawns");
    stats(one, -1, &s);
    CHECK_EQ(s.tasks_run, 0);
    spawn_external(one, 1000);
    stats(one, -1, &s);
    CHECK_EQ(s.tasks_run, 1000);
    CHECK_EQ(s.tasks_spawned, 1000);
    CHECK_EQ(s.injected, 1000);
    CHECK_EQ(s.tasks_skipped, 0);

    STAGE("spawns from a task");
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, one), 0);
    CHECK_EQ(weft_spawn(&f, burst, (void *)(intptr_t)500), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    stats(one, -1, &s);
    CHECK_EQ(s.tasks_run, 1000 + 1 + 500);
    CHECK_EQ(s.tasks_spawned, 1000 + 1 + 500);
    CHECK_EQ(s.injected, 1001);
    CHECK(s.max_deque >= 500);
    CHECK_EQ(s.steals, 0); /* one worker: nobody to steal from */

    STAGE("canceled");
    CHECK_EQ(weft_flow_open(&f, one), 0);
    CHECK_EQ(weft_spawn(&f, cancel_first, &f), 0);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(weft_spawn(&f, leaf, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), ECANCELED);
    stats(one, -1, &s);
    CHECK_EQ(s.tasks_spawned, s.tasks_run + s.tasks_skipped);
    CHECK(s.tasks_skipped >= 1);

    STAGE("joins");
    weft_stats before;
    stats(one, -1, &before);
    int n = 18;
    CHECK_EQ(weft_flow_open(&f, one), 0);
    CHECK_EQ(weft_spawn(&f, fib, &n), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    stats(one, -1, &s);
    CHECK_EQ(s.tasks_run - before.tasks_run, 1 + fib_joins(n));
    CHECK_EQ(s.tasks_spawned - before.tasks_spawned, 1 + fib_joins(n));
    CHECK_EQ(s.steals, 0);

    STAGE("steals on two workers");
    for (int round = 0; round < 50; round++) {
        CHECK_EQ(weft_flow_open(&f, two), 0);
        CHECK_EQ(weft_spawn(&f, burst, (void *)(intptr_t)200), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
        stats(two, -1, &s);
        if (s.steals > 0)
            break;
    }
    /* Slow tasks spawned by a task: the other worker must steal some. */
    CHECK_EQ(weft_flow_open(&f, two), 0);
    CHECK_EQ(weft_spawn(&f, slow_burst, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    stats(two, -1, &s);
    CHECK(s.steals > 0);
    CHECK(s.steal_attempts >= s.steals);
    CHECK(s.publishes > 0);
    stats(two, 0, &w0);
    stats(two, 1, &w1);
    CHECK_EQ(w0.tasks_run + w1.tasks_run, s.tasks_run);
    CHECK_EQ(w0.tasks_spawned + w1.tasks_spawned, s.tasks_spawned);
    CHECK_EQ(w0.steals + w1.steals, s.steals);
    CHECK_EQ(w0.parks + w1.parks, s.parks);
    CHECK(s.max_deque == (w0.max_deque > w1.max_deque ? w0.max_deque : w1.max_deque));
    CHECK(s.wakeups >= w0.wakeups + w1.wakeups);
    CHECK_EQ(s.tasks_spawned, s.tasks_run + s.tasks_skipped);

    STAGE("parks while idle");
    /* A park is counted when the parked worker wakes. One spawn after an
     * idle moment wakes a parked worker, but only if one has parked by
     * then: a worker still in its idle rounds takes the spawn itself, and
     * on a loaded machine (two ctest jobs, a TSan build) its 80 yields can
     * outlast any fixed sleep. So idle and spawn again until a park is
     * counted; a pool that never parks fails after 50 tries. */
    stats(two, -1, &before);
    for (int round = 0; round < 50; round++) {
        sleep_us(100000);
        spawn_external(two, 1); /* wakes one, if one sleeps */
        sleep_us(10000);
        stats(two, -1, &s);
        if (s.parks > before.parks)
            break;
    }
    CHECK(s.parks > before.parks);
    CHECK(s.parked_ns > before.parked_ns);
    CHECK(s.wakeups > before.wakeups);
    CHECK(s.spin_ns >= before.spin_ns);

    CHECK_EQ(weft_pool_destroy(two), 0);
    CHECK_EQ(weft_pool_destroy(one), 0);

    STAGE("worker hooks");
    static hooks h;
    weft_pool_config ch = {.workers = 2, .on_worker_start = on_start, .on_worker_stop = on_stop,
                           .worker_arg = &h};
    weft_pool *hp;
    CHECK_EQ(weft_pool_create(&hp, &ch), 0);
    CHECK_EQ(weft_flow_open(&f, hp), 0);
    for (int i = 0; i < 200; i++)
        CHECK_EQ(weft_spawn(&f, check_started, &h), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    sleep_us(100000); /* idle: no wake-up is sent to the pool meanwhile */
    weft_stats idle;
    stats(hp, -1, &idle);
    CHECK_EQ(weft_pool_destroy(hp), 0);
    CHECK_EQ(atomic_load(&h.bad), 0);
    /* The destroy's own wake-up of its workers is not one of the pool's
     * (the $WEFT_STATS report at destroy counted it). */
    for (int i = 0; i < 2; i++)
        CHECK_EQ(h.wakeups_in_stop[i], idle.wakeups);
    CHECK_EQ(atomic_load(&h.tasks_before_start), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(atomic_load(&h.started[i]), 1);
        CHECK_EQ(atomic_load(&h.stopped[i]), 1);
    }
    printf("sched_stats: counters and hooks ok\n");
    return 0;
}
