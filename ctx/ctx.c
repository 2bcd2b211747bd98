/*
 * ctx/: context variables and snapshots. See ctx/wctx.h for the lifetime
 * model (scopes, owned vs borrowed contexts) and docs/context.md.
 *
 * A context is an immutable array indexed by variable: vals[var->index] is
 * the variable's value, or WCTX_UNSET. Reading is one bounds check and one
 * load, whatever the number of variables; setting copies the array.
 *
 * Values with lifetime hooks (weft_ctx_var_create_ops). Each node holds its
 * own copy of every value pointer, so each node retains the values it holds
 * when it is built and releases them when it is freed: a set costs one
 * retain per held value, spawns and captures (which share the node by its
 * count) cost nothing. To find them without a global index-to-variable
 * table, a node lists after vals the variables whose values it holds
 * ("held": the variables with hooks whose entry is neither WCTX_UNSET nor
 * NULL), and each variable carries its hooks. Hooks run in an empty scope
 * of their own (wctx_hooks_enter_), so a hook that sets a variable changes
 * nothing but that scope, which is dropped after the hooks.
 *
 * SPDX-License-Identifier: MIT
 */
#include "ctx/wctx.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct weft_ctx {
    /* 16-byte alignment: sched/ keeps flags in the low pointer bits. */
    _Alignas(16) atomic_size_t refs;
    size_t n;       /* entries in vals */
    size_t nheld;   /* variables listed after vals (wctx_held_) */
    void  *vals[];  /* by variable index; WCTX_UNSET where not set; then
                       nheld struct weft_ctx_var pointers */
};

struct weft_ctx_var {
    size_t               index;   /* unique, into weft_ctx.vals */
    void                *initial;
    char                *name;    /* for debuggers only; may be NULL */
    struct weft_ctx_var *next;    /* all variables, newest first */
    /* Written before the variable is handed out, never after: read without
     * a lock by any thread that got the variable, or a node listing it. */
    weft_ctx_var_ops     ops;
    bool                 hooked;  /* ops.retain or ops.release */
};

/* Per thread, for ctx/ (scope) and sched/ (worker, flow); the inline join
 * of include/weft_inline.h reads it. */
WEFT_API __thread struct weft_thread_ weft_thread_ __attribute__((tls_model("initial-exec")));

/* The k-th variable whose value node c holds (k < c->nheld). */
static inline struct weft_ctx_var *wctx_held_(const struct weft_ctx *c, size_t k)
{
    return (struct weft_ctx_var *)c->vals[c->n + k];
}

_Thread_local wctx_scope wctx_base;

/* The inline join's reset of its scope after a half made a set. */
void weft_scope_reset_(struct weft_scope_ *s, struct weft_ctx *ctx)
{
    wctx_reset(s, ctx);
}

wctx_scope *wctx_base_scope_(void)
{
    return &wctx_base;
}

/* Marks an entry that was never set; a private address no caller can pass. */
static char wctx_unset_;
#define WCTX_UNSET ((void *)&wctx_unset_)

/* "Captured empty context": weft_ctx_capture must not return NULL (that
 * means ENOMEM), but the empty context is NULL. This node stands for it
 * outside scopes; it is never counted and never freed. */
static struct weft_ctx wctx_empty_ = { .refs = 1, .n = 0 };

static atomic_size_t wctx_next_index_;
/* Every variable ever made, so that leak checkers see them as reachable. */
static _Atomic(struct weft_ctx_var *) wctx_vars_;

/* Releases the base scope's context when a thread exits. Created on first
 * use; a failed creation is retried by the next use (pthread_once would
 * keep the failure forever). */
static pthread_mutex_t wctx_key_lock_ = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool     wctx_key_ready_;
static pthread_key_t   wctx_key_;

/* ------------------------------------------------------------------------ */
/* Reference counting                                                        */
/* ------------------------------------------------------------------------ */

void wctx_retain(struct weft_ctx *ctx)
{
    if (!ctx || ctx == &wctx_empty_)
        return;
    /* Relaxed: the caller already holds a reference (its own or one that
     * backs its borrowed scope), so the node cannot be freed meanwhile and
     * there is nothing new to publish. */
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
}

/* Hooks run in an empty scope of their own, pushed on this thread: what
 * they set is theirs alone (dropped, with its own hooks, when it is left),
 * and no scope of the caller's can change under it meanwhile. */
static inline void wctx_hooks_enter_(wctx_scope *s)
{
    wctx_enter(s, NULL);
}

static inline void wctx_hooks_leave_(wctx_scope *s)
{
    wctx_leave(s);
}

/* Frees c, whose count reached zero: releases the values it holds first,
 * on this thread, whichever it is. */
static void wctx_free_(struct weft_ctx *c)
{
    if (c->nheld) {
        wctx_scope hs;
        wctx_hooks_enter_(&hs);
        for (size_t k = 0; k < c->nheld; k++) {
            const struct weft_ctx_var *v = wctx_held_(c, k);
            if (v->ops.release)
                v->ops.release(c->vals[v->index]);
        }
        wctx_hooks_leave_(&hs);
    }
    free(c);
}

void wctx_release(struct weft_ctx *ctx)
{
    if (!ctx || ctx == &wctx_empty_)
        return;
    /* acq_rel, pairs with this same fetch_sub in the other holders: the
     * release half orders this holder's reads of vals before the decrement,
     * the acquire half (used by whoever reaches zero) orders every holder's
     * reads before the free and the release hooks (a value is released only
     * after every holder's last use of the context). One RMW instead of a
     * release decrement plus an acquire fence, because TSan does not model
     * standalone fences. */
    if (atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) == 1)
        wctx_free_(ctx);
}

void wctx_drop_owned_(wctx_scope *s)
{
    /* Detached before the release: its hooks must not find s holding a
     * context whose count is already zero. */
    struct weft_ctx *c = s->cur;
    s->cur = NULL;
    s->owned = false;
    wctx_release(c);
}

/* ------------------------------------------------------------------------ */
/* Thread exit                                                               */
/* ------------------------------------------------------------------------ */

/* Runs at thread exit while _Thread_local storage is still usable (glibc
 * runs key destructors before freeing static TLS). A scope left open by
 * pthread_exit inside weft_ctx_run is not unwound: its context leaks. */
static void wctx_thread_exit_(void *unused)
{
    (void)unused;
    if (wctx_base.owned)
        wctx_drop_owned_(&wctx_base);
}

/* 0 once the key exists, else ENOMEM (and the next call tries again). */
static int wctx_key_get_(void)
{
    /* Acquire pairs with the release store below: whoever sees ready sees
     * the key. */
    if (atomic_load_explicit(&wctx_key_ready_, memory_order_acquire))
        return 0;
    int err = 0;
    pthread_mutex_lock(&wctx_key_lock_);
    if (!atomic_load_explicit(&wctx_key_ready_, memory_order_relaxed)) {
        err = pthread_key_create(&wctx_key_, wctx_thread_exit_);
        if (!err)
            atomic_store_explicit(&wctx_key_ready_, true, memory_order_release);
    }
    pthread_mutex_unlock(&wctx_key_lock_);
    return err ? ENOMEM : 0;
}

/* Arms the thread-exit release for this thread. Checked through the key's
 * own value rather than a flag: pthread clears it before calling the
 * destructor, so a set made by a later destructor re-arms it (glibc then
 * runs destructors again, up to PTHREAD_DESTRUCTOR_ITERATIONS rounds). */
static int wctx_arm_thread_exit_(void)
{
    if (wctx_key_get_())
        return ENOMEM; /* no key could be had; keep nothing we can't free */
    if (pthread_getspecific(wctx_key_))
        return 0;
    return pthread_setspecific(wctx_key_, &wctx_key_) ? ENOMEM : 0;
}

/* ------------------------------------------------------------------------ */
/* Contexts                                                                  */
/* ------------------------------------------------------------------------ */

static struct weft_ctx *wctx_alloc_(size_t n, size_t nheld)
{
    const size_t head = offsetof(struct weft_ctx, vals);
    if (nheld > SIZE_MAX - n)
        return NULL;
    size_t slots = n + nheld;
    if (slots > (SIZE_MAX - head - 15) / sizeof(void *))
        return NULL;
    /* aligned_alloc wants a multiple of the alignment. */
    size_t size = (head + slots * sizeof(void *) + 15) & ~(size_t)15;
    struct weft_ctx *c = aligned_alloc(16, size);
    if (!c)
        return NULL;
    /* Not yet shared: the release that publishes it is sched/'s handoff or
     * the capture's caller's own. */
    atomic_init(&c->refs, 1);
    c->n = n;
    c->nheld = nheld;
    return c;
}

int weft_ctx_var_create(weft_ctx_var **var, const char *name, void *initial)
{
    return weft_ctx_var_create_ops(var, name, initial, NULL);
}

int weft_ctx_var_create_ops(weft_ctx_var **var, const char *name, void *initial,
                            const weft_ctx_var_ops *ops)
{
    if (!var)
        return EINVAL;
    struct weft_ctx_var *v = malloc(sizeof *v);
    if (!v)
        return ENOMEM;
    v->name = NULL;
    if (name && !(v->name = strdup(name))) {
        free(v);
        return ENOMEM;
    }
    v->initial = initial;
    v->ops = ops ? *ops : (weft_ctx_var_ops){NULL, NULL};
    v->hooked = v->ops.retain || v->ops.release;
    /* Relaxed: only uniqueness matters; the index is published with the
     * variable by whatever hands the pointer to other threads. */
    v->index = atomic_fetch_add_explicit(&wctx_next_index_, 1,
                                         memory_order_relaxed);
    /* Relaxed push: no thread ever reads the list, it only keeps the nodes
     * reachable. Lock-free, so it is safe in a child after fork(). */
    struct weft_ctx_var *head =
        atomic_load_explicit(&wctx_vars_, memory_order_relaxed);
    do
        v->next = head;
    while (!atomic_compare_exchange_weak_explicit(
        &wctx_vars_, &head, v, memory_order_relaxed, memory_order_relaxed));
    *var = v;
    return 0;
}

void *weft_ctx_get(const weft_ctx_var *var)
{
    if (!var)
        return NULL;
    /* Plain loads: a context is immutable once another thread can see it,
     * and sched/'s handoff (or the capture's caller) published it. */
    const struct weft_ctx *c = wctx_current();
    if (c && var->index < c->n) {
        void *v = c->vals[var->index];
        if (v != WCTX_UNSET)
            return v;
    }
    return var->initial;
}

/* Whether node c holds (and so lists) the value of var: hooked, set there,
 * not NULL. */
static inline bool wctx_holds_(const struct weft_ctx *c, const struct weft_ctx_var *var)
{
    return var->hooked && c && var->index < c->n && c->vals[var->index] != WCTX_UNSET &&
           c->vals[var->index] != NULL;
}

int weft_ctx_set(weft_ctx_var *var, void *value)
{
    if (!var)
        return EINVAL;
    wctx_scope *s = wctx_scope_current();
    struct weft_ctx *old = s->cur;
    size_t oldn = old ? old->n : 0;
    size_t i = var->index;

    /* Same value already set: the new context would equal the old one. */
    if (i < oldn && old->vals[i] == value)
        return 0;

    /* The new node lists what old does, but var's old value, plus var's
     * new one if that is held. */
    size_t oldheld = old ? old->nheld : 0;
    size_t nheld = oldheld - wctx_holds_(old, var) + (var->hooked && value != NULL);
    size_t n = i < oldn ? oldn : i + 1;
    struct weft_ctx *c = i < SIZE_MAX ? wctx_alloc_(n, nheld) : NULL;
    if (!c)
        return ENOMEM;
    if (oldn)
        memcpy(c->vals, old->vals, oldn * sizeof c->vals[0]);
    for (size_t k = oldn; k < n; k++)
        c->vals[k] = WCTX_UNSET;
    c->vals[i] = value;
    size_t h = 0;
    for (size_t k = 0; k < oldheld; k++)
        if (wctx_held_(old, k) != var)
            c->vals[n + h++] = wctx_held_(old, k);
    if (var->hooked && value != NULL)
        c->vals[n + h++] = var;

    if (s == &wctx_base && !s->owned) {
        int err = wctx_arm_thread_exit_();
        if (err) {
            free(c); /* nothing retained yet */
            return err;
        }
    }
    /* Retained before c is installed, so before any other thread can see
     * it (sched/'s handoff and capture publish c after this). Old stays
     * valid meanwhile: the hooks' own scope is innermost, so nothing they
     * do can change s. */
    if (nheld) {
        wctx_scope hs;
        wctx_hooks_enter_(&hs);
        for (size_t k = 0; k < nheld; k++) {
            const struct weft_ctx_var *v = wctx_held_(c, k);
            if (v->ops.retain)
                v->ops.retain(c->vals[v->index]);
        }
        wctx_hooks_leave_(&hs);
    }
    bool was_owned = s->owned;
    s->cur = c;
    s->owned = true;
    /* Borrowed: whoever lent it still holds the reference. */
    if (was_owned)
        wctx_release(old);
    return 0;
}

weft_ctx *weft_ctx_capture(void)
{
    struct weft_ctx *c = wctx_current();
    if (!c)
        return &wctx_empty_;
    wctx_retain(c);
    return c;
}

int weft_ctx_run(weft_ctx *ctx, weft_fn fn, void *arg)
{
    if (!ctx || !fn)
        return EINVAL;
    /* Scopes hold NULL for the empty context, never the static node. */
    wctx_scope s;
    wctx_enter(&s, ctx == &wctx_empty_ ? NULL : ctx);
    int r = fn(arg);
    wctx_leave(&s);
    return r;
}

void weft_ctx_release(weft_ctx *ctx)
{
    wctx_release(ctx);
}
