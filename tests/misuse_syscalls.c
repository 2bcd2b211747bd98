/*
 * System calls the library makes that fail (the linker's --wrap replaces
 * them in this test, see tests/CMakeLists.txt):
 *   - pthread_getattr_np always fails (it allocates: ENOMEM): the workers'
 *     stack guard still holds, the nesting limit lies inside the worker's
 *     own stack, half of it below where the worker started (it was 0, so
 *     nested helping recursed until the stack overflowed);
 *   - pthread_key_create fails the first few times: weft_ctx_set on a
 *     thread returns ENOMEM while it fails and works once it succeeds (the
 *     first failure was kept forever by pthread_once).
 *
 * SPDX-License-Identifier: MIT
 */
#include "sched/ws.h"
#include "test_common.h"

#include <errno.h>

int __real_pthread_key_create(pthread_key_t *key, void (*destructor)(void *));

int __wrap_pthread_getattr_np(pthread_t t, pthread_attr_t *attr)
{
    (void)t;
    (void)attr;
    return ENOMEM;
}

static atomic_int key_failures_left = 3;

int __wrap_pthread_key_create(pthread_key_t *key, void (*destructor)(void *))
{
    if (atomic_fetch_sub(&key_failures_left, 1) > 0)
        return EAGAIN;
    return __real_pthread_key_create(key, destructor);
}

static int check_nest_limit(void *p)
{
    (void)p;
    char here;
    uintptr_t sp = (uintptr_t)&here, limit = ws_self->nest_limit;
    CHECK(limit < sp);
    CHECK(limit > sp - WS_WORKER_STACK / 2 - (1u << 20)); /* within the stack */
    CHECK(ws_may_nest(ws_self));
    return 0;
}

static void *set_on_thread(void *p)
{
    static weft_ctx_var *var;
    (void)p;
    if (!var)
        CHECK_EQ(weft_ctx_var_create(&var, "v", NULL), 0);
    int err;
    int tries = 0;
    while ((err = weft_ctx_set(var, &tries)) == ENOMEM && tries < 10)
        tries++;
    CHECK_EQ(err, 0);
    CHECK(weft_ctx_get(var) == &tries);
    CHECK(tries >= 1 && tries <= 3); /* failed while the key did, then worked */
    return NULL;
}

int main(void)
{
    watchdog_start(60);
    weft_pool *p;
    weft_pool_config cfg = {.workers = 2};
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(weft_spawn(&f, check_nest_limit, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(weft_pool_destroy(p), 0);

    join_thread(start_thread(set_on_thread, NULL));
    printf("misuse_syscalls: stack guard and context key survive failing calls\n");
    return 0;
}
