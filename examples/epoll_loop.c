/*
 * examples/epoll_loop.c — an epoll loop that keeps CPU work running on weft
 * and never blocks on it. A timerfd ticks every millisecond; the loop keeps
 * a few flows of tens of thousands of tiny tasks in flight, some with a
 * failing task, some canceled half-way, and closes each one with
 * weft_flow_close_async. Each flow's done callback (on a worker) puts the
 * request on a lock-free list and writes an eventfd; the loop drains the
 * list when the eventfd is readable.
 *
 * It checks what the header promises: every done exactly once with the
 * close's result, on a worker, in the context the loop had at the call; the
 * misuse errors; weft_pool_destroy's EBUSY while a done is still running.
 * And it counts the ticks the loop handled while some flow was unfinished:
 * the loop kept running while weft worked. The worst gap between ticks is
 * printed, not checked (it depends on the machine's load).
 *
 *   cc -O2 epoll_loop.c -lweft && ./a.out
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CLOCK_MONOTONIC and eventfd/timerfd under -std=c11 */
#endif
#include <weft.h>

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

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
    TASKS = SANITIZED ? 2000 : 20000, /* tiny tasks per flow */
    IN_FLIGHT = 4,                    /* flows open at once */
    MIN_FLOWS = 60,                   /* then stop once enough ticks were seen */
    MAX_FLOWS = 2000,                 /* a bound in case ticks are scarce */
    MIN_PENDING_TICKS = 20, /* ticks handled while a flow was unfinished */
    GATED = 5,              /* this request's done waits for the loop */
};

/* A failed check: exit at once, from whichever thread (a worker too). */
#define EXPECT(cond)                                                            \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "epoll_loop: %s:%d: check failed: %s\n", __FILE__,  \
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
    weft_flow      flow; /* first: requests are aligned_alloc'd at 64 */
    request       *next; /* on the completion list */
    int            id, kind, expect;
    int            fail_at, cancel_at;
    unsigned char  hit[TASKS]; /* written by the tasks, read by done */
    part           parts[TASKS];
    /* written by done, read by the loop after it took the request */
    atomic_int     calls;
    int            result, worker, ran;
    uintptr_t      seen_tag;
};

static weft_ctx_var *tag;
static int efd;                         /* done -> loop: "the list has news" */
static _Atomic(request *) completed;    /* pushed by done, taken by the loop */
static atomic_int unfinished;           /* flows whose done has not run */
static atomic_int gate_entered, gate_open;

static void push_completed(request *r)
{
    request *head = atomic_load_explicit(&completed, memory_order_relaxed);
    do
        r->next = head;
    /* release: pairs with the acquire exchange in take_completed */
    while (!atomic_compare_exchange_weak_explicit(&completed, &head, r, memory_order_release,
                                                  memory_order_relaxed));
}

static request *take_completed(void)
{
    /* acquire: pairs with the release CAS in push_completed. Taking the
     * whole list at once leaves no ABA to worry about. */
    return atomic_exchange_explicit(&completed, NULL, memory_order_acquire);
}

static void wake_loop(void)
{
    uint64_t one = 1;
    EXPECT(write(efd, &one, sizeof one) == sizeof one);
}

static int part_task(void *arg)
{
    part *p = arg;
    p->r->hit[p->i] = 1;
    return p->i == p->r->fail_at ? p->r->expect : 0;
}

/* The only task the loop spawns: the fan-out runs on a worker, so the loop
 * spends one spawn per flow. Its spawns come after the async close, which
 * is fine: a flow's own tasks may spawn into it until it is done. */
static int root_task(void *arg)
{
    request *r = arg;
    weft_flow *flow = weft_current_flow();
    for (int i = 0; i < TASKS; i++) {
        if (i == r->cancel_at)
            weft_flow_cancel(flow); /* the rest are skipped */
        EXPECT(weft_spawn(flow, part_task, &r->parts[i]) == 0);
    }
    return 0;
}

/* On a worker, once every task of the flow has finished. */
static void on_done(void *arg, int result)
{
    request *r = arg;
    atomic_fetch_add_explicit(&r->calls, 1, memory_order_relaxed);
    r->result = result;
    r->worker = weft_worker_index();
    r->seen_tag = (uintptr_t)weft_ctx_get(tag);
    int ran = 0;
    for (int i = 0; i < TASKS; i++)
        ran += r->hit[i];
    r->ran = ran;
    if (r->id == GATED) {
        /* Held back until the loop has seen weft_pool_destroy say EBUSY. */
        atomic_store_explicit(&gate_entered, 1, memory_order_relaxed);
        wake_loop();
        /* acquire: pairs with the loop's release store of gate_open */
        while (!atomic_load_explicit(&gate_open, memory_order_acquire))
            sched_yield();
    }
    atomic_fetch_sub_explicit(&unfinished, 1, memory_order_relaxed);
    push_completed(r); /* the last touch of r: it is the loop's now */
    wake_loop();
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void start(request *r, weft_pool *pool, int id)
{
    memset(r->hit, 0, sizeof r->hit);
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
    EXPECT(weft_flow_close_async(&r->flow, NULL, r) == EINVAL); /* refused: still open */

    atomic_fetch_add_explicit(&unfinished, 1, memory_order_relaxed);
    /* done runs in the context we have at the call */
    EXPECT(weft_ctx_set(tag, (void *)(uintptr_t)(id + 1)) == 0);
    EXPECT(weft_flow_close_async(&r->flow, on_done, r) == 0);
    EXPECT(weft_ctx_set(tag, NULL) == 0);

    /* r stays ours until its done hands it back, so these are safe */
    EXPECT(weft_flow_close_async(&r->flow, on_done, r) == EINVAL); /* closed already */
    EXPECT(weft_spawn(&r->flow, part_task, &r->parts[0]) == EINVAL);
}

static void check(const request *r, unsigned workers)
{
    EXPECT(atomic_load_explicit(&r->calls, memory_order_relaxed) == 1);
    EXPECT(r->result == r->expect);
    EXPECT(r->worker >= 0 && (unsigned)r->worker < workers);
    EXPECT(r->seen_tag == (uintptr_t)(r->id + 1));
    if (r->kind == OK)
        EXPECT(r->ran == TASKS);
    else if (r->kind == FAILS)
        EXPECT(r->hit[r->fail_at] == 1);
    else
        EXPECT(r->ran <= r->cancel_at);
}

int main(void)
{
    weft_pool *pool;
    weft_pool_config cfg = {.name = "ep"};
    EXPECT(weft_pool_create(&pool, &cfg) == 0);
    unsigned workers = weft_pool_workers(pool);
    EXPECT(weft_ctx_var_create(&tag, "request", NULL) == 0);
    EXPECT(weft_flow_close_async(NULL, on_done, NULL) == EINVAL);

    efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    EXPECT(efd >= 0 && tfd >= 0 && ep >= 0);
    struct itimerspec every_ms = {{0, 1000000}, {0, 1000000}};
    EXPECT(timerfd_settime(tfd, 0, &every_ms, NULL) == 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = tfd};
    EXPECT(epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) == 0);
    ev.data.fd = efd;
    EXPECT(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0);

    request *slot[IN_FLIGHT];
    int started = 0, finished = 0, by_kind[3] = {0, 0, 0};
    for (int i = 0; i < IN_FLIGHT; i++) {
        slot[i] = aligned_alloc(64, (sizeof(request) + 63) / 64 * 64);
        EXPECT(slot[i] != NULL);
        start(slot[i], pool, started++);
    }
    request *idle[IN_FLIGHT];
    int nidle = 0;
    long ticks = 0, pending_ticks = 0;
    double last_tick = now_s(), worst_gap = 0;
    int saw_ebusy = 0;

    while (finished < started) {
        struct epoll_event evs[2];
        int n = epoll_wait(ep, evs, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        EXPECT(n > 0);
        for (int e = 0; e < n; e++) {
            uint64_t count;
            if (evs[e].data.fd == tfd) {
                if (read(tfd, &count, sizeof count) != sizeof count)
                    continue;
                double t = now_s();
                if (t - last_tick > worst_gap)
                    worst_gap = t - last_tick;
                last_tick = t;
                ticks++;
                if (atomic_load_explicit(&unfinished, memory_order_relaxed) > 0)
                    pending_ticks++;
                continue;
            }
            if (read(efd, &count, sizeof count) != sizeof count)
                continue;
            if (atomic_load_explicit(&gate_entered, memory_order_relaxed) && !saw_ebusy) {
                /* A done is running: the pool must not go away under it. */
                EXPECT(weft_pool_destroy(pool) == EBUSY);
                saw_ebusy = 1;
                /* release: pairs with the acquire load in on_done */
                atomic_store_explicit(&gate_open, 1, memory_order_release);
            }
            for (request *r = take_completed(), *next; r; r = next) {
                next = r->next;
                check(r, workers);
                by_kind[r->kind]++;
                finished++;
                idle[nidle++] = r;
            }
        }
        int enough = started >= MIN_FLOWS && pending_ticks >= MIN_PENDING_TICKS;
        while (nidle > 0 && !enough && started < MAX_FLOWS)
            start(idle[--nidle], pool, started++);
    }
    for (int i = 0; i < nidle; i++)
        free(idle[i]);

    printf("epoll_loop: %d flows (%d ok, %d failed, %d canceled) of %d tasks, %d workers\n",
           started, by_kind[OK], by_kind[FAILS], by_kind[CANCELED], TASKS, workers);
    printf("epoll_loop: %ld ticks, %ld while a flow was unfinished; worst gap between ticks "
           "%.2f ms (timing: machine-dependent, not checked)\n",
           ticks, pending_ticks, worst_gap * 1e3);
    EXPECT(saw_ebusy);
    EXPECT(pending_ticks >= MIN_PENDING_TICKS);

    /* The last done may still be returning (it handed its request over
     * just before): EBUSY until it has. */
    int err;
    while ((err = weft_pool_destroy(pool)) == EBUSY)
        sched_yield();
    EXPECT(err == 0);
    close(ep);
    close(tfd);
    close(efd);
    return 0;
}
