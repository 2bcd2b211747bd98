/*
 * examples/uv_loop.c — CPU work offloaded from a libuv loop to weft, the
 * way a server offloads hashing or compression without blocking its loop.
 * A uv timer ticks every millisecond; the loop keeps a few requests in
 * flight, each a flow of tens of thousands of tiny tasks (some with a
 * failing task, some canceled half-way) closed with weft_flow_close_async.
 * done, on a weft worker, puts the request on a lock-free list and calls
 * uv_async_send, the one libuv call that is safe from any thread. libuv
 * coalesces sends (several sends may give one callback), so the callback
 * drains the whole list instead of expecting one request per call.
 *
 * Checks: every done exactly once, with the close's result and the right
 * checksum, on a worker, in the context the loop had at the call; ticks kept
 * coming while requests were unfinished. The worst gap between ticks is
 * printed, not checked (it depends on the machine's load).
 *
 *   cc -O2 uv_loop.c -lweft $(pkg-config --cflags --libs libuv) && ./a.out
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CLOCK_MONOTONIC and eventfd/timerfd under -std=c11 */
#endif
#include <weft.h>
#include <uv.h>

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

enum {
    TASKS = SANITIZED ? 2000 : 20000, /* tiny tasks per request */
    IN_FLIGHT = 4,
    MIN_REQUESTS = 60,
    MAX_REQUESTS = 2000,    /* a bound in case ticks are scarce */
    MIN_PENDING_TICKS = 20, /* ticks handled while a request was unfinished */
};

#define EXPECT(cond)                                                            \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "uv_loop: %s:%d: check failed: %s\n", __FILE__,     \
                    __LINE__, #cond);                                           \
            fflush(stderr);                                                     \
            _Exit(1);                                                           \
        }                                                                       \
    } while (0)

enum kind { OK, FAILS, CANCELED };

typedef struct request request;
typedef struct part {
    request *r;
    int      i;
} part;

struct request {
    weft_flow  flow; /* first: requests are aligned_alloc'd at 64 */
    request   *next; /* on the completion list */
    int        id, kind, expect, fail_at, cancel_at;
    uint64_t   out[TASKS]; /* one word per task; 0: the task did not run */
    part       parts[TASKS];
    atomic_int calls; /* written by done, read by the loop after it took r */
    int        result, worker;
    uint64_t   sum;
    uintptr_t  seen_tag;
};

static weft_ctx_var *tag;
static weft_pool *pool;
static unsigned workers;
static uv_timer_t tick;
static uv_async_t wake;
static _Atomic(request *) completed; /* pushed by done, taken by on_wake */
static atomic_int unfinished;        /* requests whose done has not run */
static atomic_int sends;             /* uv_async_send calls that returned */

static int started, finished, by_kind[3];
static request *idle[IN_FLIGHT];
static int nidle;
static long ticks, pending_ticks;
static uint64_t last_tick_ns, worst_gap_ns;
static int closing;

static uint64_t work(int id, int i)
{
    uint64_t x = ((uint64_t)id << 32 | (uint64_t)i) + 0x9E3779B97F4A7C15ULL;
    for (int k = 0; k < 8; k++)
        x = (x ^ (x >> 31)) * 0xBF58476D1CE4E5B9ULL;
    return x | 1; /* never 0: 0 means "did not run" */
}

static int part_task(void *arg)
{
    part *p = arg;
    p->r->out[p->i] = work(p->r->id, p->i);
    return p->i == p->r->fail_at ? p->r->expect : 0;
}

static int root_task(void *arg)
{
    request *r = arg;
    weft_flow *flow = weft_current_flow();
    for (int i = 0; i < TASKS; i++) {
        if (i == r->cancel_at)
            weft_flow_cancel(flow);
        EXPECT(weft_spawn(flow, part_task, &r->parts[i]) == 0);
    }
    return 0;
}

static void on_done(void *arg, int result)
{
    request *r = arg;
    atomic_fetch_add_explicit(&r->calls, 1, memory_order_relaxed);
    r->result = result;
    r->worker = weft_worker_index();
    r->seen_tag = (uintptr_t)weft_ctx_get(tag);
    uint64_t sum = 0;
    for (int i = 0; i < TASKS; i++)
        sum += r->out[i];
    r->sum = sum;
    atomic_fetch_sub_explicit(&unfinished, 1, memory_order_relaxed);
    request *head = atomic_load_explicit(&completed, memory_order_relaxed);
    do
        r->next = head;
    /* release: pairs with the acquire exchange in on_wake */
    while (!atomic_compare_exchange_weak_explicit(&completed, &head, r, memory_order_release,
                                                  memory_order_relaxed));
    /* r is the loop's now. */
    EXPECT(uv_async_send(&wake) == 0);
    /* release: pairs with the acquire load in maybe_finish (the loop closes
     * `wake` only when no done may still send) */
    atomic_fetch_add_explicit(&sends, 1, memory_order_release);
}

static void start(request *r, int id)
{
    memset(r->out, 0, sizeof r->out);
    r->id = id;
    r->kind = id % 3;
    r->fail_at = r->kind == FAILS ? (int)(((unsigned)id * 2654435761u) % TASKS) : -1;
    r->cancel_at = r->kind == CANCELED ? TASKS / 2 : -1;
    r->expect = r->kind == OK ? 0 : r->kind == FAILS ? 1000 + id % 1000 : ECANCELED;
    atomic_store_explicit(&r->calls, 0, memory_order_relaxed);
    for (int i = 0; i < TASKS; i++)
        r->parts[i] = (part){r, i};
    EXPECT(weft_flow_open(&r->flow, pool) == 0);
    EXPECT(weft_spawn(&r->flow, root_task, r) == 0);
    atomic_fetch_add_explicit(&unfinished, 1, memory_order_relaxed);
    EXPECT(weft_ctx_set(tag, (void *)(uintptr_t)(id + 1)) == 0);
    EXPECT(weft_flow_close_async(&r->flow, on_done, r) == 0);
    EXPECT(weft_ctx_set(tag, NULL) == 0);
    EXPECT(weft_flow_close_async(&r->flow, on_done, r) == EINVAL);
    EXPECT(weft_spawn(&r->flow, part_task, &r->parts[0]) == EINVAL);
}

static void check(const request *r)
{
    EXPECT(atomic_load_explicit(&r->calls, memory_order_relaxed) == 1);
    EXPECT(r->result == r->expect);
    EXPECT(r->worker >= 0 && (unsigned)r->worker < workers);
    EXPECT(r->seen_tag == (uintptr_t)(r->id + 1));
    if (r->kind == OK) {
        uint64_t want = 0;
        for (int i = 0; i < TASKS; i++)
            want += work(r->id, i);
        EXPECT(r->sum == want);
    } else if (r->kind == FAILS) {
        EXPECT(r->out[r->fail_at] != 0);
    } else {
        for (int i = r->cancel_at; i < TASKS; i++)
            EXPECT(r->out[i] == 0); /* spawned after the cancel: skipped */
    }
}

/* Closes the handles once every request is back and no done may still be
 * inside uv_async_send; uv_run then returns. */
static void maybe_finish(void)
{
    if (closing || finished < started)
        return;
    /* acquire: pairs with the release add in on_done */
    if (atomic_load_explicit(&sends, memory_order_acquire) < started)
        return; /* a done is between its push and its send: next tick */
    closing = 1;
    uv_close((uv_handle_t *)&tick, NULL);
    uv_close((uv_handle_t *)&wake, NULL);
}

static void on_wake(uv_async_t *handle)
{
    (void)handle;
    /* acquire: pairs with the release CAS in on_done */
    for (request *r = atomic_exchange_explicit(&completed, NULL, memory_order_acquire), *next; r;
         r = next) {
        next = r->next;
        check(r);
        by_kind[r->kind]++;
        finished++;
        idle[nidle++] = r;
    }
    int enough = started >= MIN_REQUESTS && pending_ticks >= MIN_PENDING_TICKS;
    while (nidle > 0 && !enough && started < MAX_REQUESTS)
        start(idle[--nidle], started++);
    maybe_finish();
}

static void on_tick(uv_timer_t *handle)
{
    uint64_t t = uv_hrtime();
    if (t - last_tick_ns > worst_gap_ns)
        worst_gap_ns = t - last_tick_ns;
    last_tick_ns = t;
    ticks++;
    if (atomic_load_explicit(&unfinished, memory_order_relaxed) > 0)
        pending_ticks++;
    (void)handle;
    maybe_finish();
}

int main(void)
{
    weft_pool_config cfg = {.name = "uv"};
    EXPECT(weft_pool_create(&pool, &cfg) == 0);
    workers = weft_pool_workers(pool);
    EXPECT(weft_ctx_var_create(&tag, "request", NULL) == 0);

    uv_loop_t loop;
    EXPECT(uv_loop_init(&loop) == 0);
    EXPECT(uv_async_init(&loop, &wake, on_wake) == 0);
    EXPECT(uv_timer_init(&loop, &tick) == 0);
    last_tick_ns = uv_hrtime();
    EXPECT(uv_timer_start(&tick, on_tick, 1, 1) == 0);

    request *slot[IN_FLIGHT];
    for (int i = 0; i < IN_FLIGHT; i++) {
        slot[i] = aligned_alloc(64, (sizeof(request) + 63) / 64 * 64);
        EXPECT(slot[i] != NULL);
        start(slot[i], started++);
    }
    EXPECT(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    EXPECT(uv_loop_close(&loop) == 0);
    for (int i = 0; i < nidle; i++)
        free(idle[i]);

    printf("uv_loop: %d requests (%d ok, %d failed, %d canceled) of %d tasks, %u workers\n",
           started, by_kind[OK], by_kind[FAILS], by_kind[CANCELED], TASKS, workers);
    printf("uv_loop: %ld ticks, %ld while a request was unfinished; worst gap between ticks "
           "%.2f ms (timing: machine-dependent, not checked)\n",
           ticks, pending_ticks, (double)worst_gap_ns * 1e-6);
    EXPECT(finished == started && nidle == IN_FLIGHT);
    EXPECT(pending_ticks >= MIN_PENDING_TICKS);

    int err;
    while ((err = weft_pool_destroy(pool)) == EBUSY)
        sched_yield(); /* the last done may still be returning */
    EXPECT(err == 0);
    return 0;
}
