/*
 * Fork-join correctness at 1, 2, 3 and 8 workers (8 oversubscribes 2 cores):
 *   - fib with a spawn per call and no cutoff, through flows and through
 *     weft_join (results exact; every task sees its own flow as current and
 *     a worker index of its pool);
 *   - nqueens 8..10 through flows (92, 352, 724);
 *   - a deep unbalanced tree (a binomial tree with a spine well over a
 *     thousand levels deep, like UTS T3) whose node count and depth must
 *     equal a serial traversal of the same tree, through flows and weft_join;
 *   - weft_for over an array: every index visited exactly once, no piece
 *     larger than an explicit grain, pieces inside the range, grain 0 and
 *     explicit grains, begin == end, ranges near SIZE_MAX, pool NULL from an
 *     external thread (default pool) and from a task (the task's pool).
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <stdbool.h>

static weft_pool *g_pool;
static unsigned g_nworkers;

static void check_on_worker(void)
{
    int idx = weft_worker_index();
    CHECK(idx >= 0 && (unsigned)idx < g_nworkers);
}

/* ---- fib through flows: every call but the root is a spawned task -------- */

typedef struct fib_arg {
    int        n;
    long       r;
    weft_flow *parent; /* the flow this task was spawned into */
} fib_arg;

static atomic_long g_fib_tasks;

static int fib_flow(void *p)
{
    fib_arg *a = p;
    CHECK(weft_current_flow() == a->parent);
    atomic_fetch_add_explicit(&g_fib_tasks, 1, memory_order_relaxed);
    if (a->n < 2) {
        a->r = a->n;
        return 0;
    }
    weft_flow f;
    fib_arg x = {a->n - 1, -1, &f}, y = {a->n - 2, -1, &f};
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    CHECK_EQ(weft_spawn(&f, fib_flow, &x), 0);
    CHECK_EQ(weft_spawn(&f, fib_flow, &y), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK(weft_current_flow() == a->parent);
    a->r = x.r + y.r;
    return 0;
}

/* fib through weft_join. */
static int fib_join(void *p)
{
    fib_arg *a = p;
    if (a->n < 2) {
        a->r = a->n;
        return 0;
    }
    fib_arg x = {a->n - 1, -1, NULL}, y = {a->n - 2, -1, NULL};
    CHECK_EQ(weft_join(fib_join, &x, fib_join, &y), 0);
    a->r = x.r + y.r;
    return 0;
}

static int fib_join_root(void *p)
{
    check_on_worker();
    return fib_join(p);
}

static long fib_serial(int n)
{
    long a = 0, b = 1;
    for (int i = 0; i < n; i++) {
        long t = a + b;
        a = b;
        b = t;
    }
    return a;
}

/* Runs fn(arg) as one task of a fresh flow on g_pool, from this (external)
 * thread, and checks the flow closes with 0. */
static void run_root(weft_fn fn, void *arg)
{
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    CHECK_EQ(weft_spawn(&f, fn, arg), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
}

static int fib_n(int base)
{
    /* The call count grows by 1.618x per level: scale n logarithmically. */
    int n = base;
    for (double s = test_scale(); s < 0.8; s *= 1.618)
        n--;
    for (double s = test_scale(); s > 1.3; s /= 1.618)
        n++;
    return n < 10 ? 10 : n > 34 ? 34 : n;
}

static void test_fib(void)
{
    STAGE("fib through flows");
    int n = fib_n(29);
    atomic_store(&g_fib_tasks, 0);
    weft_flow root;
    fib_arg a = {n, -1, &root};
    CHECK_EQ(weft_flow_open(&root, g_pool), 0);
    CHECK_EQ(weft_spawn(&root, fib_flow, &a), 0);
    CHECK_EQ(weft_flow_close(&root), 0);
    CHECK_EQ(a.r, fib_serial(n));
    /* A fib call tree with fib(n) leaves has 2 fib(n+1) - 1 calls. */
    CHECK_EQ(atomic_load(&g_fib_tasks), 2 * fib_serial(n + 1) - 1);

    STAGE("fib through weft_join");
    n = fib_n(32);
    fib_arg b = {n, -1, NULL};
    run_root(fib_join_root, &b);
    CHECK_EQ(b.r, fib_serial(n));
}

/* ---- nqueens through flows ----------------------------------------------- */

typedef struct q_arg {
    int     n, row;
    uint8_t cols[16];
    long    count;
} q_arg;

static bool q_ok(const q_arg *a, int c)
{
    for (int r = 0; r < a->row; r++) {
        int d = a->cols[r] - c;
        if (d == 0 || d == a->row - r || -d == a->row - r)
            return false;
    }
    return true;
}

static int queens_task(void *p)
{
    q_arg *a = p;
    check_on_worker();
    if (a->row == a->n) {
        a->count = 1;
        return 0;
    }
    q_arg kids[16];
    int k = 0;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    for (int c = 0; c < a->n; c++) {
        if (!q_ok(a, c))
            continue;
        kids[k] = *a;
        kids[k].cols[a->row] = (uint8_t)c;
        kids[k].row = a->row + 1;
        kids[k].count = -1;
        CHECK_EQ(weft_spawn(&f, queens_task, &kids[k]), 0);
        k++;
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    long sum = 0;
    for (int i = 0; i < k; i++) {
        CHECK(kids[i].count >= 0);
        sum += kids[i].count;
    }
    a->count = sum;
    return 0;
}

static void test_nqueens(void)
{
    static const long expect[] = {[8] = 92, [9] = 352, [10] = 724, [11] = 2680};
    int top = TEST_TSAN ? 9 : test_soak() ? 11 : 10;
    for (int n = 8; n <= top; n++) {
        STAGE("nqueens");
        q_arg a = {.n = n, .row = 0, .count = -1};
        run_root(queens_task, &a);
        CHECK_EQ(a.count, expect[n]);
    }
}

/* ---- a deep unbalanced tree --------------------------------------------- */
/* Binomial like UTS T3: a node has M children with probability Q (from a
 * hash of the node), else none; Q*M < 1, so the random subtrees are small
 * but unpredictable. A spine forces the depth: a spine node above
 * SPINE_DEPTH always has M children, the first of which is on the spine. */

enum { TREE_M = 4 };

static int    g_spine_depth;
static double g_tree_q;

typedef struct t_node {
    uint64_t state;
    int      depth;
    int      spine;
    long     count;
    int      maxdepth;
} t_node;

static int t_children(const t_node *n)
{
    if (n->spine && n->depth < g_spine_depth)
        return TREE_M;
    double u = (double)(mix64(n->state) >> 11) * (1.0 / 9007199254740992.0);
    return u < g_tree_q ? TREE_M : 0;
}

static t_node t_child(const t_node *n, int i)
{
    t_node c;
    c.state = mix64(n->state ^ (0xD1B54A32D192ED03ULL * (uint64_t)(i + 1)));
    c.depth = n->depth + 1;
    c.spine = n->spine && i == 0 && n->depth < g_spine_depth;
    c.count = -1;
    c.maxdepth = -1;
    return c;
}

static void t_serial(const t_node *n, long *count, int *maxdepth)
{
    /* Iterative: the spine is deeper than we want to recurse on main. */
    size_t cap = 4096, sp = 0;
    t_node *stack = malloc(cap * sizeof *stack);
    CHECK(stack != NULL);
    stack[sp++] = *n;
    *count = 0;
    *maxdepth = 0;
    while (sp) {
        t_node cur = stack[--sp];
        (*count)++;
        if (cur.depth > *maxdepth)
            *maxdepth = cur.depth;
        int k = t_children(&cur);
        for (int i = 0; i < k; i++) {
            if (sp == cap) {
                cap *= 2;
                stack = realloc(stack, cap * sizeof *stack);
                CHECK(stack != NULL);
            }
            stack[sp++] = t_child(&cur, i);
        }
    }
    free(stack);
}

static int tree_flow(void *p)
{
    t_node *n = p;
    int k = t_children(n);
    long count = 1;
    int md = n->depth;
    if (k) {
        t_node kids[TREE_M];
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, NULL), 0);
        for (int i = 0; i < k; i++) {
            kids[i] = t_child(n, i);
            CHECK_EQ(weft_spawn(&f, tree_flow, &kids[i]), 0);
        }
        CHECK_EQ(weft_flow_close(&f), 0);
        for (int i = 0; i < k; i++) {
            CHECK(kids[i].count > 0);
            count += kids[i].count;
            if (kids[i].maxdepth > md)
                md = kids[i].maxdepth;
        }
    }
    n->count = count;
    n->maxdepth = md;
    return 0;
}

/* The same tree through weft_join: a range of siblings split in halves. */
typedef struct t_range {
    const t_node *parent;
    int           lo, hi;
    long          count;
    int           maxdepth;
} t_range;

static int tree_join_node(t_node *n);

static int tree_join_range(void *p)
{
    t_range *r = p;
    if (r->hi - r->lo == 1) {
        t_node c = t_child(r->parent, r->lo);
        tree_join_node(&c);
        r->count = c.count;
        r->maxdepth = c.maxdepth;
        return 0;
    }
    int mid = (r->lo + r->hi) / 2;
    t_range a = {r->parent, r->lo, mid, -1, -1}, b = {r->parent, mid, r->hi, -1, -1};
    CHECK_EQ(weft_join(tree_join_range, &a, tree_join_range, &b), 0);
    r->count = a.count + b.count;
    r->maxdepth = a.maxdepth > b.maxdepth ? a.maxdepth : b.maxdepth;
    return 0;
}

static int tree_join_node(t_node *n)
{
    int k = t_children(n);
    n->count = 1;
    n->maxdepth = n->depth;
    if (k) {
        t_range r = {n, 0, k, -1, -1};
        tree_join_range(&r);
        n->count += r.count;
        if (r.maxdepth > n->maxdepth)
            n->maxdepth = r.maxdepth;
    }
    return 0;
}

static int tree_join_root(void *p)
{
    return tree_join_node(p);
}

static long g_tree_count;
static int  g_tree_depth;

static void tree_setup(void)
{
    g_spine_depth = 1200;
    g_tree_q = TEST_TSAN ? 0.2 : TEST_ASAN ? 0.22 : test_soak() ? 0.2475 : 0.245;
    t_node root = {0x243F6A8885A308D3ULL, 0, 1, -1, -1};
    t_serial(&root, &g_tree_count, &g_tree_depth);
    CHECK(g_tree_depth >= g_spine_depth);
    CHECK(g_tree_count > 3 * g_spine_depth);
}

static void test_tree(void)
{
    STAGE("unbalanced tree through flows");
    t_node root = {0x243F6A8885A308D3ULL, 0, 1, -1, -1};
    run_root(tree_flow, &root);
    CHECK_EQ(root.count, g_tree_count);
    CHECK_EQ(root.maxdepth, g_tree_depth);

    STAGE("unbalanced tree through weft_join");
    t_node root2 = {0x243F6A8885A308D3ULL, 0, 1, -1, -1};
    run_root(tree_join_root, &root2);
    CHECK_EQ(root2.count, g_tree_count);
    CHECK_EQ(root2.maxdepth, g_tree_depth);
}

/* ---- weft_for ------------------------------------------------------------ */

typedef struct for_ctx {
    size_t        begin, end, grain; /* grain 0: unchecked */
    atomic_uchar *hits;
    atomic_long   pieces;
    atomic_int    bad;
    const char   *prefix; /* expected thread-name prefix, or NULL */
} for_ctx;

static void for_fn(size_t b, size_t e, void *arg)
{
    for_ctx *c = arg;
    if (!(b < e && b >= c->begin && e <= c->end) || (c->grain && e - b > c->grain))
        atomic_store(&c->bad, 1);
    if (c->prefix) {
        char name[32] = "";
        pthread_getname_np(pthread_self(), name, sizeof name);
        if (strncmp(name, c->prefix, strlen(c->prefix)) != 0)
            atomic_store(&c->bad, 2);
    }
    for (size_t i = b; i < e; i++)
        atomic_fetch_add_explicit(&c->hits[i - c->begin], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->pieces, 1, memory_order_relaxed);
}

static void for_check(weft_pool *pool, size_t begin, size_t n, size_t grain, const char *prefix)
{
    for_ctx c = {begin, begin + n, grain, NULL, 0, 0, prefix};
    c.hits = calloc(n ? n : 1, 1);
    CHECK(c.hits != NULL);
    CHECK_EQ(weft_for(pool, begin, begin + n, grain, for_fn, &c), 0);
    CHECK_EQ(atomic_load(&c.bad), 0);
    for (size_t i = 0; i < n; i++)
        if (atomic_load_explicit(&c.hits[i], memory_order_relaxed) != 1) {
            fprintf(stderr, "weft_for(%zu, %zu, grain %zu): index %zu visited %d times\n",
                    begin, begin + n, grain, begin + i, (int)c.hits[i]);
            CHECK(0);
        }
    if (n == 0)
        CHECK_EQ(atomic_load(&c.pieces), 0);
    else if (grain)
        CHECK(atomic_load(&c.pieces) >= (long)((n + grain - 1) / grain));
    free(c.hits);
}

typedef struct for_task_arg {
    size_t n;
} for_task_arg;

static int for_from_task(void *p)
{
    for_task_arg *a = p;
    /* pool NULL inside a task: the task's own pool (named "fj"). */
    for_check(NULL, 0, a->n, 0, "fj-");
    for_check(NULL, 5, a->n, 3, "fj-");
    for_check(NULL, 7, 0, 0, NULL);
    for_check(g_pool, 0, a->n, 64, "fj-");
    return 0;
}

static void test_for(void)
{
    STAGE("weft_for");
    size_t n = (size_t)SCALED(100000);
    size_t grains[] = {0, 1, 2, 7, 64, 1000, n, n + 5};
    for (size_t i = 0; i < sizeof grains / sizeof grains[0]; i++) {
        size_t g = grains[i];
        size_t len = g == 1 ? n / 10 : n; /* grain 1: a task per index */
        for_check(g_pool, 0, len, g, "fj-");
        for_check(g_pool, 1000003, len, g, "fj-");
    }
    for_check(g_pool, 0, 1, 0, "fj-");
    for_check(g_pool, 0, 1, 1, "fj-");
    for_check(g_pool, 3, 0, 0, NULL);
    for_check(g_pool, 3, 0, 5, NULL);
    /* No overflow in the halving near the top of size_t. */
    for_check(g_pool, SIZE_MAX - 1000, 1000, 3, "fj-");
    for_check(g_pool, SIZE_MAX - 1000, 1000, 0, "fj-");

    STAGE("weft_for from a task, pool NULL");
    for_task_arg a = {n / 4};
    run_root(for_from_task, &a);
}

static void test_for_default_pool(void)
{
    STAGE("weft_for, pool NULL, external thread");
    /* Outside any worker pool NULL means the default pool; the external
     * caller sleeps, so every piece runs on a default-pool worker. */
    for_check(NULL, 0, (size_t)SCALED(50000), 0, "weft-");
    for_check(NULL, 11, (size_t)SCALED(50000), 100, "weft-");
    for_check(NULL, 11, 0, 100, NULL);
}

int main(void)
{
    watchdog_start(120);
    unsetenv("WEFT_WORKERS");
    tree_setup();
    printf("tree: %ld nodes, depth %d\n", g_tree_count, g_tree_depth);
    static const unsigned counts[] = {1, 2, 3, 8};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        g_nworkers = counts[i];
        weft_pool_config cfg = {.workers = g_nworkers, .name = "fj"};
        CHECK_EQ(weft_pool_create(&g_pool, &cfg), 0);
        CHECK_EQ(weft_pool_workers(g_pool), g_nworkers);
        double t0 = now_s();
        test_fib();
        test_nqueens();
        test_tree();
        test_for();
        STAGE("destroy");
        CHECK_EQ(weft_pool_destroy(g_pool), 0);
        printf("%u workers: ok (%.2f s)\n", g_nworkers, now_s() - t0);
    }
    test_for_default_pool();
    printf("sched_forkjoin: ok\n");
    return 0;
}
