/*
 * examples/nested_library.c — a library that uses weft inside, called from
 * wherever its users happen to be. lib_checksum() opens a flow, spawns its
 * chunks and waits with weft_flow_close; its callers need not know. Here it
 * is called, all at the same time:
 *   - from tasks on the default pool, the pool it uses itself (more such
 *     tasks than workers: a naive pool deadlocks here, every worker waiting
 *     on work queued behind it);
 *   - from tasks of another pool with a single worker;
 *   - from an external thread;
 *   - from an epoll loop's timer callback, which must not block: it runs
 *     the call in a task and closes that flow with weft_flow_close_async,
 *     whose done writes an eventfd;
 * in two flavours: on the default pool, and on a pool the library creates
 * for the call and destroys after it. Its chunks call it again, one level
 * down, so it also runs nested in itself. Every call must return 0 and the
 * right checksum: no deadlock, no "already running".
 *
 *   cc -O2 nested_library.c -lweft -lpthread && ./a.out
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CLOCK_MONOTONIC and eventfd/timerfd under -std=c11 */
#endif
#include <weft.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define EXPECT(cond)                                                            \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "nested_library: %s:%d: check failed: %s\n",        \
                    __FILE__, __LINE__, #cond);                                 \
            fflush(stderr);                                                     \
            _Exit(1);                                                           \
        }                                                                       \
    } while (0)

enum {
    CALLS = 24,   /* library calls from each kind of caller */
    N = 1 << 14,  /* elements per call */
    CHUNKS = 16,
};

/* ---- the library ------------------------------------------------------- */

static uint64_t element(uint64_t seed, uint64_t i)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + i;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    return x ^ (x >> 27);
}

typedef struct chunk {
    uint64_t seed, begin, end, sum;
    int      depth, own_pool;
} chunk;

int lib_checksum(uint64_t seed, int depth, int own_pool, uint64_t *out);

static int chunk_task(void *arg)
{
    chunk *c = arg;
    uint64_t s = 0;
    for (uint64_t i = c->begin; i < c->end; i++)
        s += element(c->seed, i);
    if (c->depth > 0 && c->begin == 0) {
        /* the library inside itself: the first chunk calls it once more */
        uint64_t inner;
        int err = lib_checksum(c->seed + 1, c->depth - 1, c->own_pool, &inner);
        if (err)
            return err;
        s += inner;
    }
    c->sum = s;
    return 0;
}

/* Sums element(seed, i) over [0, N), plus, at depth > 0, the checksum of
 * seed + 1 one level down. On the default pool, or (own_pool) on a pool of
 * its own for this call. Waits: callable from anywhere but from a thread
 * that must not block. */
int lib_checksum(uint64_t seed, int depth, int own_pool, uint64_t *out)
{
    weft_pool *pool = NULL;
    if (own_pool) {
        weft_pool_config cfg = {.workers = 2, .name = "lib"};
        int err = weft_pool_create(&pool, &cfg);
        if (err)
            return err;
    } else if ((pool = weft_default_pool()) == NULL) {
        return ENOMEM;
    }
    chunk c[CHUNKS];
    weft_flow flow;
    int err = weft_flow_open(&flow, pool);
    for (int k = 0; k < CHUNKS && !err; k++) {
        c[k] = (chunk){seed, (uint64_t)k * N / CHUNKS, (uint64_t)(k + 1) * N / CHUNKS, 0, depth,
                       own_pool};
        err = weft_spawn(&flow, chunk_task, &c[k]);
    }
    int closed = weft_flow_close(&flow);
    err = err ? err : closed;
    uint64_t s = 0;
    for (int k = 0; k < CHUNKS; k++)
        s += c[k].sum;
    *out = s;
    if (own_pool) {
        int destroyed = weft_pool_destroy(pool);
        err = err ? err : destroyed;
    }
    return err;
}

/* ---- the callers ------------------------------------------------------- */

static uint64_t expected(uint64_t seed, int depth)
{
    uint64_t s = 0;
    for (uint64_t i = 0; i < N; i++)
        s += element(seed, i);
    return depth > 0 ? s + expected(seed + 1, depth - 1) : s;
}

typedef struct call {
    weft_flow flow; /* the loop's calls: closed async */
    uint64_t  seed, sum;
    int       depth, own_pool, err;
    int       done_calls, worker;
    struct call *next;
} call;

static call calls[4][CALLS]; /* per caller kind */
static const char *kinds[4] = {"default-pool task", "other-pool task", "external thread",
                               "event loop"};

static void setup(int kind)
{
    for (int i = 0; i < CALLS; i++) {
        call *c = &calls[kind][i];
        c->seed = (uint64_t)kind * 1000 + (uint64_t)i;
        c->depth = i % 3 == 0 ? 1 : 0;
        c->own_pool = i % 4 == 1;
        c->err = -1;
    }
}

static int call_task(void *arg)
{
    call *c = arg;
    c->err = lib_checksum(c->seed, c->depth, c->own_pool, &c->sum);
    return 0;
}

/* Runs kind's calls as tasks of a flow on pool (NULL: the default pool). */
static void *tasks_thread(void *arg)
{
    int kind = (int)(intptr_t)arg;
    weft_pool *pool = NULL;
    if (kind == 1) {
        weft_pool_config cfg = {.workers = 1, .name = "app"};
        EXPECT(weft_pool_create(&pool, &cfg) == 0);
    }
    weft_flow flow;
    EXPECT(weft_flow_open(&flow, pool) == 0);
    for (int i = 0; i < CALLS; i++)
        EXPECT(weft_spawn(&flow, call_task, &calls[kind][i]) == 0);
    EXPECT(weft_flow_close(&flow) == 0);
    if (pool)
        EXPECT(weft_pool_destroy(pool) == 0);
    return NULL;
}

static void *external_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < CALLS; i++)
        call_task(&calls[2][i]);
    return NULL;
}

/* The loop's side: done hands the call back through a list and an eventfd. */
static int efd;
static _Atomic(call *) completed;

static void call_done(void *arg, int result)
{
    call *c = arg;
    EXPECT(result == 0); /* call_task returns 0; c->err has the library's */
    c->done_calls++;
    c->worker = weft_worker_index();
    call *head = atomic_load_explicit(&completed, memory_order_relaxed);
    do
        c->next = head;
    /* release: pairs with the acquire exchange in event_loop */
    while (!atomic_compare_exchange_weak_explicit(&completed, &head, c, memory_order_release,
                                                  memory_order_relaxed));
    uint64_t one = 1;
    EXPECT(write(efd, &one, sizeof one) == sizeof one);
}

/* Every tick starts one call, until all are started; the loop ends when
 * all came back. It never waits on weft: ticks keep coming meanwhile. */
static long event_loop(void)
{
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
    int started = 0, back = 0;
    long ticks = 0;
    while (back < CALLS) {
        struct epoll_event evs[2];
        int n = epoll_wait(ep, evs, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        EXPECT(n > 0);
        for (int e = 0; e < n; e++) {
            uint64_t count;
            if (read(evs[e].data.fd, &count, sizeof count) != sizeof count)
                continue;
            if (evs[e].data.fd == efd) {
                /* acquire: pairs with the release CAS in call_done */
                for (call *c = atomic_exchange_explicit(&completed, NULL, memory_order_acquire);
                     c; c = c->next)
                    back++;
                continue;
            }
            ticks++;
            if (started < CALLS) {
                /* A blocking call would stall the loop: run it in a task. */
                call *c = &calls[3][started++];
                EXPECT(weft_flow_open(&c->flow, NULL) == 0);
                EXPECT(weft_spawn(&c->flow, call_task, c) == 0);
                EXPECT(weft_flow_close_async(&c->flow, call_done, c) == 0);
            }
        }
    }
    close(ep);
    close(tfd);
    close(efd);
    return ticks;
}

int main(void)
{
    for (int k = 0; k < 4; k++)
        setup(k);
    pthread_t t[3];
    EXPECT(pthread_create(&t[0], NULL, tasks_thread, (void *)(intptr_t)0) == 0);
    EXPECT(pthread_create(&t[1], NULL, tasks_thread, (void *)(intptr_t)1) == 0);
    EXPECT(pthread_create(&t[2], NULL, external_thread, NULL) == 0);
    long ticks = event_loop();
    for (int i = 0; i < 3; i++)
        EXPECT(pthread_join(t[i], NULL) == 0);

    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < CALLS; i++) {
            call *c = &calls[k][i];
            EXPECT(c->err == 0);
            EXPECT(c->sum == expected(c->seed, c->depth));
            if (k == 3)
                EXPECT(c->done_calls == 1 && c->worker >= 0);
        }
        printf("nested_library: %d calls from a %s: all 0, checksums right\n", CALLS, kinds[k]);
    }
    printf("nested_library: the loop handled %ld ticks meanwhile\n", ticks);
    EXPECT(ticks >= CALLS); /* it started one call per tick */
    /* The last done may still be returning: EBUSY until it has. */
    int err;
    while ((err = weft_default_pool_shutdown()) == EBUSY)
        sched_yield();
    EXPECT(err == 0);
    return 0;
}
