/*
 * join_parts.c: what each group of the inline weft_join's checks costs, on
 * fib(n) with one worker (README.md here). A copy of weft_inline.h's
 * weft_join_inline_ with groups removed at compile time (X):
 *   copy              the copy, all groups in (should match weft_join)
 *   -fold prechecks   the four entry checks (worker, mode, the scope's set,
 *                     room) replaced by one compare (bottom against a bound:
 *                     o->depth + 100000 stands in for a "limit" word)
 *   -owned            no check for a weft_ctx_set after each half
 *   -hint             no check of the hint word after the push
 *   -count            no inline-join counter
 *   -split            no split_own check at the take-back
 *   -fold,owned, -all the groups together
 *   tls byte          the set check reads a thread-local byte (what a
 *                     "scope dirty" byte in weft_thread_ would cost) instead
 *                     of the scope's owned byte through the frame
 * Only "copy" keeps weft's promises; the others are correct on one worker,
 * with no context set, tracing or fork only. Not built by CMake:
 *
 *   cc -O2 -I include -I BUILD/include join_parts.c BUILD/libweft.a -lpthread -o join_parts
 *   ./join_parts 30 41
 */
#include "weft.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
enum { FOLD = 1, OWNED = 2, HINT = 4, COUNT = 8, SPLIT = 16, TLSB = 32 };
__thread bool dirty_ __attribute__((tls_model("initial-exec")));
#define HAS(g) (!(X & (g)))
__attribute__((always_inline)) static inline int jv(weft_fn a, void *arg_a, weft_fn b, void *arg_b, const int X)
{
    struct weft_owner_ *o = weft_thread_.worker;
    struct weft_scope_ *s = weft_thread_.scope;
    if (HAS(FOLD)) {
        if (__builtin_expect(!o || __atomic_load_n(&o->mode, __ATOMIC_RELAXED) != (s ? 0u : WEFT_MODE_NO_CTX_) ||
                             ((X & TLSB) ? dirty_ : (s && s->owned)) || o->bottom - o->top_seen > o->arr->mask, 0))
            return (weft_join)(a, arg_a, b, arg_b);
    } else {
        if (__builtin_expect(!o || o->bottom >= o->depth + 100000, 0))
            return (weft_join)(a, arg_a, b, arg_b);
    }
    struct weft_frame_ jf;
    jf.done = 0;
    jf.flow = weft_thread_.flow;
    struct weft_ctx *ctx = s ? s->cur : (struct weft_ctx *)0;
    jf.ctx = ctx;
    static const bool none_ = 0;
    if (!(X & TLSB)) jf.owned = s ? &s->owned : &none_;
    int64_t mark = o->bottom;
    jf.mark = mark;
    struct weft_arr_ *arr = o->arr;
    uintptr_t *sl = (uintptr_t *)(void *)(arr + 1) + 4 * (mark & arr->mask);
    jf.arg = arg_a;
    __atomic_store_n(&sl[0], (uintptr_t)a, __ATOMIC_RELAXED);
    __atomic_store_n(&sl[1], (uintptr_t)arg_a, __ATOMIC_RELAXED);
    __atomic_store_n(&sl[2], (uintptr_t)&jf | 2u, __ATOMIC_RELAXED);
    __atomic_store_n(&sl[3], (uintptr_t)ctx, __ATOMIC_RELAXED);
    o->bottom = mark + 1;
    if (HAS(HINT) && __builtin_expect(__atomic_load_n(&o->hint, __ATOMIC_RELAXED) != 0, 0))
        weft_join_more_(o);
    int rb = b(arg_b);
    if (HAS(OWNED) && __builtin_expect((X & TLSB) ? dirty_ : *jf.owned, 0))
        weft_scope_reset_(weft_thread_.scope, jf.ctx);
    o = weft_thread_.worker;
    mark = jf.mark;
    if (__builtin_expect(o && o->bottom == mark + 1 && (!HAS(SPLIT) || mark >= o->split_own) &&
                             !__atomic_load_n(&jf.done, __ATOMIC_RELAXED), 1)) {
        o->bottom = mark;
        if (HAS(COUNT)) weft_count_(&o->joins, 1);
        jf.result = rb;
        int ra = a(jf.arg);
        if (HAS(OWNED) && __builtin_expect((X & TLSB) ? dirty_ : *jf.owned, 0))
            weft_scope_reset_(weft_thread_.scope, jf.ctx);
        return ra ? ra : jf.result;
    }
    return weft_join_rest_((struct weft_frame_ *)weft_addr_(&jf), rb);
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
#define V(name, X) static int name(void *p) { fa *a = p; if (a->n < 2) { a->r = (uint64_t)a->n; return 0; } \
    fa x = {a->n - 1, 0}, y = {a->n - 2, 0}; int rc = jv(name, &x, name, &y, X); a->r = x.r + y.r; return rc; }
V(j_all, 0)
V(j_fold, FOLD)
V(j_owned, OWNED)
V(j_hint, HINT)
V(j_count, COUNT)
V(j_split, SPLIT)
V(j_fo, FOLD | OWNED)
V(j_none, 31)
V(j_tls, TLSB)
static int fib_join(void *p) { fa *a = p; if (a->n < 2) { a->r = (uint64_t)a->n; return 0; }
    fa x = {a->n - 1, 0}, y = {a->n - 2, 0}; int rc = weft_join(fib_join, &x, fib_join, &y); a->r = x.r + y.r; return rc; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 30, rounds = argc > 2 ? atoi(argv[2]) : 11;
    weft_fn fns[] = {NULL, fib_join, j_all, j_fold, j_owned, j_hint, j_count, j_split, j_fo, j_none, j_tls};
    const char *names[] = {"serial", "weft_join", "copy", "-fold prechecks", "-owned", "-hint", "-count", "-split", "-fold,owned", "-all", "tls byte"};
    enum { K = sizeof fns / sizeof fns[0] };
    static double t[K][200];
    weft_pool *p; weft_pool_config c = {.workers = 1};
    if (weft_pool_create(&p, &c)) return 1;
    volatile int vn = n; uint64_t want = fib_serial(n);
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
        printf("%-18s %7.2f ms (%7.2f)  %.2fx (%.2fx)\n", names[k], t[k][0]*1e3, t[k][rounds/2]*1e3, t[k][0]/t[0][0], t[k][rounds/2]/t[0][rounds/2]);
    weft_pool_destroy(p);
    return 0;
}
