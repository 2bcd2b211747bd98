/*
 * bench/fib_instructions_cxx.cpp — fib(22) on a one-worker pool written
 * with weft.hpp, in the three shapes of fib_instructions.c (0: weft::join;
 * 1: a weft::flow per call, one half spawned; 2: both spawned), for
 * counting instructions with callgrind: repeatable on a noisy machine,
 * and comparable with fib_instructions.c's counts (same pool, same n, the
 * same region: run_root). Built and counted by hand (docs/cpp.md):
 *
 *   c++ -std=c++17 -O2 -Iinclude -IBUILD/include bench/fib_instructions_cxx.cpp \
 *       BUILD/libweft.a -lpthread -o /tmp/fibxx
 *   valgrind --tool=callgrind --toggle-collect=run_root /tmp/fibxx K
 *
 * SPDX-License-Identifier: MIT
 */
#include <weft.hpp>

#include <cstdio>
#include <cstdlib>

static long fibj(int n)
{
    if (n < 2)
        return n;
    long x, y;
    weft::join([&] { x = fibj(n - 1); }, [&] { y = fibj(n - 2); });
    return x + y;
}

static long fibf(int n)
{
    if (n < 2)
        return n;
    long x, y;
    weft::flow f;
    f.spawn([&x, n] { x = fibf(n - 1); });
    y = fibf(n - 2);
    f.wait();
    return x + y;
}

static long fibf2(int n)
{
    if (n < 2)
        return n;
    long x, y;
    weft::flow f;
    f.spawn([&x, n] { x = fibf2(n - 1); });
    f.spawn([&y, n] { y = fibf2(n - 2); });
    f.wait();
    return x + y;
}

extern "C" __attribute__((noinline)) long run_root(int k)
{
    return k == 0 ? fibj(22) : k == 1 ? fibf(22) : fibf2(22);
}

int main(int argc, char **argv)
{
    int kind = argc > 1 ? std::atoi(argv[1]) : 0;
    weft::pool_options o;
    o.workers = 1;
    weft::pool p(o);
    long r = 0;
    weft::flow f(p);
    f.spawn([&] { r = run_root(kind); });
    f.wait();
    std::printf("%ld\n", r);
    return r == 17711 ? 0 : 1;
}
