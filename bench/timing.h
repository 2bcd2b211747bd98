/*
 * bench/timing.h — clocks, sleeps, percentiles and the idle-CPU probe that
 * every runtime's measurement shares.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_BENCH_TIMING_H
#define WEFT_BENCH_TIMING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CLOCK_MONOTONIC in nanoseconds: comparable across threads. */
int64_t bench_now_ns(void);
void    bench_sleep_ns(int64_t ns);

/* The q-quantile (0..1, nearest rank) of v[0..n); sorts v in place. */
double bench_quantile(double *v, size_t n, double q);

/* Sleeps `seconds` on the calling thread and returns the CPU-seconds that
 * the rest of the process (every other thread) burnt per second meanwhile:
 * the other threads' /proc/self/task/TID/schedstat on-CPU time (exact for a
 * thread still running when the window opens), else getrusage(RUSAGE_SELF)
 * minus the caller's own RUSAGE_THREAD. */
double bench_idle_cpu(double seconds);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_BENCH_TIMING_H */
