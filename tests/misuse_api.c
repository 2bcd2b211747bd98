/*
 * Misuse gets error codes, never a crash or a hang:
 *   - NULL arguments to every function that takes a pointer;
 *   - flows never opened (zeroed and garbage memory), closed twice, spawned
 *     into after close, closed from inside by one of their own tasks or a
 *     task below one, also one its owner runs while it helps during
 *     another wait, or by a sibling task the opener's wait on another flow
 *     runs (EINVAL, also for an async close; the flow stays open for
 *     spawns and its real close works);
 *   - weft_join with a NULL half runs neither half; weft_for with fn NULL or
 *     begin > end calls nothing; begin == end returns 0 at once;
 *   - destroy with a flow open (EBUSY; the pool keeps working; then close
 *     and destroy succeed), from the pool's own worker (EDEADLK), of the
 *     default pool (EINVAL; it keeps working), of NULL; a refused destroy
 *     has no side effect (the workers keep running, concurrent destroys
 *     all say EBUSY, concurrent flow opens succeed);
 *   - absurd worker counts (WEFT_MAX_WORKERS + 1, UINT_MAX), unknown flags,
 *     and an invalid $WEFT_WORKERS with workers = 0 (EINVAL); a valid
 *     $WEFT_WORKERS sets the count; WEFT_MAX_WORKERS itself is accepted;
 *   - with an invalid $WEFT_WORKERS before the default pool exists, the
 *     calls that would create it return EINVAL and run nothing; once the
 *     variable is fixed, the next call creates it.
 * Each call is made both from an external thread and, where it differs,
 * from inside a task.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>

static atomic_int g_ran;

static int mark_task(void *p)
{
    (void)p;
    atomic_fetch_add(&g_ran, 1);
    return 0;
}

static void mark_range(size_t b, size_t e, void *p)
{
    (void)b;
    (void)e;
    (void)p;
    atomic_fetch_add(&g_ran, 1);
}

/* ---- NULL and bad arguments (run externally and inside a task) ----------- */

static int null_args(void *p)
{
    weft_pool *pool = p;
    weft_flow f, zero, junk;
    memset(&zero, 0, sizeof zero);
    memset(&junk, 0xAB, sizeof junk);
    atomic_store(&g_ran, 0);

    CHECK_EQ(weft_pool_create(NULL, NULL), EINVAL);
    weft_pool_config cfg = {.workers = 1};
    CHECK_EQ(weft_pool_create(NULL, &cfg), EINVAL);
    CHECK_EQ(weft_pool_destroy(NULL), EINVAL);
    CHECK_EQ(weft_pool_workers(NULL), 0);

    CHECK_EQ(weft_flow_open(NULL, pool), EINVAL);
    CHECK_EQ(weft_flow_open(NULL, NULL), EINVAL);
    CHECK_EQ(weft_spawn(NULL, mark_task, NULL), EINVAL);
    CHECK_EQ(weft_flow_close(NULL), EINVAL);
    weft_flow_cancel(NULL);
    CHECK(!weft_flow_canceled(NULL));

    /* Never opened. */
    CHECK_EQ(weft_spawn(&zero, mark_task, NULL), EINVAL);
    CHECK_EQ(weft_flow_close(&zero), EINVAL);
    weft_flow_cancel(&zero);
    CHECK_EQ(weft_spawn(&junk, mark_task, NULL), EINVAL);
    CHECK_EQ(weft_flow_close(&junk), EINVAL);
    weft_flow_cancel(&junk);

    /* fn NULL into an open flow; the flow is unharmed. */
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    CHECK_EQ(weft_spawn(&f, NULL, NULL), EINVAL);
    CHECK_EQ(weft_spawn(&f, mark_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_ran), 1);

    /* Closed twice; spawned into after close; canceled after close. */
    CHECK_EQ(weft_flow_close(&f), EINVAL);
    CHECK_EQ(weft_spawn(&f, mark_task, NULL), EINVAL);
    weft_flow_cancel(&f);
    CHECK_EQ(weft_flow_close(&f), EINVAL);
    CHECK_EQ(atomic_load(&g_ran), 1);
    /* A failed flow, closed twice: the second close is EINVAL, not the
     * error again. */
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    weft_flow_cancel(&f);
    CHECK_EQ(weft_flow_close(&f), ECANCELED);
    CHECK_EQ(weft_flow_close(&f), EINVAL);
    /* The memory is reusable after all that. */
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    CHECK_EQ(weft_spawn(&f, mark_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_ran), 2);

    /* weft_join: a NULL half is EINVAL and nothing runs. */
    CHECK_EQ(weft_join(NULL, NULL, mark_task, NULL), EINVAL);
    CHECK_EQ(weft_join(mark_task, NULL, NULL, NULL), EINVAL);
    CHECK_EQ(weft_join(NULL, NULL, NULL, NULL), EINVAL);
    CHECK_EQ(atomic_load(&g_ran), 2);

    /* weft_for. */
    CHECK_EQ(weft_for(pool, 0, 10, 0, NULL, NULL), EINVAL);
    CHECK_EQ(weft_for(NULL, 0, 10, 1, NULL, NULL), EINVAL);
    CHECK_EQ(weft_for(pool, 10, 9, 0, mark_range, NULL), EINVAL);
    CHECK_EQ(weft_for(pool, SIZE_MAX, 0, 0, mark_range, NULL), EINVAL);
    CHECK_EQ(weft_for(NULL, 1, 0, 0, mark_range, NULL), EINVAL);
    CHECK_EQ(weft_for(pool, 5, 5, 0, mark_range, NULL), 0);
    CHECK_EQ(weft_for(NULL, 5, 5, 3, mark_range, NULL), 0);
    CHECK_EQ(atomic_load(&g_ran), 2);
    return 0;
}

static void test_null_args(weft_pool *pool)
{
    STAGE("NULL arguments, external thread");
    CHECK_EQ(weft_worker_index(), -1);
    CHECK(weft_current_flow() == NULL);
    null_args(pool);
    null_args(NULL);
    STAGE("NULL arguments, inside a task");
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    CHECK_EQ(weft_spawn(&f, null_args, pool), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    CHECK_EQ(weft_spawn(&f, null_args, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
}

/* ---- destroy misuse ------------------------------------------------------ */

static int destroy_own_pool(void *p)
{
    weft_pool *pool = p;
    CHECK_EQ(weft_pool_destroy(pool), EDEADLK);
    /* Also from a nested flow's task, and while a flow of ours is open. */
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    CHECK_EQ(weft_pool_destroy(pool), EDEADLK);
    CHECK_EQ(weft_flow_close(&f), 0);
    return 0;
}

static int destroy_default_from_task(void *p)
{
    (void)p;
    CHECK_EQ(weft_pool_destroy(weft_default_pool()), EINVAL);
    return 0;
}

typedef struct other_arg {
    weft_pool *victim;
    int        expect;
} other_arg;

static int destroy_other_pool(void *p)
{
    other_arg *a = p;
    CHECK_EQ(weft_pool_destroy(a->victim), a->expect);
    return 0;
}

static int open_flow_on(void *p)
{
    other_arg *a = p;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, a->victim), 0);
    CHECK_EQ(weft_pool_destroy(a->victim), EBUSY);
    CHECK_EQ(weft_spawn(&f, mark_task, NULL), 0);
    CHECK_EQ(weft_pool_destroy(a->victim), EBUSY);
    CHECK_EQ(weft_flow_close(&f), 0);
    return 0;
}

static void test_destroy_misuse(void)
{
    STAGE("destroy with a flow open");
    weft_pool *p;
    weft_pool_config cfg = {.workers = 2, .name = "mis"};
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    weft_flow f1, f2;
    CHECK_EQ(weft_flow_open(&f1, p), 0);
    CHECK_EQ(weft_pool_destroy(p), EBUSY);
    CHECK_EQ(weft_flow_open(&f2, p), 0);
    CHECK_EQ(weft_pool_destroy(p), EBUSY);
    /* The pool keeps working after EBUSY. */
    atomic_store(&g_ran, 0);
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(weft_spawn(&f1, mark_task, NULL), 0);
        CHECK_EQ(weft_spawn(&f2, mark_task, NULL), 0);
    }
    CHECK_EQ(weft_flow_close(&f1), 0);
    CHECK_EQ(weft_pool_destroy(p), EBUSY);
    CHECK_EQ(weft_flow_close(&f2), 0);
    CHECK_EQ(atomic_load(&g_ran), 200);
    /* No flow open, but a flow used to be: fine now. */
    CHECK_EQ(weft_pool_destroy(p), 0);

    STAGE("destroy with a flow open by a task of another pool");
    weft_pool *q;
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    CHECK_EQ(weft_pool_create(&q, &cfg), 0);
    other_arg oa = {q, 0};
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, open_flow_on, &oa), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    /* A task of p may destroy q (not its own pool). */
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, destroy_other_pool, &oa), 0);
    CHECK_EQ(weft_flow_close(&f), 0);

    STAGE("destroy from the pool's own worker");
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(weft_flow_open(&f, p), 0);
        CHECK_EQ(weft_spawn(&f, destroy_own_pool, p), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
    }
    /* And the pool still works. */
    atomic_store(&g_ran, 0);
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, mark_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_ran), 1);

    STAGE("destroy the default pool");
    weft_pool *def = weft_default_pool();
    CHECK(def != NULL);
    CHECK_EQ(weft_pool_destroy(def), EINVAL);
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, destroy_default_from_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK(weft_default_pool() == def);
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    CHECK_EQ(weft_spawn(&f, mark_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_ran), 2);

    CHECK_EQ(weft_pool_destroy(p), 0);
}

/* ---- pool configuration -------------------------------------------------- */

static void expect_create(const weft_pool_config *cfg, int err)
{
    weft_pool *p = NULL;
    int got = weft_pool_create(&p, cfg);
    if (got != err)
        fprintf(stderr, "weft_pool_create(workers %u, flags %#x) with WEFT_WORKERS=%s: %d, want %d\n",
                cfg ? cfg->workers : 0, cfg ? cfg->flags : 0,
                getenv("WEFT_WORKERS") ? getenv("WEFT_WORKERS") : "(unset)", got, err);
    CHECK_EQ(got, err);
    if (!err) {
        CHECK(p != NULL);
        CHECK_EQ(weft_pool_destroy(p), 0);
    }
}

static void test_config(void)
{
    STAGE("absurd worker counts and flags");
    weft_pool_config cfg = {0};
    cfg.workers = WEFT_MAX_WORKERS + 1;
    expect_create(&cfg, EINVAL);
    cfg.workers = UINT_MAX;
    expect_create(&cfg, EINVAL);
    cfg.workers = UINT_MAX / 2 + 1;
    expect_create(&cfg, EINVAL);
    cfg.workers = 1;
    cfg.flags = 0x2;
    expect_create(&cfg, EINVAL);
    cfg.flags = 0x80000000u;
    expect_create(&cfg, EINVAL);
    cfg.flags = ~0u;
    expect_create(&cfg, EINVAL);
    cfg.flags = WEFT_POOL_NO_CTX;
    expect_create(&cfg, 0);

    STAGE("the largest pool allowed");
    /* ThreadSanitizer takes ~30 s for 512 threads on 2 cores: a smaller
     * "large" pool there; the bound itself is checked by the other builds. */
    unsigned most = TEST_TSAN ? 64 : WEFT_MAX_WORKERS;
    weft_pool *p;
    weft_pool_config big = {.workers = most, .name = "big"};
    CHECK_EQ(weft_pool_create(&p, &big), 0);
    CHECK_EQ(weft_pool_workers(p), most);
    weft_flow f;
    atomic_store(&g_ran, 0);
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(weft_spawn(&f, mark_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_ran), 1000);
    CHECK_EQ(weft_pool_destroy(p), 0);

    STAGE("$WEFT_WORKERS");
    static const char *bad[] = {"abc", "0",  "-3", "99999", "513", "3x", "1.5",
                                "0x3", "-0", " 3", "+2",    "2 ",  "18446744073709551617"};
    weft_pool_config zero = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(setenv("WEFT_WORKERS", bad[i], 1), 0);
        expect_create(&zero, EINVAL);
        expect_create(NULL, EINVAL);
    }
    CHECK_EQ(setenv("WEFT_WORKERS", "3", 1), 0);
    CHECK_EQ(weft_pool_create(&p, NULL), 0);
    CHECK_EQ(weft_pool_workers(p), 3);
    CHECK_EQ(weft_pool_destroy(p), 0);
    CHECK_EQ(weft_pool_create(&p, &zero), 0);
    CHECK_EQ(weft_pool_workers(p), 3);
    /* An explicit count wins over the variable. */
    weft_pool *q;
    weft_pool_config two = {.workers = 2};
    CHECK_EQ(weft_pool_create(&q, &two), 0);
    CHECK_EQ(weft_pool_workers(q), 2);
    CHECK_EQ(weft_pool_destroy(q), 0);
    CHECK_EQ(weft_pool_destroy(p), 0);
    CHECK_EQ(setenv("WEFT_WORKERS", "1", 1), 0);
    CHECK_EQ(weft_pool_create(&p, NULL), 0);
    CHECK_EQ(weft_pool_workers(p), 1);
    CHECK_EQ(weft_pool_destroy(p), 0);
    CHECK_EQ(unsetenv("WEFT_WORKERS"), 0);
}

/* ---- destroy refused while busy has no side effect ----------------------- */
/* A refused destroy must leave the workers running. Workers that are awake
 * and idle (spinning between tasks) when it is refused are the ones at risk;
 * a task spawned before each batch of refused destroys keeps them so. A
 * worker that quit shows as a missing "<name>-<i>" thread, caught here
 * before the close below could hang on it. */

static void test_refused_destroy_keeps_workers(unsigned workers)
{
    STAGE("a refused destroy keeps the workers running");
    weft_pool *p;
    weft_pool_config cfg = {.workers = workers, .name = "keep"};
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    CHECK_EQ(wait_threads_named("keep-", (int)workers), workers);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    atomic_store(&g_ran, 0);
    long rounds = SCALED(20000) * (TEST_SANITIZED ? 5 : 1), spawned = 0;
    for (long r = 0; r < rounds; r++) {
        ROUND(r);
        CHECK_EQ(weft_spawn(&f, mark_task, NULL), 0);
        spawned++;
        for (int k = 0; k < 10; k++)
            CHECK_EQ(weft_pool_destroy(p), EBUSY);
        if (r % 500 == 499) {
            int alive = threads_named("keep-", NULL, 0);
            if (alive != (int)workers)
                fprintf(stderr, "after %ld rounds of refused destroys, %d of %u workers are left\n",
                        r + 1, alive, workers);
            CHECK_EQ(alive, workers);
        }
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_ran), spawned);
    CHECK_EQ(weft_pool_destroy(p), 0);
    check_no_threads("keep-");
}

/* While a flow is open, weft_pool_destroy returns EBUSY and the pool is not
 * being destroyed: a flow opened at the same moment by another thread must
 * open (not EINVAL), and every destroy call, even two at once, says EBUSY. */

static weft_pool *g_busy;
static atomic_int g_busy_stop;
static atomic_long g_open_einval, g_open_ok, g_destroy_other;

static void *busy_destroyer(void *p)
{
    (void)p;
    while (!atomic_load(&g_busy_stop)) {
        int e = weft_pool_destroy(g_busy);
        if (e != EBUSY) {
            if (atomic_fetch_add(&g_destroy_other, 1) == 0)
                fprintf(stderr, "weft_pool_destroy with a flow open returned %d, not EBUSY\n", e);
        }
    }
    return NULL;
}

static void *busy_opener(void *p)
{
    long n = *(long *)p;
    for (long i = 0; i < n; i++) {
        weft_flow f;
        int e = weft_flow_open(&f, g_busy);
        if (e != 0) {
            if (atomic_fetch_add(&g_open_einval, 1) == 0)
                fprintf(stderr, "weft_flow_open during a refused destroy returned %d\n", e);
            continue;
        }
        atomic_fetch_add(&g_open_ok, 1);
        CHECK_EQ(weft_spawn(&f, mark_task, NULL), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
    }
    return NULL;
}

static void test_destroy_busy_race(void)
{
    STAGE("destroy refused (EBUSY) racing with flow open");
    weft_pool_config cfg = {.workers = 2, .name = "busy"};
    CHECK_EQ(weft_pool_create(&g_busy, &cfg), 0);
    weft_flow held;
    CHECK_EQ(weft_flow_open(&held, g_busy), 0);
    long n = SCALED(20000);
    atomic_store(&g_busy_stop, 0);
    pthread_t d1 = start_thread(busy_destroyer, NULL);
    pthread_t d2 = start_thread(busy_destroyer, NULL);
    pthread_t o = start_thread(busy_opener, &n);
    join_thread(o);
    atomic_store(&g_busy_stop, 1);
    join_thread(d1);
    join_thread(d2);
    printf("during refused destroys: %ld opens ok, %ld opens failed, %ld destroys not EBUSY\n",
           atomic_load(&g_open_ok), atomic_load(&g_open_einval), atomic_load(&g_destroy_other));
    CHECK_EQ(weft_flow_close(&held), 0);
    CHECK_EQ(weft_pool_destroy(g_busy), 0);
    CHECK_EQ(atomic_load(&g_open_einval), 0);
    CHECK_EQ(atomic_load(&g_destroy_other), 0);
}

/* Runs first, before anything has created the default pool. */
/* A task closing the flow it runs in, or a flow above that: the flow cannot
 * be closed from inside (it would wait for the task itself), so EINVAL, the
 * flow stays open, and its real close still works. In a task's own flow,
 * run by its opener's close or by another worker (one and two workers); in
 * an external thread's flow; from a task two levels down. */
static int close_from_inside(void *outer)
{
    weft_flow *f = weft_current_flow();
    CHECK(f != NULL);
    CHECK_EQ(weft_flow_close(f), EINVAL);
    if (outer)
        CHECK_EQ(weft_flow_close(outer), EINVAL);
    CHECK_EQ(weft_spawn(f, mark_task, NULL), 0); /* still open for spawns */
    return 0;
}

static int open_and_close_inside(void *p)
{
    (void)p;
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(weft_spawn(&g, close_from_inside, weft_current_flow()), 0);
    CHECK_EQ(weft_flow_close(&g), 0);
    CHECK_EQ(weft_flow_close(&g), EINVAL);
    return 0;
}

static void test_close_from_inside(void)
{
    for (unsigned workers = 1; workers <= 2; workers++) {
        weft_pool *pool;
        weft_pool_config cfg = {.workers = workers, .name = "mis"};
        CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
        atomic_store(&g_ran, 0);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, pool), 0);
        for (int i = 0; i < 8; i++)
            CHECK_EQ(weft_spawn(&f, open_and_close_inside, NULL), 0);
        CHECK_EQ(weft_spawn(&f, close_from_inside, NULL), 0);
        sleep_us(1000); /* usually: the tasks run before this thread closes */
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK_EQ(atomic_load(&g_ran), 8 * 4 + 1);
        CHECK_EQ(weft_pool_destroy(pool), 0);
    }
}

/* The owner itself runs a task of its open flow: it waits on another
 * pool's flow and helps its own pool meanwhile, which takes that task from
 * its deque. The task closing its own flow gets EINVAL (it would wait for
 * itself), and the opener's close later succeeds. One worker, so the
 * helping is certain. */
static weft_pool *g_other_pool;

static int nap_task(void *p)
{
    (void)p;
    sleep_us(20000);
    return 0;
}

static int close_enclosing(void *p)
{
    weft_flow *f = p;
    CHECK(weft_current_flow() == f);
    CHECK_EQ(weft_flow_close(f), EINVAL);
    atomic_fetch_add(&g_ran, 1);
    return 0;
}

static int help_into_own_flow(void *p)
{
    (void)p;
    weft_flow f, g;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    CHECK_EQ(weft_spawn(&f, close_enclosing, &f), 0);
    CHECK_EQ(weft_flow_open(&g, g_other_pool), 0);
    CHECK_EQ(weft_spawn(&g, nap_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&g), 0); /* helps: runs close_enclosing */
    CHECK_EQ(atomic_load(&g_ran), 1);
    CHECK_EQ(weft_flow_close(&f), 0);
    return 0;
}

/* Runs fn as a task of a fresh 1-worker pool, g_ran from 0; returns
 * g_ran after. */
static int run_on_one_worker(weft_fn fn)
{
    weft_pool *one;
    weft_pool_config cfg = {.workers = 1, .name = "mis"};
    CHECK_EQ(weft_pool_create(&one, &cfg), 0);
    atomic_store(&g_ran, 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, one), 0);
    CHECK_EQ(weft_spawn(&f, fn, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(weft_pool_destroy(one), 0);
    return atomic_load(&g_ran);
}

static void test_close_from_helped_task(void)
{
    weft_pool_config cfg = {.workers = 1, .name = "mis"};
    CHECK_EQ(weft_pool_create(&g_other_pool, &cfg), 0);
    run_on_one_worker(help_into_own_flow);
    CHECK_EQ(weft_pool_destroy(g_other_pool), 0);
}

/* A task's flow closed by another task on the same worker: a sibling that
 * the opener's wait on another flow runs inline. EINVAL for the close and
 * the async close (it is the opener's to close), and the opener's close
 * then runs the flow's task and succeeds. One worker, so the sibling runs
 * there. */
static void never_done(void *arg, int result)
{
    (void)arg, (void)result;
    CHECK(!"an async close the opener did not make ran its done");
}

static int close_sibling_flow(void *p)
{
    weft_flow *f = p;
    CHECK(weft_current_flow() != f);
    CHECK_EQ(weft_flow_close(f), EINVAL);
    CHECK_EQ(weft_flow_close_async(f, never_done, NULL), EINVAL);
    CHECK_EQ(weft_spawn(f, mark_task, NULL), 0); /* still open */
    return 0;
}

static int open_then_wait(void *p)
{
    (void)p;
    weft_flow f, g;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    CHECK_EQ(weft_spawn(&f, mark_task, NULL), 0);
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    CHECK_EQ(weft_spawn(&g, close_sibling_flow, &f), 0);
    CHECK_EQ(weft_flow_close(&g), 0); /* runs close_sibling_flow here */
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_ran), 2);
    return 0;
}

static void test_close_from_sibling(void)
{
    CHECK_EQ(run_on_one_worker(open_then_wait), 2);
}

static void test_default_pool_bad_env(void)
{
    CHECK_EQ(setenv("WEFT_WORKERS", "abc", 1), 0);
    CHECK(weft_default_pool() == NULL);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), EINVAL);
    CHECK_EQ(weft_join(mark_task, NULL, mark_task, NULL), EINVAL);
    CHECK_EQ(weft_for(NULL, 0, 10, 0, mark_range, NULL), EINVAL);
    CHECK_EQ(atomic_load(&g_ran), 0);
    CHECK_EQ(unsetenv("WEFT_WORKERS"), 0);
    CHECK(weft_default_pool() != NULL);
    CHECK_EQ(weft_join(mark_task, NULL, mark_task, NULL), 0);
    CHECK_EQ(atomic_load(&g_ran), 2);
    atomic_store(&g_ran, 0);
}

int main(void)
{
    watchdog_start(120);
    test_default_pool_bad_env();
    printf("no default pool with a bad $WEFT_WORKERS: ok\n");
    unsetenv("WEFT_WORKERS");
    weft_pool *pool;
    weft_pool_config cfg = {.workers = 2, .name = "mis"};
    CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
    test_null_args(pool);
    printf("NULL and bad arguments: ok\n");
    CHECK_EQ(weft_pool_destroy(pool), 0);
    test_destroy_misuse();
    printf("destroy misuse: ok\n");
    test_config();
    printf("configuration: ok\n");
    test_refused_destroy_keeps_workers(1);
    test_refused_destroy_keeps_workers(2);
    printf("refused destroys keep the workers: ok\n");
    test_destroy_busy_race();
    printf("destroy refused while busy: ok\n");
    test_close_from_inside();
    test_close_from_helped_task();
    printf("a task closing its own flow or one above: ok\n");
    test_close_from_sibling();
    printf("a task closing a sibling's flow: ok\n");
    printf("misuse_api: ok\n");
    return 0;
}
