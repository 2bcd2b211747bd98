/*
 * floor.c: how far below weft's join and flow a design with the deque's
 * index in memory and task arguments behind one pointer can go, on fib(n),
 * 1 worker (docs/fast-path.md, "The floor of this design"). Not built by
 * CMake: a measurement kept with its results (README.md here).
 *
 *   cc -O2 [-fno-omit-frame-pointer] -I include -I BUILD/include \
 *      floor.c BUILD/libweft.a -lpthread -o floor
 *   ./floor join 32 15     ./floor flow 30 11
 *   ./floor flow2 31 21    ./floor sky 1000000 41
 *
 * Every variant but weft's is correct on 1 worker only: none handles a
 * steal, a context set, a cancel, an error or tracing.
 *
 * join:
 *   join        weft_join as a program gets it (the inline fast path)
 *   no checks   its offer and take-back without the checks (traced pool,
 *               dirty scope, fork child, the slot's neighbours)
 *   push-pop    only the offer: three slot words, bottom, done
 *   fixed slot  the same three words to one fixed slot, bottom untouched
 *               (not a deque: what the chain through bottom costs)
 *   direct      b then a, called directly: the workload's own cost
 * flow (a flow per call, one half spawned, the other called):
 *   flow1        weft_flow_open, weft_spawn, the call, weft_flow_close
 *   lean         a flow of three words (owner line, base, magic): spawn
 *                pushes three slot words; close takes back the newest
 *                item and runs it
 *   lean, apart  the same source with an empty asm statement in the leaf's
 *                return and another in the node's, so that gcc does not
 *                send the leaf's return through the node's epilogue
 * flow2 (fib, both halves spawned into a flow per call) and sky (skynet,
 * ten children spawned into a flow per node), added later
 * (../2026-12-02-lean-floors):
 *   weft         bench/workloads_weft.c's task function
 *   lean         the lean flow, its close running every item of the flow
 *                back from the private part
 *   lean, apart  as above
 */
#include "weft.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int      n;
    uint64_t r;
} fa;

/* bench/workloads_serial.c's baseline, as it is there. */
__attribute__((noinline)) uint64_t fib_serial(int n)
{
    if (n < 2)
        return (uint64_t)n;
    uint64_t a = fib_serial(n - 1);
    uint64_t b = fib_serial(n - 2);
    __asm__("" : "+r"(b));
    return a + b;
}

/* bench/workloads_serial.c's skynet baseline, as it is there. */
#define DIV 10
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

/* A fib node on the lean flow: x spawned, then SECOND (y called, or spawned
 * too), then CLOSE. */
#define LEAN(name, SECOND, CLOSE, LEAF, NODE)                                                      \
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
        SECOND;                                                                                    \
        CLOSE(&f);                                                                                 \
        a->r = x.r + y.r;                                                                          \
        NODE;                                                                                      \
        return 0;                                                                                  \
    }
LEAN(fib_lean, fib_lean(&y), lean_close, (void)0, (void)0)
LEAN(fib_lean_apart, fib_lean_apart(&y), lean_close, __asm__ volatile("# leaf"),
     __asm__ volatile("# node"))

/* Runs the flow's items back from the top of the private part. */
__attribute__((always_inline)) static inline void lean_close_all(lean_flow *f)
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

LEAN(fib_lean2, lean_spawn(&f, fib_lean2, &y), lean_close_all, (void)0, (void)0)
LEAN(fib_lean2_apart, lean_spawn(&f, fib_lean2_apart, &y), lean_close_all,
     __asm__ volatile("# leaf"), __asm__ volatile("# node"))

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
        lean_close_all(&f);                                                                            \
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

/* The variants of one mode: row 0 is the serial baseline. */
typedef struct {
    const char  *mode, *what;
    int          k;
    weft_fn      fn[6];
    const char  *name[6];
    bool         sky; /* skynet(n), else fib(n) */
    long long    lo, hi;
} floor_mode;

static const floor_mode modes[] = {
    {"join", "fib, a join per call", 6,
     {NULL, fib_join, fib_nochecks, fib_pushpop, fib_fixed, fib_direct},
     {"serial", "join", "no checks", "push-pop", "fixed slot", "direct"}, false, 2, 40},
    {"flow", "fib, a flow per call", 4, {NULL, fib_flow1, fib_lean, fib_lean_apart},
     {"serial", "flow1", "lean", "lean, apart"}, false, 2, 40},
    {"flow2", "fib, both halves spawned", 4, {NULL, fib_flow2, fib_lean2, fib_lean2_apart},
     {"serial", "weft", "lean", "lean, apart"}, false, 2, 40},
    {"sky", "skynet", 4, {NULL, sky_weft, sky_lean, sky_lean_apart},
     {"serial", "weft", "lean", "lean, apart"}, true, 10, 100000000},
};

int main(int argc, char **argv)
{
    const floor_mode *m = NULL;
    for (size_t i = 0; argc > 1 && i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(argv[1], modes[i].mode) == 0)
            m = &modes[i];
    if (!m)
        return 2;
    long long n = argc > 2 ? atoll(argv[2]) : 30;
    int rounds = argc > 3 ? atoi(argv[3]) : 11;
    if (n < m->lo || n > m->hi || rounds < 1 || rounds > 100)
        return 2;
    static double t[6][100];
    weft_pool *p;
    weft_pool_config c = {.workers = 1};
    if (weft_pool_create(&p, &c))
        return 1;
    volatile long long vn = n;
    uint64_t want = m->sky ? skynet_serial(0, (uint64_t)n) : fib_serial((int)n);
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < m->k; k++) {
            double t0 = now();
            uint64_t v;
            fa a = {(int)n, 0};
            sa s = {0, (uint64_t)n, 0};
            if (k == 0) {
                v = m->sky ? skynet_serial(0, (uint64_t)vn) : fib_serial((int)vn);
            } else {
                weft_flow f;
                if (weft_flow_open(&f, p) || weft_spawn(&f, m->fn[k], m->sky ? (void *)&s : &a) ||
                    weft_flow_close(&f))
                    return 1;
                v = m->sky ? s.r : a.r;
            }
            t[k][r] = now() - t0;
            if (v != want)
                return 1;
        }
    for (int k = 0; k < m->k; k++)
        qsort(t[k], (size_t)rounds, sizeof(double), cmpd);
    printf("%s(%lld), 1 worker, %d rounds interleaved: min (median), x serial\n", m->what, n,
           rounds);
    for (int k = 0; k < m->k; k++)
        printf("%-12s %7.2f ms (%7.2f)  %.2fx (%.2fx)\n", m->name[k], t[k][0] * 1e3,
               t[k][rounds / 2] * 1e3, t[k][0] / t[0][0], t[k][rounds / 2] / t[0][rounds / 2]);
    weft_pool_destroy(p);
    return 0;
}
