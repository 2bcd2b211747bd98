/*
 * tests/ctx_for_scope.c — a weft_ctx_set inside a weft_for piece must not
 * reach the caller, however the range happens to be split.
 *
 * A piece runs in the caller's context (include/weft.h: weft_join's halves
 * "see the caller's context", and weft_for is built on them). A set inside a
 * piece belongs to that piece (docs/context.md: sched/ runs every task in a
 * scope of its own; its parent never sees its sets). When weft_for splits
 * the range, each piece runs inside a weft_join half's scope and the caller
 * is untouched; when the whole range is one piece (end - begin <= grain) and
 * the caller is a worker of the pool, the piece must not run in the caller's
 * own scope either, or whether a set leaks depends on the grain. Checked on
 * a worker (in a task), on a plain thread, with one piece and with many.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ctx_util.h"

#include <stdio.h>

static weft_ctx_var *va;

static void piece(size_t begin, size_t end, void *arg)
{
    (void)begin;
    (void)end;
    CHECK(weft_ctx_get(va) == arg); /* the caller's value */
    CHECK_EQ(weft_ctx_set(va, V(0x99)), 0);
    CHECK(weft_ctx_get(va) == V(0x99));
}

static int failures;

static void one_for(weft_pool *pool, size_t n, const char *where)
{
    void *mine = weft_ctx_get(va);
    CHECK_EQ(weft_for(pool, 0, n, 64, piece, mine), 0);
    void *after = weft_ctx_get(va);
    printf("%s, %s: the caller's value is %#lx after weft_for (was %#lx)\n", where,
           n <= 64 ? "one piece " : "many pieces", (unsigned long)(uintptr_t)after,
           (unsigned long)(uintptr_t)mine);
    if (after != mine)
        failures++;
}

static int in_task(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_ctx_set(va, V(0x11)), 0);
    one_for(NULL, 1000, "in a task   ");
    CHECK_EQ(weft_ctx_set(va, V(0x11)), 0);
    one_for(NULL, 10, "in a task   ");
    return 0;
}

int main(void)
{
    alarm(120);
    setvbuf(stdout, NULL, _IOLBF, 0);
    va = ctx_new_var("a", V(0xA));
    weft_pool *p = ctx_pool_new(2, 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, in_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(weft_ctx_set(va, V(0x22)), 0);
    one_for(p, 1000, "plain thread");
    one_for(p, 10, "plain thread");
    ctx_pool_free(p);
    if (failures) {
        fprintf(stderr, "ctx_for_scope: a set inside a piece reached the caller (%d cases)\n",
                failures);
        return 1;
    }
    puts("ctx_for_scope: all tests passed");
    return 0;
}
