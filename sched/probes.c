/*
 * sched/probes.c — the USDT probes' semaphores, and sending a worker's
 * inline paths to the library while a tracer is attached to a probe they
 * skip (sched/observe.h).
 *
 * A probe is one nop wherever it is; what a tracer cannot see is work done
 * in a program's own code by include/weft_inline.h (a join taken back at
 * once, a task's open, spawn and close on its own pool). The kernel
 * increments a probe's semaphore while a tracer (perf, bpftrace) is
 * attached to it; a worker that finds one of those five semaphores set
 * before a task it starts sets WEFT_MODE_PROBED_ in its mode word (joins
 * and opens go to the library) and clears weft_thread_.self (a spawn's or
 * close's owner check fails, so they go to the library too), and undoes
 * both once the tracers are gone.
 */
#include "sched/observe.h"

/* In .probes, as <sys/sdt.h> and the tools that read its notes expect. */
#define WS_SEMAPHORE_DEF(name) \
    __attribute__((section(".probes"), used)) unsigned short weft_##name##_semaphore;
WS_SEMAPHORES(WS_SEMAPHORE_DEF)

void ws_probes_switch(ws_worker *w, bool on)
{
    w->probed = on;
    /* Relaxed: the mode word is read relaxed by this thread's inline code
     * only; the tracer's bit (sched/trace.c) is RMWed too, so both use
     * RMWs and neither loses the other's. */
    if (on)
        atomic_fetch_or_explicit(&w->deque.user_mode, WEFT_MODE_PROBED_, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(&w->deque.user_mode, ~WEFT_MODE_PROBED_, memory_order_relaxed);
    weft_thread_.self = on ? NULL : w;
}
