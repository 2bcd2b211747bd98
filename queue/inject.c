/*
 * queue/inject.c — the injection queue (see wq_inject.h).
 */
#include "queue/wq_inject.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

int wq_inject_init(wq_inject *q, unsigned log2_capacity)
{
    if (log2_capacity < 1 || log2_capacity > 24)
        return EINVAL;
    size_t n = (size_t)1 << log2_capacity;
    /* aligned_alloc wants a size that is a multiple of the alignment. */
    size_t bytes = (n * sizeof(wq_cell) + WQ_CACHELINE - 1) / WQ_CACHELINE * WQ_CACHELINE;
    q->cells = aligned_alloc(WQ_CACHELINE, bytes);
    if (!q->cells)
        return ENOMEM;
    for (size_t i = 0; i < n; i++)
        atomic_init(&q->cells[i].seq, i);
    q->mask = n - 1;
    atomic_init(&q->tail, 0);
    atomic_init(&q->head, 0);
    atomic_init(&q->overflow_len, 0);
    q->overflow_head = q->overflow_tail = NULL;
    int err = pthread_mutex_init(&q->overflow_lock, NULL);
    if (err) {
        free(q->cells);
        return err;
    }
    return 0;
}

void wq_inject_destroy(wq_inject *q)
{
    wq_overflow_node *n = q->overflow_head;
    while (n) {
        wq_overflow_node *next = n->next;
        free(n);
        n = next;
    }
    pthread_mutex_destroy(&q->overflow_lock);
    free(q->cells);
    q->cells = NULL;
}

static bool wq_ring_push(wq_inject *q, const wq_item *it)
{
    size_t p = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (;;) {
        wq_cell *c = &q->cells[p & q->mask];
        /* Acquire pairs with the consumer's release store of seq in
         * wq_ring_pop: the cell's old item has been read before we rewrite. */
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)(seq - p); /* exact across wrap-around */
        if (dif == 0) {
            /* seq_cst: besides claiming the ticket, this RMW is the
             * publisher's half of the sleep/wake Dekker pairing (it pairs
             * with the sleeper's seq_cst RMW of sleepers in sched/park.c),
             * so ws_notify_after_rmw needs no separate fence. */
            if (atomic_compare_exchange_weak_explicit(&q->tail, &p, p + 1, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                wq_slot_store_(&c->item, it);
                /* Release pairs with the consumer's acquire load of seq. */
                atomic_store_explicit(&c->seq, p + 1, memory_order_release);
                return true;
            }
        } else if (dif < 0) {
            return false; /* full: the cell still holds an item a lap behind */
        } else {
            p = atomic_load_explicit(&q->tail, memory_order_relaxed);
        }
    }
}

static bool wq_ring_pop(wq_inject *q, wq_item *out)
{
    size_t p = atomic_load_explicit(&q->head, memory_order_relaxed);
    for (;;) {
        wq_cell *c = &q->cells[p & q->mask];
        /* Acquire pairs with the producer's release store of seq. */
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)(seq - (p + 1));
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->head, &p, p + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                wq_slot_load_(&c->item, out);
                /* Release pairs with the producer's acquire load of seq a lap
                 * later: our read of the item happens before its rewrite. */
                atomic_store_explicit(&c->seq, p + q->mask + 1, memory_order_release);
                return true;
            }
        } else if (dif < 0) {
            return false; /* empty, or the producer of cell p is mid-push */
        } else {
            p = atomic_load_explicit(&q->head, memory_order_relaxed);
        }
    }
}

int wq_inject_push(wq_inject *q, const wq_item *it)
{
    /* While the overflow list holds items, append to it too: the ring then
     * drains, consumers reach the list, and nothing waits behind a ring that
     * producers keep refilling. Relaxed: a stale answer only lets one push
     * into the ring ahead of the list, which does not starve it. */
    if (atomic_load_explicit(&q->overflow_len, memory_order_relaxed) == 0 && wq_ring_push(q, it))
        return 0;
    wq_overflow_node *n = malloc(sizeof *n);
    if (!n)
        return ENOMEM;
    n->next = NULL;
    n->item = *it;
    pthread_mutex_lock(&q->overflow_lock);
    if (q->overflow_tail)
        q->overflow_tail->next = n;
    else
        q->overflow_head = n;
    q->overflow_tail = n;
    /* seq_cst: read by wq_inject_nonempty in a sleeper's last check. The
     * mutex orders the list itself. */
    atomic_fetch_add_explicit(&q->overflow_len, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&q->overflow_lock);
    return 0;
}

bool wq_inject_pop(wq_inject *q, wq_item *out)
{
    if (wq_ring_pop(q, out))
        return true;
    if (!atomic_load_explicit(&q->overflow_len, memory_order_relaxed))
        return false;
    bool got = false;
    pthread_mutex_lock(&q->overflow_lock);
    wq_overflow_node *n = q->overflow_head;
    if (n) {
        q->overflow_head = n->next;
        if (!q->overflow_head)
            q->overflow_tail = NULL;
        atomic_fetch_sub_explicit(&q->overflow_len, 1, memory_order_relaxed);
        *out = n->item;
        got = true;
    }
    pthread_mutex_unlock(&q->overflow_lock);
    free(n);
    return got;
}

bool wq_inject_nonempty(wq_inject *q)
{
    /* seq_cst: the sleeper's side of the Dekker pairing in sched/park.c. */
    size_t h = atomic_load_explicit(&q->head, memory_order_seq_cst);
    size_t t = atomic_load_explicit(&q->tail, memory_order_seq_cst);
    return h != t || atomic_load_explicit(&q->overflow_len, memory_order_seq_cst) != 0;
}
