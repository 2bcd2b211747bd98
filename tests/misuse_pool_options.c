/*
 * Pool options and the library's own identity:
 *   - weft_version() and weft_version_string() agree with the header's
 *     WEFT_VERSION_* (one version, from CMakeLists.txt);
 *   - stack_size: below WEFT_MIN_STACK_SIZE is EINVAL; a pool with small
 *     stacks works, and its workers' helping stops within their own stack
 *     (the nesting limit lies half of it below where the worker started);
 *     a task's own recursion may use more than half;
 *   - a name longer than the kernel keeps is cut to its first 10 bytes and
 *     the worker index survives ("abcdefghij-0");
 *   - the default pool can be shut down (EBUSY while a flow is open on it,
 *     EDEADLK from one of its workers, 0 when there is none), and a later
 *     use creates a fresh one.
 *
 * SPDX-License-Identifier: MIT
 */
#include "sched/ws.h"
#include "test_common.h"

#include <errno.h>
#include <string.h>

static int check_limit(void *p)
{
    size_t stack = *(size_t *)p;
    char here;
    uintptr_t sp = (uintptr_t)&here, limit = ws_self->nest_limit;
    CHECK(limit < sp);
    CHECK(sp - limit <= stack / 2 + 4096);
    CHECK(sp - limit >= stack / 2 - 65536);
    return 0;
}

/* Recursion that uses about 60% of a 256 KiB stack. */
static int deep(int n)
{
    volatile char pad[1024];
    pad[0] = (char)n;
    return n == 0 ? pad[0] : deep(n - 1) + pad[0];
}

static int deep_task(void *p)
{
    (void)p;
    return deep(150) == 0 ? 0 : 0;
}

static int shutdown_from_worker(void *p)
{
    *(int *)p = weft_default_pool_shutdown();
    return 0;
}

static int quick(void *p)
{
    (void)p;
    return 0;
}

int main(void)
{
    watchdog_start(60);
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", WEFT_VERSION_MAJOR, WEFT_VERSION_MINOR, WEFT_VERSION_PATCH);
    CHECK(strcmp(weft_version_string(), v) == 0);
    CHECK(strcmp(WEFT_VERSION_STRING, v) == 0);
    CHECK_EQ(weft_version(), (WEFT_VERSION_MAJOR << 16) | (WEFT_VERSION_MINOR << 8) | WEFT_VERSION_PATCH);
    CHECK_EQ(weft_version(), WEFT_VERSION_HEX);

    weft_pool *p = NULL;
    weft_pool_config small = {.workers = 2, .stack_size = WEFT_MIN_STACK_SIZE - 1};
    CHECK_EQ(weft_pool_create(&p, &small), EINVAL);
    CHECK(p == NULL);

    size_t sizes[] = {256u << 10, 4u << 20, 0};
    for (int i = 0; i < 3; i++) {
        weft_pool_config cfg = {.workers = 2, .stack_size = sizes[i], .name = "abcdefghijklmnop"};
        CHECK_EQ(weft_pool_create(&p, &cfg), 0);
        size_t expect = sizes[i] ? sizes[i] : (16u << 20);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, p), 0);
        for (int k = 0; k < 8; k++)
            CHECK_EQ(weft_spawn(&f, check_limit, &expect), 0);
        /* glibc carves a thread's static TLS out of its stack, and
         * ThreadSanitizer's is large: there, 256 KiB leaves too little. */
        if (!(TEST_TSAN && expect < (1u << 20)))
            CHECK_EQ(weft_spawn(&f, deep_task, NULL), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK_EQ(wait_threads_named("abcdefghij-", 2), 2);
        CHECK_EQ(threads_named("abcdefghij-0", NULL, 0) + threads_named("abcdefghij-1", NULL, 0), 2);
        CHECK_EQ(weft_pool_destroy(p), 0);
    }

    /* The default pool: none yet, shut down is 0. */
    CHECK_EQ(weft_default_pool_shutdown(), 0);
    for (int round = 0; round < 3; round++) {
        weft_pool *d = weft_default_pool();
        CHECK(d != NULL);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, NULL), 0);
        CHECK_EQ(weft_default_pool_shutdown(), EBUSY);
        int from_worker = -1;
        CHECK_EQ(weft_spawn(&f, shutdown_from_worker, &from_worker), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK_EQ(from_worker, EDEADLK);
        CHECK_EQ(weft_join(quick, NULL, quick, NULL), 0);
        CHECK_EQ(weft_default_pool_shutdown(), 0);
        CHECK_EQ(weft_default_pool_shutdown(), 0);
    }
    printf("misuse_pool_options: version %s, stack sizes, names, default pool shutdown\n",
           weft_version_string());
    return 0;
}
