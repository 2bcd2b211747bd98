/*
 * sched/observe.h — what the scheduler tells an observer: per-worker
 * counters (weft_pool_stats, sched/stats.c), USDT probes (provider "weft",
 * <sys/sdt.h>) and the timeline trace (sched/trace.c). All of it is
 * compiled out with -DWEFT_NO_OBSERVE (CMake: -DWEFT_OBSERVE=OFF).
 *
 * Costs on the hot paths, when compiled in: a counter is a relaxed load and
 * store on the worker's own stats line (no RMW, no fence); a probe is one
 * nop whose arguments are values at hand or loads from the worker's own
 * line (none costs more, so no probe tests its semaphore; the worker's
 * loop reads some, see ws_probes_poll); a trace hook, with
 * tracing off, is one load of the worker's trace pointer and an untaken
 * branch.
 *
 * Who may call: every function here is for the worker w itself (the thread
 * running w's loop), except where it says otherwise.
 */
#ifndef WEFT_SCHED_OBSERVE_H
#define WEFT_SCHED_OBSERVE_H

#include "sched/ws.h"

#ifdef WEFT_NO_OBSERVE
#define WS_OBSERVE 0
#else
#define WS_OBSERVE 1
#endif

/* ---- USDT probes ------------------------------------------------------- */
#if WS_OBSERVE && defined(__has_include)
#if __has_include(<sys/sdt.h>)
/* Every probe has a semaphore (weft_NAME_semaphore, sched/probes.c), which
 * a tracer increments while it is attached: the probes themselves never
 * test it (each is one nop); a worker reads the ones of the probes its
 * inline paths skip, to send them to the library (ws_probes_poll). */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
#define WS_HAVE_PROBES 1
#endif
#endif
#ifndef WS_HAVE_PROBES
#define WS_HAVE_PROBES 0
#endif

/* The probes' semaphores (sched/probes.c), defined in every build (a
 * build without probes never sets them). */
#define WS_SEMAPHORES(X) \
    X(pool_create) X(pool_destroy) X(flow_open) X(flow_close) X(spawn) X(inject) \
    X(task_begin) X(task_end) X(steal) X(park) X(wake)
#define WS_SEMAPHORE_DECL(name) extern unsigned short weft_##name##_semaphore;
WS_SEMAPHORES(WS_SEMAPHORE_DECL)
#undef WS_SEMAPHORE_DECL

#if WS_HAVE_PROBES
/* Inline probes: a nop, and its arguments where the code has them (loads
 * of the pool and the worker's index from the worker's own line at most).
 * Semaphores were measured and cost more here: their test, and the call to
 * an out-of-line probe behind it, made every instrumented function set up
 * a frame (callgrind, fib through flows: +6% instructions over these). */
#define WS_PROBE1(name, a) DTRACE_PROBE1(weft, name, a)
#define WS_PROBE2(name, a, b) DTRACE_PROBE2(weft, name, a, b)
#define WS_PROBE3(name, a, b, c) DTRACE_PROBE3(weft, name, a, b, c)
#define WS_PROBE4(name, a, b, c, d) DTRACE_PROBE4(weft, name, a, b, c, d)
#define WS_PROBE5(name, a, b, c, d, e) DTRACE_PROBE5(weft, name, a, b, c, d, e)
/* An argument in a register. sys/sdt.h gives a constant as an immediate
 * ($-1), which perf 6.1 drops: that site's arguments then differ from the
 * other sites' of the same probe, and perf refuses to add those (an audit
 * counted 1 of 1,597 flow_open). */
#define WS_PROBE_REG(x) __extension__({ __typeof__(x) ws_v_ = (x); __asm__("" : "+r"(ws_v_)); ws_v_; })
#else
/* The arguments are still "used", so that no build warns about them. */
#define WS_PROBE_REG(x) (x)
#define WS_PROBE1(name, a) ((void)(a))
#define WS_PROBE2(name, a, b) ((void)(a), (void)(b))
#define WS_PROBE3(name, a, b, c) ((void)(a), (void)(b), (void)(c))
#define WS_PROBE4(name, a, b, c, d) ((void)(a), (void)(b), (void)(c), (void)(d))
#define WS_PROBE5(name, a, b, c, d, e) ((void)(a), (void)(b), (void)(c), (void)(d), (void)(e))
#endif

/* ---- counters ---------------------------------------------------------- */
#if WS_OBSERVE
static inline void ws_stat_add_(_Atomic(uint64_t) *c, uint64_t n)
{
    /* Relaxed load and store: only the worker writes its counters. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}
#define WS_STAT(w, field, n) ws_stat_add_(&(w)->stats.field, (uint64_t)(n))

void ws_stat_depth_slow(ws_worker *w);

/* After a push onto w's deque by weft_spawn: counts the spawn. (The depth,
 * max_deque, is looked at where a push takes its slow path and where an
 * owner closes its flow, the deque's deepest moment in a spawn-then-close:
 * not on every push.) */
static inline void ws_stat_push(ws_worker *w)
{
    WS_STAT(w, tasks_spawned, 1);
}

/* Where a push took a slow path: records the depth if it is a new max. */
static inline void ws_stat_depth(ws_worker *w)
{
    if (wq_deque_size_bound(&w->deque) > w->deque.user_depth)
        ws_stat_depth_slow(w);
}
#else
#define WS_STAT(w, field, n) ((void)(w), (void)sizeof(n)) /* n not evaluated */
static inline void ws_stat_push(ws_worker *w)
{
    (void)w;
}
static inline void ws_stat_depth(ws_worker *w)
{
    (void)w;
}
#endif

/* ---- the timeline trace (sched/trace.c) -------------------------------- */
enum {
    WS_EV_TASK_BEGIN = 1, /* a: fn, b: flow (or join frame) */
    WS_EV_TASK_END,       /* a: result */
    WS_EV_STEAL,          /* a: victim index */
    WS_EV_INJECT,         /* took an item from the injection queue */
    WS_EV_PARK_BEGIN,
    WS_EV_PARK_END,
    WS_EV_FLOW_OPEN,      /* a: flow */
    WS_EV_FLOW_CLOSE,     /* a: flow, b: result */
};

void ws_trace_record(struct ws_trace_buf *t, unsigned kind, uintptr_t a, uintptr_t b);

static inline void ws_trace(ws_worker *w, unsigned kind, uintptr_t a, uintptr_t b)
{
#if WS_OBSERVE
    /* Acquire pairs with the release store in weft_trace_start: we see the
     * buffer it set up. */
    struct ws_trace_buf *t = atomic_load_explicit(&w->trace, memory_order_acquire);
    if (WS_UNLIKELY(t != NULL))
        ws_trace_record(t, kind, a, b);
#else
    (void)w, (void)kind, (void)a, (void)b;
#endif
}

/* Around a task function's call on worker w (flow: its flow, or for a
 * join's offered half the join frame). The end counts it as run. */
static inline void ws_task_begin(ws_worker *w, weft_fn fn, const void *flow)
{
    WS_PROBE4(task_begin, w->pool, w->index, flow, fn);
    ws_trace(w, WS_EV_TASK_BEGIN, (uintptr_t)fn, (uintptr_t)flow);
}

static inline void ws_task_end(ws_worker *w, weft_fn fn, const void *flow, int r)
{
    WS_STAT(w, tasks_run, 1);
    WS_PROBE5(task_end, w->pool, w->index, flow, fn, r);
    ws_trace(w, WS_EV_TASK_END, (uintptr_t)(intptr_t)r, 0);
}

/* ws_task_end for a join's offered half that its joiner took back at once
 * (weft_join's fast path): one counter stands for both its spawn and its
 * run, which weft_pool_stats adds to each. (Loading the trace pointer once
 * for both ends of the span measured more: it must live across the call.) */
static inline void ws_join_inline_end(ws_worker *w, weft_fn fn, const void *flow, int r)
{
#if WS_OBSERVE
    /* The inline join's counter (include/weft_inline.h), on the owner line. */
    ws_stat_add_(&w->deque.user_count, 1);
#endif
    WS_PROBE5(task_end, w->pool, w->index, flow, fn, r);
    ws_trace(w, WS_EV_TASK_END, (uintptr_t)(intptr_t)r, 0);
}

/* After w pushed a task of flow f (weft_spawn). */
static inline void ws_spawned(ws_worker *w, const void *f, weft_fn fn)
{
    ws_stat_push(w);
    WS_PROBE4(spawn, w->pool, w->index, f, fn);
}

/* w opened flow f / closed it with result r (its owner's open and close).
 * The index is an int here, as the -1 of the sites off a worker (the same
 * argument types at every site of a probe, for perf). */
static inline void ws_flow_opened(ws_worker *w, const void *f)
{
    WS_PROBE3(flow_open, w->pool, (int)w->index, f);
    ws_trace(w, WS_EV_FLOW_OPEN, (uintptr_t)f, 0);
}

static inline void ws_flow_closed(ws_worker *w, const void *f, int r)
{
    WS_PROBE4(flow_close, w->pool, (int)w->index, f, WS_PROBE_REG(r));
    ws_trace(w, WS_EV_FLOW_CLOSE, (uintptr_t)f, (uintptr_t)(intptr_t)r);
}

/* ---- probes the inline paths skip --------------------------------------- */

/* Whether a tracer is attached to a probe that weft_inline.h's paths skip
 * (flow_open, spawn, task_begin, task_end, flow_close): their semaphores,
 * which the kernel increments (uprobe reference counters) for each
 * attached tracer. Relaxed: a hint, polled; a tracer attached since is
 * seen at the next poll. */
static inline bool ws_probes_attached(void)
{
#if WS_HAVE_PROBES
    return (__atomic_load_n(&weft_flow_open_semaphore, __ATOMIC_RELAXED) |
            __atomic_load_n(&weft_spawn_semaphore, __ATOMIC_RELAXED) |
            __atomic_load_n(&weft_task_begin_semaphore, __ATOMIC_RELAXED) |
            __atomic_load_n(&weft_task_end_semaphore, __ATOMIC_RELAXED) |
            __atomic_load_n(&weft_flow_close_semaphore, __ATOMIC_RELAXED)) != 0;
#else
    return false;
#endif
}

/* The worker w itself: sends its inline paths to the library while
 * ws_probes_attached says so, so that the probes fire for all its work
 * (ws_probes_switch). Called from w's loop, before each task it starts
 * there (a root, stolen or injected task): a tracer attached in the middle
 * of a task sees that task's inline work from the worker's next one. */
void ws_probes_switch(ws_worker *w, bool on);
static inline void ws_probes_poll(ws_worker *w)
{
    if (WS_UNLIKELY(ws_probes_attached() != w->probed))
        ws_probes_switch(w, !w->probed);
}

/* Any thread: starts the trace $WEFT_TRACE asks for, if any, on a new pool
 * (pool.c, before the workers start). */
void ws_trace_from_env(struct weft_pool *p);
/* Any thread, once p's workers were joined (or never started): ends p's
 * trace, if any, writing its file when write is true, and frees every
 * buffer. */
void ws_trace_destroy(struct weft_pool *p, bool write);
/* Prints p's counters to stderr when $WEFT_STATS asks (pool.c, destroy). */
void ws_stats_report(const struct weft_pool *p, const char *when);

#endif /* WEFT_SCHED_OBSERVE_H */
