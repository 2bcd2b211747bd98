/*
 * Wake-ups after idle: every way a worker makes work stealable wakes a
 * parked peer (issue 10, defect 1). The pool first goes fully idle (every
 * worker announced in sleepers: white-box, no sleep to guess at), then one
 * external spawn wakes one worker, which runs a fork-join shape whose
 * pieces wait for each other (a rendezvous, bounded at 10 s). The verdict
 * is by worker index, not by time: the pieces must all meet, each on a
 * worker of its own. Before the fix, the publish of a single pushed item
 * notified nobody, so the pieces ran one after the other on one worker and
 * never met.
 *
 * Shapes, at 2 and 3 workers, each round after idle:
 *   - join: weft_join(a, b) (3 workers: weft_join(a, weft_join(c, d)));
 *   - spawn + inline: spawn a, run b inline, close;
 *   - spawn loop: spawn one task per worker, close (the owner runs one);
 *   - weft_for over one piece per worker, grain 1, from outside and from a
 *     task;
 *   - external burst: one piece per worker spawned from outside, back to
 *     back. The first spawn wakes one worker; the next ones find that
 *     wake-up on its way and send none (sched/park.c's token), so the
 *     woken worker, which takes one piece and waits in it, must pass a
 *     wake-up on (ws_pass_wake), and so on. Without the pass-on the other
 *     pieces wait in the ring with their workers asleep.
 *
 * SPDX-License-Identifier: MIT
 */
#include "sched/ws.h"
#include "test_common.h"

#include <string.h>

enum { MAXN = 3 };

/* ---- a rendezvous of n pieces ------------------------------------------ */

typedef struct meet {
    int        n;
    atomic_int arrived;
    atomic_int worker[8]; /* worker index + 1 of each piece */
} meet;

static meet M;

static void meet_reset(int n)
{
    memset(&M, 0, sizeof M);
    M.n = n;
}

/* Piece k arrives and waits (bounded) for all n. */
static void meet_piece(int k)
{
    int idx = weft_worker_index();
    CHECK(idx >= 0);
    atomic_store(&M.worker[k], idx + 1);
    atomic_fetch_add(&M.arrived, 1);
    double end = now_s() + 10;
    while (atomic_load(&M.arrived) < M.n && now_s() < end)
        sleep_us(50);
}

/* All n met, each on a worker of its own. */
static void meet_check(const char *what, int nworkers)
{
    int met = atomic_load(&M.arrived);
    unsigned used = 0;
    for (int k = 0; k < M.n; k++) {
        int w = atomic_load(&M.worker[k]);
        CHECK(w >= 1 && w <= nworkers);
        used |= 1u << (w - 1);
    }
    if (met != M.n || __builtin_popcount(used) != M.n) {
        fprintf(stderr, "%s at %d workers: %d of %d pieces ran, on workers:", what, nworkers,
                met, M.n);
        for (int k = 0; k < M.n; k++)
            fprintf(stderr, " %d", atomic_load(&M.worker[k]) - 1);
        fprintf(stderr, "\n");
        CHECK(!"every piece on a worker of its own after idle");
    }
}

static int piece(void *p)
{
    meet_piece((int)(intptr_t)p);
    return 0;
}

/* ---- the shapes (each runs as the root task on a woken worker) --------- */

static int nworkers_now;

static int inner_join(void *p)
{
    (void)p;
    return weft_join(piece, (void *)1, piece, (void *)2);
}

static int shape_join(void *p)
{
    (void)p;
    if (nworkers_now == 2)
        return weft_join(piece, (void *)0, piece, (void *)1);
    return weft_join(piece, (void *)0, inner_join, NULL);
}

static int shape_spawn_inline(void *p)
{
    (void)p;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    for (int k = 1; k < nworkers_now; k++)
        CHECK_EQ(weft_spawn(&f, piece, (void *)(intptr_t)k), 0);
    meet_piece(0); /* the inline part */
    return weft_flow_close(&f);
}

static int shape_spawn_loop(void *p)
{
    (void)p;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    for (int k = 0; k < nworkers_now; k++)
        CHECK_EQ(weft_spawn(&f, piece, (void *)(intptr_t)k), 0);
    return weft_flow_close(&f);
}

static void range_piece(size_t begin, size_t end, void *arg)
{
    (void)arg;
    for (size_t k = begin; k < end; k++)
        meet_piece((int)k);
}

static int shape_for_in_task(void *p)
{
    (void)p;
    return weft_for(NULL, 0, (size_t)nworkers_now, 1, range_piece, NULL);
}

/* ---- rounds ------------------------------------------------------------ */

/* Until every worker of p has announced itself asleep. */
static void wait_all_parked(weft_pool *p)
{
    double end = now_s() + 30;
    while (atomic_load(&p->park.sleepers) != p->nworkers) {
        CHECK(now_s() < end);
        sleep_us(200);
    }
}

/* From outside: weft_for over one piece per worker. */
static void for_outside(weft_pool *p)
{
    CHECK_EQ(weft_for(p, 0, (size_t)nworkers_now, 1, range_piece, NULL), 0);
}

/* From outside: one piece per worker, back to back, into one flow. */
static void external_burst(weft_pool *p)
{
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (int k = 0; k < nworkers_now; k++)
        CHECK_EQ(weft_spawn(&f, piece, (void *)(intptr_t)k), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
}

static void run_root(weft_pool *p, weft_fn shape)
{
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, shape, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
}

int main(void)
{
    watchdog_start(300);
    int rounds = (int)SCALED(5);
    if (rounds > 5)
        rounds = 5 * (test_soak() ? 10 : 1);
    static const struct {
        const char *name;
        weft_fn     fn;                   /* run as a task, or */
        void        (*outside)(weft_pool *); /* run from this thread */
    } shapes[] = {
        {"join", shape_join, NULL},
        {"spawn+inline", shape_spawn_inline, NULL},
        {"spawn loop", shape_spawn_loop, NULL},
        {"weft_for in a task", shape_for_in_task, NULL},
        {"weft_for from outside", NULL, for_outside},
        {"external burst", NULL, external_burst},
    };
    for (int n = 2; n <= MAXN; n++) {
        weft_pool *p;
        weft_pool_config cfg = {.workers = (unsigned)n};
        CHECK_EQ(weft_pool_create(&p, &cfg), 0);
        nworkers_now = n;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            STAGE(shapes[s].name);
            for (int r = 0; r < rounds; r++) {
                ROUND(r);
                wait_all_parked(p);
                meet_reset(n);
                if (shapes[s].fn)
                    run_root(p, shapes[s].fn);
                else
                    shapes[s].outside(p);
                meet_check(shapes[s].name, n);
            }
        }
        CHECK_EQ(weft_pool_destroy(p), 0);
    }
    printf("sched_wake: every shape met on distinct workers after idle\n");
    return 0;
}
