/*
 * tests/sched_inline_flow.c — the inline open/spawn/close of an owner's
 * flow (include/weft_inline.h) keeps weft.h's semantics. On a one-worker
 * pool (no thief: the owner's close runs every spawn back itself), from a
 * task:
 *  - a task that cancels its flow: the flow's tasks not yet run are
 *    skipped, the close says ECANCELED (the per-task cancel check);
 *  - a task that fails: the others are skipped, the close returns its code;
 *  - a task that sets a context value: the next one sees the flow's
 *    context again, and so does the opener after the close;
 *  - each flow's tasks see it as current, the opener its own after close;
 *  - counters balance (spawned == run + skipped) and the pool destroys
 *    (every inline open's count was given back by its close).
 */
#include "weft.h"
#include "check.h"

#include <errno.h>
#include <stdint.h>

enum { N = 64 };

static int ran[N];
static weft_flow *cur_seen[N];
static weft_ctx_var *var;
static int ctx_bad;

typedef struct {
    int        i;
    int        what; /* 0 plain, 1 cancel, 2 fail, 3 set a value */
    weft_flow *f;
} job;

static int task(void *p)
{
    job *j = p;
    ran[j->i]++;
    cur_seen[j->i] = weft_current_flow();
    if (weft_ctx_get(var) != (void *)1)
        ctx_bad++;
    if (j->what == 1)
        weft_flow_cancel(j->f);
    if (j->what == 2)
        return 42;
    if (j->what == 3)
        CHECK_EQ(weft_ctx_set(var, (void *)2), 0);
    return 0;
}

/* Spawns N tasks into a new flow, task 'which' (the others plain) doing
 * 'what'; closes; returns the close's result. */
static int round_(int which, int what)
{
    weft_flow f;
    job jobs[N];
    for (int i = 0; i < N; i++) {
        ran[i] = 0;
        cur_seen[i] = NULL;
    }
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    for (int i = 0; i < N; i++) {
        jobs[i] = (job){i, i == which ? what : 0, &f};
        CHECK_EQ(weft_spawn(&f, task, &jobs[i]), 0);
    }
    weft_flow *outer = weft_current_flow();
    int rc = weft_flow_close(&f);
    CHECK(weft_current_flow() == outer);
    CHECK(weft_ctx_get(var) == (void *)1);
    for (int i = 0; i < N; i++)
        if (ran[i])
            CHECK(cur_seen[i] == &f);
    return rc;
}


static int body(void *p)
{
    (void)p;
    /* Plain: all run once. */
    CHECK_EQ(round_(-1, 0), 0);
    for (int i = 0; i < N; i++)
        CHECK_EQ(ran[i], 1);
    /* The close runs newest first: the last spawned cancels, so every other
     * is skipped. */
    CHECK_EQ(round_(N - 1, 1), ECANCELED);
    CHECK_EQ(ran[N - 1], 1);
    for (int i = 0; i < N - 1; i++)
        CHECK_EQ(ran[i], 0);
    /* One in the middle cancels: those after it (run before) ran, those
     * before it are skipped. */
    CHECK_EQ(round_(N / 2, 1), ECANCELED);
    for (int i = 0; i < N; i++)
        CHECK_EQ(ran[i], i >= N / 2);
    /* A failure: its code, the rest skipped. */
    CHECK_EQ(round_(N - 1, 2), 42);
    for (int i = 0; i < N - 1; i++)
        CHECK_EQ(ran[i], 0);
    /* A set: the next task still sees the flow's context. */
    CHECK_EQ(round_(N - 1, 3), 0);
    for (int i = 0; i < N; i++)
        CHECK_EQ(ran[i], 1);
    CHECK_EQ(ctx_bad, 0);
    return 0;
}

static int outer_task(void *p)
{
    /* Runs body in a task spawned after the set: its snapshot holds 1, its
     * scope owns nothing (the clean scope the inline path needs). */
    weft_pool *pool = p;
    (void)pool;
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    CHECK_EQ(weft_spawn(&g, body, NULL), 0);
    return weft_flow_close(&g);
}

int main(void)
{
    CHECK_EQ(weft_ctx_var_create(&var, "v", NULL), 0);
    weft_pool *p;
    weft_pool_config c = {.workers = 1};
    CHECK_EQ(weft_pool_create(&p, &c), 0);
    for (int rep = 0; rep < 3; rep++) {
        weft_flow f;
        CHECK_EQ(weft_ctx_set(var, (void *)1), 0);
        CHECK_EQ(weft_flow_open(&f, p), 0);
        CHECK_EQ(weft_spawn(&f, outer_task, p), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
    }
    weft_stats s;
    if (weft_pool_stats(p, -1, &s) == 0) {
        CHECK(s.tasks_spawned > 0);
        CHECK_EQ(s.tasks_spawned, s.tasks_run + s.tasks_skipped);
        CHECK(s.tasks_skipped > 0);
    }
    CHECK_EQ(weft_pool_destroy(p), 0);
    return 0;
}
