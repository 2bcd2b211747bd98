/*
 * tests/sched_probes_inline.c — while a tracer is attached to a USDT probe
 * that include/weft_inline.h's paths skip (flow_open, spawn, task_begin,
 * task_end, flow_close), a worker sends those paths to the library, whose
 * probes fire: from the next task the worker starts from its loop, none of
 * its joins, opens, spawns or closes runs inline; once the tracer is gone
 * they run inline again. The kernel's part (incrementing the probe's
 * semaphore while perf or bpftrace is attached) is played by the test,
 * which sets each semaphore in turn (sched/probes.c). The inline spawn and
 * close count their work on the owner line (weft_thread_.worker: spawns,
 * runs), which a task reads; a join counts the same inline or not, so for
 * it the test reads what sends it to the library (the mode word's PROBED
 * bit, and no self for the owner checks); weft_pool_stats must balance
 * either way.
 * Skipped (77) when the library has no probes (no <sys/sdt.h>, or
 * WEFT_OBSERVE=OFF).
 */
#include "weft.h"
#include "check.h"
#include "sched/observe.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#if WS_HAVE_PROBES
typedef struct {
    int  n;
    long r;
} fa;

static int fib_join(void *p)
{
    fa *a = p;
    if (a->n < 2) {
        a->r = a->n;
        return 0;
    }
    fa x = {a->n - 1, 0}, y = {a->n - 2, 0};
    int rc = weft_join(fib_join, &x, fib_join, &y);
    a->r = x.r + y.r;
    return rc;
}

static int fib_flow(void *p)
{
    fa *a = p;
    if (a->n < 2) {
        a->r = a->n;
        return 0;
    }
    fa x = {a->n - 1, 0}, y = {a->n - 2, 0};
    weft_flow f;
    int rc = weft_flow_open(&f, NULL);
    if (rc)
        return rc;
    int s1 = weft_spawn(&f, fib_flow, &x);
    int s2 = weft_spawn(&f, fib_flow, &y);
    rc = weft_flow_close(&f);
    a->r = x.r + y.r;
    return rc ? rc : s1 ? s1 : s2;
}

/* What the worker running the root does inline, before and after. */
typedef struct {
    weft_fn  body;
    fa       arg;
    uint64_t inline_before, inline_after;
    bool     sent_to_library; /* joins and opens: the mode bit, and no self */
} root_job;

static uint64_t inline_work(void)
{
    const struct weft_owner_ *o = weft_thread_.worker;
    CHECK(o != NULL);
    return __atomic_load_n(&o->spawns, __ATOMIC_RELAXED) +
           __atomic_load_n(&o->runs, __ATOMIC_RELAXED);
}

static int root(void *p)
{
    root_job *j = p;
    j->inline_before = inline_work();
    const struct weft_owner_ *o = weft_thread_.worker;
    j->sent_to_library = (__atomic_load_n(&o->mode, __ATOMIC_RELAXED) & WEFT_MODE_PROBED_) &&
                         weft_thread_.self == NULL;
    int rc = j->body(&j->arg);
    j->inline_after = inline_work();
    return rc;
}

/* Runs body on fib(n) as a root task from this (external) thread; returns
 * the inline spawns and runs the worker did meanwhile, or -1 when its
 * joins and opens were sent to the library. */
static long run(weft_pool *p, weft_fn body, int n, long expect)
{
    root_job j = {body, {n, 0}, 0, 0, false};
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, root, &j), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(j.arg.r, expect);
    if (j.sent_to_library) {
        CHECK_EQ(j.inline_after - j.inline_before, 0);
        return -1;
    }
    return (long)(j.inline_after - j.inline_before);
}

static void check_balanced(weft_pool *p)
{
    weft_stats s;
    CHECK_EQ(weft_pool_stats(p, -1, &s), 0);
    CHECK_EQ(s.tasks_spawned, s.tasks_run + s.tasks_skipped);
}

int main(void)
{
    unsigned short *sems[] = {&weft_flow_open_semaphore, &weft_spawn_semaphore,
                              &weft_task_begin_semaphore, &weft_task_end_semaphore,
                              &weft_flow_close_semaphore};
    weft_pool *p;
    weft_pool_config c = {.workers = 1};
    CHECK_EQ(weft_pool_create(&p, &c), 0);
    weft_stats st;
    if (weft_pool_stats(p, -1, &st) == ENOTSUP) {
        puts("sched_probes_inline: built with WEFT_OBSERVE=OFF, no probes: skipped");
        CHECK_EQ(weft_pool_destroy(p), 0);
        return 77;
    }
    /* No tracer: the inline paths do the work (fib(16) through flows:
     * 1,972 spawns, each run back by the inline close). */
    CHECK_EQ(run(p, fib_join, 16, 987), 0);
    CHECK(run(p, fib_flow, 16, 987) >= 3000);
    for (unsigned i = 0; i < sizeof sems / sizeof *sems; i++) {
        __atomic_store_n(sems[i], 1, __ATOMIC_RELAXED); /* "attached" */
        CHECK_EQ(run(p, fib_join, 16, 987), -1);
        CHECK_EQ(run(p, fib_flow, 16, 987), -1);
        check_balanced(p);
        __atomic_store_n(sems[i], 0, __ATOMIC_RELAXED); /* "detached" */
        CHECK_EQ(run(p, fib_join, 16, 987), 0);
        CHECK(run(p, fib_flow, 16, 987) >= 3000);
        check_balanced(p);
    }
    /* A probe the inline paths do not skip changes nothing. */
    __atomic_store_n(&weft_steal_semaphore, 1, __ATOMIC_RELAXED);
    CHECK(run(p, fib_flow, 16, 987) >= 3000);
    __atomic_store_n(&weft_steal_semaphore, 0, __ATOMIC_RELAXED);
    CHECK_EQ(weft_pool_destroy(p), 0);
    puts("sched_probes_inline: ok");
    return 0;
}
#else
int main(void)
{
    puts("sched_probes_inline: no <sys/sdt.h>, so no USDT probes: skipped");
    return 77;
}
#endif
