/*
 * weft_inline.h — the inline fast path of weft_join, included by weft.h.
 * Nothing here is API: the names ending in '_' are weft's, for this file
 * (and weft.hpp, which reads weft_thread_.pool).
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

/* 1 in a ThreadSanitizer build (gcc says so with a macro, clang with a
 * feature): code that TSan cannot follow keeps a form it can. */
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN_ 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN_ 1
#endif
#endif
#ifndef WEFT_TSAN_
#define WEFT_TSAN_ 0
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__aarch64__)) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
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
    uint64_t         spawns;    /* inline spawns (a counter, atomic) */
    uint64_t         runs;      /* tasks an inline close ran (a counter, atomic) */
    int64_t          open;      /* flows the worker opened, not closed (atomic) */
    int64_t          depth;     /* the deque depth last recorded in its stats */
};

/* An open flow, as its owner sees it (sched/ws.h's ws_flow, in the
 * caller's weft_flow). Only the owner writes magic (while open), base and
 * local_pending; state, cancel_cache and the epoch are shared (atomic). */
struct weft_flowv_ {
    const void     *opener_;
    void           *done_[5];
    uint32_t        magic;
    uint32_t        flags;         /* WEFT_FLOW_*_ */
    weft_pool      *pool;
    void           *owner;         /* the worker that opened it, or NULL */
    struct weft_ctx *pin;          /* the context its tasks borrow */
    int64_t         state;         /* (outstanding tasks << 1) | waiter (atomic) */
    int             error;
    int             canceled;
    uint64_t        cancel_cache;  /* (epoch << 1) | canceled (atomic) */
    uint64_t       *epoch;         /* the epoch it follows (atomic) */
    struct weft_flowv_ *parent;    /* the flow of the task that opened it */
    uint64_t        unused_[7];
    int64_t         local_pending; /* the owner's own spawns not yet run here */
    int64_t         base;          /* the owner's deque bottom at open */
};
#define WEFT_FLOW_OPEN_      0x464c4f57u
#define WEFT_FLOW_CLOSING_   0x434c4f53u
#define WEFT_FLOW_CLOSED_    0x44454144u
#define WEFT_FLOW_PIN_OWNED_ 1u
#define WEFT_FLOW_NO_CTX_    2u
/* An owner's spawn's item: fn, arg, flow | WEFT_ITEM_PINNED_ (its context
 * is the flow's pin; the fourth word is not written). */
#define WEFT_ITEM_PINNED_ 4u
/* hint: a thief asks for a publish (the close stops and lets the library
 * honor it). */
#define WEFT_HINT_SPLIT_ 1u

struct weft_arr_ {
    int64_t mask;     /* capacity - 1 */
    void   *garbage_;
    /* then mask + 1 slots of four words: fn, arg, frame | 2, context */
};

/* mode: the worker's pool has no context snapshots / calls go to the
 * library (tracing: set by the tracer; a USDT tracer attached to a probe
 * the inline paths skip: set by the worker itself, which then also clears
 * its self, so that the owner checks of spawn and close fail too). */
#define WEFT_MODE_NO_CTX_ 2u
#define WEFT_MODE_SLOW_   1u
#define WEFT_MODE_PROBED_ 4u

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
    /* The library's ws_join_frame is the fields above (a thief writes
     * result, then done); weft_join_rest_ also reads mark and ctx. */
    int64_t          mark; /* the deque's bottom before the push */
    struct weft_ctx *ctx;  /* the joiner's context */
    void            *arg;  /* a's argument */
    const bool      *owned; /* the scope's owned byte, or a constant false */
};

/* Per thread: the owner line of the worker this thread is (NULL on any
 * other thread), its innermost context scope, its current flow, and the
 * worker itself (what a flow's owner field holds) and its pool (NULL
 * with worker). */
struct weft_thread_ {
    struct weft_owner_ *worker;
    struct weft_scope_ *scope;
    struct weft_flow_rec_ *flow;
    void               *self;
    weft_pool          *pool;
};

/* __thread, not thread_local: C++ would reach an extern thread_local
 * through a wrapper call. initial-exec: one %fs-relative load (the library
 * itself uses static TLS, so it is loaded at start or fits the surplus). */
WEFT_API extern __thread struct weft_thread_ weft_thread_
    __attribute__((tls_model("initial-exec")));

/* The library's ends of the fast path. */
WEFT_API void weft_join_more_(struct weft_owner_ *o);
WEFT_API int  weft_join_rest_(struct weft_frame_ *jf, int rb);
WEFT_API void weft_scope_reset_(struct weft_scope_ *s, struct weft_ctx *ctx);
WEFT_API int  weft_flow_close_rest_(weft_flow *flow, int r);

#ifndef WEFT_NO_INLINE
/* C casts and 0 pointers are what this file has to be, for C and C++ both:
 * keep the stricter C++ warnings of a consumer's build quiet here. */
#ifdef __cplusplus
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#pragma GCC diagnostic ignored "-Wcast-align"
#endif

/* p, an object on the caller's stack (the join's frame), computed afresh:
 * x86-64 computes it with one lea from the stack pointer, so the compiler
 * need not keep it in a saved register across b for the slow path only. */
__attribute__((always_inline)) static inline void *weft_addr_(void *p)
{
#if defined(__x86_64__)
    void *q;
    __asm__("lea %1, %0" : "=r"(q) : "m"(*(char *)p));
    return q;
#else
    return p;
#endif
}

/* Adds d to a counter of the owner line: only its own worker writes it,
 * and other threads (weft_pool_stats) load it relaxed, so each update must
 * be one store of the whole word. On x86-64 that is one add to memory
 * (an aligned 8-byte store is single-copy atomic), not a load, an add and
 * a store; a ThreadSanitizer build keeps the builtins, which it sees. */
__attribute__((always_inline)) static inline void weft_count_(uint64_t *c, int64_t d)
{
#if defined(__x86_64__) && !WEFT_TSAN_
    __asm__("addq %1, %0" : "+m"(*c) : "er"(d));
#else
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + (uint64_t)d, __ATOMIC_RELAXED);
#endif
}

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
    /* What the rest needs after b lives in the frame (or is read again from
     * this thread's TLS, which b leaves as it found it), not in registers
     * saved across b: that would cost every call of the caller, its leaves
     * included, a save and restore of each. */
    struct weft_frame_ jf;
    jf.done = 0;
    jf.flow = weft_thread_.flow;
    struct weft_ctx *ctx = s ? s->cur : (struct weft_ctx *)0;
    jf.ctx = ctx;
    /* The byte that says b or a made a set: the scope's, or (no scope, on
     * a NO_CTX pool) a constant false: one compare after each half. */
    static const bool none_ = 0;
    jf.owned = s ? &s->owned : &none_;
    int64_t mark = o->bottom;
    jf.mark = mark;
    struct weft_arr_ *arr = o->arr;
    uintptr_t *sl = (uintptr_t *)(void *)(arr + 1) + 4 * (mark & arr->mask);
    /* Relaxed atomic stores: a thief may read the slot (queue/wq_deque.h). */
    jf.arg = arg_a;
    __atomic_store_n(&sl[0], (uintptr_t)a, __ATOMIC_RELAXED);
    __atomic_store_n(&sl[1], (uintptr_t)arg_a, __ATOMIC_RELAXED);
    __atomic_store_n(&sl[2], (uintptr_t)&jf | 2u, __ATOMIC_RELAXED);
    __atomic_store_n(&sl[3], (uintptr_t)ctx, __ATOMIC_RELAXED);
    o->bottom = mark + 1;
    if (__builtin_expect(__atomic_load_n(&o->hint, __ATOMIC_RELAXED) != 0, 0))
        weft_join_more_(o);
    int rb = b(arg_b);
    if (__builtin_expect(*jf.owned, 0)) /* b set a value: a starts from ctx */
        weft_scope_reset_(weft_thread_.scope, jf.ctx);
    o = weft_thread_.worker;
    mark = jf.mark;
    /* Taken back at once: a is still our newest, private item (a fork child
     * of the worker is no worker: the library exits it). */
    if (__builtin_expect(o && o->bottom == mark + 1 && mark >= o->split_own &&
                             !__atomic_load_n(&jf.done, __ATOMIC_RELAXED),
                         1)) {
        o->bottom = mark;
        weft_count_(&o->joins, 1);
        jf.result = rb;
        int ra = a(jf.arg);
        if (__builtin_expect(*jf.owned, 0))
            weft_scope_reset_(weft_thread_.scope, jf.ctx);
        return ra ? ra : jf.result;
    }
    return weft_join_rest_((struct weft_frame_ *)weft_addr_(&jf), rb);
}

/* Two words stored at p (16-byte aligned in a weft_flow) as one store: the
 * open's fields go in pairs (the layout sched/ws.h asserts), 6 stores
 * where there were 13, for a few more instructions (docs/fast-path.md,
 * "The open's stores in pairs"). */
typedef uint64_t weft_pair_t_ __attribute__((vector_size(16), aligned(8), may_alias));
__attribute__((always_inline)) static inline void weft_pair_(void *p, uint64_t lo, uint64_t hi)
{
    weft_pair_t_ v = {lo, hi};
    *(weft_pair_t_ *)p = v;
}

/* A task's open of a flow on its own pool (pool NULL), in a clean scope of
 * a context pool (its context, which outlives the flow, is borrowed as the
 * pin), not traced: the flow follows its parent's cancellation epoch and
 * starts from its cached answer. Else the library. */
__attribute__((always_inline)) static inline int weft_flow_open_inline_(weft_flow *flow,
                                                                       weft_pool *pool)
{
    struct weft_owner_ *o = weft_thread_.worker;
    struct weft_flowv_ *f = (struct weft_flowv_ *)(void *)flow;
    struct weft_scope_ *s = weft_thread_.scope;
    struct weft_flowv_ *parent = (struct weft_flowv_ *)(void *)weft_thread_.flow;
    if (__builtin_expect(!o || !f || pool || !s || s->owned || !parent ||
                             __atomic_load_n(&o->mode, __ATOMIC_RELAXED) != 0,
                         0))
        return (weft_flow_open)(flow, pool);
    /* Nothing else sees f yet (tasks spawned into it publish it): plain
     * stores, in pairs. magic and flags (0) are the first word (little
     * endian), then pool; owner and pin; state, error and canceled (all 0);
     * the parent's cancel_cache and epoch; the parent; local_pending (0)
     * and base. */
    weft_pair_(&f->magic, WEFT_FLOW_OPEN_, (uint64_t)(uintptr_t)weft_thread_.pool);
    weft_pair_(&f->owner, (uint64_t)(uintptr_t)weft_thread_.self, (uint64_t)(uintptr_t)s->cur);
    weft_pair_(&f->state, 0, 0);
    weft_pair_(&f->cancel_cache, __atomic_load_n(&parent->cancel_cache, __ATOMIC_RELAXED),
               (uint64_t)(uintptr_t)parent->epoch);
    f->parent = parent;
    weft_pair_(&f->local_pending, 0, (uint64_t)o->bottom);
    weft_count_((uint64_t *)&o->open, 1);
    return 0;
}

/* The owner of an open flow spawning into it in a scope whose context is
 * the flow's pin (on a NO_CTX pool: in no scope), with room in the array:
 * three words onto the private part, counted in the flow's plain
 * local_pending. Else the library (weft_spawn checks the rest). */
__attribute__((always_inline)) static inline int weft_spawn_inline_(weft_flow *flow, weft_fn fn,
                                                                     void *arg)
{
    struct weft_owner_ *o = weft_thread_.worker;
    struct weft_flowv_ *f = (struct weft_flowv_ *)(void *)flow;
    struct weft_scope_ *s = weft_thread_.scope;
    if (__builtin_expect(!o || !f || !fn ||
                             f->owner != weft_thread_.self ||
                             __atomic_load_n(&f->magic, __ATOMIC_RELAXED) != WEFT_FLOW_OPEN_ ||
                             (s ? s->cur : (struct weft_ctx *)0) != f->pin ||
                             o->bottom - o->top_seen > o->arr->mask,
                         0))
        return (weft_spawn)(flow, fn, arg);
    int64_t b = o->bottom;
    struct weft_arr_ *arr = o->arr;
    uintptr_t *sl = (uintptr_t *)(void *)(arr + 1) + 4 * (b & arr->mask);
    __atomic_store_n(&sl[0], (uintptr_t)fn, __ATOMIC_RELAXED);
    __atomic_store_n(&sl[1], (uintptr_t)arg, __ATOMIC_RELAXED);
    __atomic_store_n(&sl[2], (uintptr_t)f | WEFT_ITEM_PINNED_, __ATOMIC_RELAXED);
    o->bottom = b + 1;
    f->local_pending++;
    weft_count_(&o->spawns, 1);
    if (__builtin_expect(__atomic_load_n(&o->hint, __ATOMIC_RELAXED) != 0, 0))
        weft_join_more_(o);
    return 0;
}

/* The owner's close of its open flow, when nothing is canceled, the scope
 * is clean (the flow's pin, owning nothing; no scope on a NO_CTX pool), the
 * pool is not traced and the deque not deeper than its stats recorded:
 * runs the flow's own spawns back from the deque's private part, newest
 * first, with the flow current, dropping a set a task made after it and
 * checking the flow's cancellation after each; done when the deque is back
 * at the flow's base with nothing stolen, pinned or counted remotely. Else
 * (another item, a shared one, a publish request, a failure, a cancel) the
 * library goes on from there (weft_flow_close_rest_), or does it all. */
__attribute__((always_inline)) static inline int weft_flow_close_inline_(weft_flow *flow)
{
    struct weft_owner_ *o = weft_thread_.worker;
    struct weft_flowv_ *f = (struct weft_flowv_ *)(void *)flow;
    struct weft_scope_ *s = weft_thread_.scope;
    if (__builtin_expect(!o || !f || f->owner != weft_thread_.self ||
                             __atomic_load_n(&f->magic, __ATOMIC_RELAXED) != WEFT_FLOW_OPEN_ ||
                             (__atomic_load_n(&o->mode, __ATOMIC_RELAXED) & WEFT_MODE_SLOW_) ||
                             ((f->flags & WEFT_FLOW_NO_CTX_) ? s != 0
                                                             : !s || s->cur != f->pin || s->owned) ||
                             /* The task that opened it (so the current flow to restore is
                              * its parent). */
                             (void *)weft_thread_.flow != (void *)f->parent ||
                             /* Acquire pairs with the release increments of a cancel. */
                             __atomic_load_n(&f->cancel_cache, __ATOMIC_RELAXED) !=
                                 __atomic_load_n(f->epoch, __ATOMIC_ACQUIRE) << 1 ||
                             o->bottom - o->top_seen > o->depth,
                         0))
        return (weft_flow_close)(flow);
    __atomic_store_n(&f->magic, WEFT_FLOW_CLOSING_, __ATOMIC_RELAXED);
    weft_thread_.flow = (struct weft_flow_rec_ *)(void *)f;
    int r = 0;
    int64_t b;
    /* After each task the scope is read again from this thread's TLS (the
     * task leaves it as it found it); the owner line stays in a register
     * (read again, it made every task's check wait on two dependent loads).
     * In a fork child of the worker the library's split_own of INT64_MAX
     * stops the loop, and the rest exits it. */
    while ((b = o->bottom) > f->base) {
        uintptr_t *sl = (uintptr_t *)(void *)(o->arr + 1) + 4 * ((b - 1) & o->arr->mask);
        if (__builtin_expect(b <= o->split_own ||
                                 (__atomic_load_n(&o->hint, __ATOMIC_RELAXED) & WEFT_HINT_SPLIT_) ||
                                 __atomic_load_n(&sl[2], __ATOMIC_RELAXED) !=
                                     ((uintptr_t)f | WEFT_ITEM_PINNED_),
                             0))
            break;
        weft_fn fn = (weft_fn)__atomic_load_n(&sl[0], __ATOMIC_RELAXED);
        void *arg = (void *)__atomic_load_n(&sl[1], __ATOMIC_RELAXED);
        o->bottom = b - 1;
        f->local_pending--;
        weft_count_(&o->runs, 1);
        r = fn(arg);
        s = weft_thread_.scope;
        if (__builtin_expect(s && s->owned, 0))
            weft_scope_reset_(s, f->pin); /* the task set a value */
        /* After the last task the check below covers cancellation (after
         * its state load, as it must be); between tasks, this one. */
        if (__builtin_expect(r != 0, 0) || o->bottom <= f->base)
            break;
        if (__builtin_expect(__atomic_load_n(&f->cancel_cache, __ATOMIC_RELAXED) !=
                                 __atomic_load_n(f->epoch, __ATOMIC_ACQUIRE) << 1,
                             0))
            break;
    }
    weft_thread_.flow = (struct weft_flow_rec_ *)(void *)f->parent;
    /* Acquire pairs with the release decrements of remote completions. */
    if (__builtin_expect(r == 0 && o->bottom <= f->base && f->local_pending == 0 &&
                             !(f->flags & WEFT_FLOW_PIN_OWNED_) &&
                             __atomic_load_n(&f->state, __ATOMIC_ACQUIRE) == 0 &&
                             __atomic_load_n(&f->cancel_cache, __ATOMIC_RELAXED) ==
                                 __atomic_load_n(f->epoch, __ATOMIC_ACQUIRE) << 1,
                         1)) {
        __atomic_store_n(&f->magic, WEFT_FLOW_CLOSED_, __ATOMIC_RELAXED);
        weft_count_((uint64_t *)&o->open, -1);
        return 0;
    }
    return weft_flow_close_rest_(flow, r);
}

/* Calls through function-like macros (variadic, so that C++ template
 * arguments with commas pass): (weft_join)(...) and &weft_join still name
 * the library's functions; so for weft_flow_open, weft_spawn and
 * weft_flow_close. */
#define weft_join(...) weft_join_inline_(__VA_ARGS__)
#define weft_spawn(...) weft_spawn_inline_(__VA_ARGS__)
#define weft_flow_open(...) weft_flow_open_inline_(__VA_ARGS__)
#define weft_flow_close(...) weft_flow_close_inline_(__VA_ARGS__)

#ifdef __cplusplus
#pragma GCC diagnostic pop
#endif
#endif /* WEFT_NO_INLINE */
#endif /* WEFT_HAVE_FAST_ */
#endif /* WEFT_INLINE_H */
