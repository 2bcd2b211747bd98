/*
 * sched/park.c — idle workers sleep; every publish wakes one, none is lost.
 *
 * An event count on a futex word (the protocol ck_ec implements; written here
 * on C11 atomics because ThreadSanitizer does not understand ck_pr). A worker
 * that found nothing to do:
 *   1. reads epoch,
 *   2. announces itself in sleepers (seq_cst RMW),
 *   3. looks once more for visible work (seq_cst loads),
 *   4. sleeps in futex_wait(epoch, value read in 1).
 * Whoever makes work visible (publishes deque items: ws_publish; pushes to
 * the injection queue) then reads sleepers with a seq_cst operation after
 * the store that made it visible (ws_notify: an RMW used as a load, as the
 * publish is a plain release store; ws_notify_after_rmw: a load, as the
 * injection push is itself a seq_cst RMW; ws_notify_light: a relaxed load
 * after a light ring's release store, the sleeper's membarrier standing in
 * for both sides' barrier, sched/asym.c) and, if anyone sleeps, increments
 * epoch and calls futex_wake, unless a wake-up is already on its way
 * (waking, below).
 * Why nothing is lost: steps 2-3 and the notifier's store-then-seq_cst-read
 * are the two halves of a Dekker pattern, so either the sleeper sees the
 * work in step 3, or the notifier sees it in sleepers; the epoch increment
 * then makes the futex_wait of step 4 return at once (value changed) or
 * wakes it. docs/scheduler.md has the argument for each publish path.
 *
 * One wake-up at a time (waking): a notifier that sees sleepers but also a
 * wake-up sent and not yet received sends none (4 producers on 2 workers
 * made 340,000 futex calls per 10 M tasks, each for a worker already
 * woken). It marks the token PASS instead. Every worker takes the token
 * (exchanges it to 0) after its announce, before its recheck, and again
 * when it leaves: a notifier that skipped before the first exchange is
 * answered by the recheck; one that skipped later, by the leaving worker,
 * which passes a wake-up on when it finds work (ws_pass_wake). Argument:
 * docs/scheduler.md, "One wake-up at a time"; model: tests/model/park.pml.
 */
#include "sched/observe.h"

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

_Thread_local bool ws_woke WS_TLS;

/* Only an address is passed: the kernel does not touch the memory, so this is
 * safe even after the word's owner may have freed it (a spurious wake-up at
 * worst, which every futex waiter tolerates). */
void ws_futex_wake(void *addr, int n)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static bool ws_work_visible(struct weft_pool *p)
{
    if (wq_inject_nonempty(&p->inject) || ws_rings_nonempty(p))
        return true;
    /* seq_cst pairs with ws_flow_async_defer's push (then its notify). */
    if (atomic_load_explicit(&p->async_done, memory_order_seq_cst))
        return true;
    /* A batch too (seq_cst pairs with ws_batch_keep's notify): not ours to
     * take yet, but to watch in case its worker is stuck (ws_rescue). */
    for (unsigned i = 0; i < p->nworkers; i++)
        if (wq_deque_stealable(&p->workers[i]->deque) ||
            wq_batch_nonempty(&p->workers[i]->batch))
            return true;
    return false;
}

static void ws_wake(struct weft_pool *p, int n)
{
    ws_worker *self = ws_self;
    if (self && self->pool == p)
        WS_STAT(self, wakeups, 1);
    WS_PROBE2(wake, p, WS_PROBE_REG(n)); /* n is a constant where inlined */
    /* Release pairs with the acquire load of epoch in ws_park_wait. */
    atomic_fetch_add_explicit(&p->park.epoch, 1, memory_order_release);
    ws_futex_wake(&p->park.epoch, n);
    ws_woke = true;
}

/* After a notifier saw a sleeper: sends a wake-up of up to n workers
 * unless one is on its way, and marks the token (mark: SENT, or PASS from
 * ws_pass_wake). A notifier that finds SENT marks it PASS and sends
 * nothing; one that finds PASS leaves it. seq_cst load (ws_notify_light:
 * relaxed, the parker's membarrier or the lease's fence standing in for
 * it) and seq_cst CAS: they pair with the exchanges of waking in
 * ws_park_wait, which come after the announce and before the recheck, and
 * again on the way out. rmw_skip: the publish was a release store, not a
 * seq_cst RMW, so a skip on PASS is a seq_cst RMW that writes PASS back:
 * the next exchange of waking then reads from it and synchronizes with
 * us, and the parker's recheck sees the publish (a load there orders
 * nothing with a release-store publish in C11: docs/scheduler.md, "One
 * wake-up at a time"). */
static void ws_wake_once(struct weft_pool *p, int n, uint32_t mark, memory_order load,
                         bool rmw_skip)
{
    uint32_t k = atomic_load_explicit(&p->park.waking, load);
    for (;;) {
        if (k == WS_WAKE_PASS) {
            if (!rmw_skip)
                return;
            k = atomic_fetch_or_explicit(&p->park.waking, 0, memory_order_seq_cst);
            if (k == WS_WAKE_PASS)
                return;
        }
        uint32_t want = k ? WS_WAKE_PASS : mark;
        if (atomic_compare_exchange_weak_explicit(&p->park.waking, &k, want, memory_order_seq_cst,
                                                  memory_order_seq_cst)) {
            if (!k)
                ws_wake(p, n);
            return;
        }
    }
}

void ws_notify_after_rmw(struct weft_pool *p, int n)
{
    /* seq_cst load: with the caller's seq_cst RMW that made the work
     * visible (the injection queue's claim of a slot, a seq_cst ring's
     * fetch-add of tail), this is
     * the notifier's half of the Dekker pairing with the seq_cst fetch_add
     * of sleepers in ws_park_wait. */
    if (atomic_load_explicit(&p->park.sleepers, memory_order_seq_cst))
        ws_wake_once(p, n, WS_WAKE_SENT, memory_order_seq_cst, false);
}

/* ws_notify_light (sched/ws.h) found sleepers. Its pairing: the
 * producer's release store of tail comes before its load of sleepers in
 * program order, and the compiler barrier keeps it there; the hardware may
 * not (a store buffer), but a parker that announced itself and sees our
 * ring leased runs a membarrier before its recheck (ws_asym_heavy), which
 * puts a full barrier into this thread at some instruction: if that is
 * after our store, the recheck sees it; if before, the load comes after
 * the barrier, which comes after the announce, and sees it. A parker that
 * saw no ring leased read the mask before our lease in the total order:
 * the lease's fence makes the load see it (ws_ring_lease). */
void ws_notify_light_wake(struct weft_pool *p, int n)
{
    ws_wake_once(p, n, WS_WAKE_SENT, memory_order_relaxed, false);
}

/* ws_notify and ws_pass_wake: a seq_cst RMW of sleepers, then a wake-up
 * marked mark if anyone sleeps. */
static void ws_notify_marked(struct weft_pool *p, int n, uint32_t mark)
{
    if (atomic_fetch_add_explicit(&p->park.sleepers, 0, memory_order_seq_cst))
        ws_wake_once(p, n, mark, memory_order_seq_cst, true);
}

void ws_notify(struct weft_pool *p, int n)
{
    /* A seq_cst RMW used as a load (no standalone fence: ThreadSanitizer
     * does not model those). It pairs with the seq_cst fetch_add of
     * sleepers in ws_park_wait: RMWs on sleepers are totally ordered, so
     * either the sleeper's increment comes first and we read it, or ours
     * does and the sleeper's RMW synchronizes with it, so that its recheck
     * sees the store that made our work visible. */
    ws_notify_marked(p, n, WS_WAKE_SENT);
}

void ws_pass_wake(struct weft_pool *p)
{
    /* As ws_notify: the RMW pairs with the announce of a worker that parks
     * after our exchange of waking (which is then answered by its own
     * recheck). */
    ws_notify_marked(p, 1, WS_WAKE_PASS);
}

/* 0 if the clock cannot be read (a sandbox may refuse the system call). */
static uint64_t ws_clock_ns(clockid_t c)
{
    struct timespec ts;
    if (clock_gettime(c, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ws_now_ns(void)
{
    return ws_clock_ns(CLOCK_MONOTONIC);
}

/* A system call (no vDSO): the sum of every thread's CPU time. */
uint64_t ws_process_cpu_ns(void)
{
    return ws_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

/* ws_park_wait takes the token (waking to 0): whether it was PASS. seq_cst
 * exchange: pairs with ws_wake_once's load and CAS. */
static bool ws_take_token(struct weft_pool *p)
{
    return atomic_exchange_explicit(&p->park.waking, 0, memory_order_seq_cst) == WS_WAKE_PASS;
}

/* A parker whose membarrier failed sleeps at most this long (1 ms). */
enum { WS_PARK_FALLBACK_NS = 1000000 };

bool ws_park_wait(struct weft_pool *p, ws_worker *w, bool pass)
{
    /* Acquire pairs with the release increment in ws_wake. */
    uint32_t e = atomic_load_explicit(&p->park.epoch, memory_order_acquire);
    /* seq_cst pairs with ws_notify's RMW and ws_notify_after_rmw's load. */
    atomic_fetch_add_explicit(&p->park.sleepers, 1, memory_order_seq_cst);
    /* Take the token: a notifier that skipped its wake-up before this
     * exchange made its work visible before it, so the recheck below sees
     * that work. */
    if (ws_take_token(p))
        pass = true;
    /* Tell the others' pushes that someone may sleep (their one hint word):
     * they then publish all they push, and notify. A hint, relaxed. */
    for (unsigned i = 0; i < p->nworkers; i++)
        if (p->workers[i] != w)
            wq_deque_hint_set(&p->workers[i]->deque, WS_HINT_SLEEP);
    /* Ring producers may publish with a plain release store and read
     * sleepers without a barrier (ws_notify_light): the barrier they skip
     * is run here, in them, by the kernel, when a ring is leased (seq_cst
     * load, after our announce: a lessee whose CAS comes later in the
     * total order sees the announce, ws_ring_lease). Should the kernel
     * refuse, sleep with a timeout instead: a wake-up may then be late,
     * never lost. */
    long timeout_ns = 0;
    if (ws_asym_on() && atomic_load_explicit(&p->rings_leased, memory_order_seq_cst) != 0 &&
        !ws_asym_heavy())
        timeout_ns = WS_PARK_FALLBACK_NS;
    if (!atomic_load_explicit(&p->stopping, memory_order_seq_cst) && !ws_work_visible(p)) {
        WS_PROBE2(park, p, w->index);
        ws_trace(w, WS_EV_PARK_BEGIN, 0, 0);
        uint64_t t0 = WS_OBSERVE ? ws_now_ns() : 0;
        ws_futex_wait(&p->park.epoch, e, timeout_ns);
        /* The recheck saw nothing: every notifier that skipped before our
         * first exchange found its work taken. */
        pass = false;
        WS_STAT(w, parks, 1);
        WS_STAT(w, parked_ns, ws_now_ns() - t0);
        ws_trace(w, WS_EV_PARK_END, 0, 0);
    }
    atomic_fetch_sub_explicit(&p->park.sleepers, 1, memory_order_relaxed);
    /* Take the token again on the way out, so that the next notifier sends
     * a wake-up; a PASS: someone skipped while we were on our way, and we
     * may not see their work before we find other work. */
    if (ws_take_token(p))
        pass = true;
    return pass;
}


void ws_publish(ws_worker *w, bool all)
{
    int64_t n = wq_deque_publish(&w->deque, all);
    if (n) {
        WS_STAT(w, publishes, n);
        ws_notify(w->pool, n < INT_MAX ? (int)n : INT_MAX);
    }
}

void ws_after_push_slow(ws_worker *w)
{
    wq_deque *d = &w->deque;
    ws_stat_depth(w);
    /* Clear the marks first: a steal that drains the part we are about to
     * publish sets its bit again after our clear. A worker that goes to
     * sleep sets the sleep bit again, but that set and our relaxed read of
     * sleepers below are not ordered (C11, and ARM64): the mark may be
     * lost, and later pushes then keep their items private while it
     * sleeps. No work is lost by that: what the publish below makes
     * visible it notifies, and ws_notify's seq_cst RMW sees the sleeper,
     * which that wake-up (or its recheck) sends to the items; it marks
     * again when it parks again. */
    wq_deque_hint_clear(d, WQ_HINT_DRAINED | WS_HINT_SLEEP);
    /* Relaxed: only a hint for how much to publish. What keeps the promise
     * is that every publish notifies (ws_publish), and that with other
     * workers around a push leaves a stealable item (the drained mark),
     * which a sleeper's recheck sees or whose notify wakes it. */
    bool sleepers = atomic_load_explicit(w->sleepers, memory_order_relaxed) != 0;
    if (sleepers) /* still some: keep publishing all on our pushes */
        wq_deque_hint_set(d, WS_HINT_SLEEP);
    ws_publish(w, sleepers);
}

bool ws_take_shared(ws_worker *w, wq_item *out)
{
    bool got = wq_deque_take_shared_(&w->deque, out);
    /* Every path of the shared take but one leaves the shared part empty;
     * with other workers around, the next push must make work stealable. */
    if (w->others && wq_deque_shared_empty(&w->deque))
        wq_deque_hint_set(&w->deque, WQ_HINT_DRAINED);
    return got;
}
