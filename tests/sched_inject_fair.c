/*
 * External submissions are not starved by a fork-join job that keeps every
 * worker busy: a worker looks at the injection queue first once in
 * WS_INJECT_TICK searches for work (Go's and Tokio's 61), not only when
 * every steal failed. A task of the job spawns many small tasks into its
 * flow and closes it (its worker drains, the others steal); once the job
 * runs, an external thread submits one task into a flow of its own. That
 * task must start while most of the job is still to do: the verdict is the
 * count of job tasks done when it starts (by order, not time). Before, it
 * started only when the job's deque ran dry.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

enum { JOB_TASKS = 4000 };

static atomic_long job_done;
static atomic_long done_at_external_start = -1;

static int job_task(void *p)
{
    (void)p;
    double end = now_s() + 50e-6;
    while (now_s() < end)
        ;
    atomic_fetch_add(&job_done, 1);
    return 0;
}

static int job_root(void *p)
{
    (void)p;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    for (int i = 0; i < JOB_TASKS; i++)
        CHECK_EQ(weft_spawn(&f, job_task, NULL), 0);
    return weft_flow_close(&f);
}

static int external_task(void *p)
{
    (void)p;
    atomic_store(&done_at_external_start, atomic_load(&job_done));
    return 0;
}

int main(void)
{
    watchdog_start(120);
    int rounds = (int)SCALED(5);
    long worst = 0;
    for (unsigned n = 2; n <= 3; n++) {
        weft_pool *p;
        weft_pool_config cfg = {.workers = n};
        CHECK_EQ(weft_pool_create(&p, &cfg), 0);
        for (int r = 0; r < rounds; r++) {
            ROUND(r);
            atomic_store(&job_done, 0);
            atomic_store(&done_at_external_start, -1);
            weft_flow job, ext;
            CHECK_EQ(weft_flow_open(&job, p), 0);
            CHECK_EQ(weft_spawn(&job, job_root, NULL), 0);
            while (atomic_load(&job_done) < JOB_TASKS / 20)
                sleep_us(100);
            CHECK_EQ(weft_flow_open(&ext, p), 0);
            CHECK_EQ(weft_spawn(&ext, external_task, NULL), 0);
            CHECK_EQ(weft_flow_close(&ext), 0);
            CHECK_EQ(weft_flow_close(&job), 0);
            long at = atomic_load(&done_at_external_start);
            CHECK(at >= 0);
            if (at > worst)
                worst = at;
        }
        CHECK_EQ(weft_pool_destroy(p), 0);
    }
    printf("sched_inject_fair: the external task started after at most %ld of %d job tasks\n",
           worst, JOB_TASKS);
    CHECK(worst < JOB_TASKS / 2);
    return 0;
}
