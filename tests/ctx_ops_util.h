/*
 * tests/ctx_ops_util.h — refcounted test values for the tests/ctx_ops*.c
 * tests of variables with lifetime hooks (weft_ctx_var_create_ops).
 *
 * An obj is a heap object with a reference count: its creator holds one
 * (obj_new, dropped with obj_put), and every retain hook adds one that the
 * matching release hook drops; the last put frees it. So a value released
 * before its last holder is gone is freed under that holder: under
 * AddressSanitizer, the holder's obj_alive is a heap-use-after-free; in
 * other builds obj_alive checks that some context still holds it (held > 0)
 * and that it was not poisoned. Per value and global atomic counters let
 * the tests check balance: retains == releases and no obj left (g_live).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_TESTS_CTX_OPS_UTIL_H
#define WEFT_TESTS_CTX_OPS_UTIL_H

#include "ctx_util.h"

#define OBJ_MAGIC 0x0b1ec75eu
#define OBJ_DEAD  0xdeadu

struct obj {
    _Atomic(unsigned) magic;
    atomic_long       refs;     /* creator + contexts holding it */
    atomic_long       held;     /* retains - releases */
    atomic_long       retains;
    atomic_long       releases;
};

static atomic_long g_retains, g_releases, g_live;

static inline struct obj *obj_new(void)
{
    struct obj *o = calloc(1, sizeof *o);
    CHECK(o != NULL);
    atomic_store(&o->magic, OBJ_MAGIC);
    atomic_store(&o->refs, 1);
    atomic_fetch_add(&g_live, 1);
    return o;
}

static inline void obj_put(struct obj *o)
{
    long r = atomic_fetch_sub(&o->refs, 1);
    CHECK(r > 0);
    if (r == 1) {
        atomic_store(&o->magic, OBJ_DEAD);
        atomic_fetch_sub(&g_live, 1);
        free(o);
    }
}

static inline void obj_check(const struct obj *o)
{
    CHECK(o != NULL);
    CHECK_EQ(atomic_load(&o->magic), OBJ_MAGIC);
}

/* o is the value of a variable in the current context: it must be held. */
static inline void obj_alive(const struct obj *o)
{
    obj_check(o);
    CHECK(atomic_load(&o->held) > 0);
}

static inline void hook_retain(void *p)
{
    struct obj *o = p;
    obj_check(o);
    CHECK(atomic_load(&o->refs) > 0);
    atomic_fetch_add(&o->refs, 1);
    atomic_fetch_add(&o->held, 1);
    atomic_fetch_add(&o->retains, 1);
    atomic_fetch_add(&g_retains, 1);
}

static inline void hook_release(void *p)
{
    struct obj *o = p;
    obj_check(o);
    CHECK(atomic_fetch_sub(&o->held, 1) > 0); /* never more releases than retains */
    atomic_fetch_add(&o->releases, 1);
    atomic_fetch_add(&g_releases, 1);
    obj_put(o); /* our last access: may free it */
}

static const weft_ctx_var_ops obj_ops = {hook_retain, hook_release};

static inline weft_ctx_var *ops_var(const char *name, void *initial)
{
    weft_ctx_var *v = NULL;
    CHECK_EQ(weft_ctx_var_create_ops(&v, name, initial, &obj_ops), 0);
    CHECK(v != NULL);
    return v;
}

/* Sets v to a new obj that only contexts hold; returns it (valid while the
 * current context holds it). */
static inline struct obj *set_new(weft_ctx_var *v)
{
    struct obj *o = obj_new();
    CHECK_EQ(weft_ctx_set(v, o), 0);
    CHECK_EQ(atomic_load(&o->held), 1);
    obj_put(o);
    return o;
}

/* The value of v here, alive, or v's initial value (NULL in these tests). */
static inline struct obj *get_alive(const weft_ctx_var *v)
{
    struct obj *o = weft_ctx_get(v);
    if (o)
        obj_alive(o);
    return o;
}

/* Every value ever set has been released as often as it was retained, and
 * freed. */
static inline void check_balanced(void)
{
    CHECK_EQ(atomic_load(&g_retains), atomic_load(&g_releases));
    CHECK_EQ(atomic_load(&g_live), 0);
}

/* Runs fn(arg) in a scope of its own on this thread (weft_ctx_run of the
 * current context), so that what it sets is gone when it returns. */
static inline int in_scope(weft_fn fn, void *arg)
{
    weft_ctx *c = weft_ctx_capture();
    CHECK(c != NULL);
    int r = weft_ctx_run(c, fn, arg);
    weft_ctx_release(c);
    return r;
}

#endif /* WEFT_TESTS_CTX_OPS_UTIL_H */
