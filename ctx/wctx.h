/*
 * ctx/ private interface: context snapshots and execution scopes.
 *
 * A context (struct weft_ctx) is an immutable map from variables to values.
 * The empty context is NULL. weft_ctx_set never mutates a context: it builds a
 * new one. So a snapshot is just a pointer, and taking one costs O(1).
 *
 * Lifetimes. Every non-NULL context has an atomic reference count. Who holds
 * references:
 *   - a scope that *owns* its current context (scope->owned): the context was
 *     made by weft_ctx_set in that scope, or the scope is a thread's base
 *     scope;
 *   - weft_ctx_capture's caller, until weft_ctx_release;
 *   - sched/: a flow that pinned its opener's context (wctx_retain at open,
 *     wctx_release at close), and a task whose spawner's context was not the
 *     flow's pin (retained at spawn, released when the task ends).
 * A scope whose current context is *borrowed* (a task running its spawn-time
 * snapshot, weft_ctx_run's scope) holds no reference: the structure of flows
 * guarantees that the snapshot outlives the scope. That is what keeps the
 * fork-join spawn path free of atomic read-modify-writes on shared lines.
 *
 * Values with hooks (weft_ctx_var_create_ops) are retained when a context
 * holding them is built and released when it is freed: wctx_release (and
 * wctx_leave, wctx_reset, which may call it) can run user code on the
 * calling thread, in an empty scope of its own pushed above the caller's.
 *
 * Scopes. Each thread has a base scope; sched/ runs every task in a scope
 * whose context is the task's snapshot: one it pushes (wctx_enter/
 * wctx_leave), or the caller's own when that is clean (it owns nothing and
 * has the snapshot), reset after the task (wctx_reset). weft_ctx_run pushes
 * one around its function. weft_ctx_set changes the innermost scope only.
 *
 * ctx/ depends on nothing else of weft's.
 */
#ifndef WEFT_CTX_WCTX_H
#define WEFT_CTX_WCTX_H

#include <stdbool.h>
#include "weft.h"

/* A scope: struct weft_scope_ of include/weft_inline.h, whose inline join
 * reads it (cur: the current context, NULL the empty one; owned: this
 * scope holds a reference on cur; prev: the enclosing scope). */
typedef struct weft_scope_ wctx_scope;

/* The innermost scope of this thread; NULL means the thread's base scope.
 * A field of the public per-thread struct (weft_inline.h), which the
 * inline join reads; initial-exec there: a plain %fs-relative access. */
#define wctx_top (weft_thread_.scope)
extern _Thread_local wctx_scope wctx_base __attribute__((tls_model("initial-exec")));

/* The thread's base scope (out of line: only threads with no scope pushed,
 * never a running task, take this path; it also keeps gcc 12's UBSan
 * object-size check from misjudging the initial-exec TLS object). */
wctx_scope *wctx_base_scope_(void);

static inline wctx_scope *wctx_scope_current(void)
{
    wctx_scope *s = wctx_top;
    return __builtin_expect(s != NULL, 1) ? s : wctx_base_scope_();
}

/* The current context, for a snapshot at spawn. No reference is taken.
 * The base scope's field is read directly, not through the out-of-line
 * call (an external submitter's every spawn takes this path). */
static inline struct weft_ctx *wctx_current(void)
{
    wctx_scope *s = wctx_top;
    return __builtin_expect(s != NULL, 1) ? s->cur : wctx_base.cur;
}

/* Enters a scope whose current context is ctx, borrowed (no reference).
 * The scope lives in the caller's frame. */
static inline void wctx_enter(wctx_scope *s, struct weft_ctx *ctx)
{
    s->cur = ctx;
    s->owned = false;
    s->prev = wctx_top;
    wctx_top = s;
}

void wctx_drop_owned_(wctx_scope *s);

/* Leaves the innermost scope s, releasing what it owns. */
static inline void wctx_leave(wctx_scope *s)
{
    if (s->owned)
        wctx_drop_owned_(s);
    wctx_top = s->prev;
}

/* Resets scope s, entered with ctx, to ctx for the next task run in it:
 * drops what a weft_ctx_set in the previous one made. (A scope that does not
 * own its context still has ctx: only a set changes cur, and it owns.) */
static inline void wctx_reset(wctx_scope *s, struct weft_ctx *ctx)
{
    if (__builtin_expect(s->owned, 0)) {
        wctx_drop_owned_(s);
        s->cur = ctx;
    }
}

/* Reference counting; both accept NULL. Any thread holding a reference
 * (or backing a borrowed scope) may call them. wctx_release, when it drops
 * the last reference, runs the release hooks of the values the context
 * holds on the calling thread before freeing it: call it where user code
 * may run (no lock held that such code could need; hooks may not use
 * flows or pools). Orderings: in ctx.c. */
void wctx_retain(struct weft_ctx *ctx);
void wctx_release(struct weft_ctx *ctx);

#endif /* WEFT_CTX_WCTX_H */
