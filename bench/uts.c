/*
 * bench/uts.c — the UTS tree: node expansion and a serial count.
 * See uts.h for the definition.
 *
 * SPDX-License-Identifier: MIT
 */
#include "uts.h"
#include "sha1.h"

#include <math.h>
#include <string.h>

const uts_params uts_T1 = {
    .name = "T1", .type = UTS_GEO, .shape = UTS_FIXED, .gen_mx = 10,
    .b0 = 4.0, .root_seed = 19, .expect = 4130071,
};
const uts_params uts_T3 = {
    .name = "T3", .type = UTS_BIN, .b0 = 2000.0, .q = 0.124875, .m = 8,
    .root_seed = 42, .expect = 4112897,
};
/* Same kinds, fewer nodes (quick runs): T1 two levels shallower; T3 with
 * q m = 0.992 instead of 0.999, so 540,929 nodes and depth 333. */
const uts_params uts_T1_small = {
    .name = "T1s", .type = UTS_GEO, .shape = UTS_FIXED, .gen_mx = 8,
    .b0 = 4.0, .root_seed = 19, .expect = 257042,
};
const uts_params uts_T3_small = {
    .name = "T3s", .type = UTS_BIN, .b0 = 2000.0, .q = 0.124, .m = 8,
    .root_seed = 42, .expect = 540929,
};

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void uts_root(const uts_params *p, uts_node *root)
{
    uint8_t seed[20] = {0};
    put_be32(seed + 16, (uint32_t)p->root_seed);
    sha1_digest(seed, sizeof seed, root->state);
    root->height = 0;
}

void uts_child(const uts_node *parent, int i, uts_node *child)
{
    uint8_t msg[24];
    memcpy(msg, parent->state, 20);
    put_be32(msg + 20, (uint32_t)i);
    sha1_digest(msg, sizeof msg, child->state);
    child->height = parent->height + 1;
}

/* A uniform number in [0, 1) drawn from the node's digest. */
static inline double node_prob(const uts_node *n)
{
    uint32_t r = ((uint32_t)n->state[16] << 24) | ((uint32_t)n->state[17] << 16) |
                 ((uint32_t)n->state[18] << 8) | (uint32_t)n->state[19];
    r &= 0x7fffffffu;
    return (double)r / 2147483648.0;
}

static int geo_children(const uts_params *p, const uts_node *n)
{
    double b = p->b0;
    int depth = n->height;
    if (depth > 0) {
        switch (p->shape) {
        case UTS_EXPDEC:
            b = p->b0 * pow((double)depth, -log(p->b0) / log((double)p->gen_mx));
            break;
        case UTS_CYCLIC:
            if (depth > 5 * p->gen_mx)
                b = 0.0;
            else
                b = pow(p->b0, sin(2.0 * 3.141592653589793 * depth / p->gen_mx));
            break;
        case UTS_FIXED:
            b = depth < p->gen_mx ? p->b0 : 0.0;
            break;
        case UTS_LINEAR:
        default:
            b = p->b0 * (1.0 - (double)depth / p->gen_mx);
            break;
        }
    }
    /* A geometric distribution with mean b has success probability
     * 1/(1+b); invert its CDF at u. b == 0 gives log(0) = -inf: 0 kids. */
    double prob = 1.0 / (1.0 + b);
    double u = node_prob(n);
    return (int)floor(log(1.0 - u) / log(1.0 - prob));
}

int uts_num_children(const uts_params *p, const uts_node *n)
{
    int k;
    if (p->type == UTS_BIN) {
        if (n->height == 0) {
            k = (int)floor(p->b0);
            int cap = (int)ceil(p->b0);
            return k > cap ? cap : k;
        }
        k = node_prob(n) < p->q ? p->m : 0;
    } else {
        k = geo_children(p, n);
    }
    return k > UTS_MAX_CHILDREN ? UTS_MAX_CHILDREN : k;
}

uint64_t uts_count_serial(const uts_params *p, const uts_node *n)
{
    int k = uts_num_children(p, n);
    uint64_t total = 1;
    for (int i = 0; i < k; i++) {
        uts_node c;
        uts_child(n, i, &c);
        total += uts_count_serial(p, &c);
    }
    return total;
}

uint64_t uts_count_stats(const uts_params *p, const uts_node *n,
                         int *max_depth, uint64_t *leaves)
{
    int k = uts_num_children(p, n);
    if (n->height > *max_depth)
        *max_depth = n->height;
    if (k == 0)
        ++*leaves;
    uint64_t total = 1;
    for (int i = 0; i < k; i++) {
        uts_node c;
        uts_child(n, i, &c);
        total += uts_count_stats(p, &c, max_depth, leaves);
    }
    return total;
}
