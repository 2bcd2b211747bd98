/*
 * weft — a lock-free task-scheduling kernel with work stealing.
 *
 * This is the whole public API. It is plain C11; every function that can fail
 * returns 0 or a positive errno value (EINVAL, ENOMEM, EBUSY, EDEADLK,
 * ECANCELED). Nothing aborts on bad input.
 *
 * Threading rules in one paragraph: every function may be called from any
 * thread — a worker of any pool, a task, or a thread weft does not know —
 * unless its comment says otherwise. Waiting functions (weft_flow_close,
 * weft_join, weft_for) never block a worker while runnable work exists: on a
 * worker they run other tasks while they wait; on any other thread they sleep.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_H
#define WEFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Public symbols are exported; everything else in libweft.so is hidden. */
#if defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

/* WEFT_VERSION_MAJOR, _MINOR, _PATCH, _HEX and _STRING: the version this
 * header belongs to (generated from the build's one version). */
#include "weft_version.h"

/* The library's version at run time, (major << 16) | (minor << 8) | patch,
 * to compare with WEFT_VERSION_HEX (the header's), as libuv's uv_version. */
WEFT_API unsigned weft_version(void);

/* The same as a string, "0.2.0". */
WEFT_API const char *weft_version_string(void);

/* ------------------------------------------------------------------------ */
/* Pools                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct weft_pool weft_pool;

/* Tasks of this pool do not carry context snapshots. weft_ctx_* still work,
 * but per thread: a task on such a pool sees (and changes) its worker
 * thread's own context. */
#define WEFT_POOL_NO_CTX 0x1u

/* The most workers one pool may have; more is EINVAL. */
#define WEFT_MAX_WORKERS 512u

/* The smallest worker stack weft_pool_config.stack_size may ask for. */
#define WEFT_MIN_STACK_SIZE ((size_t)64 << 10)

/* ABI rule for 0.x: fields are only ever added at the end, and a field left
 * at zero always means what weft did before the field existed. Initialize
 * the struct with {0} or designated initializers, and a program keeps its
 * meaning when rebuilt against a later 0.x header. Binaries are compatible
 * within one minor release (the SONAME is libweft.so.0.MINOR). */
typedef struct weft_pool_config {
    unsigned    workers; /* 0: $WEFT_WORKERS if set, else the CPUs this process
                            may run on (sched_getaffinity), capped by a cgroup
                            v2 cpu.max quota, rounded up */
    unsigned    flags;   /* WEFT_POOL_* */
    const char *name;    /* worker thread name prefix; NULL: "weft". Threads
                            are named "<name>-<index>"; the kernel keeps 15
                            bytes, so the first 10 bytes of name are kept
                            (a longer name is cut there) and the index
                            always survives */
    size_t      stack_size; /* bytes of stack per worker; 0: 16 MiB (committed
                            lazily, as the kernel maps it). A worker that
                            waits (close, join, for) runs other tasks on its
                            own stack only while less than half of it is
                            used, so nested helping stops there and the
                            waiter just waits; the tasks' own recursion (a
                            chain of nested flows, say) may use all of it.
                            The size includes the thread's static TLS,
                            which glibc places on the stack.
                            Below WEFT_MIN_STACK_SIZE: EINVAL */
    /* Called on each worker thread, with its index and worker_arg: start
     * before it runs any task, stop after its last (at weft_pool_destroy).
     * For thread-local set-up, pinning, naming, per-thread allocators. Both
     * may be NULL; they must not destroy the pool. */
    void (*on_worker_start)(weft_pool *pool, unsigned worker, void *arg);
    void (*on_worker_stop)(weft_pool *pool, unsigned worker, void *arg);
    void       *worker_arg;
} weft_pool_config;

/* Creates a pool and starts its workers. cfg may be NULL (all defaults).
 * EINVAL: pool NULL, unknown flags, workers > WEFT_MAX_WORKERS, a stack_size
 * below WEFT_MIN_STACK_SIZE, or a $WEFT_WORKERS that is not a number in
 * 1..WEFT_MAX_WORKERS.
 * ENOMEM / EAGAIN: memory or threads could not be had. */
WEFT_API int weft_pool_create(weft_pool **pool, const weft_pool_config *cfg);

/* Stops and joins every worker and frees the pool.
 * EINVAL: pool NULL, or a pool inherited across fork() (it is unusable in
 * the child; its memory is leaked rather than touched).
 * EBUSY: a flow on this pool is open; also one that a task opened and
 * returned without closing (the caller's bug: that pool then stays).
 * EDEADLK: called from one of this pool's own workers. The default pool
 * cannot be destroyed (EINVAL).
 * fork() inside a task: the child may go on running that task; when the
 * task returns to weft in the child (or waits in a join there), the child
 * exits with status 0 as _exit does (no atexit handlers, no flush of the
 * stdio buffers it copied from the parent). A spawn into, or a close of, a
 * flow opened before the fork is EINVAL in the child. */
WEFT_API int weft_pool_destroy(weft_pool *pool);

/* The number of workers; 0 for NULL. */
WEFT_API unsigned weft_pool_workers(const weft_pool *pool);

/* The process-wide default pool, created on first use (thread-safe, exactly
 * once). NULL only if it could not be created (then the next call tries
 * again); the calls that use it implicitly (weft_flow_open and weft_for with
 * pool NULL off a worker, weft_join off a worker) return weft_pool_create's
 * error instead: EINVAL for a bad $WEFT_WORKERS, ENOMEM or EAGAIN. After
 * fork() the child gets a fresh one. */
WEFT_API weft_pool *weft_default_pool(void);

/* Stops the default pool and frees it, as weft_pool_destroy does for other
 * pools, so that a program that used it can end with nothing left (leak
 * checkers, valgrind). 0 also when there was none. A later use creates a
 * fresh one. Call it when no other thread may still use the default pool
 * (at the end of main, say): a use racing with it is the caller's race.
 * EBUSY: a flow on it is open. EDEADLK: called from one of its workers. */
WEFT_API int weft_default_pool_shutdown(void);

/* 0..workers-1 when called on a worker of any pool, else -1. */
WEFT_API int weft_worker_index(void);

/* ------------------------------------------------------------------------ */
/* Observing a pool: counters and a timeline trace (docs/profiling.md)       */
/* ------------------------------------------------------------------------ */

/* Per-worker counters, each kept by its worker on a cache line of its own
 * with plain (relaxed) stores: no shared read-modify-write. More fields may
 * be added at the end. */
typedef struct weft_stats {
    uint64_t tasks_run;      /* task functions called: spawned tasks, and
                                weft_join's offered halves (inline or stolen) */
    uint64_t tasks_spawned;  /* weft_spawn and weft_join's offered halves, by
                                this worker; and the tasks it took from the
                                injection queue (spawned by other threads) */
    uint64_t tasks_skipped;  /* not run: their flow was canceled */
    uint64_t steals;         /* items taken from another worker's deque */
    uint64_t steal_attempts; /* steals tried, successful or not */
    uint64_t injected;       /* items taken from the injection queue */
    uint64_t publishes;      /* private items made stealable */
    uint64_t parks;          /* times the worker went to sleep */
    uint64_t wakeups;        /* wake-ups sent (the pool's sum: also those
                                sent by threads that are not its workers) */
    uint64_t parked_ns;      /* time spent asleep */
    uint64_t spin_ns;        /* time spent searching without finding, before
                                finding work or going to sleep */
    uint64_t max_deque;      /* the deepest the deque got, as seen when a
                                flow's opener closes it and at pushes that
                                publish (the pool's sum: the deepest of all) */
    uint64_t rescued;        /* items taken over from a peer's batch, its
                                worker stuck in a long task (docs/inject.md) */
} weft_stats;

/* worker -1: the sum over the pool's workers; 0..n-1: one worker. A read
 * while the pool runs is a snapshot each of whose fields is a value that
 * field really had during the call (never torn, never decreasing between
 * calls), though not all at the same instant. After the pool's flows are
 * closed (and the reader synchronized with the closes), the sum is exact:
 * tasks_spawned == tasks_run + tasks_skipped. With $WEFT_STATS=1 a pool
 * prints its counters to stderr when destroyed (the default pool at exit).
 * EINVAL: pool or out NULL, worker out of range. ENOTSUP: the library was
 * built without counters (WEFT_OBSERVE=OFF); *out is zeroed. */
WEFT_API int weft_pool_stats(const weft_pool *pool, int worker, weft_stats *out);

/* Records what each worker of the pool does — tasks run (nested spans),
 * steals, injection-queue pops, parked time, flows opened and closed — into
 * a per-worker buffer, and writes it as a Chrome trace-event JSON file
 * (Perfetto UI, chrome://tracing) at path when weft_trace_stop returns or
 * the pool is destroyed: one track per worker, named like its thread. The
 * buffer holds $WEFT_TRACE_EVENTS events per worker (default 65536); when
 * it is full, later events are dropped and the file says how many. Tracing
 * never blocks a worker or allocates on its path. $WEFT_TRACE=path at pool
 * creation starts it for every pool: the first pool created in the process
 * writes path, the n-th (from 0) path with "-n" before its extension; the
 * default pool's file is written at exit. A task is named after its
 * function where the dynamic symbol table has it (link with -rdynamic for
 * a program's own functions), else by address.
 * A $WEFT_TRACE_EVENTS that is not a number in 16..2^26 is taken as the
 * default. The file is opened when the trace is written: a path that
 * cannot be written is weft_trace_stop's error (at destroy, or for
 * $WEFT_TRACE, a line on stderr says so).
 * EINVAL: pool or path NULL, path empty. EBUSY: already tracing (or a
 * start or stop is under way). ENOMEM. ENOTSUP: built with
 * WEFT_OBSERVE=OFF. */
WEFT_API int weft_trace_start(weft_pool *pool, const char *path);

/* Stops the trace and writes the file. EINVAL: pool NULL, or not tracing.
 * EBUSY: another start or stop of this pool's trace is under way.
 * The error of opening or writing the file (errno values), if any. */
WEFT_API int weft_trace_stop(weft_pool *pool);

/* ------------------------------------------------------------------------ */
/* Flows: structured groups of tasks with a join barrier                     */
/* ------------------------------------------------------------------------ */

/* A task: returns 0, or an error code of the caller's choosing. */
typedef int (*weft_fn)(void *arg);

/* Caller-allocated; the stack is fine. Its contents are private. (192
 * bytes, so that what other threads use sits on lines of its own wherever
 * the flow is: sched/ws.h.) */
#ifdef __cplusplus
#define WEFT_ALIGNAS_(n) alignas(n)
#else
#define WEFT_ALIGNAS_(n) _Alignas(n)
#endif
typedef struct weft_flow {
    WEFT_ALIGNAS_(16) uint64_t opaque_[24];
} weft_flow;

/* Opens a flow on pool (NULL: the calling worker's pool, else the default
 * pool). A flow opened inside a task must be closed by that task, before it
 * returns (if it is not, weft_pool_destroy says EBUSY from then on).
 * Flows opened inside a task of a canceled flow count as canceled.
 * The flow must not be open (opened and not closed yet, or async-closing):
 * weft does not read a flow's memory before it opens it (it may be
 * uninitialized), so it cannot say EINVAL there.
 * EINVAL: flow NULL, or the pool is being destroyed or was inherited across
 * fork(). With pool NULL off a worker, the default pool's creation error if
 * it could not be created (see weft_default_pool). */
WEFT_API int weft_flow_open(weft_flow *flow, weft_pool *pool);

/* Spawns fn(arg) into flow. May be called from any thread while the flow is
 * open, also by the flow's own tasks (they may while it closes, too). A
 * spawn from a thread that is not one of the flow's tasks (or below one)
 * may race the close or async close: it either counts before the close
 * sees the tasks done (the close waits for its task; done runs after it)
 * or returns EINVAL, and its task never runs. Two exceptions, where the
 * spawn call's return must happen before the close is called: the flow's
 * opener itself (its count is read by the close), and the synchronous
 * close of a flow a task opened on its own worker's pool (that close does
 * no atomic read-modify-write; the flow lives in that task's frame
 * anyway). The flow's memory and its pool must stay valid until every
 * call on the flow has returned.
 * Copies no user data: arg must stay valid until the flow closes. The task
 * runs in a snapshot of the caller's context taken now. Into a canceled flow the task is skipped (0 is
 * returned; fn is never called).
 * EINVAL: flow or fn NULL, or the flow is not open. */
WEFT_API int weft_spawn(weft_flow *flow, weft_fn fn, void *arg);

/* The join barrier: returns when every task spawned into the flow has
 * finished, also tasks spawned by its tasks while it was closing. On a
 * worker the caller runs other work meanwhile; elsewhere it sleeps.
 * Returns 0 if every task returned 0; else the first nonzero value a task
 * returned; ECANCELED if the flow was canceled and no task failed.
 * EINVAL: flow NULL or not open (never opened, or closed already); or
 * called from inside the flow: by one of its tasks, or a task below one
 * (it would wait for itself); or, for a flow a task opened, called from
 * a task of another flow (one that the task's wait runs on its worker,
 * say): the flow then stays open for its opener's close.
 * After it returns, the flow's memory is the caller's again. */
WEFT_API int weft_flow_close(weft_flow *flow);

/* What weft_flow_close_async calls when the flow is done: arg as given,
 * result what weft_flow_close would have returned. */
typedef void (*weft_done_fn)(void *arg, int result);

/* Closes the flow without waiting, for a thread that must not block (an
 * event loop). Returns 0 at once; when every task spawned into the flow
 * (transitively, as for weft_flow_close) has finished, done(arg, result)
 * runs exactly once, with what weft_flow_close would have returned (0, the
 * first error, ECANCELED). It runs on one of the pool's workers, never
 * inside this call (also when everything had finished already), in the
 * context the caller had at this call. Until done has returned the flow
 * counts as open for its pool (weft_pool_destroy says EBUSY) and its memory
 * must stay valid: a flow on the stack of a function that returns before
 * done has run is the caller's bug. When done returns, the flow's memory is
 * the caller's again (done may free it). Spawns into the flow after this
 * call are EINVAL, as after a close, except from inside the flow: its own
 * tasks (and what runs below them) may spawn into it, as during a close.
 * Called by a task on a flow it opened: the task may return before the
 * flow is done (that is not "left open"). The flow still belongs to the
 * task's own flow, as its tasks would: closing that flow (sync or async)
 * waits until this flow's done has returned, and canceling it cancels
 * this one (docs/guide.md, "Closing without waiting"). The same holds for
 * a flow opened on another pool by a task.
 * done runs as the flow's last act, inside the flow that encloses it (the
 * opener task's flow, or none): a flow done opens belongs there, and
 * weft_current_flow() in done returns it.
 * EINVAL: flow or done NULL, the flow is not open, called from inside the
 * flow (as for weft_flow_close), or the pool's workers are stopping (a flow
 * of on_worker_stop); the flow then stays open. */
WEFT_API int weft_flow_close_async(weft_flow *flow, weft_done_fn done, void *arg);

/* Cancels the flow: tasks not yet started are skipped, later spawns are
 * skipped, flows opened by its tasks count as canceled. Running tasks may
 * poll weft_flow_canceled. When it returns, the flow is canceled for this
 * thread and every thread that synchronizes with it after, also when
 * another thread is canceling it at the same time. NULL or a flow that is
 * not open: no effect. */
WEFT_API void weft_flow_cancel(weft_flow *flow);

/* Whether the flow, or a flow above it, is canceled. false for NULL and for
 * a flow that is not open (never opened, or closed). */
WEFT_API bool weft_flow_canceled(const weft_flow *flow);

/* The flow of the task running on this thread, or NULL. */
WEFT_API weft_flow *weft_current_flow(void);

/* ------------------------------------------------------------------------ */
/* Binary fork-join                                                          */
/* ------------------------------------------------------------------------ */

/* Runs a(arg_a) and b(arg_b), possibly in parallel; returns when both are
 * done: a's result if nonzero, else b's. On a worker it offers a to thieves,
 * runs b inline and takes a back if nobody stole it; elsewhere both run on
 * the default pool while the caller sleeps (a half that cannot be queued
 * for lack of memory runs on the caller). Both see the caller's context.
 * Each half runs exactly once, unless an error is returned: then neither
 * ran. EINVAL: a or b NULL. Off a worker, the default pool's creation
 * error if it could not be created (see weft_default_pool). */
WEFT_API int weft_join(weft_fn a, void *arg_a, weft_fn b, void *arg_b);

/* ------------------------------------------------------------------------ */
/* Data parallelism                                                          */
/* ------------------------------------------------------------------------ */

typedef void (*weft_range_fn)(size_t begin, size_t end, void *arg);

/* Calls fn on disjoint subranges that together cover [begin, end), splitting
 * recursively so that idle workers steal large halves; no piece is larger
 * than grain (0: chosen by weft). pool NULL as in weft_flow_open. Returns
 * when all of the range is done. begin == end: returns 0 at once.
 * Called by a task whose flow (or a flow above it) is canceled, before or
 * during the call: pieces not yet started are skipped, pieces started
 * finish, and it returns ECANCELED; the same on the caller's pool and on
 * any other. EINVAL: fn NULL, begin > end, or pool unusable. ENOMEM (off
 * the pool: the root could not be queued; nothing ran). */
WEFT_API int weft_for(weft_pool *pool, size_t begin, size_t end, size_t grain,
             weft_range_fn fn, void *arg);

/* ------------------------------------------------------------------------ */
/* Context variables and snapshots (like Python's contextvars)               */
/* ------------------------------------------------------------------------ */

typedef struct weft_ctx_var weft_ctx_var; /* a key, like a ContextVar */
typedef struct weft_ctx     weft_ctx;     /* an immutable snapshot */

/* Creates a variable. name may be NULL (it is copied; for debugging only).
 * Variables live until the process ends; any number may be created, at any
 * time, from any thread. EINVAL: var NULL. ENOMEM. */
WEFT_API int weft_ctx_var_create(weft_ctx_var **var, const char *name, void *initial);

/* Lifetime hooks for a variable's values (like the reference a Python
 * Context holds on a ContextVar's value). Every context holds its own copy
 * of each value in it, the one just set and those it inherited, so:
 * retain(value) runs once each time value enters a context, that is for
 * each value with hooks in every context a weft_ctx_set (of any variable)
 * makes, before anyone else can see that context; release(value) runs once
 * for each retain, when the last scope, snapshot or task that holds that
 * context is gone, on whichever thread that is (a worker, the thread that
 * destroys a pool, a thread that exits). NULL values are never passed. The
 * initial value is the caller's: weft retains it only where it is set like
 * any other value. Setting the value already there, spawning, weft_join,
 * weft_for, capturing and weft_ctx_run retain nothing. A thread's own
 * context is released when the thread exits, but the main thread's is not
 * when main returns (set the variables to NULL first to balance it).
 * Hooks run in an empty context of their own: they may call weft_ctx_*
 * (what they set is gone when they return), and must not open, spawn into
 * or close flows, call weft_join or weft_for, use pools, or wait for other
 * tasks. */
typedef struct weft_ctx_var_ops {
    void (*retain)(void *value);  /* a context now holds value */
    void (*release)(void *value); /* a context that held it is gone */
} weft_ctx_var_ops;

/* weft_ctx_var_create with lifetime hooks; ops is copied, either hook may
 * be NULL, ops NULL is weft_ctx_var_create. EINVAL: var NULL. ENOMEM. */
WEFT_API int weft_ctx_var_create_ops(weft_ctx_var **var, const char *name, void *initial,
                                     const weft_ctx_var_ops *ops);

/* The variable's value in the current context, or its initial value if it
 * was never set there. NULL for a NULL var. */
WEFT_API void *weft_ctx_get(const weft_ctx_var *var);

/* Sets the variable in the current context only: the current task (or
 * thread), and what it spawns afterwards, see the new value; its parent,
 * siblings and whatever its worker runs next do not. weft never frees
 * values (a variable with hooks retains and releases them). EINVAL: var
 * NULL. ENOMEM. */
WEFT_API int weft_ctx_set(weft_ctx_var *var, void *value);

/* A snapshot of the current context (like copy_context()). Release it with
 * weft_ctx_release. NULL only when memory ran out. */
WEFT_API weft_ctx *weft_ctx_capture(void);

/* Runs fn(arg) with ctx as the current context (like Context.run()) and
 * returns its result; the thread's own context is restored afterwards. Sets
 * made inside stay inside. Flows opened inside must be closed inside.
 * EINVAL: ctx or fn NULL. */
WEFT_API int weft_ctx_run(weft_ctx *ctx, weft_fn fn, void *arg);

/* Releases a snapshot from weft_ctx_capture. NULL: no effect. */
WEFT_API void weft_ctx_release(weft_ctx *ctx);

/* The inline fast path of weft_join (WEFT_NO_INLINE: none). */
#include "weft_inline.h"

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
