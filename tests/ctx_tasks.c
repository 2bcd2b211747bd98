/*
 * tests/ctx_tasks.c — context snapshots carried by tasks on real pools
 * (issue 4's semantics), each with pools of 1, 2 and 4 workers.
 *
 *  1. spawn from a plain thread: a task sees the values its spawner had at
 *     the moment of weft_spawn, whichever worker runs it (worker indices are
 *     recorded to show several threads ran them); what the spawner sets
 *     afterwards never reaches it (set v1, spawn, set v2, spawn, ...).
 *  2. the same with a task as the spawner, into a nested flow and into its
 *     own flow (weft_current_flow); grandchildren inherit too.
 *  3. weft_join: both halves see the joiner's context (also when the first
 *     half is stolen: checked that it was, with 2+ workers); sets inside a
 *     half stay there; a recursive join tree that sets at every other level;
 *     weft_join from a plain thread (default pool); weft_for's pieces see
 *     the caller's context, from a plain thread and from a task.
 *  4. weft_ctx_set in a task changes that task only: the task and what it
 *     spawns afterwards (into its parent's flow and into a nested flow) see
 *     it; what it spawned before, its parent and a concurrently running
 *     sibling never do.
 *  5. 100,000 tasks (half spawned by a plain thread, half by a task) that
 *     each set private values and check them before and after spawning a
 *     child into a nested flow (closed again) and into their parent's flow;
 *     each starts from its spawner's values, never from the previous task's
 *     on that worker; the spawners' values are unchanged after close.
 *  6. four plain threads with their own contexts spawn into one shared flow
 *     and into flows of their own; a new thread starts empty.
 *  7. WEFT_POOL_NO_CTX: tasks carry no snapshot: a task sees (and changes)
 *     its worker thread's own context, never its spawner's (include/weft.h).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ctx_util.h"

#include <stdio.h>
#include <string.h>

static weft_ctx_var *va, *vb;
#define INIT_A V(0xA0)
#define INIT_B NULL

static unsigned g_n; /* workers in the pool under test */

static unsigned distinct_workers(const int *idx, size_t n, size_t stride)
{
    uint64_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int w = *(const int *)((const char *)idx + i * stride);
        if (w >= 0)
            m |= 1ull << (w & 63);
    }
    return (unsigned)__builtin_popcountll(m);
}

/* ------------------------------------------------------------------------ */
/* 1, 2: a task sees its spawner's context as it was at the spawn            */
/* ------------------------------------------------------------------------ */

struct rec {
    void *want_a, *want_b;
    void *got_a, *got_b, *got_a_late, *child_a, *child_b;
    int   worker;
    struct ctx_spread *sp;
};

static int rec_child(void *arg)
{
    struct rec *r = arg;
    r->child_a = weft_ctx_get(va);
    r->child_b = weft_ctx_get(vb);
    return 0;
}

static int rec_task(void *arg)
{
    struct rec *r = arg;
    r->worker = weft_worker_index();
    CHECK(r->worker >= 0);
    r->got_a = weft_ctx_get(va);
    r->got_b = weft_ctx_get(vb);
    if (r->sp)
        ctx_spread_arrive(r->sp);
    r->got_a_late = weft_ctx_get(va);
    /* A grandchild into the same flow inherits this task's snapshot. */
    CHECK_EQ(weft_spawn(weft_current_flow(), rec_child, r), 0);
    return 0;
}

static void check_recs(const struct rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        CHECK(r[i].got_a == r[i].want_a);
        CHECK(r[i].got_b == r[i].want_b);
        CHECK(r[i].got_a_late == r[i].want_a);
        CHECK(r[i].child_a == r[i].want_a);
        CHECK(r[i].child_b == r[i].want_b);
    }
}

enum { NREC = 400 };
static struct rec recs[NREC];

static void test_spawn_from_thread(weft_pool *p)
{
    struct ctx_spread sp;
    ctx_spread_init(&sp, g_n);
    memset(recs, 0, sizeof recs);
    CHECK_EQ(weft_ctx_set(va, V(1000)), 0);
    CHECK_EQ(weft_ctx_set(vb, V(2000)), 0);
    void *b = V(2000);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (int i = 0; i < NREC; i++) {
        CHECK_EQ(weft_ctx_set(va, V(1 + i)), 0);
        if (i % 3 == 0) {
            b = V(5000 + i);
            CHECK_EQ(weft_ctx_set(vb, b), 0);
        }
        recs[i].want_a = V(1 + i);
        recs[i].want_b = b;
        recs[i].sp = &sp;
        CHECK_EQ(weft_spawn(&f, rec_task, &recs[i]), 0);
    }
    CHECK_EQ(weft_ctx_set(va, V(999999)), 0);
    CHECK_EQ(weft_ctx_set(vb, V(999998)), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    check_recs(recs, NREC);
    unsigned d = distinct_workers(&recs[0].worker, NREC, sizeof recs[0]);
    printf("  spawn from thread: %u distinct workers ran the tasks\n", d);
    if (g_n >= 2)
        CHECK(d >= 2);
    CHECK(weft_ctx_get(va) == V(999999));
    CHECK(weft_ctx_get(vb) == V(999998));
}

struct fan {
    struct rec        *recs;
    int                n;
    struct ctx_spread *sp;
    void              *want_a, *want_b;
};

static int fan_root(void *arg)
{
    struct fan *fa = arg;
    CHECK(weft_ctx_get(va) == fa->want_a);
    CHECK(weft_ctx_get(vb) == fa->want_b);
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    void *b = fa->want_b;
    for (int i = 0; i < fa->n; i++) {
        struct rec *r = &fa->recs[i];
        CHECK_EQ(weft_ctx_set(va, V(10 + i)), 0);
        if (i % 2) {
            b = V(7000 + i);
            CHECK_EQ(weft_ctx_set(vb, b), 0);
        }
        r->want_a = V(10 + i);
        r->want_b = b;
        r->sp = fa->sp;
        /* Every fourth into the flow this task belongs to. */
        weft_flow *into = i % 4 == 3 ? weft_current_flow() : &g;
        CHECK(into != NULL);
        CHECK_EQ(weft_spawn(into, rec_task, r), 0);
    }
    CHECK_EQ(weft_ctx_set(va, V(424242)), 0);
    CHECK_EQ(weft_flow_close(&g), 0);
    CHECK(weft_ctx_get(va) == V(424242));
    CHECK(weft_ctx_get(vb) == b);
    return 0;
}

static void test_spawn_from_task(weft_pool *p)
{
    struct ctx_spread sp;
    ctx_spread_init(&sp, g_n);
    memset(recs, 0, sizeof recs);
    CHECK_EQ(weft_ctx_set(va, V(31)), 0);
    CHECK_EQ(weft_ctx_set(vb, V(32)), 0);
    struct fan fa = {recs, NREC, &sp, V(31), V(32)};
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, fan_root, &fa), 0);
    CHECK_EQ(weft_ctx_set(va, V(33)), 0); /* after the spawn: not seen */
    CHECK_EQ(weft_flow_close(&f), 0);
    check_recs(recs, NREC);
    unsigned d = distinct_workers(&recs[0].worker, NREC, sizeof recs[0]);
    printf("  spawn from task: %u distinct workers ran the tasks\n", d);
    if (g_n >= 2)
        CHECK(d >= 2);
    CHECK(weft_ctx_get(va) == V(33));
    CHECK(weft_ctx_get(vb) == V(32));
}

/* ------------------------------------------------------------------------ */
/* 3: weft_join                                                              */
/* ------------------------------------------------------------------------ */

struct jhalf {
    void        *got_a, *got_b;
    int          worker;
    _Atomic(int) started;
    struct jhalf *other;
    bool         wait_other; /* run until the other half has started */
};

static int jhalf_run(void *arg)
{
    struct jhalf *h = arg;
    h->worker = weft_worker_index();
    h->got_a = weft_ctx_get(va);
    h->got_b = weft_ctx_get(vb);
    atomic_store(&h->started, 1);
    if (h->wait_other) {
        double end = now_s() + 2.0;
        while (!atomic_load(&h->other->started) && now_s() < end)
            ctx_task_pause();
    }
    /* A set inside a half is that half's alone. */
    CHECK_EQ(weft_ctx_set(va, V(0xDEAD)), 0);
    CHECK(weft_ctx_get(va) == V(0xDEAD));
    return 0;
}

struct jt {
    int       depth;
    uintptr_t want;
};

static int jt_run(void *arg)
{
    struct jt *t = arg;
    CHECK(weft_ctx_get(va) == V(t->want));
    if (t->depth == 0)
        return 0;
    uintptr_t mine = t->want;
    if (t->depth % 2 == 0) {
        mine = t->want * 2 + (uintptr_t)(t->depth & 1) + 1;
        CHECK_EQ(weft_ctx_set(va, V(mine)), 0);
    }
    struct jt l = {t->depth - 1, mine}, r = {t->depth - 1, mine};
    CHECK_EQ(weft_join(jt_run, &l, jt_run, &r), 0);
    CHECK(weft_ctx_get(va) == V(mine));
    return 0;
}

static int join_root(void *arg)
{
    int *stolen = arg;
    for (int it = 0; it < 20; it++) {
        void *val = V(100 + it);
        CHECK_EQ(weft_ctx_set(va, val), 0);
        struct jhalf a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        a.other = &b;
        b.other = &a;
        b.wait_other = g_n >= 2; /* b runs inline: give thieves a */
        CHECK_EQ(weft_join(jhalf_run, &a, jhalf_run, &b), 0);
        CHECK(a.got_a == val && b.got_a == val);
        CHECK(a.got_b == V(0xB1) && b.got_b == V(0xB1));
        CHECK(weft_ctx_get(va) == val);
        if (a.worker != b.worker)
            (*stolen)++;
    }
    CHECK_EQ(weft_ctx_set(va, V(3)), 0);
    struct jt root = {14, 3};
    /* Through weft_join: jt_run sets, and must do it in a scope of its own. */
    CHECK_EQ(weft_join(jt_run, &root, ctx_noop, NULL), 0);
    CHECK(weft_ctx_get(va) == V(3));
    return 0;
}

static void test_join(weft_pool *p)
{
    CHECK_EQ(weft_ctx_set(va, V(0x51)), 0);
    CHECK_EQ(weft_ctx_set(vb, V(0xB1)), 0);
    int stolen = 0;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, join_root, &stolen), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    printf("  join: first half stolen in %d of 20 joins\n", stolen);
    if (g_n >= 2)
        CHECK(stolen > 0);
    CHECK(weft_ctx_get(va) == V(0x51));

    /* From a plain thread: both halves run on the default pool. */
    CHECK_EQ(weft_ctx_set(va, V(555)), 0);
    struct jhalf a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    CHECK_EQ(weft_join(jhalf_run, &a, jhalf_run, &b), 0);
    CHECK(a.got_a == V(555) && b.got_a == V(555));
    CHECK(a.got_b == V(0xB1) && b.got_b == V(0xB1));
    CHECK(a.worker >= 0 && b.worker >= 0);
    CHECK(weft_ctx_get(va) == V(555));
}

struct forck {
    void        *want_a;
    _Atomic(long) covered;
    _Atomic(uint64_t) workers;
};

static void for_piece(size_t begin, size_t end, void *arg)
{
    struct forck *c = arg;
    CHECK(weft_ctx_get(va) == c->want_a);
    CHECK(weft_ctx_get(vb) == V(0xB1));
    int w = weft_worker_index();
    if (w >= 0)
        atomic_fetch_or(&c->workers, 1ull << (w & 63));
    /* A set inside a piece is that piece's alone (a fresh scope per half). */
    CHECK_EQ(weft_ctx_set(va, V(0xF0F0)), 0);
    atomic_fetch_add(&c->covered, (long)(end - begin));
}

static int for_in_task(void *arg)
{
    struct forck *c = arg;
    CHECK_EQ(weft_ctx_set(va, c->want_a), 0);
    CHECK_EQ(weft_for(NULL, 0, 100000, 64, for_piece, c), 0);
    CHECK(weft_ctx_get(va) == c->want_a);
    return 0;
}

static void test_for(weft_pool *p)
{
    CHECK_EQ(weft_ctx_set(vb, V(0xB1)), 0);
    CHECK_EQ(weft_ctx_set(va, V(0xF1)), 0);
    struct forck c = {V(0xF1), 0, 0};
    CHECK_EQ(weft_for(p, 0, 100000, 64, for_piece, &c), 0);
    CHECK_EQ(atomic_load(&c.covered), 100000);
    CHECK(weft_ctx_get(va) == V(0xF1));

    struct forck d = {V(0xF2), 0, 0};
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, for_in_task, &d), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&d.covered), 100000);
    printf("  weft_for: pieces ran on %d and %d workers\n",
           __builtin_popcountll(atomic_load(&c.workers)),
           __builtin_popcountll(atomic_load(&d.workers)));
    CHECK(weft_ctx_get(va) == V(0xF1));
}

/* ------------------------------------------------------------------------ */
/* 4: a set changes the setting task only                                    */
/* ------------------------------------------------------------------------ */

struct iso {
    _Atomic(int) a_set, b_checked;
    void *parent_val;
    void *before_seen, *a1_seen, *a2_seen, *a3_seen, *b_start, *b_after;
};

static int store_a(void *slot)
{
    *(void **)slot = weft_ctx_get(va);
    return 0;
}

static int slow_store_a(void *slot)
{
    sleep_us(2000); /* typically runs after its spawner changed its value */
    return store_a(slot);
}

static int iso_A(void *arg)
{
    struct iso *s = arg;
    CHECK(weft_ctx_get(va) == s->parent_val);
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    CHECK_EQ(weft_spawn(&g, slow_store_a, &s->before_seen), 0); /* before the set */
    CHECK_EQ(weft_ctx_set(va, V(0xA1)), 0);
    atomic_store(&s->a_set, 1);
    CHECK_EQ(weft_spawn(weft_current_flow(), slow_store_a, &s->a1_seen), 0);
    CHECK_EQ(weft_spawn(&g, store_a, &s->a2_seen), 0);
    CHECK_EQ(weft_ctx_set(va, V(0xA2)), 0);
    CHECK_EQ(weft_spawn(&g, store_a, &s->a3_seen), 0);
    CHECK_EQ(weft_flow_close(&g), 0);
    CHECK(weft_ctx_get(va) == V(0xA2));
    if (g_n >= 2) {
        double end = now_s() + 2.0;
        while (!atomic_load(&s->b_checked) && now_s() < end)
            ctx_task_pause();
    }
    CHECK(weft_ctx_get(va) == V(0xA2));
    return 0;
}

static int iso_B(void *arg)
{
    struct iso *s = arg;
    s->b_start = weft_ctx_get(va);
    if (g_n >= 2) {
        double end = now_s() + 2.0;
        while (!atomic_load(&s->a_set) && now_s() < end)
            ctx_task_pause();
    }
    s->b_after = weft_ctx_get(va);
    atomic_store(&s->b_checked, 1);
    return 0;
}

static void test_set_isolation(weft_pool *p)
{
    for (int round = 0; round < 50; round++) {
        struct iso s;
        memset(&s, 0, sizeof s);
        s.parent_val = V(0x9000 + round);
        CHECK_EQ(weft_ctx_set(va, s.parent_val), 0);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, p), 0);
        CHECK_EQ(weft_spawn(&f, iso_A, &s), 0);
        CHECK_EQ(weft_spawn(&f, iso_B, &s), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK(s.before_seen == s.parent_val);
        CHECK(s.a1_seen == V(0xA1));
        CHECK(s.a2_seen == V(0xA1));
        CHECK(s.a3_seen == V(0xA2));
        CHECK(s.b_start == s.parent_val);
        CHECK(s.b_after == s.parent_val);
        CHECK(weft_ctx_get(va) == s.parent_val);
    }
}

/* ------------------------------------------------------------------------ */
/* 5: 100,000 tasks with private values                                      */
/* ------------------------------------------------------------------------ */

struct priv {
    uint32_t id;
    void    *spawner_a, *spawner_b;
};

static inline void *priv_a(uint32_t id) { return V(((uintptr_t)id + 1) << 4); }
static inline void *priv_b(uint32_t id) { return V(((uintptr_t)id << 4) | 0x8); }

static _Atomic(long) priv_ran, priv_children;
static _Atomic(int) priv_worker_seen[64];

static int priv_child(void *arg)
{
    const struct priv *p = arg;
    CHECK(weft_ctx_get(va) == priv_a(p->id));
    CHECK(weft_ctx_get(vb) == priv_b(p->id));
    CHECK_EQ(weft_ctx_set(va, V(0xC0FFEE0)), 0); /* the child's own */
    CHECK(weft_ctx_get(va) == V(0xC0FFEE0));
    atomic_fetch_add_explicit(&priv_children, 1, memory_order_relaxed);
    return 0;
}

static int priv_task(void *arg)
{
    const struct priv *p = arg;
    int w = weft_worker_index();
    CHECK(w >= 0);
    atomic_store_explicit(&priv_worker_seen[w & 63], 1, memory_order_relaxed);
    /* The spawner's values, never what the previous task on this worker set. */
    CHECK(weft_ctx_get(va) == p->spawner_a);
    CHECK(weft_ctx_get(vb) == p->spawner_b);
    CHECK_EQ(weft_ctx_set(va, priv_a(p->id)), 0);
    CHECK_EQ(weft_ctx_set(vb, priv_b(p->id)), 0);
    CHECK(weft_ctx_get(va) == priv_a(p->id));
    if (p->id % 4 == 0) /* into the parent's flow: may run after we return */
        CHECK_EQ(weft_spawn(weft_current_flow(), priv_child, (void *)p), 0);
    if (p->id % 2 == 0) {
        weft_flow g;
        CHECK_EQ(weft_flow_open(&g, NULL), 0);
        CHECK_EQ(weft_spawn(&g, priv_child, (void *)p), 0);
        CHECK_EQ(weft_flow_close(&g), 0);
    }
    CHECK(weft_ctx_get(va) == priv_a(p->id));
    CHECK(weft_ctx_get(vb) == priv_b(p->id));
    atomic_fetch_add_explicit(&priv_ran, 1, memory_order_relaxed);
    return 0;
}

enum { NPRIV = 100000 };
static struct priv privs[NPRIV];

static int priv_root(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_ctx_set(va, V(0x7001)), 0);
    weft_flow *f = weft_current_flow();
    for (uint32_t i = NPRIV / 2; i < NPRIV; i++) {
        privs[i] = (struct priv){i, V(0x7001), V(0x7002)};
        CHECK_EQ(weft_spawn(f, priv_task, &privs[i]), 0);
    }
    CHECK(weft_ctx_get(va) == V(0x7001));
    return 0;
}

static void test_private_values(weft_pool *p)
{
    atomic_store(&priv_ran, 0);
    atomic_store(&priv_children, 0);
    for (int i = 0; i < 64; i++)
        atomic_store(&priv_worker_seen[i], 0);
    CHECK_EQ(weft_ctx_set(va, V(0x7000)), 0);
    CHECK_EQ(weft_ctx_set(vb, V(0x7002)), 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, priv_root, NULL), 0);
    for (uint32_t i = 0; i < NPRIV / 2; i++) {
        privs[i] = (struct priv){i, V(0x7000), V(0x7002)};
        CHECK_EQ(weft_spawn(&f, priv_task, &privs[i]), 0);
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&priv_ran), NPRIV);
    CHECK_EQ(atomic_load(&priv_children), NPRIV / 2 + NPRIV / 4);
    CHECK(weft_ctx_get(va) == V(0x7000));
    CHECK(weft_ctx_get(vb) == V(0x7002));
    unsigned seen = 0;
    for (int i = 0; i < 64; i++)
        seen += (unsigned)atomic_load(&priv_worker_seen[i]);
    printf("  100k private values: %u distinct workers\n", seen);
}

/* ------------------------------------------------------------------------ */
/* 6: plain threads with contexts of their own                               */
/* ------------------------------------------------------------------------ */

enum { NEXT = 4, KEXT = 100 };

struct ext {
    int                t;
    weft_pool         *pool;
    weft_flow         *shared;
    pthread_barrier_t *bar;
    struct rec         own[KEXT], sh1[KEXT], sh2[KEXT];
};

static void *ext_thread(void *arg)
{
    struct ext *e = arg;
    /* A new thread starts with the empty context, whatever main set. */
    CHECK(weft_ctx_get(va) == INIT_A);
    CHECK(weft_ctx_get(vb) == INIT_B);
    void *a1 = V(e->t * 1000 + 1), *b1 = V(e->t * 1000 + 2), *a2 = V(e->t * 1000 + 3);
    CHECK_EQ(weft_ctx_set(va, a1), 0);
    CHECK_EQ(weft_ctx_set(vb, b1), 0);
    pthread_barrier_wait(e->bar);
    weft_flow own;
    CHECK_EQ(weft_flow_open(&own, e->pool), 0);
    for (int k = 0; k < KEXT; k++) {
        e->own[k] = (struct rec){.want_a = a1, .want_b = b1};
        e->sh1[k] = (struct rec){.want_a = a1, .want_b = b1};
        CHECK_EQ(weft_spawn(&own, rec_task, &e->own[k]), 0);
        CHECK_EQ(weft_spawn(e->shared, rec_task, &e->sh1[k]), 0);
    }
    CHECK_EQ(weft_ctx_set(va, a2), 0);
    for (int k = 0; k < KEXT; k++) {
        e->sh2[k] = (struct rec){.want_a = a2, .want_b = b1};
        CHECK_EQ(weft_spawn(e->shared, rec_task, &e->sh2[k]), 0);
    }
    CHECK_EQ(weft_flow_close(&own), 0);
    check_recs(e->own, KEXT);
    CHECK(weft_ctx_get(va) == a2);
    CHECK(weft_ctx_get(vb) == b1);
    return NULL; /* the thread's own context is released at exit (LSan) */
}

static void test_external_threads(weft_pool *p)
{
    static struct ext ext[NEXT];
    pthread_t th[NEXT];
    pthread_barrier_t bar;
    CHECK_EQ(pthread_barrier_init(&bar, NULL, NEXT), 0);
    CHECK_EQ(weft_ctx_set(va, V(77777)), 0);
    weft_flow shared;
    CHECK_EQ(weft_flow_open(&shared, p), 0);
    for (int t = 0; t < NEXT; t++) {
        memset(&ext[t], 0, sizeof ext[t]);
        ext[t].t = t + 1;
        ext[t].pool = p;
        ext[t].shared = &shared;
        ext[t].bar = &bar;
        CHECK_EQ(pthread_create(&th[t], NULL, ext_thread, &ext[t]), 0);
    }
    for (int t = 0; t < NEXT; t++)
        CHECK_EQ(pthread_join(th[t], NULL), 0);
    CHECK_EQ(weft_flow_close(&shared), 0);
    for (int t = 0; t < NEXT; t++) {
        check_recs(ext[t].sh1, KEXT);
        check_recs(ext[t].sh2, KEXT);
    }
    pthread_barrier_destroy(&bar);
    CHECK(weft_ctx_get(va) == V(77777));
}

/* ------------------------------------------------------------------------ */
/* 7: WEFT_POOL_NO_CTX                                                       */
/* ------------------------------------------------------------------------ */

static void *worker_mark(int w, uintptr_t base) { return V(base + (unsigned)w); }

struct prime {
    struct ctx_spread *sp;
    uintptr_t          base, prev_base;
};

/* Sets va in the worker thread's own context (the task has no snapshot). */
static int noctx_prime(void *arg)
{
    struct prime *pr = arg;
    int w = weft_worker_index();
    void *cur = weft_ctx_get(va);
    /* What this worker had: its earlier mark, or nothing ever. Never the
     * spawner's value, never another worker's. */
    CHECK(cur == (pr->prev_base ? worker_mark(w, pr->prev_base) : INIT_A) ||
          cur == worker_mark(w, pr->base));
    CHECK_EQ(weft_ctx_set(va, worker_mark(w, pr->base)), 0);
    ctx_spread_arrive(pr->sp);
    CHECK(weft_ctx_get(va) == worker_mark(w, pr->base));
    return 0;
}

static void noctx_prime_all(weft_pool *p, uintptr_t base, uintptr_t prev_base)
{
    struct ctx_spread sp;
    ctx_spread_init(&sp, g_n);
    struct prime pr = {&sp, base, prev_base};
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (unsigned i = 0; i < 4 * g_n; i++)
        CHECK_EQ(weft_spawn(&f, noctx_prime, &pr), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(ctx_spread_count(&sp), g_n); /* every worker has its mark */
}

struct nocheck {
    uintptr_t base;
    _Atomic(int) ran;
    weft_ctx    *cap;
    int          cap_worker;
};

static int noctx_leaf(void *arg)
{
    struct nocheck *c = arg;
    CHECK(weft_ctx_get(va) == worker_mark(weft_worker_index(), c->base));
    CHECK(weft_ctx_get(vb) == INIT_B);
    atomic_fetch_add(&c->ran, 1);
    return 0;
}

static int noctx_check(void *arg)
{
    struct nocheck *c = arg;
    int w = weft_worker_index();
    CHECK(weft_ctx_get(va) == worker_mark(w, c->base));
    CHECK(weft_ctx_get(vb) == INIT_B); /* the spawner's vb is not carried */
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    CHECK_EQ(weft_spawn(&g, noctx_leaf, c), 0);
    CHECK_EQ(weft_spawn(&g, noctx_leaf, c), 0);
    CHECK_EQ(weft_flow_close(&g), 0);
    atomic_fetch_add(&c->ran, 1);
    return 0;
}

static int noctx_capture(void *arg)
{
    struct nocheck *c = arg;
    c->cap_worker = weft_worker_index();
    c->cap = weft_ctx_capture();
    CHECK(c->cap != NULL);
    return 0;
}

static int expect_a(void *arg)
{
    CHECK(weft_ctx_get(va) == arg);
    return 0;
}

static void test_noctx(weft_pool *p)
{
    /* Each worker gets its own mark; then tasks spawned by a thread with
     * values of its own see their worker's mark, not the spawner's. */
    noctx_prime_all(p, 0x100, 0);
    CHECK_EQ(weft_ctx_set(va, V(0x5EED)), 0);
    CHECK_EQ(weft_ctx_set(vb, V(0x5EEE)), 0);
    struct nocheck c = {.base = 0x100};
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (int i = 0; i < 200; i++)
        CHECK_EQ(weft_spawn(&f, noctx_check, &c), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&c.ran), 600);

    /* A task's set changes its worker thread's context: later tasks on that
     * worker see it. */
    noctx_prime_all(p, 0x200, 0x100);
    c.base = 0x200;
    atomic_store(&c.ran, 0);
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (int i = 0; i < 200; i++)
        CHECK_EQ(weft_spawn(&f, noctx_check, &c), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&c.ran), 600);

    /* A capture in such a task is the worker's context. */
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, noctx_capture, &c), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK(c.cap_worker >= 0);
    CHECK_EQ(weft_ctx_run(c.cap, expect_a, worker_mark(c.cap_worker, 0x200)), 0);
    weft_ctx_release(c.cap);

    /* The spawner's own context is untouched by all of it. */
    CHECK(weft_ctx_get(va) == V(0x5EED));
    CHECK(weft_ctx_get(vb) == V(0x5EEE));
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    alarm(1500); /* a hang is a failure, not a stuck CI job */
    setvbuf(stdout, NULL, _IOLBF, 0);
    va = ctx_new_var("a", INIT_A);
    vb = ctx_new_var("b", INIT_B);
    for (size_t k = 0; k < CTX_NSIZES; k++) {
        g_n = ctx_pool_sizes[k];
        printf("pool of %u workers\n", g_n);
        weft_pool *p = ctx_pool_new(g_n, 0);
        test_spawn_from_thread(p);
        test_spawn_from_task(p);
        test_join(p);
        test_for(p);
        test_set_isolation(p);
        test_private_values(p);
        test_external_threads(p);
        ctx_pool_free(p);

        p = ctx_pool_new(g_n, WEFT_POOL_NO_CTX);
        test_noctx(p);
        ctx_pool_free(p);
    }
    puts("ctx_tasks: all tests passed");
    return 0;
}
