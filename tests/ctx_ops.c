/*
 * tests/ctx_ops.c — variables with lifetime hooks (weft_ctx_var_create_ops)
 * on plain threads, no pool:
 *
 *  1. bad input and hook-less ops; values of hook-less variables never
 *     reach a hook (they are not pointers to objs: a hook would crash);
 *  2. exact counts along nested sets, setting the value already there,
 *     NULL, a capture kept while the thread sets on, weft_ctx_run with sets
 *     inside, and the thread's exit (its base context released by the
 *     thread-exit key); retain-only and release-only variables;
 *  3. hooks that call weft_ctx_get/set/capture/run themselves, also at
 *     thread exit: they see an empty context and change nothing outside;
 *  4. the main thread balancing its own context by setting NULL;
 *  5. many threads setting shared and fresh values at once and running and
 *     releasing each other's captures (a release on another thread).
 *
 * Balance: after each part, every value's retains equal its releases and
 * every obj has been freed (tests/ctx_ops_util.h). Values are freed by
 * their last release, so a release too early is a use-after-free under
 * AddressSanitizer and a failed held > 0 check elsewhere.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ctx_ops_util.h"

#include <errno.h>
#include <stdio.h>

static weft_ctx_var *va, *vb, *vplain, *vnull_ops;

#define HELD(o) atomic_load(&(o)->held)
#define RETAINS(o) atomic_load(&(o)->retains)

/* ---- 1. bad input ---------------------------------------------------------- */

static void test_bad_input(void)
{
    STAGE("bad input");
    CHECK_EQ(weft_ctx_var_create_ops(NULL, "x", NULL, &obj_ops), EINVAL);
    CHECK_EQ(weft_ctx_var_create_ops(NULL, NULL, NULL, NULL), EINVAL);
    /* ops NULL and ops with no hook: plain variables. */
    weft_ctx_var *v = NULL;
    CHECK_EQ(weft_ctx_var_create_ops(&v, "plain", V(7), NULL), 0);
    CHECK(weft_ctx_get(v) == V(7));
    vplain = v;
    weft_ctx_var_ops none = {NULL, NULL};
    CHECK_EQ(weft_ctx_var_create_ops(&vnull_ops, NULL, V(8), &none), 0);
    CHECK(weft_ctx_get(vnull_ops) == V(8));
    /* ops is copied: changing the caller's struct afterwards changes nothing */
    weft_ctx_var_ops mine = obj_ops;
    CHECK_EQ(weft_ctx_var_create_ops(&va, "a", NULL, &mine), 0);
    mine.retain = NULL;
    mine.release = NULL;
    vb = ops_var("b", NULL);
}

/* ---- 2. exact counts ---------------------------------------------------------- */

static struct obj *A, *A2, *B, *B2;
static weft_ctx *cap;

static int inside_run(void *arg)
{
    (void)arg;
    CHECK(weft_ctx_get(va) == A);
    CHECK_EQ(HELD(A), 1); /* the capture's node; running it retained nothing */
    long ra = RETAINS(A);
    CHECK_EQ(weft_ctx_set(vb, B2), 0);
    CHECK_EQ(RETAINS(A), ra + 1); /* the new node holds A too */
    CHECK_EQ(HELD(A), 2);
    CHECK_EQ(HELD(B2), 1);
    CHECK_EQ(weft_ctx_set(vb, NULL), 0);
    CHECK_EQ(HELD(B2), 0);
    CHECK_EQ(weft_ctx_set(vb, B2), 0);
    return 0;
}

static void *counts_thread(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_ctx_set(va, A), 0);
    CHECK_EQ(RETAINS(A), 1);
    CHECK_EQ(HELD(A), 1);
    CHECK_EQ(weft_ctx_set(va, A), 0); /* the value already there: no new node */
    CHECK_EQ(RETAINS(A), 1);

    CHECK_EQ(weft_ctx_set(vb, B), 0); /* new node: holds A again; old one freed */
    CHECK_EQ(RETAINS(A), 2);
    CHECK_EQ(HELD(A), 1);
    CHECK_EQ(HELD(B), 1);

    /* Hook-less values are copied but never passed to a hook. */
    CHECK_EQ(weft_ctx_set(vplain, V(1)), 0);
    CHECK_EQ(weft_ctx_set(vnull_ops, V(2)), 0);
    CHECK_EQ(RETAINS(A), 4);
    CHECK_EQ(RETAINS(B), 3);
    CHECK_EQ(HELD(A), 1);
    CHECK_EQ(HELD(B), 1);

    /* A capture shares the node: nothing retained. */
    cap = weft_ctx_capture();
    CHECK(cap != NULL);
    CHECK_EQ(RETAINS(A), 4);
    CHECK_EQ(HELD(A), 1);

    CHECK_EQ(weft_ctx_set(va, A2), 0); /* the capture keeps A */
    CHECK_EQ(HELD(A), 1);
    CHECK_EQ(HELD(A2), 1);
    CHECK_EQ(HELD(B), 2);
    CHECK_EQ(weft_ctx_set(va, NULL), 0); /* NULL is not held */
    CHECK_EQ(HELD(A2), 0);
    CHECK_EQ(HELD(B), 2);
    CHECK(weft_ctx_get(va) == NULL);

    /* weft_ctx_run: sets inside are dropped with its scope. */
    CHECK_EQ(weft_ctx_run(cap, inside_run, NULL), 0);
    CHECK_EQ(HELD(B2), 0);
    CHECK_EQ(HELD(A), 1);
    CHECK_EQ(HELD(B), 2);

    weft_ctx_release(cap);
    CHECK_EQ(HELD(A), 0);
    CHECK_EQ(HELD(B), 1);
    CHECK(weft_ctx_get(vb) == B);
    return NULL; /* thread exit releases B */
}

static atomic_long r_only, l_only;

static void count_retain(void *p)
{
    CHECK(p == V(0x51));
    atomic_fetch_add(&r_only, 1);
}

static void count_release(void *p)
{
    CHECK(p == V(0x52));
    atomic_fetch_add(&l_only, 1);
}

static weft_ctx_var *vr, *vl;

static void *half_hooks_thread(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_ctx_set(vr, V(0x51)), 0); /* node 1 */
    CHECK_EQ(weft_ctx_set(vl, V(0x52)), 0); /* node 2; node 1 freed */
    CHECK_EQ(weft_ctx_set(vplain, V(3)), 0); /* node 3; node 2 freed */
    CHECK_EQ(atomic_load(&r_only), 3);
    CHECK_EQ(atomic_load(&l_only), 1);
    return NULL; /* node 3 freed at exit */
}

static void test_counts(void)
{
    STAGE("exact counts");
    A = obj_new();
    A2 = obj_new();
    B = obj_new();
    B2 = obj_new();
    join_thread(start_thread(counts_thread, NULL));
    struct obj *all[] = {A, A2, B, B2};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(HELD(all[i]), 0);
        CHECK_EQ(RETAINS(all[i]), atomic_load(&all[i]->releases));
        obj_put(all[i]);
    }
    check_balanced();

    weft_ctx_var_ops r = {count_retain, NULL}, l = {NULL, count_release};
    CHECK_EQ(weft_ctx_var_create_ops(&vr, "r", NULL, &r), 0);
    CHECK_EQ(weft_ctx_var_create_ops(&vl, "l", NULL, &l), 0);
    join_thread(start_thread(half_hooks_thread, NULL));
    CHECK_EQ(atomic_load(&r_only), 3);
    CHECK_EQ(atomic_load(&l_only), 2);
}

/* ---- 3. hooks that use contexts ------------------------------------------- */

static weft_ctx_var *vh;
static atomic_long hook_calls;

static int hook_run_fn(void *arg)
{
    CHECK(weft_ctx_get(va) == arg);
    set_new(vb); /* dropped when the run ends */
    return 0;
}

/* What a hook may do: read (an empty context), set hooked variables (their
 * values retained and, when the hook returns, released: nested hooks),
 * capture, run and release. */
static void hook_uses_ctx(void)
{
    atomic_fetch_add(&hook_calls, 1);
    CHECK(weft_ctx_get(va) == NULL);
    CHECK(weft_ctx_get(vh) == NULL);
    CHECK(weft_ctx_get(vplain) == V(7));
    struct obj *o = set_new(va);
    CHECK(weft_ctx_get(va) == o);
    weft_ctx *c = weft_ctx_capture();
    CHECK(c != NULL);
    CHECK_EQ(weft_ctx_run(c, hook_run_fn, o), 0);
    CHECK(weft_ctx_get(vb) == NULL);
    weft_ctx_release(c);
    obj_alive(o);
}

static void hook_retain_ctx(void *p)
{
    hook_uses_ctx();
    hook_retain(p);
}

static void hook_release_ctx(void *p)
{
    hook_uses_ctx();
    hook_release(p);
}

static void *hooks_thread(void *arg)
{
    (void)arg;
    struct obj *a = set_new(va);
    struct obj *h = set_new(vh); /* its retain hook sets va in its own scope */
    CHECK(weft_ctx_get(va) == a);
    CHECK(weft_ctx_get(vh) == h);
    long calls = atomic_load(&hook_calls);
    struct obj *h2 = set_new(vh); /* the old node's release of h runs the hook */
    CHECK(atomic_load(&hook_calls) >= calls + 2);
    CHECK(weft_ctx_get(va) == a);
    CHECK(weft_ctx_get(vh) == h2);
    CHECK_EQ(HELD(a), 1);
    weft_ctx *c = weft_ctx_capture();
    CHECK_EQ(weft_ctx_set(vh, NULL), 0);
    CHECK(weft_ctx_get(va) == a);
    weft_ctx_release(c); /* the last holder of h2: its release hook runs here */
    CHECK(weft_ctx_get(vh) == NULL);
    set_new(vh);
    return NULL; /* and at thread exit, in the key destructor */
}

static void test_hooks_use_ctx(void)
{
    STAGE("hooks that use contexts");
    weft_ctx_var_ops ops = {hook_retain_ctx, hook_release_ctx};
    CHECK_EQ(weft_ctx_var_create_ops(&vh, "h", NULL, &ops), 0);
    join_thread(start_thread(hooks_thread, NULL));
    CHECK(atomic_load(&hook_calls) > 0);
    check_balanced();
}

/* ---- 4. the main thread ---------------------------------------------------- */

static void test_main_thread(void)
{
    STAGE("main thread");
    struct obj *a = set_new(va);
    set_new(vb);
    CHECK_EQ(weft_ctx_set(vplain, V(9)), 0);
    obj_alive(a);
    CHECK(atomic_load(&g_live) == 2);
    CHECK_EQ(weft_ctx_set(va, NULL), 0);
    CHECK_EQ(weft_ctx_set(vb, NULL), 0);
    check_balanced();
}

/* ---- 5. many threads -------------------------------------------------------- */

enum { NTHREADS = 8, NSHARED = 4 };
static struct obj *shared[NSHARED];
static _Atomic(weft_ctx *) mailbox[NTHREADS];

static int run_mail(void *arg)
{
    (void)arg;
    get_alive(va);
    get_alive(vb);
    set_new(vb);
    return 0;
}

static void *storm_thread(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg;
    uint64_t x = mix64(me + 1);
    long iters = SCALED(20000);
    for (long i = 0; i < iters; i++) {
        x = mix64(x);
        weft_ctx_var *v = (x & 1) ? va : vb;
        switch ((x >> 1) % 6) {
        case 0:
        case 1:
            CHECK_EQ(weft_ctx_set(v, shared[(x >> 8) % NSHARED]), 0);
            break;
        case 2:
            set_new(v);
            break;
        case 3:
            CHECK_EQ(weft_ctx_set(v, NULL), 0);
            break;
        case 4: { /* post a capture to a neighbour, release what was there */
            weft_ctx *c = weft_ctx_capture();
            CHECK(c != NULL);
            weft_ctx *old = atomic_exchange(&mailbox[(me + 1) % NTHREADS], c);
            weft_ctx_release(old);
            break;
        }
        default: { /* run and release what a neighbour posted */
            weft_ctx *c = atomic_exchange(&mailbox[me], NULL);
            if (c) {
                CHECK_EQ(weft_ctx_run(c, run_mail, NULL), 0);
                weft_ctx_release(c);
            }
        }
        }
        get_alive(va);
        get_alive(vb);
    }
    return NULL;
}

static void test_threads(void)
{
    STAGE("many threads");
    for (int i = 0; i < NSHARED; i++)
        shared[i] = obj_new();
    pthread_t t[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++)
        t[i] = start_thread(storm_thread, (void *)(uintptr_t)i);
    for (unsigned i = 0; i < NTHREADS; i++)
        join_thread(t[i]);
    for (unsigned i = 0; i < NTHREADS; i++)
        weft_ctx_release(atomic_exchange(&mailbox[i], NULL));
    for (int i = 0; i < NSHARED; i++) {
        CHECK_EQ(HELD(shared[i]), 0);
        obj_put(shared[i]);
    }
    check_balanced();
}

int main(void)
{
    watchdog_start(120);
    test_bad_input();
    test_counts();
    test_hooks_use_ctx();
    test_main_thread();
    test_threads();
    printf("ctx_ops: ok (%ld retains, %ld releases)\n", atomic_load(&g_retains),
           atomic_load(&g_releases));
    return 0;
}
