/*
 * Submission rings (docs/inject.md, "Submission rings"): an external
 * thread that opens a flow pushes its spawns into a ring leased for that
 * flow, a full ring spills into the injection queue, and a pool has 64
 * rings: the flows opened beyond them use the injection queue.
 *
 *   - many: one thread opens 70 flows on a 2-worker pool (6 more than
 *     there are rings) and spawns 6000 tasks into each, round-robin (each
 *     ring, 4,096 slots, fills and spills); every task runs exactly once, every close
 *     returns 0, and the pool's injected count is exactly the tasks
 *     spawned (ring or queue, each is counted once, where it is taken);
 *   - handoff: rounds of four threads, each opening a flow, spawning a
 *     burst and closing it, so that rings pass from one flow's opener to
 *     the next (a ring has one producer at a time); every task runs once;
 *   - async: weft_flow_close_async of an external flow with a ring: done
 *     runs once with 0 after all its tasks (its worker gives the ring
 *     back); then the many stage again on the same pool, still exact;
 *   - busy: a pool with an external flow open (its ring leased) refuses
 *     destroy with EBUSY, and destroys once it is closed;
 *   - contexts: a ring's items share the flow's pinned context (the ring
 *     keeps it once), so an opener that spawns under another context
 *     (weft_ctx_run) sends those tasks to the injection queue: spawns
 *     alternate between the pin and a second context, and every task sees
 *     the value its spawn saw, runs once, and is counted once.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <string.h>

enum { FLOWS = 70, PER_FLOW = 6000 };

static _Atomic(uint32_t) *hits;

static int hit_task(void *p)
{
    atomic_fetch_add_explicit(&hits[(uintptr_t)p], 1, memory_order_relaxed);
    return 0;
}

static uint64_t injected(weft_pool *pool)
{
    weft_stats st;
    int rc = weft_pool_stats(pool, -1, &st);
    if (rc == ENOTSUP)
        return UINT64_MAX;
    CHECK_EQ(rc, 0);
    return st.injected;
}

static void check_hits(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t h = atomic_load_explicit(&hits[i], memory_order_relaxed);
        if (h != 1) {
            fprintf(stderr, "task %zu ran %u times\n", i, h);
            CHECK_EQ(h, 1u);
        }
        atomic_store_explicit(&hits[i], 0, memory_order_relaxed);
    }
}

static void test_many(weft_pool *pool, long per)
{
    STAGE("many: 70 flows from one thread, rings full and spilling");
    static weft_flow f[FLOWS];
    uint64_t before = injected(pool);
    for (int i = 0; i < FLOWS; i++)
        CHECK_EQ(weft_flow_open(&f[i], pool), 0);
    for (long k = 0; k < per; k++)
        for (int i = 0; i < FLOWS; i++)
            CHECK_EQ(weft_spawn(&f[i], hit_task, (void *)(uintptr_t)(i * per + k)), 0);
    for (int i = 0; i < FLOWS; i++)
        CHECK_EQ(weft_flow_close(&f[i]), 0);
    check_hits((size_t)FLOWS * (size_t)per);
    uint64_t after = injected(pool);
    if (before != UINT64_MAX)
        CHECK_EQ(after - before, (uint64_t)FLOWS * (uint64_t)per);
}

typedef struct burst {
    weft_pool *pool;
    size_t base, n;
} burst;

static void *burst_thread(void *p)
{
    burst *b = p;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, b->pool), 0);
    for (size_t k = 0; k < b->n; k++)
        CHECK_EQ(weft_spawn(&f, hit_task, (void *)(uintptr_t)(b->base + k)), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    return NULL;
}

static void test_handoff(weft_pool *pool, long rounds)
{
    STAGE("handoff: rings passed from flow to flow");
    enum { T = 4, N = 500 };
    for (long r = 0; r < rounds; r++) {
        ROUND(r);
        burst b[T];
        pthread_t t[T];
        for (int i = 0; i < T; i++) {
            b[i] = (burst){pool, (size_t)i * N, N};
            t[i] = start_thread(burst_thread, &b[i]);
        }
        for (int i = 0; i < T; i++)
            join_thread(t[i]);
        check_hits((size_t)T * N);
    }
}

static atomic_int done_calls, done_result = -1;

static void on_done(void *arg, int result)
{
    (void)arg;
    atomic_store(&done_result, result);
    atomic_fetch_add(&done_calls, 1);
}

static void test_async(weft_pool *pool, long rounds)
{
    STAGE("async: close_async of a flow with a ring");
    enum { N = 2000 };
    for (long r = 0; r < rounds; r++) {
        ROUND(r);
        atomic_store(&done_calls, 0);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, pool), 0);
        for (size_t k = 0; k < N; k++)
            CHECK_EQ(weft_spawn(&f, hit_task, (void *)(uintptr_t)k), 0);
        CHECK_EQ(weft_flow_close_async(&f, on_done, NULL), 0);
        double end = now_s() + 60;
        while (atomic_load(&done_calls) == 0) {
            CHECK(now_s() < end);
            sleep_us(100);
        }
        CHECK_EQ(atomic_load(&done_result), 0);
        check_hits(N);
        sleep_us(200);
        CHECK_EQ(atomic_load(&done_calls), 1);
    }
}

static void test_busy(void)
{
    STAGE("busy: destroy with a leased ring");
    weft_pool_config cfg = {.workers = 1, .name = "wring"};
    weft_pool *pool;
    CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    for (size_t k = 0; k < 100; k++)
        CHECK_EQ(weft_spawn(&f, hit_task, (void *)(uintptr_t)k), 0);
    CHECK_EQ(weft_pool_destroy(pool), EBUSY);
    CHECK_EQ(weft_flow_close(&f), 0);
    check_hits(100);
    CHECK_EQ(weft_pool_destroy(pool), 0);
}

static weft_ctx_var *ctx_var;
static _Atomic(uintptr_t) *ctx_seen;

static int ctx_task(void *p)
{
    atomic_store_explicit(&ctx_seen[(uintptr_t)p], (uintptr_t)weft_ctx_get(ctx_var),
                          memory_order_relaxed);
    return hit_task(p);
}

typedef struct ctx_round {
    weft_pool *pool;
    weft_ctx *other;
    size_t n;
} ctx_round;

typedef struct ctx_spawn {
    weft_flow *f;
    uintptr_t k;
} ctx_spawn;

static int spawn_in_ctx(void *p)
{
    ctx_spawn *s = p;
    return weft_spawn(s->f, ctx_task, (void *)s->k);
}

/* Runs in the pin (weft_ctx_run): the flow opened here borrows it, so the
 * direct spawns ride in the ring, and those made under other do not. */
static int ctx_round_run(void *p)
{
    ctx_round *r = p;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, r->pool), 0);
    for (size_t k = 0; k < r->n; k++) {
        /* Runs of five: the pin, the other context, the pin... so that the
         * ring and the queue hold the flow's items at once. */
        if ((k / 5) % 2) {
            ctx_spawn s = {&f, k};
            CHECK_EQ(weft_ctx_run(r->other, spawn_in_ctx, &s), 0);
        } else {
            CHECK_EQ(weft_spawn(&f, ctx_task, (void *)(uintptr_t)k), 0);
        }
    }
    return weft_flow_close(&f);
}

static void test_contexts(weft_pool *pool, size_t n)
{
    STAGE("contexts: spawns under the pin and under another context");
    CHECK_EQ(weft_ctx_var_create(&ctx_var, "ring", (void *)1), 0);
    CHECK_EQ(weft_ctx_set(ctx_var, (void *)2), 0);
    weft_ctx *pin = weft_ctx_capture();
    CHECK_EQ(weft_ctx_set(ctx_var, (void *)3), 0);
    weft_ctx *other = weft_ctx_capture();
    CHECK(pin != NULL && other != NULL);
    ctx_seen = calloc(n, sizeof *ctx_seen);
    CHECK(ctx_seen != NULL);
    uint64_t before = injected(pool);
    for (int round = 0; round < 3; round++) {
        ctx_round r = {pool, other, n};
        CHECK_EQ(weft_ctx_run(pin, ctx_round_run, &r), 0);
        for (size_t k = 0; k < n; k++) {
            uintptr_t v = atomic_load_explicit(&ctx_seen[k], memory_order_relaxed);
            uintptr_t want = (k / 5) % 2 ? 3u : 2u;
            if (v != want) {
                fprintf(stderr, "task %zu saw %zu, not %zu\n", k, (size_t)v, (size_t)want);
                CHECK_EQ(v, want);
            }
            atomic_store_explicit(&ctx_seen[k], 0, memory_order_relaxed);
        }
        check_hits(n);
    }
    uint64_t after = injected(pool);
    if (before != UINT64_MAX)
        CHECK_EQ(after - before, 3 * (uint64_t)n);
    weft_ctx_release(pin);
    weft_ctx_release(other);
    free(ctx_seen);
}

int main(void)
{
    watchdog_start(120);
    long per = SCALED(PER_FLOW);
    size_t most = (size_t)FLOWS * (size_t)per;
    if (most < 4 * 500)
        most = 4 * 500;
    if (most < 2000)
        most = 2000;
    hits = calloc(most, sizeof *hits);
    CHECK(hits != NULL);
    weft_pool_config cfg = {.workers = 2, .name = "wring"};
    weft_pool *pool;
    CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
    test_many(pool, per);
    test_handoff(pool, SCALED(100));
    test_async(pool, SCALED(50));
    test_contexts(pool, most);
    test_many(pool, per); /* every ring came back: still exact */
    CHECK_EQ(weft_pool_destroy(pool), 0);
    test_busy();
    free(hits);
    printf("sched_rings: ok\n");
    return 0;
}
