/*
 * tests/ctx_ops_pool.c — variables with lifetime hooks across tasks, on
 * pools of 1, 2 and 4 workers (tests/ctx_ops_util.h: a value released too
 * early is freed under its holder, a use-after-free under ASan; every part
 * ends with retains == releases and no value left):
 *
 *  1. tasks: a root sets values, spawns readers and setters; setters set
 *     their own values and spawn children into the root's flow that run
 *     after the setter returned and after the root set anew; every task
 *     checks that the values it sees are alive;
 *  2. weft_join recursion that sets values at some levels; weft_for whose
 *     pieces read and set;
 *  3. captures taken in tasks, run (with sets inside) and released on
 *     plain threads after the flow closed and after the pool was destroyed;
 *  4. failure and cancellation: tasks holding references to a setter's
 *     context skipped because a sibling failed, because of weft_flow_cancel
 *     and because they were spawned after it;
 *  5. external threads that set, spawn into a shared flow and exit before
 *     their tasks run (their base contexts released at thread exit while
 *     the tasks still hold theirs);
 *  6. a WEFT_POOL_NO_CTX pool: tasks set their workers' own contexts, which
 *     the pool's destruction releases (worker thread exit);
 *  7. several external threads running part 1 on one pool at once.
 *
 * vc's hooks themselves read and set variables (va) in the empty context
 * hooks run in, so that this runs wherever weft releases: after a task on a
 * worker, in a flow's close, at thread exit, in weft_pool_destroy.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ctx_ops_util.h"

#include <errno.h>
#include <stdio.h>

static weft_ctx_var *va, *vb, *vc;
static weft_pool *g_pool;
static bool g_noctx;

/* vc's hooks: an empty context of their own, where a set stays theirs. */
static atomic_long busy_hooks;

static void busy(void)
{
    atomic_fetch_add(&busy_hooks, 1);
    CHECK(weft_ctx_get(va) == NULL);
    CHECK(weft_ctx_get(vb) == NULL);
    CHECK(weft_ctx_get(vc) == NULL);
    struct obj *o = set_new(va);
    CHECK(weft_ctx_get(va) == o);
}

static void busy_retain(void *p)
{
    busy();
    hook_retain(p);
}

static void busy_release(void *p)
{
    busy();
    hook_release(p);
}

/* In a pool with snapshots, a task sees exactly what its spawner had. */
struct expect {
    struct obj *a, *b;
};

static void check_expect(const struct expect *e)
{
    struct obj *a = get_alive(va), *b = get_alive(vb);
    get_alive(vc);
    if (!g_noctx) {
        CHECK(a == e->a);
        CHECK(b == e->b);
    }
}

/* ---- 1. tasks ------------------------------------------------------------------ */

static struct expect root_e;

static int reader(void *arg)
{
    check_expect(arg);
    return 0;
}

static int late_child(void *arg)
{
    check_expect(arg);
    return 0;
}

enum { NSETTERS = 16 };
static struct expect setter_e[NSETTERS];

static int setter(void *arg)
{
    struct expect *mine = arg;
    check_expect(&root_e);
    mine->a = root_e.a;
    mine->b = set_new(vb);
    set_new(vc);
    weft_flow *parent = weft_current_flow();
    CHECK(parent != NULL);
    /* Children of the root's flow, in this task's context: they run after
     * it returned; each holds a reference (not the flow's pin). */
    for (int i = 0; i < 4; i++)
        CHECK_EQ(weft_spawn(parent, late_child, mine), 0);
    /* A nested flow, closed here, in a context set after its open. */
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    set_new(vc);
    CHECK_EQ(weft_spawn(&g, late_child, mine), 0);
    CHECK_EQ(weft_spawn(&g, reader, mine), 0);
    CHECK_EQ(weft_flow_close(&g), 0);
    return 0;
}

static int tasks_root(void *arg)
{
    (void)arg;
    root_e.a = set_new(va);
    root_e.b = NULL;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    for (int i = 0; i < NSETTERS; i++) {
        CHECK_EQ(weft_spawn(&f, reader, &root_e), 0);
        CHECK_EQ(weft_spawn(&f, setter, &setter_e[i]), 0);
    }
    struct obj *old = root_e.a;
    /* A new value while the tasks run: the flow's pin keeps the old. */
    CHECK_EQ(weft_ctx_set(va, NULL), 0);
    (void)old;
    CHECK_EQ(weft_flow_close(&f), 0);
    return 0;
}

/* ---- 2. join and for -------------------------------------------------------- */

struct jarg {
    int            depth;
    struct expect  e;
};

static int join_rec(void *p)
{
    struct jarg *j = p;
    check_expect(&j->e);
    if (j->depth == 0)
        return 0;
    struct expect e = j->e;
    if (j->depth % 2) {
        e.a = set_new(va);
        if (j->depth % 3 == 0)
            e.b = set_new(vb);
    }
    struct jarg x = {j->depth - 1, e}, y = {j->depth - 2 < 0 ? 0 : j->depth - 2, e};
    CHECK_EQ(weft_join(join_rec, &x, join_rec, &y), 0);
    check_expect(&e);
    return 0;
}

static void for_piece(size_t b, size_t e, void *arg)
{
    (void)b;
    (void)e;
    check_expect(arg);
    struct expect mine = *(struct expect *)arg;
    mine.b = set_new(vb);
    check_expect(&mine);
}

static int join_for_root(void *arg)
{
    (void)arg;
    struct jarg j = {14, {set_new(va), NULL}};
    CHECK_EQ(join_rec(&j), 0);
    j.e.b = set_new(vb);
    CHECK_EQ(weft_for(g_pool, 0, 4096, 16, for_piece, &j.e), 0);
    check_expect(&j.e);
    return 0;
}

/* Runs fn in a task of g_pool, from this thread's own scope. */
static void in_task(weft_fn fn)
{
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    CHECK_EQ(weft_spawn(&f, fn, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
}

/* ---- 3. captures ---------------------------------------------------------------- */

enum { NCAPS = 32 };
static weft_ctx *caps[NCAPS];
static struct expect cap_e[NCAPS];

static int capturer(void *arg)
{
    struct expect *e = arg;
    size_t i = (size_t)(e - cap_e);
    if (i % 2)
        e->b = set_new(vb); /* an owned context: the capture outlives it */
    caps[i] = weft_ctx_capture();
    CHECK(caps[i] != NULL);
    return 0;
}

static int caps_root(void *arg)
{
    (void)arg;
    struct obj *a = set_new(va);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    for (int i = 0; i < NCAPS; i++) {
        cap_e[i] = (struct expect){a, NULL};
        CHECK_EQ(weft_spawn(&f, capturer, &cap_e[i]), 0);
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    return 0;
}

static int cap_run(void *arg)
{
    check_expect(arg);
    struct expect e = *(struct expect *)arg;
    e.a = set_new(va);
    check_expect(&e);
    return 0;
}

static void *cap_thread(void *arg)
{
    size_t first = (size_t)(uintptr_t)arg;
    for (size_t i = first; i < NCAPS; i += 2) {
        CHECK_EQ(weft_ctx_run(caps[i], cap_run, &cap_e[i]), 0);
        weft_ctx_release(caps[i]);
        caps[i] = NULL;
    }
    return NULL;
}

static void run_caps_on_threads(void)
{
    pthread_t t0 = start_thread(cap_thread, (void *)(uintptr_t)0);
    pthread_t t1 = start_thread(cap_thread, (void *)(uintptr_t)1);
    join_thread(t0);
    join_thread(t1);
}

/* ---- 4. failure and cancellation ---------------------------------------------- */

static atomic_long skipped_ran;

static int must_skip(void *arg)
{
    (void)arg;
    atomic_fetch_add(&skipped_ran, 1);
    return 0;
}

static int fail_task(void *arg)
{
    check_expect(arg);
    return EIO;
}

static int cancel_root(void *arg)
{
    (void)arg;
    struct expect e = {set_new(va), NULL};
    /* a: a failing task cancels its siblings; spawned last, so the closer
     * (LIFO) runs it first on its own deque. */
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    e.b = set_new(vb); /* not the pin: every task holds a reference */
    set_new(vc);
    for (int i = 0; i < 64; i++)
        CHECK_EQ(weft_spawn(&g, reader, &e), 0);
    CHECK_EQ(weft_spawn(&g, fail_task, &e), 0);
    CHECK_EQ(weft_flow_close(&g), EIO);
    /* b: weft_flow_cancel, then spawns into the canceled flow. */
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    e.b = set_new(vb);
    for (int i = 0; i < 16; i++)
        CHECK_EQ(weft_spawn(&g, reader, &e), 0);
    weft_flow_cancel(&g);
    for (int i = 0; i < 64; i++) {
        CHECK_EQ(weft_spawn(&g, must_skip, &e), 0); /* skipped: 0 */
    }
    set_new(vb); /* drops the scope's node: only the tasks hold it now */
    CHECK_EQ(weft_flow_close(&g), ECANCELED);
    return 0;
}

/* ---- 5. external threads that exit before their tasks run ------------------ */

static weft_flow ext_flow;
static atomic_int gate_open, gate_entered;
static struct expect ext_e[4];

static int gate(void *arg)
{
    (void)arg;
    atomic_store(&gate_entered, 1);
    CHECK(wait_flag(&gate_open, 60));
    return 0;
}

static void *ext_thread(void *arg)
{
    struct expect *e = arg;
    e->a = set_new(va);
    e->b = set_new(vb);
    set_new(vc);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(weft_spawn(&ext_flow, reader, e), 0);
    return NULL; /* thread exit: its base context released, tasks hold theirs */
}

static void test_ext_threads(void)
{
    weft_pool *one = ctx_pool_new(1, 0);
    weft_pool *saved = g_pool;
    g_pool = one;
    atomic_store(&gate_open, 0);
    atomic_store(&gate_entered, 0);
    CHECK_EQ(weft_flow_open(&ext_flow, one), 0);
    CHECK_EQ(weft_spawn(&ext_flow, gate, NULL), 0);
    CHECK(wait_flag(&gate_entered, 60));
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = start_thread(ext_thread, &ext_e[i]);
    for (int i = 0; i < 4; i++)
        join_thread(t[i]);
    /* The only worker is in gate: no reader ran; they hold the values. */
    for (int i = 0; i < 4; i++) {
        obj_alive(ext_e[i].a);
        obj_alive(ext_e[i].b);
    }
    atomic_store(&gate_open, 1);
    CHECK_EQ(weft_flow_close(&ext_flow), 0);
    check_balanced();
    g_pool = saved;
    ctx_pool_free(one);
}

/* ---- 6. NO_CTX: values on the workers' own contexts ------------------------ */

static int noctx_setter(void *arg)
{
    (void)arg;
    get_alive(va);
    get_alive(vb);
    set_new(va);
    if (weft_worker_index() % 2)
        set_new(vb);
    else
        set_new(vc); /* released at worker exit, by busy_release */
    get_alive(va);
    return 0;
}

static void test_noctx(unsigned workers)
{
    weft_pool *p = ctx_pool_new(workers, WEFT_POOL_NO_CTX);
    weft_pool *saved = g_pool;
    g_pool = p;
    g_noctx = true;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (int i = 0; i < 256; i++)
        CHECK_EQ(weft_spawn(&f, noctx_setter, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    /* The workers' contexts still hold their last values. */
    CHECK(atomic_load(&g_live) > 0);
    in_scope(tasks_root, NULL);
    in_scope(join_for_root, NULL);
    in_task(cancel_root);
    CHECK(atomic_load(&g_live) > 0);
    ctx_pool_free(p); /* worker thread exit releases them */
    check_balanced();
    g_noctx = false;
    g_pool = saved;
}

/* ---- 7. concurrent external roots -------------------------------------------- */

struct ext_root {
    struct expect e;
    int           rounds;
};

static int ext_reader(void *arg)
{
    check_expect(arg);
    return 0;
}

static int ext_root_fn(void *arg)
{
    struct ext_root *r = arg;
    for (int k = 0; k < r->rounds; k++) {
        r->e.a = set_new(va);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, g_pool), 0);
        for (int i = 0; i < 8; i++)
            CHECK_EQ(weft_spawn(&f, ext_reader, &r->e), 0);
        CHECK_EQ(weft_spawn(&f, join_for_root, NULL), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
    }
    return 0;
}

static void *concurrent_thread(void *arg)
{
    struct ext_root *r = arg;
    CHECK_EQ(ext_root_fn(r), 0); /* in the thread's own context, released at exit */
    return NULL;
}

static void test_concurrent(void)
{
    enum { N = 4 };
    struct ext_root r[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        r[i] = (struct ext_root){{NULL, NULL}, (int)SCALED(20)};
        t[i] = start_thread(concurrent_thread, &r[i]);
    }
    for (int i = 0; i < N; i++)
        join_thread(t[i]);
    check_balanced();
}

int main(void)
{
    watchdog_start(240);
    va = ops_var("a", NULL);
    vb = ops_var("b", NULL);
    weft_ctx_var_ops busy_ops = {busy_retain, busy_release};
    CHECK_EQ(weft_ctx_var_create_ops(&vc, "c", NULL, &busy_ops), 0);
    for (size_t s = 0; s < CTX_NSIZES; s++) {
        unsigned n = ctx_pool_sizes[s];
        ROUND(n);
        g_pool = ctx_pool_new(n, 0);
        for (int rep = 0; rep < (int)SCALED(20); rep++) {
            STAGE("tasks");
            CHECK_EQ(in_scope(tasks_root, NULL), 0);
            check_balanced();
            STAGE("join and for");
            in_task(join_for_root);
            CHECK_EQ(in_scope(join_for_root, NULL), 0); /* off the pool */
            check_balanced();
            STAGE("captures");
            in_scope(caps_root, NULL);
            run_caps_on_threads();
            check_balanced();
            STAGE("cancel");
            in_task(cancel_root);
            CHECK_EQ(in_scope(cancel_root, NULL), 0);
            CHECK_EQ(atomic_load(&skipped_ran), 0);
            check_balanced();
        }
        STAGE("captures across pool destruction");
        in_scope(caps_root, NULL);
        CHECK(atomic_load(&g_live) > 0);
        ctx_pool_free(g_pool);
        run_caps_on_threads();
        check_balanced();
        STAGE("external threads");
        test_ext_threads();
        STAGE("no ctx");
        test_noctx(n);
        STAGE("concurrent");
        g_pool = ctx_pool_new(n, 0);
        test_concurrent();
        ctx_pool_free(g_pool);
    }
    CHECK_EQ(weft_default_pool_shutdown(), 0); /* weft_join off the pool used it */
    check_balanced();
    CHECK(atomic_load(&busy_hooks) > 0);
    printf("ctx_ops_pool: ok (%ld retains, %ld releases, %ld busy hooks)\n",
           atomic_load(&g_retains), atomic_load(&g_releases), atomic_load(&busy_hooks));
    return 0;
}
