/*
 * bench/workloads_cxx.hpp — fib and nqueens written with weft.hpp (the C++
 * layer), beside the same workloads on the C API (workloads_weft.c): the
 * rows weft.cxx_* of bench/run. Each runs its root as a task on the pool
 * under test, as the C versions do; an error comes back as an exception.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_BENCH_WORKLOADS_CXX_HPP
#define WEFT_BENCH_WORKLOADS_CXX_HPP

#include <cstdint>

#include "workloads.h"

namespace cxx_wl {

/* weft::join(fib(n-1), fib(n-2)) at every call: against fib_weft_join. */
uint64_t fib_join(weft_pool *p, int n);
/* A weft::flow per call: spawn fib(n-1), run fib(n-2) inline, wait (as
 * fib_weft_flow1 and oneTBB's task_group row). */
uint64_t fib_flow1(weft_pool *p, int n);
/* A weft::flow per call spawning both halves (oneTBB's documentation
 * example; as fib_weft_flow2). */
uint64_t fib_flow2(weft_pool *p, int n);
/* A weft::flow per board, a spawned lambda per legal placement. */
uint64_t nqueens(weft_pool *p, int n);

} // namespace cxx_wl

#endif // WEFT_BENCH_WORKLOADS_CXX_HPP
