/*
 * bench/peers.hpp — the same workloads on the peer runtimes: OpenMP tasks
 * (gcc's libgomp, workloads_omp.cpp) and oneTBB (workloads_tbb.cpp).
 *
 * Each is written the way that runtime's documentation teaches: OpenMP
 * `task` + `taskwait` inside `parallel` + `single`, `parallel for
 * reduction`; oneTBB `task_group`, `parallel_reduce`, `task_arena::enqueue`.
 * Fork-join spawns one half and runs the other inline (the idiom of both).
 * The leaf kernels are the shared C ones in workloads.h.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_BENCH_PEERS_HPP
#define WEFT_BENCH_PEERS_HPP

#include <cstddef>
#include <cstdint>

#include <oneapi/tbb/task_arena.h>

#include "workloads.h"

namespace omp_wl {

uint64_t fib(int n, unsigned threads);
uint64_t nqueens(int n, unsigned threads);
uint64_t uts(const uts_params *t, unsigned threads);
uint64_t skynet(uint64_t leaves, unsigned threads);
void     msort(int32_t *a, int32_t *tmp, size_t n, unsigned threads);
uint64_t reduce(const uint64_t *a, size_t n, unsigned threads);
/* Idle CPU (CPU-seconds per second) of a team of `threads` after a parallel
 * region, with the default OMP_WAIT_POLICY. */
double   idle(unsigned threads, double seconds);

} // namespace omp_wl

namespace tbb_wl {

/* Arenas are made by the caller: arena(n) for work started by the calling
 * thread (it takes one of the n slots), arena(n, 0) for enqueue (n workers). */
uint64_t fib(tbb::task_arena &a, int n);
uint64_t nqueens(tbb::task_arena &a, int n);
uint64_t uts(tbb::task_arena &a, const uts_params *t);
uint64_t skynet(tbb::task_arena &a, uint64_t leaves);
void     msort(tbb::task_arena &a, int32_t *a_, int32_t *tmp, size_t n);
uint64_t reduce(tbb::task_arena &a, const uint64_t *v, size_t n);
/* n tiny tasks enqueued into the arena from `threads` external threads,
 * each waiting (asleep) for its own tasks. */
void     tiny_enqueue(tbb::task_arena &a, uint64_t *slots, size_t n, unsigned threads);
/* n tiny tasks through a task_group run from the calling thread. */
void     tiny_task_group(tbb::task_arena &a, uint64_t *slots, size_t n);
/* Like wake_weft: enqueue onto the idle arena, latency to the task start. */
void     wake(tbb::task_arena &a, int samples, long gap_ns, double *lat_ns);
/* Idle CPU of an arena with `workers` workers after some enqueued work. */
double   idle(unsigned workers, double seconds);

} // namespace tbb_wl

#endif // WEFT_BENCH_PEERS_HPP
