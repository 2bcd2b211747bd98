/*
 * bench/workloads_rayon.h — the workloads on rayon (bench/rayon/, a Rust
 * static library built by bench/run with Debian's cargo and rayon; the
 * harness has them when built with WEFT_BENCH_HAVE_RAYON). Every function
 * here takes a pool from rayon_pool_create, which has `workers` threads and
 * lives for the whole run; the calling thread waits while the pool works
 * (ThreadPool::install). The leaf kernels are the C ones of workloads.h.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_BENCH_WORKLOADS_RAYON_H
#define WEFT_BENCH_WORKLOADS_RAYON_H

#include <stddef.h>
#include <stdint.h>

#include "workloads.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rayon_pool rayon_pool; /* a rayon::ThreadPool */

/* NULL if rayon could not make the pool. */
rayon_pool *rayon_pool_create(unsigned workers);
void        rayon_pool_destroy(rayon_pool *p);

/* rayon::join per call, no cutoff. */
uint64_t fib_rayon(const rayon_pool *p, int n);
/* The legal placements of a node split in halves by join (k - 1 joins). */
uint64_t nqueens_rayon(const rayon_pool *p, int n);
/* The same for a UTS node's children; each child is made where it is counted. */
uint64_t uts_rayon(const rayon_pool *p, const uts_params *t);
/* scope 0: join as above; scope 1: rayon::scope + a spawn per child. */
uint64_t skynet_rayon(const rayon_pool *p, uint64_t leaves, int scope);
void     msort_rayon(const rayon_pool *p, int32_t *a, int32_t *tmp, size_t n);
/* par_iter over 64 Ki-element chunks of sum_range, summed. */
uint64_t reduce_rayon(const rayon_pool *p, const uint64_t *a, size_t n);
/* n tiny tasks, a Scope::spawn each: from `threads` external threads
 * (1: the caller), each in its own ThreadPool::in_place_scope; or, with
 * in_pool and threads 1, in one ThreadPool::scope, whose spawning loop runs
 * on a pool thread (like tbb.task_group's). 0. */
int      tiny_rayon(const rayon_pool *p, uint64_t *slots, size_t n, unsigned threads, int in_pool);
/* Like wake_weft: an in_place_scope with one spawn per sample. 0. */
int      wake_rayon(const rayon_pool *p, int samples, long gap_ns, double *lat_ns);
/* Like idle_weft, with a fresh pool; negative on error. */
double   idle_rayon(unsigned workers, double seconds);

/* nq_children for the Rust side, which cannot inline workloads.h. */
int nq_children_extern(const nq_arg *a, nq_arg *kids);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_BENCH_WORKLOADS_RAYON_H */
