/*
 * bench/deque_micro.c — see deque_micro.h.
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include "deque_micro.h"
#include "timing.h"

/* queue/wq_deque.h, found by bench/CMakeLists.txt. */
#ifndef WEFT_BENCH_WQ_HEADER
#define WEFT_BENCH_WQ_HEADER "queue/wq_deque.h"
#endif
#include WEFT_BENCH_WQ_HEADER

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

__attribute__((noinline)) static uint64_t dq_plain_fn(uint64_t x)
{
    __asm__ volatile("" ::: "memory");
    return x + 1;
}

uint64_t dq_call_loop(size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += dq_plain_fn(i);
    return s;
}

int dq_push_take(size_t n)
{
    wq_deque d;
    int rc = wq_deque_init(&d, 10);
    if (rc)
        return rc;
    uint64_t sum = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        wq_item it = {{(uintptr_t)i, 0, 0, 0}}, out;
        rc = wq_deque_push(&d, &it);
        if (!rc && !wq_deque_take(&d, &out))
            rc = -1;
        if (!rc)
            sum += out.w[0];
    }
    wq_deque_destroy(&d);
    if (!rc && sum != (uint64_t)n * (n - 1) / 2)
        rc = -1;
    return rc;
}

int dq_push_batch_take(size_t n, size_t batch)
{
    wq_deque d;
    int rc = wq_deque_init(&d, 10);
    if (rc)
        return rc;
    uint64_t sum = 0;
    for (size_t done = 0; done < n && !rc; done += batch) {
        size_t k = n - done < batch ? n - done : batch;
        for (size_t i = 0; i < k && !rc; i++) {
            wq_item it = {{(uintptr_t)(done + i), 0, 0, 0}};
            rc = wq_deque_push(&d, &it);
        }
        for (size_t i = 0; i < k && !rc; i++) {
            wq_item out;
            if (!wq_deque_take(&d, &out))
                rc = -1;
            else
                sum += out.w[0];
        }
    }
    wq_deque_destroy(&d);
    if (!rc && sum != (uint64_t)n * (n - 1) / 2)
        rc = -1;
    return rc;
}

typedef struct thief {
    wq_deque        *d;
    _Atomic(int)    *go;
    uint64_t         count, sum;
    int64_t          end_ns;
    pthread_t        tid;
} thief;

static void *thief_main(void *p)
{
    thief *t = p;
    while (!atomic_load_explicit(t->go, memory_order_acquire))
        ;
    for (;;) {
        wq_item it;
        int r = wq_deque_steal(t->d, &it);
        if (r == WQ_STOLEN) {
            t->count++;
            t->sum += it.w[0];
        } else if (r == WQ_EMPTY) {
            break;
        }
    }
    t->end_ns = bench_now_ns();
    return NULL;
}

int dq_steal(size_t n, unsigned thieves, double *seconds)
{
    if (thieves < 1 || thieves > 8)
        return EINVAL;
    wq_deque d;
    int rc = wq_deque_init(&d, 10);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && !rc; i++) {
        wq_item it = {{(uintptr_t)i, 0, 0, 0}};
        rc = wq_deque_push(&d, &it);
    }
    if (rc) {
        wq_deque_destroy(&d);
        return rc;
    }
    wq_deque_publish(&d, true);

    _Atomic(int) go;
    atomic_init(&go, 0);
    thief th[8];
    unsigned started = 0;
    for (unsigned i = 0; i < thieves; i++) {
        th[i] = (thief){.d = &d, .go = &go};
        if (pthread_create(&th[i].tid, NULL, thief_main, &th[i]) != 0) {
            rc = EAGAIN;
            break;
        }
        started++;
    }
    bench_sleep_ns(1000000); /* let them reach the start line */
    int64_t t0 = bench_now_ns(), t1 = t0;
    atomic_store_explicit(&go, 1, memory_order_release);
    uint64_t count = 0, sum = 0;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(th[i].tid, NULL);
        count += th[i].count;
        sum += th[i].sum;
        if (th[i].end_ns > t1)
            t1 = th[i].end_ns;
    }
    wq_deque_destroy(&d);
    *seconds = (double)(t1 - t0) * 1e-9;
    if (!rc && (count != n || sum != (uint64_t)n * (n - 1) / 2))
        rc = -1;
    return rc;
}
