/*
 * A task that returns without closing the flow it opened (the caller's
 * bug): weft_pool_destroy sees the open flow and says EBUSY, from then on,
 * instead of destroying a pool that a flow still refers to (it returned 0
 * before). A pool whose tasks closed everything they opened is destroyed
 * as usual, also after nested flows and closes that were refused (a close
 * from inside the flow: EINVAL, the flow stays open and its opener closes
 * it).
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>

static weft_flow leaked; /* static: the task's frame is gone, the flow is not */
static weft_pool *kept;  /* reachable: the pool cannot be destroyed */

static int leak_task(void *p)
{
    (void)p;
    CHECK_EQ(weft_flow_open(&leaked, NULL), 0);
    return 0; /* no close */
}

static int nested_ok(void *p)
{
    int depth = (int)(intptr_t)p;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    if (depth > 0)
        CHECK_EQ(weft_spawn(&f, nested_ok, (void *)(intptr_t)(depth - 1)), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    return 0;
}

static weft_flow outer;

static int close_from_inside(void *p)
{
    (void)p;
    CHECK_EQ(weft_flow_close(&outer), EINVAL);
    return 0;
}

static int opener_task(void *p)
{
    (void)p;
    CHECK_EQ(weft_flow_open(&outer, NULL), 0);
    CHECK_EQ(weft_spawn(&outer, close_from_inside, NULL), 0);
    return weft_flow_close(&outer);
}

static void run_one(weft_pool *p, weft_fn fn, void *arg)
{
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, fn, arg), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
}

int main(void)
{
    watchdog_start(60);
    for (unsigned n = 1; n <= 2; n++) {
        weft_pool *p;
        weft_pool_config cfg = {.workers = n};
        CHECK_EQ(weft_pool_create(&p, &cfg), 0);
        run_one(p, nested_ok, (void *)(intptr_t)20);
        run_one(p, opener_task, NULL);
        CHECK_EQ(weft_pool_destroy(p), 0);
    }

    weft_pool_config cfg = {.workers = 2};
    CHECK_EQ(weft_pool_create(&kept, &cfg), 0);
    run_one(kept, leak_task, NULL);
    CHECK_EQ(weft_pool_destroy(kept), EBUSY);
    CHECK_EQ(weft_pool_destroy(kept), EBUSY);
    /* The pool still works for everything else. */
    run_one(kept, nested_ok, (void *)(intptr_t)3);
    CHECK_EQ(weft_pool_destroy(kept), EBUSY);
    printf("misuse_left_open: EBUSY for a flow a task left open\n");
    return 0;
}
