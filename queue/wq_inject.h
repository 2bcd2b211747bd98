/*
 * queue/wq_inject.h — the injection queue: where threads that are not workers
 * of a pool put tasks. Many producers, many consumers, unbounded, lock-free
 * in the common case.
 *
 * A ring of cells, each with a sequence number that says whose turn it is
 * (the bounded MPMC design of D. Vyukov, written here from its description):
 * a producer claims ticket p with a CAS on tail and may fill cell p when the
 * cell's sequence is p; a consumer claims ticket c with a CAS on head and may
 * empty cell c when its sequence is c + 1. When the ring is full, producers
 * append to an overflow list under a mutex instead of waiting, so a push never
 * fails or blocks for long and nothing is lost; consumers drain the overflow
 * list when the ring is empty. While the list is not empty, producers append
 * to it rather than to the ring, so the ring drains and the list is reached
 * under sustained overload too: with one producer the order is FIFO
 * throughout; concurrent producers may put an item into the ring ahead of
 * the list just as it starts, no more.
 *
 * docs/deque.md ("The injection queue") has the ordering argument.
 */
#ifndef WEFT_QUEUE_WQ_INJECT_H
#define WEFT_QUEUE_WQ_INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include "queue/wq_deque.h"

typedef struct wq_cell {
    _Atomic(size_t) seq;
    wq_slot         item;
} wq_cell;

typedef struct wq_overflow_node {
    struct wq_overflow_node *next;
    wq_item                  item;
} wq_overflow_node;

typedef struct wq_inject {
    _Alignas(WQ_CACHELINE) _Atomic(size_t) tail; /* producers' ticket */
    _Alignas(WQ_CACHELINE) _Atomic(size_t) head; /* consumers' ticket */
    _Alignas(WQ_CACHELINE) _Atomic(size_t) overflow_len;
    pthread_mutex_t   overflow_lock;
    wq_overflow_node *overflow_head, *overflow_tail;
    size_t            mask;
    wq_cell          *cells;
} wq_inject;

/* log2_capacity: ring size (1..24). 0, EINVAL or ENOMEM. */
int  wq_inject_init(wq_inject *q, unsigned log2_capacity);
/* Frees the ring and any items still queued (they are dropped). */
void wq_inject_destroy(wq_inject *q);
/* Any thread. 0, or ENOMEM when the ring is full and no node can be had.
 * A successful push ends with a seq_cst read-modify-write of tail or of
 * overflow_len (the publisher's half of sched/park.c's Dekker pairing). */
int  wq_inject_push(wq_inject *q, const wq_item *it);
/* Any thread. false when empty (a push that is still in progress may be
 * missed; its producer wakes a consumer after it completes). */
bool wq_inject_pop(wq_inject *q, wq_item *out);
/* Any thread: whether a pop could succeed (seq_cst: see sched/park.c). */
bool wq_inject_nonempty(wq_inject *q);

#endif /* WEFT_QUEUE_WQ_INJECT_H */
