// tests/cxx_flow.cpp — weft::flow: closures of every size (empty, 8 bytes,
// just below, at and above flow::small_size, huge), spawned by the opener,
// by the flow's own tasks on several workers at once and by threads weft
// does not know; move-only callables; every callable constructed is
// destroyed exactly once (also those of skipped tasks); int results; the
// destructor closes; misuse (wait twice, spawn after wait, wait inside,
// also while a sibling's failure is being recorded; close_async inside
// while the opener's destructor closes).
#include <weft.hpp>

#include "tests/check.h"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <memory>
#include <thread>
#include <vector>

namespace {

std::atomic<long> live{0};    // callables alive now
std::atomic<long> made{0};    // constructed (copy or move or fresh)
std::atomic<long> sum_ran{0}; // what the tasks added up

// A callable of exactly N bytes (N >= 8) whose payload is checked when it
// runs: a torn or misplaced copy shows as a wrong sum.
template <std::size_t N>
struct sized {
    static_assert(N >= 8, "room for the tag");
    std::array<unsigned char, N - 8> pad;
    long                             tag;
    explicit sized(long t) : tag(t)
    {
        for (std::size_t i = 0; i < pad.size(); i++)
            pad[i] = static_cast<unsigned char>(t + static_cast<long>(i));
        live++, made++;
    }
    sized(const sized &o) : pad(o.pad), tag(o.tag) { live++, made++; }
    sized(sized &&o) noexcept : pad(o.pad), tag(o.tag) { live++, made++; }
    ~sized() { live--; }
    void operator()()
    {
        for (std::size_t i = 0; i < pad.size(); i++)
            CHECK(pad[i] == static_cast<unsigned char>(tag + static_cast<long>(i)));
        sum_ran.fetch_add(tag, std::memory_order_relaxed);
    }
};
template <>
struct sized<8> {
    long tag;
    explicit sized(long t) : tag(t) { live++, made++; }
    sized(const sized &o) : tag(o.tag) { live++, made++; }
    ~sized() { live--; }
    void operator()() { sum_ran.fetch_add(tag, std::memory_order_relaxed); }
};

long expect_sum(long n)
{
    return n * (n + 1) / 2;
}

// n tasks of an N-byte callable from the opener (lvalue: copied).
template <std::size_t N>
void opener_spawns(weft::pool &p, long n)
{
    static_assert(sizeof(sized<N>) == N, "sized<N> is N bytes");
    sum_ran = 0;
    {
        weft::flow f(p);
        for (long i = 1; i <= n; i++) {
            sized<N> c(i);
            f.spawn(c);
        }
        f.wait();
    }
    CHECK_EQ(sum_ran.load(), expect_sum(n));
    CHECK_EQ(live.load(), 0);
}

// 8 tasks of the flow, each spawning n/8 callables into it (the lock-free
// shared arena), while the opener spawns too.
template <std::size_t N>
void tasks_spawn(weft::pool &p, long n)
{
    sum_ran = 0;
    {
        weft::flow f(p);
        const long per = n / 8;
        for (long t = 0; t < 8; t++)
            f.spawn([&f, t, per] {
                for (long i = t * per + 1; i <= (t + 1) * per; i++)
                    f.spawn(sized<N>(i));
            });
        for (long i = 8 * per + 1; i <= n; i++)
            f.spawn(sized<N>(i));
        f.wait();
    }
    CHECK_EQ(sum_ran.load(), expect_sum(n));
    CHECK_EQ(live.load(), 0);
}

// Threads weft does not know spawn into a flow the main thread opened.
void foreign_threads(weft::pool &p)
{
    sum_ran = 0;
    const long per = 2000;
    {
        weft::flow f(p);
        std::vector<std::thread> ts;
        for (long t = 0; t < 3; t++)
            ts.emplace_back([&f, t] {
                for (long i = t * per + 1; i <= (t + 1) * per; i++) {
                    f.spawn(sized<8>(i));
                    f.spawn(sized<300>(0)); // above small_size: on the heap
                }
            });
        for (auto &t : ts)
            t.join();
        f.wait();
    }
    CHECK_EQ(sum_ran.load(), expect_sum(3 * per));
    CHECK_EQ(live.load(), 0);
}

struct move_only {
    std::unique_ptr<long> v;
    explicit move_only(long x) : v(new long(x)) {}
    move_only(move_only &&) = default;
    move_only(const move_only &) = delete;
    void operator()() { sum_ran.fetch_add(*v, std::memory_order_relaxed); }
};

void move_only_callables(weft::pool &p)
{
    sum_ran = 0;
    {
        weft::flow f(p);
        for (long i = 1; i <= 1000; i++) {
            auto up = std::make_unique<long>(i);
            f.spawn([up = std::move(up)] { sum_ran.fetch_add(*up, std::memory_order_relaxed); });
            f.spawn(move_only(i));
        }
        // A large move-only one (above small_size: on the heap).
        std::array<long, 64> big{};
        big[63] = 7;
        f.spawn([big, up = std::make_unique<long>(5)] { sum_ran.fetch_add(big[63] + *up); });
        f.wait();
    }
    CHECK_EQ(sum_ran.load(), 2 * expect_sum(1000) + 12);
}

// Callables of a canceled flow are never called, and destroyed at close.
void skipped_destroyed(weft::pool &p)
{
    sum_ran = 0;
    made = 0;
    bool threw = false;
    try {
        weft::flow f(p);
        f.cancel();
        CHECK(f.canceled());
        for (long i = 1; i <= 100; i++) {
            f.spawn(sized<8>(i));
            f.spawn(sized<64>(i));
            f.spawn(sized<1024>(i));
            f.spawn([&f, i] { f.spawn(sized<40>(i)); }); // never runs
        }
        CHECK(live.load() > 0);
        f.wait();
    } catch (const std::system_error &e) {
        threw = true;
        CHECK_EQ(e.code().value(), ECANCELED);
    }
    CHECK(threw);
    CHECK_EQ(sum_ran.load(), 0);
    CHECK_EQ(live.load(), 0);
    CHECK(made.load() >= 300);
}

// Tasks that return int: 0 is success, anything else the flow's error.
void int_results(weft::pool &p)
{
    {
        weft::flow f(p);
        for (int i = 0; i < 100; i++)
            f.spawn([] { return 0; });
        f.wait();
    }
    int code = 0;
    try {
        weft::flow f(p);
        for (int i = 0; i < 100; i++)
            f.spawn([i] { return i == 42 ? EIO : 0; });
        f.wait();
    } catch (const std::system_error &e) {
        code = e.code().value();
        CHECK(e.code().category() == std::generic_category());
    }
    CHECK_EQ(code, EIO);
    // A task's own EINVAL is reported as such, and the flow is closed.
    code = 0;
    try {
        weft::flow f(p);
        f.spawn([] { return EINVAL; });
        f.wait();
    } catch (const std::system_error &e) {
        code = e.code().value();
    }
    CHECK_EQ(code, EINVAL);
}

// The destructor of an unwaited flow waits for its tasks.
void destructor_closes(weft::pool &p)
{
    std::atomic<int> done{0};
    {
        std::vector<int> data(64, 1); // declared before the flow: outlives its tasks
        weft::flow f(p);
        for (int i = 0; i < 64; i++)
            f.spawn([&data, &done, i] {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                data[static_cast<std::size_t>(i)] += 1;
                done.fetch_add(1);
            });
    } // ~flow closes here, before data goes
    CHECK_EQ(done.load(), 64);
    // ... and drops a failure (no terminate, no leak).
    {
        weft::flow f(p);
        f.spawn([] { throw std::runtime_error("dropped"); });
        f.spawn(sized<512>(1));
    }
    CHECK_EQ(live.load(), 0);
    // ... also while an exception leaves the opener's scope.
    done = 0;
    try {
        weft::flow f(p);
        for (int i = 0; i < 16; i++)
            f.spawn([&done] {
                std::this_thread::sleep_for(std::chrono::microseconds(100));
                done.fetch_add(1);
            });
        throw 7;
    } catch (int) {
        CHECK_EQ(done.load(), 16);
    }
}

// Nested flows: fib, spawning one half and running the other.
long fib(long n)
{
    if (n < 2)
        return n;
    long x = 0, y;
    weft::flow f;
    f.spawn([&x, n] { x = fib(n - 1); });
    y = fib(n - 2);
    f.wait();
    return x + y;
}

void misuse(weft::pool &p)
{
    weft::flow f(p);
    f.spawn([] {});
    f.wait();
    CHECK(!f.is_open());
    int code = 0;
    try {
        f.wait();
    } catch (const std::system_error &e) {
        code = e.code().value();
    }
    CHECK_EQ(code, EINVAL);
    code = 0;
    try {
        f.spawn([] {});
    } catch (const std::system_error &e) {
        code = e.code().value();
    }
    CHECK_EQ(code, EINVAL);

    // wait() from one of the flow's tasks: EINVAL, and the flow stays open.
    std::atomic<int> inner{0};
    weft::flow g(p);
    g.spawn([&g, &inner] {
        try {
            g.wait();
        } catch (const std::system_error &e) {
            inner = e.code().value();
        }
    });
    g.wait();
    CHECK_EQ(inner.load(), EINVAL);
}

// wait() from a task while a sibling's failure is being recorded: the
// sibling threw, and its callable's destructor still runs (before weft's
// own cancel). The inner wait() must say EINVAL (or its task be skipped),
// never take the flow for closed (it released the flow and took the
// sibling's exception: the outer wait() then said ECANCELED). 2 workers.
struct slow_to_die {
    bool armed = true;
    slow_to_die() = default;
    slow_to_die(slow_to_die &&o) noexcept : armed(o.armed) { o.armed = false; }
    ~slow_to_die()
    {
        if (armed)
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
};

void wait_inside_while_failing(weft::pool &p)
{
    for (int round = 0; round < 3; round++) {
        std::atomic<int> inner{-1};
        int outer = 0;
        {
            weft::flow f(p);
            f.spawn([s = slow_to_die{}] { throw 7; });
            f.spawn([&f, &inner] {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                try {
                    f.wait();
                    inner = 0;
                } catch (const std::system_error &e) {
                    inner = e.code().value();
                } catch (int) {
                    inner = 1000; // the sibling's exception
                }
            });
            try {
                f.wait();
            } catch (int v) {
                outer = v;
            } catch (const std::system_error &e) {
                outer = -e.code().value();
            }
        }
        CHECK(inner.load() == EINVAL || inner.load() == -1);
        CHECK_EQ(outer, 7);
    }
}

// close_async() from one of the flow's tasks, again and again while the
// opener's destructor closes the flow: EINVAL each time, the flow as it
// was, and no std::terminate from the destructor (it read the flag the
// task set for the call; a data race under TSan).
void close_async_inside_while_closing(weft::pool &p)
{
    for (int round = 0; round < 50; round++) {
        std::atomic<bool> started{false};
        std::atomic<int> refused{0};
        {
            weft::flow f(p);
            f.spawn([&] {
                started = true;
                auto t0 = std::chrono::steady_clock::now();
                while (std::chrono::steady_clock::now() - t0 < std::chrono::microseconds(500)) {
                    try {
                        f.close_async([](std::exception_ptr) {});
                    } catch (const std::system_error &e) {
                        refused += e.code().value() == EINVAL;
                        continue;
                    }
                    CHECK(!"close_async from inside the flow was accepted");
                }
            });
            while (!started)
                std::this_thread::yield();
        } // ~flow closes it while the task calls
        CHECK(refused.load() > 0);
    }
}

// A callable whose copy throws: spawn throws, nothing runs for it, the
// record stays dead in the arena (the close walks past it), no leak. And an
// over-aligned callable (alignas 64: on the heap, aligned).
struct throws_on_copy {
    sized<40> payload{3};
    bool      armed = true;
    throws_on_copy() = default;
    throws_on_copy(const throws_on_copy &o) : payload(o.payload), armed(o.armed)
    {
        if (armed)
            throw std::runtime_error("copy");
    }
    void operator()() { payload(); }
};
struct alignas(64) over_aligned {
    long v;
    void operator()() const
    {
        CHECK(reinterpret_cast<std::uintptr_t>(this) % 64 == 0);
        sum_ran.fetch_add(v, std::memory_order_relaxed);
    }
};

void throwing_copies(weft::pool &p)
{
    sum_ran = 0;
    {
        weft::flow f(p);
        throws_on_copy bad;
        std::atomic<int> threw{0};
        for (int i = 0; i < 50; i++) {
            f.spawn(sized<40>(1)); // live records around the dead ones
            try {
                f.spawn(bad);
            } catch (const std::runtime_error &) {
                threw++;
            }
            f.spawn([&f, &bad, &threw] { // from a task: the shared arena
                try {
                    f.spawn(bad);
                } catch (const std::runtime_error &) {
                    threw++;
                }
            });
        }
        over_aligned oa{5};
        f.spawn(oa);
        f.wait();
        CHECK_EQ(threw.load(), 100);
    }
    CHECK_EQ(sum_ran.load(), 50 + 5);
    CHECK_EQ(live.load(), 0);
}

void options_and_hooks()
{
    std::atomic<int> started{0}, stopped{0};
    {
        weft::pool_options o;
        o.workers = 3;
        o.name = "cxxflow";
        o.stack_size = 1 << 20;
        o.on_worker_start = [&started](unsigned w) {
            CHECK(w < 3);
            started++;
        };
        o.on_worker_stop = [&stopped](unsigned) { stopped++; };
        weft::pool p(o);
        CHECK_EQ(p.workers(), 3);
        std::atomic<int> bad{0};
        weft::flow f(p);
        for (int i = 0; i < 100; i++)
            f.spawn([&bad] {
                int w = weft::worker_index();
                if (w < 0 || w >= 3)
                    bad++;
            });
        f.wait();
        CHECK_EQ(bad.load(), 0);
        weft::pool q(std::move(p)); // moves keep the pool
        CHECK_EQ(q.workers(), 3);
        int empty = 0;
        try {
            weft::flow g(p); // moved from: not the default pool by accident
        } catch (const std::system_error &e) {
            empty = e.code().value();
        }
        CHECK_EQ(empty, EINVAL);
        q.destroy();
        CHECK_EQ(stopped.load(), 3);
    }
    CHECK_EQ(started.load(), 3);
    int code = 0;
    try {
        weft::pool_options o;
        o.stack_size = 1000; // below WEFT_MIN_STACK_SIZE
        weft::pool p(o);
    } catch (const std::system_error &e) {
        code = e.code().value();
    }
    CHECK_EQ(code, EINVAL);
}

} // namespace

int main()
{
    weft::pool_options o;
    o.workers = 2;
    weft::pool p(o);

    const long n = 3000;
    // A captureless lambda (empty), 8 bytes, below / at / above the limit, huge.
    {
        sum_ran = 0;
        weft::flow f(p);
        for (int i = 0; i < 1000; i++)
            f.spawn([] { sum_ran.fetch_add(1, std::memory_order_relaxed); });
        f.wait();
        CHECK_EQ(sum_ran.load(), 1000);
    }
    constexpr std::size_t S = weft::flow::small_size;
    opener_spawns<8>(p, n);
    opener_spawns<S - 8>(p, n);
    opener_spawns<S>(p, n);
    opener_spawns<S + 8>(p, n);
    opener_spawns<64 * 1024>(p, 200);
    tasks_spawn<8>(p, 8 * n);
    tasks_spawn<S - 8>(p, n);
    tasks_spawn<S + 8>(p, n);
    tasks_spawn<16 * 1024>(p, 200);
    foreign_threads(p);
    move_only_callables(p);
    skipped_destroyed(p);
    throwing_copies(p);
    int_results(p);
    destructor_closes(p);
    misuse(p);
    wait_inside_while_failing(p);
    close_async_inside_while_closing(p);
    {
        long r = 0;
        weft::flow f(p);
        f.spawn([&r] { r = fib(20); });
        f.wait();
        CHECK_EQ(r, 6765);
    }
    CHECK_EQ(fib(15), 610); // from this thread: the default pool
    options_and_hooks();
    CHECK_EQ(live.load(), 0);
    std::printf("cxx_flow: ok\n");
    p.destroy();
    weft::shutdown_default_pool();
    return 0;
}
