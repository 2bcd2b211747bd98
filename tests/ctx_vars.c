/*
 * tests/ctx_vars.c — context variables with real pools (1, 2, 4 workers):
 *
 *  - 10,000 variables, created at once from the main thread, from four
 *    plain threads and from tasks on workers (also while other tasks are
 *    setting and reading): all distinct; every one reads as its initial
 *    value until set, in every thread and task.
 *  - a few of them (the first, one in the middle, the last of the array,
 *    one created by a task) set in tasks: the task and what it spawns see
 *    the values, every other variable still reads its initial value, the
 *    spawner sees none of it.
 *  - values are opaque: NULL, odd addresses, a pointer to a stack object,
 *    the address of a heap block the test frees itself at the end (a weft
 *    that freed or touched values would double-free or read freed memory
 *    under AddressSanitizer).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ctx_util.h"

#include <stdio.h>
#include <string.h>

enum { NMAIN = 2000, NTHR = 4, PER_THR = 1000, NTASKS = 40, PER_TASK = 100 };
enum { NVARS = NMAIN + NTHR * PER_THR + NTASKS * PER_TASK }; /* 10,000 */

static weft_ctx_var *vars[NVARS];
static void         *inits[NVARS];
static unsigned      g_n;

static void *init_of(size_t i)
{
    return i % 7 == 0 ? NULL : V(((uintptr_t)i << 4) | 0x3); /* odd: not a real pointer */
}

static void create_range(size_t from, size_t count)
{
    for (size_t i = from; i < from + count; i++) {
        inits[i] = init_of(i);
        char name[32];
        snprintf(name, sizeof name, "v%zu", i);
        vars[i] = ctx_new_var(i % 3 ? name : NULL, inits[i]);
    }
}

static void check_initial(size_t from, size_t to, size_t step)
{
    for (size_t i = from; i < to; i += step)
        CHECK(weft_ctx_get(vars[i]) == inits[i]);
}

static void *create_thread(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg;
    create_range(NMAIN + t * PER_THR, PER_THR);
    check_initial(NMAIN + t * PER_THR, NMAIN + (t + 1) * PER_THR, 1);
    return NULL;
}

/* Tasks create their share while other tasks set and read. */
static int create_task(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg;
    size_t from = NMAIN + NTHR * PER_THR + t * PER_TASK;
    create_range(from, PER_TASK);
    check_initial(from, from + PER_TASK, 1);
    /* A task sets one of its own new variables and reads it back. */
    CHECK_EQ(weft_ctx_set(vars[from], V(0x5E7)), 0);
    CHECK(weft_ctx_get(vars[from]) == V(0x5E7));
    check_initial(from + 1, from + PER_TASK, 1);
    return 0;
}

static int churn_task(void *arg)
{
    (void)arg;
    /* Sets and reads of the main thread's variables meanwhile. */
    for (int k = 0; k < 50; k++) {
        size_t i = (size_t)k * 37 % NMAIN;
        CHECK_EQ(weft_ctx_set(vars[i], V(0x1000 + k)), 0);
        CHECK(weft_ctx_get(vars[i]) == V(0x1000 + k));
    }
    return 0;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return (x > y) - (x < y);
}

static void test_create_everywhere(weft_pool *p)
{
    create_range(0, NMAIN);
    pthread_t th[NTHR];
    for (size_t t = 0; t < NTHR; t++)
        CHECK_EQ(pthread_create(&th[t], NULL, create_thread, V(t)), 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (size_t t = 0; t < NTASKS; t++) {
        CHECK_EQ(weft_spawn(&f, create_task, V(t)), 0);
        CHECK_EQ(weft_spawn(&f, churn_task, NULL), 0);
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    for (size_t t = 0; t < NTHR; t++)
        CHECK_EQ(pthread_join(th[t], NULL), 0);
    /* All distinct. */
    static weft_ctx_var *sorted[NVARS];
    memcpy(sorted, vars, sizeof vars);
    for (size_t i = 0; i < NVARS; i++)
        CHECK(sorted[i] != NULL);
    qsort(sorted, NVARS, sizeof sorted[0], cmp_ptr);
    for (size_t i = 1; i < NVARS; i++)
        CHECK(sorted[i] != sorted[i - 1]);
    /* The main thread never set any: all initial here. */
    check_initial(0, NVARS, 1);
}

/* ------------------------------------------------------------------------ */

struct opaque {
    size_t idx[6];
    void  *val[6];
    int    n;
    _Atomic(int) checked;
};

static bool is_set(const struct opaque *o, size_t i)
{
    for (int k = 0; k < o->n; k++)
        if (o->idx[k] == i)
            return true;
    return false;
}

static void check_opaque(struct opaque *o)
{
    for (int k = 0; k < o->n; k++)
        CHECK(weft_ctx_get(vars[o->idx[k]]) == o->val[k]);
    /* Everything else: initial (a sample plus the neighbours of what was set). */
    for (size_t i = 0; i < NVARS; i += 97)
        if (!is_set(o, i))
            CHECK(weft_ctx_get(vars[i]) == inits[i]);
    for (int k = 0; k < o->n; k++) {
        size_t i = o->idx[k];
        if (i > 0 && !is_set(o, i - 1))
            CHECK(weft_ctx_get(vars[i - 1]) == inits[i - 1]);
        if (i + 1 < NVARS && !is_set(o, i + 1))
            CHECK(weft_ctx_get(vars[i + 1]) == inits[i + 1]);
    }
}

static int opaque_child(void *arg)
{
    check_opaque(arg);
    atomic_fetch_add(&((struct opaque *)arg)->checked, 1);
    return 0;
}

static int opaque_task(void *arg)
{
    struct opaque *o = arg;
    check_initial(0, NVARS, 13); /* nothing set yet in this task */
    for (int k = 0; k < o->n; k++)
        CHECK_EQ(weft_ctx_set(vars[o->idx[k]], o->val[k]), 0);
    check_opaque(o);
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(weft_spawn(&g, opaque_child, o), 0);
    CHECK_EQ(weft_spawn(weft_current_flow(), opaque_child, o), 0);
    CHECK_EQ(weft_flow_close(&g), 0);
    check_opaque(o);
    return 0;
}

static void test_set_few(weft_pool *p)
{
    int on_stack = 0;
    void *heap = malloc(32); /* freed by the test below, never by weft */
    CHECK(heap != NULL);
    struct opaque o = {
        .idx = {0, NVARS / 2, NVARS - 1, NMAIN + NTHR * PER_THR + 5 * PER_TASK, 1, 7},
        .val = {NULL, V(0x1), &on_stack, heap, V(UINTPTR_MAX & ~(uintptr_t)0xF), V(0x42)},
        .n = 6,
    };
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, opaque_task, &o), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&o.checked), 9);
    check_initial(0, NVARS, 1); /* the spawner saw none of it */
    free(heap);
}

int main(void)
{
    alarm(600);
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* Variables are created once (they live until the process ends); the
     * pool sizes change around them. */
    g_n = 2;
    weft_pool *p = ctx_pool_new(g_n, 0);
    test_create_everywhere(p);
    ctx_pool_free(p);
    for (size_t k = 0; k < CTX_NSIZES; k++) {
        g_n = ctx_pool_sizes[k];
        printf("pool of %u workers\n", g_n);
        p = ctx_pool_new(g_n, 0);
        for (int r = 0; r < 5; r++)
            test_set_few(p);
        ctx_pool_free(p);
    }
    puts("ctx_vars: all tests passed");
    return 0;
}
