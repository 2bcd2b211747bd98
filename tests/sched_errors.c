/*
 * Errors and cancellation, exactly as in the contract:
 *   - the first nonzero return comes back from the close (a later failure,
 *     which can only happen after the first one canceled the flow, does not
 *     replace it); the flow's memory, reopened, starts clean;
 *   - the first failure cancels the flow: tasks queued behind it are skipped
 *     (their function never runs) and spawns after it are skipped (spawn
 *     returns 0), also spawns into the flow by its own running tasks; also
 *     in a task's flow, whose close runs the tasks itself (with and without
 *     context snapshots), whether the failure or cancel comes first, last
 *     or in the middle, or in a task another flow's task spawned into it;
 *   - weft_flow_cancel from outside while tasks poll weft_flow_canceled:
 *     every poller sees it, queued tasks are skipped, the close returns
 *     ECANCELED, or a task's failure if one fails after the cancel;
 *   - cancellation flows down into flows opened by the flow's tasks (also
 *     on another pool, and flows opened after the cancel), never up: a
 *     child flow's failure or cancel leaves its parent flow and the
 *     parent's other tasks alone;
 *   - under concurrency (cancels at random moments of nested flow trees,
 *     another thread canceling unrelated flows all along): a flow below a
 *     non-victim is never seen canceled, a flow below a victim always is
 *     once the cancel returned (also one opened afterwards);
 *   - weft_join's result rule: a's result if nonzero, else b's; both run.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <stdbool.h>

static atomic_long g_runs;

static int count_task(void *p)
{
    (void)p;
    atomic_fetch_add_explicit(&g_runs, 1, memory_order_relaxed);
    return 0;
}

static int ret_task(void *p)
{
    return (int)(intptr_t)p;
}

static weft_pool *new_pool(unsigned workers)
{
    weft_pool *p;
    weft_pool_config cfg = {.workers = workers, .name = "err"};
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    return p;
}

/* ---- the failure comes back from close ---------------------------------- */

static void test_failure_returned(weft_pool *pool)
{
    STAGE("a failure comes back from close");
    weft_flow f;
    for (int r = 0; r < 20; r++) {
        CHECK_EQ(weft_flow_open(&f, pool), 0);
        CHECK(!weft_flow_canceled(&f));
        for (int i = 0; i < 50; i++)
            CHECK_EQ(weft_spawn(&f, i == 25 + r ? ret_task : count_task, (void *)(intptr_t)42), 0);
        CHECK_EQ(weft_flow_close(&f), 42);
        /* The same memory, reopened: no stale error, no stale cancel. */
        atomic_store(&g_runs, 0);
        CHECK_EQ(weft_flow_open(&f, pool), 0);
        CHECK(!weft_flow_canceled(&f));
        for (int i = 0; i < 50; i++)
            CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK_EQ(atomic_load(&g_runs), 50);
    }
    /* Many failures: one of theirs, never 0 nor ECANCELED. */
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(weft_spawn(&f, ret_task, (void *)(intptr_t)(1000 + i)), 0);
    int e = weft_flow_close(&f);
    CHECK(e >= 1000 && e < 1100);
    /* A negative value is an error code of the caller's choosing too. */
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    CHECK_EQ(weft_spawn(&f, ret_task, (void *)(intptr_t)-7), 0);
    CHECK_EQ(weft_flow_close(&f), -7);
}

/* A fails with 11; B waits until A's failure has canceled the flow, then
 * fails with 22: the close returns the first, 11. */
static int b_after_cancel(void *p)
{
    (void)p;
    weft_flow *f = weft_current_flow();
    double end = now_s() + 30;
    while (!weft_flow_canceled(f))
        CHECK(now_s() < end);
    return 22;
}

static void test_first_failure_wins(weft_pool *pool)
{
    STAGE("the first failure wins");
    for (int r = 0; r < 20; r++) {
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, pool), 0);
        CHECK_EQ(weft_spawn(&f, b_after_cancel, NULL), 0);
        CHECK_EQ(weft_spawn(&f, ret_task, (void *)(intptr_t)11), 0);
        CHECK_EQ(weft_flow_close(&f), 11);
    }
}

/* ---- tasks queued behind a failure are skipped --------------------------- */

typedef struct blocker {
    atomic_int started;
    atomic_int release;
    int        ret;
    int        wait_cancel; /* also wait for the flow to be canceled */
    atomic_int saw_cancel;
} blocker;

static int blocker_task(void *p)
{
    blocker *b = p;
    atomic_fetch_add(&b->started, 1);
    CHECK(wait_flag(&b->release, 30));
    if (b->wait_cancel) {
        double end = now_s() + 30;
        while (!weft_flow_canceled(weft_current_flow()))
            CHECK(now_s() < end);
        atomic_store(&b->saw_cancel, 1);
    }
    return b->ret;
}

static void wait_started(atomic_int *started, int n)
{
    double end = now_s() + 30;
    while (atomic_load(started) < n)
        CHECK(now_s() < end);
}

static void test_skip_queued(void)
{
    STAGE("tasks queued behind a failure are skipped, 1 worker");
    weft_pool *one = new_pool(1);
    for (int r = 0; r < 10; r++) {
        blocker b = {0, 0, 9, 0, 0};
        atomic_store(&g_runs, 0);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, one), 0);
        CHECK_EQ(weft_spawn(&f, blocker_task, &b), 0);
        wait_started(&b.started, 1);
        /* The only worker is held: these wait in the queue. */
        for (int i = 0; i < 100; i++)
            CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
        atomic_store(&b.release, 1);
        CHECK_EQ(weft_flow_close(&f), 9);
        CHECK_EQ(atomic_load(&g_runs), 0);
    }
    CHECK_EQ(weft_pool_destroy(one), 0);

    STAGE("tasks queued behind a failure are skipped, 2 workers");
    weft_pool *two = new_pool(2);
    for (int r = 0; r < 10; r++) {
        /* Both workers held: one blocker fails, the other waits for the
         * cancel before it lets its worker go. */
        blocker b1 = {0, 0, 9, 0, 0}, b2 = {0, 0, 0, 1, 0};
        atomic_store(&g_runs, 0);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, two), 0);
        CHECK_EQ(weft_spawn(&f, blocker_task, &b1), 0);
        CHECK_EQ(weft_spawn(&f, blocker_task, &b2), 0);
        wait_started(&b1.started, 1);
        wait_started(&b2.started, 1);
        for (int i = 0; i < 100; i++)
            CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
        atomic_store(&b1.release, 1);
        atomic_store(&b2.release, 1);
        CHECK_EQ(weft_flow_close(&f), 9);
        CHECK_EQ(atomic_load(&g_runs), 0);
        CHECK_EQ(atomic_load(&b2.saw_cancel), 1);
    }
    CHECK_EQ(weft_pool_destroy(two), 0);
}

/* ---- spawns after the failure are skipped -------------------------------- */

static int spawn_after_cancel(void *p)
{
    long k = (long)(intptr_t)p;
    weft_flow *f = weft_current_flow();
    double end = now_s() + 30;
    while (!weft_flow_canceled(f))
        CHECK(now_s() < end);
    for (long i = 0; i < k; i++)
        CHECK_EQ(weft_spawn(f, count_task, NULL), 0);
    return 0;
}

static void test_skip_later_spawns(weft_pool *pool)
{
    STAGE("spawns after a failure are skipped");
    for (int r = 0; r < 10; r++) {
        atomic_store(&g_runs, 0);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, pool), 0);
        if (weft_pool_workers(pool) > 1)
            CHECK_EQ(weft_spawn(&f, spawn_after_cancel, (void *)(intptr_t)100), 0);
        CHECK_EQ(weft_spawn(&f, ret_task, (void *)(intptr_t)5), 0);
        double end = now_s() + 30;
        while (!weft_flow_canceled(&f))
            CHECK(now_s() < end);
        /* From the opener, after the failure: accepted, never run. */
        for (int i = 0; i < 100; i++)
            CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
        CHECK_EQ(weft_flow_close(&f), 5);
        CHECK_EQ(atomic_load(&g_runs), 0);
    }
}

/* In a flow a task opened: cancel it with work still queued on the owner's
 * own deque (one worker, so nobody else can have started any of it). */
static int cancel_own_flow(void *p)
{
    (void)p;
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(weft_spawn(&g, count_task, NULL), 0);
    CHECK(!weft_flow_canceled(&g));
    weft_flow_cancel(&g);
    CHECK(weft_flow_canceled(&g));
    for (int i = 0; i < 100; i++)
        CHECK_EQ(weft_spawn(&g, count_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&g), ECANCELED);
    /* The task's own flow is untouched. */
    CHECK(!weft_flow_canceled(weft_current_flow()));
    return 0;
}

static void test_cancel_owned(void)
{
    STAGE("cancel a task's own flow with work queued");
    weft_pool *one = new_pool(1);
    atomic_store(&g_runs, 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, one), 0);
    CHECK_EQ(weft_spawn(&f, cancel_own_flow, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_runs), 0);
    CHECK_EQ(weft_pool_destroy(one), 0);
}

/* ---- failures inside the owner's close ---------------------------------- */

/* A flow a task opened and closes on a one-worker pool: its close runs the
 * flow's tasks itself, newest first, so exactly which ones run is known. */

static int cancel_current(void *p)
{
    (void)p;
    weft_flow_cancel(weft_current_flow());
    return 0;
}

/* Opens a flow, spawns `older` counting tasks, then fn(arg), then `newer`
 * counting tasks; closes it. Returns the close's result; *runs the number
 * of counting tasks that ran. */
static int drain_case(int older, weft_fn fn, void *arg, int newer, long *runs)
{
    weft_flow g;
    atomic_store(&g_runs, 0);
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    for (int i = 0; i < older; i++)
        CHECK_EQ(weft_spawn(&g, count_task, NULL), 0);
    CHECK_EQ(weft_spawn(&g, fn, arg), 0);
    for (int i = 0; i < newer; i++)
        CHECK_EQ(weft_spawn(&g, count_task, NULL), 0);
    int r = weft_flow_close(&g);
    *runs = atomic_load(&g_runs);
    return r;
}

static int drain_failures(void *p)
{
    (void)p;
    long runs;
    /* The failure runs first: every older task is skipped. */
    CHECK_EQ(drain_case(50, ret_task, (void *)(intptr_t)13, 0, &runs), 13);
    CHECK_EQ(runs, 0);
    /* The failure runs last: every newer task ran. */
    CHECK_EQ(drain_case(0, ret_task, (void *)(intptr_t)14, 50, &runs), 14);
    CHECK_EQ(runs, 50);
    /* In the middle: the newer ones ran, the older ones are skipped. */
    CHECK_EQ(drain_case(25, ret_task, (void *)(intptr_t)15, 25, &runs), 15);
    CHECK_EQ(runs, 25);
    /* A task cancels its own flow: ECANCELED, the older ones skipped. */
    CHECK_EQ(drain_case(25, cancel_current, NULL, 25, &runs), ECANCELED);
    CHECK_EQ(runs, 25);
    /* The fork-join shape, two tasks: either one's failure comes back. */
    CHECK_EQ(drain_case(1, ret_task, (void *)(intptr_t)16, 0, &runs), 16);
    CHECK_EQ(runs, 0);
    CHECK_EQ(drain_case(0, ret_task, (void *)(intptr_t)17, 1, &runs), 17);
    CHECK_EQ(runs, 1);
    /* None of it reached this task's flow, and a flow after it is clean. */
    CHECK(!weft_flow_canceled(weft_current_flow()));
    CHECK_EQ(drain_case(3, count_task, NULL, 3, &runs), 0);
    CHECK_EQ(runs, 7);
    return 0;
}

static void test_drain_failures(unsigned flags)
{
    STAGE("failures and cancels inside the owner's close");
    weft_pool *one;
    weft_pool_config cfg = {.workers = 1, .flags = flags, .name = "err"};
    CHECK_EQ(weft_pool_create(&one, &cfg), 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, one), 0);
    CHECK_EQ(weft_spawn(&f, drain_failures, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(weft_pool_destroy(one), 0);
}

/* A task's flow into which a task of another flow (on the other worker)
 * spawns a failing task: the failure comes back from the task's close,
 * also when the failed task finished before the close began, so that the
 * close finds nothing left to run or wait for. */
typedef struct remote_case {
    _Atomic(weft_flow *) flow;
    atomic_int           spawned;
} remote_case;

static int remote_opener(void *p)
{
    remote_case *rc = p;
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    atomic_store(&rc->flow, &g);
    CHECK(wait_flag(&rc->spawned, 30));
    double end = now_s() + 30;
    while (!weft_flow_canceled(&g))
        CHECK(now_s() < end);
    sleep_us(2000); /* let the failed task finish its count, usually */
    CHECK_EQ(weft_flow_close(&g), 21);
    return 0;
}

static int remote_spawner(void *p)
{
    remote_case *rc = p;
    weft_flow *g;
    double end = now_s() + 30;
    while (!(g = atomic_load(&rc->flow)))
        CHECK(now_s() < end);
    CHECK_EQ(weft_spawn(g, ret_task, (void *)(intptr_t)21), 0);
    atomic_store(&rc->spawned, 1);
    return 0;
}

static void test_remote_failure(void)
{
    STAGE("a failure spawned into a task's flow by another task");
    weft_pool *two = new_pool(2);
    for (int round = 0; round < 20; round++) {
        remote_case rc = {NULL, 0};
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, two), 0);
        CHECK_EQ(weft_spawn(&f, remote_opener, &rc), 0);
        CHECK_EQ(weft_spawn(&f, remote_spawner, &rc), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
    }
    CHECK_EQ(weft_pool_destroy(two), 0);
}

/* ---- cancel from outside ------------------------------------------------- */

typedef struct poller {
    atomic_int *started;
    atomic_int  saw;
} poller;

static int poll_task(void *p)
{
    poller *q = p;
    atomic_fetch_add(q->started, 1);
    weft_flow *f = weft_current_flow();
    double end = now_s() + 30;
    while (!weft_flow_canceled(f))
        CHECK(now_s() < end);
    atomic_store(&q->saw, 1);
    return 0;
}

static void test_cancel_from_outside(void)
{
    for (unsigned w = 1; w <= 3; w++) {
        STAGE("weft_flow_cancel from outside");
        weft_pool *pool = new_pool(w);
        for (int r = 0; r < 5; r++) {
            atomic_int started = 0;
            poller q[3];
            atomic_store(&g_runs, 0);
            weft_flow f;
            CHECK_EQ(weft_flow_open(&f, pool), 0);
            for (unsigned i = 0; i < w; i++) {
                q[i].started = &started;
                atomic_store(&q[i].saw, 0);
                CHECK_EQ(weft_spawn(&f, poll_task, &q[i]), 0);
            }
            wait_started(&started, (int)w);
            for (int i = 0; i < 100; i++)
                CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
            CHECK(!weft_flow_canceled(&f));
            weft_flow_cancel(&f);
            weft_flow_cancel(&f); /* twice: no effect */
            CHECK(weft_flow_canceled(&f));
            CHECK_EQ(weft_flow_close(&f), ECANCELED);
            for (unsigned i = 0; i < w; i++)
                CHECK_EQ(atomic_load(&q[i].saw), 1);
            /* Every worker was held by a poller: nothing queued ran. */
            CHECK_EQ(atomic_load(&g_runs), 0);
            /* Canceling a closed flow has no effect on its next life. */
            weft_flow_cancel(&f);
            CHECK_EQ(weft_flow_open(&f, pool), 0);
            CHECK(!weft_flow_canceled(&f));
            CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
            CHECK_EQ(weft_flow_close(&f), 0);
            CHECK_EQ(atomic_load(&g_runs), 1);
        }
        /* Canceled with no tasks at all. */
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, pool), 0);
        weft_flow_cancel(&f);
        CHECK_EQ(weft_flow_close(&f), ECANCELED);
        /* A failure after the cancel is still a failure. */
        blocker b = {0, 0, 7, 1, 0};
        CHECK_EQ(weft_flow_open(&f, pool), 0);
        CHECK_EQ(weft_spawn(&f, blocker_task, &b), 0);
        wait_started(&b.started, 1);
        weft_flow_cancel(&f);
        atomic_store(&b.release, 1);
        CHECK_EQ(weft_flow_close(&f), 7);
        CHECK_EQ(weft_pool_destroy(pool), 0);
    }
}

/* ---- cancellation flows down --------------------------------------------- */

static weft_pool *g_pool, *g_other;
static atomic_int g_ready;

typedef struct down_rec {
    int  c1_close, c2_close, c3_close;
    bool c1_canceled_seen, c2_canceled_seen, c3_canceled_at_open;
    long c3_runs;
} down_rec;

static down_rec g_down;

/* On g_other, in C2 (opened by a task of C1, opened by a task of F). */
static int leaf_wait(void *p)
{
    (void)p;
    atomic_store(&g_ready, 1);
    weft_flow *f = weft_current_flow();
    double end = now_s() + 30;
    while (!weft_flow_canceled(f))
        CHECK(now_s() < end);
    g_down.c2_canceled_seen = true;
    return 0;
}

static atomic_long g_c3_runs;

static int c3_count(void *p)
{
    (void)p;
    atomic_fetch_add(&g_c3_runs, 1);
    return 0;
}

/* In C1. */
static int gc_task(void *p)
{
    (void)p;
    weft_flow c2;
    CHECK_EQ(weft_flow_open(&c2, g_other), 0);
    CHECK(!weft_flow_canceled(&c2));
    CHECK_EQ(weft_spawn(&c2, leaf_wait, NULL), 0);
    g_down.c2_close = weft_flow_close(&c2);
    g_down.c1_canceled_seen = weft_flow_canceled(weft_current_flow());
    /* Opened after the cancel: canceled from the start, spawns skipped. */
    weft_flow c3;
    CHECK_EQ(weft_flow_open(&c3, NULL), 0);
    g_down.c3_canceled_at_open = weft_flow_canceled(&c3);
    for (int i = 0; i < 50; i++)
        CHECK_EQ(weft_spawn(&c3, c3_count, NULL), 0);
    g_down.c3_close = weft_flow_close(&c3);
    return 0;
}

/* In F. */
static int parent_task(void *p)
{
    (void)p;
    weft_flow c1;
    CHECK_EQ(weft_flow_open(&c1, NULL), 0);
    CHECK_EQ(weft_spawn(&c1, gc_task, NULL), 0);
    g_down.c1_close = weft_flow_close(&c1);
    return 0;
}

static void test_cancel_flows_down(void)
{
    STAGE("cancellation flows down");
    for (int r = 0; r < 10; r++) {
        memset(&g_down, 0, sizeof g_down);
        atomic_store(&g_ready, 0);
        atomic_store(&g_c3_runs, 0);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, g_pool), 0);
        CHECK_EQ(weft_spawn(&f, parent_task, NULL), 0);
        CHECK(wait_flag(&g_ready, 30));
        weft_flow_cancel(&f);
        CHECK_EQ(weft_flow_close(&f), ECANCELED);
        CHECK_EQ(g_down.c2_close, ECANCELED);
        CHECK(g_down.c2_canceled_seen);
        CHECK(g_down.c1_canceled_seen);
        CHECK(g_down.c3_canceled_at_open);
        CHECK_EQ(g_down.c3_close, ECANCELED);
        CHECK_EQ(atomic_load(&g_c3_runs), 0);
        CHECK_EQ(g_down.c1_close, ECANCELED);
    }
}

/* ---- and never up -------------------------------------------------------- */

static atomic_long g_sib_runs;

static int sibling_task(void *p)
{
    (void)p;
    atomic_fetch_add(&g_sib_runs, 1);
    return 0;
}

static int never_up_task(void *p)
{
    (void)p;
    weft_flow *mine = weft_current_flow();
    weft_flow c;
    /* A child flow fails: its close says so, we are not canceled. */
    CHECK_EQ(weft_flow_open(&c, NULL), 0);
    CHECK_EQ(weft_spawn(&c, ret_task, (void *)(intptr_t)5), 0);
    CHECK_EQ(weft_flow_close(&c), 5);
    CHECK(!weft_flow_canceled(mine));
    /* A child flow on another pool fails. */
    CHECK_EQ(weft_flow_open(&c, g_other), 0);
    CHECK_EQ(weft_spawn(&c, ret_task, (void *)(intptr_t)6), 0);
    CHECK_EQ(weft_flow_close(&c), 6);
    CHECK(!weft_flow_canceled(mine));
    /* A child flow canceled explicitly. */
    CHECK_EQ(weft_flow_open(&c, NULL), 0);
    weft_flow_cancel(&c);
    CHECK_EQ(weft_flow_close(&c), ECANCELED);
    CHECK(!weft_flow_canceled(mine));
    /* Our other flows are fine. */
    atomic_long before = atomic_load(&g_sib_runs);
    CHECK_EQ(weft_flow_open(&c, NULL), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(weft_spawn(&c, sibling_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&c), 0);
    CHECK(atomic_load(&g_sib_runs) >= before + 10);
    /* And more spawns into our own flow still run. */
    for (int i = 0; i < 10; i++)
        CHECK_EQ(weft_spawn(mine, sibling_task, NULL), 0);
    return 0;
}

/* A task that reports its child flow's failure fails its own flow. */
static int propagate_task(void *p)
{
    (void)p;
    weft_flow c;
    CHECK_EQ(weft_flow_open(&c, NULL), 0);
    CHECK_EQ(weft_spawn(&c, ret_task, (void *)(intptr_t)77), 0);
    return weft_flow_close(&c);
}

static void test_never_up(void)
{
    STAGE("cancellation never flows up");
    for (int r = 0; r < 10; r++) {
        atomic_store(&g_sib_runs, 0);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, g_pool), 0);
        for (int i = 0; i < 4; i++)
            CHECK_EQ(weft_spawn(&f, never_up_task, NULL), 0);
        for (int i = 0; i < 100; i++)
            CHECK_EQ(weft_spawn(&f, sibling_task, NULL), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK_EQ(atomic_load(&g_sib_runs), 100 + 4 * (10 + 10));
    }
    STAGE("a failure propagated by a task's return value");
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    CHECK_EQ(weft_spawn(&f, propagate_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 77);
}

/* ---- cancellation under concurrency --------------------------------------- */
/* Each round: main opens K flows on a pool; a task in each builds a chain of
 * nested flows, each level spawning pollers. Main cancels a subset (the
 * victims) at a random moment, while another thread cancels unrelated flows
 * over and over. Invariants, checked by every poller and level all along:
 * a flow under a non-victim is never seen canceled; a flow under a victim is
 * always seen canceled once main has finished canceling (and a flow opened
 * after that is canceled from the start); closes return ECANCELED or 0
 * accordingly. */

enum { CS_K = 6, CS_DEPTH = 5, CS_POLLS = 200 };

typedef struct cs_sub {
    int victim;
} cs_sub;

typedef struct cs_level {
    cs_sub *sub;
    int     depth;
} cs_level;

static atomic_int g_cs_done;
static atomic_long g_cs_false_pos, g_cs_missed, g_cs_bad_close, g_cs_polls;
static atomic_int g_cs_noise_stop;

static void cs_check(const cs_sub *sub, const weft_flow *f)
{
    int done = atomic_load_explicit(&g_cs_done, memory_order_acquire);
    bool c = weft_flow_canceled(f);
    if (!sub->victim && c)
        atomic_fetch_add(&g_cs_false_pos, 1);
    if (sub->victim && done && !c)
        atomic_fetch_add(&g_cs_missed, 1);
}

static int cs_poller(void *p)
{
    cs_sub *sub = p;
    for (int i = 0; i < CS_POLLS; i++) {
        cs_check(sub, weft_current_flow());
        for (volatile int k = 0; k < 20; k++) {
        }
    }
    atomic_fetch_add_explicit(&g_cs_polls, 1, memory_order_relaxed);
    return 0;
}

static int cs_level_task(void *p)
{
    cs_level *lv = p;
    cs_check(lv->sub, weft_current_flow());
    weft_flow l;
    CHECK_EQ(weft_flow_open(&l, NULL), 0);
    int done_before = atomic_load_explicit(&g_cs_done, memory_order_acquire);
    cs_check(lv->sub, &l);
    cs_level next = {lv->sub, lv->depth + 1};
    CHECK_EQ(weft_spawn(&l, cs_poller, lv->sub), 0);
    if (lv->depth < CS_DEPTH)
        CHECK_EQ(weft_spawn(&l, cs_level_task, &next), 0);
    CHECK_EQ(weft_spawn(&l, cs_poller, lv->sub), 0);
    int r = weft_flow_close(&l);
    if (lv->sub->victim ? (r != ECANCELED && (done_before || r != 0)) : r != 0)
        atomic_fetch_add(&g_cs_bad_close, 1);
    return 0;
}

static void *cs_noise(void *p)
{
    weft_pool *pool = p;
    while (!atomic_load(&g_cs_noise_stop)) {
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, pool), 0);
        weft_flow_cancel(&f);
        CHECK_EQ(weft_flow_close(&f), ECANCELED);
    }
    return NULL;
}

static void test_cancel_stress(unsigned workers)
{
    STAGE("cancellation under concurrency");
    weft_pool *pool = new_pool(workers);
    atomic_store(&g_cs_noise_stop, 0);
    pthread_t noise = start_thread(cs_noise, pool);
    int rounds = (int)SCALED(100);
    for (int r = 0; r < rounds; r++) {
        ROUND(r);
        uint64_t h = mix64((uint64_t)r * 7919 + workers);
        cs_sub subs[CS_K];
        cs_level roots[CS_K];
        weft_flow c[CS_K];
        atomic_store(&g_cs_done, 0);
        for (int i = 0; i < CS_K; i++) {
            subs[i].victim = (int)((h >> i) & 1);
            roots[i] = (cs_level){&subs[i], 1};
            CHECK_EQ(weft_flow_open(&c[i], pool), 0);
            CHECK_EQ(weft_spawn(&c[i], cs_poller, &subs[i]), 0);
            CHECK_EQ(weft_spawn(&c[i], cs_level_task, &roots[i]), 0);
        }
        sleep_us((long)((h >> 16) % 1000));
        for (int i = 0; i < CS_K; i++) {
            int k = (int)((h >> (24 + 3 * i)) % CS_K); /* some order, with repeats */
            if (subs[k].victim)
                weft_flow_cancel(&c[k]);
        }
        for (int i = 0; i < CS_K; i++)
            if (subs[i].victim)
                weft_flow_cancel(&c[i]);
        atomic_store_explicit(&g_cs_done, 1, memory_order_release);
        for (int i = 0; i < CS_K; i++)
            CHECK_EQ(weft_flow_close(&c[i]), subs[i].victim ? ECANCELED : 0);
        CHECK_EQ(atomic_load(&g_cs_false_pos), 0);
        CHECK_EQ(atomic_load(&g_cs_missed), 0);
        CHECK_EQ(atomic_load(&g_cs_bad_close), 0);
    }
    atomic_store(&g_cs_noise_stop, 1);
    join_thread(noise);
    CHECK(atomic_load(&g_cs_polls) > 0);
    CHECK_EQ(weft_pool_destroy(pool), 0);
}

/* ---- weft_join's result rule -------------------------------------------- */

typedef struct jh {
    atomic_int ran;
    int        ret;
} jh;

static int jh_fn(void *p)
{
    jh *h = p;
    atomic_fetch_add(&h->ran, 1);
    return h->ret;
}

static int join_rules(void *p)
{
    (void)p;
    static const int rets[][2] = {{0, 0}, {3, 0}, {0, 4}, {5, 6}, {-1, 2}};
    for (int k = 0; k < 5; k++) {
        jh a = {0, rets[k][0]}, b = {0, rets[k][1]};
        int want = rets[k][0] ? rets[k][0] : rets[k][1];
        CHECK_EQ(weft_join(jh_fn, &a, jh_fn, &b), want);
        CHECK_EQ(atomic_load(&a.ran), 1);
        CHECK_EQ(atomic_load(&b.ran), 1);
    }
    return 0;
}

static void test_join_rules(void)
{
    STAGE("weft_join result rule");
    join_rules(NULL); /* external thread: the default pool */
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(weft_spawn(&f, join_rules, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
}

int main(void)
{
    watchdog_start(120);
    unsetenv("WEFT_WORKERS");
    static const unsigned counts[] = {1, 2, 3};
    for (size_t i = 0; i < 3; i++) {
        weft_pool *p = new_pool(counts[i]);
        test_failure_returned(p);
        if (counts[i] > 1)
            test_first_failure_wins(p);
        test_skip_later_spawns(p);
        CHECK_EQ(weft_pool_destroy(p), 0);
    }
    printf("failure returned: ok\n");
    test_skip_queued();
    test_cancel_owned();
    test_drain_failures(0);
    test_drain_failures(WEFT_POOL_NO_CTX);
    test_remote_failure();
    printf("skipped tasks: ok\n");
    test_cancel_from_outside();
    printf("cancel from outside: ok\n");
    g_pool = new_pool(2);
    weft_pool_config oc = {.workers = 1, .name = "other"};
    CHECK_EQ(weft_pool_create(&g_other, &oc), 0);
    test_cancel_flows_down();
    test_never_up();
    printf("cancellation down, never up: ok\n");
    test_join_rules();
    printf("weft_join results: ok\n");
    test_cancel_stress(1);
    test_cancel_stress(3);
    printf("cancellation under concurrency: ok\n");
    CHECK_EQ(weft_pool_destroy(g_pool), 0);
    CHECK_EQ(weft_pool_destroy(g_other), 0);
    printf("sched_errors: ok\n");
    return 0;
}
