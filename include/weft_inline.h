/*
 * weft_inline.h — the inline fast path of weft_join, included by weft.h.
 * Nothing here is API: the names ending in '_' are weft's, for this file.
 *
 * A join whose offered half is taken back at once (the common case: nobody
 * stole it) is a push of four words onto the calling worker's deque, b, a
 * pop, and a, all in the caller's code: with a and b known at the call
 * (fib passing itself), both become direct calls. Everything else (not on
 * a worker, a context scope that is not clean, tracing on, the array full,
 * a thief asking for a publish, the half stolen) calls into the library.
 *
 * ABI rule (docs/fast-path.md): the layouts below are compiled into
 * programs, so they are frozen within a minor release, as the SONAME
 * libweft.so.0.MINOR says; a minor release may change them (programs are
 * rebuilt against its header). Define WEFT_NO_INLINE before including
 * weft.h to call the library for every join instead.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_INLINE_H
#define WEFT_INLINE_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__aarch64__))
#define WEFT_HAVE_FAST_ 1

/* A worker's deque, as its owner sees it: the owner's cache line
 * (queue/wq_deque.h, from bottom on). Only the owner thread touches these
 * through this struct. */
struct weft_owner_ {
    int64_t          bottom;    /* one past the newest item */
    int64_t          split_own; /* items below it are shared */
    int64_t          top_seen;  /* a lower bound of the thieves' top */
    struct weft_arr_ *arr;      /* the slots */
    uint32_t         hint;      /* nonzero: a push has more to do (atomic) */
    uint32_t         mode;      /* WEFT_MODE_*_: which joins go inline (atomic) */
    uint64_t         joins;     /* inline joins (a counter, atomic) */
};

struct weft_arr_ {
    int64_t mask;     /* capacity - 1 */
    void   *garbage_;
    /* then mask + 1 slots of four words: fn, arg, frame | 2, context */
};

/* mode: the worker's pool has no context snapshots / calls go to the
 * library (tracing). */
#define WEFT_MODE_NO_CTX_ 2u
#define WEFT_MODE_SLOW_   1u

/* A context scope (ctx/wctx.h's wctx_scope). */
struct weft_scope_ {
    struct weft_ctx    *cur;
    bool                owned;
    struct weft_scope_ *prev;
};

/* The join's frame, on the joiner's stack; a thief that took the offered
 * half writes result, then sets done (release). */
struct weft_frame_ {
    uint32_t done;
    int      result;
    void    *flow; /* the joiner's current flow */
};

/* Per thread: the owner line of the worker this thread is (NULL on any
 * other thread), its innermost context scope, its current flow. */
struct weft_thread_ {
    struct weft_owner_ *worker;
    struct weft_scope_ *scope;
    struct weft_flow_rec_ *flow;
};

/* __thread, not thread_local: C++ would reach an extern thread_local
 * through a wrapper call. initial-exec: one %fs-relative load (the library
 * itself uses static TLS, so it is loaded at start or fits the surplus). */
WEFT_API extern __thread struct weft_thread_ weft_thread_
    __attribute__((tls_model("initial-exec")));

/* The library's ends of the fast path. */
WEFT_API void weft_join_more_(struct weft_owner_ *o);
WEFT_API int  weft_join_rest_(struct weft_frame_ *jf, int64_t mark, weft_fn a, void *arg_a,
                              int rb, struct weft_scope_ *s, struct weft_ctx *ctx);
WEFT_API void weft_scope_reset_(struct weft_scope_ *s, struct weft_ctx *ctx);

#ifndef WEFT_NO_INLINE
/* Plain C casts, also when a C++ program includes this (its -Wold-style-cast
 * is about its own code). */
#if defined(__cplusplus)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
#endif

__attribute__((always_inline)) static inline int weft_join_inline_(weft_fn a, void *arg_a,
                                                                    weft_fn b, void *arg_b)
{
    struct weft_owner_ *o = weft_thread_.worker;
    struct weft_scope_ *s = weft_thread_.scope;
    /* A worker, in a clean scope of a context pool (or none, on a NO_CTX
     * pool), not traced, with room in the array: else the library. */
    if (__builtin_expect(!a || !b || !o ||
                             __atomic_load_n(&o->mode, __ATOMIC_RELAXED) !=
                                 (s ? 0u : WEFT_MODE_NO_CTX_) ||
                             (s && s->owned) || o->bottom - o->top_seen > o->arr->mask,
                         0))
        return (weft_join)(a, arg_a, b, arg_b);
    struct weft_ctx *ctx = s ? s->cur : (struct weft_ctx *)0;
    struct weft_frame_ jf;
    jf.done = 0;
    jf.flow = weft_thread_.flow;
    int64_t mark = o->bottom;
    struct weft_arr_ *arr = o->arr;
    uintptr_t *sl = (uintptr_t *)(void *)(arr + 1) + 4 * (mark & arr->mask);
    /* Relaxed atomic stores: a thief may read the slot (queue/wq_deque.h). */
    __atomic_store_n(&sl[0], (uintptr_t)a, __ATOMIC_RELAXED);
    __atomic_store_n(&sl[1], (uintptr_t)arg_a, __ATOMIC_RELAXED);
    __atomic_store_n(&sl[2], (uintptr_t)&jf | 2u, __ATOMIC_RELAXED);
    __atomic_store_n(&sl[3], (uintptr_t)ctx, __ATOMIC_RELAXED);
    o->bottom = mark + 1;
    if (__builtin_expect(__atomic_load_n(&o->hint, __ATOMIC_RELAXED) != 0, 0))
        weft_join_more_(o);
    int rb = b(arg_b);
    if (s && __builtin_expect(s->owned, 0))
        weft_scope_reset_(s, ctx); /* b set a value: a starts from ctx */
    /* Taken back at once: a is still our newest, private item, and this is
     * still the worker (not a fork child of it). */
    if (__builtin_expect(o->bottom == mark + 1 && mark >= o->split_own &&
                             !__atomic_load_n(&jf.done, __ATOMIC_RELAXED) &&
                             weft_thread_.worker == o,
                         1)) {
        o->bottom = mark;
        __atomic_store_n(&o->joins, __atomic_load_n(&o->joins, __ATOMIC_RELAXED) + 1,
                         __ATOMIC_RELAXED);
        int ra = a(arg_a);
        if (s && __builtin_expect(s->owned, 0))
            weft_scope_reset_(s, ctx);
        return ra ? ra : rb;
    }
    return weft_join_rest_(&jf, mark, a, arg_a, rb, s, ctx);
}

/* Calls through a function-like macro (variadic, so that C++ template
 * arguments with commas pass): (weft_join)(...) and &weft_join still name
 * the library's function. */
#define weft_join(...) weft_join_inline_(__VA_ARGS__)

#if defined(__cplusplus)
#pragma GCC diagnostic pop
#endif
#endif /* WEFT_NO_INLINE */
#endif /* WEFT_HAVE_FAST_ */
#endif /* WEFT_INLINE_H */
