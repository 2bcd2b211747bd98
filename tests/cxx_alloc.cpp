// tests/cxx_alloc.cpp — what weft.hpp allocates, counted by replacing the
// global operator new and delete (every form) in this program:
//   - weft::join and flows of a few small tasks: nothing at all;
//   - a flow of many small callables (up to flow::small_size): only its
//     arena's chunks (4 KiB doubling to 64 KiB), never one per task, from
//     the opener and from tasks spawning into it on several workers;
//   - a callable above small_size: exactly one allocation per task;
//   - parallel_for and parallel_reduce: nothing;
//   - nothing leaks: news == deletes after every flow closes, also when
//     tasks were skipped (canceled) or threw.
// The C library allocates with malloc, which this does not count.
#include <weft.hpp>

#include "tests/check.h"

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace {
std::atomic<long> news{0}, deletes{0};

void *counted(std::size_t n)
{
    news.fetch_add(1, std::memory_order_relaxed);
    void *p = std::malloc(n ? n : 1);
    if (!p)
        throw std::bad_alloc();
    return p;
}
void *counted_aligned(std::size_t n, std::align_val_t a)
{
    news.fetch_add(1, std::memory_order_relaxed);
    std::size_t al = static_cast<std::size_t>(a);
    void *p = std::aligned_alloc(al, (n + al - 1) / al * al);
    if (!p)
        throw std::bad_alloc();
    return p;
}
void uncounted(void *p) noexcept
{
    if (p) {
        deletes.fetch_add(1, std::memory_order_relaxed);
        std::free(p);
    }
}
} // namespace

void *operator new(std::size_t n) { return counted(n); }
void *operator new[](std::size_t n) { return counted(n); }
void *operator new(std::size_t n, const std::nothrow_t &) noexcept
{
    try {
        return counted(n);
    } catch (...) {
        return nullptr;
    }
}
void *operator new[](std::size_t n, const std::nothrow_t &) noexcept
{
    try {
        return counted(n);
    } catch (...) {
        return nullptr;
    }
}
void *operator new(std::size_t n, std::align_val_t a) { return counted_aligned(n, a); }
void *operator new[](std::size_t n, std::align_val_t a) { return counted_aligned(n, a); }
void operator delete(void *p) noexcept { uncounted(p); }
void operator delete[](void *p) noexcept { uncounted(p); }
void operator delete(void *p, std::size_t) noexcept { uncounted(p); }
void operator delete[](void *p, std::size_t) noexcept { uncounted(p); }
void operator delete(void *p, std::align_val_t) noexcept { uncounted(p); }
void operator delete[](void *p, std::align_val_t) noexcept { uncounted(p); }
void operator delete(void *p, std::size_t, std::align_val_t) noexcept { uncounted(p); }
void operator delete[](void *p, std::size_t, std::align_val_t) noexcept { uncounted(p); }

namespace {

struct counts {
    long n, d;
};
counts snap()
{
    return {news.load(), deletes.load()};
}
long allocs_since(counts c)
{
    return news.load() - c.n;
}
void check_balanced(counts c, const char *what)
{
    long a = news.load() - c.n, f = deletes.load() - c.d;
    if (a != f) {
        std::fprintf(stderr, "cxx_alloc: %s: %ld allocations, %ld frees\n", what, a, f);
        std::exit(1);
    }
}

long fib_join(int n)
{
    if (n < 2)
        return n;
    long x, y;
    weft::join([&] { x = fib_join(n - 1); }, [&] { y = fib_join(n - 2); });
    return x + y;
}

long fib_flow(int n)
{
    if (n < 2)
        return n;
    long x = 0, y;
    weft::flow f;
    f.spawn([&x, n] { x = fib_flow(n - 1); });
    y = fib_flow(n - 2);
    f.wait();
    return x + y;
}

template <std::size_t N>
struct blob {
    std::array<unsigned char, N - sizeof(std::atomic<long> *)> pad;
    std::atomic<long>                                        *sum;
    void operator()() const { sum->fetch_add(1 + pad[0], std::memory_order_relaxed); }
};

// The most chunks `bytes` of records can take: 4 KiB, 8 KiB, ... 64 KiB,
// then 64 KiB each.
long chunk_bound(long bytes)
{
    long c = 0, cap = 4096;
    while (bytes > 0) {
        bytes -= cap - 512; // a record may not fit at a chunk's end
        c++;
        if (cap < 65536)
            cap *= 2;
    }
    return c;
}

// tasks callables of N bytes into one flow; returns the allocations.
template <std::size_t N>
long many(weft::pool &p, long tasks, bool from_tasks)
{
    std::atomic<long> sum{0};
    blob<N> b{};
    b.sum = &sum;
    counts c0 = snap();
    {
        weft::flow f(p);
        if (!from_tasks) {
            for (long i = 0; i < tasks; i++)
                f.spawn(b);
        } else {
            for (int t = 0; t < 4; t++)
                f.spawn([&f, &b, tasks] {
                    for (long i = 0; i < tasks / 4; i++)
                        f.spawn(b);
                });
        }
        f.wait();
    }
    long a = allocs_since(c0);
    check_balanced(c0, "many");
    CHECK_EQ(sum.load(), from_tasks ? tasks / 4 * 4 : tasks);
    return a;
}

} // namespace

int main()
{
    weft::pool_options o;
    o.workers = 2;
    weft::pool p(o); // std::function hooks none: pool_options allocates nothing
    constexpr std::size_t S = weft::flow::small_size;
    const long tasks = 100000;

    // Warm up: the first use of the default pool, iostreams, etc.
    (void)fib_join(5);

    // 1. join: nothing, ever.
    counts c = snap();
    long r = 0;
    {
        weft::flow f(p);
        f.spawn([&r] { r = fib_join(25); });
        f.wait();
    }
    CHECK_EQ(r, 75025);
    long a_join = allocs_since(c);
    CHECK_EQ(a_join, 0);

    // 2. fib through flows, one spawn per call: all in the flows' inline arenas.
    c = snap();
    {
        weft::flow f(p);
        f.spawn([&r] { r = fib_flow(22); });
        f.wait();
    }
    CHECK_EQ(r, 17711);
    long a_fibflow = allocs_since(c);
    CHECK_EQ(a_fibflow, 0);

    // 3. many small callables, from the opener and from tasks.
    long a16 = many<16>(p, tasks, false);
    long aS = many<S>(p, tasks, false);
    long a16t = many<16>(p, tasks, true);
    long aSt = many<S>(p, tasks, true);
    CHECK(a16 <= chunk_bound(tasks * 32));
    CHECK(aS <= chunk_bound(tasks * static_cast<long>(S + 16)));
    // From 4 tasks on 2 workers: the shared chunks (the 4 spawners' own
    // closures are in the opener's inline arena). The bump that crosses a
    // chunk's end installs the next one; a worker that waited too long for
    // it (the other preempted) installs one too and frees it if it lost:
    // at most one extra allocation per chunk with two workers.
    CHECK(a16t <= 2 * chunk_bound(tasks * 32) + 2);
    CHECK(aSt <= 2 * chunk_bound(tasks * static_cast<long>(S + 16)) + 2);

    // 4. above the limit: one allocation per task (plus the chunks of the
    // 32-byte records that point to them).
    long aBig = many<S + 16>(p, tasks, false);
    CHECK(aBig >= tasks && aBig <= tasks + chunk_bound(tasks * 32));

    // 5. loops: nothing.
    c = snap();
    std::atomic<long> s{0};
    weft::parallel_for(p, 0L, 1000000L, 0, [&s](long i) { s.fetch_add(i, std::memory_order_relaxed); });
    long red = weft::parallel_reduce(
        p, 0L, 1000000L, 0, 0L,
        [](long b, long e, long acc) {
            for (long i = b; i < e; i++)
                acc += i;
            return acc;
        },
        [](long x, long y) { return x + y; });
    CHECK_EQ(s.load(), 499999500000L);
    CHECK_EQ(red, 499999500000L);
    long a_loops = allocs_since(c);
    CHECK_EQ(a_loops, 0);

    // 6. no leak: skipped (canceled) tasks with heap captures and big
    // callables, and tasks that threw.
    std::atomic<long> sink{0};
    blob<S * 4> big{};
    big.sum = &sink;
    c = snap();
    for (int round = 0; round < 10; round++) {
        try {
            weft::flow f(p);
            for (int i = 0; i < 1000; i++) {
                f.spawn([u = std::make_unique<int>(i)] { (void)*u; });
                f.spawn(big);
                if (i == 500)
                    f.spawn([] { throw std::runtime_error("stop"); });
                if (i == 700)
                    f.cancel();
            }
            f.wait();
        } catch (const std::exception &) {
        }
    }
    check_balanced(c, "canceled and thrown");

    std::printf("cxx_alloc: operator new calls: join fib(25) %ld, flow fib(22) %ld, parallel_for+reduce %ld;\n"
                "  %ld tasks of 16 B: %ld (opener) / %ld (4 tasks spawning), of %zu B: %ld / %ld, of %zu B: %ld\n",
                a_join, a_fibflow, a_loops, tasks, a16, a16t, S, aS, aSt, S + 16, aBig);
    p.destroy();
    weft::shutdown_default_pool();
    return 0;
}
