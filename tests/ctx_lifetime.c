/*
 * tests/ctx_lifetime.c — lifetimes of context snapshots with real pools
 * (1, 2 and 4 workers). Run under AddressSanitizer/LeakSanitizer, a
 * snapshot freed too early is a heap-use-after-free report and one never
 * freed is a leak report; in the Release build, children check their values
 * after the context they run in would have been freed and reused (the test
 * churns the allocator meanwhile), and repeating the scenarios that start
 * no threads on a warm pool must leave the heap in use where it was
 * (mallinfo2 with a single arena).
 *
 * The scenarios aim at each kind of reference in ctx/wctx.h and sched/:
 *
 *  1. set after open, then spawn: a task opens a flow (its pin is the
 *     task's borrowed snapshot), sets (an owned context that differs from
 *     the pin: the children take references of their own), sets again (the
 *     scope drops the first), spawns into the nested flow and into its
 *     parent's flow, returns while those children still sleep; and the same
 *     with a pin the opener owned (set before open, set again after).
 *  2. a chain of tasks that each set and spawn the next into the root flow
 *     (weft_current_flow) and return before it runs.
 *  3. plain threads inside weft_ctx_run spawning into flows opened
 *     elsewhere: with a task's capture (not the flow's pin: a reference per
 *     task), with a capture of the opener's context (equal to the pin:
 *     borrowed), then releasing the capture at once and the opener setting
 *     anew (only the pin keeps it); and into a flow opened by a task whose
 *     own snapshot is held by its item's reference. Also a task whose
 *     snapshot is borrowed (from its parent's flow's pin, itself borrowed
 *     from the parent's item reference) that sets, then, in weft_ctx_run of
 *     its initial snapshot, spawns into the root flow and returns, its
 *     parent returning too, before that child runs.
 *  4. weft_join: halves borrow the joiner's owned context; a stolen half
 *     spawns into the joiner's flow and opens a flow of its own, and returns;
 *     the joiner sets anew and returns before those children run.
 *  5. cancellation: tasks holding references that are skipped (a failing
 *     sibling, weft_flow_cancel, spawns after the cancel).
 *  6. plain threads that set, spawn into a shared flow, capture, and exit
 *     before their tasks run (the thread-exit release of their context).
 *  7. pool destruction with contexts still captured (borrowed snapshots,
 *     owned ones, nested ones; a WEFT_POOL_NO_CTX pool whose workers' own
 *     contexts were set by tasks): captures run and released afterwards,
 *     some on other threads.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ctx_util.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

static weft_ctx_var *va, *vb;
#define INIT_A V(0xA0)
#define INIT_B V(0xB0)
static unsigned   g_n;
static weft_pool *g_pool;
static _Atomic(uintptr_t) g_val = 0x1000;

/* A fresh value no one else uses. */
static void *fresh(void)
{
    return V(atomic_fetch_add(&g_val, 1) << 4);
}

/* Makes freed blocks of a context's size come back with other contents. */
static void churn(void)
{
    void *b[16];
    for (int i = 0; i < 16; i++) {
        b[i] = aligned_alloc(16, 48 + 16 * (i % 4));
        CHECK(b[i] != NULL);
        memset(b[i], 0xAB, 48 + 16 * (i % 4));
    }
    for (int i = 0; i < 16; i++)
        free(b[i]);
}

/* A child that sleeps, then checks the values of the context it runs in. */
struct slow {
    void        *want_a, *want_b;
    long         nap_us;
    _Atomic(int) done;
};

static int slow_check(void *arg)
{
    struct slow *s = arg;
    if (s->nap_us)
        sleep_us(s->nap_us);
    churn();
    CHECK(weft_ctx_get(va) == s->want_a);
    CHECK(weft_ctx_get(vb) == s->want_b);
    atomic_store(&s->done, 1);
    return 0;
}

static void slow_init(struct slow *s, void *a, void *b, long nap)
{
    s->want_a = a;
    s->want_b = b;
    s->nap_us = nap;
    atomic_init(&s->done, 0);
}

static void slows_done(struct slow *s, int n)
{
    for (int i = 0; i < n; i++)
        CHECK_EQ(atomic_load(&s[i].done), 1);
}

/* ------------------------------------------------------------------------ */
/* 1: set after open, then spawn                                             */
/* ------------------------------------------------------------------------ */

struct sao {
    void       *p_a, *p_b; /* the spawner's values */
    void       *z[6];
    struct slow s[10];
};

static int sao_task(void *arg)
{
    struct sao *t = arg;
    CHECK(weft_ctx_get(va) == t->p_a);
    for (int i = 0; i < 6; i++)
        t->z[i] = fresh();
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0); /* pin: our borrowed snapshot */
    slow_init(&t->s[0], t->p_a, t->p_b, 300);
    CHECK_EQ(weft_spawn(&g, slow_check, &t->s[0]), 0); /* borrows the pin */
    CHECK_EQ(weft_ctx_set(va, t->z[0]), 0);                /* owned, != pin */
    slow_init(&t->s[1], t->z[0], t->p_b, 500);
    CHECK_EQ(weft_spawn(&g, slow_check, &t->s[1]), 0);
    slow_init(&t->s[2], t->z[0], t->p_b, 1000);
    CHECK_EQ(weft_spawn(weft_current_flow(), slow_check, &t->s[2]), 0);
    CHECK_EQ(weft_ctx_set(va, t->z[1]), 0); /* drops z0 from the scope */
    slow_init(&t->s[3], t->z[1], t->p_b, 200);
    CHECK_EQ(weft_spawn(&g, slow_check, &t->s[3]), 0);
    CHECK_EQ(weft_flow_close(&g), 0);

    /* An owned pin: set before the open, set again after. */
    CHECK_EQ(weft_ctx_set(vb, t->z[2]), 0);
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    slow_init(&t->s[4], t->z[1], t->z[2], 500);
    CHECK_EQ(weft_spawn(&g, slow_check, &t->s[4]), 0); /* borrows the owned pin */
    CHECK_EQ(weft_ctx_set(vb, t->z[3]), 0);                 /* scope drops it; pin holds */
    slow_init(&t->s[5], t->z[1], t->z[3], 300);
    CHECK_EQ(weft_spawn(&g, slow_check, &t->s[5]), 0);
    slow_init(&t->s[6], t->z[1], t->z[3], 800);
    CHECK_EQ(weft_spawn(weft_current_flow(), slow_check, &t->s[6]), 0);
    CHECK_EQ(weft_flow_close(&g), 0);

    /* Set, spawn into the parent's flow, return at once. */
    CHECK_EQ(weft_ctx_set(va, t->z[4]), 0);
    slow_init(&t->s[7], t->z[4], t->z[3], 1000);
    CHECK_EQ(weft_spawn(weft_current_flow(), slow_check, &t->s[7]), 0);
    CHECK_EQ(weft_ctx_set(vb, t->z[5]), 0);
    slow_init(&t->s[8], t->z[4], t->z[5], 700);
    CHECK_EQ(weft_spawn(weft_current_flow(), slow_check, &t->s[8]), 0);
    slow_init(&t->s[9], t->z[4], t->z[5], 0);
    CHECK_EQ(weft_spawn(weft_current_flow(), slow_check, &t->s[9]), 0);
    return 0;
}

static void test_set_after_open(void)
{
    enum { N = 64 };
    static struct sao t[N];
    memset(t, 0, sizeof t);
    void *m = fresh();
    CHECK_EQ(weft_ctx_set(va, m), 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    for (int i = 0; i < N; i++) {
        /* Half with the flow's pin, half with a context of their own. */
        if (i % 2)
            CHECK_EQ(weft_ctx_set(vb, fresh()), 0);
        t[i].p_a = weft_ctx_get(va);
        t[i].p_b = weft_ctx_get(vb);
        CHECK_EQ(weft_spawn(&f, sao_task, &t[i]), 0);
    }
    CHECK_EQ(weft_ctx_set(va, fresh()), 0); /* drops the pinned m: the pin holds it */
    CHECK_EQ(weft_flow_close(&f), 0);
    for (int i = 0; i < N; i++)
        slows_done(t[i].s, 10);
}

/* ------------------------------------------------------------------------ */
/* 2: a chain that outlives each link                                        */
/* ------------------------------------------------------------------------ */

enum { CHAIN = 300 };

struct link {
    int          depth;
    void        *want_a;
    struct link *next;
    struct slow  s;
};

static int link_task(void *arg)
{
    struct link *l = arg;
    sleep_us(50);
    churn();
    CHECK(weft_ctx_get(va) == l->want_a);
    if (l->depth + 1 == CHAIN)
        return 0;
    void *mine = fresh();
    CHECK_EQ(weft_ctx_set(va, mine), 0);
    l->next->depth = l->depth + 1;
    l->next->want_a = mine;
    slow_init(&l->s, mine, weft_ctx_get(vb), 100);
    CHECK_EQ(weft_spawn(weft_current_flow(), link_task, l->next), 0);
    CHECK_EQ(weft_spawn(weft_current_flow(), slow_check, &l->s), 0);
    return 0; /* before either runs, typically */
}

static void test_chain(void)
{
    static struct link links[CHAIN];
    memset(links, 0, sizeof links);
    for (int i = 0; i + 1 < CHAIN; i++)
        links[i].next = &links[i + 1];
    links[0].want_a = fresh();
    CHECK_EQ(weft_ctx_set(va, links[0].want_a), 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    CHECK_EQ(weft_spawn(&f, link_task, &links[0]), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    for (int i = 0; i + 1 < CHAIN; i++)
        CHECK_EQ(atomic_load(&links[i].s.done), 1);
}

/* ------------------------------------------------------------------------ */
/* 3: plain threads in weft_ctx_run spawn into flows opened elsewhere         */
/* ------------------------------------------------------------------------ */

enum { KF = 8 };

struct foreign {
    weft_ctx   *cap;
    weft_flow  *into;
    void       *want_a, *want_b, *set_a;
    struct slow before[KF], after[KF];
};

static int foreign_body(void *arg)
{
    struct foreign *fo = arg;
    CHECK(weft_ctx_get(va) == fo->want_a);
    CHECK(weft_ctx_get(vb) == fo->want_b);
    for (int k = 0; k < KF; k++) {
        slow_init(&fo->before[k], fo->want_a, fo->want_b, 100 * k);
        CHECK_EQ(weft_spawn(fo->into, slow_check, &fo->before[k]), 0);
    }
    CHECK_EQ(weft_ctx_set(va, fo->set_a), 0); /* owned by the run's scope */
    for (int k = 0; k < KF; k++) {
        slow_init(&fo->after[k], fo->set_a, fo->want_b, 100 * k);
        CHECK_EQ(weft_spawn(fo->into, slow_check, &fo->after[k]), 0);
    }
    return 0;
}

static void *foreign_thread(void *arg)
{
    struct foreign *fo = arg;
    CHECK_EQ(weft_ctx_set(va, V(0xF0F0)), 0); /* a context of its own */
    CHECK_EQ(weft_ctx_run(fo->cap, foreign_body, fo), 0);
    weft_ctx_release(fo->cap); /* at once: the tasks are still queued */
    fo->cap = NULL;
    CHECK(weft_ctx_get(va) == V(0xF0F0));
    return NULL;
}

static int capture_task(void *arg)
{
    struct foreign *fo = arg;
    CHECK_EQ(weft_ctx_set(va, fo->want_a), 0);
    fo->cap = weft_ctx_capture(); /* owned by our scope, dropped when we return */
    CHECK(fo->cap != NULL);
    return 0;
}

/* A task opens a flow; a plain thread spawns into it in a capture of the
 * task's snapshot (== the flow's pin: borrowed). */
static int opener_task(void *arg)
{
    struct foreign *fo = arg;
    CHECK(weft_ctx_get(va) == fo->want_a);
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    fo->cap = weft_ctx_capture();
    CHECK(fo->cap != NULL);
    fo->into = &g;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, foreign_thread, fo), 0);
    CHECK_EQ(pthread_join(th, NULL), 0); /* blocks this worker: fine here */
    CHECK_EQ(weft_flow_close(&g), 0);
    fo->into = NULL;
    return 0;
}

static void test_foreign(void)
{
    static struct foreign fa, fb, fc;
    memset(&fa, 0, sizeof fa);
    memset(&fb, 0, sizeof fb);
    memset(&fc, 0, sizeof fc);
    void *m1 = fresh(), *mb = fresh();
    CHECK_EQ(weft_ctx_set(va, m1), 0);
    CHECK_EQ(weft_ctx_set(vb, mb), 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0); /* pins m1 (owned by main) */

    /* (a) a task's capture: not the pin. */
    fa.want_a = fresh();
    fa.want_b = mb;
    fa.set_a = fresh();
    fa.into = &f;
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, g_pool), 0);
    CHECK_EQ(weft_spawn(&g, capture_task, &fa), 0);
    CHECK_EQ(weft_flow_close(&g), 0);

    /* (b) a capture of main's context: the pin itself. */
    fb.cap = weft_ctx_capture();
    fb.want_a = m1;
    fb.want_b = mb;
    fb.set_a = fresh();
    fb.into = &f;

    pthread_t ta, tb;
    CHECK_EQ(pthread_create(&ta, NULL, foreign_thread, &fa), 0);
    CHECK_EQ(pthread_create(&tb, NULL, foreign_thread, &fb), 0);
    CHECK_EQ(pthread_join(ta, NULL), 0);
    CHECK_EQ(pthread_join(tb, NULL), 0);
    CHECK_EQ(weft_ctx_set(va, fresh()), 0); /* main drops m1: the pin keeps it */

    /* (c) a task (spawned with a context that is not f's pin, so its item
     * holds the reference) opens a flow a plain thread spawns into. */
    fc.want_a = weft_ctx_get(va);
    fc.want_b = mb;
    fc.set_a = fresh();
    CHECK_EQ(weft_spawn(&f, opener_task, &fc), 0);
    CHECK_EQ(weft_ctx_set(va, fresh()), 0); /* and drops that one too */

    CHECK_EQ(weft_flow_close(&f), 0);
    slows_done(fa.before, KF);
    slows_done(fa.after, KF);
    slows_done(fb.before, KF);
    slows_done(fb.after, KF);
    slows_done(fc.before, KF);
    slows_done(fc.after, KF);
}

/* A task T whose snapshot is borrowed (from the pin of the flow its parent
 * A opened, itself borrowed from A's snapshot, which only A's item reference
 * holds) captures it, sets a value of its own, then, in weft_ctx_run of its
 * initial snapshot, spawns into the root flow (an ancestor: the snapshot is
 * not its pin, so the child takes a reference) and into its own flow (equal
 * to the pin: borrowed), releases the capture and returns; A returns too,
 * dropping the item reference, before the root's child runs. */
struct initial {
    void       *m2, *z;
    weft_flow  *root;
    weft_ctx   *cap;
    struct slow s[3];
};

static int initial_body(void *arg)
{
    struct initial *in = arg;
    CHECK(weft_ctx_get(va) == in->m2);
    slow_init(&in->s[0], in->m2, INIT_B, 3000);
    CHECK_EQ(weft_spawn(in->root, slow_check, &in->s[0]), 0);
    slow_init(&in->s[1], in->m2, INIT_B, 300);
    CHECK_EQ(weft_spawn(weft_current_flow(), slow_check, &in->s[1]), 0);
    return 0;
}

static int initial_T(void *arg)
{
    struct initial *in = arg;
    in->cap = weft_ctx_capture();
    CHECK(in->cap != NULL);
    in->z = fresh();
    CHECK_EQ(weft_ctx_set(va, in->z), 0);
    CHECK_EQ(weft_ctx_run(in->cap, initial_body, in), 0);
    weft_ctx_release(in->cap);
    in->cap = NULL;
    slow_init(&in->s[2], in->z, INIT_B, 2000);
    CHECK_EQ(weft_spawn(in->root, slow_check, &in->s[2]), 0);
    CHECK(weft_ctx_get(va) == in->z);
    return 0;
}

static int initial_A(void *arg)
{
    struct initial *in = arg;
    CHECK(weft_ctx_get(va) == in->m2);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0); /* pin: borrowed m2 */
    CHECK_EQ(weft_spawn(&f, initial_T, in), 0);
    return weft_flow_close(&f); /* then our item's reference on m2 goes */
}

static void test_initial_into_ancestor(void)
{
    enum { N = 16 };
    static struct initial in[N];
    memset(in, 0, sizeof in);
    CHECK_EQ(weft_ctx_set(vb, INIT_B), 0);
    CHECK_EQ(weft_ctx_set(va, fresh()), 0);
    weft_flow root;
    CHECK_EQ(weft_flow_open(&root, g_pool), 0); /* pins main's context */
    for (int i = 0; i < N; i++) {
        in[i].m2 = fresh();
        in[i].root = &root;
        CHECK_EQ(weft_ctx_set(va, in[i].m2), 0); /* != the pin: A's item holds it */
        CHECK_EQ(weft_spawn(&root, initial_A, &in[i]), 0);
    }
    CHECK_EQ(weft_ctx_set(va, fresh()), 0); /* main drops the last m2 */
    CHECK_EQ(weft_flow_close(&root), 0);
    for (int i = 0; i < N; i++)
        slows_done(in[i].s, 3);
}

/* ------------------------------------------------------------------------ */
/* 4: weft_join                                                              */
/* ------------------------------------------------------------------------ */

struct jl {
    void        *z, *zb;
    _Atomic(int) a_started;
    int          a_worker, b_worker;
    struct slow  s[4];
};

static int jl_a(void *arg)
{
    struct jl *j = arg;
    j->a_worker = weft_worker_index();
    atomic_store(&j->a_started, 1);
    CHECK(weft_ctx_get(va) == j->z);
    /* Into the joiner's flow: outlives this half and the joiner. */
    slow_init(&j->s[0], j->z, j->zb, 1000);
    CHECK_EQ(weft_spawn(weft_current_flow(), slow_check, &j->s[0]), 0);
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0); /* pin: the borrowed z */
    slow_init(&j->s[1], j->z, j->zb, 200);
    CHECK_EQ(weft_spawn(&g, slow_check, &j->s[1]), 0);
    void *mine = fresh();
    CHECK_EQ(weft_ctx_set(va, mine), 0);
    slow_init(&j->s[2], mine, j->zb, 300);
    CHECK_EQ(weft_spawn(&g, slow_check, &j->s[2]), 0);
    slow_init(&j->s[3], mine, j->zb, 1500);
    CHECK_EQ(weft_spawn(weft_current_flow(), slow_check, &j->s[3]), 0);
    CHECK_EQ(weft_flow_close(&g), 0);
    return 0;
}

static int jl_b(void *arg)
{
    struct jl *j = arg;
    j->b_worker = weft_worker_index();
    if (g_n >= 2) {
        double end = now_s() + 2.0;
        while (!atomic_load(&j->a_started) && now_s() < end)
            ctx_task_pause();
    }
    return 0;
}

static int jl_task(void *arg)
{
    struct jl *j = arg;
    j->z = fresh();
    j->zb = weft_ctx_get(vb);
    CHECK_EQ(weft_ctx_set(va, j->z), 0); /* owned by this task's scope */
    CHECK_EQ(weft_join(jl_a, j, jl_b, j), 0);
    CHECK_EQ(weft_ctx_set(va, fresh()), 0); /* drops z */
    return 0;
}

static void test_join(void)
{
    enum { N = 32 };
    static struct jl j[N];
    memset(j, 0, sizeof j);
    /* One join at a time, so that idle workers are there to steal. */
    for (int i = 0; i < N; i++) {
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, g_pool), 0);
        CHECK_EQ(weft_spawn(&f, jl_task, &j[i]), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
    }
    int stolen = 0;
    for (int i = 0; i < N; i++) {
        slows_done(j[i].s, 4);
        stolen += j[i].a_worker != j[i].b_worker;
    }
    if (g_n >= 2)
        CHECK(stolen > 0);
}

/* ------------------------------------------------------------------------ */
/* 5: cancellation skips tasks that hold references                          */
/* ------------------------------------------------------------------------ */

static int fail_task(void *arg)
{
    (void)arg;
    return 5;
}

static _Atomic(int) skipped_ran;

static int must_not_run(void *arg)
{
    (void)arg;
    atomic_fetch_add(&skipped_ran, 1);
    return 0;
}

static int cancel_task(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_ctx_set(va, fresh()), 0);
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    CHECK_EQ(weft_ctx_set(va, fresh()), 0); /* != pin: each task a reference */
    CHECK_EQ(weft_spawn(&g, fail_task, NULL), 0);
    for (int i = 0; i < 20; i++)
        CHECK_EQ(weft_spawn(&g, ctx_noop, NULL), 0);
    int r = weft_flow_close(&g);
    CHECK_EQ(r, 5);
    return 0;
}

static void test_cancel(void)
{
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    for (int i = 0; i < 16; i++)
        CHECK_EQ(weft_spawn(&f, cancel_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);

    /* Canceled from outside; later spawns are skipped. */
    atomic_store(&skipped_ran, 0);
    CHECK_EQ(weft_ctx_set(va, fresh()), 0);
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    CHECK_EQ(weft_ctx_set(va, fresh()), 0);
    for (int i = 0; i < 20; i++)
        CHECK_EQ(weft_spawn(&f, ctx_noop, NULL), 0);
    weft_flow_cancel(&f);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(weft_ctx_set(vb, fresh()), 0);
        CHECK_EQ(weft_spawn(&f, must_not_run, NULL), 0);
    }
    CHECK_EQ(weft_flow_close(&f), ECANCELED);
    CHECK_EQ(atomic_load(&skipped_ran), 0);
}

/* ------------------------------------------------------------------------ */
/* 6: threads that exit before their tasks run                               */
/* ------------------------------------------------------------------------ */

enum { NEXIT = 6 };

struct exiter {
    weft_flow  *shared;
    void       *a, *b;
    weft_ctx   *cap;
    struct slow s[KF];
};

static void *exit_thread(void *arg)
{
    struct exiter *e = arg;
    e->a = fresh();
    e->b = fresh();
    CHECK_EQ(weft_ctx_set(va, e->a), 0);
    CHECK_EQ(weft_ctx_set(vb, e->b), 0);
    for (int k = 0; k < KF; k++) {
        slow_init(&e->s[k], e->a, e->b, 2000 + 200 * k);
        CHECK_EQ(weft_spawn(e->shared, slow_check, &e->s[k]), 0);
    }
    e->cap = weft_ctx_capture();
    CHECK(e->cap != NULL);
    return NULL; /* our context is released here; the tasks hold theirs */
}

struct expect {
    void *a, *b;
};

static int expect_ab(void *arg)
{
    struct expect *x = arg;
    CHECK(weft_ctx_get(va) == x->a);
    CHECK(weft_ctx_get(vb) == x->b);
    return 0;
}

static void test_thread_exit(void)
{
    static struct exiter e[NEXIT];
    memset(e, 0, sizeof e);
    weft_flow shared;
    CHECK_EQ(weft_flow_open(&shared, g_pool), 0);
    pthread_t th[NEXIT];
    for (int i = 0; i < NEXIT; i++) {
        e[i].shared = &shared;
        CHECK_EQ(pthread_create(&th[i], NULL, exit_thread, &e[i]), 0);
    }
    for (int i = 0; i < NEXIT; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    churn();
    CHECK_EQ(weft_flow_close(&shared), 0);
    for (int i = 0; i < NEXIT; i++) {
        slows_done(e[i].s, KF);
        struct expect x = {e[i].a, e[i].b};
        CHECK_EQ(weft_ctx_run(e[i].cap, expect_ab, &x), 0);
        weft_ctx_release(e[i].cap);
    }
}

/* ------------------------------------------------------------------------ */
/* 7: pool destruction with contexts still captured                          */
/* ------------------------------------------------------------------------ */

enum { NKEEP = 96 };

struct kept {
    int       idx;
    weft_ctx *cap;
    void     *a, *b;
};

static int keep_leaf(void *arg)
{
    struct kept *k = arg;
    k->a = weft_ctx_get(va);
    k->b = weft_ctx_get(vb);
    k->cap = weft_ctx_capture();
    CHECK(k->cap != NULL);
    return 0;
}

static int keep_task(void *arg)
{
    struct kept *k = arg;
    switch (k->idx % 3) {
    case 0: /* the borrowed spawn-time snapshot */
        return keep_leaf(k);
    case 1: /* an owned one */
        CHECK_EQ(weft_ctx_set(vb, fresh()), 0);
        return keep_leaf(k);
    default: { /* in a nested flow, after a set after its open */
        weft_flow g;
        CHECK_EQ(weft_flow_open(&g, NULL), 0);
        CHECK_EQ(weft_ctx_set(va, fresh()), 0);
        CHECK_EQ(weft_spawn(&g, keep_leaf, k), 0);
        return weft_flow_close(&g);
    }
    }
}

static void *release_half(void *arg)
{
    struct kept *k = arg;
    for (int i = 0; i < NKEEP; i += 2) {
        struct expect x = {k[i].a, k[i].b};
        CHECK_EQ(weft_ctx_run(k[i].cap, expect_ab, &x), 0);
        weft_ctx_release(k[i].cap);
    }
    return NULL;
}

static void release_kept(struct kept *k)
{
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, release_half, k), 0);
    for (int i = 1; i < NKEEP; i += 2) {
        struct expect x = {k[i].a, k[i].b};
        CHECK_EQ(weft_ctx_run(k[i].cap, expect_ab, &x), 0);
        weft_ctx_release(k[i].cap);
    }
    CHECK_EQ(pthread_join(th, NULL), 0);
}

/* On a NO_CTX pool: the worker thread's own context. */
static int keep_noctx(void *arg)
{
    struct kept *k = arg;
    CHECK_EQ(weft_ctx_set(va, fresh()), 0);
    if (k->idx % 2)
        CHECK_EQ(weft_ctx_set(vb, fresh()), 0);
    return keep_leaf(k);
}

static void test_destroy_with_captures(void)
{
    static struct kept k[NKEEP];
    /* A pool of its own, destroyed here. */
    weft_pool *p = ctx_pool_new(g_n, 0);
    CHECK_EQ(weft_ctx_set(va, fresh()), 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (int i = 0; i < NKEEP; i++) {
        memset(&k[i], 0, sizeof k[i]);
        k[i].idx = i;
        if (i % 5 == 0)
            CHECK_EQ(weft_ctx_set(vb, fresh()), 0);
        CHECK_EQ(weft_spawn(&f, keep_task, &k[i]), 0);
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    ctx_pool_free(p);
    churn();
    release_kept(k);

    p = ctx_pool_new(g_n, WEFT_POOL_NO_CTX);
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (int i = 0; i < NKEEP; i++) {
        memset(&k[i], 0, sizeof k[i]);
        k[i].idx = i;
        CHECK_EQ(weft_spawn(&f, keep_noctx, &k[i]), 0);
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    ctx_pool_free(p); /* its workers' own contexts go with their threads */
    churn();
    release_kept(k);
}

/* ------------------------------------------------------------------------ */

static size_t heap_in_use(void)
{
#if TEST_SANITIZED
    return 0; /* the sanitizers' allocators: LeakSanitizer checks instead */
#else
    return mallinfo2().uordblks;
#endif
}

int main(void)
{
    alarm(1500);
    setvbuf(stdout, NULL, _IOLBF, 0);
#if !TEST_SANITIZED
    /* One arena, so that mallinfo2 sees every thread's blocks. */
    mallopt(M_ARENA_MAX, 1);
#endif
    va = ctx_new_var("a", INIT_A);
    vb = ctx_new_var("b", INIT_B);
    int rounds = TEST_SANITIZED ? 2 : 3;

    for (size_t s = 0; s < CTX_NSIZES; s++) {
        g_n = ctx_pool_sizes[s];
        printf("pool of %u workers\n", g_n);
        g_pool = ctx_pool_new(g_n, 0);
        for (int r = 0; r < rounds; r++) {
#define RUN(t)                                                                      \
    do {                                                                            \
        double t0_ = now_s();                                                     \
        size_t h0_ = heap_in_use();                                                 \
        t();                                                                        \
        if (getenv("CTX_VERBOSE"))                                                  \
            printf("  %-28s %7.3f s, heap %+ld\n", #t, now_s() - t0_,             \
                   (long)heap_in_use() - (long)h0_);                                \
    } while (0)
            RUN(test_set_after_open);
            RUN(test_chain);
            RUN(test_foreign);
            RUN(test_initial_into_ancestor);
            RUN(test_join);
            RUN(test_cancel);
            RUN(test_thread_exit);
            RUN(test_destroy_with_captures);
        }

        /* Memory for snapshots is bounded by what is live: the scenarios
         * that create no threads, repeated on a warm pool, leave the heap
         * where it was (thread creation has glibc caches of its own). */
        CHECK_EQ(weft_ctx_set(va, V(1)), 0);
        size_t before = heap_in_use();
        for (int r = 0; r < 4; r++) {
            test_set_after_open();
            test_chain();
            test_join();
            test_cancel();
        }
        CHECK_EQ(weft_ctx_set(va, V(2)), 0); /* main's context: same size */
        size_t after = heap_in_use();
        printf("  heap in use: %zu bytes before, %zu after 4 more rounds\n", before, after);
        CHECK(after <= before + 4096);
        ctx_pool_free(g_pool);
    }
    puts("ctx_lifetime: all tests passed");
    return 0;
}
