/*
 * bench/fib_instructions.c — fib(22) on a one-worker pool, in one of three
 * shapes (0: weft_join; 1: a flow per call, one half spawned; 2: a flow per
 * call, both halves spawned), or skynet of 10^5 leaves (3: a flow per
 * node, its ten children spawned), for counting instructions with callgrind
 * (bench/instructions.sh): repeatable whatever else the machine does, so
 * two builds can be compared on a noisy machine. run_root is the region
 * counted.
 */
#include "weft.h"
#include <stdio.h>
#include <stdlib.h>
typedef struct {
    int  n;
    long r;
} fa;
static int fibj(void *p) {
    fa *a = p;
    if (a->n < 2) { a->r = a->n; return 0; }
    fa x = {a->n - 1, 0}, y = {a->n - 2, 0};
    weft_join(fibj, &x, fibj, &y);
    a->r = x.r + y.r; return 0;
}
static int fibf(void *p) {
    fa *a = p;
    if (a->n < 2) { a->r = a->n; return 0; }
    fa x = {a->n - 1, 0}, y = {a->n - 2, 0};
    weft_flow f; weft_flow_open(&f, NULL);
    weft_spawn(&f, fibf, &x);
    fibf(&y);
    weft_flow_close(&f);
    a->r = x.r + y.r; return 0;
}
static int fibf2(void *p) {
    fa *a = p;
    if (a->n < 2) { a->r = a->n; return 0; }
    fa x = {a->n - 1, 0}, y = {a->n - 2, 0};
    weft_flow f; weft_flow_open(&f, NULL);
    weft_spawn(&f, fibf2, &x);
    weft_spawn(&f, fibf2, &y);
    weft_flow_close(&f);
    a->r = x.r + y.r; return 0;
}
typedef struct { long num, size, r; } sa;
static int sky(void *p) {
    sa *a = p;
    if (a->size == 1) { a->r = a->num; return 0; }
    sa kids[10];
    long sub = a->size / 10;
    weft_flow f; weft_flow_open(&f, NULL);
    for (int i = 0; i < 10; i++) {
        kids[i] = (sa){a->num + i * sub, sub, 0};
        weft_spawn(&f, sky, &kids[i]);
    }
    weft_flow_close(&f);
    a->r = 0;
    for (int i = 0; i < 10; i++) a->r += kids[i].r;
    return 0;
}
__attribute__((noinline)) int run_root(void *p) { fa *a = p; int k = (int)(a->r); a->r = 0;
    if (k == 3) { sa s = {0, 100000, 0}; int r = sky(&s); a->r = s.r; return r; }
    return k == 0 ? fibj(a) : k == 1 ? fibf(a) : fibf2(a); }
int main(int argc, char **argv) {
    int kind = atoi(argv[1]);
    weft_pool *p; weft_pool_config c = {.workers = 1};
    weft_pool_create(&p, &c);
    fa a = {22, kind};
    weft_flow f; weft_flow_open(&f, p); weft_spawn(&f, run_root, &a); weft_flow_close(&f);
    printf("%ld\n", a.r);
    weft_pool_destroy(p);
}
