/*
 * bench/uts.h — the Unbalanced Tree Search tree (Olivier et al., LCPC 2006).
 *
 * A UTS tree is never stored: each node is a 20-byte SHA-1 digest, and a
 * node's children and their digests are functions of it, so any thread can
 * expand any node. What a node's children are:
 *
 *   root digest     = SHA-1(16 zero bytes || be32(root seed))
 *   child i digest  = SHA-1(parent digest || be32(i))
 *   rand(node)      = be32(digest bytes 16..19) & 0x7fffffff,
 *                     u = rand / 2^31 in [0, 1)
 *   binomial (-t 0) : the root has floor(b0) children; any other node has
 *                     m children with probability q, else none
 *   geometric (-t 1): the expected branching factor b_i follows a shape
 *                     function of the depth (-a: 0 linear, 1 exponential
 *                     decrease, 2 cyclic, 3 fixed), and the child count is
 *                     floor(log(1-u) / log(1-p)) with p = 1/(1+b_i)
 *   a non-root node has at most 100 children; a binomial root at most ceil(b0)
 *
 * Counting nodes is the benchmark. The published sample trees and their
 * node counts:
 *   T1  -t 1 -a 3 -d 10 -b 4 -r 19                 4,130,071 nodes, depth 10
 *   T3  -t 0 -b 2000 -q 0.124875 -m 8 -r 42        4,112,897 nodes, depth 1,572
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_BENCH_UTS_H
#define WEFT_BENCH_UTS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { UTS_BIN = 0, UTS_GEO = 1 };
enum { UTS_LINEAR = 0, UTS_EXPDEC = 1, UTS_CYCLIC = 2, UTS_FIXED = 3 };

#define UTS_MAX_CHILDREN 100

typedef struct uts_params {
    const char *name;
    int      type;       /* -t: UTS_BIN or UTS_GEO */
    int      shape;      /* -a: geometric shape function */
    int      gen_mx;     /* -d: geometric depth parameter */
    double   b0;         /* -b: root branching factor */
    double   q;          /* -q: binomial probability of having children */
    int      m;          /* -m: binomial number of children */
    int      root_seed;  /* -r */
    uint64_t expect;     /* the published (or known) node count; 0: unknown */
} uts_params;

typedef struct uts_node {
    uint8_t state[20];   /* the node's SHA-1 digest */
    int     height;      /* depth; the root is 0 */
} uts_node;

/* The sample trees. */
extern const uts_params uts_T1;
extern const uts_params uts_T3;
/* Smaller trees of the same two kinds, for quick runs: T1s is T1 with
 * -d 8 (257,042 nodes), T3s is T3 with -q 0.124 (540,929 nodes, depth 333).
 * Their counts were measured by this implementation after it reproduced
 * T1 and T3 exactly. */
extern const uts_params uts_T1_small;
extern const uts_params uts_T3_small;

void uts_root(const uts_params *p, uts_node *root);
/* The number of children of n (may exceed UTS_MAX_CHILDREN only for a
 * binomial root). */
int  uts_num_children(const uts_params *p, const uts_node *n);
/* Fills child with parent's i-th child. */
void uts_child(const uts_node *parent, int i, uts_node *child);

/* Serial depth-first count of the subtree below and including n. */
uint64_t uts_count_serial(const uts_params *p, const uts_node *n);
/* Serial count that also reports the maximum depth and the leaf count. */
uint64_t uts_count_stats(const uts_params *p, const uts_node *n,
                         int *max_depth, uint64_t *leaves);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_BENCH_UTS_H */
