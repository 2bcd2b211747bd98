/*
 * sched/park.c — idle workers sleep; a spawn wakes one with no lost wake-up.
 *
 * An event count on a futex word (the protocol ck_ec implements; written here
 * on C11 atomics because ThreadSanitizer does not understand ck_pr). A worker
 * that found nothing to do:
 *   1. reads epoch,
 *   2. announces itself in sleepers (seq_cst RMW),
 *   3. looks once more for visible work (seq_cst loads),
 *   4. sleeps in futex_wait(epoch, value read in 1).
 * Whoever makes work visible (publishes deque items, pushes to the injection
 * queue) then runs ws_notify: a seq_cst fence, a read of sleepers, and if
 * there are any, an epoch increment and futex_wake.
 * Why nothing is lost: steps 2-3 and the notifier's store-fence-load are the
 * two halves of a Dekker pattern, so either the sleeper sees the work in step
 * 3, or the notifier sees it in sleepers; the epoch increment then makes the
 * futex_wait of step 4 return at once (value changed) or wakes it.
 * docs/scheduler.md has the longer argument.
 */
#include "sched/ws.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int ws_futex_wait(_Atomic(uint32_t) *addr, uint32_t expected, long timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns > 0) {
        ts.tv_sec = timeout_ns / 1000000000L;
        ts.tv_nsec = timeout_ns % 1000000000L;
        tsp = &ts;
    }
    return (int)syscall(SYS_futex, (void *)addr, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
}

/* Only an address is passed: the kernel does not touch the memory, so this is
 * safe even after the word's owner may have freed it (a spurious wake-up at
 * worst, which every futex waiter tolerates). */
void ws_futex_wake(void *addr, int n)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static bool ws_work_visible(struct weft_pool *p)
{
    if (wq_inject_nonempty(&p->inject))
        return true;
    for (unsigned i = 0; i < p->nworkers; i++)
        if (wq_deque_stealable(&p->workers[i]->deque))
            return true;
    return false;
}

static void ws_wake(struct weft_pool *p, int n)
{
    /* Release pairs with the acquire load of epoch in ws_park_wait. */
    atomic_fetch_add_explicit(&p->park.epoch, 1, memory_order_release);
    ws_futex_wake(&p->park.epoch, n);
}

void ws_notify_after_rmw(struct weft_pool *p, int n)
{
    /* seq_cst load: with the caller's seq_cst RMW that made the work
     * visible, this is the notifier's half of the Dekker pairing with the
     * seq_cst fetch_add of sleepers in ws_park_wait. */
    if (atomic_load_explicit(&p->park.sleepers, memory_order_seq_cst))
        ws_wake(p, n);
}

void ws_notify(struct weft_pool *p, int n)
{
    /* A seq_cst RMW used as a load (no standalone fence: ThreadSanitizer
     * does not model those). It pairs with the seq_cst fetch_add of
     * sleepers in ws_park_wait: our work store before it and this read
     * cannot both be missed by a sleeper's announce-then-recheck. */
    if (atomic_fetch_add_explicit(&p->park.sleepers, 0, memory_order_seq_cst))
        ws_wake(p, n);
}

void ws_park_wait(struct weft_pool *p, ws_worker *w)
{
    (void)w;
    /* Acquire pairs with the release increment in ws_notify. */
    uint32_t e = atomic_load_explicit(&p->park.epoch, memory_order_acquire);
    /* seq_cst pairs with the fence in ws_notify (see the header comment). */
    atomic_fetch_add_explicit(&p->park.sleepers, 1, memory_order_seq_cst);
    if (!atomic_load_explicit(&p->stopping, memory_order_seq_cst) && !ws_work_visible(p))
        ws_futex_wait(&p->park.epoch, e, 0);
    atomic_fetch_sub_explicit(&p->park.sleepers, 1, memory_order_relaxed);
}

void ws_after_push_slow(ws_worker *w)
{
    wq_deque *d = &w->deque;
    if (wq_deque_split_wanted(d) || (w->others && wq_deque_shared_empty(d)))
        wq_deque_publish(d, false);
    if (atomic_load_explicit(w->sleepers, memory_order_relaxed))
        ws_offer_private(w);
}

void ws_offer_private(ws_worker *w)
{
    if (wq_deque_has_private(&w->deque)) {
        wq_deque_publish(&w->deque, true);
        ws_notify(w->pool, 1);
    }
}
