/*
 * Cancellation under forced interleavings (issue 10, defects 2, 3, 4, 8 and
 * the process-wide epoch). The library's test hook (ws_test_hook, sched/
 * ws.h) holds a chosen thread inside weft_flow_cancel after it set the
 * flag and before the cancel reached the epochs: the window in which, before
 * the fix, a second cancel or a failing task returned early.
 *
 *   - a failure is never lost: while thread A is held in the window, a task
 *     of F run by another worker returns 42; the owner's close then returns
 *     42 (it returned 0: the fast close saw an unchanged epoch);
 *   - a cancel is visible when it returns: while A is held, thread B
 *     cancels F; on B, weft_flow_canceled(F) is then true and a task B
 *     spawns afterwards is skipped (it ran);
 *   - weft_flow_canceled of a flow that is not open is false: a closed
 *     canceled flow, and a never-opened one full of garbage (SIGSEGV or a
 *     heap-use-after-free before);
 *   - weft_for from a task of a canceled flow returns ECANCELED and runs
 *     nothing, on the task's own pool and on another (it did all of the
 *     range and returned 0 on its own pool);
 *   - cancellation is local to a pool: after a flow of pool A is canceled,
 *     an open flow of pool B still answers "surely not canceled" at once
 *     (ws_flow_maybe_canceled: its close keeps the fast path), while a flow
 *     of B opened under a flow of A (a chain across pools) sees it.
 *   - a REMOTE spawn (by a thread that did not open the flow) holds the
 *     flow open until its notify is done: the hook holds the spawner after
 *     its push; the close returns only after the spawner let go (it
 *     returned at once, and destroying the pool then freed what the spawner
 *     was about to read).
 *
 * SPDX-License-Identifier: MIT
 */
#include "sched/ws.h"
#include "test_common.h"

#include <errno.h>
#include <string.h>

/* ---- the hook ----------------------------------------------------------- */

static _Thread_local int is_held_thread; /* hold this thread in the cancel window */
static atomic_int hold_armed;       /* 1: hold held_thread at WS_HOOK_CANCEL_SET */
static atomic_int held;             /* it is in the window */
static atomic_int release_held;     /* let it go */
static atomic_int remote_armed;     /* 1: hold a REMOTE spawner after its push */
static atomic_int remote_in_hook;   /* it is held */
static atomic_int remote_hook_done; /* it left the hook */
static atomic_int closed;           /* the close returned */

static void hook(int point, ws_flow *f)
{
    (void)f;
    if (point == WS_HOOK_CANCEL_SET && atomic_load(&hold_armed) && is_held_thread) {
        atomic_store(&held, 1);
        CHECK(wait_flag(&release_held, 30));
    }
    if (point == WS_HOOK_REMOTE_PUSHED && atomic_load(&remote_armed)) {
        atomic_store(&remote_in_hook, 1);
        /* Give the close every chance to return early (it must not). */
        double end = now_s() + 0.5;
        while (!atomic_load(&closed) && now_s() < end)
            sleep_us(100);
        atomic_store(&remote_hook_done, 1);
    }
}

static void *cancel_thread(void *p)
{
    is_held_thread = 1;
    weft_flow_cancel(p);
    return NULL;
}

/* Starts a thread that cancels f and is held in the window. */
static pthread_t start_held_cancel(weft_flow *f)
{
    atomic_store(&held, 0);
    atomic_store(&release_held, 0);
    atomic_store(&hold_armed, 1);
    return start_thread(cancel_thread, f);
}

/* ---- defect 2: a failure while a cancel is in its window --------------- */

static atomic_int fail_ran;

static int fail42(void *p)
{
    (void)p;
    atomic_store(&fail_ran, 1);
    return 42;
}

typedef struct owner_close {
    weft_flow  f;
    atomic_int opened, go_close, result;
} owner_close;

static int owner_task(void *p)
{
    owner_close *oc = p;
    CHECK_EQ(weft_flow_open(&oc->f, NULL), 0);
    atomic_store(&oc->opened, 1);
    CHECK(wait_flag(&oc->go_close, 30));
    atomic_store(&oc->result, weft_flow_close(&oc->f));
    return 0;
}

static void test_failure_not_lost(weft_pool *p)
{
    STAGE("failure during a cancel's window");
    static owner_close oc;
    memset(&oc, 0, sizeof oc);
    atomic_store(&fail_ran, 0);
    weft_flow root;
    CHECK_EQ(weft_flow_open(&root, p), 0);
    CHECK_EQ(weft_spawn(&root, owner_task, &oc), 0);
    CHECK(wait_flag(&oc.opened, 30));

    pthread_t a = start_held_cancel(&oc.f);
    CHECK(wait_flag(&held, 30));
    /* A REMOTE task of F: this thread did not open F. The other worker
     * runs it (the owner's worker waits in owner_task). */
    CHECK_EQ(weft_spawn(&oc.f, fail42, NULL), 0);
    CHECK(wait_flag(&fail_ran, 30));
    ws_flow *f = (ws_flow *)&oc.f;
    double end = now_s() + 30;
    while (atomic_load_explicit(&f->state, memory_order_acquire) != 0)
        CHECK(now_s() < end);
    atomic_store(&oc.go_close, 1); /* A is still held */
    CHECK_EQ(weft_flow_close(&root), 0);
    CHECK_EQ(atomic_load(&oc.result), 42);
    atomic_store(&release_held, 1);
    join_thread(a);
    atomic_store(&hold_armed, 0);
}

/* ---- defect 3: a second cancel returns only once it is visible --------- */

static atomic_int late_ran;

static int late_task(void *p)
{
    (void)p;
    atomic_store(&late_ran, 1);
    return 0;
}

static void test_second_cancel_visible(weft_pool *p)
{
    STAGE("second cancel during the first's window");
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK(!weft_flow_canceled(&f)); /* caches "not canceled" */
    pthread_t a = start_held_cancel(&f);
    CHECK(wait_flag(&held, 30));
    weft_flow_cancel(&f); /* this thread: not held */
    CHECK(weft_flow_canceled(&f));
    atomic_store(&late_ran, 0);
    CHECK_EQ(weft_spawn(&f, late_task, NULL), 0);
    atomic_store(&release_held, 1);
    join_thread(a);
    atomic_store(&hold_armed, 0);
    CHECK_EQ(weft_flow_close(&f), ECANCELED);
    CHECK_EQ(atomic_load(&late_ran), 0);
}

/* ---- defect 4: weft_flow_canceled of a flow that is not open ----------- */

static void test_canceled_not_open(weft_pool *p)
{
    STAGE("weft_flow_canceled when not open");
    weft_flow f;
    memset(&f, 0xAB, sizeof f);
    CHECK(!weft_flow_canceled(&f));
    CHECK_EQ(weft_flow_open(&f, p), 0);
    weft_flow_cancel(&f);
    CHECK(weft_flow_canceled(&f));
    CHECK_EQ(weft_flow_close(&f), ECANCELED);
    CHECK(!weft_flow_canceled(&f));
}

/* ---- defect 8: weft_for under a canceled flow ------------------------- */

static atomic_long for_done;

static void count_range(size_t b, size_t e, void *arg)
{
    (void)arg;
    atomic_fetch_add(&for_done, (long)(e - b));
}

typedef struct for_case {
    weft_pool *target; /* NULL: the task's own pool */
    int        result;
} for_case;

static int canceled_for_task(void *p)
{
    for_case *c = p;
    weft_flow_cancel(weft_current_flow());
    c->result = weft_for(c->target, 0, 1000, 1, count_range, NULL);
    return 0;
}

static void test_for_canceled(weft_pool *p, weft_pool *other)
{
    STAGE("weft_for under a canceled flow");
    for (int k = 0; k < 2; k++) {
        for_case c = {k ? other : NULL, -1};
        atomic_store(&for_done, 0);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, p), 0);
        CHECK_EQ(weft_spawn(&f, canceled_for_task, &c), 0);
        CHECK_EQ(weft_flow_close(&f), ECANCELED);
        CHECK_EQ(c.result, ECANCELED);
        CHECK_EQ(atomic_load(&for_done), 0);
    }
}

/* ---- cancellation is local to a pool ----------------------------------- */

typedef struct local_case {
    weft_flow  f;        /* a flow of pool B, opened in a task of B */
    weft_flow  cross;    /* a flow of B opened in a task of A */
    weft_pool *b;
    atomic_int opened, go;
    int        fast_after, cross_after;
} local_case;

static int b_task(void *p)
{
    local_case *lc = p;
    CHECK_EQ(weft_flow_open(&lc->f, NULL), 0);
    CHECK(!weft_flow_canceled(&lc->f));
    atomic_store(&lc->opened, 1);
    CHECK(wait_flag(&lc->go, 30));
    lc->fast_after = !ws_flow_maybe_canceled((ws_flow *)&lc->f);
    return weft_flow_close(&lc->f);
}

static int a_task_cross(void *p)
{
    local_case *lc = p;
    weft_flow_cancel(weft_current_flow()); /* a flow of A */
    CHECK_EQ(weft_flow_open(&lc->cross, lc->b), 0);
    lc->cross_after = weft_flow_canceled(&lc->cross);
    weft_flow_close(&lc->cross);
    return 0;
}

static void test_cancel_local(weft_pool *a, weft_pool *b)
{
    STAGE("cancellation local to a pool");
    static local_case lc;
    memset(&lc, 0, sizeof lc);
    lc.b = b;
    weft_flow fb;
    CHECK_EQ(weft_flow_open(&fb, b), 0);
    CHECK_EQ(weft_spawn(&fb, b_task, &lc), 0);
    CHECK(wait_flag(&lc.opened, 30));
    for (int i = 0; i < 100; i++) { /* pool A cancels flows in a loop */
        weft_flow fa;
        CHECK_EQ(weft_flow_open(&fa, a), 0);
        weft_flow_cancel(&fa);
        CHECK_EQ(weft_flow_close(&fa), ECANCELED);
    }
    atomic_store(&lc.go, 1);
    CHECK_EQ(weft_flow_close(&fb), 0);
    CHECK(lc.fast_after);

    weft_flow fa;
    CHECK_EQ(weft_flow_open(&fa, a), 0);
    CHECK_EQ(weft_spawn(&fa, a_task_cross, &lc), 0);
    CHECK_EQ(weft_flow_close(&fa), ECANCELED);
    CHECK(lc.cross_after);
}

/* ---- a REMOTE spawner holds the flow until its notify is done ---------- */

static int quick(void *p)
{
    (void)p;
    return 0;
}

static void *remote_spawner(void *p)
{
    CHECK_EQ(weft_spawn(p, quick, NULL), 0);
    return NULL;
}

static void test_remote_spawn_lifetime(void)
{
    STAGE("REMOTE spawn and a racing close and destroy");
    weft_pool *p;
    weft_pool_config cfg = {.workers = 1};
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    atomic_store(&closed, 0);
    atomic_store(&remote_hook_done, 0);
    atomic_store(&remote_armed, 1);
    pthread_t t = start_thread(remote_spawner, &f);
    CHECK(wait_flag(&remote_in_hook, 30));
    CHECK_EQ(weft_flow_close(&f), 0);
    atomic_store(&closed, 1);
    CHECK(atomic_load(&remote_hook_done)); /* the close waited for the spawner */
    CHECK_EQ(weft_pool_destroy(p), 0);
    join_thread(t);
    atomic_store(&remote_armed, 0);
}

int main(void)
{
    watchdog_start(120);
    ws_test_hook = hook; /* before any pool exists */
    weft_pool *p, *q;
    weft_pool_config cfg = {.workers = 2};
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    CHECK_EQ(weft_pool_create(&q, &cfg), 0);
    int rounds = (int)SCALED(20);
    for (int r = 0; r < rounds; r++) {
        ROUND(r);
        test_failure_not_lost(p);
        test_second_cancel_visible(p);
        test_canceled_not_open(p);
        test_for_canceled(p, q);
        test_cancel_local(p, q);
    }
    test_remote_spawn_lifetime();
    CHECK_EQ(weft_pool_destroy(q), 0);
    CHECK_EQ(weft_pool_destroy(p), 0);
    printf("sched_cancel_race: %d rounds\n", rounds);
    return 0;
}
