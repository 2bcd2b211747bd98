/*
 * queue/inject.c — the injection queue (see wq_inject.h; docs/inject.md has
 * the argument).
 *
 * Words: tail and head pack a block's address (64-byte aligned, below 2^48,
 * so 42 bits after the shift) and an index (22 bits). A producer's
 * fetch-add (a consumer's CAS) adds to the index; the index never carries
 * into the address: claims past a block's end come from threads that each
 * make at most one such claim, of one index, before the word moves on (a
 * producer helps move it on before it claims again; a consumer claims past
 * the end only once tail has left the block, and then moves head on). After
 * a push failed for want of memory, a push that sees tail's block full
 * gets the next block before it claims, and fails without claiming when it
 * cannot, so failing pushes do not add claims past the end either (only
 * those that had not seen the failure yet, one each).
 *
 * A block's refs starts at slots + 2 * WQ_BIAS and is brought to zero by:
 *   - each slot, once both sides are done with it: by the side that comes
 *     second (the consumer that reads a WRITTEN slot; the producer that
 *     finds its slot ABANDONED), one each;
 *   - each claim past the block's end, when its thread is done, one per
 *     index claimed;
 *   - each of tail and head, when it moves on from (block, x): WQ_BIAS
 *     minus the x - slots claims past the end it counted.
 * The bias keeps refs above zero until both words have moved on, so the
 * thread that brings it to zero is the last to touch the block.
 */
#include "queue/wq_inject.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { WQ_WRITTEN = 1u, WQ_ABANDONED = 2u };

#define WQ_IDX_BITS 22
#define WQ_IDX_MASK (((uint64_t)1 << WQ_IDX_BITS) - 1)
#define WQ_BIAS ((int64_t)1 << 40)
#define WQ_LIKELY_(x) __builtin_expect(!!(x), 1)
#define WQ_UNLIKELY_(x) __builtin_expect(!!(x), 0)

/* How long a consumer waits for a claimed slot's producer to finish writing
 * (it is between two instructions unless it was preempted) before it
 * abandons the slot to it. */
enum { WQ_WAIT_SPINS = 256 };

typedef struct wq_block {
    _Alignas(WQ_CACHELINE) _Atomic(int64_t) refs;
    _Atomic(struct wq_block *) next; /* set once, by a producer */
    /* Then 2^log2 states (uint32), padded to a cache line, then the slots. */
} wq_block;

_Static_assert(sizeof(wq_block) == WQ_CACHELINE, "block header is one line");

static inline size_t wq_states_bytes(unsigned log2)
{
    return (((size_t)4 << log2) + WQ_CACHELINE - 1) / WQ_CACHELINE * WQ_CACHELINE;
}

static inline _Atomic(uint32_t) *wq_states(wq_block *b)
{
    return (_Atomic(uint32_t) *)(void *)(b + 1);
}

static inline wq_slot *wq_slots(const wq_inject *q, wq_block *b)
{
    return (wq_slot *)(void *)((char *)(b + 1) + wq_states_bytes(q->log2));
}

static inline uint64_t wq_pack(wq_block *b, uint64_t idx)
{
    return (uint64_t)((uintptr_t)b >> 6) << WQ_IDX_BITS | idx;
}

static inline wq_block *wq_unpack(uint64_t w)
{
    return (wq_block *)(uintptr_t)((w >> WQ_IDX_BITS) << 6);
}

static inline void wq_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void wq_block_release_memory(wq_inject *q, wq_block *b)
{
    atomic_fetch_sub_explicit(&q->blocks, 1, memory_order_relaxed);
    free(b);
}

/* A block with fresh counts: the spare, or a new one. NULL: no memory. */
static wq_block *wq_block_new(wq_inject *q)
{
    /* Acquire pairs with the release exchange in wq_block_free: whoever
     * freed it is done with it. */
    wq_block *b = atomic_exchange_explicit(&q->spare, NULL, memory_order_acquire);
    size_t bytes = sizeof(wq_block) + wq_states_bytes(q->log2) + (sizeof(wq_slot) << q->log2);
    if (!b) {
        b = aligned_alloc(WQ_CACHELINE, bytes); /* bytes is a multiple of 64 */
        if (!b)
            return NULL;
        if ((uintptr_t)b >> 48) { /* does not fit the packed words */
            free(b);
            return NULL;
        }
        atomic_fetch_add_explicit(&q->blocks, 1, memory_order_relaxed);
    }
    /* Nobody else sees b until it is published (a release CAS of next, or
     * init): plain initialization. */
    memset((void *)b, 0, sizeof(wq_block) + wq_states_bytes(q->log2));
    atomic_init(&b->refs, ((int64_t)1 << q->log2) + 2 * WQ_BIAS);
    return b;
}

/* b is unused and unreachable: keep it as the spare, or free it. */
static void wq_block_free(wq_inject *q, wq_block *b)
{
    /* Release pairs with the acquire exchange in wq_block_new. */
    b = atomic_exchange_explicit(&q->spare, b, memory_order_acq_rel);
    if (b)
        wq_block_release_memory(q, b);
}

/* Takes k of b's refs; the caller's last access to b. */
static inline void wq_block_put(wq_inject *q, wq_block *b, int64_t k)
{
    /* acq_rel: every thread's accesses to b happen before its decrement
     * (release), and the one that reads k, the last, acquires them all
     * before it frees b. */
    if (atomic_fetch_sub_explicit(&b->refs, k, memory_order_acq_rel) == k)
        wq_block_free(q, b);
}

/* The caller holds a claim on b past its end, taken from *end (tail or
 * head). Moves *end on from b to b's next block, which a producer
 * (install != NULL) makes if there is none yet, from *install if it holds
 * one (then taken: *install becomes NULL if it was published). 0, EAGAIN
 * (head: tail has not left b), or ENOMEM. */
static int wq_move_on(wq_inject *q, _Atomic(uint64_t) *end, wq_block *b, wq_block **install)
{
    /* head follows tail: it may leave b only once tail has (else consumers
     * would claim slots of the next block ahead of every producer and, at
     * its end, claim past it again and again). tail left b after b's next
     * was set: acquire pairs with tail's seq_cst CAS below, so the load of
     * next then sees it. */
    if (!install && wq_unpack(atomic_load_explicit(&q->tail, memory_order_acquire)) == b)
        return EAGAIN;
    /* Acquire pairs with the release CAS below: the block is initialized. */
    wq_block *nx = atomic_load_explicit(&b->next, memory_order_acquire);
    if (!nx) {
        if (!install)
            return EAGAIN; /* not reached: tail left b */
        wq_block *fresh = *install ? *install : wq_block_new(q);
        if (!fresh)
            return ENOMEM;
        *install = NULL;
        nx = NULL;
        /* Release: fresh's initialization before anyone who reads next
         * (acquire, above and in the failure order here) uses it. */
        if (atomic_compare_exchange_strong_explicit(&b->next, &nx, fresh, memory_order_acq_rel,
                                                    memory_order_acquire))
            nx = fresh;
        else
            *install = fresh; /* never published: the caller's again */
    }
    /* Our claim keeps b alive, so no other block has its address and *end,
     * once it has left b, never names b again. seq_cst: the word's
     * fetch-adds are seq_cst (tail's for sched/park.c's pairing); this
     * keeps all its updates in one order with them. It also releases nx's
     * initialization to whoever claims in it. */
    uint64_t cur = atomic_load_explicit(end, memory_order_relaxed);
    while (wq_unpack(cur) == b) {
        if (atomic_compare_exchange_weak_explicit(end, &cur, wq_pack(nx, 0), memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            int64_t past = (int64_t)(cur & WQ_IDX_MASK) - ((int64_t)1 << q->log2);
            wq_block_put(q, b, WQ_BIAS - past);
            break;
        }
    }
    return 0;
}

int wq_inject_init(wq_inject *q, unsigned log2_block)
{
    q->ready = false;
    if (log2_block < 1 || log2_block > 10)
        return EINVAL;
    q->log2 = log2_block;
    atomic_init(&q->spare, NULL);
    atomic_init(&q->blocks, 0);
    atomic_init(&q->nomem, 0);
    wq_block *b = wq_block_new(q);
    if (!b)
        return ENOMEM;
    atomic_init(&q->tail, wq_pack(b, 0));
    atomic_init(&q->head, wq_pack(b, 0));
    q->ready = true;
    return 0;
}

void wq_inject_destroy(wq_inject *q)
{
    if (!q->ready)
        return;
    /* Quiescent: every block before head's has been freed by its last
     * user; head's block and those after it are left. */
    wq_block *b = wq_unpack(atomic_load_explicit(&q->head, memory_order_acquire));
    while (b) {
        wq_block *nx = atomic_load_explicit(&b->next, memory_order_relaxed);
        wq_block_release_memory(q, b);
        b = nx;
    }
    b = atomic_exchange_explicit(&q->spare, NULL, memory_order_acquire);
    if (b)
        wq_block_release_memory(q, b);
    q->ready = false;
}

int wq_inject_push(wq_inject *q, const wq_item *it)
{
    const uint64_t n = (uint64_t)1 << q->log2;
    /* Once a push has failed for want of a block (nomem, relaxed: a hint),
     * a push that sees tail's block full gets the next block before it
     * claims, and fails without claiming when it cannot: so failing pushes
     * do not grow tail's index past the end without bound. (Not always:
     * the load would bring tail's line in shared just before the fetch-add
     * wants it exclusive.) */
    wq_block *next = NULL;
    for (;;) {
        if (WQ_UNLIKELY_(atomic_load_explicit(&q->nomem, memory_order_relaxed)) && !next &&
            (atomic_load_explicit(&q->tail, memory_order_relaxed) & WQ_IDX_MASK) >= n) {
            next = wq_block_new(q);
            if (!next)
                return ENOMEM;
        }
        /* seq_cst: the claim is also the publisher's half of the sleep/wake
         * Dekker pairing (with the sleeper's seq_cst RMW of sleepers in
         * sched/park.c, then its seq_cst loads in wq_inject_nonempty), so
         * ws_notify_after_rmw needs no separate fence. Acquire in it pairs
         * with wq_move_on's CAS: the block we claim in is initialized. */
        uint64_t t = atomic_fetch_add_explicit(&q->tail, 1, memory_order_seq_cst);
        wq_block *b = wq_unpack(t);
        uint64_t i = t & WQ_IDX_MASK;
        if (WQ_LIKELY_(i < n)) {
#ifdef WQ_INJECT_TEST_HOOK
            WQ_INJECT_TEST_HOOK(q, it); /* a test stalls a producer here */
#endif
            wq_slot_store_(&wq_slots(q, b)[i], it);
            /* Release pairs with the consumer's acquire load (or RMW) of the
             * state: it reads the item after it sees WRITTEN. Acquire pairs
             * with the release in a consumer's ABANDONED mark: its accesses
             * to b come before our wq_block_put. */
            /* An exchange, not a fetch_or: each side writes the state once
             * (WRITTEN, or ABANDONED), and x86 has no fetch_or that
             * returns the old value but a CAS loop. */
            uint32_t old = atomic_exchange_explicit(&wq_states(b)[i], WQ_WRITTEN,
                                                    memory_order_acq_rel);
            if (WQ_LIKELY_(!(old & WQ_ABANDONED))) {
                if (WQ_UNLIKELY_(next != NULL))
                    wq_block_free(q, next); /* another producer moved tail on */
                return 0; /* the consumer finishes the slot */
            }
            /* A consumer gave up on us: we finish the slot, and push again. */
            wq_block_put(q, b, 1);
            continue;
        }
        /* Past the end: help tail on to the next block, then claim again. */
        int err = wq_move_on(q, &q->tail, b, &next);
        wq_block_put(q, b, 1);
        if (WQ_UNLIKELY_(err)) { /* ENOMEM: claimed past the end without a block */
            atomic_store_explicit(&q->nomem, 1, memory_order_relaxed);
            return err;
        }
        if (WQ_UNLIKELY_(atomic_load_explicit(&q->nomem, memory_order_relaxed)))
            atomic_store_explicit(&q->nomem, 0, memory_order_relaxed); /* tail moved on */
    }
}

/* How many items a claim at h may find, given t read after it (0: none). */
static inline uint64_t wq_available(uint64_t h, uint64_t t, uint64_t n)
{
    uint64_t hi = h & WQ_IDX_MASK;
    if (wq_unpack(h) == wq_unpack(t)) {
        uint64_t ti = t & WQ_IDX_MASK;
        if (ti > n)
            ti = n;
        return ti > hi ? ti - hi : 0;
    }
    /* tail has moved on (head never leaves a block before tail does, see
     * wq_move_on): every slot of head's block was claimed, and once they
     * are taken one claim past the end moves head on. */
    return hi < n ? n - hi : 1;
}

/* Reads slot k of b, which the caller claimed: true with the item, or
 * false when its producer has not written it by now (the slot is then
 * abandoned to it, and the producer finishes it). */
static inline bool wq_take_slot(wq_inject *q, wq_block *b, uint64_t k, wq_item *out)
{
    _Atomic(uint32_t) *st = &wq_states(b)[k];
    /* Acquire pairs with the producer's release exchange to WRITTEN. */
    if (!(atomic_load_explicit(st, memory_order_acquire) & WQ_WRITTEN)) {
        unsigned spins = 0;
        do {
            if (++spins > WQ_WAIT_SPINS) {
                /* Acquire: as above, when the producer's write won.
                 * Release: when we win, this is our last access to b, and
                 * the producer, whose acq_rel exchange reads our mark,
                 * finishes the slot (and may free b) after it. */
                if (!(atomic_exchange_explicit(st, WQ_ABANDONED, memory_order_acq_rel) &
                      WQ_WRITTEN))
                    return false;
                break;
            }
            wq_relax();
        } while (!(atomic_load_explicit(st, memory_order_acquire) & WQ_WRITTEN));
    }
    wq_slot_load_(&wq_slots(q, b)[k], out);
    return true;
}

size_t wq_inject_pop_batch(wq_inject *q, wq_item *out, size_t max)
{
    const uint64_t n = (uint64_t)1 << q->log2;
    if (max > WQ_INJECT_BATCH)
        max = WQ_INJECT_BATCH;
    if (max == 0)
        return 0;
    /* Acquire (here, in the CAS's failure and below): the load of tail that
     * follows is not done before it. */
    uint64_t c = atomic_load_explicit(&q->head, memory_order_acquire);
    for (;;) {
        /* tail after head: every slot below what tail said was claimed by a
         * producer when we read it, so a CAS from the head we read claims
         * only slots that producers have claimed (a fetch-add could run
         * ahead of them, and make each of them push again). */
        uint64_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
        uint64_t want = wq_available(c, t, n);
        if (want == 0)
            return 0;
        if (want > max)
            want = max;
        /* Acquire pairs with wq_move_on's CAS of head: the block we claim
         * in is initialized. The items are ordered by their slots' states.
         * Acquire on failure: the new head is read again as above. */
        if (!atomic_compare_exchange_weak_explicit(&q->head, &c, c + want, memory_order_acquire,
                                                   memory_order_acquire))
            continue;
        wq_block *b = wq_unpack(c);
        uint64_t i = c & WQ_IDX_MASK, end = i + want;
        size_t got = 0;
        for (uint64_t k = i; k < end && k < n; k++)
            if (wq_take_slot(q, b, k, &out[got]))
                got++;
        int64_t past = 0;
        if (end > n) {
            past = (int64_t)(end - (i > n ? i : n));
            wq_move_on(q, &q->head, b, NULL); /* EAGAIN: tail has not left b */
        }
        /* The slots we read are finished; those we abandoned their
         * producers finish. If we abandoned every slot and claimed none
         * past the end we hold nothing of b any more: its producers may
         * have freed it already, so we must not touch it. */
        if (got + (uint64_t)past)
            wq_block_put(q, b, (int64_t)got + past);
        if (got)
            return got;
        /* Nothing (abandoned slots, or only a move on): look again. Every
         * round claims at least one index, and claims stop when nothing
         * more is claimed by producers, so this ends. */
        c = atomic_load_explicit(&q->head, memory_order_acquire);
    }
}

bool wq_inject_pop(wq_inject *q, wq_item *out)
{
    return wq_inject_pop_batch(q, out, 1) == 1;
}

bool wq_inject_nonempty(wq_inject *q)
{
    /* seq_cst: the sleeper's side of the Dekker pairing in sched/park.c. */
    uint64_t h = atomic_load_explicit(&q->head, memory_order_seq_cst);
    uint64_t t = atomic_load_explicit(&q->tail, memory_order_seq_cst);
    return wq_available(h, t, (uint64_t)1 << q->log2) != 0;
}

int64_t wq_inject_blocks(wq_inject *q)
{
    return atomic_load_explicit(&q->blocks, memory_order_relaxed);
}
