/* A task whose snapshot is its own reference (spawned after a set) opens a
 * flow (which borrows that snapshot as its pin), spawns into it, changes its
 * context, closes the flow async and returns: ws_run then drops the task's
 * reference, and the flow's pinned task runs in a freed context. One worker,
 * so the order is fixed: the opener returns before its flow's task is popped. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include "weft.h"

static weft_ctx_var *var;
static weft_flow inner;
static atomic_int seen = -1, got = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int finished;

static int reader(void *arg)
{
    (void)arg;
    atomic_store(&seen, (int)(intptr_t)weft_ctx_get(var)); /* reads the pin */
    return 0;
}

static void done(void *arg, int result)
{
    (void)arg;
    atomic_store(&got, result);
    pthread_mutex_lock(&mu);
    finished = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static int opener(void *arg)
{
    (void)arg;
    if (weft_flow_open(&inner, NULL) || weft_spawn(&inner, reader, NULL))
        abort();
    weft_ctx_set(var, (void *)(intptr_t)3); /* the scope now owns another ctx */
    if (weft_flow_close_async(&inner, done, NULL))
        abort();
    return 0; /* ws_run releases this task's snapshot: the inner flow's pin */
}

int main(void)
{
    weft_pool *pool;
    weft_pool_config cfg = {.workers = 1};
    if (weft_ctx_var_create(&var, "v", NULL) || weft_pool_create(&pool, &cfg))
        return 1;
    weft_flow outer;
    if (weft_flow_open(&outer, pool))
        return 1;
    weft_ctx_set(var, (void *)(intptr_t)1); /* C1, owned by main's base scope */
    if (weft_spawn(&outer, opener, NULL))  /* C1 != outer's pin: the task retains C1 */
        return 1;
    weft_ctx_set(var, (void *)(intptr_t)2); /* main drops C1: the task holds the last ref */
    if (weft_flow_close(&outer))
        return 1;
    pthread_mutex_lock(&mu);
    while (!finished)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    printf("reader saw %d (want 1), done result %d\n", atomic_load(&seen), atomic_load(&got));
    int err;
    while ((err = weft_pool_destroy(pool)) == EBUSY)
        ;
    return atomic_load(&seen) == 1 ? 0 : 1;
}
