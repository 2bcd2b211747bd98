/*
 * flow_parts.c: what each group of the inline flow's work costs, on fib(n)
 * with a flow per call (one half spawned, the other called), one worker
 * (README.md here). A copy of weft_inline.h's open, spawn and close with
 * groups removed at compile time (X):
 *   -cancel     the close's cancellation checks (before, between, after)
 *   -curflow    the close's set and restore of the current flow, and the
 *               check that the caller is the opener's task
 *   -counters   the open-flow, spawn and run counters
 *   -scope      the spawn's pin check and the close's scope checks, and
 *               the scope's reset after each task
 *   -pending    the close's final load of state (local_pending stays)
 *   -magic      the CLOSING store
 *   -open,cancel,pending  the open writes only magic, owner, pin, parent,
 *               local_pending and base
 *   -checks     the entry checks of open, spawn and close, the hint checks
 *   -all groups all of them
 * Only "copy(all)" keeps weft's promises; the others are correct on one
 * worker, with no context set, cancel, failure or tracing only. Not built
 * by CMake:
 *
 *   cc -O2 -I include -I BUILD/include flow_parts.c BUILD/libweft.a -lpthread -o flow_parts
 *   ./flow_parts 30 15
 */
#include "weft.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
enum { CANCEL = 1, CURFLOW = 2, COUNT = 4, SCOPE = 8, PENDING = 16, MAGIC = 32, OPENMIN = 64, CHECKS = 128 };
#define HAS(g) (!(X & (g)))
#define AI __attribute__((always_inline)) static inline

AI int p_open(weft_flow *flow, const int X)
{
    struct weft_owner_ *o = weft_thread_.worker;
    struct weft_flowv_ *f = (struct weft_flowv_ *)(void *)flow;
    struct weft_scope_ *s = weft_thread_.scope;
    struct weft_flowv_ *parent = (struct weft_flowv_ *)(void *)weft_thread_.flow;
    if (HAS(CHECKS) && __builtin_expect(!o || !f || !s || s->owned || !parent ||
                             __atomic_load_n(&o->mode, __ATOMIC_RELAXED) != 0, 0))
        abort();
    if (HAS(OPENMIN)) {
        weft_pair_(&f->magic, WEFT_FLOW_OPEN_, (uint64_t)(uintptr_t)weft_thread_.pool);
        weft_pair_(&f->owner, (uint64_t)(uintptr_t)weft_thread_.self, (uint64_t)(uintptr_t)s->cur);
        weft_pair_(&f->state, 0, 0);
        weft_pair_(&f->cancel_cache, __atomic_load_n(&parent->cancel_cache, __ATOMIC_RELAXED),
                   (uint64_t)(uintptr_t)parent->epoch);
        f->parent = parent;
        weft_pair_(&f->local_pending, 0, (uint64_t)o->bottom);
    } else {
        uint64_t mf = WEFT_FLOW_OPEN_; /* magic, and flags 0 */
        memcpy(&f->magic, &mf, sizeof mf);
        weft_pair_(&f->owner, (uint64_t)(uintptr_t)weft_thread_.self, (uint64_t)(uintptr_t)s->cur);
        f->parent = parent;
        weft_pair_(&f->local_pending, 0, (uint64_t)o->bottom);
    }
    if (HAS(COUNT))
        weft_count_((uint64_t *)&o->open, 1);
    return 0;
}

AI int p_spawn(weft_flow *flow, weft_fn fn, void *arg, const int X)
{
    struct weft_owner_ *o = weft_thread_.worker;
    struct weft_flowv_ *f = (struct weft_flowv_ *)(void *)flow;
    struct weft_scope_ *s = weft_thread_.scope;
    if (HAS(CHECKS) && __builtin_expect(!o || !f || !fn || f->owner != weft_thread_.self ||
                             __atomic_load_n(&f->magic, __ATOMIC_RELAXED) != WEFT_FLOW_OPEN_ ||
                             (HAS(SCOPE) && (s ? s->cur : (struct weft_ctx *)0) != f->pin) ||
                             o->bottom - o->top_seen > o->arr->mask, 0))
        abort();
    int64_t b = o->bottom;
    struct weft_arr_ *arr = o->arr;
    uintptr_t *sl = (uintptr_t *)(void *)(arr + 1) + 4 * (b & arr->mask);
    __atomic_store_n(&sl[0], (uintptr_t)fn, __ATOMIC_RELAXED);
    __atomic_store_n(&sl[1], (uintptr_t)arg, __ATOMIC_RELAXED);
    __atomic_store_n(&sl[2], (uintptr_t)f | WEFT_ITEM_PINNED_, __ATOMIC_RELAXED);
    o->bottom = b + 1;
    f->local_pending++;
    if (HAS(COUNT))
        weft_count_(&o->spawns, 1);
    if (HAS(CHECKS) && __builtin_expect(__atomic_load_n(&o->hint, __ATOMIC_RELAXED) != 0, 0))
        weft_join_more_(o);
    return 0;
}

AI int p_close(weft_flow *flow, const int X)
{
    struct weft_owner_ *o = weft_thread_.worker;
    struct weft_flowv_ *f = (struct weft_flowv_ *)(void *)flow;
    struct weft_scope_ *s = weft_thread_.scope;
    if (HAS(CHECKS) && __builtin_expect(!o || !f || f->owner != weft_thread_.self ||
                             __atomic_load_n(&f->magic, __ATOMIC_RELAXED) != WEFT_FLOW_OPEN_ ||
                             (__atomic_load_n(&o->mode, __ATOMIC_RELAXED) & WEFT_MODE_SLOW_) ||
                             (HAS(SCOPE) && ((f->flags & WEFT_FLOW_NO_CTX_) ? s != 0
                                                             : !s || s->cur != f->pin || s->owned)) ||
                             (HAS(CURFLOW) && (void *)weft_thread_.flow != (void *)f->parent) ||
                             (HAS(CANCEL) && __atomic_load_n(&f->cancel_cache, __ATOMIC_RELAXED) !=
                                 __atomic_load_n(f->epoch, __ATOMIC_ACQUIRE) << 1) ||
                             o->bottom - o->top_seen > o->depth, 0))
        return (weft_flow_close)(flow);
    if (HAS(MAGIC))
        __atomic_store_n(&f->magic, WEFT_FLOW_CLOSING_, __ATOMIC_RELAXED);
    if (HAS(CURFLOW))
        weft_thread_.flow = (struct weft_flow_rec_ *)(void *)f;
    int r = 0;
    int64_t b;
    while ((b = o->bottom) > f->base) {
        uintptr_t *sl = (uintptr_t *)(void *)(o->arr + 1) + 4 * ((b - 1) & o->arr->mask);
        if (__builtin_expect(b <= o->split_own ||
                                 (HAS(CHECKS) && (__atomic_load_n(&o->hint, __ATOMIC_RELAXED) & WEFT_HINT_SPLIT_)) ||
                                 __atomic_load_n(&sl[2], __ATOMIC_RELAXED) !=
                                     ((uintptr_t)f | WEFT_ITEM_PINNED_), 0))
            break;
        weft_fn fn = (weft_fn)__atomic_load_n(&sl[0], __ATOMIC_RELAXED);
        void *arg = (void *)__atomic_load_n(&sl[1], __ATOMIC_RELAXED);
        o->bottom = b - 1;
        f->local_pending--;
        if (HAS(COUNT))
            weft_count_(&o->runs, 1);
        r = fn(arg);
        if (HAS(SCOPE)) {
            s = weft_thread_.scope;
            if (__builtin_expect(s && s->owned, 0))
                weft_scope_reset_(s, f->pin);
        }
        if (__builtin_expect(r != 0, 0) || o->bottom <= f->base)
            break;
        if (HAS(CANCEL) && __builtin_expect(__atomic_load_n(&f->cancel_cache, __ATOMIC_RELAXED) !=
                                 __atomic_load_n(f->epoch, __ATOMIC_ACQUIRE) << 1, 0))
            break;
    }
    if (HAS(CURFLOW))
        weft_thread_.flow = (struct weft_flow_rec_ *)(void *)f->parent;
    if (__builtin_expect(r == 0 && o->bottom <= f->base &&
                             f->local_pending == 0 &&
                             (!HAS(SCOPE) || !(f->flags & WEFT_FLOW_PIN_OWNED_)) &&
                             (!HAS(PENDING) || __atomic_load_n(&f->state, __ATOMIC_ACQUIRE) == 0) &&
                             (!HAS(CANCEL) || __atomic_load_n(&f->cancel_cache, __ATOMIC_RELAXED) ==
                                 __atomic_load_n(f->epoch, __ATOMIC_ACQUIRE) << 1), 1)) {
        __atomic_store_n(&f->magic, WEFT_FLOW_CLOSED_, __ATOMIC_RELAXED);
        if (HAS(COUNT))
            weft_count_((uint64_t *)&o->open, -1);
        return 0;
    }
    return weft_flow_close_rest_(flow, r);
}

typedef struct { int n; uint64_t r; } fa;
__attribute__((noinline)) uint64_t fib_serial(int n)
{
    if (n < 2) return (uint64_t)n;
    uint64_t a = fib_serial(n - 1);
    uint64_t b = fib_serial(n - 2);
    __asm__("" : "+r"(b));
    return a + b;
}
/* A fib node with a flow per call, through OPEN, SPAWN and CLOSE. */
#define FIB1(name, OPEN, SPAWN, CLOSE)                                        \
    static int name(void *p)                                                  \
    {                                                                         \
        fa *a = p;                                                            \
        if (a->n < 2) { a->r = (uint64_t)a->n; return 0; }                    \
        fa x = {a->n - 1, 0}, y = {a->n - 2, 0};                              \
        weft_flow f;                                                          \
        OPEN;                                                                 \
        SPAWN;                                                                \
        name(&y);                                                             \
        CLOSE;                                                                \
        a->r = x.r + y.r;                                                     \
        return 0;                                                             \
    }
#define V(name, X) FIB1(name, p_open(&f, X), p_spawn(&f, name, &x, X), p_close(&f, X))
V(v_all, 0)
V(v_cancel, CANCEL)
V(v_curflow, CURFLOW)
V(v_count, COUNT)
V(v_scope, SCOPE)
V(v_pending, PENDING)
V(v_magic, MAGIC)
V(v_openmin, OPENMIN | CANCEL | PENDING)
V(v_checks, CHECKS)
V(v_none, 255)
FIB1(fib_flow1, weft_flow_open(&f, NULL), weft_spawn(&f, fib_flow1, &x), weft_flow_close(&f))
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 30, rounds = argc > 2 ? atoi(argv[2]) : 11;
    weft_fn fns[] = {NULL, fib_flow1, v_all, v_cancel, v_curflow, v_count, v_scope, v_pending, v_magic, v_openmin, v_checks, v_none};
    const char *names[] = {"serial", "weft", "copy(all)", "-cancel", "-curflow", "-counters", "-scope", "-pending", "-magic", "-open,cancel,pending", "-checks", "-all groups"};
    enum { K = sizeof fns / sizeof fns[0] };
    static double t[K][200];
    weft_pool *p; weft_pool_config c = {.workers = 1};
    if (weft_pool_create(&p, &c)) return 1;
    volatile int vn = n; uint64_t want = fib_serial(n);
    { fa a = {n, 0}; weft_flow f; if (weft_flow_open(&f, p) || weft_spawn(&f, fns[1], &a) || weft_flow_close(&f)) return 1; }
    int order[K]; for (int k = 0; k < K; k++) order[k] = k;
    for (int r = 0; r < rounds; r++) {
        for (int k = K - 1; k > 0; k--) { int j = rand() % (k + 1); int tmp = order[k]; order[k] = order[j]; order[j] = tmp; }
        for (int kk = 0; kk < K; kk++) {
            int k = order[kk];
            double t0 = now(); uint64_t v; fa a = {n, 0};
            if (k == 0) v = fib_serial(vn);
            else { weft_flow f; if (weft_flow_open(&f, p) || weft_spawn(&f, fns[k], &a) || weft_flow_close(&f)) return 1; v = a.r; }
            t[k][r] = now() - t0;
            if (v != want) return 1;
        }
    }
    for (int k = 0; k < K; k++) qsort(t[k], rounds, sizeof(double), cmpd);
    for (int k = 0; k < K; k++)
        printf("%-22s %7.2f ms (%7.2f)  %.2fx (%.2fx)\n", names[k], t[k][0]*1e3, t[k][rounds/2]*1e3, t[k][0]/t[0][0], t[k][rounds/2]/t[0][rounds/2]);
    weft_pool_destroy(p);
    return 0;
}
