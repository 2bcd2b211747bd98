/*
 * bench/workloads.h — the C side of the benchmark harness: the kernels every
 * runtime shares, the serial baselines (workloads_serial.c) and the weft
 * versions (workloads_weft.c). The peers (OpenMP, oneTBB) are in peers.hpp.
 *
 * Every parallel version does the same work as its serial baseline, with
 * the same leaf kernels, so that a ratio to serial measures the runtime.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_BENCH_WORKLOADS_H
#define WEFT_BENCH_WORKLOADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "uts.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_pool weft_pool;

/* ---- fib: one call per node, no cutoff ------------------------------- */

uint64_t fib_serial(int n);      /* noinline recursion, no memoization */
uint64_t fib_expect(int n);      /* iterative, for checking */
uint64_t fib_calls(int n);       /* calls made by the naive recursion */

/* ---- nqueens: a spawn per legal placement ---------------------------- */

#define NQ_MAX 16

/* Whether a queen may go at (row, col) given queens at (r, b[r]), r < row. */
static inline bool nq_ok(const signed char *b, int row, int col)
{
    for (int r = 0; r < row; r++) {
        int d = b[r] - col;
        if (d == 0 || d == row - r || d == r - row)
            return false;
    }
    return true;
}

/* A board with queens in rows 0..row-1; r: the solutions below it. */
typedef struct nq_arg {
    int         n, row;
    signed char b[NQ_MAX];
    uint64_t    r;
} nq_arg;

/* Fills kids with the boards one queen further down (a spawn each, in every
 * runtime); returns how many. */
static inline int nq_children(const nq_arg *a, nq_arg *kids)
{
    int k = 0;
    for (int col = 0; col < a->n; col++) {
        if (!nq_ok(a->b, a->row, col))
            continue;
        nq_arg *c = &kids[k++];
        c->n = a->n;
        c->row = a->row + 1;
        memcpy(c->b, a->b, (size_t)a->row);
        c->b[a->row] = (signed char)col;
        c->r = 0;
    }
    return k;
}

uint64_t nqueens_serial(int n);
uint64_t nqueens_expect(int n);  /* known solution counts; 0 if unknown */

/* ---- skynet: a 10-ary tree of tasks; leaves return their id ---------- */

#define SKYNET_DIV 10
uint64_t skynet_serial(uint64_t num, uint64_t size);
/* Sum of ids 0..leaves-1: 499999500000 for a million. */
static inline uint64_t skynet_expect(uint64_t leaves)
{
    return leaves * (leaves - 1) / 2;
}
/* Tasks in the tree: leaves + leaves/10 + ... + 1 (leaves a power of 10). */
uint64_t skynet_tasks(uint64_t leaves);

/* ---- mergesort ------------------------------------------------------- */

/* Below this many elements the parallel versions sort serially. */
#define MSORT_CUTOFF 4096

void msort_serial(int32_t *a, int32_t *tmp, size_t n);
/* Merges the sorted a[0, mid) and a[mid, n) into a, through tmp. */
void msort_merge(int32_t *a, int32_t *tmp, size_t mid, size_t n);
/* Fills a with pseudo-random values; returns their sum (for checking). */
uint64_t msort_fill(int32_t *a, size_t n, uint64_t seed);
/* Whether a is sorted and its elements sum to sum. */
bool msort_check(const int32_t *a, size_t n, uint64_t sum);

/* ---- reduction over an array ----------------------------------------- */

uint64_t sum_range(const uint64_t *a, size_t begin, size_t end); /* the leaf */
uint64_t reduce_serial(const uint64_t *a, size_t n);
void     reduce_fill(uint64_t *a, size_t n); /* a[i] = i * 3 + 1 */
static inline uint64_t reduce_expect(size_t n)
{
    return 3 * ((uint64_t)n * (n - 1) / 2) + n;
}

/* ---- tiny tasks ------------------------------------------------------- */

/* The body of every tiny task: one increment of its own slot. */
static inline void tiny_body(uint64_t *slot)
{
    *slot += 1;
}
/* Serial baseline: calls the body n times through a function pointer. */
void tiny_serial(uint64_t *slots, size_t n);
/* Whether every slot equals times. */
bool tiny_check(const uint64_t *slots, size_t n, uint64_t times);

/* ---- UTS ---------------------------------------------------------------- */
/* uts_count_serial is in uts.h. */

/* ---- weft versions: 0, or the error a weft call returned -------------- */

/* The pool with `workers` workers, created on first use and kept until
 * bench_weft_pools_destroy (like oneTBB's and libgomp's threads, weft's
 * live for the whole run). NULL with *err set if it could not be made.
 * (The C++ side does not include weft.h: its weft_flow uses C11 _Alignas.) */
weft_pool *bench_weft_pool(unsigned workers, int *err);
void       bench_weft_pools_destroy(void);

/* Flows "exactly as the contract writes them": each call opens a flow,
 * spawns fib(n-1) and fib(n-2), closes it. */
int fib_weft_flow2(weft_pool *p, int n, uint64_t *out);
/* Each call opens a flow, spawns fib(n-1), runs fib(n-2) inline, closes. */
int fib_weft_flow1(weft_pool *p, int n, uint64_t *out);
/* Each call is weft_join(fib(n-1), fib(n-2)). */
int fib_weft_join(weft_pool *p, int n, uint64_t *out);
int nqueens_weft(weft_pool *p, int n, uint64_t *out);
int uts_weft(weft_pool *p, const uts_params *t, uint64_t *out);
int skynet_weft(weft_pool *p, uint64_t leaves, uint64_t *out);
int msort_weft(weft_pool *p, int32_t *a, int32_t *tmp, size_t n);
int reduce_weft(weft_pool *p, const uint64_t *a, size_t n, uint64_t *out);
/* n tiny tasks from `threads` external threads, each with its own flow
 * (threads == 1: the calling thread itself). */
int tiny_weft(weft_pool *p, uint64_t *slots, size_t n, unsigned threads);
/* samples spawns from this (external) thread onto the idle pool, sleeping
 * gap_ns between them; lat_ns[i] = from weft_spawn to the task starting. */
int wake_weft(weft_pool *p, int samples, long gap_ns, double *lat_ns);
/* CPU-seconds per second burnt by an idle pool of `workers` workers after
 * some work; negative on error. */
double idle_weft(unsigned workers, double seconds);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_BENCH_WORKLOADS_H */
