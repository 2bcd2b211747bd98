/*
 * tests/ctx_fuzz.c — a seeded random mix of everything that creates, pins,
 * borrows, retains and releases context snapshots, checked against a model,
 * on pools of 1, 2 and 4 workers (plus a second pool with snapshots and a
 * WEFT_POOL_NO_CTX pool that tasks open flows on).
 *
 * Every task knows the values it must see (its spawner's, at the spawn) and
 * tracks its own sets, checking all variables after every step. Steps, at
 * random: set a variable (a fresh value, the value already there, NULL);
 * spawn into its own flow, into a nested flow it opened, into any ancestor
 * flow (all open while it runs); capture and hand the snapshot to other
 * tasks, to an "I/O thread" (a plain pthread that runs it with weft_ctx_run
 * and spawns into the root flow, opened by main, from inside the run) or
 * keep it until every pool is destroyed; run a handed-over snapshot inside
 * the task and spawn from inside the run; weft_join; open a flow on the
 * other pool and on the NO_CTX pool (whose tasks set and capture their
 * workers' own contexts). Tasks nap at random so that parents return before
 * their children run. The main thread sets before and after opening the
 * root flow, so that roots both borrow the pin and hold references.
 *
 * A snapshot freed too early is a use-after-free under AddressSanitizer, or
 * a wrong value in the Release build (freed blocks are reused); one never
 * freed is a LeakSanitizer report. WEFT_FUZZ_SEED=n picks the seed,
 * WEFT_SOAK=1 runs longer.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ctx_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

enum { NV = 4, MAXANC = 6, MAXDEPTH = 7, STASH = 128, KEPT = 256 };

struct model {
    void *v[NV];
};

static weft_ctx_var *fv[NV];
static void         *fv_init[NV];
static _Atomic(uintptr_t) g_val = 0x100;

static void *fresh(void)
{
    return V(atomic_fetch_add_explicit(&g_val, 1, memory_order_relaxed) << 4);
}

static uint64_t rnd(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void check_model(const struct model *m)
{
    for (int k = 0; k < NV; k++)
        CHECK(weft_ctx_get(fv[k]) == m->v[k]);
}

static void read_model(struct model *m)
{
    for (int k = 0; k < NV; k++)
        m->v[k] = weft_ctx_get(fv[k]);
}

static void set_var(struct model *m, int k, void *v)
{
    CHECK_EQ(weft_ctx_set(fv[k], v), 0);
    m->v[k] = v;
}

static void random_set(struct model *m, uint64_t *rng)
{
    int k = (int)(rnd(rng) % NV);
    unsigned r = (unsigned)(rnd(rng) % 16);
    set_var(m, k, r == 0 ? NULL : r == 1 ? m->v[k] : fresh());
}

/* ---- pools, tasks, arenas ---------------------------------------------- */

static weft_pool *pA, *pB, *pC; /* snapshots; snapshots; NO_CTX */

struct ftask {
    struct model  want;
    uint64_t      seed;
    int           depth;
    int           nanc;
    weft_flow    *anc[MAXANC]; /* anc[0]: the flow it runs in */
    unsigned char anc_pool[MAXANC];
    bool          counted;
};

static struct ftask     *arena;
static size_t            arena_cap;
static _Atomic(size_t)   arena_next;
static _Atomic(long)     live; /* spawned fuzz tasks not yet finished */

struct nct {
    uint64_t seed;
    int      depth;
};
static struct nct      *nc_arena;
static _Atomic(size_t)  nc_next;

static struct ftask *ft_new(const struct model *m, uint64_t seed, int depth)
{
    size_t i = atomic_fetch_add(&arena_next, 1);
    if (i >= arena_cap)
        return NULL;
    struct ftask *c = &arena[i];
    memset(c, 0, sizeof *c);
    c->want = *m;
    c->seed = seed;
    c->depth = depth;
    return c;
}

/* The child's ancestors: into (on pool `pool`), then parent's from `from`. */
static void ft_anc(struct ftask *c, weft_flow *into, int pool, const struct ftask *t, int from)
{
    c->nanc = 0;
    if (into) {
        c->anc[0] = into;
        c->anc_pool[0] = (unsigned char)pool;
        c->nanc = 1;
    }
    for (int j = from; j < t->nanc && c->nanc < MAXANC; j++) {
        c->anc[c->nanc] = t->anc[j];
        c->anc_pool[c->nanc] = t->anc_pool[j];
        c->nanc++;
    }
}

static int fuzz_task(void *arg);

static void ft_spawn(weft_flow *f, struct ftask *c)
{
    c->counted = true;
    atomic_fetch_add(&live, 1);
    CHECK_EQ(weft_spawn(f, fuzz_task, c), 0);
}

/* ---- handing snapshots around ------------------------------------------ */

struct sentry {
    weft_ctx    *ctx;
    struct model m;
};

static pthread_mutex_t stash_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sentry   stash[STASH], kept[KEPT];
static int             nstash, nkept;

static int expect_model(void *arg)
{
    check_model(arg);
    return 0;
}

/* Takes over e.ctx: stashed, kept, or run here and released. */
static void hand_over(struct sentry e, bool keep)
{
    pthread_mutex_lock(&stash_lock);
    bool ok = false;
    if (keep && nkept < KEPT) {
        kept[nkept++] = e;
        ok = true;
    } else if (!keep && nstash < STASH) {
        stash[nstash++] = e;
        ok = true;
    }
    pthread_mutex_unlock(&stash_lock);
    if (!ok) {
        CHECK_EQ(weft_ctx_run(e.ctx, expect_model, &e.m), 0);
        weft_ctx_release(e.ctx);
    }
}

static bool take_stashed(struct sentry *e, uint64_t *rng)
{
    pthread_mutex_lock(&stash_lock);
    bool ok = nstash > 0;
    if (ok) {
        int i = (int)(rnd(rng) % (uint64_t)nstash);
        *e = stash[i];
        stash[i] = stash[--nstash];
    }
    pthread_mutex_unlock(&stash_lock);
    return ok;
}

static void capture_into(struct sentry *e, const struct model *m)
{
    e->ctx = weft_ctx_capture();
    CHECK(e->ctx != NULL);
    e->m = *m;
}

/* ---- the NO_CTX pool's tasks -------------------------------------------- */

static int nc_leaf(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    struct model m;
    read_model(&m);
    random_set(&m, &rng);
    check_model(&m);
    return 0;
}

static int nc_task(void *arg)
{
    struct nct *n = arg;
    uint64_t rng = n->seed;
    struct model m;
    read_model(&m); /* the worker thread's own context: whatever it has */
    int ops = 1 + (int)(rnd(&rng) % 4);
    for (int i = 0; i < ops; i++) {
        switch (rnd(&rng) % 5) {
        case 0:
        case 1:
            random_set(&m, &rng);
            break;
        case 2: { /* capture: values read now, on this thread */
            struct sentry e;
            capture_into(&e, &m);
            hand_over(e, rnd(&rng) % 3 == 0);
            break;
        }
        case 3:
            if (n->depth < 3) {
                size_t j = atomic_fetch_add(&nc_next, 1);
                if (j < arena_cap) {
                    nc_arena[j] = (struct nct){rnd(&rng), n->depth + 1};
                    CHECK_EQ(weft_spawn(weft_current_flow(), nc_task, &nc_arena[j]), 0);
                }
            }
            break;
        default:
            CHECK_EQ(weft_join(nc_leaf, V(rnd(&rng)), nc_leaf, V(rnd(&rng))), 0);
            read_model(&m); /* an inline half may have changed this thread's */
            break;
        }
        check_model(&m);
    }
    return 0;
}

/* ---- the fuzz task ------------------------------------------------------ */

struct sbody {
    struct sentry e;
    struct ftask *t;
    uint64_t      rng;
    bool          may_spawn;
};

/* Inside weft_ctx_run of a handed-over snapshot, in a task. */
static int stash_body(void *arg)
{
    struct sbody *b = arg;
    check_model(&b->e.m);
    struct model m = b->e.m;
    if (rnd(&b->rng) % 2)
        random_set(&m, &b->rng);
    if (b->may_spawn) {
        /* Into the task's own flow, from inside the run. */
        CHECK(weft_current_flow() == b->t->anc[0]);
        struct ftask *c = ft_new(&m, rnd(&b->rng), b->t->depth + 1);
        if (c) {
            ft_anc(c, NULL, 0, b->t, 0);
            ft_spawn(weft_current_flow(), c);
        }
        if (rnd(&b->rng) % 2) { /* a flow opened and closed inside the run */
            weft_flow g;
            CHECK_EQ(weft_flow_open(&g, NULL), 0);
            c = ft_new(&m, rnd(&b->rng), b->t->depth + 1);
            if (c) {
                ft_anc(c, &g, b->t->anc_pool[0], b->t, 0);
                ft_spawn(&g, c);
            }
            random_set(&m, &b->rng);
            c = ft_new(&m, rnd(&b->rng), b->t->depth + 1);
            if (c) {
                ft_anc(c, &g, b->t->anc_pool[0], b->t, 0);
                ft_spawn(&g, c);
            }
            CHECK_EQ(weft_flow_close(&g), 0);
        }
    }
    check_model(&m);
    return 0;
}

struct own_run {
    struct model m;
    uint64_t     rng;
};

static int own_body(void *arg)
{
    struct own_run *o = arg;
    check_model(&o->m);
    random_set(&o->m, &o->rng);
    random_set(&o->m, &o->rng);
    check_model(&o->m);
    return 0;
}

static int fuzz_task(void *arg)
{
    struct ftask *t = arg;
    check_model(&t->want);
    CHECK(weft_current_flow() == t->anc[0]);
    uint64_t rng = t->seed;
    switch (rnd(&rng) % 8) {
    case 0:
        sched_yield();
        break;
    case 1:
        sleep_us((long)(rnd(&rng) % 300));
        break;
    default:
        break;
    }
    check_model(&t->want);
    struct model cur = t->want;
    int my_pool = t->anc_pool[0];
    bool may_spawn = t->depth < MAXDEPTH;
    weft_flow nested;
    bool nested_open = false;
    int ops = 1 + (int)(rnd(&rng) % 6);
    for (int op = 0; op < ops; op++) {
        switch (rnd(&rng) % 13) {
        case 0:
        case 1:
            random_set(&cur, &rng);
            break;
        case 2: /* into our own flow */
            if (may_spawn) {
                struct ftask *c = ft_new(&cur, rnd(&rng), t->depth + 1);
                if (c) {
                    ft_anc(c, NULL, 0, t, 0);
                    ft_spawn(weft_current_flow(), c);
                }
            }
            break;
        case 3: /* into a nested flow */
            if (may_spawn) {
                if (!nested_open) {
                    CHECK_EQ(weft_flow_open(&nested, NULL), 0);
                    nested_open = true;
                }
                struct ftask *c = ft_new(&cur, rnd(&rng), t->depth + 1);
                if (c) {
                    ft_anc(c, &nested, my_pool, t, 0);
                    ft_spawn(&nested, c);
                }
            }
            break;
        case 4: /* into an ancestor flow */
            if (may_spawn) {
                int j = (int)(rnd(&rng) % (uint64_t)t->nanc);
                struct ftask *c = ft_new(&cur, rnd(&rng), t->depth + 1);
                if (c) {
                    ft_anc(c, NULL, 0, t, j);
                    ft_spawn(t->anc[j], c);
                }
            }
            break;
        case 5: { /* capture and hand over */
            struct sentry e;
            capture_into(&e, &cur);
            hand_over(e, rnd(&rng) % 4 == 0);
            break;
        }
        case 6: { /* run a handed-over snapshot here */
            struct sbody b;
            if (take_stashed(&b.e, &rng)) {
                b.t = t;
                b.rng = rnd(&rng);
                b.may_spawn = may_spawn;
                CHECK_EQ(weft_ctx_run(b.e.ctx, stash_body, &b), 0);
                weft_ctx_release(b.e.ctx);
            }
            break;
        }
        case 7: /* weft_join */
            if (may_spawn) {
                struct ftask *a = ft_new(&cur, rnd(&rng), t->depth + 1);
                struct ftask *b = ft_new(&cur, rnd(&rng), t->depth + 1);
                if (a && b) {
                    ft_anc(a, NULL, 0, t, 0);
                    ft_anc(b, NULL, 0, t, 0);
                    CHECK_EQ(weft_join(fuzz_task, a, fuzz_task, b), 0);
                }
            }
            break;
        case 8: { /* our own snapshot, run and set inside */
            struct own_run o = {cur, rnd(&rng)};
            weft_ctx *c = weft_ctx_capture();
            CHECK(c != NULL);
            if (rnd(&rng) % 2)
                random_set(&cur, &rng); /* after the capture: not in it */
            CHECK_EQ(weft_ctx_run(c, own_body, &o), 0);
            weft_ctx_release(c);
            break;
        }
        case 9: /* a flow on the other pool with snapshots (A -> B only) */
            if (may_spawn && my_pool == 0) {
                weft_flow fb;
                CHECK_EQ(weft_flow_open(&fb, pB), 0);
                for (int i = 0; i < 2; i++) {
                    struct ftask *c = ft_new(&cur, rnd(&rng), t->depth + 1);
                    if (c) {
                        ft_anc(c, &fb, 1, t, 0);
                        ft_spawn(&fb, c);
                    }
                    random_set(&cur, &rng);
                }
                CHECK_EQ(weft_flow_close(&fb), 0);
            }
            break;
        case 10: /* a flow on the NO_CTX pool */
            if (may_spawn && my_pool == 0) {
                weft_flow fc;
                CHECK_EQ(weft_flow_open(&fc, pC), 0);
                for (int i = 0; i < 2; i++) {
                    size_t j = atomic_fetch_add(&nc_next, 1);
                    if (j < arena_cap) {
                        nc_arena[j] = (struct nct){rnd(&rng), 0};
                        CHECK_EQ(weft_spawn(&fc, nc_task, &nc_arena[j]), 0);
                    }
                }
                CHECK_EQ(weft_flow_close(&fc), 0);
            }
            break;
        case 11: { /* capture and release at once */
            weft_ctx *c = weft_ctx_capture();
            CHECK(c != NULL);
            weft_ctx_release(c);
            break;
        }
        default: /* set, then spawn into our own flow and return soon */
            if (may_spawn) {
                random_set(&cur, &rng);
                struct ftask *c = ft_new(&cur, rnd(&rng), t->depth + 1);
                if (c) {
                    ft_anc(c, NULL, 0, t, 0);
                    ft_spawn(weft_current_flow(), c);
                }
            }
            break;
        }
        check_model(&cur);
    }
    if (nested_open)
        CHECK_EQ(weft_flow_close(&nested), 0);
    check_model(&cur);
    if (t->counted)
        atomic_fetch_sub(&live, 1);
    return 0;
}

/* ---- the I/O thread: runs handed-over snapshots, spawns into the root ---- */

static weft_flow      root;
static _Atomic(int)   io_stop;
static struct ftask   root_anchor; /* ancestors of what the I/O thread spawns */

struct io_body {
    struct sentry e;
    uint64_t      rng;
};

static int io_run(void *arg)
{
    struct io_body *b = arg;
    check_model(&b->e.m);
    struct model m = b->e.m;
    if (rnd(&b->rng) % 2)
        random_set(&m, &b->rng);
    /* From a plain thread inside weft_ctx_run, into a flow opened by main. */
    struct ftask *c = ft_new(&m, rnd(&b->rng), 1);
    if (c) {
        ft_anc(c, NULL, 0, &root_anchor, 0);
        ft_spawn(&root, c);
    }
    check_model(&m);
    return 0;
}

static void *io_thread(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    CHECK_EQ(weft_ctx_set(fv[0], V(0x10)), 0); /* a context of its own */
    struct model own;
    read_model(&own);
    while (!atomic_load(&io_stop)) {
        struct io_body b;
        if (!take_stashed(&b.e, &rng)) {
            sleep_us(100);
            continue;
        }
        b.rng = rnd(&rng);
        CHECK_EQ(weft_ctx_run(b.e.ctx, io_run, &b), 0);
        weft_ctx_release(b.e.ctx); /* before what it spawned has run */
        check_model(&own);
    }
    return NULL;
}

/* ---- one round ---------------------------------------------------------- */

static void run_keep_release(struct sentry *e, int n)
{
    for (int i = 0; i < n; i++) {
        CHECK_EQ(weft_ctx_run(e[i].ctx, expect_model, &e[i].m), 0);
        weft_ctx_release(e[i].ctx);
    }
}

static void round_run(unsigned workers, uint64_t seed)
{
    uint64_t rng = seed;
    pA = ctx_pool_new(workers, 0);
    pB = ctx_pool_new(2, 0);
    pC = ctx_pool_new(2, WEFT_POOL_NO_CTX);
    atomic_store(&arena_next, 0);
    atomic_store(&nc_next, 0);
    atomic_store(&live, 0);
    atomic_store(&io_stop, 0);

    struct model m;
    for (int k = 0; k < NV; k++)
        if (rnd(&rng) % 2)
            set_var(&m, k, fresh());
    read_model(&m);
    CHECK_EQ(weft_flow_open(&root, pA), 0);
    root_anchor.nanc = 1;
    root_anchor.anc[0] = &root;
    root_anchor.anc_pool[0] = 0;
    /* A capture of main's context: equal to the root's pin. */
    struct sentry e;
    capture_into(&e, &m);
    hand_over(e, false);

    for (int i = 0; i < 8; i++) {
        if (i >= 4) /* the last ones with a context that is not the pin */
            random_set(&m, &rng);
        struct ftask *c = ft_new(&m, rnd(&rng), 0);
        CHECK(c != NULL);
        ft_anc(c, NULL, 0, &root_anchor, 0);
        ft_spawn(&root, c);
    }
    random_set(&m, &rng); /* main drops what it had */

    pthread_t io;
    CHECK_EQ(pthread_create(&io, NULL, io_thread, V(rnd(&rng))), 0);
    while (atomic_load(&live) != 0)
        sleep_us(500);
    atomic_store(&io_stop, 1);
    CHECK_EQ(pthread_join(io, NULL), 0);
    CHECK_EQ(weft_flow_close(&root), 0);
    CHECK_EQ(atomic_load(&live), 0);
    check_model(&m);

    /* What is still stashed, run here; then the pools go, and the kept
     * snapshots outlive them. */
    pthread_mutex_lock(&stash_lock);
    int ns = nstash;
    nstash = 0;
    pthread_mutex_unlock(&stash_lock);
    run_keep_release(stash, ns);
    ctx_pool_free(pA);
    ctx_pool_free(pB);
    ctx_pool_free(pC);
    run_keep_release(kept, nkept);
    nkept = 0;
    size_t used = atomic_load(&arena_next);
    printf("  seed %#" PRIx64 ": %zu tasks, %zu NO_CTX tasks, %d stashed left\n", seed,
           used < arena_cap ? used : arena_cap,
           atomic_load(&nc_next) < arena_cap ? atomic_load(&nc_next) : arena_cap, ns);
}

int main(void)
{
    alarm(1500);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int k = 0; k < NV; k++) {
        fv_init[k] = k % 2 ? NULL : V(0xF000 + k);
        fv[k] = ctx_new_var("fuzz", fv_init[k]);
    }
    const char *soak = getenv("WEFT_SOAK");
    const char *s = getenv("WEFT_FUZZ_SEED");
    uint64_t seed = s && *s ? strtoull(s, NULL, 0) : 0xC0FFEEu;
    int rounds = TEST_SANITIZED ? 3 : 8;
    arena_cap = TEST_SANITIZED ? 15000 : 30000;
    /* Under ThreadSanitizer each round's pools leave about 200 MB of its
     * shadow and thread state behind (the process's own memory stays flat:
     * the Release build's RSS does not grow, and ASan finds no leak), so
     * ten times the rounds ran a 24 GB machine out of memory. */
    if (soak && *soak && *soak != '0')
        rounds *= TEST_TSAN ? 3 : 10;
    arena = calloc(arena_cap, sizeof *arena);
    nc_arena = calloc(arena_cap, sizeof *nc_arena);
    CHECK(arena && nc_arena);
    for (size_t k = 0; k < CTX_NSIZES; k++) {
        printf("pool of %u workers\n", ctx_pool_sizes[k]);
        for (int r = 0; r < rounds; r++)
            round_run(ctx_pool_sizes[k], rnd(&seed));
    }
    free(arena);
    free(nc_arena);
    puts("ctx_fuzz: all tests passed");
    return 0;
}
