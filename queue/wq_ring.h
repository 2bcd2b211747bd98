/*
 * queue/wq_ring.h — a bounded single-producer, multi-consumer ring: where
 * an external thread that opened a flow puts that flow's tasks
 * (docs/inject.md, "Submission rings", has the argument).
 *
 * head and tail are monotonic 64-bit counters (they never wrap in practice:
 * 2^64 items), each on a line of its own; slot i % WQ_RING_CAP holds words
 * 0 and 1 of item i. Words 2 and 3 are the same for every item of one
 * producer's stream (sched/: the flow and its pinned context), so the ring
 * keeps them once (wq_ring_set_common) and its slots are two words: four
 * items per cache line, half the lines a producer must win back from the
 * consumers that read them last lap.
 * The producer writes slot tail, then advances tail with one seq_cst RMW
 * (or, on a light ring, one release store: see wq_ring_push);
 * a consumer reads head, tail, up to WQ_RING_BATCH slots, and claims them
 * with one CAS of head. A consumer that loses the CAS discards what it read
 * (the producer may have been rewriting a slot it read): counters only
 * grow, so a CAS that succeeds names exactly the slots it read, never a
 * later lap's (no ABA).
 *
 * One producer at a time: whoever holds the ring (sched/ leases it to one
 * thread at a time, and the hand-off is a release/acquire pair, so the next
 * producer sees tail and head_seen as the last one left them). Any number
 * of consumers, who never care who the producer is.
 */
#ifndef WEFT_QUEUE_WQ_RING_H
#define WEFT_QUEUE_WQ_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "queue/wq_deque.h"

/* Slots per ring (a power of two): 64 KiB of slots. With 1,024 a producer
 * that runs ahead of the workers spilled more into the injection queue,
 * which costs both sides more per item (1 M tiny tasks at 1 worker took
 * 0.88x of the time with 4,096, docs/benchmarks.md). A test that compiles
 * queue/ring.c in itself may choose fewer. */
#ifndef WQ_RING_LOG2
#define WQ_RING_LOG2 12
#endif
#define WQ_RING_CAP ((uint64_t)1 << WQ_RING_LOG2)
/* The most items one wq_ring_pop_batch takes. */
enum { WQ_RING_BATCH = 32 };

typedef struct wq_ring {
    /* The producer's line: tail (read by consumers once per batch) and the
     * producer's own lower bound of head. */
    _Alignas(WQ_CACHELINE) _Atomic(uint64_t) tail;
    uint64_t head_seen; /* the producer's alone: a value head had */
    unsigned tag;       /* the user's, set before the ring is shared (sched/:
                         * its index in the pool's rings) */
    uint64_t mark;      /* the producer side's, on its line (sched/: tail
                         * at the flow's last count of its pushes) */
    bool light;         /* the producer's: publish with a release store
                         * (set by the lessee before its first push) */
    unsigned char yields; /* the producer side's (sched/: how often it gave
                           * up its CPU since the ring last had room) */
    uint64_t yield_at;    /* the producer side's (sched/: no yield on a
                           * full ring before this time, ns; kept across
                           * leases: the load it saw is the machine's) */
    /* The consumers' line: head, and words 2 and 3 of every item (written
     * by wq_ring_set_common, read by a consumer after its CAS of head). */
    _Alignas(WQ_CACHELINE) _Atomic(uint64_t) head;
    uintptr_t common[2];
    /* Words 0 and 1 of item i in slots[i % WQ_RING_CAP]. */
    _Alignas(WQ_CACHELINE) _Atomic(uintptr_t) slots[WQ_RING_CAP][2];
} wq_ring;

/* A new, empty ring (64-byte aligned, zeroed), or NULL. Free with
 * wq_ring_free. Any thread. */
wq_ring *wq_ring_new(void);
void wq_ring_free(wq_ring *r);

/* The producer only, while the ring is empty and no consumer can still be
 * between its CAS of head and its reads of common (sched/: at the lease,
 * before the first push; every item of the previous lessee has run):
 * words 2 and 3 of the items it pushes from now on. Plain stores: a
 * consumer reads them after taking an item pushed after this, and the
 * push's release and its acquire of tail order them. Wakes nobody. */
static inline void wq_ring_set_common(wq_ring *r, uintptr_t w2, uintptr_t w3)
{
    r->common[0] = w2;
    r->common[1] = w3;
}

/* The producer only. Puts item (w0, w1, common) at tail and returns true,
 * or returns false (nothing written) when the ring is full. The publishing
 * operation is a seq_cst RMW of tail: release, so the slot's stores come
 * before a consumer's acquire load of tail that sees the new value;
 * seq_cst, so a seq_cst load by the caller afterwards (sched/park.c's
 * ws_notify_after_rmw) is the publisher's half of the Dekker pairing with
 * a parking worker's announce-then-recheck (wq_ring_nonempty). On a light
 * ring it is a release store of tail only: the caller's partner in that
 * pairing then runs the barrier for both (sched/asym.c, sched/park.c's
 * ws_notify_light). Wakes nobody itself. */
static inline bool wq_ring_push(wq_ring *r, uintptr_t w0, uintptr_t w1)
{
    /* Relaxed: we are tail's only writer (a previous producer's last
     * write reached us through the lease hand-off). */
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (__builtin_expect(t - r->head_seen >= WQ_RING_CAP, 0)) {
        /* Looks full: refresh. Acquire pairs with the release of a
         * consumer's CAS of head: its loads of the slots it took come
         * before our stores into them. */
        r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
        if (t - r->head_seen >= WQ_RING_CAP)
            return false;
    }
    _Atomic(uintptr_t) *s = r->slots[t & (WQ_RING_CAP - 1)];
    atomic_store_explicit(&s[0], w0, memory_order_relaxed);
    atomic_store_explicit(&s[1], w1, memory_order_relaxed);
    /* Pairs with the consumers' acquire loads of tail (wq_ring_pop_batch)
     * and the seq_cst ones of wq_ring_nonempty: see above. */
    if (r->light)
        atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    else
        atomic_fetch_add_explicit(&r->tail, 1, memory_order_seq_cst);
    return true;
}

/* Any thread: takes up to max (1..WQ_RING_BATCH) of the oldest items into
 * out (all four words) and returns how many; 0 when the ring looked empty.
 * Lock-free: a retry means another consumer took items. Acquire loads of
 * head and tail, a release CAS of head (see ring.c for what each pairs
 * with). Wakes nobody. */
size_t wq_ring_pop_batch(wq_ring *r, wq_item *out, size_t max);

/* Any thread: whether the ring held items at the moment of the loads
 * (seq_cst: a parking worker's recheck, see sched/park.c). */
static inline bool wq_ring_nonempty(wq_ring *r)
{
    /* seq_cst pairs with the producer's seq_cst RMW of tail (on a light
     * ring, the caller's membarrier orders the release store: sched/asym.c),
     * in the order the recheck needs (head first, so that head <= tail). */
    uint64_t h = atomic_load_explicit(&r->head, memory_order_seq_cst);
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_seq_cst);
    return t != h;
}

/* A hint for tests and stats: items in the ring (relaxed). */
static inline uint64_t wq_ring_size(wq_ring *r)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    return t > h ? t - h : 0;
}

#endif /* WEFT_QUEUE_WQ_RING_H */
