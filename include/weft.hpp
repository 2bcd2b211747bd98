/*
 * weft.hpp — a header-only C++17 layer over weft's C API (weft.h).
 *
 *   weft::pool, weft::pool_options, weft::default_pool()
 *   weft::flow            spawn(callable), wait(), cancel(); RAII
 *   weft::join(f, g)      binary fork-join of two callables
 *   weft::parallel_for    over weft_for; weft::parallel_reduce
 *   weft::context_var<T>, weft::context   over weft_ctx_*
 *
 * Rules (docs/cpp.md has the long form and the measured costs):
 *
 *  - A task is any callable taking no arguments and returning void or int
 *    (nonzero: an error, as in C). flow::spawn copies or moves it into
 *    storage the flow owns: an arena inside the flow object, then chunks
 *    the flow allocates and frees when it closes. A callable of at most
 *    flow::small_size bytes (and alignment at most 16) costs no allocation
 *    of its own; a larger one costs one (new), freed after it runs.
 *  - The callable is destroyed right after it runs, or at close if its task
 *    was skipped (canceled flow). Captured references must stay valid until
 *    the flow closes: declare what tasks use before the flow.
 *  - The first failure of a flow's task (an exception thrown, or a nonzero
 *    int returned) cancels the flow, and wait() reports it: the exception
 *    is rethrown, the code is thrown as std::system_error. Later failures
 *    are dropped. An exception never enters weft's C code: it is caught in
 *    the task's trampoline. Other error codes of the C API (EINVAL,
 *    ECANCELED, ...) are thrown as std::system_error (generic_category).
 *  - A flow that was not waited is closed by its destructor (which waits
 *    for its tasks, and drops their failure).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_HPP
#define WEFT_HPP

#if !defined(__cplusplus) || __cplusplus < 201703L
#error "weft.hpp needs C++17 or later (weft.h is the C API)"
#endif

#include "weft.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

namespace weft {

class pool;
class flow;

namespace detail {

[[noreturn]] inline void throw_error(int code, const char *what)
{
    throw std::system_error(code, std::generic_category(), what);
}

/* One per thread: its address tells the thread that opened a flow (which
 * spawns into it without atomics) from the others. */
inline thread_local unsigned char thread_tag_;
inline const void *thread_tag() noexcept
{
    return &thread_tag_;
}

/* A task record in a flow's arena: this header, then the callable (or, for
 * a large one, a pointer to it). Records are multiples of 16 bytes. The
 * callable's type has two task_ops of the same size: a live one, whose
 * destroy is what a skipped task needs at close, and a dead one (destroy
 * NULL) for a record whose callable was destroyed or never made. */
struct task_ops {
    std::size_t size;               /* of the whole record */
    void (*destroy)(void *payload); /* NULL: nothing to destroy */
};
struct alignas(16) task_hdr {
    const task_ops *ops; /* NULL: end of a shared chunk's records */
};
static_assert(sizeof(task_hdr) == 16, "task_hdr is 16 bytes");

inline void *payload(task_hdr *h) noexcept
{
    return reinterpret_cast<unsigned char *>(h) + sizeof(task_hdr);
}

constexpr std::size_t round16(std::size_t n) noexcept
{
    return (n + 15) & ~std::size_t(15);
}

/* Chunks of a flow's arena; the records follow the header. */
struct alignas(16) local_chunk {
    local_chunk *next;
    std::size_t  cap;
    std::size_t  used; /* bytes of records, once the owner moved on */
    unsigned char *data() noexcept { return reinterpret_cast<unsigned char *>(this + 1); }
};
struct alignas(16) shared_chunk {
    shared_chunk            *next;
    std::size_t              cap;
    std::atomic<std::size_t> off; /* bumped by fetch_add; may pass cap */
    unsigned char *data() noexcept { return reinterpret_cast<unsigned char *>(this + 1); }
};
static_assert(sizeof(local_chunk) % 16 == 0 && sizeof(shared_chunk) % 16 == 0, "chunk headers");

template <class T>
inline T *chunk_new(std::size_t cap)
{
    static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ >= 16, "operator new aligns to 16");
    return static_cast<T *>(::operator new(sizeof(T) + cap));
}

template <class D>
inline constexpr bool returns_ok =
    std::is_void_v<std::invoke_result_t<D &>> || std::is_same_v<std::invoke_result_t<D &>, int>;

/* Calls d; 0 or its int result. Exceptions are the caller's. */
template <class D>
inline int call(D &d)
{
    if constexpr (std::is_void_v<std::invoke_result_t<D &>>) {
        std::invoke(d);
        return 0;
    } else {
        return std::invoke(d);
    }
}

inline void cpu_relax() noexcept
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

struct access; /* the trampolines' way into flow */

} // namespace detail

/* ------------------------------------------------------------------------ */
/* Pools                                                                     */
/* ------------------------------------------------------------------------ */

/* weft_pool_config, the C++ way. Zero / empty means weft's default. */
struct pool_options {
    unsigned    workers = 0;    /* 0: $WEFT_WORKERS, else the CPUs we may use */
    std::string name;           /* worker thread name prefix; empty: "weft" */
    std::size_t stack_size = 0; /* 0: 16 MiB; else >= WEFT_MIN_STACK_SIZE */
    bool        no_ctx = false; /* WEFT_POOL_NO_CTX */
    /* Called on each worker with its index, before its first task / after
     * its last. An exception thrown from one terminates the process. */
    std::function<void(unsigned)> on_worker_start;
    std::function<void(unsigned)> on_worker_stop;
};

/* Owns a weft_pool (weft_pool_create / weft_pool_destroy). Movable. The
 * destructor destroys the pool; if that fails (EBUSY: a flow is still
 * open; EDEADLK: called on one of its workers) the pool is left running,
 * as in C. destroy() reports the error instead. */
class pool {
public:
    pool() : pool(pool_options{}) {}
    /* A pool of that many workers (0: as weft_pool_create decides). */
    explicit pool(unsigned workers) : pool(options_for(workers)) {}
    explicit pool(const pool_options &o)
    {
        weft_pool_config cfg{};
        cfg.workers = o.workers;
        cfg.flags = o.no_ctx ? WEFT_POOL_NO_CTX : 0u;
        cfg.name = o.name.empty() ? nullptr : o.name.c_str(); /* weft copies it */
        cfg.stack_size = o.stack_size;
        if (o.on_worker_start || o.on_worker_stop) {
            hooks_.reset(new hooks{o.on_worker_start, o.on_worker_stop});
            cfg.on_worker_start = &pool::start_hook;
            cfg.on_worker_stop = &pool::stop_hook;
            cfg.worker_arg = hooks_.get();
        }
        int rc = weft_pool_create(&p_, &cfg);
        if (rc)
            detail::throw_error(rc, "weft::pool: weft_pool_create");
    }
    pool(const pool &) = delete;
    pool &operator=(const pool &) = delete;
    pool(pool &&o) noexcept : p_(o.p_), hooks_(std::move(o.hooks_)), default_(o.default_)
    {
        o.p_ = nullptr;
    }
    pool &operator=(pool &&o) noexcept
    {
        if (this != &o) {
            drop();
            p_ = o.p_;
            hooks_ = std::move(o.hooks_);
            default_ = o.default_;
            o.p_ = nullptr;
        }
        return *this;
    }
    ~pool() { drop(); }

    /* Stops and joins the workers; afterwards the object is empty. */
    void destroy()
    {
        if (default_)
            detail::throw_error(EINVAL, "weft::pool::destroy: the default pool (see shutdown_default_pool)");
        if (!p_)
            return;
        int rc = weft_pool_destroy(p_);
        if (rc)
            detail::throw_error(rc, "weft::pool::destroy: weft_pool_destroy");
        p_ = nullptr;
        hooks_.reset();
    }

    /* The C handle (the default pool's, created on first use). */
    weft_pool *native() const
    {
        if (!default_) {
            if (!p_)
                detail::throw_error(EINVAL, "weft::pool: empty (moved from or destroyed)");
            return p_;
        }
        weft_pool *d = weft_default_pool();
        if (!d)
            detail::throw_error(EAGAIN, "weft::default_pool: the default pool could not be created");
        return d;
    }
    unsigned workers() const { return weft_pool_workers(native()); }
    /* weft_pool_stats: worker -1 is the sum over the workers. */
    weft_stats stats(int worker = -1) const
    {
        weft_stats s{};
        int rc = weft_pool_stats(native(), worker, &s);
        if (rc)
            detail::throw_error(rc, "weft::pool::stats: weft_pool_stats");
        return s;
    }

private:
    friend pool &default_pool();
    struct default_tag {};
    explicit pool(default_tag) noexcept : default_(true) {}

    struct hooks {
        std::function<void(unsigned)> start, stop;
    };
    static pool_options options_for(unsigned workers)
    {
        pool_options o;
        o.workers = workers;
        return o;
    }
    static void start_hook(weft_pool *, unsigned w, void *arg) noexcept
    {
        auto *h = static_cast<hooks *>(arg);
        if (h->start)
            h->start(w);
    }
    static void stop_hook(weft_pool *, unsigned w, void *arg) noexcept
    {
        auto *h = static_cast<hooks *>(arg);
        if (h->stop)
            h->stop(w);
    }
    void drop() noexcept
    {
        if (p_ && !default_ && weft_pool_destroy(p_) != 0)
            (void)hooks_.release(); /* the pool stays, and may still call them */
        p_ = nullptr;
        hooks_.reset();
    }

    weft_pool             *p_ = nullptr;
    std::unique_ptr<hooks> hooks_;
    bool                   default_ = false;
};

/* The process-wide default pool (weft_default_pool), created on first use. */
inline pool &default_pool()
{
    static pool p{pool::default_tag{}};
    return p;
}

/* weft_default_pool_shutdown: at the end of main, say. */
inline void shutdown_default_pool()
{
    int rc = weft_default_pool_shutdown();
    if (rc)
        detail::throw_error(rc, "weft::shutdown_default_pool");
}

/* 0..workers-1 on a worker of any pool, else -1. */
inline int worker_index() noexcept
{
    return weft_worker_index();
}

/* Whether the flow of the running task (or one above it) is canceled:
 * what a long task polls. false off a task. */
inline bool canceled() noexcept
{
    return weft_flow_canceled(weft_current_flow());
}

/* ------------------------------------------------------------------------ */
/* Flows                                                                     */
/* ------------------------------------------------------------------------ */

class flow {
public:
    /* Callables up to this size (and alignment 16) live in the arena. */
    static constexpr std::size_t small_size = 256;
    /* Bytes of arena inside the flow object itself (no allocation at all
     * for the first few tasks: about 12 of 16-byte closures). */
    static constexpr std::size_t inline_arena = 384;

    /* On the calling worker's pool, else the default pool (weft_flow_open
     * with NULL). */
    __attribute__((always_inline)) flow() : flow(static_cast<weft_pool *>(nullptr)) {}
    __attribute__((always_inline)) explicit flow(pool &p) : flow(p.native()) {}
    __attribute__((always_inline)) explicit flow(weft_pool *p)
    {
        int rc = weft_flow_open(&f_, p);
        if (rc)
            detail::throw_error(rc, "weft::flow: weft_flow_open");
        open_ = true;
    }
    flow(const flow &) = delete;
    flow &operator=(const flow &) = delete;

    /* Closes the flow if it is open: waits for its tasks, drops their
     * failure. Destroying an open flow from inside it (one of its tasks)
     * cannot wait, and terminates the process. Always inlined, as wait()
     * is: g++ kept both out of line, and the close's inline fast path with
     * them (docs/cpp.md, Costs). */
    __attribute__((always_inline)) ~flow()
    {
        if (!open_)
            return;
        if (__builtin_expect(async_.load(std::memory_order_acquire), 0))
            std::terminate(); /* close_async's done has not run: its tasks use us */
        int rc = weft_flow_close(&f_);
        if (__builtin_expect(rc != 0, 0)) {
            destroy_failed(rc);
            return;
        }
        release();
    }

    /* Copies or moves fn into the flow and spawns it. Throws
     * std::bad_alloc (nothing spawned) or std::system_error (EINVAL: the
     * flow is closed), and whatever copying fn throws. Into a canceled flow
     * the task is skipped: fn is destroyed at close without running. */
    template <class F>
    void spawn(F &&fn)
    {
        using D = std::decay_t<F>;
        static_assert(std::is_invocable_v<D &>, "weft::flow::spawn: the callable must take no arguments");
        static_assert(detail::returns_ok<D>, "weft::flow::spawn: the callable must return void or int");
        if (!open_)
            detail::throw_error(EINVAL, "weft::flow::spawn: the flow is closed");
        if constexpr (sizeof(D) <= small_size && alignof(D) <= 16) {
            constexpr bool trivial = std::is_trivially_destructible_v<D>;
            detail::task_hdr *h = alloc(small_ops<D>.size, !trivial);
            if constexpr (!std::is_nothrow_constructible_v<D, F &&>)
                h->ops = &dead_ops<D>; /* if the copy throws, the record stays dead */
            ::new (detail::payload(h)) D(std::forward<F>(fn));
            ::new (static_cast<void *>(h)) detail::task_hdr{&small_ops<D>};
            submit(h, &run_small<D>, &dead_ops<D>);
        } else {
            std::unique_ptr<D> p(new D(std::forward<F>(fn)));
            detail::task_hdr *h = alloc(big_ops<D>.size, true);
            ::new (detail::payload(h)) D *(p.release());
            ::new (static_cast<void *>(h)) detail::task_hdr{&big_ops<D>};
            submit(h, &run_big<D>, &dead_big_ops);
        }
    }

    /* Closes the flow: returns when all its tasks are done, also those they
     * spawned into it meanwhile. Then reports the first failure (see the
     * top of this file), or std::system_error(ECANCELED) for a flow
     * canceled without one. Called from inside the flow (one of its tasks,
     * or a task below one): std::system_error(EINVAL) and the flow stays
     * open. After it returns or throws otherwise, the flow is closed. */
    __attribute__((always_inline)) void wait()
    {
        if (__builtin_expect(!open_, 0))
            detail::throw_error(EINVAL, "weft::flow::wait: the flow is not open");
        int rc = weft_flow_close(&f_);
        if (__builtin_expect(rc == 0, 1)) {
            release(); /* rc 0: no task failed (a failure returns nonzero) */
            return;
        }
        wait_failed(rc);
    }

    /* Closes the flow without waiting (weft_flow_close_async), for a thread
     * that must not block (an event loop): returns at once, and once every
     * task is done calls done(std::exception_ptr) exactly once, on a worker
     * of the flow's pool, never inside this call, in the caller's context:
     * with nullptr, or the first failure as wait() would throw it (a task's
     * exception, std::system_error with a task's code, or ECANCELED for a
     * flow canceled without one). done is moved into a small allocation
     * (std::bad_alloc: nothing changed). Until done is called the flow
     * object must stay where it is and alive; done may destroy it. done
     * must not throw (std::terminate). std::system_error(EINVAL): the flow
     * is not open, or this is called from inside it (one of its tasks): the
     * flow stays open. */
    template <class F>
    void close_async(F &&done)
    {
        using D = std::decay_t<F>;
        static_assert(std::is_invocable_v<D &, std::exception_ptr>,
                      "weft::flow::close_async: done must take a std::exception_ptr");
        if (!open_ || async_.load(std::memory_order_acquire))
            detail::throw_error(EINVAL, "weft::flow::close_async: the flow is not open");
        /* One of its own tasks: refused before async_ is touched, which the
         * opener's destructor reads meanwhile. (A task further below is
         * refused by weft, with async_ set for that moment.) */
        if (current() == this)
            detail::throw_error(EINVAL, "weft::flow::close_async: called from inside the flow");
        struct pending {
            flow *self;
            D     fn;
        };
        auto *p = new pending{this, D(std::forward<F>(done))};
        /* Before the call: done may run at once on a worker. Release pairs
         * with the acquire loads above and in the destructor. */
        async_.store(true, std::memory_order_release);
        int rc = weft_flow_close_async(&f_, &async_done<pending>, p);
        if (rc) {
            async_.store(false, std::memory_order_release);
            delete p;
            detail::throw_error(rc, "weft::flow::close_async");
        }
    }

    /* weft_flow_cancel: tasks not started are skipped, later spawns too. */
    void cancel() noexcept { weft_flow_cancel(&f_); }
    /* Whether the flow, or one above it, is canceled (false once closed). */
    bool canceled() const noexcept { return weft_flow_canceled(&f_); }
    bool is_open() const noexcept { return open_; }
    /* The C flow, for weft_* calls (do not close it behind our back). */
    weft_flow *native() noexcept { return &f_; }

private:
    friend struct detail::access;

    template <class D>
    static void destroy_small(void *p)
    {
        std::launder(static_cast<D *>(p))->~D();
    }
    template <class D>
    static void destroy_big(void *p)
    {
        delete *std::launder(static_cast<D **>(p));
    }
    template <class D>
    static constexpr detail::task_ops small_ops{
        sizeof(detail::task_hdr) + detail::round16(sizeof(D)),
        std::is_trivially_destructible_v<D> ? nullptr : &destroy_small<D>};
    template <class D>
    static constexpr detail::task_ops dead_ops{sizeof(detail::task_hdr) + detail::round16(sizeof(D)), nullptr};
    template <class D>
    static constexpr detail::task_ops big_ops{sizeof(detail::task_hdr) + 16, &destroy_big<D>};
    static constexpr detail::task_ops dead_big_ops{sizeof(detail::task_hdr) + 16, nullptr};

    /* The flow of the running task: ours, in a trampoline (weft_current_flow
     * is the task's flow, and f_ is our first member). Only failures need it. */
    static flow *current() noexcept { return reinterpret_cast<flow *>(weft_current_flow()); }

    /* The trampolines weft calls: no exception leaves them. A failure is
     * recorded before the task returns (and weft cancels the flow). */
    template <class D>
    static int run_small(void *arg) noexcept
    {
        auto *h = static_cast<detail::task_hdr *>(arg);
        D &d = *std::launder(static_cast<D *>(detail::payload(h)));
        int r;
        try {
            r = detail::call(d);
        } catch (...) {
            current()->fail(0, std::current_exception());
            r = ECANCELED;
        }
        if constexpr (!std::is_trivially_destructible_v<D>) {
            d.~D();
            h->ops = &dead_ops<D>;
        }
        if (__builtin_expect(r != 0, 0))
            current()->fail(r, nullptr); /* dropped after an exception: it came first */
        return r;
    }
    template <class D>
    static int run_big(void *arg) noexcept
    {
        auto *h = static_cast<detail::task_hdr *>(arg);
        D *d = *std::launder(static_cast<D **>(detail::payload(h)));
        int r;
        try {
            r = detail::call(*d);
        } catch (...) {
            current()->fail(0, std::current_exception());
            r = ECANCELED;
        }
        delete d;
        h->ops = &dead_big_ops;
        if (__builtin_expect(r != 0, 0))
            current()->fail(r, nullptr);
        return r;
    }

    /* The first failure wins: code != 0, or an exception (code 0). Called
     * before the task returns, so before weft cancels the flow: a failure
     * that the cancel causes in another task (a nested flow's ECANCELED)
     * always comes later. The first one cancels the flow itself, at once:
     * from here on still_open() must read canceled while the flow is open
     * (a task's wait() from inside, in the moment before weft's own
     * cancel, would take the flow for closed). */
    void fail(int code, std::exception_ptr e) noexcept
    {
        int zero = 0;
        if (fail_.compare_exchange_strong(zero, 1, std::memory_order_acq_rel, std::memory_order_relaxed)) {
            code_ = code;
            if (code == 0)
                ::new (static_cast<void *>(exc_)) std::exception_ptr(std::move(e));
            weft_flow_cancel(&f_); /* before the store of 2 (see still_open) */
            fail_.store(2, std::memory_order_release);
        }
    }

    __attribute__((always_inline)) void submit(detail::task_hdr *h, weft_fn fn, const detail::task_ops *dead)
    {
        int rc = weft_spawn(&f_, fn, h);
        if (__builtin_expect(rc != 0, 0))
            spawn_failed(h, dead, rc);
    }

    [[noreturn]] __attribute__((noinline, cold)) static void spawn_failed(detail::task_hdr *h,
                                                                           const detail::task_ops *dead, int rc)
    {
        if (h->ops->destroy)
            h->ops->destroy(detail::payload(h));
        h->ops = dead;
        detail::throw_error(rc, "weft::flow::spawn: weft_spawn");
    }

    /* close_async's end, on a worker: the flow is done (rc as its close
     * would say). Released first, so that done may destroy the flow. */
    template <class P>
    static void async_done(void *arg, int rc) noexcept
    {
        P *p = static_cast<P *>(arg);
        flow *self = p->self;
        self->async_.store(false, std::memory_order_release);
        self->release();
        std::exception_ptr e = rc ? self->failure(rc, "weft::flow::close_async") : nullptr;
        auto fn = std::move(p->fn);
        delete p;
        fn(std::move(e));
    }

    /* The destructor's close returned rc (nonzero): dropped, unless the
     * flow is still open (destroyed from inside it). */
    __attribute__((noinline, cold)) void destroy_failed(int rc) noexcept
    {
        if (rc == EINVAL && still_open())
            std::terminate();
        release();
        if (fail_.load(std::memory_order_acquire) == 2)
            drop_failure();
    }

    [[noreturn]] __attribute__((noinline, cold)) void wait_failed(int rc)
    {
        if (rc == EINVAL && still_open())
            detail::throw_error(EINVAL, "weft::flow::wait: called from inside the flow");
        release();
        std::rethrow_exception(failure(rc, "weft::flow::wait"));
    }

    /* After release, for a close that returned rc (nonzero): what to report,
     * the first failure (a task's exception, or std::system_error with its
     * code) or std::system_error(rc); marks the failure reported. What
     * wait() throws and what close_async's done gets. */
    std::exception_ptr failure(int rc, const char *what) noexcept
    {
        if (fail_.load(std::memory_order_acquire) == 2) {
            if (code_ == 0)
                return take_exception(); /* marks it reported */
            rc = code_;
            fail_.store(3, std::memory_order_relaxed); /* reported */
        }
        return std::make_exception_ptr(std::system_error(rc, std::generic_category(), what));
    }

    /* The stored exception, out of its slot (constructed only by fail). */
    std::exception_ptr take_exception() noexcept
    {
        auto *p = std::launder(reinterpret_cast<std::exception_ptr *>(exc_));
        std::exception_ptr e = std::move(*p);
        p->~exception_ptr();
        fail_.store(3, std::memory_order_relaxed); /* reported */
        return e;
    }
    __attribute__((noinline, cold)) void drop_failure() noexcept
    {
        if (code_ == 0)
            (void)take_exception();
    }

    /* weft_flow_close said EINVAL: our misuse (called inside the flow: it
     * is still open) or a task's own EINVAL (then it failed, was canceled
     * and is now closed; a closed flow never reads as canceled). No failure
     * yet, or one being recorded (1: its task has not returned), or one
     * recorded (2, after fail's cancel: acquire pairs with its release
     * store) on a flow that still reads canceled: open. */
    bool still_open() const noexcept
    {
        return fail_.load(std::memory_order_acquire) <= 1 || weft_flow_canceled(&f_);
    }

    /* The opener's bump, inline; the rest out of line. */
    __attribute__((always_inline)) detail::task_hdr *alloc(std::size_t n, bool walk)
    {
        if (__builtin_expect(detail::thread_tag() == owner_ && n <= std::size_t(end_ - cur_), 1)) {
            auto *h = reinterpret_cast<detail::task_hdr *>(cur_);
            cur_ += n;
            if (walk)
                slow_ = walk_local_ = true;
            return h;
        }
        return alloc_slow(n, walk);
    }

    __attribute__((noinline)) detail::task_hdr *alloc_slow(std::size_t n, bool walk)
    {
        if (detail::thread_tag() != owner_)
            return alloc_shared(n, walk);
        grow_local(n);
        auto *h = reinterpret_cast<detail::task_hdr *>(cur_);
        cur_ += n;
        slow_ = true;
        if (walk)
            walk_local_ = true;
        return h;
    }

    static constexpr std::size_t first_chunk = 4096, max_chunk = 65536;

    /* The size of the chunk after one of prev_cap bytes (0: none yet) that
     * must hold a record of n bytes: doubling up to max_chunk. */
    static std::size_t next_chunk_size(std::size_t prev_cap, std::size_t n)
    {
        std::size_t cap = prev_cap ? std::min(prev_cap * 2, max_chunk) : first_chunk;
        return cap < n ? n : cap;
    }

    void grow_local(std::size_t n)
    {
        std::size_t cap = next_chunk_size(local_ ? local_->cap : 0, n);
        auto *c = detail::chunk_new<detail::local_chunk>(cap);
        c->next = local_;
        c->cap = cap;
        c->used = 0;
        if (local_)
            local_->used = std::size_t(cur_ - local_->data());
        else
            inline_used_ = std::size_t(cur_ - inline_);
        local_ = c;
        cur_ = c->data();
        end_ = cur_ + cap;
    }

    /* Any thread but the opener: a lock-free bump allocator over a list of
     * chunks. The bump that crosses the end of a chunk (o <= cap < o + n:
     * exactly one) marks the end of its records there and installs the
     * next chunk; the others wait a little for it, then install one of
     * their own (and free it if they lose the race). */
    detail::task_hdr *alloc_shared(std::size_t n, bool walk)
    {
        if (walk)
            walk_shared_.store(true, std::memory_order_relaxed);
        detail::shared_chunk *c = shared_.load(std::memory_order_acquire);
        for (;;) {
            if (c) {
                std::size_t o = c->off.fetch_add(n, std::memory_order_relaxed);
                if (o + n <= c->cap)
                    return reinterpret_cast<detail::task_hdr *>(c->data() + o);
                if (o < c->cap)
                    ::new (static_cast<void *>(c->data() + o)) detail::task_hdr{nullptr};
                if (o > c->cap) {
                    detail::shared_chunk *now = c;
                    for (int spin = 0; spin < 4096 && now == c; spin++) {
                        detail::cpu_relax();
                        now = shared_.load(std::memory_order_acquire);
                    }
                    if (now != c) {
                        c = now;
                        continue;
                    }
                }
            }
            std::size_t cap = next_chunk_size(c ? c->cap : 0, n);
            auto *nc = detail::chunk_new<detail::shared_chunk>(cap);
            nc->next = c;
            nc->cap = cap;
            ::new (static_cast<void *>(&nc->off)) std::atomic<std::size_t>(n);
            if (shared_.compare_exchange_strong(c, nc, std::memory_order_acq_rel, std::memory_order_acquire))
                return reinterpret_cast<detail::task_hdr *>(nc->data());
            ::operator delete(nc); /* c is the chunk another thread installed */
        }
    }

    /* Destroys the callables of tasks that never ran, in records [p, end). */
    static void walk(unsigned char *p, unsigned char *end) noexcept
    {
        while (p + sizeof(detail::task_hdr) <= end) {
            auto *h = std::launder(reinterpret_cast<detail::task_hdr *>(p));
            if (!h->ops)
                break;
            if (h->ops->destroy)
                h->ops->destroy(detail::payload(h)); /* a task that never ran */
            p += h->ops->size;
        }
    }

    /* After the close: every task is done. Nothing to do unless chunks were
     * allocated or a callable may need destroying. */
    void release() noexcept
    {
        open_ = false;
        if (__builtin_expect(slow_ || shared_.load(std::memory_order_relaxed), 0))
            release_slow();
    }

    __attribute__((noinline)) void release_slow() noexcept
    {
        if (walk_local_) {
            walk(inline_, local_ ? inline_ + inline_used_ : cur_);
            for (detail::local_chunk *c = local_; c; c = c->next)
                walk(c->data(), c == local_ ? cur_ : c->data() + c->used);
        }
        if (walk_shared_.load(std::memory_order_relaxed))
            for (detail::shared_chunk *c = shared_.load(std::memory_order_relaxed); c; c = c->next)
                walk(c->data(), c->data() + std::min(c->off.load(std::memory_order_relaxed), c->cap));
        for (detail::local_chunk *c = local_; c;) {
            detail::local_chunk *n = c->next;
            ::operator delete(c);
            c = n;
        }
        for (detail::shared_chunk *c = shared_.load(std::memory_order_relaxed); c;) {
            detail::shared_chunk *n = c->next;
            ::operator delete(c);
            c = n;
        }
        local_ = nullptr;
        shared_.store(nullptr, std::memory_order_relaxed);
        cur_ = end_ = nullptr;
        slow_ = walk_local_ = false;
    }

    weft_flow                          f_;
    unsigned char                     *cur_ = inline_;
    unsigned char                     *end_ = inline_ + inline_arena;
    detail::local_chunk               *local_ = nullptr; /* the opener's chunks, newest first */
    std::size_t                        inline_used_; /* set when local_ is */
    std::atomic<detail::shared_chunk *> shared_{nullptr}; /* everyone else's, newest first */
    const void                        *owner_ = detail::thread_tag();
    std::atomic<int>                   fail_{0}; /* 0 none, 1 being written, 2 written, 3 reported */
    int                                code_; /* read only when fail_ is 2 */
    bool                               open_ = false;
    std::atomic<bool>                  async_{false}; /* close_async called, done not yet */
    bool                               slow_ = false; /* release has work: chunks, or walk_local_ */
    bool                               walk_local_ = false;
    std::atomic<bool>                  walk_shared_{false};
    /* The first failure's exception (code_ 0): constructed only then. */
    alignas(std::exception_ptr) unsigned char exc_[sizeof(std::exception_ptr)];
    alignas(16) unsigned char          inline_[inline_arena];
};
/* flow::current() turns the task's weft_flow * into its flow: f_ first. */
static_assert(std::is_standard_layout_v<flow>, "weft::flow is standard-layout");

/* ------------------------------------------------------------------------ */
/* Binary fork-join                                                          */
/* ------------------------------------------------------------------------ */

namespace detail {

/* Where a join keeps a callable: a temporary (a lambda written in the
 * call) is moved into the frame, so the trampoline reaches its captures
 * without an extra pointer; an lvalue is called where it is (a mutable
 * lambda's state sticks). */
template <class F, bool by_value = !std::is_lvalue_reference_v<F> &&
                                   std::is_nothrow_move_constructible_v<std::remove_reference_t<F>>>
struct join_slot {
    std::remove_reference_t<F> *p;
    explicit join_slot(std::remove_reference_t<F> &f) noexcept : p(std::addressof(f)) {}
    std::remove_reference_t<F> &get() noexcept { return *p; }
};
template <class F>
struct join_slot<F, true> {
    std::remove_reference_t<F> v;
    explicit join_slot(std::remove_reference_t<F> &f) noexcept : v(std::move(f)) {}
    std::remove_reference_t<F> &get() noexcept { return v; }
};

/* A join's frame on the joiner's stack; both halves get its address. On
 * the way that nothing fails, only the slots and the two flags are
 * written: a code or an exception_ptr is stored only by a half that
 * failed. */
template <class A, class B>
struct join_frame {
    A             a;
    B             b;
    unsigned char failed[2]; /* per half: 1 code[i], 2 exc[i]; own bytes, no race */
    int           code[2];
    alignas(std::exception_ptr) unsigned char exc[2][sizeof(std::exception_ptr)];

    template <class F, class G>
    join_frame(F &f, G &g) noexcept : a(f), b(g)
    {
        failed[0] = failed[1] = 0;
    }

    std::exception_ptr take(int i) noexcept
    {
        auto *e = std::launder(reinterpret_cast<std::exception_ptr *>(exc[i]));
        std::exception_ptr r = std::move(*e);
        e->~exception_ptr();
        return r;
    }
};

/* Half I's trampoline. The inline weft_join calls the half it runs itself
 * directly: always_inline lets g++ inline it there (its try/catch looked
 * too big, so every half cost a call and three saved registers:
 * docs/cpp.md, Costs); the address taken for thieves and the library's
 * join keeps an out-of-line copy. */
template <int I, class A, class B>
__attribute__((always_inline)) inline int join_run(void *arg) noexcept
{
    auto *fr = static_cast<join_frame<A, B> *>(arg);
    try {
        auto &fn = [fr]() -> auto & {
            if constexpr (I == 0)
                return fr->a.get();
            else
                return fr->b.get();
        }();
        if constexpr (std::is_void_v<std::invoke_result_t<decltype(fn)>>) {
            std::invoke(fn);
        } else {
            int r = std::invoke(fn);
            if (r) {
                fr->code[I] = r;
                fr->failed[I] = 1;
            }
        }
    } catch (...) {
        ::new (static_cast<void *>(fr->exc[I])) std::exception_ptr(std::current_exception());
        fr->failed[I] = 2;
    }
    return 0; /* failures are reported by join, after both halves ran */
}

/* The rare path of join, out of line: f's failure, else g's. */
template <class A, class B>
[[noreturn]] __attribute__((noinline, cold)) void join_failed(int rc, join_frame<A, B> &fr)
{
    std::exception_ptr ea = fr.failed[0] == 2 ? fr.take(0) : nullptr;
    std::exception_ptr eb = fr.failed[1] == 2 ? fr.take(1) : nullptr;
    if (rc) /* weft's own error (no default pool off a worker): neither ran */
        throw_error(rc, "weft::join: weft_join");
    if (ea)
        std::rethrow_exception(ea);
    if (fr.failed[0])
        throw_error(fr.code[0], "weft::join");
    if (eb)
        std::rethrow_exception(eb);
    throw_error(fr.code[1], "weft::join");
}

} // namespace detail

/* Runs f and g, possibly in parallel, and returns when both are done
 * (weft_join: f is offered to thieves, g runs on the calling thread; off a
 * worker both run on the default pool). Both always run. Then it reports
 * f's failure, else g's: an exception rethrown, a nonzero int as
 * std::system_error. No allocation. A callable passed as an lvalue is
 * called in place; a temporary is moved into the join's frame on the
 * stack. Always inlined: the halves' trampolines call f and g directly. */
template <class F, class G>
__attribute__((always_inline)) inline void join(F &&f, G &&g)
{
    using FR = std::remove_reference_t<F>;
    using GR = std::remove_reference_t<G>;
    static_assert(std::is_invocable_v<FR &> && std::is_invocable_v<GR &>,
                  "weft::join: the callables must take no arguments");
    static_assert(detail::returns_ok<FR> && detail::returns_ok<GR>,
                  "weft::join: the callables must return void or int");
    using A = detail::join_slot<F>;
    using B = detail::join_slot<G>;
    detail::join_frame<A, B> fr{f, g};
    int rc = weft_join(&detail::join_run<0, A, B>, &fr, &detail::join_run<1, A, B>, &fr);
    std::uint16_t failed; /* both flags in one load */
    std::memcpy(&failed, fr.failed, sizeof failed);
    if (__builtin_expect((rc | failed) != 0, 0))
        detail::join_failed(rc, fr);
}

/* ------------------------------------------------------------------------ */
/* Data parallelism                                                          */
/* ------------------------------------------------------------------------ */

namespace detail {

/* The index type of a loop over [begin, end): their common integer type. */
template <class B, class E>
using index_t = std::enable_if_t<std::is_integral_v<B> && std::is_integral_v<E> && !std::is_same_v<B, bool> &&
                                     !std::is_same_v<E, bool>,
                                 std::common_type_t<B, E>>;

template <class I>
inline I index_at(I begin, std::size_t i) noexcept
{
    using U = std::make_unsigned_t<I>;
    return static_cast<I>(static_cast<U>(begin) + static_cast<U>(i));
}

template <class I>
inline std::size_t index_count(I begin, I end)
{
    /* A wider index (__int128 in GNU mode) would have its count cut. */
    static_assert(sizeof(I) <= sizeof(std::size_t), "weft: a loop index at most as wide as size_t");
    if (end < begin)
        throw_error(EINVAL, "weft::parallel_for: begin > end");
    using U = std::make_unsigned_t<I>;
    /* In U's own width (a narrow U is promoted to int for the subtraction). */
    return static_cast<std::size_t>(static_cast<U>(static_cast<U>(end) - static_cast<U>(begin)));
}

template <class I, class F>
struct for_state {
    F    *fn;
    I     begin;
    flow *fl;
};

struct access {
    static void fail(flow &fl, std::exception_ptr e) noexcept { fl.fail(0, std::move(e)); }
};

template <class I, class F>
void for_piece(std::size_t b, std::size_t e, void *arg) noexcept
{
    auto *s = static_cast<for_state<I, F> *>(arg);
    try {
        if constexpr (std::is_invocable_v<F &, I, I>) {
            std::invoke(*s->fn, index_at(s->begin, b), index_at(s->begin, e));
        } else {
            for (std::size_t i = b; i < e; i++)
                std::invoke(*s->fn, index_at(s->begin, i));
        }
    } catch (...) {
        access::fail(*s->fl, std::current_exception());
        s->fl->cancel(); /* pieces not started are skipped */
    }
}

template <class I, class F>
void parallel_for(weft_pool *p, I begin, I end, std::size_t grain, F &f)
{
    static_assert(std::is_integral_v<I> && !std::is_same_v<I, bool>, "weft::parallel_for: an integer index");
    static_assert(std::is_invocable_v<F &, I, I> || std::is_invocable_v<F &, I>,
                  "weft::parallel_for: the body takes (index) or (begin, end)");
    std::size_t n = index_count(begin, end);
    if (n == 0)
        return;
    /* A flow of our own, so that an exception cancels this loop only. */
    flow fl(p);
    for_state<I, F> s{&f, begin, &fl};
    fl.spawn([&s, n, grain]() -> int {
        return weft_for(nullptr, 0, n, grain, &for_piece<I, F>, &s);
    });
    fl.wait();
}

template <class T, class I, class B, class C>
struct reduce_state {
    B          &body;
    C          &combine;
    const T    &identity;
    I           begin;
    std::size_t grain;
    std::atomic<bool> stop{false};
};

/* On a worker: its pool's size, as weft_for's choice of a grain reads it.
 * The inline fast path's per-thread struct (weft_inline.h) names that pool;
 * on a target without the fast path (which the library itself needs), the
 * machine's CPUs. */
inline unsigned calling_pool_workers()
{
#ifdef WEFT_HAVE_FAST_
    if (weft_thread_.pool)
        return weft_pool_workers(weft_thread_.pool);
#endif
    return std::thread::hardware_concurrency();
}

template <class T, class I, class B, class C>
T reduce_rec(reduce_state<T, I, B, C> &s, std::size_t b, std::size_t e)
{
    if (e - b <= s.grain) {
        if (s.stop.load(std::memory_order_relaxed))
            return s.identity; /* another piece failed: the result is dropped */
        if (weft_flow_canceled(weft_current_flow())) {
            s.stop.store(true, std::memory_order_relaxed);
            throw_error(ECANCELED, "weft::parallel_reduce");
        }
        try {
            if constexpr (std::is_invocable_v<B &, I, I, const T &>)
                return std::invoke(s.body, index_at(s.begin, b), index_at(s.begin, e), s.identity);
            else
                return std::invoke(s.body, index_at(s.begin, b), index_at(s.begin, e));
        } catch (...) {
            s.stop.store(true, std::memory_order_relaxed);
            throw;
        }
    }
    std::size_t mid = b + (e - b) / 2;
    std::optional<T> l, r;
    /* As weft_for: offer the right half, run the left one here. */
    weft::join([&] { r.emplace(reduce_rec(s, mid, e)); }, [&] { l.emplace(reduce_rec(s, b, mid)); });
    return std::invoke(s.combine, std::move(*l), std::move(*r));
}

template <class T, class I, class B, class C>
T parallel_reduce(weft_pool *p, I begin, I end, std::size_t grain, T identity, B &body, C &combine)
{
    static_assert(std::is_integral_v<I> && !std::is_same_v<I, bool>, "weft::parallel_reduce: an integer index");
    static_assert(std::is_invocable_r_v<T, B &, I, I, const T &> || std::is_invocable_r_v<T, B &, I, I>,
                  "weft::parallel_reduce: the body is T(begin, end, const T &init) or T(begin, end)");
    static_assert(std::is_invocable_r_v<T, C &, T, T>, "weft::parallel_reduce: combine is T(T, T)");
    std::size_t n = index_count(begin, end);
    if (n == 0)
        return identity;
    if (grain == 0) {
        /* As weft_for: about eight pieces per worker. */
        unsigned w = p ? weft_pool_workers(p) : weft_worker_index() >= 0 ? calling_pool_workers()
                                                                          : weft_pool_workers(weft_default_pool());
        grain = std::max<std::size_t>(1, n / (std::size_t(std::max(w, 1u)) * 8));
    }
    reduce_state<T, I, B, C> s{body, combine, identity, begin, grain};
    if (!p && weft_worker_index() >= 0)
        return reduce_rec(s, 0, n);
    /* Off a worker, or on a chosen pool: the root runs as a task there. */
    std::optional<T> out;
    flow fl(p);
    fl.spawn([&] { out.emplace(reduce_rec(s, 0, n)); });
    fl.wait();
    return std::move(*out);
}

} // namespace detail

/* Calls f on every index of [begin, end) — f(i), or f(b, e) on subranges
 * if f takes two indexes — splitting recursively so idle workers steal
 * large halves; no subrange is larger than grain (0: weft chooses). On the
 * calling worker's pool, else the default one; or on p. The first
 * exception thrown by f skips the pieces not yet started and is rethrown;
 * a canceled caller's flow: std::system_error(ECANCELED). Costs one flow
 * (an open, a spawn and a close) over weft_for, and no allocation. */
template <class B, class E, class F, class I = detail::index_t<B, E>>
inline void parallel_for(B begin, E end, std::size_t grain, F &&f)
{
    detail::parallel_for<I>(nullptr, static_cast<I>(begin), static_cast<I>(end), grain, f);
}
template <class B, class E, class F, class I = detail::index_t<B, E>>
inline void parallel_for(B begin, E end, F &&f)
{
    detail::parallel_for<I>(nullptr, static_cast<I>(begin), static_cast<I>(end), 0, f);
}
template <class B, class E, class F, class I = detail::index_t<B, E>>
inline void parallel_for(pool &p, B begin, E end, std::size_t grain, F &&f)
{
    detail::parallel_for<I>(p.native(), static_cast<I>(begin), static_cast<I>(end), grain, f);
}
template <class B, class E, class F, class I = detail::index_t<B, E>>
inline void parallel_for(pool &p, B begin, E end, F &&f)
{
    detail::parallel_for<I>(p.native(), static_cast<I>(begin), static_cast<I>(end), 0, f);
}

/* Reduces [begin, end): body(b, e, identity) (or body(b, e)) on pieces of
 * at most grain indexes (0 or no grain: about eight per worker),
 * combine(left, right) in index order, so combine needs to be
 * associative, not commutative. Exceptions as parallel_for (pieces not
 * started give identity). Built on weft::join; an optional<T> per split on
 * the stack, no allocation. */
template <class B, class E, class T, class Body, class C, class I = detail::index_t<B, E>>
inline T parallel_reduce(B begin, E end, std::size_t grain, T identity, Body &&body, C &&combine)
{
    return detail::parallel_reduce<T, I>(nullptr, static_cast<I>(begin), static_cast<I>(end), grain, std::move(identity), body, combine);
}
template <class B, class E, class T, class Body, class C, class I = detail::index_t<B, E>>
inline T parallel_reduce(B begin, E end, T identity, Body &&body, C &&combine)
{
    return detail::parallel_reduce<T, I>(nullptr, static_cast<I>(begin), static_cast<I>(end), 0, std::move(identity), body, combine);
}
template <class B, class E, class T, class Body, class C, class I = detail::index_t<B, E>>
inline T parallel_reduce(pool &p, B begin, E end, std::size_t grain, T identity, Body &&body, C &&combine)
{
    return detail::parallel_reduce<T, I>(p.native(), static_cast<I>(begin), static_cast<I>(end), grain, std::move(identity), body, combine);
}
template <class B, class E, class T, class Body, class C, class I = detail::index_t<B, E>>
inline T parallel_reduce(pool &p, B begin, E end, T identity, Body &&body, C &&combine)
{
    return detail::parallel_reduce<T, I>(p.native(), static_cast<I>(begin), static_cast<I>(end), 0, std::move(identity), body, combine);
}

/* ------------------------------------------------------------------------ */
/* Context variables and snapshots                                           */
/* ------------------------------------------------------------------------ */

/* A weft_ctx_var holding a T:
 *  - a small trivially copyable T (an int, an id, an enum, a pointer to
 *    something you keep alive) is stored in the variable's pointer-sized
 *    slot itself: get() returns a T, set() costs what weft_ctx_set costs;
 *  - any other T (a std::shared_ptr, a std::string) is boxed: set() moves
 *    the value into a reference-counted node, and the variable's lifetime
 *    hooks (weft_ctx_var_create_ops) count the contexts that hold it, so
 *    the node, and the T in it, is destroyed when the last context holding
 *    it is gone: the set's own scope (at its next set, or when the task or
 *    thread ends), and every snapshot and task that inherited it. get()
 *    returns a copy (a reference could outlive the node at the next set).
 *    T's destructor then runs on whichever thread releases the last
 *    context, in an empty context: it must not use flows, joins or pools.
 * The initial value is this object's, destroyed with it. The weft
 * variable lives until the process ends, and this object must outlive
 * every get() and set() on it: make context variables static. */
template <class T>
class context_var {
    static constexpr bool in_slot = std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T> &&
                                    sizeof(T) <= sizeof(void *);
    /* A boxed value and the holds on it: one per context that holds it
     * (weft's retain and release), and one by whoever made it until it is
     * handed over. */
    struct node {
        std::atomic<std::size_t> holds;
        T                        value;
    };

public:
    using value_type = T;

    explicit context_var(const char *name = nullptr, T initial = T{})
    {
        void *v;
        int   rc;
        if constexpr (in_slot) {
            v = to_ptr(initial);
            rc = weft_ctx_var_create(&v_, name, v);
        } else {
            initial_ = new node{{1}, std::move(initial)};
            static const weft_ctx_var_ops ops = {retain, release};
            rc = weft_ctx_var_create_ops(&v_, name, initial_, &ops);
        }
        if (rc) {
            if constexpr (!in_slot)
                delete initial_;
            detail::throw_error(rc, "weft::context_var: weft_ctx_var_create");
        }
    }
    context_var(const context_var &) = delete;
    context_var &operator=(const context_var &) = delete;
    ~context_var()
    {
        if constexpr (!in_slot)
            release(initial_);
    }

    /* The value in the current context (task or thread), else the initial. */
    T get() const noexcept(in_slot || std::is_nothrow_copy_constructible_v<T>)
    {
        if constexpr (in_slot)
            return from_ptr(weft_ctx_get(v_));
        else
            return static_cast<const node *>(weft_ctx_get(v_))->value;
    }
    /* Sets it in the current context: this task and what it spawns after. */
    void set(T value)
    {
        int rc;
        if constexpr (in_slot) {
            rc = weft_ctx_set(v_, to_ptr(value));
        } else {
            node *n = new node{{1}, std::move(value)};
            rc = weft_ctx_set(v_, n); /* the new context retains n */
            release(n);               /* our hold, handed over (or n's last) */
        }
        if (rc)
            detail::throw_error(rc, "weft::context_var::set: weft_ctx_set");
    }
    weft_ctx_var *native() const noexcept { return v_; }

private:
    static void *to_ptr(const T &v) noexcept
    {
        void *p = nullptr;
        std::memcpy(&p, &v, sizeof v);
        return p;
    }
    static T from_ptr(void *p) noexcept
    {
        T v;
        std::memcpy(&v, &p, sizeof v);
        return v;
    }
    /* weft's hooks. A new hold is taken only from an existing one (the
     * context being copied, or the maker's), so relaxed suffices; the
     * release that drops the last hold acquires every other's writes
     * before the delete (acq_rel pairs with the other releases). */
    static void retain(void *p) noexcept
    {
        static_cast<node *>(p)->holds.fetch_add(1, std::memory_order_relaxed);
    }
    static void release(void *p) noexcept
    {
        node *n = static_cast<node *>(p);
        if (n->holds.fetch_sub(1, std::memory_order_acq_rel) == 1)
            delete n;
    }
    weft_ctx_var *v_ = nullptr;
    node         *initial_ = nullptr; /* boxed: this object's hold */
};

/* A snapshot of the current context (weft_ctx_capture), released when the
 * object is destroyed; run(f) calls f in it (weft_ctx_run) and returns
 * what f returns, or rethrows what f throws. */
class context {
public:
    static context capture()
    {
        weft_ctx *c = weft_ctx_capture();
        if (!c)
            throw std::bad_alloc();
        return context(c);
    }
    context(context &&o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    context &operator=(context &&o) noexcept
    {
        if (this != &o) {
            weft_ctx_release(c_);
            c_ = std::exchange(o.c_, nullptr);
        }
        return *this;
    }
    context(const context &) = delete;
    context &operator=(const context &) = delete;
    ~context() { weft_ctx_release(c_); }

    template <class F>
    auto run(F &&f) -> std::invoke_result_t<F &>
    {
        using FR = std::remove_reference_t<F>;
        using R = std::invoke_result_t<FR &>;
        static_assert(!std::is_reference_v<R>, "weft::context::run: return a value, not a reference");
        if (!c_)
            detail::throw_error(EINVAL, "weft::context::run: empty context");
        struct state {
            FR                                                    *fn;
            std::exception_ptr                                     exc;
            std::optional<std::conditional_t<std::is_void_v<R>, char, R>> out;
        } s{std::addressof(f), nullptr, std::nullopt};
        int rc = weft_ctx_run(
            c_,
            [](void *arg) noexcept -> int {
                auto *st = static_cast<state *>(arg);
                try {
                    if constexpr (std::is_void_v<R>) {
                        std::invoke(*st->fn);
                        st->out.emplace('\0');
                    } else {
                        st->out.emplace(std::invoke(*st->fn));
                    }
                } catch (...) {
                    st->exc = std::current_exception();
                }
                return 0;
            },
            &s);
        if (s.exc)
            std::rethrow_exception(s.exc);
        if (rc)
            detail::throw_error(rc, "weft::context::run: weft_ctx_run");
        if constexpr (std::is_void_v<R>)
            return;
        else
            return std::move(*s.out);
    }
    weft_ctx *native() const noexcept { return c_; }

private:
    explicit context(weft_ctx *c) noexcept : c_(c) {}
    weft_ctx *c_ = nullptr;
};

} // namespace weft

#endif /* WEFT_HPP */
