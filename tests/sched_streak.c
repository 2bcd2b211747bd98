/*
 * The worker loop's streaks (sched/flow.c, ws_run_streak): a worker runs
 * the tasks it took from the injection path back to back in one scope,
 * while they are of one flow and one context. Each task must still see
 * what ws_run would give it:
 *
 *   - sets: one external thread, a one-worker pool: every task sees the
 *     value its spawner had (the flow's pin) and its flow as current, then
 *     sets another value, which the next task of the streak must not see;
 *     every task runs once and the pool's counts are exact;
 *   - mixed: three external threads, each its own flow and value, some of
 *     each thread's spawns under a third value (weft_ctx_run: those go to
 *     the injection queue with a context of their own) and an eighth of
 *     each flow's tasks spawned by a thread in the empty context, on one
 *     and on two workers, with rings that fill and spill (batches of the
 *     injection queue then mix the flows and the contexts): every task
 *     sees its own flow and value;
 *   - shared: the same with the three threads feeding from inside one
 *     captured context (weft_ctx_run), so that their flows' tasks share
 *     it: a streak must still end where the flow changes;
 *   - fail: a task that fails in the middle of a flow: the close returns
 *     its error, no task runs twice, and run + skipped = spawned.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>

enum { FEEDERS = 3, OTHER = 99, SHARED = 77 };

static weft_ctx_var *var;
static weft_ctx *other; /* the third value, for the weft_ctx_run spawns */
static _Atomic(uint32_t) *hits;

typedef struct feed {
    weft_pool *pool;
    weft_flow  flow;
    uintptr_t  value;   /* what the feeder set before its open */
    size_t     first, n;
    size_t     fail_at; /* a task index that fails, or SIZE_MAX */
    int        rc;      /* its close's */
} feed;

static feed feeds[FEEDERS];
static size_t per_feed;

/* A task's argument: its index << 2 | the context its spawn ran in. */
enum { IN_FEED = 0, IN_OTHER = 1, IN_EMPTY = 2 };

static int check_task(void *p)
{
    size_t i = (uintptr_t)p >> 2;
    unsigned in = (uintptr_t)p & 3;
    feed *fd = &feeds[i / per_feed];
    uintptr_t want = in == IN_OTHER ? (uintptr_t)OTHER : in == IN_EMPTY ? 1u : fd->value;
    CHECK(weft_ctx_get(var) == (void *)want);
    CHECK(weft_current_flow() == &fd->flow);
    /* A set of the task's own: gone when it returns. */
    CHECK_EQ(weft_ctx_set(var, (void *)(uintptr_t)0xdead), 0);
    CHECK(weft_ctx_get(var) == (void *)(uintptr_t)0xdead);
    CHECK_EQ(atomic_fetch_add_explicit(&hits[i], 1, memory_order_relaxed), 0);
    return i == fd->fail_at ? EIO : 0;
}

typedef struct { feed *fd; size_t i; } spawn_one_arg;

static int spawn_one(void *p)
{
    spawn_one_arg *a = p;
    return weft_spawn(&a->fd->flow, check_task, (void *)((a->i << 2) | IN_OTHER));
}

/* A thread that did not open the flow, in the empty context (a new
 * thread's): its spawns go to the injection queue with no context, next
 * to the opener's spilled ones, which borrow the pin. */
static void *outsider(void *p)
{
    feed *fd = p;
    for (size_t k = fd->n - fd->n / 8; k < fd->n; k++)
        CHECK_EQ(weft_spawn(&fd->flow, check_task, (void *)(((fd->first + k) << 2) | IN_EMPTY)),
                 0);
    return NULL;
}

static int feed_all(void *p)
{
    feed *fd = p;
    CHECK_EQ(weft_flow_open(&fd->flow, fd->pool), 0);
    pthread_t out;
    CHECK_EQ(pthread_create(&out, NULL, outsider, fd), 0);
    for (size_t k = 0; k < fd->n - fd->n / 8; k++) {
        size_t i = fd->first + k;
        if (k % 7 == 3) {
            spawn_one_arg a = {fd, i};
            CHECK_EQ(weft_ctx_run(other, spawn_one, &a), 0);
        } else {
            CHECK_EQ(weft_spawn(&fd->flow, check_task, (void *)((i << 2) | IN_FEED)), 0);
        }
    }
    CHECK_EQ(pthread_join(out, NULL), 0);
    fd->rc = weft_flow_close(&fd->flow);
    return 0;
}

static weft_ctx *shared; /* NULL, or the context every feeder runs in */

static void *feeder(void *p)
{
    feed *fd = p;
    if (shared) {
        CHECK_EQ(weft_ctx_run(shared, feed_all, fd), 0);
    } else {
        CHECK_EQ(weft_ctx_set(var, (void *)fd->value), 0);
        CHECK_EQ(feed_all(fd), 0);
    }
    return NULL;
}

static bool stats(weft_pool *pool, weft_stats *st)
{
    int rc = weft_pool_stats(pool, -1, st);
    if (rc == ENOTSUP)
        return false;
    CHECK_EQ(rc, 0);
    return true;
}

/* nfeed feeders of n tasks each on a pool of `workers`; task fail_at (a
 * global index, or SIZE_MAX) fails. */
static void run(unsigned workers, int nfeed, size_t n, size_t fail_at)
{
    weft_pool *pool;
    weft_pool_config cfg = {.workers = workers};
    CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
    per_feed = n;
    hits = calloc((size_t)nfeed * n, sizeof *hits);
    CHECK(hits != NULL);
    weft_stats before, after;
    bool counted = stats(pool, &before);
    pthread_t t[FEEDERS];
    for (int k = 0; k < nfeed; k++) {
        feeds[k] = (feed){.pool = pool, .value = shared ? SHARED : 10u + (uintptr_t)k,
                          .first = (size_t)k * n,
                          .n = n, .fail_at = fail_at};
        CHECK_EQ(pthread_create(&t[k], NULL, feeder, &feeds[k]), 0);
    }
    for (int k = 0; k < nfeed; k++)
        CHECK_EQ(pthread_join(t[k], NULL), 0);
    size_t ran = 0;
    for (size_t i = 0; i < (size_t)nfeed * n; i++)
        ran += atomic_load_explicit(&hits[i], memory_order_relaxed);
    for (int k = 0; k < nfeed; k++) {
        bool fails = fail_at >= feeds[k].first && fail_at < feeds[k].first + n;
        CHECK_EQ(feeds[k].rc, fails ? EIO : 0);
        if (fails)
            CHECK_EQ(atomic_load_explicit(&hits[fail_at], memory_order_relaxed), 1);
    }
    if (fail_at == SIZE_MAX)
        CHECK_EQ(ran, (size_t)nfeed * n);
    if (counted) {
        CHECK(stats(pool, &after));
        uint64_t spawned = after.tasks_spawned - before.tasks_spawned;
        CHECK_EQ(spawned, (uint64_t)nfeed * n);
        CHECK_EQ(after.tasks_run - before.tasks_run, ran);
        CHECK_EQ(after.tasks_run - before.tasks_run + after.tasks_skipped - before.tasks_skipped,
                 spawned);
    }
    free(hits);
    CHECK_EQ(weft_pool_destroy(pool), 0);
}

/* switch: a streak of flow F ends at an item of flow H whose task waits
 * for F's close to return: the worker must hand F's batched count over
 * before it runs H's task, or F's close never returns. */
static weft_flow sw_f, sw_h, sw_g;
static atomic_int sw_gate_running, sw_gate_go, sw_spawned, sw_f_closed;

static int sw_gate(void *p)
{
    (void)p;
    atomic_store(&sw_gate_running, 1);
    while (!atomic_load(&sw_gate_go))
        sleep_us(100);
    return 0;
}

static int sw_nothing(void *p)
{
    (void)p;
    return 0;
}

static int sw_wait_f(void *p)
{
    (void)p;
    /* A hang bound, not a timing: with the count held this never ends. */
    for (int i = 0; i < 10000 && !atomic_load(&sw_f_closed); i++)
        sleep_us(1000);
    CHECK(atomic_load(&sw_f_closed));
    return 0;
}

static void *sw_closer(void *p)
{
    (void)p;
    while (!atomic_load(&sw_spawned))
        sleep_us(100);
    CHECK_EQ(weft_flow_close(&sw_f), 0);
    atomic_store(&sw_f_closed, 1);
    return NULL;
}

static void *sw_spawner(void *p)
{
    (void)p;
    /* Not the opener: REMOTE items into the injection queue, in the base
     * context, which is the flows' pin. */
    CHECK_EQ(weft_spawn(&sw_f, sw_nothing, NULL), 0);
    CHECK_EQ(weft_spawn(&sw_f, sw_nothing, NULL), 0);
    CHECK_EQ(weft_spawn(&sw_h, sw_wait_f, NULL), 0);
    atomic_store(&sw_spawned, 1);
    return NULL;
}

static void test_switch(void)
{
    weft_pool *pool;
    weft_pool_config cfg = {.workers = 1};
    CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
    atomic_store(&sw_gate_running, 0);
    atomic_store(&sw_gate_go, 0);
    atomic_store(&sw_spawned, 0);
    atomic_store(&sw_f_closed, 0);
    CHECK_EQ(weft_flow_open(&sw_g, pool), 0);
    CHECK_EQ(weft_flow_open(&sw_h, pool), 0);
    CHECK_EQ(weft_flow_open(&sw_f, pool), 0);
    /* The gate holds the only worker until all three items are queued. */
    CHECK_EQ(weft_spawn(&sw_g, sw_gate, NULL), 0);
    while (!atomic_load(&sw_gate_running))
        sleep_us(100);
    pthread_t c, s;
    CHECK_EQ(pthread_create(&c, NULL, sw_closer, NULL), 0);
    CHECK_EQ(pthread_create(&s, NULL, sw_spawner, NULL), 0);
    CHECK_EQ(pthread_join(s, NULL), 0);
    sleep_us(20000); /* the closer is asleep in F's close, most likely */
    atomic_store(&sw_gate_go, 1);
    CHECK_EQ(pthread_join(c, NULL), 0);
    CHECK_EQ(weft_flow_close(&sw_h), 0);
    CHECK_EQ(weft_flow_close(&sw_g), 0);
    CHECK_EQ(weft_pool_destroy(pool), 0);
}

int main(void)
{
    watchdog_start(180);
    CHECK_EQ(weft_ctx_var_create(&var, "streak", (void *)1), 0);
    CHECK_EQ(weft_ctx_set(var, (void *)(uintptr_t)OTHER), 0);
    other = weft_ctx_capture();
    CHECK(other != NULL);
    size_t n = SCALED(60000);

    STAGE("sets: one feeder, one worker");
    for (int round = 0; round < 3; round++) {
        ROUND(round);
        run(1, 1, n, SIZE_MAX);
    }
    STAGE("mixed: three feeders, one worker");
    for (int round = 0; round < 3; round++) {
        ROUND(round);
        run(1, FEEDERS, n, SIZE_MAX);
    }
    STAGE("mixed: three feeders, two workers");
    for (int round = 0; round < 3; round++) {
        ROUND(round);
        run(2, FEEDERS, n, SIZE_MAX);
    }
    STAGE("shared: three feeders in one context, one and two workers");
    CHECK_EQ(weft_ctx_set(var, (void *)(uintptr_t)SHARED), 0);
    shared = weft_ctx_capture();
    CHECK(shared != NULL);
    for (int round = 0; round < 4; round++) {
        ROUND(round);
        run(1 + (unsigned)round % 2, FEEDERS, n, SIZE_MAX);
    }
    weft_ctx_release(shared);
    shared = NULL;
    STAGE("fail: a task fails in the middle");
    for (unsigned workers = 1; workers <= 2; workers++)
        run(workers, FEEDERS, n, n + n / 2);
    STAGE("switch: a streak ends at a task that waits for its flow's close");
    for (int round = 0; round < 3; round++) {
        ROUND(round);
        test_switch();
    }
    weft_ctx_release(other);
    return 0;
}
