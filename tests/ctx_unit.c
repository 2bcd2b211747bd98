/*
 * Unit tests for ctx/: context variables, snapshots, scopes. Single-thread
 * and plain-pthread semantics only; no pools. Leaks are checked by running
 * this under LeakSanitizer (the address,undefined build).
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "ctx/wctx.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

#define V(x) ((void *)(uintptr_t)(x))

static weft_ctx_var *new_var(const char *name, void *initial)
{
    weft_ctx_var *v = NULL;
    CHECK(weft_ctx_var_create(&v, name, initial) == 0);
    CHECK(v != NULL);
    return v;
}

static void start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    CHECK(pthread_create(t, NULL, fn, arg) == 0);
}

static void *join(pthread_t t)
{
    void *r;
    CHECK(pthread_join(t, &r) == 0);
    return r;
}

/* ------------------------------------------------------------------------ */

static int ret_arg(void *arg) { return (int)(intptr_t)arg; }

static void test_null_args(void)
{
    weft_ctx_var *v = new_var(NULL, V(1));
    CHECK(weft_ctx_var_create(NULL, "x", NULL) == EINVAL);
    CHECK(weft_ctx_get(NULL) == NULL);
    CHECK(weft_ctx_set(NULL, V(1)) == EINVAL);
    CHECK(weft_ctx_run(NULL, ret_arg, NULL) == EINVAL);
    weft_ctx *c = weft_ctx_capture();
    CHECK(c != NULL);
    CHECK(weft_ctx_run(c, NULL, NULL) == EINVAL);
    weft_ctx_release(c);
    weft_ctx_release(NULL);
    wctx_retain(NULL);
    wctx_release(NULL);
    CHECK(weft_ctx_get(v) == V(1));
}

static void test_unset_and_set(void)
{
    weft_ctx_var *a = new_var("a", V(10));
    weft_ctx_var *b = new_var("b", NULL);
    CHECK(weft_ctx_get(a) == V(10));
    CHECK(weft_ctx_get(b) == NULL);
    CHECK(weft_ctx_set(a, V(11)) == 0);
    CHECK(weft_ctx_get(a) == V(11));
    CHECK(weft_ctx_get(b) == NULL);
    CHECK(weft_ctx_set(a, V(12)) == 0);
    CHECK(weft_ctx_get(a) == V(12));
    CHECK(weft_ctx_set(a, V(12)) == 0); /* same value again */
    CHECK(weft_ctx_get(a) == V(12));
    /* NULL is a value like any other, not "unset". */
    CHECK(weft_ctx_set(a, NULL) == 0);
    CHECK(weft_ctx_get(a) == NULL);
    /* Setting the initial value explicitly. */
    CHECK(weft_ctx_set(b, NULL) == 0);
    CHECK(weft_ctx_get(b) == NULL);
    /* A variable created after the context grew is still unset in it. */
    weft_ctx_var *c = new_var("c", V(30));
    CHECK(weft_ctx_get(c) == V(30));
    CHECK(weft_ctx_get(a) == NULL);
}

static void test_many_vars(size_t count)
{
    weft_ctx_var **vars = calloc(count, sizeof *vars);
    CHECK(vars != NULL);
    for (size_t i = 0; i < count; i++)
        vars[i] = new_var("many", V(0x100000 + i));
    /* Set the even ones, in reverse order so the context grows at once. */
    for (size_t i = count; i-- > 0;)
        if (i % 2 == 0)
            CHECK(weft_ctx_set(vars[i], V(i + 1)) == 0);
    for (size_t i = 0; i < count; i++)
        CHECK(weft_ctx_get(vars[i]) == (i % 2 == 0 ? V(i + 1) : V(0x100000 + i)));
    /* Then all of them. */
    for (size_t i = 0; i < count; i++)
        CHECK(weft_ctx_set(vars[i], V(i + 7)) == 0);
    for (size_t i = 0; i < count; i++)
        CHECK(weft_ctx_get(vars[i]) == V(i + 7));
    free(vars);
}

/* ---- weft_ctx_run scopes ----------------------------------------------- */

struct run_arg {
    weft_ctx_var *a, *b;
    int depth;
};

static int in_run(void *p)
{
    struct run_arg *r = p;
    CHECK(weft_ctx_get(r->a) == V(1)); /* sees the run's context */
    CHECK(weft_ctx_get(r->b) == V(200));
    CHECK(!wctx_scope_current()->owned); /* borrowed */
    CHECK(weft_ctx_set(r->a, V(2)) == 0);
    CHECK(wctx_scope_current()->owned);
    CHECK(weft_ctx_set(r->b, V(3)) == 0);
    CHECK(weft_ctx_get(r->a) == V(2));
    CHECK(weft_ctx_get(r->b) == V(3));
    if (r->depth-- > 0) {
        /* Nested: a snapshot of this run's context, restored afterwards. */
        weft_ctx *inner = weft_ctx_capture();
        CHECK(inner != NULL);
        CHECK(weft_ctx_set(r->a, V(1)) == 0);
        CHECK(weft_ctx_set(r->b, V(200)) == 0);
        weft_ctx *again = weft_ctx_capture();
        CHECK(weft_ctx_run(again, in_run, r) == 42);
        weft_ctx_release(again);
        CHECK(weft_ctx_get(r->a) == V(1));
        CHECK(weft_ctx_get(r->b) == V(200));
        weft_ctx_release(inner);
    }
    return 42;
}

static void test_run_scope(void)
{
    weft_ctx_var *a = new_var("a", V(100));
    weft_ctx_var *b = new_var("b", V(200));
    CHECK(weft_ctx_set(a, V(1)) == 0);
    weft_ctx *snap = weft_ctx_capture();
    CHECK(snap != NULL);
    /* The thread's own context moves on; the snapshot does not. */
    CHECK(weft_ctx_set(a, V(50)) == 0);
    CHECK(weft_ctx_set(b, V(60)) == 0);
    struct run_arg r = { a, b, 3 };
    wctx_scope *before = wctx_top;
    CHECK(weft_ctx_run(snap, in_run, &r) == 42);
    CHECK(wctx_top == before);
    /* Sets made inside stayed inside. */
    CHECK(weft_ctx_get(a) == V(50));
    CHECK(weft_ctx_get(b) == V(60));
    /* The snapshot itself is unchanged by what ran in it. */
    r.depth = 0;
    CHECK(weft_ctx_run(snap, in_run, &r) == 42);
    weft_ctx_release(snap);
}

/* weft_ctx_run returns fn's result, whatever it is. */
static void test_run_returns(void)
{
    weft_ctx *c = weft_ctx_capture();
    CHECK(weft_ctx_run(c, ret_arg, V(0)) == 0);
    CHECK(weft_ctx_run(c, ret_arg, V(-5)) == -5);
    CHECK(weft_ctx_run(c, ret_arg, V(EINVAL)) == EINVAL);
    weft_ctx_release(c);
}

/* ---- snapshots --------------------------------------------------------- */

struct snap_expect {
    weft_ctx_var *v;
    void *want;
};

static int check_value(void *p)
{
    struct snap_expect *e = p;
    CHECK(weft_ctx_get(e->v) == e->want);
    return 0;
}

static void test_capture_snapshot(void)
{
    weft_ctx_var *v = new_var("snap", V(0));
    CHECK(weft_ctx_set(v, V(1)) == 0);
    weft_ctx *c1 = weft_ctx_capture();
    CHECK(weft_ctx_set(v, V(2)) == 0);
    weft_ctx *c2 = weft_ctx_capture();
    CHECK(weft_ctx_set(v, V(3)) == 0);
    struct snap_expect e1 = { v, V(1) }, e2 = { v, V(2) };
    CHECK(weft_ctx_run(c1, check_value, &e1) == 0);
    CHECK(weft_ctx_run(c2, check_value, &e2) == 0);
    CHECK(weft_ctx_get(v) == V(3));
    /* Release in either order; each capture holds its own reference. */
    weft_ctx_release(c2);
    CHECK(weft_ctx_run(c1, check_value, &e1) == 0);
    weft_ctx_release(c1);
    /* Two captures of one context, both released. */
    weft_ctx *d1 = weft_ctx_capture(), *d2 = weft_ctx_capture();
    CHECK(d1 && d2);
    weft_ctx_release(d1);
    struct snap_expect e3 = { v, V(3) };
    CHECK(weft_ctx_run(d2, check_value, &e3) == 0);
    weft_ctx_release(d2);
}

/* ---- the private scope interface --------------------------------------- */

static void test_scopes(void)
{
    weft_ctx_var *v = new_var("scope", V(0));
    CHECK(weft_ctx_set(v, V(1)) == 0);
    CHECK(wctx_scope_current()->owned); /* a set base scope owns its context */
    weft_ctx *outer = weft_ctx_capture();

    /* A borrowed scope, as sched/ pushes around a task. */
    wctx_scope s;
    wctx_enter(&s, wctx_current());
    CHECK(wctx_scope_current() == &s);
    CHECK(!wctx_scope_current()->owned);
    CHECK(weft_ctx_get(v) == V(1));
    CHECK(weft_ctx_set(v, V(2)) == 0);
    CHECK(wctx_scope_current()->owned);
    CHECK(weft_ctx_set(v, V(3)) == 0); /* drops the one it made */
    /* A flow pin would be a retain; the scope's later set must not free it. */
    struct weft_ctx *pinned = wctx_current();
    wctx_retain(pinned);
    CHECK(weft_ctx_set(v, V(4)) == 0);
    struct snap_expect e = { v, V(3) };
    CHECK(weft_ctx_run(pinned, check_value, &e) == 0);
    wctx_release(pinned);
    wctx_leave(&s);
    CHECK(wctx_scope_current() == &wctx_base);
    CHECK(weft_ctx_get(v) == V(1));

    /* Scope entered with the empty context. */
    wctx_enter(&s, NULL);
    CHECK(weft_ctx_get(v) == V(0));
    CHECK(weft_ctx_set(v, V(5)) == 0);
    CHECK(weft_ctx_get(v) == V(5));
    wctx_leave(&s);
    CHECK(weft_ctx_get(v) == V(1));

    /* wctx_drop_owned_ directly. */
    wctx_enter(&s, NULL);
    CHECK(weft_ctx_set(v, V(6)) == 0);
    wctx_drop_owned_(&s);
    CHECK(!s.owned);
    wctx_leave(&s);
    weft_ctx_release(outer);
}

/* ---- threads ----------------------------------------------------------- */

static void *capture_empty_thread(void *p)
{
    weft_ctx_var *v = p;
    CHECK(wctx_current() == NULL); /* a new thread starts empty */
    CHECK(weft_ctx_get(v) == V(77));
    weft_ctx *c = weft_ctx_capture();
    CHECK(c != NULL);
    weft_ctx *c2 = weft_ctx_capture();
    CHECK(c2 != NULL);
    struct snap_expect e = { v, V(77) };
    CHECK(weft_ctx_run(c, check_value, &e) == 0);
    CHECK(weft_ctx_run(c2, check_value, &e) == 0);
    weft_ctx_release(c);
    /* Empty captures are shared, not counted: none of this may free. */
    for (int i = 0; i < 100; i++)
        weft_ctx_release(weft_ctx_capture());
    CHECK(weft_ctx_run(c2, check_value, &e) == 0);
    weft_ctx_release(c2);
    return NULL;
}

static void *capture_thread(void *unused)
{
    (void)unused;
    return weft_ctx_capture();
}

static void test_capture_empty(void)
{
    weft_ctx_var *v = new_var("empty", V(77));
    pthread_t t;
    start(&t, capture_empty_thread, v);
    join(t);
    /* An empty capture run on a thread that has values: empty inside. */
    weft_ctx_var *w = new_var("empty2", V(1));
    CHECK(weft_ctx_set(w, V(2)) == 0);
    weft_ctx *c = NULL;
    pthread_t t2;
    start(&t2, capture_thread, NULL);
    c = join(t2);
    CHECK(c != NULL);
    struct snap_expect e = { w, V(1) };
    CHECK(weft_ctx_run(c, check_value, &e) == 0);
    CHECK(weft_ctx_get(w) == V(2));
    weft_ctx_release(c);
}

enum { NTHREADS = 4 };

struct indep {
    weft_ctx_var *v;
    pthread_barrier_t *bar;
    int id;
};

static void *indep_thread(void *p)
{
    struct indep *in = p;
    CHECK(weft_ctx_get(in->v) == V(-1));
    for (int k = 0; k < 1000; k++) {
        CHECK(weft_ctx_set(in->v, V(in->id * 10000 + k)) == 0);
        pthread_barrier_wait(in->bar);
        CHECK(weft_ctx_get(in->v) == V(in->id * 10000 + k));
        if (k % 100 == 0)
            pthread_barrier_wait(in->bar);
    }
    return NULL;
}

static void test_threads_independent(void)
{
    weft_ctx_var *v = new_var("indep", V(-1));
    CHECK(weft_ctx_set(v, V(5)) == 0);
    pthread_barrier_t bar;
    CHECK(pthread_barrier_init(&bar, NULL, NTHREADS) == 0);
    pthread_t t[NTHREADS];
    struct indep in[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        in[i] = (struct indep){ v, &bar, i + 1 };
        start(&t[i], indep_thread, &in[i]);
    }
    for (int i = 0; i < NTHREADS; i++)
        join(t[i]);
    pthread_barrier_destroy(&bar);
    CHECK(weft_ctx_get(v) == V(5));
}

struct carry {
    weft_ctx *ctx;
    weft_ctx_var *v, *w;
};

static int carried(void *p)
{
    struct carry *c = p;
    CHECK(weft_ctx_get(c->v) == V(123));
    CHECK(weft_ctx_get(c->w) == V(456));
    CHECK(weft_ctx_set(c->v, V(999)) == 0); /* stays on this thread's run */
    return 0;
}

static void *carry_thread(void *p)
{
    struct carry *c = p;
    CHECK(weft_ctx_set(c->w, V(8)) == 0); /* this thread's own value */
    CHECK(weft_ctx_run(c->ctx, carried, c) == 0);
    CHECK(weft_ctx_get(c->v) == V(0));
    CHECK(weft_ctx_get(c->w) == V(8));
    weft_ctx_release(c->ctx); /* released on another thread than made */
    return NULL;
}

static void test_carry_to_thread(void)
{
    weft_ctx_var *v = new_var("carry-v", V(0));
    weft_ctx_var *w = new_var("carry-w", V(0));
    CHECK(weft_ctx_set(v, V(123)) == 0);
    CHECK(weft_ctx_set(w, V(456)) == 0);
    struct carry c = { weft_ctx_capture(), v, w };
    CHECK(c.ctx != NULL);
    CHECK(weft_ctx_set(v, V(1)) == 0); /* after the capture: not carried */
    pthread_t t;
    start(&t, carry_thread, &c);
    join(t);
    CHECK(weft_ctx_get(v) == V(1));
    CHECK(weft_ctx_get(w) == V(456));
}

/* Many threads run and release one snapshot at once (refcount races). */
struct shared_run {
    weft_ctx *ctx;
    weft_ctx_var *v;
};

static int shared_inner(void *p)
{
    struct shared_run *s = p;
    CHECK(weft_ctx_get(s->v) == V(31));
    weft_ctx *again = weft_ctx_capture(); /* retain from a borrowed scope */
    CHECK(weft_ctx_set(s->v, V(32)) == 0);
    struct snap_expect e = { s->v, V(31) };
    CHECK(weft_ctx_run(again, check_value, &e) == 0);
    weft_ctx_release(again);
    return 0;
}

static void *shared_thread(void *p)
{
    struct shared_run *s = p;
    for (int i = 0; i < 2000; i++)
        CHECK(weft_ctx_run(s->ctx, shared_inner, s) == 0);
    weft_ctx_release(s->ctx); /* one reference per thread */
    return NULL;
}

static void test_shared_snapshot(void)
{
    weft_ctx_var *v = new_var("shared", V(0));
    pthread_t t[NTHREADS];
    struct shared_run s[NTHREADS];
    CHECK(weft_ctx_set(v, V(31)) == 0);
    for (int i = 0; i < NTHREADS; i++)
        s[i] = (struct shared_run){ weft_ctx_capture(), v };
    CHECK(weft_ctx_set(v, V(30)) == 0); /* main drops its own reference */
    for (int i = 0; i < NTHREADS; i++)
        start(&t[i], shared_thread, &s[i]);
    for (int i = 0; i < NTHREADS; i++)
        join(t[i]);
}

enum { PER_THREAD = 200 };

static void *create_thread(void *p)
{
    weft_ctx_var **out = p;
    for (int i = 0; i < PER_THREAD; i++)
        out[i] = new_var(i % 2 ? "concurrent" : NULL, V(i));
    return NULL;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return (x > y) - (x < y);
}

static void test_concurrent_create(void)
{
    static weft_ctx_var *vars[NTHREADS * PER_THREAD];
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        start(&t[i], create_thread, &vars[i * PER_THREAD]);
    for (int i = 0; i < NTHREADS; i++)
        join(t[i]);
    for (int i = 0; i < NTHREADS * PER_THREAD; i++)
        CHECK(weft_ctx_get(vars[i]) == V(i % PER_THREAD));
    /* Distinct keys: each holds its own value in one context. */
    for (int i = 0; i < NTHREADS * PER_THREAD; i++)
        CHECK(weft_ctx_set(vars[i], vars[i]) == 0);
    for (int i = 0; i < NTHREADS * PER_THREAD; i++)
        CHECK(weft_ctx_get(vars[i]) == vars[i]);
    weft_ctx_var *sorted[NTHREADS * PER_THREAD];
    memcpy(sorted, vars, sizeof sorted);
    qsort(sorted, NTHREADS * PER_THREAD, sizeof sorted[0], cmp_ptr);
    for (int i = 1; i < NTHREADS * PER_THREAD; i++)
        CHECK(sorted[i] != sorted[i - 1]);
}

/* ---- leaks (checked by LSan at exit) ----------------------------------- */

static void test_set_loop(void)
{
    weft_ctx_var *a = new_var("loop-a", NULL), *b = new_var("loop-b", NULL);
    for (int i = 0; i < 100000; i++) {
        CHECK(weft_ctx_set(i % 3 ? a : b, V(i)) == 0);
        if (i % 1000 == 0) {
            weft_ctx *c = weft_ctx_capture();
            CHECK(weft_ctx_set(a, V(-1)) == 0);
            weft_ctx_release(c);
        }
    }
    CHECK(weft_ctx_get(a) == V(99998));
    CHECK(weft_ctx_get(b) == V(99999));
}

static void *exit_thread(void *p)
{
    weft_ctx_var **vs = p;
    for (int i = 0; i < 64; i++)
        CHECK(weft_ctx_set(vs[i], V(i + 1)) == 0);
    CHECK(weft_ctx_get(vs[63]) == V(64));
    return NULL; /* the base scope's context must be freed now */
}

static void *exit_capture_thread(void *p)
{
    weft_ctx_var **vs = p;
    CHECK(weft_ctx_set(vs[0], V(555)) == 0);
    return weft_ctx_capture(); /* outlives this thread */
}

static void *exit_via_pthread_exit(void *p)
{
    weft_ctx_var **vs = p;
    CHECK(weft_ctx_set(vs[1], V(1)) == 0);
    pthread_exit(NULL);
}

static void test_thread_exit(void)
{
    weft_ctx_var *vs[64];
    for (int i = 0; i < 64; i++)
        vs[i] = new_var("exit", NULL);
    for (int r = 0; r < 20; r++) {
        pthread_t t;
        start(&t, exit_thread, vs);
        join(t);
    }
    pthread_t t;
    start(&t, exit_via_pthread_exit, vs);
    join(t);
    start(&t, exit_capture_thread, vs);
    weft_ctx *c = join(t);
    CHECK(c != NULL);
    struct snap_expect e = { vs[0], V(555) };
    CHECK(weft_ctx_run(c, check_value, &e) == 0);
    weft_ctx_release(c);
}

int main(void)
{
    test_null_args();
    test_unset_and_set();
    test_many_vars(1);
    test_many_vars(8);
    test_many_vars(64);
    test_many_vars(1000);
    test_run_scope();
    test_run_returns();
    test_capture_snapshot();
    test_scopes();
    test_capture_empty();
    test_threads_independent();
    test_carry_to_thread();
    test_shared_snapshot();
    test_concurrent_create();
    test_set_loop();
    test_thread_exit();
    puts("ctx_unit: all tests passed");
    return 0;
}
