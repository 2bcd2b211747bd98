/*
 * tests/queue_deque_liveness.c — private items must not stay invisible to
 * starving thieves while the owner works through them.
 *
 * The split deque keeps the owner's newest items private (no fences) and
 * publishes half of them when a thief has raised WQ_HINT_SPLIT. The request has
 * to be honored by the owner's next deque operation, take as well as push:
 * an owner that pushed a batch of tasks before any thief was hungry (the
 * thieves were asleep) and then only takes (running them one by one, in a
 * join or a flow close, spawning nothing more) must not keep every one of
 * them to itself while the thieves spin on an "empty" deque. Lace's split
 * deque checks its split request in pop for this reason.
 *
 * Deterministic: one thread plays both sides.
 */
#include "queue/wq_deque.h"
#include "tests/check.h"

#include <stdint.h>
#include <stdio.h>

enum { N = 8 };

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    wq_deque d;
    CHECK_EQ(wq_deque_init(&d, 4), 0);

    /* A batch pushed while no thief was looking: all private. */
    for (uintptr_t i = 0; i < N; i++) {
        wq_item it = {{i, 0, 0, 0}};
        CHECK_EQ(wq_deque_push(&d, &it), 0);
    }

    /* A thief wakes up, takes what is shared (if anything), then finds
     * nothing shared and asks for a split. */
    wq_item it;
    int owner = 0, stolen = 0, r;
    while ((r = wq_deque_steal(&d, &it)) != WQ_EMPTY)
        stolen += r == WQ_STOLEN;
    CHECK(wq_deque_has_private(&d));
    CHECK((atomic_load(&d.hint) & WQ_HINT_SPLIT));
    int stolen_before = stolen;

    /* The owner now only takes. After each take the thief tries again. */
    for (;;) {
        if (!wq_deque_take(&d, &it))
            break;
        owner++;
        while ((r = wq_deque_steal(&d, &it)) == WQ_RETRY)
            ;
        if (r == WQ_STOLEN)
            stolen++;
    }
    printf("queue_deque_liveness: owner took %d of %d items, thief stole %d\n", owner, N, stolen);
    CHECK_EQ(owner + stolen, N);
    /* The request was raised while N items were private: the first take
     * after it should have published about half of them. */
    CHECK(stolen > stolen_before);
    wq_deque_destroy(&d);
    printf("queue_deque_liveness: ok\n");
    return 0;
}
