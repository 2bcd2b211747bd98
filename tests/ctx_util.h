/*
 * tests/ctx_util.h — small helpers shared by the tests/ctx_*.c integration
 * tests (context snapshots with real pools). Header only; each test file is
 * its own program.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_TESTS_CTX_UTIL_H
#define WEFT_TESTS_CTX_UTIL_H

#include "weft.h"
#include "check.h"
#include "test_common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define V(x) ((void *)(uintptr_t)(x))

static const unsigned ctx_pool_sizes[] = {1, 2, 4};
#define CTX_NSIZES (sizeof ctx_pool_sizes / sizeof ctx_pool_sizes[0])

static inline weft_ctx_var *ctx_new_var(const char *name, void *initial)
{
    weft_ctx_var *v = NULL;
    CHECK_EQ(weft_ctx_var_create(&v, name, initial), 0);
    CHECK(v != NULL);
    return v;
}

static inline weft_pool *ctx_pool_new(unsigned workers, unsigned flags)
{
    weft_pool_config cfg = {.workers = workers, .flags = flags, .name = "ctxt"};
    weft_pool *p = NULL;
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    CHECK_EQ(weft_pool_workers(p), workers);
    return p;
}

static inline void ctx_pool_free(weft_pool *p)
{
    CHECK_EQ(weft_pool_destroy(p), 0);
}

static inline int ctx_noop(void *arg)
{
    (void)arg;
    return 0;
}

/* A pause inside a task that still lets thieves have this worker's private
 * deque items: a push is where the owner notices a thief's request to
 * publish (queue/wq_deque.h), so push (and take back) a no-op now and then
 * instead of only sleeping. Call only from a task on a worker. */
static inline void ctx_task_pause(void)
{
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    CHECK_EQ(weft_spawn(&g, ctx_noop, NULL), 0);
    CHECK_EQ(weft_flow_close(&g), 0);
    sleep_us(50);
}

/* Spreading tasks over workers. Each task that arrives marks its worker and
 * waits (at most a few seconds overall) until `want` distinct workers have
 * arrived, so that with 2+ workers the tasks demonstrably ran on several
 * threads. */
struct ctx_spread {
    _Atomic(uint64_t) mask;
    _Atomic(int)      gave_up;
    unsigned          want;
    double            deadline;
};

static inline void ctx_spread_init(struct ctx_spread *s, unsigned want)
{
    atomic_init(&s->mask, 0);
    atomic_init(&s->gave_up, 0);
    s->want = want > 64 ? 64 : want;
    s->deadline = now_s() + 10.0;
}

static inline unsigned ctx_spread_count(struct ctx_spread *s)
{
    return (unsigned)__builtin_popcountll(atomic_load(&s->mask));
}

static inline void ctx_spread_arrive(struct ctx_spread *s)
{
    int w = weft_worker_index();
    CHECK(w >= 0);
    atomic_fetch_or(&s->mask, 1ull << (w & 63));
    while (ctx_spread_count(s) < s->want && !atomic_load(&s->gave_up)) {
        if (now_s() > s->deadline) {
            atomic_store(&s->gave_up, 1);
            break;
        }
        ctx_task_pause();
    }
}

#endif /* WEFT_TESTS_CTX_UTIL_H */
