/*
 * flow_floor.c: fib(n) through a flow per call (one half spawned, the
 * other called), 1 worker: weft's flow against a lean flow that only
 * pushes, pops and runs (docs/fast-path.md, "The floor of this design").
 * Not built by CMake: a measurement kept with its results (README.md).
 *
 *   cc -O2 -I include -I BUILD/include flow_floor.c BUILD/libweft.a -lpthread \
 *      -o flow_floor && ./flow_floor 30 11
 *
 *   flow1        weft_flow_open, weft_spawn, the call, weft_flow_close
 *   lean         a flow of three words (owner line, base, magic): spawn
 *                pushes three slot words; close takes back and runs the
 *                newest item (correct on 1 worker only: no steal, context,
 *                cancel or error handling)
 *   lean, apart  the same source with an empty asm statement in the leaf's
 *                return and another in the node's, so that gcc does not
 *                send the leaf's return through the node's epilogue
 */
#include "weft.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    int      n;
    uint64_t r;
} fa;

__attribute__((noinline)) uint64_t fib_serial(int n)
{
    if (n < 2)
        return (uint64_t)n;
    uint64_t a = fib_serial(n - 1);
    uint64_t b = fib_serial(n - 2);
    __asm__("" : "+r"(b));
    return a + b;
}

static int fib_flow1(void *p)
{
    fa *a = p;
    if (a->n < 2) {
        a->r = (uint64_t)a->n;
        return 0;
    }
    fa x = {a->n - 1, 0}, y = {a->n - 2, 0};
    weft_flow f;
    weft_flow_open(&f, NULL);
    weft_spawn(&f, fib_flow1, &x);
    fib_flow1(&y);
    weft_flow_close(&f);
    a->r = x.r + y.r;
    return 0;
}

typedef struct {
    struct weft_owner_ *o;
    int64_t             base;
    uint32_t            magic;
} lean_flow;

#define SLOT(o, i) ((uintptr_t *)(void *)((o)->arr + 1) + 4 * ((i) & (o)->arr->mask))

__attribute__((always_inline)) static inline void lean_open(lean_flow *f)
{
    struct weft_owner_ *o = weft_thread_.worker;
    f->o = o, f->base = o->bottom, f->magic = 7;
}

__attribute__((always_inline)) static inline int lean_spawn(lean_flow *f, weft_fn fn, void *arg)
{
    struct weft_owner_ *o = weft_thread_.worker;
    if (__builtin_expect(f->o != o || f->magic != 7 || o->bottom - o->top_seen > o->arr->mask, 0))
        abort();
    int64_t b = o->bottom;
    uintptr_t *sl = SLOT(o, b);
    sl[0] = (uintptr_t)fn, sl[1] = (uintptr_t)arg, sl[2] = (uintptr_t)f | 4u;
    o->bottom = b + 1;
    return 0;
}

__attribute__((always_inline)) static inline int lean_close(lean_flow *f)
{
    struct weft_owner_ *o = weft_thread_.worker;
    int64_t b = o->bottom;
    if (__builtin_expect(f->o != o || f->magic != 7 || b != f->base + 1, 0))
        abort();
    uintptr_t *sl = SLOT(o, b - 1);
    if (__builtin_expect(b <= o->split_own || sl[2] != ((uintptr_t)f | 4u), 0))
        abort();
    o->bottom = b - 1;
    int r = ((weft_fn)sl[0])((void *)sl[1]);
    f->magic = 0;
    return r;
}

#define LEAN(name, LEAF, NODE)                                                                     \
    static int name(void *p)                                                                       \
    {                                                                                              \
        fa *a = p;                                                                                 \
        if (a->n < 2) {                                                                            \
            a->r = (uint64_t)a->n;                                                                 \
            LEAF;                                                                                  \
            return 0;                                                                              \
        }                                                                                          \
        fa x = {a->n - 1, 0}, y = {a->n - 2, 0};                                                   \
        lean_flow f;                                                                               \
        lean_open(&f);                                                                             \
        lean_spawn(&f, name, &x);                                                                  \
        name(&y);                                                                                  \
        lean_close(&f);                                                                            \
        a->r = x.r + y.r;                                                                          \
        NODE;                                                                                      \
        return 0;                                                                                  \
    }
LEAN(fib_lean, (void)0, (void)0)
LEAN(fib_lean_apart, __asm__ volatile("# leaf"), __asm__ volatile("# node"))

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 30, rounds = argc > 2 ? atoi(argv[2]) : 11;
    if (rounds < 1 || rounds > 100)
        return 2;
    static weft_fn fns[] = {NULL, fib_flow1, fib_lean, fib_lean_apart};
    static const char *names[] = {"serial", "flow1", "lean", "lean, apart"};
    enum { K = 4 };
    static double t[K][100];
    weft_pool *p;
    weft_pool_config c = {.workers = 1};
    if (weft_pool_create(&p, &c))
        return 1;
    uint64_t want = fib_serial(n);
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < K; k++) {
            double t0 = now();
            uint64_t v;
            if (k == 0) {
                v = fib_serial(*(volatile int *)&n);
            } else {
                fa a = {n, 0};
                weft_flow f;
                weft_flow_open(&f, p);
                weft_spawn(&f, fns[k], &a);
                weft_flow_close(&f);
                v = a.r;
            }
            t[k][r] = now() - t0;
            if (v != want)
                return 1;
        }
    for (int k = 0; k < K; k++)
        qsort(t[k], (size_t)rounds, sizeof(double), cmpd);
    printf("fib(%d), a flow per call, 1 worker, %d rounds interleaved: min (median), x serial\n", n,
           rounds);
    for (int k = 0; k < K; k++)
        printf("%-12s %7.2f ms (%7.2f)  %.2fx (%.2fx)\n", names[k], t[k][0] * 1e3,
               t[k][rounds / 2] * 1e3, t[k][0] / t[0][0], t[k][rounds / 2] / t[0][rounds / 2]);
    weft_pool_destroy(p);
    return 0;
}
