/*
 * tests/queue_deque_stress.c — one owner and three thieves on the split
 * deque (queue/wq_deque.h), checking invariants rather than mere survival.
 *
 * Every item carries a unique id and points to a plain (non-atomic) payload
 * the owner writes just before pushing it; whoever gets the item reads the
 * payload with plain loads and bumps the id's atomic counter. At the end every
 * counter must be exactly 1 and the count and sum of ids must match what was
 * pushed. The plain payload makes the test a message-passing test too: under
 * ThreadSanitizer a publish or steal ordering that is too weak (a release
 * written as relaxed or as acquire, correct on x86 by accident, wrong on
 * ARM64) shows up as a data race on the payload, and a slot accessed
 * non-atomically shows up as a race on the slot.
 *
 *  1. random:    a seeded random mix of push / push bursts / take / publish
 *                against three stealing thieves, small initial capacity (so
 *                the array grows while thieves steal); at least ten million
 *                operations in the Release build.
 *  2. last item: the StoreLoad race on the last element: many rounds in
 *                which the owner pushes one item (or two), publishes it and
 *                takes it back while the thieves try to steal it.
 *  3. regrow:    array reload after growth: each round a fresh deque of
 *                capacity 2 that the owner grows by pushing bursts while the
 *                thieves steal continuously from it.
 *
 * The counts shrink under ThreadSanitizer (5-20x slower), follow
 * $WEFT_TEST_SCALE if set, and grow tenfold with WEFT_SOAK=1. The thieves
 * yield now and then when they find nothing, so that the test also finishes
 * on two oversubscribed cores; the last-item part keeps going until they
 * have been active, so that it still races on a loaded machine. Usage: queue_deque_stress [seed [random|last|regrow]]
 */
#include "queue/wq_deque.h"
#include "tests/check.h"
#include "tests/queue_items.h"
#include "tests/test_common.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { THIEVES = 3 };

/* ---- helpers ----------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The scale factor: $WEFT_TEST_SCALE, else 1, or 0.3 under ThreadSanitizer
 * (every atomic access is a call there); times 10 with WEFT_SOAK=1. */
static double scale(void)
{
    return test_scale_with(0.3, 1.0);
}

typedef struct shared {
    _Atomic(wq_deque *) cur; /* the deque thieves steal from */
    atomic_int          done;
    payload            *pl;
    _Atomic(uint32_t)  *seen; /* per-id take count */
    atomic_int          started; /* thieves running */
    uint64_t            n;    /* ids are 0..n-1 */
} shared;

typedef struct tally {
    uint64_t count, sum;
    uint64_t attempts, empty, retry;
} tally;

typedef struct thief {
    pthread_t         th;
    shared           *sh;
    tally             t;
    _Atomic(uint64_t) quiesce; /* bumped after each steal attempt (regrow) */
} thief;

static void owner_prepare(shared *sh, uint64_t id, wq_item *it)
{
    item_make(sh->pl, id, it);
}

static void record(shared *sh, tally *t, const wq_item *it)
{
    uint64_t id = item_check(sh->pl, sh->seen, sh->n, it);
    t->count++;
    t->sum += id;
}

static void *thief_main(void *arg)
{
    thief   *me = arg;
    shared  *sh = me->sh;
    unsigned idle = 0;
    atomic_fetch_add_explicit(&sh->started, 1, memory_order_relaxed);
    while (!atomic_load_explicit(&sh->done, memory_order_acquire)) {
        wq_deque *d = atomic_load_explicit(&sh->cur, memory_order_seq_cst);
        wq_item   it;
        int       r = WQ_EMPTY;
        if (d)
            r = wq_deque_steal(d, &it);
        me->t.attempts++;
        if (r == WQ_STOLEN) {
            record(sh, &me->t, &it);
            idle = 0;
        } else {
            if (r == WQ_EMPTY)
                me->t.empty++;
            else
                me->t.retry++;
            if (++idle % 256 == 0)
                sched_yield();
        }
        /* Done with d (see regrow's retirement of old deques). */
        atomic_store_explicit(&me->quiesce, me->t.attempts, memory_order_seq_cst);
    }
    return NULL;
}

static void setup(shared *sh, uint64_t n)
{
    memset(sh, 0, sizeof *sh);
    sh->n = n;
    sh->pl = calloc(n, sizeof *sh->pl);
    sh->seen = calloc(n, sizeof *sh->seen);
    CHECK(sh->pl && sh->seen);
    atomic_init(&sh->cur, NULL);
    atomic_init(&sh->done, 0);
    atomic_init(&sh->started, 0);
}

static void start_thieves(shared *sh, thief *th)
{
    for (int i = 0; i < THIEVES; i++) {
        memset(&th[i].t, 0, sizeof th[i].t);
        th[i].sh = sh;
        atomic_init(&th[i].quiesce, 0);
        CHECK_EQ(pthread_create(&th[i].th, NULL, thief_main, &th[i]), 0);
    }
    /* Start only when every thief runs (on a loaded machine they may be
     * slow to be scheduled). */
    while (atomic_load_explicit(&sh->started, memory_order_relaxed) < THIEVES)
        sched_yield();
}

/* Steal attempts made so far by all thieves. */
static uint64_t thief_attempts(thief *th)
{
    uint64_t n = 0;
    for (int i = 0; i < THIEVES; i++)
        n += atomic_load_explicit(&th[i].quiesce, memory_order_relaxed);
    return n;
}

/* Stops the thieves and checks that ids 0..pushed-1 were each taken exactly
 * once, none other. Returns the number of operations (owner pushes, takes
 * and publishes, and thieves' steal attempts). */
static uint64_t finish(shared *sh, thief *th, tally *owner, uint64_t pushed)
{
    atomic_store_explicit(&sh->done, 1, memory_order_release);
    tally all = *owner;
    uint64_t stolen = 0;
    for (int i = 0; i < THIEVES; i++) {
        CHECK_EQ(pthread_join(th[i].th, NULL), 0);
        all.count += th[i].t.count;
        all.sum += th[i].t.sum;
        all.attempts += th[i].t.attempts;
        stolen += th[i].t.count;
    }
    CHECK_EQ(all.count, pushed);
    CHECK_EQ(all.sum, pushed * (pushed - 1) / 2); /* mod 2^64 on both sides */
    for (uint64_t id = 0; id < sh->n; id++) {
        uint32_t c = atomic_load_explicit(&sh->seen[id], memory_order_relaxed);
        if (c != (id < pushed)) {
            fprintf(stderr, "item %llu taken %u times\n", (unsigned long long)id, c);
            CHECK_EQ(c, id < pushed);
        }
    }
    printf("    %llu items, %llu stolen, %llu operations\n", (unsigned long long)pushed,
           (unsigned long long)stolen, (unsigned long long)all.attempts);
    free(sh->pl);
    free(sh->seen);
    return all.attempts;
}

static void owner_push(shared *sh, wq_deque *d, uint64_t id, tally *t)
{
    wq_item it;
    t->attempts++;
    owner_prepare(sh, id, &it);
    CHECK_EQ(wq_deque_push(d, &it), 0);
}

static bool owner_take(shared *sh, wq_deque *d, tally *t)
{
    wq_item it;
    t->attempts++;
    if (!wq_deque_take(d, &it))
        return false;
    record(sh, t, &it);
    return true;
}

/* ---- 1. random mix ------------------------------------------------------ */

static uint64_t test_random(uint64_t n, uint64_t seed)
{
    shared sh;
    thief  th[THIEVES];
    tally  me = {0};
    wq_deque d;
    setup(&sh, n);
    CHECK_EQ(wq_deque_init(&d, 2), 0);
    atomic_store(&sh.cur, &d);
    start_thieves(&sh, th);

    uint64_t next = 0, rng = seed;
    while (next < n) {
        uint64_t r = rng_next(&rng) % 1000;
        if (r < 10) { /* a burst: grows the array while thieves steal */
            uint64_t k = 1 + rng_next(&rng) % 512;
            for (uint64_t i = 0; i < k && next < n; i++) {
                owner_push(&sh, &d, next++, &me);
            }
        } else if (r < 540) {
            owner_push(&sh, &d, next++, &me);
        } else if (r < 990) {
            owner_take(&sh, &d, &me);
        } else {
            wq_deque_publish(&d, r >= 995);
            me.attempts++;
        }
    }
    while (owner_take(&sh, &d, &me))
        ;
    CHECK(!wq_deque_has_private(&d));
    uint64_t ops = finish(&sh, th, &me, n);
    wq_item it;
    CHECK_EQ(wq_deque_steal(&d, &it), WQ_EMPTY);
    CHECK(!wq_deque_take(&d, &it));
    wq_deque_destroy(&d);
    return ops;
}

/* ---- 2. the StoreLoad race on the last item ----------------------------- */

static uint64_t test_last_item(uint64_t rounds, uint64_t seed)
{
    /* At least `rounds` rounds, and more (up to 4x, and 20 s) until the
     * thieves have made as many steal attempts as there were rounds: on a
     * loaded machine the owner could otherwise finish before the thieves
     * get a core, and the race would not be exercised. */
    uint64_t max_rounds = 4 * rounds;
    double   deadline = now_s() + 20;
    shared   sh;
    thief    th[THIEVES];
    tally    me = {0};
    wq_deque d;
    setup(&sh, 2 * max_rounds);
    CHECK_EQ(wq_deque_init(&d, 1), 0);
    atomic_store(&sh.cur, &d);
    start_thieves(&sh, th);

    uint64_t next = 0, owner_won = 0, rng = seed, r;
    for (r = 0; r < max_rounds; r++) {
        if (r >= rounds && r % 4096 == 0 &&
            (thief_attempts(th) >= r || now_s() > deadline))
            break;
        uint64_t seen = thief_attempts(th);
        if (r % 4 == 3) {
            /* Two items: the owner's take of the newer one goes down the
             * "more than one" branch while thieves go for the older one,
             * then both race for the older. */
            owner_push(&sh, &d, next++, &me);
            owner_push(&sh, &d, next++, &me);
            wq_deque_publish(&d, true);
        } else {
            owner_push(&sh, &d, next++, &me);
            wq_deque_publish(&d, true);
        }
        /* Wait (briefly) until a thief has tried since the push, so that
         * one is active right now, then a short random pause varies where
         * the thieves are when the owner lowers split. */
        for (int k = 0; k < 512 && thief_attempts(th) == seen; k++)
            ;
        for (unsigned k = rng_next(&rng) & 63; k; k--)
            (void)atomic_load_explicit(&sh.done, memory_order_relaxed);
        owner_won += owner_take(&sh, &d, &me);
        if (r % 4 == 3)
            owner_won += owner_take(&sh, &d, &me);
        /* Whoever won, the deque is empty now, for the owner too. */
        wq_item it;
        CHECK(!wq_deque_take(&d, &it));
        CHECK_EQ(atomic_load(&d.top), d.bottom);
    }
    printf("    %llu rounds, %llu thief attempts, owner won %llu of %llu\n",
           (unsigned long long)r, (unsigned long long)thief_attempts(th),
           (unsigned long long)owner_won, (unsigned long long)next);
    uint64_t ops = finish(&sh, th, &me, next);
    wq_deque_destroy(&d);
    return ops;
}

/* ---- 3. array reload after growth -------------------------------------- */

static void retire(thief *th, wq_deque *old)
{
    /* A thief that loaded old has finished with it once its quiesce counter
     * moves past the value read after cur was switched (both seq_cst: if we
     * read the old count, its next load of cur sees the new deque). */
    uint64_t q[THIEVES];
    for (int i = 0; i < THIEVES; i++)
        q[i] = atomic_load_explicit(&th[i].quiesce, memory_order_seq_cst);
    for (int i = 0; i < THIEVES; i++)
        while (atomic_load_explicit(&th[i].quiesce, memory_order_seq_cst) == q[i])
            sched_yield();
    wq_deque_destroy(old);
    free(old);
}

static uint64_t test_regrow(uint64_t rounds, unsigned max_log)
{
    uint64_t per_round = ((uint64_t)2 << max_log) - 1;
    shared sh;
    thief  th[THIEVES];
    tally  me = {0};
    setup(&sh, rounds * per_round);
    start_thieves(&sh, th);

    uint64_t next = 0, grown = 0;
    for (uint64_t r = 0; r < rounds; r++) {
        wq_deque *d = malloc(sizeof *d);
        CHECK(d);
        CHECK_EQ(wq_deque_init(d, 1), 0);
        wq_deque *old = atomic_exchange_explicit(&sh.cur, d, memory_order_seq_cst);
        if (old)
            retire(th, old);
        for (unsigned k = 0; k <= max_log; k++) {
            uint64_t burst = (uint64_t)1 << k;
            for (uint64_t i = 0; i < burst; i++) {
                owner_push(&sh, d, next++, &me);
                /* Everything shared at once: thieves are on the array while
                 * the next push grows it. */
                wq_deque_publish(d, true);
            }
            for (uint64_t i = 0; i < burst / 2; i++)
                owner_take(&sh, d, &me);
        }
        while (owner_take(&sh, d, &me))
            ;
        for (wq_array *a = d->arr; a->garbage; a = a->garbage)
            grown++;
    }
    CHECK(grown >= rounds); /* the test did exercise growth */
    printf("    %llu growths\n", (unsigned long long)grown);
    uint64_t ops = finish(&sh, th, &me, next);
    wq_deque *last = atomic_load(&sh.cur);
    wq_deque_destroy(last);
    free(last);
    return ops;
}

int main(int argc, char **argv)
{
    double   f = scale();
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 0x5eed2026;
    double   t0 = now_s(), t;
    uint64_t ops = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("queue_deque_stress: scale %.2f, seed %#llx\n", f, (unsigned long long)seed);

    /* argv[2], optional: run only "random", "last" or "regrow". */
    const char *only = argc > 2 ? argv[2] : "";
    bool all = !*only;

    if (all || !strcmp(only, "random")) {
        t = now_s();
        ops += test_random((uint64_t)(1e7 * f), seed);
        printf("  random:    %.2f s\n", now_s() - t);
    }
    if (all || !strcmp(only, "last")) {
        t = now_s();
        ops += test_last_item((uint64_t)(1e6 * f), seed);
        printf("  last item: %.2f s\n", now_s() - t);
    }
    if (all || !strcmp(only, "regrow")) {
        t = now_s();
        ops += test_regrow((uint64_t)(400 * f), 12);
        printf("  regrow:    %.2f s\n", now_s() - t);
    }

    printf("queue_deque_stress: ok, %llu operations in %.2f s\n", (unsigned long long)ops,
           now_s() - t0);
    if (f >= 1 && all)
        CHECK(ops >= 10 * 1000 * 1000);
    return 0;
}
