/*
 * The asymmetric fence of ring pushes (sched/asym.c): an external opener's
 * spawns publish with a plain release store of the ring's tail and a
 * relaxed read of sleepers; a parking worker runs membarrier between its
 * announce and its recheck. tests/model/ring_asym.pml checks the pairing
 * exhaustively (and catches it without the membarrier); this test checks
 * the code:
 *
 *   - mode: the rings are light exactly when membarrier registration works
 *     here and $WEFT_NO_MEMBARRIER is unset (never under ThreadSanitizer);
 *     ctest runs this test once more with it set, for the fallback;
 *   - after idle: a 1-worker pool goes idle (its worker announced in
 *     sleepers, white-box), the opener spawns one task and closes; the
 *     close returns only if the push woke the worker (the opener sleeps on
 *     the flow's count, it runs nothing itself). Rounds alternate waiting
 *     for the announce and spawning after a random short spin, so that
 *     pushes land anywhere in the worker's way to sleep;
 *   - bursts: a 2-worker pool, one opener pushing runs of 1..64 tasks with
 *     pauses between them, each task counted exactly once;
 *   - fork: a child registers again at its first pool (the registration
 *     is the process's), and its rings are light and wake its worker
 *     (not under the emulator: fork in a threaded qemu-user process; not
 *     under ThreadSanitizer, which lets no fork child start threads).
 *
 * SPDX-License-Identifier: MIT
 */
#include "sched/ws.h"
#include "test_common.h"

#include <linux/membarrier.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static _Atomic(uint64_t) ran;

static int count_task(void *p)
{
    (void)p;
    atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed);
    return 0;
}

static void test_mode(weft_pool *p)
{
    STAGE("mode");
    (void)p;
    bool want = !TEST_TSAN && !getenv("WEFT_NO_MEMBARRIER") &&
                syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
    printf("sched_asym: ring pushes are %s\n", ws_asym_on() ? "light (membarrier)" : "seq_cst");
    CHECK_EQ(ws_asym_on(), want);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    ws_flow *wf = (ws_flow *)(void *)&f;
    CHECK(ws_flow_ring(wf) != NULL);
    CHECK_EQ(ws_flow_ring(wf)->light, want);
    CHECK_EQ(weft_flow_close(&f), 0);
}

static void spin_a_little(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    unsigned n = (*seed >> 16) % 4000;
    for (volatile unsigned i = 0; i < n; i++)
        ;
}

static void test_after_idle(weft_pool *p, long rounds)
{
    STAGE("after idle: one push wakes the parked worker");
    unsigned seed = 12345;
    uint64_t before = atomic_load(&ran);
    for (long r = 0; r < rounds; r++) {
        ROUND(r);
        if (r % 2 == 0) {
            double end = now_s() + 10;
            while (atomic_load(&p->park.sleepers) != p->nworkers && now_s() < end)
                sleep_us(20);
            CHECK(atomic_load(&p->park.sleepers) == p->nworkers);
        } else {
            spin_a_little(&seed);
        }
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, p), 0);
        CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
    }
    CHECK_EQ(atomic_load(&ran) - before, (uint64_t)rounds);
}

static void test_bursts(weft_pool *p, long rounds)
{
    STAGE("bursts: runs of 1..64 pushes with pauses, two workers");
    unsigned seed = 99;
    uint64_t before = atomic_load(&ran), want = 0;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (long r = 0; r < rounds; r++) {
        seed = seed * 1103515245u + 12345u;
        unsigned n = 1 + (seed >> 16) % 64;
        for (unsigned k = 0; k < n; k++)
            CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
        want += n;
        if (r % 8 == 7)
            sleep_us(200); /* long enough for the workers to park */
        else
            spin_a_little(&seed);
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&ran) - before, want);
}

static void test_fork(void)
{
    STAGE("fork: the child's first pool registers again");
    if (test_env_flag("WEFT_UNDER_EMULATOR")) {
        printf("sched_asym: fork stage skipped under the emulator\n");
        return;
    }
    if (TEST_TSAN) { /* no light rings there, and no threads after fork */
        printf("sched_asym: fork stage skipped under ThreadSanitizer\n");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        weft_pool_config cfg = {.workers = 1, .name = "wasymc"};
        weft_pool *p;
        CHECK_EQ(weft_pool_create(&p, &cfg), 0);
        test_mode(p);
        test_after_idle(p, 200);
        CHECK_EQ(weft_pool_destroy(p), 0);
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    watchdog_start(120);
    weft_pool_config cfg = {.workers = 1, .name = "wasym"};
    weft_pool *p;
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    test_mode(p);
    test_after_idle(p, SCALED(4000));
    CHECK_EQ(weft_pool_destroy(p), 0);
    cfg.workers = 2;
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    test_bursts(p, SCALED(3000));
    test_fork(); /* with a pool of the parent's alive */
    CHECK_EQ(weft_pool_destroy(p), 0);
    printf("sched_asym: ok\n");
    return 0;
}
