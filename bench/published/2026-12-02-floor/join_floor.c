/*
 * join_floor.c: how far below weft_join a join of this design can go, on
 * fib(n) with one join per internal node, 1 worker (docs/fast-path.md,
 * "The floor of this design"). Not built by CMake: a measurement kept
 * with its results (README.md here).
 *
 *   cc -O2 [-fno-omit-frame-pointer] -I include -I BUILD/include \
 *      join_floor.c BUILD/libweft.a -lpthread -o join_floor && ./join_floor 32 15
 *
 * Each variant but weft_join is correct on 1 worker only: none handles a
 * steal, a context set or tracing.
 *   join        weft_join as a program gets it (the inline fast path)
 *   no checks   its offer and take-back without the checks (traced pool,
 *               dirty scope, fork child, the slot's neighbours)
 *   push-pop    only the offer: three slot words, bottom, done
 *   fixed slot  the same three words to one fixed slot, bottom untouched
 *               (not a deque: what the chain through bottom costs)
 *   direct      b then a, called directly: the workload's own cost
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

#define SLOT(o, i) ((uintptr_t *)(void *)((o)->arr + 1) + 4 * ((i) & (o)->arr->mask))

__attribute__((always_inline)) static inline int join_nochecks(weft_fn a, void *arg_a, weft_fn b,
                                                               void *arg_b)
{
    struct weft_owner_ *o = weft_thread_.worker;
    struct weft_frame_ jf;
    jf.done = 0;
    jf.flow = weft_thread_.flow;
    struct weft_ctx *ctx = weft_thread_.scope->cur;
    jf.ctx = ctx;
    int64_t mark = o->bottom;
    jf.mark = mark;
    jf.arg = arg_a;
    uintptr_t *sl = SLOT(o, mark);
    sl[0] = (uintptr_t)a, sl[1] = (uintptr_t)arg_a, sl[2] = (uintptr_t)&jf | 2u, sl[3] = (uintptr_t)ctx;
    o->bottom = mark + 1;
    int rb = b(arg_b);
    o = weft_thread_.worker;
    if (__builtin_expect(jf.done, 0))
        abort();
    o->bottom = jf.mark;
    jf.result = rb;
    int ra = a(jf.arg);
    return ra ? ra : jf.result;
}

__attribute__((always_inline)) static inline int join_pushpop(weft_fn a, void *arg_a, weft_fn b,
                                                              void *arg_b)
{
    struct weft_owner_ *o = weft_thread_.worker;
    volatile uint32_t done = 0;
    int64_t mark = o->bottom;
    uintptr_t *sl = SLOT(o, mark);
    sl[0] = (uintptr_t)a, sl[1] = (uintptr_t)arg_a, sl[2] = (uintptr_t)&done | 2u;
    o->bottom = mark + 1;
    int rb = b(arg_b);
    if (__builtin_expect(done, 0))
        abort();
    o = weft_thread_.worker;
    o->bottom = o->bottom - 1;
    int ra = a(arg_a);
    return ra ? ra : rb;
}

static int64_t scratch_;
__attribute__((always_inline)) static inline int join_fixed(weft_fn a, void *arg_a, weft_fn b,
                                                            void *arg_b)
{
    struct weft_owner_ *o = weft_thread_.worker;
    volatile uint32_t done = 0;
    uintptr_t *sl = SLOT(o, 40);
    sl[0] = (uintptr_t)a, sl[1] = (uintptr_t)arg_a, sl[2] = (uintptr_t)&done | 2u;
    scratch_ = 7;
    int rb = b(arg_b);
    if (__builtin_expect(done, 0))
        abort();
    scratch_ = 6;
    int ra = a(arg_a);
    return ra ? ra : rb;
}

__attribute__((always_inline)) static inline int join_direct(weft_fn a, void *arg_a, weft_fn b,
                                                             void *arg_b)
{
    int rb = b(arg_b);
    int ra = a(arg_a);
    return ra ? ra : rb;
}

#define FIB(name, J)                                                                               \
    static int name(void *p)                                                                       \
    {                                                                                              \
        fa *a = p;                                                                                 \
        if (a->n < 2) {                                                                            \
            a->r = (uint64_t)a->n;                                                                 \
            return 0;                                                                              \
        }                                                                                          \
        fa x = {a->n - 1, 0}, y = {a->n - 2, 0};                                                   \
        int rc = J(name, &x, name, &y);                                                            \
        a->r = x.r + y.r;                                                                          \
        return rc;                                                                                 \
    }
FIB(fib_join, weft_join)
FIB(fib_nochecks, join_nochecks)
FIB(fib_pushpop, join_pushpop)
FIB(fib_fixed, join_fixed)
FIB(fib_direct, join_direct)

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
    int n = argc > 1 ? atoi(argv[1]) : 32, rounds = argc > 2 ? atoi(argv[2]) : 15;
    if (rounds < 1 || rounds > 100)
        return 2;
    static weft_fn fns[] = {NULL, fib_join, fib_nochecks, fib_pushpop, fib_fixed, fib_direct};
    static const char *names[] = {"serial", "join", "no checks", "push-pop", "fixed slot", "direct"};
    enum { K = 6 };
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
    printf("fib(%d), 1 worker, %d rounds interleaved: min (median), x serial\n", n, rounds);
    for (int k = 0; k < K; k++)
        printf("%-11s %7.2f ms (%7.2f)  %.2fx (%.2fx)\n", names[k], t[k][0] * 1e3,
               t[k][rounds / 2] * 1e3, t[k][0] / t[0][0], t[k][rounds / 2] / t[0][rounds / 2]);
    weft_pool_destroy(p);
    return 0;
}
