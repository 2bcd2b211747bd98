/*
 * bench/inject_compare.c — weft's injection queue (queue/inject.c) against
 * liburcu's wait-free concurrent queue (urcu/wfcqueue.h), to decide issue 2
 * by measurement. Standalone: not part of the library or of the CMake build.
 *
 * Build and run (from the repository root):
 *   gcc -O2 -std=gnu11 -D_GNU_SOURCE -I include -I . bench/inject_compare.c \
 *       queue/inject.c queue/deque.c $(pkg-config --libs liburcu-cds liburcu) -lpthread
 *   ./a.out [rounds=5] [items_per_producer=1000000] [log2_ring=12] [max_seconds=30]
 *
 * Queues compared (items are four words, as in weft):
 *   weft      wq_inject, blocks of 2^8 slots (the pool's size; capped at
 *             2^10, its limit, when log2_ring asks for more; the rings of
 *             the other queues take log2_ring as it is).
 *   wfcq      liburcu wfcqueue as weft would have to use it: _LGPL_SOURCE is
 *             NOT defined (design.md: no LGPL inline code in weft), so every
 *             operation is a call into liburcu-cds. One malloc'd node per item
 *             (the item must outlive the submitter's stack), freed by the
 *             consumer. Consumers test cds_wfcq_empty() and then call
 *             cds_wfcq_dequeue_blocking() (the queue is MPMC only under its
 *             dequeue mutex).
 *   wfcq-pre  diagnostic only: the same calls, but nodes come from one array
 *             allocated before timing (no malloc/free). weft cannot do this
 *             (unbounded queue, any submitter); it shows what the queue alone
 *             costs and what malloc adds.
 *   ck_ring   diagnostic only: concurrencykit's bounded MPMC ring with the
 *             same 4-word type (header-only, BSD). It has no overflow: a
 *             producer that finds it full spins/yields until a slot frees.
 *
 * Workloads: 1 producer + 2 consumers, 4 producers + 2 consumers, N items per
 * producer. Every item carries (producer, index, check words); consumers check
 * each item's words and count per producer, and the totals (count per
 * producer, sum of indices) are verified after each run: each item consumed
 * exactly once. Time is wall clock from the first thread leaving the start
 * barrier to the last thread finishing (each thread reads the clock itself).
 * Rounds interleave all queues (the order rotates per round); min / median /
 * max throughput in M items/s over the rounds. A run is capped at
 * max_seconds (default 30): producers then stop early, what was produced is
 * still verified, and the run is counted as DNF with the rate it reached.
 * (Before issue 14 weft's queue was a ring with an overflow list, and each
 * run printed the share of pushes that took the list; it has none now.)
 *
 * Consumers that find the queue empty do what a weft worker does: pause for
 * a while, then sched_yield. 4P+2C is 6 threads: it oversubscribes small
 * machines, which is the realistic case for external submitters.
 *
 * TSan probe (does a 2-thread enqueue/dequeue give race reports?):
 *   gcc -O1 -g -fsanitize=thread -std=gnu11 -D_GNU_SOURCE -I include -I . \
 *       bench/inject_compare.c queue/inject.c queue/deque.c \
 *       $(pkg-config --libs liburcu-cds liburcu) -lpthread
 *   ./a.out --tsan-probe wfcq | weft | ck_ring
 * Add -DPROBE_ANNOTATE to mark the wfcq hand-over with __tsan_release /
 * __tsan_acquire on the node (how design.md says a dependency that
 * synchronizes on weft's behalf should be annotated).
 */
#ifdef _LGPL_SOURCE
#error "weft must not define _LGPL_SOURCE (design.md, Dependencies)"
#endif

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ck_ring.h>
#include <urcu/wfcqueue.h>

#include "queue/wq_inject.h"

#if defined(__SANITIZE_THREAD__) /* gcc */
#define PROBE_TSAN 1
#elif defined(__has_feature) /* clang */
#if __has_feature(thread_sanitizer)
#define PROBE_TSAN 1
#endif
#endif
#ifdef PROBE_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define PROBE_RELEASE(p) __tsan_release(p)
#define PROBE_ACQUIRE(p) __tsan_acquire(p)
#else
#define PROBE_RELEASE(p) ((void)(p))
#define PROBE_ACQUIRE(p) ((void)(p))
#endif

#define GOLD 0x9E3779B97F4A7C15ULL
#define MAXP 8

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the queues behind one interface ----------------------------------- */

typedef struct wfcq_node {
    struct cds_wfcq_node n;
    wq_item              it;
} wfcq_node;

CK_RING_PROTOTYPE(wq_item, wq_item)

typedef struct queue {
    const char *name;
    /* weft */
    wq_inject inject;
    /* wfcq (head and tail on separate lines, as urcu recommends) */
    _Alignas(64) struct cds_wfcq_head head;
    _Alignas(64) struct cds_wfcq_tail tail;
    wfcq_node *pre; /* wfcq-pre: node p * n + i for producer p's item i */
    size_t     pre_n;
    /* ck_ring */
    _Alignas(64) struct ck_ring ring;
    wq_item *ring_buf;
    int kind;
} queue;

enum { Q_WEFT, Q_WFCQ, Q_WFCQ_PRE, Q_CKRING, Q_COUNT };
static const char *const qnames[Q_COUNT] = {"weft", "wfcq", "wfcq-pre", "ck_ring"};

static int q_init(queue *q, int kind, unsigned log2_ring, unsigned nprod, size_t n)
{
    memset(q, 0, sizeof *q);
    q->kind = kind;
    q->name = qnames[kind];
    switch (kind) {
    case Q_WEFT:
        return wq_inject_init(&q->inject, log2_ring > 10 ? 8 : log2_ring);
    case Q_WFCQ_PRE:
        q->pre = malloc((size_t)nprod * n * sizeof *q->pre);
        if (!q->pre)
            return ENOMEM;
        q->pre_n = n;
        /* touch the pages before timing */
        memset(q->pre, 0, (size_t)nprod * n * sizeof *q->pre);
        /* fall through */
    case Q_WFCQ:
        cds_wfcq_init(&q->head, &q->tail);
        return 0;
    case Q_CKRING:
        q->ring_buf = aligned_alloc(64, ((size_t)1 << log2_ring) * sizeof(wq_item));
        if (!q->ring_buf)
            return ENOMEM;
        ck_ring_init(&q->ring, 1u << log2_ring);
        return 0;
    }
    return EINVAL;
}

static void q_destroy(queue *q)
{
    switch (q->kind) {
    case Q_WEFT:
        wq_inject_destroy(&q->inject);
        break;
    case Q_WFCQ:
    case Q_WFCQ_PRE:
        cds_wfcq_destroy(&q->head, &q->tail);
        free(q->pre);
        break;
    case Q_CKRING:
        free(q->ring_buf);
        break;
    }
}

static int q_push(queue *q, const wq_item *it, unsigned p, size_t i)
{
    switch (q->kind) {
    case Q_WEFT:
        return wq_inject_push(&q->inject, it);
    case Q_WFCQ:
    case Q_WFCQ_PRE: {
        wfcq_node *n = q->kind == Q_WFCQ ? malloc(sizeof *n) : &q->pre[p * q->pre_n + i];
        if (!n)
            return ENOMEM;
        cds_wfcq_node_init(&n->n);
        n->it = *it;
#ifdef PROBE_ANNOTATE
        PROBE_RELEASE(n);
#endif
        cds_wfcq_enqueue(&q->head, &q->tail, &n->n);
        return 0;
    }
    case Q_CKRING: {
        wq_item copy = *it;
        for (unsigned spins = 0; !ck_ring_enqueue_mpmc_wq_item(&q->ring, q->ring_buf, &copy);) {
            if (++spins < 64)
                cpu_relax();
            else
                sched_yield();
        }
        return 0;
    }
    }
    return EINVAL;
}

static bool q_pop(queue *q, wq_item *out)
{
    switch (q->kind) {
    case Q_WEFT:
        return wq_inject_pop(&q->inject, out);
    case Q_WFCQ:
    case Q_WFCQ_PRE: {
        if (cds_wfcq_empty(&q->head, &q->tail))
            return false;
        struct cds_wfcq_node *cn = cds_wfcq_dequeue_blocking(&q->head, &q->tail);
        if (!cn)
            return false;
        wfcq_node *n = caa_container_of(cn, wfcq_node, n);
#ifdef PROBE_ANNOTATE
        PROBE_ACQUIRE(n);
#endif
        *out = n->it;
        if (q->kind == Q_WFCQ)
            free(n);
        return true;
    }
    case Q_CKRING:
        return ck_ring_dequeue_mpmc_wq_item(&q->ring, q->ring_buf, out);
    }
    return false;
}

/* ---- one run ----------------------------------------------------------- */

typedef struct run {
    queue            *q;
    unsigned          nprod, ncons;
    size_t            n;
    uint64_t          total;
    double            deadline_s; /* producers stop early after this long */
    pthread_barrier_t start;
    _Alignas(64) _Atomic(uint64_t) consumed;
    _Alignas(64) _Atomic(int) push_errors;
    _Atomic(int)      aborted;
    _Atomic(unsigned) producers_done;
    _Atomic(uint64_t) skipped;  /* items not produced because of the deadline */
    uint64_t          produced[MAXP];
} run;

typedef struct cons_result {
    uint64_t count[MAXP];
    uint64_t idx_sum;
    uint64_t bad;
} cons_result;

typedef struct thr {
    run        *r;
    unsigned    id;
    cons_result res;
    double      t_start, t_end; /* this thread's own clock readings */
    pthread_t   t;
} thr;

static void make_item(wq_item *it, unsigned p, size_t i)
{
    it->w[0] = p;
    it->w[1] = i;
    it->w[2] = (uintptr_t)((uint64_t)p ^ ((uint64_t)i * GOLD));
    it->w[3] = ~(uintptr_t)i;
}

static void *producer(void *arg)
{
    thr *t = arg;
    run *r = t->r;
    pthread_barrier_wait(&r->start);
    t->t_start = now_s();
    double deadline = t->t_start + r->deadline_s;
    size_t i;
    for (i = 0; i < r->n; i++) {
        if ((i & 1023) == 0 && (atomic_load_explicit(&r->aborted, memory_order_relaxed) ||
                                now_s() > deadline)) {
            atomic_store(&r->aborted, 1);
            break;
        }
        wq_item it;
        make_item(&it, t->id, i);
        if (q_push(r->q, &it, t->id, i) != 0)
            atomic_fetch_add(&r->push_errors, 1);
    }
    r->produced[t->id] = i;
    atomic_fetch_add(&r->skipped, r->n - i);
    atomic_fetch_add(&r->producers_done, 1); /* seq_cst: publishes produced/skipped */
    t->t_end = now_s();
    return NULL;
}

static void *consumer(void *arg)
{
    thr *t = arg;
    run *r = t->r;
    uint64_t local = 0, flushed = 0;
    unsigned misses = 0;
    pthread_barrier_wait(&r->start);
    t->t_start = now_s();
    for (;;) {
        wq_item it;
        if (q_pop(r->q, &it)) {
            if (it.w[0] >= r->nprod || it.w[1] >= r->n ||
                it.w[2] != (uintptr_t)((uint64_t)it.w[0] ^ ((uint64_t)it.w[1] * GOLD)) ||
                it.w[3] != ~it.w[1]) {
                t->res.bad++;
            } else {
                t->res.count[it.w[0]]++;
                t->res.idx_sum += it.w[1];
            }
            if (++local - flushed >= 1024) {
                atomic_fetch_add_explicit(&r->consumed, local - flushed, memory_order_relaxed);
                flushed = local;
            }
            misses = 0;
            continue;
        }
        if (local != flushed) {
            atomic_fetch_add_explicit(&r->consumed, local - flushed, memory_order_relaxed);
            flushed = local;
        }
        if (atomic_load(&r->producers_done) == r->nprod &&
            atomic_load_explicit(&r->consumed, memory_order_relaxed) + atomic_load(&r->skipped) >=
                r->total)
            break;
        if (++misses < 64) {
            for (int k = 0; k < 32; k++)
                cpu_relax();
        } else {
            sched_yield();
        }
    }
    t->t_end = now_s();
    return NULL;
}

/* Returns M items/s (of the items produced), or a negative value when
 * verification failed. *dnf is set when the deadline stopped the producers. */
static double run_once(int kind, unsigned nprod, unsigned ncons, size_t n, unsigned log2_ring,
                       double max_s, bool *dnf, double *overflow_share)
{
    queue *q = aligned_alloc(64, (sizeof(queue) + 63) / 64 * 64);
    if (!q || q_init(q, kind, log2_ring, nprod, n) != 0) {
        fprintf(stderr, "%s: init failed\n", qnames[kind]);
        exit(1);
    }
    run *r = aligned_alloc(64, (sizeof(run) + 63) / 64 * 64);
    memset(r, 0, sizeof *r);
    r->q = q;
    r->nprod = nprod;
    r->ncons = ncons;
    r->n = n;
    r->total = (uint64_t)nprod * n;
    r->deadline_s = max_s;
    atomic_init(&r->consumed, 0);
    atomic_init(&r->push_errors, 0);
    atomic_init(&r->aborted, 0);
    atomic_init(&r->producers_done, 0);
    atomic_init(&r->skipped, 0);
    pthread_barrier_init(&r->start, NULL, nprod + ncons);

    thr th[MAXP * 2];
    memset(th, 0, sizeof th);
    for (unsigned i = 0; i < nprod + ncons; i++) {
        th[i].r = r;
        th[i].id = i < nprod ? i : i - nprod;
        pthread_create(&th[i].t, NULL, i < nprod ? producer : consumer, &th[i]);
    }
    /* Elapsed: earliest start to latest end, as read by the threads
     * themselves (the main thread may be descheduled on a small machine). */
    double t0 = 1e300, t1 = 0;
    for (unsigned i = 0; i < nprod + ncons; i++) {
        pthread_join(th[i].t, NULL);
        t0 = th[i].t_start < t0 ? th[i].t_start : t0;
        t1 = th[i].t_end > t1 ? th[i].t_end : t1;
    }

    /* verify: every item exactly once */
    bool ok = atomic_load(&r->push_errors) == 0;
    uint64_t count[MAXP] = {0}, idx_sum = 0, bad = 0;
    for (unsigned c = nprod; c < nprod + ncons; c++) {
        for (unsigned p = 0; p < nprod; p++)
            count[p] += th[c].res.count[p];
        idx_sum += th[c].res.idx_sum;
        bad += th[c].res.bad;
    }
    uint64_t want_sum = 0, produced = 0;
    for (unsigned p = 0; p < nprod; p++) {
        uint64_t m = r->produced[p];
        ok = ok && count[p] == m;
        want_sum += m * (m - (m > 0)) / 2;
        produced += m;
    }
    ok = ok && bad == 0 && idx_sum == want_sum;
    *dnf = atomic_load(&r->aborted) != 0;
    *overflow_share = 0; /* the block queue has no overflow path */
    wq_item extra;
    ok = ok && !q_pop(q, &extra); /* nothing left over */
    if (!ok)
        fprintf(stderr, "VERIFY FAILED: %s %uP%uC bad=%llu idx_sum=%llu\n", qnames[kind], nprod,
                ncons, (unsigned long long)bad, (unsigned long long)idx_sum);

    pthread_barrier_destroy(&r->start);
    q_destroy(q);
    free(q);
    free(r);
    return ok ? (double)produced / (t1 - t0) / 1e6 : -1.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- TSan probe -------------------------------------------------------- */

enum { PROBE_ITEMS = 2000 };

static void *probe_producer(void *arg)
{
    queue *q = arg;
    for (size_t i = 0; i < PROBE_ITEMS; i++) {
        wq_item it;
        make_item(&it, 0, i);
        q_push(q, &it, 0, i);
    }
    return NULL;
}

static int tsan_probe(const char *which)
{
    int kind = -1;
    for (int k = 0; k < Q_COUNT; k++)
        if (strcmp(which, qnames[k]) == 0)
            kind = k;
    if (kind < 0 || kind == Q_WFCQ_PRE) {
        fprintf(stderr, "--tsan-probe weft|wfcq|ck_ring\n");
        return 2;
    }
    static queue q;
    if (q_init(&q, kind, 6, 1, PROBE_ITEMS) != 0)
        return 1;
    pthread_t t;
    pthread_create(&t, NULL, probe_producer, &q);
    size_t got = 0;
    uint64_t sum = 0;
    while (got < PROBE_ITEMS) {
        wq_item it;
        if (q_pop(&q, &it)) {
            got++;
            sum += it.w[1];
        } else {
            sched_yield();
        }
    }
    pthread_join(t, NULL);
    q_destroy(&q);
    int ok = sum == (uint64_t)PROBE_ITEMS * (PROBE_ITEMS - 1) / 2;
    printf("tsan-probe %s: %zu items, sum %s\n", which, got, ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--tsan-probe") == 0)
        return tsan_probe(argv[2]);

    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    size_t n = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 1000000;
    unsigned log2_ring = argc > 3 ? (unsigned)atoi(argv[3]) : 12;
    double max_s = argc > 4 ? atof(argv[4]) : 30.0;
    if (rounds < 1 || rounds > 100 || n < 1 || log2_ring < 1 || log2_ring > 24 || max_s <= 0) {
        fprintf(stderr, "usage: %s [rounds] [items_per_producer] [log2_ring] [max_seconds]\n",
                argv[0]);
        return 2;
    }

    static const unsigned wl[][2] = {{1, 2}, {4, 2}};
    enum { NWL = 2 };
    double res[NWL][Q_COUNT][100];
    int dnfs[NWL][Q_COUNT] = {{0}};
    int failures = 0;

    printf("inject_compare: %d rounds, %zu items/producer, ring 2^%u, queues interleaved\n",
           rounds, n, log2_ring);
    for (int r = 0; r < rounds; r++) {
        for (int w = 0; w < NWL; w++) {
            for (int k0 = 0; k0 < Q_COUNT; k0++) {
                int k = (k0 + r) % Q_COUNT; /* rotate the order every round */
                bool dnf = false;
                double ovf = 0;
                double v = run_once(k, wl[w][0], wl[w][1], n, log2_ring, max_s, &dnf, &ovf);
                if (v < 0)
                    failures++;
                dnfs[w][k] += dnf;
                res[w][k][r] = v;
                printf("  round %d %uP%uC %-8s %8.2f M items/s", r, wl[w][0], wl[w][1],
                       qnames[k], v);
                if (k == Q_WEFT)
                    printf("  (%.1f%% of pushes took the overflow list)", 100 * ovf);
                printf("%s\n", dnf ? "  (DNF: stopped at the time cap)" : "");
                fflush(stdout);
            }
        }
    }

    printf("\n| workload | queue | min M items/s | median M items/s | max M items/s | DNF |\n");
    printf("|---|---|---:|---:|---:|---:|\n");
    for (int w = 0; w < NWL; w++) {
        for (int k = 0; k < Q_COUNT; k++) {
            double v[100];
            memcpy(v, res[w][k], sizeof(double) * (size_t)rounds);
            qsort(v, (size_t)rounds, sizeof(double), cmp_double);
            double med = rounds % 2 ? v[rounds / 2] : (v[rounds / 2 - 1] + v[rounds / 2]) / 2;
            printf("| %uP+%uC | %s | %.2f | %.2f | %.2f | %d/%d |\n", wl[w][0], wl[w][1],
                   qnames[k], v[0], med, v[rounds - 1], dnfs[w][k], rounds);
        }
    }
    if (failures)
        printf("\n%d run(s) FAILED verification\n", failures);
    else
        printf("\nall runs verified: every item consumed exactly once\n");
    return failures ? 1 : 0;
}
