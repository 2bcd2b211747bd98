/*
 * bench/deque_micro.h — micro-benchmarks of weft's work-stealing deque
 * (queue/wq_deque.h, a private header of the library: only the benchmark
 * harness looks inside). Built only when that header exists and these
 * benchmarks compile against it (checked by bench/CMakeLists.txt).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_BENCH_DEQUE_MICRO_H
#define WEFT_BENCH_DEQUE_MICRO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* n calls of a noinline function: the scale for the rest. Returns a sum. */
uint64_t dq_call_loop(size_t n);
/* n owner push+take pairs on an otherwise idle deque. 0 or an error. */
int dq_push_take(size_t n);
/* n pushes then n takes (LIFO), in batches of `batch`. 0 or an error. */
int dq_push_batch_take(size_t n, size_t batch);
/* Fills a deque with n items, publishes them all, then `thieves` threads
 * steal until it is empty. *seconds: from the start signal to the last
 * thief's end. 0, or -1 if items were lost or duplicated, or an error. */
int dq_steal(size_t n, unsigned thieves, double *seconds);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_BENCH_DEQUE_MICRO_H */
