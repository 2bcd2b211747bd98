// tests/cxx_api.cpp — the rest of weft.hpp, with results checked:
// default_pool, pool stats, parallel_for (per index and per range, signed
// and unsigned indexes, negative ranges, every grain, on a chosen pool and
// nested in tasks), parallel_reduce (a non-commutative combine keeps index
// order; empty ranges give the identity), join with values and recursion,
// context_var<T> (ints, enums, pointers in the slot; shared_ptr and string
// boxed) seen by spawned tasks, joins and loops, context snapshots,
// canceled(); loops and reductions with mixed index types, with and without
// a grain, on a pool and not.
#include <weft.hpp>

#include "tests/check.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

void pools()
{
    weft::pool &d = weft::default_pool();
    CHECK(d.native() == weft_default_pool());
    CHECK(d.workers() >= 1);
    CHECK(&weft::default_pool() == &d);
    int code = 0;
    try {
        d.destroy();
    } catch (const std::system_error &e) {
        code = e.code().value();
    }
    CHECK_EQ(code, EINVAL);

    weft::pool_options o;
    o.workers = 2;
    o.no_ctx = true;
    weft::pool p(o);
    weft::flow f(p);
    for (int i = 0; i < 50; i++)
        f.spawn([] {});
    f.wait();
    try {
        weft_stats st = p.stats();
        CHECK_EQ(static_cast<long>(st.tasks_run + st.tasks_skipped), static_cast<long>(st.tasks_spawned));
    } catch (const std::system_error &e) {
        CHECK_EQ(e.code().value(), ENOTSUP); // built with WEFT_OBSERVE=OFF
    }
}

void loops(weft::pool &p)
{
    for (std::size_t grain : {0u, 1u, 7u, 1000u, 100000u}) {
        std::vector<std::atomic<int>> hits(10000);
        weft::parallel_for(std::size_t(0), hits.size(), grain, [&hits](std::size_t i) { hits[i]++; });
        for (auto &h : hits)
            CHECK_EQ(h.load(), 1);
        // Ranges, each no larger than the grain.
        std::atomic<long> covered{0};
        std::atomic<int> too_big{0};
        weft::parallel_for(p, 0, 10000, grain, [&](int b, int e) {
            if (grain && static_cast<std::size_t>(e - b) > grain)
                too_big++;
            covered += e - b;
        });
        CHECK_EQ(covered.load(), 10000);
        CHECK_EQ(too_big.load(), 0);
    }
    // Negative and signed ranges.
    std::atomic<long> s{0};
    weft::parallel_for(-500, 500, [&s](int i) { s += i; });
    CHECK_EQ(s.load(), -500);
    s = 0;
    weft::parallel_for(static_cast<signed char>(-100), static_cast<signed char>(100), 3,
                       [&s](signed char i) { s += i; });
    CHECK_EQ(s.load(), -100);
    // Empty and reversed.
    weft::parallel_for(5, 5, [](int) { CHECK(!"called on an empty range"); });
    int code = 0;
    try {
        weft::parallel_for(6, 5, [](int) {});
    } catch (const std::system_error &e) {
        code = e.code().value();
    }
    CHECK_EQ(code, EINVAL);
    // Mixed index types (int and size_t: their common type), no grain, on a pool.
    std::vector<int> v(1000, 1);
    std::atomic<long> m{0};
    weft::parallel_for(0, v.size(), 16, [&](std::size_t i) { m += v[i]; });
    weft::parallel_for(p, 0, v.size(), [&](std::size_t i) { m += v[i]; });
    weft::parallel_for(p, short(0), 1000, [&m](int) { m++; });
    CHECK_EQ(m.load(), 3000);
    // Nested in tasks on several workers.
    std::atomic<long> total{0};
    weft::flow f(p);
    for (int t = 0; t < 8; t++)
        f.spawn([&total] { weft::parallel_for(0, 1000, 10, [&total](int) { total++; }); });
    f.wait();
    CHECK_EQ(total.load(), 8000);
}

void reduces(weft::pool &p)
{
    // Concatenation is associative, not commutative: the order must hold.
    std::string want;
    for (int i = 0; i < 300; i++)
        want += static_cast<char>('a' + i % 26);
    for (std::size_t grain : {0u, 1u, 5u, 64u}) {
        std::string got = weft::parallel_reduce(
            p, 0, 300, grain, std::string(),
            [](int b, int e, const std::string &init) {
                std::string r = init;
                for (int i = b; i < e; i++)
                    r += static_cast<char>('a' + i % 26);
                return r;
            },
            [](std::string l, std::string r) { return l + r; });
        CHECK(got == want);
    }
    // Two-argument body, the default pool, from this thread.
    long sum = weft::parallel_reduce(
        1L, 100001L, 0, 0L,
        [](long b, long e) {
            long r = 0;
            for (long i = b; i < e; i++)
                r += i;
            return r;
        },
        [](long a, long b) { return a + b; });
    CHECK_EQ(sum, 5000050000L);
    CHECK_EQ(weft::parallel_reduce(3, 3, 0, 42, [](int, int) { return 0; }, [](int a, int b) { return a + b; }),
             42);
    // No grain, mixed index types, on a pool and not.
    std::vector<long> w(5000, 2);
    auto range_sum = [&w](std::size_t b, std::size_t e, long acc) {
        for (; b < e; b++)
            acc += w[b];
        return acc;
    };
    auto plus = [](long a, long b) { return a + b; };
    CHECK_EQ(weft::parallel_reduce(0, w.size(), 0L, range_sum, plus), 10000);
    CHECK_EQ(weft::parallel_reduce(p, 0, w.size(), 0L, range_sum, plus), 10000);
    CHECK_EQ(weft::parallel_reduce(p, 0, w.size(), 7, 0L, range_sum, plus), 10000);
    // Inside a task (runs on the worker's pool directly).
    long in_task = 0;
    weft::flow f(p);
    f.spawn([&in_task] {
        in_task = weft::parallel_reduce(0L, 1000L, 10, 0L, [](long b, long e) { return e - b; },
                                        [](long a, long b) { return a + b; });
    });
    f.wait();
    CHECK_EQ(in_task, 1000);
    // No grain inside a task: as many pieces as weft_for makes there, from
    // the worker's own pool's size (not the machine's). Four times the
    // machine's CPUs (at most 512): a quarter of the grain, so 4x the pieces
    // of a choice made from the CPUs.
    unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
    weft::pool big(std::min(4 * cpus, 512u));
    const long n = 1L << 16;
    std::size_t grain = std::max<std::size_t>(1, std::size_t(n) / (std::size_t(big.workers()) * 8));
    int pieces = 1; // weft_for halves a range until it is no larger than the grain
    for (long len = n; static_cast<std::size_t>(len) > grain; len = (len + 1) / 2)
        pieces *= 2;
    std::atomic<int> for_pieces{0}, reduce_pieces{0};
    weft::flow g(big);
    g.spawn([&] {
        weft::parallel_for(0L, n, [&for_pieces](long, long) { for_pieces++; });
        long got = weft::parallel_reduce(
            0L, n, 0L,
            [&reduce_pieces](long b, long e) {
                reduce_pieces++;
                return e - b;
            },
            [](long a, long b) { return a + b; });
        CHECK_EQ(got, n);
    });
    g.wait();
    CHECK_EQ(for_pieces.load(), pieces);
    CHECK_EQ(reduce_pieces.load(), pieces);
    big.destroy();
}

long fib(int n)
{
    if (n < 2)
        return n;
    long x, y;
    weft::join([&] { x = fib(n - 1); }, [&] { y = fib(n - 2); });
    return x + y;
}

void joins(weft::pool &p)
{
    CHECK_EQ(fib(20), 6765); // from this thread: the default pool
    long r = 0;
    weft::flow f(p);
    f.spawn([&r] { r = fib(24); });
    f.wait();
    CHECK_EQ(r, 46368);
    int a = 0, b = 0;
    weft::join([&a] { a = 1; return 0; }, [&b] { b = 2; });
    CHECK(a == 1 && b == 2);
    // A mutable lambda is called, not copied: its state changes stick.
    int calls = 0;
    auto counter = [&calls, k = 0]() mutable { calls = ++k; };
    weft::join(counter, [] {});
    weft::join([] {}, counter);
    CHECK_EQ(calls, 2); // a copy would start again from k = 0
}

enum class color : unsigned char { red = 1, green = 2, blue = 3 };

// A boxed value is destroyed when the last context holding it goes: the
// scope that set it (at its next set), a snapshot, the tasks that inherited
// it; a value per task is gone when its flow closes.
void boxed_lifetimes(weft::pool &p)
{
    weft::context_var<std::shared_ptr<int>> held("held");
    CHECK(held.get() == nullptr);
    auto one = std::make_shared<int>(1);
    std::weak_ptr<int> w1 = one;
    held.set(std::move(one));
    CHECK(!w1.expired() && *held.get() == 1);
    {
        weft::context snap = weft::context::capture();
        held.set(std::make_shared<int>(2));
        CHECK(!w1.expired()); // the snapshot holds it
        CHECK_EQ(snap.run([&held] { return *held.get(); }), 1);
    }
    CHECK(w1.expired());
    CHECK_EQ(*held.get(), 2);

    constexpr int n = 200;
    std::vector<std::weak_ptr<int>> seen(n);
    std::atomic<int> bad{0};
    {
        weft::flow f(p);
        for (int i = 0; i < n; i++)
            f.spawn([&, i] {
                auto v = std::make_shared<int>(i);
                seen[static_cast<std::size_t>(i)] = v;
                held.set(std::move(v));
                weft::flow g; // the children inherit it, and hold it
                for (int k = 0; k < 3; k++)
                    g.spawn([&, i] {
                        if (*held.get() != i)
                            bad++;
                    });
                g.wait();
            });
        f.wait();
    }
    CHECK_EQ(bad.load(), 0);
    int alive = 0;
    for (auto &w : seen)
        alive += !w.expired();
    CHECK_EQ(alive, 0);
    CHECK_EQ(*held.get(), 2);
    held.set(nullptr); // this thread's last hold on 2
}

void contexts(weft::pool &p)
{
    static weft::context_var<int> id("request_id", -1);
    static weft::context_var<color> col("color", color::red);
    static weft::context_var<const char *> tag("tag", nullptr);
    CHECK_EQ(id.get(), -1);
    CHECK(col.get() == color::red);
    CHECK(tag.get() == nullptr);
    static const char hello[] = "hello";
    std::atomic<int> bad{0};
    weft::flow f(p);
    for (int i = 0; i < 20; i++) {
        id.set(i);
        col.set(i % 2 ? color::green : color::blue);
        tag.set(hello);
        f.spawn([i, &bad] {
            // Each task sees the values set when it was spawned...
            if (id.get() != i || col.get() != (i % 2 ? color::green : color::blue) || tag.get() != hello)
                bad++;
            // ... a set inside stays inside (and in what it spawns).
            id.set(1000 + i);
            long s = 0;
            weft::join([&] { s += id.get() == 1000 + i; }, [&] {});
            weft::parallel_for(0, 10, 1, [&bad, i](int) {
                if (id.get() != 1000 + i)
                    bad++;
            });
            if (s != 1)
                bad++;
        });
    }
    f.wait();
    CHECK_EQ(bad.load(), 0);
    CHECK_EQ(id.get(), 19);

    // Boxed values: a shared_ptr and a string (moved into nodes that live
    // as long as a context holds them).
    {
        auto first = std::make_shared<int>(1);
        weft::context_var<std::shared_ptr<int>> sp("sp", first);
        weft::context_var<std::string> name("name", "none");
        CHECK(sp.get() == first && name.get() == "none");
        std::weak_ptr<int> watch;
        {
            auto second = std::make_shared<int>(2);
            watch = second;
            sp.set(second);
        }
        name.set(std::string(100, 'x'));
        weft::flow g(p);
        std::atomic<int> seen{0};
        for (int i = 0; i < 10; i++)
            g.spawn([&sp, &name, &seen] {
                if (*sp.get() == 2 && name.get().size() == 100)
                    seen++;
                sp.set(std::make_shared<int>(3)); // inside the task only
                if (*sp.get() != 3)
                    seen--;
            });
        g.wait();
        CHECK_EQ(seen.load(), 10);
        CHECK_EQ(*sp.get(), 2);
        CHECK(!watch.expired()); // this thread's context holds it
    }
    boxed_lifetimes(p);
    // A snapshot: runs in the values of the capture, not today's.
    weft::context snap = weft::context::capture();
    id.set(77);
    CHECK_EQ(snap.run([] { return id.get(); }), 19);
    snap.run([] { id.set(5); }); // stays inside
    CHECK_EQ(id.get(), 77);
    weft::context moved = std::move(snap);
    CHECK(snap.native() == nullptr && moved.native() != nullptr);
    CHECK_EQ(moved.run([] { return id.get(); }), 19);
}

void cancel_poll(weft::pool &p)
{
    CHECK(!weft::canceled()); // not a task
    std::atomic<int> saw{0};
    weft::flow f(p);
    f.spawn([&saw, &f] {
        CHECK(!weft::canceled());
        f.cancel();
        if (weft::canceled())
            saw++;
    });
    try {
        f.wait();
    } catch (const std::system_error &e) {
        CHECK_EQ(e.code().value(), ECANCELED);
    }
    CHECK_EQ(saw.load(), 1);
}

} // namespace

int main()
{
    pools();
    weft::pool p(2u);
    CHECK_EQ(p.workers(), 2);
    loops(p);
    reduces(p);
    joins(p);
    contexts(p);
    cancel_poll(p);
    std::printf("cxx_api: ok\n");
    p.destroy();
    weft::shutdown_default_pool();
    return 0;
}
