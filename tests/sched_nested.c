/*
 * Nested use:
 *   - flows opened and closed inside tasks at any depth, on the task's own
 *     pool (NULL and explicit), on the default pool, mixed with weft_join;
 *   - a task that creates its own pool, runs work on it and destroys it
 *     (several at once, and one level deeper inside such a pool);
 *   - tasks on pool A waiting on flows of pool B while B's tasks wait on
 *     flows of A, both directions at once, with 1 and 2 workers per pool
 *     (each task checks by its thread name that it runs on the right pool);
 *   - tasks that spawn into their own flow (weft_current_flow()) while it is
 *     being closed, for a flow opened by an external thread and for a flow
 *     opened by a task: the close returns only after all of them ran;
 *   - a task running nested below a younger flow of its worker (taken by
 *     that worker while it waits) spawns into that flow: its close still
 *     runs the task and returns;
 *   - a chain of 1,500 nested flows (each task opens a flow, spawns the next,
 *     closes) at 1, 2, 3 and 8 workers, also with stealable siblings at each
 *     level, and the same chain through weft_join.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <stdbool.h>

static bool name_has_prefix(const char *prefix)
{
    char name[32] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

static void run_root(weft_pool *pool, weft_fn fn, void *arg)
{
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    CHECK_EQ(weft_spawn(&f, fn, arg), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
}

/* ---- flows at any depth -------------------------------------------------- */

static weft_pool *g_pool;
static atomic_long g_leaves;

typedef struct lvl_arg {
    int        depth, max;
    weft_flow *parent;
} lvl_arg;

static int level_task(void *p);

static int level_join(void *p)
{
    return level_task(p);
}

static int level_task(void *p)
{
    lvl_arg *a = p;
    weft_flow *mine = weft_current_flow();
    if (a->parent)
        CHECK(mine == a->parent);
    if (a->depth == a->max) {
        atomic_fetch_add_explicit(&g_leaves, 1, memory_order_relaxed);
        return 0;
    }
    weft_flow f;
    /* Vary where the nested flow lives: the task's pool by NULL, by name,
     * the default pool (another pool: a cross-pool wait), or no flow at all
     * but a weft_join. */
    int how = a->depth % 4;
    if (how == 3) {
        lvl_arg x = {a->depth + 1, a->max, NULL}, y = {a->depth + 1, a->max, NULL};
        CHECK_EQ(weft_join(level_join, &x, level_join, &y), 0);
        CHECK(weft_current_flow() == mine);
        return 0;
    }
    weft_pool *pool = how == 0 ? NULL : how == 1 ? g_pool : weft_default_pool();
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    lvl_arg kids[3];
    for (int i = 0; i < 3; i++) {
        kids[i] = (lvl_arg){a->depth + 1, a->max, &f};
        CHECK_EQ(weft_spawn(&f, level_task, &kids[i]), 0);
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK(weft_current_flow() == mine);
    return 0;
}

static long level_leaves(int max)
{
    long n = 1;
    for (int d = 0; d < max; d++)
        n *= d % 4 == 3 ? 2 : 3;
    return n;
}

static void test_depth(void)
{
    STAGE("flows at any depth");
    int max = TEST_SANITIZED ? 8 : 10;
    atomic_store(&g_leaves, 0);
    lvl_arg a = {0, max, NULL};
    run_root(g_pool, level_task, &a);
    CHECK_EQ(atomic_load(&g_leaves), level_leaves(max));
}

/* ---- a task that creates its own pool ------------------------------------ */

static atomic_long g_inner_runs;
static atomic_int g_inner_bad;

static int inner_leaf(void *p)
{
    (void)p;
    if (!name_has_prefix("inner-"))
        atomic_store(&g_inner_bad, 1);
    atomic_fetch_add_explicit(&g_inner_runs, 1, memory_order_relaxed);
    return 0;
}

typedef struct own_arg {
    unsigned workers;
    int      deeper; /* also create a pool from inside the inner pool */
    long     tasks;
} own_arg;

static int own_pool_task(void *p)
{
    own_arg *a = p;
    int my_index = weft_worker_index();
    weft_flow *my_flow = weft_current_flow();
    weft_pool *q = NULL;
    weft_pool_config cfg = {.workers = a->workers, .name = "inner"};
    CHECK_EQ(weft_pool_create(&q, &cfg), 0);
    CHECK_EQ(weft_pool_workers(q), a->workers);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, q), 0);
    for (long i = 0; i < a->tasks; i++)
        CHECK_EQ(weft_spawn(&f, inner_leaf, NULL), 0);
    own_arg deeper = {1, 0, a->tasks / 4};
    if (a->deeper)
        CHECK_EQ(weft_spawn(&f, own_pool_task, &deeper), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(weft_pool_destroy(q), 0);
    /* Back on the worker we started on, in our own flow. */
    CHECK_EQ(weft_worker_index(), my_index);
    CHECK(weft_current_flow() == my_flow);
    return 0;
}

static void test_own_pool(void)
{
    STAGE("task creates its own pool");
    long tasks = SCALED(2000);
    int rounds = (int)SCALED(10);
    for (int r = 0; r < rounds; r++) {
        atomic_store(&g_inner_runs, 0);
        own_arg args[4];
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, g_pool), 0);
        for (int i = 0; i < 4; i++) {
            args[i] = (own_arg){1 + (unsigned)((r + i) % 3), i == 0, tasks};
            CHECK_EQ(weft_spawn(&f, own_pool_task, &args[i]), 0);
        }
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK_EQ(atomic_load(&g_inner_runs), 4 * tasks + tasks / 4);
        CHECK_EQ(atomic_load(&g_inner_bad), 0);
    }
}

/* ---- pool A waits on pool B while B waits on A --------------------------- */

static weft_pool *g_pa, *g_pb;
static atomic_long g_cross_leaves;
static atomic_int g_cross_bad;

typedef struct cross_arg {
    int level, max;
    int on_a; /* the pool this task must run on */
} cross_arg;

static int cross_task(void *p)
{
    cross_arg *a = p;
    if (!name_has_prefix(a->on_a ? "pa-" : "pb-"))
        atomic_store(&g_cross_bad, 1);
    if (a->level == a->max) {
        atomic_fetch_add_explicit(&g_cross_leaves, 1, memory_order_relaxed);
        return 0;
    }
    int idx = weft_worker_index();
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, a->on_a ? g_pb : g_pa), 0);
    cross_arg kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = (cross_arg){a->level + 1, a->max, !a->on_a};
        CHECK_EQ(weft_spawn(&f, cross_task, &kids[i]), 0);
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(weft_worker_index(), idx);
    if (!name_has_prefix(a->on_a ? "pa-" : "pb-"))
        atomic_store(&g_cross_bad, 2);
    return 0;
}

typedef struct cross_driver {
    int  start_on_a;
    int  roots, max;
} cross_driver;

static void *cross_thread(void *p)
{
    cross_driver *d = p;
    cross_arg *args = calloc((size_t)d->roots, sizeof *args);
    CHECK(args != NULL);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, d->start_on_a ? g_pa : g_pb), 0);
    for (int i = 0; i < d->roots; i++) {
        args[i] = (cross_arg){0, d->max, d->start_on_a};
        CHECK_EQ(weft_spawn(&f, cross_task, &args[i]), 0);
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    free(args);
    return NULL;
}

static void test_cross_pools(void)
{
    for (unsigned w = 1; w <= 2; w++) {
        STAGE("pool A waits on B while B waits on A");
        weft_pool_config ca = {.workers = w, .name = "pa"}, cb = {.workers = w, .name = "pb"};
        CHECK_EQ(weft_pool_create(&g_pa, &ca), 0);
        CHECK_EQ(weft_pool_create(&g_pb, &cb), 0);
        int rounds = (int)SCALED(20);
        for (int r = 0; r < rounds; r++) {
            atomic_store(&g_cross_leaves, 0);
            cross_driver da = {1, 16, 5}, db = {0, 16, 5};
            pthread_t ta = start_thread(cross_thread, &da);
            pthread_t tb = start_thread(cross_thread, &db);
            join_thread(ta);
            join_thread(tb);
            CHECK_EQ(atomic_load(&g_cross_leaves), 2L * 16 * (1 << 5));
            CHECK_EQ(atomic_load(&g_cross_bad), 0);
        }
        CHECK_EQ(weft_pool_destroy(g_pa), 0);
        CHECK_EQ(weft_pool_destroy(g_pb), 0);
    }
}

/* ---- spawning into the flow being closed --------------------------------- */

typedef struct grow_arg {
    int depth;
} grow_arg;

static atomic_long g_grown;
static atomic_long g_slot;
static grow_arg *g_slots;
static long g_nslots;
static atomic_int g_closing;
static atomic_long g_spawned_while_closing;

static int grow_task(void *p)
{
    grow_arg *a = p;
    atomic_fetch_add_explicit(&g_grown, 1, memory_order_relaxed);
    if (a->depth == 0)
        return 0;
    weft_flow *f = weft_current_flow();
    CHECK(f != NULL);
    if (a->depth % 3 == 0)
        sleep_us(a->depth * 20); /* let the closer reach its wait */
    for (int i = 0; i < 2; i++) {
        long s = atomic_fetch_add_explicit(&g_slot, 1, memory_order_relaxed);
        CHECK(s < g_nslots);
        g_slots[s].depth = a->depth - 1;
        CHECK_EQ(weft_spawn(f, grow_task, &g_slots[s]), 0);
        if (atomic_load_explicit(&g_closing, memory_order_relaxed))
            atomic_fetch_add_explicit(&g_spawned_while_closing, 1, memory_order_relaxed);
    }
    return 0;
}

/* A root waits until its flow's closer has announced the close, so that its
 * whole subtree is spawned while the close is in progress. */
static int grow_root(void *p)
{
    CHECK(wait_flag(&g_closing, 20));
    sleep_us(2000);
    return grow_task(p);
}

static void grow_setup(int roots, int depth)
{
    g_nslots = (long)roots << (depth + 1);
    g_slots = calloc((size_t)g_nslots, sizeof *g_slots);
    CHECK(g_slots != NULL);
    atomic_store(&g_slot, 0);
    atomic_store(&g_grown, 0);
    atomic_store(&g_closing, 0);
    atomic_store(&g_spawned_while_closing, 0);
}

typedef struct grow_outer {
    int roots, depth;
} grow_outer;

/* A task opens the flow (its worker owns it), the roots grow it. */
static int grow_in_task(void *p)
{
    grow_outer *o = p;
    grow_arg *roots = calloc((size_t)o->roots, sizeof *roots);
    CHECK(roots != NULL);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    for (int i = 0; i < o->roots; i++) {
        roots[i].depth = o->depth;
        CHECK_EQ(weft_spawn(&f, grow_root, &roots[i]), 0);
    }
    atomic_store_explicit(&g_closing, 1, memory_order_release);
    CHECK_EQ(weft_flow_close(&f), 0);
    /* Everything was spawned into f, transitively, and all of it ran. */
    CHECK_EQ(atomic_load(&g_grown), (long)o->roots * ((2L << o->depth) - 1));
    free(roots);
    return 0;
}

static void test_spawn_while_closing(void)
{
    int depth = TEST_SANITIZED ? 8 : 11, roots = 4;
    int rounds = (int)SCALED(5);
    for (int r = 0; r < rounds; r++) {
        STAGE("spawn into own flow while an external thread closes it");
        grow_setup(roots, depth);
        grow_arg rootargs[4];
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, g_pool), 0);
        for (int i = 0; i < roots; i++) {
            rootargs[i].depth = depth;
            CHECK_EQ(weft_spawn(&f, grow_root, &rootargs[i]), 0);
        }
        atomic_store_explicit(&g_closing, 1, memory_order_release);
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK_EQ(atomic_load(&g_grown), (long)roots * ((2L << depth) - 1));
        /* Every spawn happened after the closer announced itself. */
        CHECK_EQ(atomic_load(&g_spawned_while_closing), atomic_load(&g_slot));
        free(g_slots);

        STAGE("spawn into own flow while a task closes it");
        grow_setup(roots, depth);
        grow_outer o = {roots, depth};
        run_root(g_pool, grow_in_task, &o);
        CHECK_EQ(atomic_load(&g_grown), (long)roots * ((2L << depth) - 1));
        free(g_slots);
    }
}

/* ---- spawning into a younger flow from below it -------------------------- */
/* On a 1-worker pool: R opens G0 and spawns T1' then T1. T1 runs first
 * (taken back by R's close), opens G1 and waits on a flow of another pool;
 * meanwhile its worker runs T1' (an older item, below G1 on the worker's
 * deque), which spawns S into G1, still open. T1's close of G1 must run S
 * and return. */

static weft_pool *g_yp, *g_yq;
static weft_flow *g_g1;
static atomic_int g_s_spawned, g_z_done, g_s_ran, g_t1_started;

static int y_s(void *p)
{
    (void)p;
    atomic_fetch_add(&g_s_ran, 1);
    return 0;
}

static int y_z(void *p)
{
    (void)p;
    CHECK(wait_flag(&g_s_spawned, 30));
    atomic_store(&g_z_done, 1);
    return 0;
}

static int y_t1prime(void *p)
{
    (void)p;
    CHECK_EQ(atomic_load(&g_t1_started), 1);
    CHECK(g_g1 != NULL);
    CHECK_EQ(weft_spawn(g_g1, y_s, NULL), 0);
    atomic_store(&g_s_spawned, 1);
    /* Return only once the flow T1 waits on is done, so that T1's wait
     * ends right after us, with S still queued. */
    CHECK(wait_flag(&g_z_done, 30));
    sleep_us(2000);
    return 0;
}

static int y_t1(void *p)
{
    (void)p;
    atomic_store(&g_t1_started, 1);
    weft_flow g1, h;
    CHECK_EQ(weft_flow_open(&g1, NULL), 0);
    g_g1 = &g1;
    CHECK_EQ(weft_flow_open(&h, g_yq), 0);
    CHECK_EQ(weft_spawn(&h, y_z, NULL), 0);
    CHECK_EQ(weft_flow_close(&h), 0);
    CHECK_EQ(weft_flow_close(&g1), 0);
    g_g1 = NULL;
    CHECK_EQ(atomic_load(&g_s_ran), 1);
    return 0;
}

static int y_root(void *p)
{
    (void)p;
    weft_flow g0;
    CHECK_EQ(weft_flow_open(&g0, NULL), 0);
    CHECK_EQ(weft_spawn(&g0, y_t1prime, NULL), 0);
    CHECK_EQ(weft_spawn(&g0, y_t1, NULL), 0);
    CHECK_EQ(weft_flow_close(&g0), 0);
    return 0;
}

static void test_spawn_into_younger_flow(void)
{
    STAGE("spawn into a younger flow of the same worker from below it");
    weft_pool_config cp = {.workers = 1, .name = "yp"}, cq = {.workers = 1, .name = "yq"};
    CHECK_EQ(weft_pool_create(&g_yp, &cp), 0);
    CHECK_EQ(weft_pool_create(&g_yq, &cq), 0);
    for (int r = 0; r < 5; r++) {
        atomic_store(&g_s_spawned, 0);
        atomic_store(&g_z_done, 0);
        atomic_store(&g_s_ran, 0);
        atomic_store(&g_t1_started, 0);
        run_root(g_yp, y_root, NULL);
        CHECK_EQ(atomic_load(&g_s_ran), 1);
    }
    CHECK_EQ(weft_pool_destroy(g_yp), 0);
    CHECK_EQ(weft_pool_destroy(g_yq), 0);
}

/* ---- a chain of nested flows -------------------------------------------- */

typedef struct chain_arg {
    int k, n;
    int with_sibling;
} chain_arg;

static atomic_int g_chain_max;
static atomic_long g_chain_runs, g_sibling_runs;

static int sibling_task(void *p)
{
    (void)p;
    volatile int x = 0; /* a little work the compiler keeps */
    for (int i = 0; i < 200; i++)
        x += i;
    (void)x;
    atomic_fetch_add_explicit(&g_sibling_runs, 1, memory_order_relaxed);
    return 0;
}

static int chain_task(void *p)
{
    chain_arg *a = p;
    atomic_fetch_add_explicit(&g_chain_runs, 1, memory_order_relaxed);
    int m = atomic_load_explicit(&g_chain_max, memory_order_relaxed);
    while (a->k > m && !atomic_compare_exchange_weak(&g_chain_max, &m, a->k)) {
    }
    if (a->k == a->n)
        return 0;
    chain_arg next = {a->k + 1, a->n, a->with_sibling};
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    if (a->with_sibling)
        CHECK_EQ(weft_spawn(&f, sibling_task, NULL), 0);
    CHECK_EQ(weft_spawn(&f, chain_task, &next), 0);
    if (a->with_sibling)
        CHECK_EQ(weft_spawn(&f, sibling_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    return 0;
}

static int chain_join(void *p)
{
    chain_arg *a = p;
    atomic_fetch_add_explicit(&g_chain_runs, 1, memory_order_relaxed);
    if (a->k == a->n)
        return 0;
    chain_arg next = {a->k + 1, a->n, 0};
    return weft_join(sibling_task, NULL, chain_join, &next);
}

static void test_chain(void)
{
    static const unsigned counts[] = {1, 2, 3, 8};
    int n = test_soak() ? 5000 : 1500;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        weft_pool *pool;
        weft_pool_config cfg = {.workers = counts[i], .name = "chain"};
        CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
        for (int sib = 0; sib <= 1; sib++) {
            STAGE(sib ? "chain of nested flows with siblings" : "chain of nested flows");
            atomic_store(&g_chain_max, 0);
            atomic_store(&g_chain_runs, 0);
            atomic_store(&g_sibling_runs, 0);
            chain_arg a = {1, n, sib};
            run_root(pool, chain_task, &a);
            CHECK_EQ(atomic_load(&g_chain_max), n);
            CHECK_EQ(atomic_load(&g_chain_runs), n);
            CHECK_EQ(atomic_load(&g_sibling_runs), sib ? 2L * (n - 1) : 0);
        }
        STAGE("chain of nested weft_join");
        atomic_store(&g_chain_runs, 0);
        atomic_store(&g_sibling_runs, 0);
        chain_arg a = {1, n, 0};
        run_root(pool, chain_join, &a);
        CHECK_EQ(atomic_load(&g_chain_runs), n);
        CHECK_EQ(atomic_load(&g_sibling_runs), n - 1);
        CHECK_EQ(weft_pool_destroy(pool), 0);
    }
}

int main(void)
{
    watchdog_start(120);
    unsetenv("WEFT_WORKERS");
    weft_pool_config cfg = {.workers = 3, .name = "nest"};
    CHECK_EQ(weft_pool_create(&g_pool, &cfg), 0);
    double t0 = now_s();
    test_depth();
    printf("depth: ok (%.2f s)\n", now_s() - t0);
    t0 = now_s();
    test_own_pool();
    printf("own pool: ok (%.2f s)\n", now_s() - t0);
    t0 = now_s();
    test_cross_pools();
    printf("cross pools: ok (%.2f s)\n", now_s() - t0);
    t0 = now_s();
    test_spawn_while_closing();
    printf("spawn while closing: ok (%.2f s)\n", now_s() - t0);
    test_spawn_into_younger_flow();
    t0 = now_s();
    test_chain();
    printf("chain: ok (%.2f s)\n", now_s() - t0);
    STAGE("destroy");
    CHECK_EQ(weft_pool_destroy(g_pool), 0);
    printf("sched_nested: ok\n");
    return 0;
}
