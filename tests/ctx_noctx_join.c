/*
 * tests/ctx_noctx_join.c — weft_join on a WEFT_POOL_NO_CTX pool.
 *
 * include/weft.h: "Tasks of this pool do not carry context snapshots.
 * weft_ctx_* still work, but per thread: a task on such a pool sees (and
 * changes) its worker thread's own context." Both halves of a weft_join are
 * tasks of the pool, so each must see (and change) the context of the worker
 * thread that runs it — whether the first half runs inline on the joiner's
 * worker or is stolen by another worker.
 *
 * Each worker first gets a mark of its own in its thread context; then a
 * task joins two halves, the second of which waits until the first was
 * stolen. Both halves must read their own worker's mark; a set made by the
 * stolen half must be what the next task on that worker sees. A join called
 * inside weft_ctx_run gives its halves the worker's context too, not the
 * one weft_ctx_run runs in.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ctx_util.h"

#include <stdio.h>
#include <string.h>

static weft_ctx_var *va;
#define INIT_A V(0xA0)
static unsigned g_n;

static void *mark(int w, uintptr_t base) { return V(base + (unsigned)w); }

struct prime {
    struct ctx_spread *sp;
    uintptr_t          base;
};

static int prime_task(void *arg)
{
    struct prime *pr = arg;
    CHECK_EQ(weft_ctx_set(va, mark(weft_worker_index(), pr->base)), 0);
    ctx_spread_arrive(pr->sp);
    return 0;
}

static void prime_all(weft_pool *p, uintptr_t base)
{
    struct ctx_spread sp;
    ctx_spread_init(&sp, g_n);
    struct prime pr = {&sp, base};
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (unsigned i = 0; i < 4 * g_n; i++)
        CHECK_EQ(weft_spawn(&f, prime_task, &pr), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(ctx_spread_count(&sp), g_n);
}

struct half {
    int          worker;
    void        *got;
    _Atomic(int) started;
    struct half *other;
    bool         wait_other;
    uintptr_t    set_base; /* sets mark(worker, set_base) */
};

static int half_run(void *arg)
{
    struct half *h = arg;
    h->worker = weft_worker_index();
    h->got = weft_ctx_get(va);
    atomic_store(&h->started, 1);
    if (h->wait_other) {
        double end = now_s() + 2.0;
        while (!atomic_load(&h->other->started) && now_s() < end)
            ctx_task_pause();
    }
    CHECK_EQ(weft_ctx_set(va, mark(h->worker, h->set_base)), 0);
    return 0;
}

struct joinres {
    struct half a, b;
};

static int join_task(void *arg)
{
    struct joinres *r = arg;
    memset(r, 0, sizeof *r);
    r->a.other = &r->b;
    r->b.other = &r->a;
    r->b.wait_other = g_n >= 2;
    r->a.set_base = 0x300;
    r->b.set_base = 0x300;
    CHECK_EQ(weft_join(half_run, &r->a, half_run, &r->b), 0);
    return 0;
}

/* A join inside weft_ctx_run on a worker of the pool: its halves are tasks
 * of the pool too, so they see the worker thread's own context, not the
 * context weft_ctx_run runs its function in. */
static int run_join(void *arg)
{
    struct joinres *r = arg;
    CHECK_EQ(weft_join(half_run, &r->a, half_run, &r->b), 0);
    return 0;
}

struct in_run {
    struct joinres r;
    void          *own; /* the worker's context before */
};

static int join_in_ctx_run_task(void *arg)
{
    struct in_run *ir = arg;
    memset(&ir->r, 0, sizeof ir->r);
    ir->r.a.set_base = ir->r.b.set_base = 0x400;
    ir->own = weft_ctx_get(va);
    CHECK_EQ(weft_ctx_set(va, V(0x777)), 0); /* another context to run in */
    weft_ctx *other = weft_ctx_capture();
    CHECK(other != NULL);
    CHECK_EQ(weft_ctx_set(va, ir->own), 0);
    CHECK_EQ(weft_ctx_run(other, run_join, &ir->r), 0);
    weft_ctx_release(other);
    return 0;
}

struct seen {
    int                worker;
    void              *got;
    struct ctx_spread *sp;
};

static int look_task(void *arg)
{
    struct seen *s = arg;
    s->worker = weft_worker_index();
    s->got = weft_ctx_get(va);
    ctx_spread_arrive(s->sp); /* so that every worker runs one */
    return 0;
}

int main(void)
{
    alarm(600);
    setvbuf(stdout, NULL, _IOLBF, 0);
    va = ctx_new_var("a", INIT_A);
    int failures = 0;
    for (size_t k = 0; k < CTX_NSIZES; k++) {
        g_n = ctx_pool_sizes[k];
        weft_pool *p = ctx_pool_new(g_n, WEFT_POOL_NO_CTX);
        prime_all(p, 0x100);
        struct joinres r;
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, p), 0);
        CHECK_EQ(weft_spawn(&f, join_task, &r), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
        bool stolen = r.a.worker != r.b.worker;
        printf("pool of %u: half a on worker %d (%s) read %#lx, expected %#lx; "
               "half b on worker %d read %#lx, expected %#lx\n" /* inline a may also see b's 0x300 set */,
               g_n, r.a.worker, stolen ? "stolen" : "inline", (unsigned long)(uintptr_t)r.a.got,
               (unsigned long)(uintptr_t)mark(r.a.worker, 0x100), r.b.worker,
               (unsigned long)(uintptr_t)r.b.got, (unsigned long)(uintptr_t)mark(r.b.worker, 0x100));
        if (g_n >= 2)
            CHECK(stolen);
        CHECK(r.b.got == mark(r.b.worker, 0x100));
        /* Inline, a runs after b on the same thread: it sees b's set. */
        if (r.a.got != mark(r.a.worker, 0x100) &&
            !(!stolen && r.a.got == mark(r.a.worker, 0x300))) {
            printf("  FAIL: the %s half did not see its worker thread's context\n",
                   stolen ? "stolen" : "inline");
            failures++;
        }

        /* The halves' sets changed their workers' contexts: a task that runs
         * next on those workers sees them. */
        if (g_n >= 2) {
            struct seen s[64];
            memset(s, 0, sizeof s);
            struct ctx_spread sp;
            ctx_spread_init(&sp, g_n);
            for (int i = 0; i < 64; i++)
                s[i].sp = &sp;
            CHECK_EQ(weft_flow_open(&f, p), 0);
            for (int i = 0; i < 64; i++)
                CHECK_EQ(weft_spawn(&f, look_task, &s[i]), 0);
            CHECK_EQ(weft_flow_close(&f), 0);
            int on_a = 0;
            for (int i = 0; i < 64; i++)
                on_a += s[i].worker == r.a.worker;
            printf("  %d of 64 later tasks ran on the stolen half's worker\n", on_a);
            for (int i = 0; i < 64; i++) {
                if (s[i].worker == r.a.worker && s[i].got != mark(r.a.worker, 0x300)) {
                    printf("  FAIL: worker %d reads %#lx after the stolen half set %#lx there\n",
                           s[i].worker, (unsigned long)(uintptr_t)s[i].got,
                           (unsigned long)(uintptr_t)mark(r.a.worker, 0x300));
                    failures++;
                    break;
                }
            }
        }
        if (g_n == 1) {
            /* One worker: both halves run inline, b first. */
            struct in_run ir;
            CHECK_EQ(weft_flow_open(&f, p), 0);
            CHECK_EQ(weft_spawn(&f, join_in_ctx_run_task, &ir), 0);
            CHECK_EQ(weft_flow_close(&f), 0);
            printf("  join inside weft_ctx_run: b read %#lx, a read %#lx, worker's own %#lx\n",
                   (unsigned long)(uintptr_t)ir.r.b.got, (unsigned long)(uintptr_t)ir.r.a.got,
                   (unsigned long)(uintptr_t)ir.own);
            if (ir.r.b.got != ir.own ||
                (ir.r.a.got != ir.own && ir.r.a.got != mark(ir.r.a.worker, 0x400))) {
                printf("  FAIL: a half of a join inside weft_ctx_run did not see its worker "
                       "thread's context\n");
                failures++;
            }
        }
        ctx_pool_free(p);
    }
    if (failures) {
        fprintf(stderr, "ctx_noctx_join: %d failures\n", failures);
        return 1;
    }
    puts("ctx_noctx_join: all tests passed");
    return 0;
}
