/*
 * bench/workloads_weft.c — every workload written against weft's public
 * API (include/weft.h) and nothing else.
 *
 * Each divide-and-conquer workload starts on a worker of the pool under
 * test: the calling (external) thread opens a flow on that pool, spawns the
 * root task and sleeps in weft_flow_close. Inside tasks, flows are opened
 * with pool NULL (the calling worker's pool) and weft_join runs on the
 * calling worker's pool.
 *
 * A task's result goes into its own argument struct, which lives in its
 * parent's frame until the parent's flow closes (weft copies no user data).
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include "workloads.h"
#include "timing.h"

#include <weft.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- pools, one per worker count ------------------------------------------ */

#define BENCH_MAX_POOLS 16
static struct {
    unsigned   workers;
    weft_pool *pool;
} pools[BENCH_MAX_POOLS];
static int npools;

weft_pool *bench_weft_pool(unsigned workers, int *err)
{
    for (int i = 0; i < npools; i++)
        if (pools[i].workers == workers)
            return pools[i].pool;
    if (npools == BENCH_MAX_POOLS) {
        *err = ENOMEM;
        return NULL;
    }
    weft_pool_config cfg = {.workers = workers, .flags = 0, .name = "wb"};
    weft_pool *p = NULL;
    *err = weft_pool_create(&p, &cfg);
    if (*err)
        return NULL;
    pools[npools].workers = workers;
    pools[npools].pool = p;
    npools++;
    return p;
}

void bench_weft_pools_destroy(void)
{
    for (int i = 0; i < npools; i++)
        weft_pool_destroy(pools[i].pool);
    npools = 0;
}

/* Runs fn(arg) as a task on pool p and waits for it from this thread. */
static int run_root(weft_pool *p, weft_fn fn, void *arg)
{
    weft_flow f;
    int rc = weft_flow_open(&f, p);
    if (rc)
        return rc;
    int sp = weft_spawn(&f, fn, arg);
    rc = weft_flow_close(&f);
    return rc ? rc : sp;
}

/* ---- fib ------------------------------------------------------------------ */

typedef struct fib_arg {
    int      n;
    uint64_t r;
} fib_arg;

/* Spawn both halves into a flow, as the contract writes fork-join. */
static int fib_flow2_task(void *p)
{
    fib_arg *a = p;
    if (a->n < 2) {
        a->r = (uint64_t)a->n;
        return 0;
    }
    fib_arg x = {a->n - 1, 0}, y = {a->n - 2, 0};
    weft_flow f;
    int rc = weft_flow_open(&f, NULL);
    if (rc)
        return rc;
    int s1 = weft_spawn(&f, fib_flow2_task, &x);
    int s2 = weft_spawn(&f, fib_flow2_task, &y);
    rc = weft_flow_close(&f);
    a->r = x.r + y.r;
    return rc ? rc : s1 ? s1 : s2;
}

/* Spawn one half, run the other inline. */
static int fib_flow1_task(void *p)
{
    fib_arg *a = p;
    if (a->n < 2) {
        a->r = (uint64_t)a->n;
        return 0;
    }
    fib_arg x = {a->n - 1, 0}, y = {a->n - 2, 0};
    weft_flow f;
    int rc = weft_flow_open(&f, NULL);
    if (rc)
        return rc;
    int s1 = weft_spawn(&f, fib_flow1_task, &x);
    int s2 = fib_flow1_task(&y);
    rc = weft_flow_close(&f);
    a->r = x.r + y.r;
    return rc ? rc : s1 ? s1 : s2;
}

static int fib_join_task(void *p)
{
    fib_arg *a = p;
    if (a->n < 2) {
        a->r = (uint64_t)a->n;
        return 0;
    }
    fib_arg x = {a->n - 1, 0}, y = {a->n - 2, 0};
    int rc = weft_join(fib_join_task, &x, fib_join_task, &y);
    a->r = x.r + y.r;
    return rc;
}

static int fib_run(weft_pool *p, weft_fn fn, int n, uint64_t *out)
{
    fib_arg a = {n, 0};
    int rc = run_root(p, fn, &a);
    *out = a.r;
    return rc;
}

int fib_weft_flow2(weft_pool *p, int n, uint64_t *out)
{
    return fib_run(p, fib_flow2_task, n, out);
}

int fib_weft_flow1(weft_pool *p, int n, uint64_t *out)
{
    return fib_run(p, fib_flow1_task, n, out);
}

int fib_weft_join(weft_pool *p, int n, uint64_t *out)
{
    return fib_run(p, fib_join_task, n, out);
}

/* ---- nqueens ----------------------------------------------------------------- */

static int nq_task(void *p)
{
    nq_arg *a = p;
    if (a->row == a->n) {
        a->r = 1;
        return 0;
    }
    nq_arg kids[NQ_MAX];
    int k = nq_children(a, kids);
    a->r = 0;
    if (k == 0)
        return 0;
    weft_flow f;
    int rc = weft_flow_open(&f, NULL);
    if (rc)
        return rc;
    int sp = 0;
    for (int i = 0; i < k && !sp; i++)
        sp = weft_spawn(&f, nq_task, &kids[i]);
    rc = weft_flow_close(&f);
    for (int i = 0; i < k; i++)
        a->r += kids[i].r;
    return rc ? rc : sp;
}

int nqueens_weft(weft_pool *p, int n, uint64_t *out)
{
    if (n < 1 || n > NQ_MAX)
        return EINVAL;
    nq_arg a = {.n = n, .row = 0};
    int rc = run_root(p, nq_task, &a);
    *out = a.r;
    return rc;
}

/* ---- UTS: a task per node ------------------------------------------------------- */

typedef struct uts_arg {
    const uts_params *t;
    uts_node          node;
    uint64_t          count;
} uts_arg;

#define UTS_INLINE_KIDS 8 /* binomial nodes have m = 8; bigger counts malloc */

static int uts_task(void *p)
{
    uts_arg *a = p;
    int k = uts_num_children(a->t, &a->node);
    a->count = 1;
    if (k == 0)
        return 0;
    uts_arg local[UTS_INLINE_KIDS];
    uts_arg *kids = local;
    if (k > UTS_INLINE_KIDS) {
        kids = malloc((size_t)k * sizeof *kids);
        if (!kids)
            return ENOMEM;
    }
    weft_flow f;
    int rc = weft_flow_open(&f, NULL);
    if (rc == 0) {
        int sp = 0, spawned = 0;
        for (int i = 0; i < k && !sp; i++, spawned++) {
            kids[i].t = a->t;
            kids[i].count = 0;
            uts_child(&a->node, i, &kids[i].node);
            sp = weft_spawn(&f, uts_task, &kids[i]);
        }
        rc = weft_flow_close(&f);
        if (!rc)
            rc = sp;
        for (int i = 0; i < spawned; i++)
            a->count += kids[i].count;
    }
    if (kids != local)
        free(kids);
    return rc;
}

int uts_weft(weft_pool *p, const uts_params *t, uint64_t *out)
{
    uts_arg a = {.t = t};
    uts_root(t, &a.node);
    int rc = run_root(p, uts_task, &a);
    *out = a.count;
    return rc;
}

/* ---- skynet -------------------------------------------------------------------------- */

typedef struct sky_arg {
    uint64_t num, size, r;
} sky_arg;

static int sky_task(void *p)
{
    sky_arg *a = p;
    if (a->size == 1) {
        a->r = a->num;
        return 0;
    }
    sky_arg kids[SKYNET_DIV];
    uint64_t sub = a->size / SKYNET_DIV;
    weft_flow f;
    int rc = weft_flow_open(&f, NULL);
    if (rc)
        return rc;
    int sp = 0, spawned = 0;
    for (int i = 0; i < SKYNET_DIV && !sp; i++, spawned++) {
        kids[i] = (sky_arg){a->num + (uint64_t)i * sub, sub, 0};
        sp = weft_spawn(&f, sky_task, &kids[i]);
    }
    rc = weft_flow_close(&f);
    a->r = 0;
    for (int i = 0; i < spawned; i++)
        a->r += kids[i].r;
    return rc ? rc : sp;
}

int skynet_weft(weft_pool *p, uint64_t leaves, uint64_t *out)
{
    sky_arg a = {0, leaves, 0};
    int rc = run_root(p, sky_task, &a);
    *out = a.r;
    return rc;
}

/* ---- mergesort: weft_join on the two halves ---------------------------------------------- */

typedef struct ms_arg {
    int32_t *a, *tmp;
    size_t   n;
} ms_arg;

static int ms_task(void *p)
{
    ms_arg *m = p;
    if (m->n <= MSORT_CUTOFF) {
        msort_serial(m->a, m->tmp, m->n);
        return 0;
    }
    size_t mid = m->n / 2;
    ms_arg l = {m->a, m->tmp, mid};
    ms_arg r = {m->a + mid, m->tmp + mid, m->n - mid};
    int rc = weft_join(ms_task, &l, ms_task, &r);
    if (rc)
        return rc;
    msort_merge(m->a, m->tmp, mid, m->n);
    return 0;
}

int msort_weft(weft_pool *p, int32_t *a, int32_t *tmp, size_t n)
{
    ms_arg m = {a, tmp, n};
    return run_root(p, ms_task, &m);
}

/* ---- reduction: weft_for, one atomic add per piece ------------------------------------------ */

typedef struct red_arg {
    const uint64_t     *a;
    _Atomic(uint64_t)   total;
} red_arg;

static void red_piece(size_t begin, size_t end, void *p)
{
    red_arg *r = p;
    atomic_fetch_add_explicit(&r->total, sum_range(r->a, begin, end),
                              memory_order_relaxed);
}

int reduce_weft(weft_pool *p, const uint64_t *a, size_t n, uint64_t *out)
{
    red_arg r = {.a = a};
    atomic_init(&r.total, 0);
    int rc = weft_for(p, 0, n, 0, red_piece, &r);
    *out = atomic_load_explicit(&r.total, memory_order_relaxed);
    return rc;
}

/* ---- tiny tasks from external threads ----------------------------------------------------------- */

static int tiny_task(void *p)
{
    tiny_body(p);
    return 0;
}

typedef struct tiny_job {
    weft_pool *pool;
    uint64_t  *slots;
    size_t     n;
    int        rc;
} tiny_job;

static void *tiny_submit(void *p)
{
    tiny_job *j = p;
    weft_flow f;
    j->rc = weft_flow_open(&f, j->pool);
    if (j->rc)
        return NULL;
    int sp = 0;
    for (size_t i = 0; i < j->n && !sp; i++)
        sp = weft_spawn(&f, tiny_task, &j->slots[i]);
    j->rc = weft_flow_close(&f);
    if (!j->rc)
        j->rc = sp;
    return NULL;
}

int tiny_weft(weft_pool *p, uint64_t *slots, size_t n, unsigned threads)
{
    if (threads <= 1) {
        tiny_job j = {p, slots, n, 0};
        tiny_submit(&j);
        return j.rc;
    }
    if (threads > 64)
        return EINVAL;
    tiny_job jobs[64];
    pthread_t tid[64];
    size_t per = n / threads;
    unsigned started = 0;
    int rc = 0;
    for (unsigned t = 0; t < threads; t++) {
        size_t lo = t * per, hi = t + 1 == threads ? n : lo + per;
        jobs[t] = (tiny_job){p, slots + lo, hi - lo, 0};
        if (pthread_create(&tid[t], NULL, tiny_submit, &jobs[t]) != 0) {
            rc = EAGAIN;
            break;
        }
        started++;
    }
    for (unsigned t = 0; t < started; t++) {
        pthread_join(tid[t], NULL);
        if (!rc)
            rc = jobs[t].rc;
    }
    return rc;
}

/* ---- wake-up latency ----------------------------------------------------------------------------- */

static int wake_task(void *p)
{
    *(int64_t *)p = bench_now_ns();
    return 0;
}

int wake_weft(weft_pool *p, int samples, long gap_ns, double *lat_ns)
{
    for (int i = 0; i < samples; i++) {
        bench_sleep_ns(gap_ns);
        weft_flow f;
        int rc = weft_flow_open(&f, p);
        if (rc)
            return rc;
        int64_t started = 0;
        int64_t t0 = bench_now_ns();
        int sp = weft_spawn(&f, wake_task, &started);
        rc = weft_flow_close(&f);
        if (rc || sp)
            return rc ? rc : sp;
        lat_ns[i] = (double)(started - t0);
    }
    return 0;
}

/* ---- idle CPU -------------------------------------------------------------------------------------- */

double idle_weft(unsigned workers, double seconds)
{
    weft_pool_config cfg = {.workers = workers, .flags = 0, .name = "wbidle"};
    weft_pool *p;
    if (weft_pool_create(&p, &cfg))
        return -1.0;
    /* Work first, so that every worker has run and then gone idle. */
    int bad = 0;
    for (int i = 0; i < 20 && !bad; i++) {
        uint64_t r;
        bad = fib_weft_join(p, 22, &r) || r != fib_expect(22);
    }
    double cpu = bad ? -1.0 : bench_idle_cpu(seconds);
    weft_pool_destroy(p);
    return cpu;
}

/* ---- names for the timeline trace ------------------------------------------------------------------ */

/* A weft trace names a task after its function when the dynamic symbol
 * table has it (dladdr). The tasks above stay static, so that the code
 * measured is what it always was; these global aliases (weft_bench links
 * with -rdynamic) give them names in a trace (bench/run --trace). */
#define WB_TRACE_NAME(fn) extern __typeof__(fn) wb_##fn __attribute__((alias(#fn)))
WB_TRACE_NAME(fib_flow2_task);
WB_TRACE_NAME(fib_flow1_task);
WB_TRACE_NAME(fib_join_task);
WB_TRACE_NAME(nq_task);
WB_TRACE_NAME(uts_task);
WB_TRACE_NAME(sky_task);
WB_TRACE_NAME(ms_task);
WB_TRACE_NAME(tiny_task);
WB_TRACE_NAME(wake_task);
