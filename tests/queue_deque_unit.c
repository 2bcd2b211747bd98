/*
 * tests/queue_deque_unit.c — sequential semantics of the split deque
 * (queue/wq_deque.h), one thread playing both the owner and the thieves.
 *
 *  - LIFO for the owner's take, FIFO for steals, on every path (private
 *    part, shared part, both);
 *  - empty and one-element cases; take/steal on an empty deque return
 *    nothing and leave it usable (the unsigned-underflow pitfall: indices
 *    never go below top however many takes hit an empty deque);
 *  - growth: ten million pushes without a take (two million under TSan),
 *    then every item taken back exactly once; growth in the middle of
 *    steals;
 *  - publish: publish(false) publishes the older half of the private items
 *    (rounded up), publish(true) all of them; a thief's WQ_HINT_SPLIT makes the
 *    owner's next push publish at least half. Whether a push publishes
 *    without a request is the deque's policy; the tests do not fix it.
 */
#include "queue/wq_deque.h"
#include "tests/check.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC 0x5eedf00dcafeULL

static wq_item mk(uint64_t id)
{
    wq_item it;
    it.w[0] = (uintptr_t)id;
    it.w[1] = (uintptr_t)(id ^ MAGIC);
    it.w[2] = (uintptr_t)(id * 3 + 1);
    it.w[3] = (uintptr_t)~id;
    return it;
}

/* Checks that it is a well-formed item (no torn or garbage slot) and
 * returns its id. */
static uint64_t id_of(const wq_item *it)
{
    uint64_t id = it->w[0];
    CHECK_EQ(it->w[1], id ^ MAGIC);
    CHECK_EQ(it->w[2], id * 3 + 1);
    CHECK_EQ(it->w[3], (uintptr_t)~id);
    return id;
}

static int64_t top_of(wq_deque *d)
{
    return atomic_load_explicit(&d->top, memory_order_relaxed);
}

static int64_t split_of(wq_deque *d)
{
    return atomic_load_explicit(&d->split, memory_order_relaxed);
}

/* The number of private items (the owner's alone). */
static int64_t private_count(wq_deque *d)
{
    return d->bottom - d->split_own;
}

/* top <= split <= bottom, and the owner's copy of split is split. */
static void check_invariants(wq_deque *d)
{
    CHECK(top_of(d) <= split_of(d));
    CHECK(split_of(d) <= d->bottom);
    CHECK_EQ(split_of(d), d->split_own);
    CHECK(d->bottom - top_of(d) <= d->arr->mask + 1);
}

static void push(wq_deque *d, uint64_t id)
{
    wq_item it = mk(id);
    CHECK_EQ(wq_deque_push(d, &it), 0);
    check_invariants(d);
}

static void expect_take(wq_deque *d, uint64_t id)
{
    wq_item it;
    memset(&it, 0xab, sizeof it);
    CHECK(wq_deque_take(d, &it));
    CHECK_EQ(id_of(&it), id);
    check_invariants(d);
}

static void expect_take_empty(wq_deque *d)
{
    wq_item it;
    CHECK(!wq_deque_take(d, &it));
    check_invariants(d);
}

static void expect_steal(wq_deque *d, uint64_t id)
{
    wq_item it;
    memset(&it, 0xab, sizeof it);
    CHECK_EQ(wq_deque_steal(d, &it), WQ_STOLEN);
    CHECK_EQ(id_of(&it), id);
    check_invariants(d);
}

static void expect_steal_empty(wq_deque *d)
{
    wq_item it;
    CHECK_EQ(wq_deque_steal(d, &it), WQ_EMPTY);
    check_invariants(d);
}

static void test_init_args(void)
{
    wq_deque d;
    CHECK_EQ(wq_deque_init(&d, 0), EINVAL);
    CHECK_EQ(wq_deque_init(&d, 41), EINVAL);
    CHECK_EQ(wq_deque_init(&d, 1), 0);
    CHECK_EQ(d.arr->mask, 1);
    wq_deque_destroy(&d);
}

static void test_empty(void)
{
    wq_deque d;
    CHECK_EQ(wq_deque_init(&d, 3), 0);
    CHECK(!wq_deque_stealable(&d));
    CHECK(!wq_deque_has_private(&d));
    /* The underflow pitfall: many takes and steals on an empty deque must
     * not move bottom below top nor make later operations see garbage. */
    for (int i = 0; i < 100000; i++) {
        expect_take_empty(&d);
        if (i % 7 == 0)
            expect_steal_empty(&d);
    }
    CHECK_EQ(d.bottom, 0);
    CHECK_EQ(top_of(&d), 0);
    CHECK_EQ(split_of(&d), 0);
    /* Still usable, and still exactly right. */
    push(&d, 1);
    push(&d, 2);
    expect_take(&d, 2);
    expect_take(&d, 1);
    expect_take_empty(&d);
    expect_take_empty(&d);
    /* The same after steals have moved top forward. */
    for (uint64_t i = 10; i < 20; i++)
        push(&d, i);
    wq_deque_publish(&d, true);
    for (uint64_t i = 10; i < 20; i++)
        expect_steal(&d, i);
    expect_steal_empty(&d);
    for (int i = 0; i < 1000; i++)
        expect_take_empty(&d);
    /* Empty and consistent (whether item 1 went through the shared path
     * depends on publish heuristics, not on correctness). */
    CHECK_EQ(top_of(&d), d.bottom);
    CHECK_EQ(split_of(&d), d.bottom);
    CHECK(d.bottom == 10 || d.bottom == 11);
    push(&d, 30);
    expect_take(&d, 30);
    expect_take_empty(&d);
    wq_deque_destroy(&d);
}

static void test_one_element(void)
{
    wq_deque d;
    CHECK_EQ(wq_deque_init(&d, 1), 0);
    /* Private: the owner gets it back; a thief sees nothing. */
    push(&d, 7);
    CHECK(wq_deque_has_private(&d));
    CHECK(!wq_deque_stealable(&d));
    expect_take(&d, 7);
    expect_take_empty(&d);
    /* Published, taken by the owner through the shared (last item) path. */
    push(&d, 8);
    wq_deque_publish(&d, false);
    CHECK(wq_deque_stealable(&d));
    CHECK(!wq_deque_has_private(&d));
    expect_take(&d, 8);
    expect_take_empty(&d);
    expect_steal_empty(&d);
    /* Published, stolen; then the owner finds it empty. */
    push(&d, 9);
    wq_deque_publish(&d, true);
    expect_steal(&d, 9);
    expect_steal_empty(&d);
    expect_take_empty(&d);
    /* A thief's request makes the owner's next push publish it. */
    expect_steal_empty(&d);
    CHECK((atomic_load(&d.hint) & WQ_HINT_SPLIT));
    push(&d, 10);
    CHECK(!(atomic_load(&d.hint) & WQ_HINT_SPLIT));
    CHECK(wq_deque_stealable(&d));
    expect_steal(&d, 10);
    expect_take_empty(&d);
    wq_deque_destroy(&d);
}

static void test_lifo_fifo(void)
{
    enum { N = 1000 };
    wq_deque d;
    CHECK_EQ(wq_deque_init(&d, 4), 0);

    /* LIFO on the private path. */
    for (uint64_t i = 0; i < N; i++)
        push(&d, i);
    for (uint64_t i = N; i-- > 0;)
        expect_take(&d, i);
    expect_take_empty(&d);

    /* LIFO on the shared path (everything published). */
    for (uint64_t i = 0; i < N; i++)
        push(&d, i);
    wq_deque_publish(&d, true);
    CHECK(!wq_deque_has_private(&d));
    for (uint64_t i = N; i-- > 0;)
        expect_take(&d, i);
    expect_take_empty(&d);

    /* LIFO across both parts (half published). */
    for (uint64_t i = 0; i < N; i++)
        push(&d, i);
    wq_deque_publish(&d, false);
    CHECK_EQ(split_of(&d) - top_of(&d), N / 2);
    for (uint64_t i = N; i-- > 0;)
        expect_take(&d, i);
    expect_take_empty(&d);

    /* FIFO for thieves. */
    for (uint64_t i = 0; i < N; i++)
        push(&d, i);
    wq_deque_publish(&d, true);
    for (uint64_t i = 0; i < N; i++)
        expect_steal(&d, i);
    expect_steal_empty(&d);
    expect_take_empty(&d);

    /* Both ends at once: thieves take the oldest, the owner the newest. */
    for (uint64_t i = 0; i < 10; i++)
        push(&d, i);
    wq_deque_publish(&d, true);
    expect_steal(&d, 0);
    expect_steal(&d, 1);
    expect_take(&d, 9);
    expect_take(&d, 8);
    expect_steal(&d, 2);
    push(&d, 100); /* private again, above the shared part */
    expect_steal(&d, 3);
    expect_take(&d, 100);
    expect_take(&d, 7);
    for (uint64_t i = 4; i < 7; i++)
        expect_steal(&d, i);
    expect_steal_empty(&d);
    expect_take_empty(&d);
    wq_deque_destroy(&d);
}

static void test_publish(void)
{
    wq_deque d;
    CHECK_EQ(wq_deque_init(&d, 2), 0);
    uint64_t next_push = 0, next_steal = 0;

    /* publish(false) moves the older half of the private items, rounded
     * up, into the shared part; publish(true) moves all of them. How many
     * items a push publishes on its own is the deque's policy: the tests
     * only measure it. */
    for (int i = 0; i < 9; i++)
        push(&d, next_push++);
    int64_t k = private_count(&d);
    CHECK(k >= 2);
    int64_t s0 = split_of(&d);
    wq_deque_publish(&d, false);
    CHECK_EQ(split_of(&d), s0 + (k + 1) / 2);
    CHECK_EQ(private_count(&d), k / 2);
    CHECK(!(atomic_load(&d.hint) & WQ_HINT_SPLIT));
    wq_deque_publish(&d, true);
    CHECK_EQ(private_count(&d), 0);
    CHECK_EQ(split_of(&d), d.bottom);
    /* Nothing private: publishing again changes nothing. */
    wq_deque_publish(&d, true);
    wq_deque_publish(&d, false);
    CHECK_EQ(split_of(&d), d.bottom);

    /* A thief that finds the shared part empty raises WQ_HINT_SPLIT... */
    while (next_steal < next_push)
        expect_steal(&d, next_steal++);
    expect_steal_empty(&d);
    CHECK((atomic_load(&d.hint) & WQ_HINT_SPLIT));
    /* ...and the owner's next push publishes half of its private items. */
    for (int round = 0; round < 4; round++) {
        int64_t before = private_count(&d) + 1; /* with the item pushed */
        push(&d, next_push++);
        CHECK(!(atomic_load(&d.hint) & WQ_HINT_SPLIT));
        CHECK(private_count(&d) <= before / 2);
        CHECK(wq_deque_stealable(&d));
        /* Thieves get the oldest first. */
        while (wq_deque_stealable(&d))
            expect_steal(&d, next_steal++);
        expect_steal_empty(&d);
        CHECK((atomic_load(&d.hint) & WQ_HINT_SPLIT));
        /* Grow the private part for the next round. */
        for (int i = 0; i < 6; i++) {
            atomic_fetch_and(&d.hint, ~(uint32_t)WQ_HINT_SPLIT); /* as if the thief gave up */
            push(&d, next_push++);
            while (wq_deque_stealable(&d))
                expect_steal(&d, next_steal++);
        }
        expect_steal_empty(&d);
    }
    /* The owner takes the rest, newest first. */
    while (next_steal < next_push)
        expect_take(&d, --next_push);
    expect_take_empty(&d);
    expect_steal_empty(&d);
    wq_deque_destroy(&d);
}

/* ThreadSanitizer makes each atomic access a call; the single-threaded
 * growth test has nothing for it to find, so it pushes fewer items there. */
#if defined(__SANITIZE_THREAD__)
#define GROWTH_ITEMS (2 * 1000 * 1000)
#else
#define GROWTH_ITEMS (10 * 1000 * 1000)
#endif

static void test_growth_10m(void)
{
    enum { N = GROWTH_ITEMS };
    wq_deque d;
    CHECK_EQ(wq_deque_init(&d, 1), 0);
    for (uint64_t i = 0; i < N; i++) {
        wq_item it = mk(i);
        CHECK_EQ(wq_deque_push(&d, &it), 0);
    }
    CHECK_EQ(d.bottom, N);
    check_invariants(&d);
    CHECK(d.arr->mask + 1 >= N);
    CHECK(d.arr->mask + 1 < 2 * (int64_t)N);
    /* Old arrays total less than the current one: memory within 2x. */
    int64_t garbage = 0;
    for (wq_array *a = d.arr->garbage; a; a = a->garbage)
        garbage += a->mask + 1;
    CHECK(garbage < d.arr->mask + 1);
    /* Every item comes back exactly once, newest first; take half through
     * the shared path and the rest through the private one. */
    wq_deque_publish(&d, false);
    for (uint64_t i = N; i-- > 0;) {
        wq_item it;
        CHECK(wq_deque_take(&d, &it));
        CHECK_EQ(id_of(&it), i);
    }
    expect_take_empty(&d);
    expect_steal_empty(&d);
    wq_deque_destroy(&d);
}

static void test_growth_during_steals(void)
{
    wq_deque d;
    CHECK_EQ(wq_deque_init(&d, 1), 0);
    uint64_t next_push = 0, next_steal = 0;
    /* Thieves have moved top: the live window wraps around the array when
     * it grows, and the copy must start at top, not at 0. */
    for (int round = 0; round < 12; round++) {
        for (int i = 0; i < 3 + round * 5; i++) {
            push(&d, next_push++);
            wq_deque_publish(&d, true);
            if (i % 3 == 0)
                expect_steal(&d, next_steal++);
        }
    }
    /* Growth while half the items are shared and half private. */
    for (int i = 0; i < 100; i++)
        push(&d, next_push++);
    wq_deque_publish(&d, false);
    CHECK(private_count(&d) > 0);
    while (wq_deque_stealable(&d))
        expect_steal(&d, next_steal++);
    for (int i = 0; i < 1000; i++) {
        push(&d, next_push++);
        if (i % 8 == 7)
            wq_deque_publish(&d, false);
        if (i % 4 == 0 && wq_deque_stealable(&d))
            expect_steal(&d, next_steal++);
    }
    CHECK(d.arr->mask + 1 >= 1024);
    /* Drain from both ends: thieves the oldest, the owner the newest. */
    uint64_t next_take = next_push;
    while (next_steal < next_take) {
        wq_item it;
        int r = wq_deque_steal(&d, &it);
        if (r == WQ_EMPTY) { /* the rest is private: publish it */
            wq_deque_publish(&d, true);
            continue;
        }
        CHECK_EQ(r, WQ_STOLEN);
        CHECK_EQ(id_of(&it), next_steal++);
        if (next_steal < next_take)
            expect_take(&d, --next_take);
    }
    expect_take_empty(&d);
    expect_steal_empty(&d);
    wq_deque_destroy(&d);
}

int main(void)
{
    test_init_args();
    test_empty();
    test_one_element();
    test_lifo_fifo();
    test_publish();
    test_growth_during_steals();
    test_growth_10m();
    printf("queue_deque_unit: ok\n");
    return 0;
}
