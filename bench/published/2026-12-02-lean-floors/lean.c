/*
 * lean.c: the floor of the two flow shapes that floor.c (../2026-12-02-floor)
 * does not time: fib with both halves spawned into a flow per call, and
 * skynet (ten children spawned into a flow per node). Each is timed
 * through weft's flow and through a lean flow that does only what one
 * worker needs: the deque's index in memory, three slot words per spawn,
 * a close that takes back and runs its items newest first. Not built by
 * CMake: a measurement kept with its results (README.md here).
 *
 *   cc -O2 [-fno-omit-frame-pointer] -I include -I BUILD/include \
 *      lean.c BUILD/libweft.a -lpthread -o lean
 *   ./lean flow2 27 11     ./lean sky 1000000 11
 *
 * The lean flows are correct on 1 worker only: none handles a steal, a
 * context set, a cancel, an error, tracing or bad input. The baselines
 * are bench/workloads_serial.c's, as they are there.
 */
#include "weft.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DIV 10

__attribute__((noinline)) uint64_t fib_serial(int n)
{
    if (n < 2)
        return (uint64_t)n;
    uint64_t a = fib_serial(n - 1);
    uint64_t b = fib_serial(n - 2);
    __asm__("" : "+r"(b));
    return a + b;
}

__attribute__((noinline)) uint64_t skynet_serial(uint64_t num, uint64_t size)
{
    if (size == 1)
        return num;
    uint64_t sub = size / DIV, s = 0;
    for (uint64_t i = 0; i < DIV; i++)
        s += skynet_serial(num + i * sub, sub);
    return s;
}

#define SLOT(o, i) ((uintptr_t *)(void *)((o)->arr + 1) + 4 * ((i) & (o)->arr->mask))

/* Three words: the owner line, the deque's bottom at open, a magic. */
typedef struct {
    struct weft_owner_ *o;
    int64_t             base;
    uint32_t            magic;
} lean_flow;

__attribute__((always_inline)) static inline void lean_open(lean_flow *f)
{
    struct weft_owner_ *o = weft_thread_.worker;
    f->o = o, f->base = o->bottom, f->magic = 7;
}

__attribute__((always_inline)) static inline void lean_spawn(lean_flow *f, weft_fn fn, void *arg)
{
    struct weft_owner_ *o = weft_thread_.worker;
    if (__builtin_expect(f->o != o || f->magic != 7 || o->bottom - o->top_seen > o->arr->mask, 0))
        abort();
    int64_t b = o->bottom;
    uintptr_t *sl = SLOT(o, b);
    sl[0] = (uintptr_t)fn, sl[1] = (uintptr_t)arg, sl[2] = (uintptr_t)f | 4u;
    o->bottom = b + 1;
}

/* Runs the flow's items back from the top of the private part. */
__attribute__((always_inline)) static inline void lean_close(lean_flow *f)
{
    struct weft_owner_ *o = weft_thread_.worker;
    if (__builtin_expect(f->o != o || f->magic != 7, 0))
        abort();
    int64_t b;
    while ((b = o->bottom) > f->base) {
        uintptr_t *sl = SLOT(o, b - 1);
        if (__builtin_expect(b <= o->split_own || sl[2] != ((uintptr_t)f | 4u), 0))
            abort();
        o->bottom = b - 1;
        if (((weft_fn)sl[0])((void *)sl[1]))
            abort();
    }
    f->magic = 0;
}

typedef struct {
    int      n;
    uint64_t r;
} fa;

/* bench/workloads_weft.c's fib_flow2_task. */
static int fib_flow2(void *p)
{
    fa *a = p;
    if (a->n < 2) {
        a->r = (uint64_t)a->n;
        return 0;
    }
    fa x = {a->n - 1, 0}, y = {a->n - 2, 0};
    weft_flow f;
    int rc = weft_flow_open(&f, NULL);
    if (rc)
        return rc;
    int s1 = weft_spawn(&f, fib_flow2, &x);
    int s2 = weft_spawn(&f, fib_flow2, &y);
    rc = weft_flow_close(&f);
    a->r = x.r + y.r;
    return rc ? rc : s1 ? s1 : s2;
}

#define LEAN_FIB(name, LEAF, NODE)                                                                 \
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
        lean_spawn(&f, name, &y);                                                                  \
        lean_close(&f);                                                                            \
        a->r = x.r + y.r;                                                                          \
        NODE;                                                                                      \
        return 0;                                                                                  \
    }
LEAN_FIB(fib_lean2, (void)0, (void)0)
LEAN_FIB(fib_lean2_apart, __asm__ volatile("# leaf"), __asm__ volatile("# node"))

typedef struct {
    uint64_t num, size, r;
} sa;

/* bench/workloads_weft.c's sky_task. */
static int sky_weft(void *p)
{
    sa *a = p;
    if (a->size == 1) {
        a->r = a->num;
        return 0;
    }
    sa kids[DIV];
    uint64_t sub = a->size / DIV;
    weft_flow f;
    int rc = weft_flow_open(&f, NULL);
    if (rc)
        return rc;
    int sp = 0, spawned = 0;
    for (int i = 0; i < DIV && !sp; i++, spawned++) {
        kids[i] = (sa){a->num + (uint64_t)i * sub, sub, 0};
        sp = weft_spawn(&f, sky_weft, &kids[i]);
    }
    rc = weft_flow_close(&f);
    a->r = 0;
    for (int i = 0; i < spawned; i++)
        a->r += kids[i].r;
    return rc ? rc : sp;
}

#define LEAN_SKY(name, LEAF, NODE)                                                                 \
    static int name(void *p)                                                                       \
    {                                                                                              \
        sa *a = p;                                                                                 \
        if (a->size == 1) {                                                                        \
            a->r = a->num;                                                                         \
            LEAF;                                                                                  \
            return 0;                                                                              \
        }                                                                                          \
        sa kids[DIV];                                                                              \
        uint64_t sub = a->size / DIV;                                                              \
        lean_flow f;                                                                               \
        lean_open(&f);                                                                             \
        for (int i = 0; i < DIV; i++) {                                                            \
            kids[i] = (sa){a->num + (uint64_t)i * sub, sub, 0};                                    \
            lean_spawn(&f, name, &kids[i]);                                                        \
        }                                                                                          \
        lean_close(&f);                                                                            \
        a->r = 0;                                                                                  \
        for (int i = 0; i < DIV; i++)                                                              \
            a->r += kids[i].r;                                                                     \
        NODE;                                                                                      \
        return 0;                                                                                  \
    }
LEAN_SKY(sky_lean, (void)0, (void)0)
LEAN_SKY(sky_lean_apart, __asm__ volatile("# leaf"), __asm__ volatile("# node"))

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

/* Runs fn(arg) as a task of a flow on p, from this (external) thread. */
static int run(weft_pool *p, weft_fn fn, void *arg)
{
    weft_flow f;
    if (weft_flow_open(&f, p) || weft_spawn(&f, fn, arg))
        return 1;
    return weft_flow_close(&f);
}

int main(int argc, char **argv)
{
    static weft_fn fibs[] = {NULL, fib_flow2, fib_lean2, fib_lean2_apart};
    static weft_fn skys[] = {NULL, sky_weft, sky_lean, sky_lean_apart};
    static const char *names[] = {"serial", "weft", "lean", "lean, apart"};
    bool sky = argc > 1 && strcmp(argv[1], "sky") == 0;
    if (argc < 2 || (!sky && strcmp(argv[1], "flow2") != 0))
        return 2;
    long long n = argc > 2 ? atoll(argv[2]) : (sky ? 1000000 : 27);
    int rounds = argc > 3 ? atoi(argv[3]) : 11;
    if ((sky ? n < 10 || n > 100000000 : n < 2 || n > 40) || rounds < 1 || rounds > 100)
        return 2;
    static double t[4][100];
    weft_pool *p;
    weft_pool_config c = {.workers = 1};
    if (weft_pool_create(&p, &c))
        return 1;
    uint64_t want = sky ? skynet_serial(0, (uint64_t)n) : fib_serial((int)n);
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 4; k++) {
            double t0 = now();
            uint64_t v;
            if (k == 0 && sky) {
                v = skynet_serial(0, *(volatile uint64_t *)&(uint64_t){(uint64_t)n});
            } else if (k == 0) {
                v = fib_serial(*(volatile int *)&(int){(int)n});
            } else if (sky) {
                sa a = {0, (uint64_t)n, 0};
                if (run(p, skys[k], &a))
                    return 1;
                v = a.r;
            } else {
                fa a = {(int)n, 0};
                if (run(p, fibs[k], &a))
                    return 1;
                v = a.r;
            }
            t[k][r] = now() - t0;
            if (v != want)
                return 1;
        }
    for (int k = 0; k < 4; k++)
        qsort(t[k], (size_t)rounds, sizeof(double), cmpd);
    printf("%s(%lld), 1 worker, %d rounds interleaved: min (median), x serial\n",
           sky ? "skynet" : "fib, both halves spawned", n, rounds);
    for (int k = 0; k < 4; k++)
        printf("%-12s %7.2f ms (%7.2f)  %.2fx (%.2fx)\n", names[k], t[k][0] * 1e3,
               t[k][rounds / 2] * 1e3, t[k][0] / t[0][0], t[k][rounds / 2] / t[0][rounds / 2]);
    weft_pool_destroy(p);
    return 0;
}
