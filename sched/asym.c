/*
 * sched/asym.c — the asymmetric fence between a submission ring's producer
 * and a parking worker (docs/scheduler.md, "Ring pushes: the asymmetric
 * fence"; tests/model/ring_asym.pml checks it).
 *
 * The Dekker pairing of a publish with a parking worker needs a full
 * barrier on each side, between "my work is visible" and "does anyone
 * sleep?" (the publisher), and between "I sleep" and "is there work?"
 * (the parker). A ring push is the hottest publish (one per external
 * spawn) and a park the rarest event, so the parker pays for both:
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) runs a full barrier on
 * every CPU that runs a thread of this process, between any two of that
 * thread's instructions, before it returns (and a thread not running
 * passes one when it is next switched in). The producer then needs only
 * its program order: a release store of tail, then a plain load of
 * sleepers, kept in that order by the compiler alone.
 *
 * A worker's batch uses the same fence the other way round (queue/wq_batch.h):
 * its owner claims items with plain accesses, and a peer that rescues it
 * runs the membarrier (ws_asym_heavy) between its store and its load.
 *
 * Where membarrier cannot be registered (a kernel before 4.14, a sandbox
 * that filters it, qemu-user without it), or under ThreadSanitizer (which
 * does not know the syscall orders anything), the rings keep their seq_cst
 * RMW and the parker does nothing more.
 */
#include "sched/ws.h"

#include <linux/membarrier.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Never under ThreadSanitizer (WEFT_TSAN_, include/weft_inline.h). */
#define WS_ASYM_POSSIBLE (!WEFT_TSAN_)

/* 0: not tried in this process (or since fork); 1: registered, ring
 * pushes are light; -1: not available. */
static _Atomic(int) ws_asym_state;

static long ws_membarrier(int cmd)
{
#ifdef __NR_membarrier
    return syscall(__NR_membarrier, cmd, 0, 0);
#else
    (void)cmd;
    return -1;
#endif
}

void ws_asym_init(void)
{
    /* Acquire pairs with the release below (another creator's). Two
     * creators racing both register (the call is idempotent) and store
     * the same answer. */
    if (atomic_load_explicit(&ws_asym_state, memory_order_acquire) != 0)
        return;
    int on = WS_ASYM_POSSIBLE && !getenv("WEFT_NO_MEMBARRIER") &&
             ws_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
    atomic_store_explicit(&ws_asym_state, on ? 1 : -1, memory_order_release);
}

bool ws_asym_on(void)
{
    /* Acquire pairs with ws_asym_init's release: every caller is a pool's
     * worker or a flow's opener, after its pool's creation called it. */
    return atomic_load_explicit(&ws_asym_state, memory_order_acquire) == 1;
}

bool ws_asym_heavy(void)
{
    return ws_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0;
}

void ws_asym_forget(void)
{
    /* Relaxed: the fork child's only thread. A pool created here asks the
     * kernel again: Linux hands the registration down to the child (seen
     * here on 6.x), and asking costs one syscall where it would not. */
    atomic_store_explicit(&ws_asym_state, 0, memory_order_relaxed);
}
