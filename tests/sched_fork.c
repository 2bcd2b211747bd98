/*
 * After fork() the child may use weft:
 *   - pools inherited from the parent (a pool of its own and the default
 *     pool) report EINVAL from weft_flow_open, weft_pool_destroy and
 *     weft_for, never a hang;
 *   - the child gets a fresh, working default pool (flows, weft_join,
 *     weft_for with pool NULL) and can create and destroy pools of its own;
 *   - the same when the parent's pools were busy at the fork, when a
 *     worker thread forks from inside a task (the child is then no worker
 *     and runs no task), and for a grandchild forked from a child that had
 *     made its own default pool;
 *   - a flow that was open in the parent at the fork: spawning into it or
 *     closing it in the child is an error, not a hang.
 * Every child arms alarm() as a hang guard and reports through its exit
 * status, which the parent checks.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>

/* ThreadSanitizer cannot follow a child that starts threads after a
 * multithreaded fork (glibc hands the child the parent's cached thread
 * descriptors, which TSan still counts as live: "dup thread with used id").
 * Under TSan the children check only what needs no new thread: that the
 * inherited pools and flows report errors instead of hanging. */
#define CHILD_MAY_START_THREADS (!TEST_TSAN)

static atomic_long g_count;

static int count_task(void *p)
{
    (void)p;
    atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed);
    return 0;
}

static void count_range(size_t b, size_t e, void *p)
{
    (void)p;
    atomic_fetch_add_explicit(&g_count, (long)(e - b), memory_order_relaxed);
}

/* Waits for pid; returns its exit status, or fails the test if it died of a
 * signal (SIGALRM: it hung). */
static int wait_child(pid_t pid, const char *what)
{
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "%s: child killed by signal %d%s\n", what, WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (it hung: alarm)" : "");
        CHECK(0);
    }
    CHECK(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fprintf(stderr, "%s: child exited with status %d\n", what, WEXITSTATUS(status));
    return WEXITSTATUS(status);
}

/* In a child: everything inherited is unusable, a fresh default pool works.
 * old: pools inherited from the parent (NULL entries ignored). */
static void child_checks(weft_pool *const *old, int nold)
{
    CHECK_EQ(weft_worker_index(), -1);
    CHECK(weft_current_flow() == NULL);
    for (int i = 0; i < nold; i++) {
        if (!old[i])
            continue;
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, old[i]), EINVAL);
        CHECK_EQ(weft_for(old[i], 0, 10, 1, count_range, NULL), EINVAL);
        CHECK_EQ(weft_pool_destroy(old[i]), EINVAL);
    }
    if (!CHILD_MAY_START_THREADS)
        return;
    weft_pool *def = weft_default_pool();
    CHECK(def != NULL);
    for (int i = 0; i < nold; i++)
        CHECK(def != old[i]);
    CHECK(weft_pool_workers(def) >= 1);

    /* The fresh default pool runs flows, joins and loops. */
    atomic_store(&g_count, 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_count), 1000);
    test_fib_arg a = {15, 0};
    CHECK_EQ(test_fib_join(&a), 0);
    CHECK_EQ(a.r, 610);
    atomic_store(&g_count, 0);
    CHECK_EQ(weft_for(NULL, 0, 5000, 0, count_range, NULL), 0);
    CHECK_EQ(atomic_load(&g_count), 5000);

    /* And pools of its own. */
    weft_pool *p;
    weft_pool_config cfg = {.workers = 2, .name = "child"};
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    atomic_store(&g_count, 0);
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_count), 1000);
    CHECK_EQ(weft_pool_destroy(p), 0);
}

static weft_pool *g_pool;

/* ---- a quiet parent ------------------------------------------------------- */

static void test_fork_quiet(void)
{
    STAGE("fork with idle pools");
    weft_pool *def = weft_default_pool();
    CHECK(def != NULL);
    /* Use both pools first. */
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(weft_flow_open(&f, def), 0);
    CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(20);
        weft_pool *old[2] = {g_pool, def};
        child_checks(old, 2);

        if (!CHILD_MAY_START_THREADS)
            _exit(0);
        /* A grandchild: the child's default pool is inherited in turn. */
        weft_pool *mine = weft_default_pool();
        wait_threads_named("weft-", (int)weft_pool_workers(mine)); /* settled: see main */
        sleep_us(20000);
        pid_t gc = fork();
        CHECK(gc >= 0);
        if (gc == 0) {
            alarm(20);
            weft_pool *old2[3] = {g_pool, def, mine};
            child_checks(old2, 3);
            _exit(0);
        }
        CHECK_EQ(wait_child(gc, "grandchild"), 0);
        _exit(0);
    }
    CHECK_EQ(wait_child(pid, "child of an idle parent"), 0);

    /* The parent's pools are unaffected. */
    atomic_store(&g_count, 0);
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_count), 2);
    CHECK(weft_default_pool() == def);
}

/* ---- a busy parent -------------------------------------------------------- */

static atomic_int g_stop;

static int busy_task(void *p)
{
    (void)p;
    /* Keep the workers busy and spawning until told to stop. */
    double end = now_s() + 30;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed) && now_s() < end) {
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, NULL), 0);
        for (int i = 0; i < 8; i++)
            CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
    }
    return 0;
}

static void test_fork_busy(void)
{
    STAGE("fork while the pools are busy");
    weft_pool *def = weft_default_pool();
    int rounds = (int)SCALED(10);
    if (rounds > 20)
        rounds = 20;
    for (int r = 0; r < rounds; r++) {
        ROUND(r);
        atomic_store(&g_stop, 0);
        weft_flow f, fd;
        CHECK_EQ(weft_flow_open(&f, g_pool), 0);
        CHECK_EQ(weft_flow_open(&fd, def), 0);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ(weft_spawn(&f, busy_task, NULL), 0);
            CHECK_EQ(weft_spawn(&fd, busy_task, NULL), 0);
        }
        sleep_us(1000 + 500 * r);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            alarm(20);
            weft_pool *old[2] = {g_pool, def};
            child_checks(old, 2);
            _exit(0);
        }
        atomic_store(&g_stop, 1);
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK_EQ(weft_flow_close(&fd), 0);
        CHECK_EQ(wait_child(pid, "child of a busy parent"), 0);
    }
}

/* ---- a worker forks -------------------------------------------------------- */

static int forking_task(void *p)
{
    (void)p;
    weft_pool *def = weft_default_pool();
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(20);
        /* The child's only thread was a worker: it is none now. */
        weft_pool *old[2] = {g_pool, def};
        child_checks(old, 2);
        _exit(0);
    }
    CHECK_EQ(wait_child(pid, "child of a worker"), 0);
    CHECK(weft_worker_index() >= 0);
    return 0;
}

static void test_fork_from_task(void)
{
    STAGE("fork from inside a task");
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    CHECK_EQ(weft_spawn(&f, forking_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
}

/* ---- a flow open across the fork ----------------------------------------- */

static atomic_int g_release;

static int held_task(void *p)
{
    (void)p;
    wait_flag(&g_release, 30);
    return 0;
}

static void test_flow_open_across_fork(void)
{
    STAGE("a flow open across fork");
    atomic_store(&g_release, 0);
    weft_flow f, empty;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    CHECK_EQ(weft_flow_open(&empty, g_pool), 0);
    CHECK_EQ(weft_spawn(&f, held_task, NULL), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(10);
        /* The task that flow waits for lives on a worker that did not cross
         * the fork: the flow can never complete here. */
        if (weft_spawn(&f, count_task, NULL) != EINVAL)
            _exit(2);
        if (weft_flow_close(&f) != EINVAL)
            _exit(3);
        /* With nothing pending, either answer is honest. */
        int e = weft_flow_close(&empty);
        if (e != EINVAL && e != 0)
            _exit(4);
        _exit(0);
    }
    int st = wait_child(pid, "a flow open across fork");
    atomic_store(&g_release, 1);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(weft_flow_close(&empty), 0);
    CHECK_EQ(st, 0);
}

int main(void)
{
    test_skip_under_emulator("fork() in a multithreaded process makes qemu-user 7.2 itself "
                             "abort (docs/arm64.md)");
    watchdog_start(120);
    unsetenv("WEFT_WORKERS");
    weft_pool_config cfg = {.workers = 2, .name = "fork"};
    CHECK_EQ(weft_pool_create(&g_pool, &cfg), 0);
    /* Let every worker finish starting up before the first fork: a thread
     * starting up allocates (pthread_getattr_np), and gcc 12's
     * AddressSanitizer allocator is not fork-safe: a child forked while
     * another thread holds its lock deadlocks on its first allocation. */
    weft_pool *def = weft_default_pool();
    CHECK(def != NULL);
    CHECK_EQ(wait_threads_named("fork-", 2), 2);
    CHECK_EQ(wait_threads_named("weft-", (int)weft_pool_workers(def)), weft_pool_workers(def));
    sleep_us(50000);
    test_fork_quiet();
    printf("fork, idle pools: ok\n");
    test_fork_busy();
    printf("fork, busy pools: ok\n");
    test_fork_from_task();
    printf("fork from a task: ok\n");
    test_flow_open_across_fork();
    printf("flow open across fork: ok\n");
    STAGE("destroy");
    CHECK_EQ(weft_pool_destroy(g_pool), 0);
    printf("sched_fork: ok\n");
    return 0;
}
