/*
 * bench/workloads_cxx.cpp — fib and nqueens with weft.hpp: lambdas,
 * weft::join and weft::flow, written as a C++ user would. The leaf work and
 * the spawn pattern are those of workloads_weft.c and workloads_tbb.cpp.
 *
 * SPDX-License-Identifier: MIT
 */
#include "workloads_cxx.hpp"

#include <weft.hpp>

namespace cxx_wl {

namespace {

/* The root as a task on p, waited for from this (external) thread. */
template <class F>
uint64_t on_pool(weft_pool *p, F &&f)
{
    uint64_t r = 0;
    weft::flow root(p);
    root.spawn([&r, &f] { r = f(); });
    root.wait();
    return r;
}

uint64_t fib_j(int n)
{
    if (n < 2)
        return (uint64_t)n;
    uint64_t x, y;
    weft::join([&] { x = fib_j(n - 1); }, [&] { y = fib_j(n - 2); });
    return x + y;
}

uint64_t fib_f1(int n)
{
    if (n < 2)
        return (uint64_t)n;
    uint64_t x, y;
    weft::flow f;
    f.spawn([&x, n] { x = fib_f1(n - 1); });
    y = fib_f1(n - 2);
    f.wait();
    return x + y;
}

uint64_t fib_f2(int n)
{
    if (n < 2)
        return (uint64_t)n;
    uint64_t x, y;
    weft::flow f;
    f.spawn([&x, n] { x = fib_f2(n - 1); });
    f.spawn([&y, n] { y = fib_f2(n - 2); });
    f.wait();
    return x + y;
}

uint64_t nq(const nq_arg &a)
{
    if (a.row == a.n)
        return 1;
    nq_arg kids[NQ_MAX];
    int k = nq_children(&a, kids);
    if (k == 0)
        return 0;
    weft::flow f;
    for (int i = 0; i < k; i++) {
        nq_arg *c = &kids[i];
        f.spawn([c] { c->r = nq(*c); });
    }
    f.wait();
    uint64_t r = 0;
    for (int i = 0; i < k; i++)
        r += kids[i].r;
    return r;
}

} // namespace

uint64_t fib_join(weft_pool *p, int n)
{
    return on_pool(p, [n] { return fib_j(n); });
}

uint64_t fib_flow1(weft_pool *p, int n)
{
    return on_pool(p, [n] { return fib_f1(n); });
}

uint64_t fib_flow2(weft_pool *p, int n)
{
    return on_pool(p, [n] { return fib_f2(n); });
}

uint64_t nqueens(weft_pool *p, int n)
{
    nq_arg a{};
    a.n = n;
    return on_pool(p, [&a] { return nq(a); });
}

} // namespace cxx_wl
