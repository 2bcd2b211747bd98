/*
 * fork() inside a task, and the child returns from that task into weft (or
 * waits in a close or a join there): the child exits with status 0 instead
 * of parking forever in the dead pool's worker loop (it hung before), and
 * never runs the parent's other tasks a second time (also when the fork
 * is in the inline half of a weft_join: the other half is not run in the
 * child, nor the flow's other task when the fork is in a task that the
 * owner's close runs). The parent's pool
 * goes on working. Each child is bounded: the parent kills it after 20 s
 * and the test fails.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

static atomic_int others_ran; /* tasks that must not run in the child */

static int other_task(void *p)
{
    (void)p;
    atomic_fetch_add(&others_ran, 1);
    return 0;
}

typedef enum { RETURN_AT_ONCE, CLOSE_IN_CHILD, JOIN_IN_CHILD, FORK_IN_JOIN, FORK_IN_CLOSE } how;

static pid_t parent_pid;

static pid_t child_pid;

static int quick(void *p)
{
    (void)p;
    return 0;
}

/* The half that weft_join offers while its other half forks: in the child
 * it must not run (the parent runs it); if it does, the child says so. */
static int join_a(void *p)
{
    (void)p;
    if (getpid() != parent_pid)
        _exit(3);
    atomic_fetch_add(&others_ran, 1);
    return 0;
}

static int join_b_forks(void *p)
{
    (void)p;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(20);
        return 0; /* back into weft_join, in the child */
    }
    child_pid = pid;
    return 0;
}

/* Forks; in the child, leaves through weft in the given way. */
static int forking_task(void *p)
{
    how h = (how)(intptr_t)p;
    if (h == FORK_IN_JOIN)
        return weft_join(join_a, NULL, join_b_forks, NULL);
    weft_flow f;
    if (h == FORK_IN_CLOSE) {
        /* The close runs the newest first: join_b_forks, then, in the
         * parent only, join_a. */
        CHECK_EQ(weft_flow_open(&f, NULL), 0);
        CHECK_EQ(weft_spawn(&f, join_a, NULL), 0);
        CHECK_EQ(weft_spawn(&f, join_b_forks, NULL), 0);
        return weft_flow_close(&f);
    }
    if (h == CLOSE_IN_CHILD) {
        CHECK_EQ(weft_flow_open(&f, NULL), 0);
        CHECK_EQ(weft_spawn(&f, other_task, NULL), 0);
    }
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(20);
        if (h == CLOSE_IN_CHILD)
            weft_flow_close(&f); /* an inherited flow: an error, never a hang */
        if (h == JOIN_IN_CHILD)
            weft_join(quick, NULL, quick, NULL); /* off a worker now */
        return 0; /* back into the dead pool */
    }
    child_pid = pid;
    if (h == CLOSE_IN_CHILD)
        CHECK_EQ(weft_flow_close(&f), 0);
    return 0;
}

static void one(weft_pool *p, how h)
{
    atomic_store(&others_ran, 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, forking_task, (void *)(intptr_t)h), 0);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(weft_spawn(&f, other_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&others_ran),
             100 + (h == CLOSE_IN_CHILD || h == FORK_IN_JOIN || h == FORK_IN_CLOSE));

    int status = 0;
    double end = now_s() + 20;
    pid_t got;
    while ((got = waitpid(child_pid, &status, WNOHANG)) == 0 && now_s() < end)
        sleep_us(1000);
    if (got == 0) {
        kill(child_pid, SIGKILL);
        waitpid(child_pid, &status, 0);
        fprintf(stderr, "case %d: the child did not exit\n", (int)h);
        CHECK(!"forked child exits");
    }
    CHECK_EQ(got, child_pid);
    if (!WIFEXITED(status))
        fprintf(stderr, "case %d: signal %d\n", (int)h,
                WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

int main(void)
{
    parent_pid = getpid();
    test_skip_under_emulator("fork() in a multithreaded process makes qemu-user 7.2 itself "
                             "abort (docs/arm64.md)");
    watchdog_start(120);
    for (unsigned n = 1; n <= 2; n++) {
        weft_pool *p;
        weft_pool_config cfg = {.workers = n};
        CHECK_EQ(weft_pool_create(&p, &cfg), 0);
        one(p, RETURN_AT_ONCE);
        one(p, CLOSE_IN_CHILD);
        one(p, FORK_IN_JOIN);
        one(p, FORK_IN_CLOSE);
        /* A join in the child starts the child's default pool: threads,
         * which ThreadSanitizer cannot follow after a multithreaded fork
         * (see sched_fork.c). */
        if (!TEST_TSAN)
            one(p, JOIN_IN_CHILD);
        CHECK_EQ(weft_pool_destroy(p), 0);
    }
    printf("sched_fork_return: every child exited\n");
    return 0;
}
