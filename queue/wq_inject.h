/*
 * queue/wq_inject.h — the injection queue: where threads that are not workers
 * of a pool put tasks. Many producers, many consumers, unbounded, lock-free:
 * no thread ever waits for another to make progress (docs/inject.md has the
 * argument).
 *
 * A list of blocks of 2^log2 slots. tail and head are each one word that
 * packs (block, index): a producer claims a slot with one fetch-add on tail,
 * which names the block and the index at once, fills the slot and sets its
 * WRITTEN bit; a consumer claims a run of slots that producers have claimed
 * with one CAS on head and reads them. Claims past a block's end help move tail (head) on to the
 * next block, installing it if nobody has. A consumer that finds a claimed
 * slot still unwritten waits a little and then marks it ABANDONED; its
 * producer, seeing the mark, pushes its item again: a stalled producer delays
 * only its own item, and loses nothing. A block is freed by whoever finishes
 * the last use of it (every slot read or abandoned and acknowledged, every
 * claim past its end finished, tail and head moved on), counted in one word
 * per block; one freed block is kept for reuse. So memory is what the queued
 * items need, plus one block per thread stalled inside an operation, plus
 * the spare.
 */
#ifndef WEFT_QUEUE_WQ_INJECT_H
#define WEFT_QUEUE_WQ_INJECT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "queue/wq_deque.h"

struct wq_block;

typedef struct wq_inject {
    _Alignas(WQ_CACHELINE) _Atomic(uint64_t) tail; /* producers' (block, index) */
    _Alignas(WQ_CACHELINE) _Atomic(uint64_t) head; /* consumers' (block, index) */
    _Alignas(WQ_CACHELINE) _Atomic(struct wq_block *) spare; /* one freed block */
    _Atomic(int64_t) blocks; /* allocated and not freed, the spare included */
    /* Read by every push, written only when memory ran out: its own line. */
    _Alignas(WQ_CACHELINE) _Atomic(int) nomem; /* a push failed for want of a block */
    unsigned log2;  /* slots per block */
    bool     ready; /* initialized */
} wq_inject;

/* The most items one wq_inject_pop_batch takes. */
enum { WQ_INJECT_BATCH = 32 };

/* log2_block: slots per block (1..10; the pool uses 8). 0, EINVAL or
 * ENOMEM. */
int  wq_inject_init(wq_inject *q, unsigned log2_block);
/* Frees the blocks and any items still queued (they are dropped). Nobody
 * may be inside another operation on q. */
void wq_inject_destroy(wq_inject *q);
/* Any thread. 0, or ENOMEM when a new block was needed and none could be
 * had (the item is then not queued). A successful push's first operation
 * is a seq_cst read-modify-write of tail, and every later one ends in one
 * too (the publisher's half of sched/park.c's Dekker pairing: see
 * docs/inject.md for why the first one is the one that counts). */
int  wq_inject_push(wq_inject *q, const wq_item *it);
/* Any thread: takes up to max (1..WQ_INJECT_BATCH) of the oldest items into
 * out, and returns how many; 0 when the queue looks empty (a push still in
 * progress may be missed: its producer wakes a consumer after it
 * completes). */
size_t wq_inject_pop_batch(wq_inject *q, wq_item *out, size_t max);
/* wq_inject_pop_batch of one. */
bool wq_inject_pop(wq_inject *q, wq_item *out);
/* Any thread: whether a pop could succeed (seq_cst: see sched/park.c). May
 * say yes for a moment when the only claimed slots left were abandoned. */
bool wq_inject_nonempty(wq_inject *q);
/* Any thread (tests): blocks allocated and not yet freed, the spare
 * included. A hint: relaxed. */
int64_t wq_inject_blocks(wq_inject *q);

#endif /* WEFT_QUEUE_WQ_INJECT_H */
