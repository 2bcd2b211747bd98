/*
 * sched/stats.c — per-worker counters: weft_pool_stats, and the report
 * $WEFT_STATS asks for.
 */
#include "sched/observe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if WS_OBSERVE
void ws_stat_depth_slow(ws_worker *w)
{
    int64_t n = wq_deque_size(&w->deque);
    if (n > w->deque.user_depth) {
        w->deque.user_depth = n;
        atomic_store_explicit(&w->stats.max_deque, (uint64_t)n, memory_order_relaxed);
    }
}
#endif

#if WS_OBSERVE
/* The counters a pool's sum adds up (wakeups and max_deque have sums of
 * their own: see weft_pool_stats). */
#define WS_SUMMED(X) \
    X(tasks_run) X(tasks_skipped) X(tasks_spawned) X(steals) X(steal_attempts) \
    X(injected) X(publishes) X(parks) X(parked_ns) X(spin_ns) X(rescued)

/* Relaxed loads: each counter is written by one worker with relaxed stores,
 * so each value read is one the counter really had during the call. Each
 * field on its own: relaxed loads give no order between fields (run may
 * briefly read above spawned while tasks run); the sums are exact once the
 * reader synchronized with the flows' closes. */
static void ws_stats_read(const ws_worker *w, weft_stats *out)
{
#define WS_READ(f) out->f = atomic_load_explicit(&w->stats.f, memory_order_relaxed);
    WS_SUMMED(WS_READ)
    WS_READ(wakeups)
    WS_READ(max_deque)
#undef WS_READ
    uint64_t inline_joins = atomic_load_explicit(&w->deque.user_count, memory_order_relaxed);
    /* The inline fast path's counters (include/weft_inline.h). */
    out->tasks_run += inline_joins + atomic_load_explicit(&w->deque.user_runs, memory_order_relaxed);
    out->tasks_spawned +=
        inline_joins + atomic_load_explicit(&w->deque.user_spawns, memory_order_relaxed);
}
#endif

int weft_pool_stats(const weft_pool *pool, int worker, weft_stats *out)
{
    if (!pool || !out || worker < -1 || (worker >= 0 && (unsigned)worker >= pool->nworkers))
        return EINVAL;
#if !WS_OBSERVE
    memset(out, 0, sizeof *out);
    return ENOTSUP;
#else
    if (worker >= 0) {
        ws_stats_read(pool->workers[worker], out);
        return 0;
    }
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < pool->nworkers; i++) {
        weft_stats s;
        ws_stats_read(pool->workers[i], &s);
#define WS_ADD(f) out->f += s.f;
        WS_SUMMED(WS_ADD)
#undef WS_ADD
        if (s.max_deque > out->max_deque)
            out->max_deque = s.max_deque;
    }
    /* Every wake-up sent to this pool, by its workers and by any other
     * thread: each is one increment of the futex word (ws_wake), less the
     * one a destroy makes (ws_pool_stop: stopping, then the increment, both
     * seq_cst; read here in the other order, so that an increment seen
     * comes with its stopping). */
    uint32_t epoch = atomic_load_explicit(&pool->park.epoch, memory_order_seq_cst);
    bool stopping = atomic_load_explicit(&pool->stopping, memory_order_seq_cst) != 0;
    out->wakeups = (uint32_t)(epoch - (stopping ? 1u : 0u));
    return 0;
#endif
}

static void ws_stats_line(const char *who, const weft_stats *s)
{
    fprintf(stderr,
            "  %-6s %10llu %10llu %8llu %8llu %9llu %8llu %9llu %7llu %8llu %10.1f %9.1f %9llu %7llu\n",
            who, (unsigned long long)s->tasks_run, (unsigned long long)s->tasks_spawned,
            (unsigned long long)s->tasks_skipped, (unsigned long long)s->steals,
            (unsigned long long)s->steal_attempts, (unsigned long long)s->injected,
            (unsigned long long)s->publishes, (unsigned long long)s->parks,
            (unsigned long long)s->wakeups, s->parked_ns / 1e6, s->spin_ns / 1e6,
            (unsigned long long)s->max_deque, (unsigned long long)s->rescued);
}

void ws_stats_report(const struct weft_pool *p, const char *when)
{
    const char *env = getenv("WEFT_STATS");
    if (!WS_OBSERVE || !env || !*env || strcmp(env, "0") == 0)
        return;
    weft_stats s;
    fprintf(stderr, "weft stats: pool \"%s\" (%u workers), %s\n", p->name, p->nworkers, when);
    fprintf(stderr, "  %-6s %10s %10s %8s %8s %9s %8s %9s %7s %8s %10s %9s %9s %7s\n", "worker",
            "tasks_run", "spawned", "skipped", "steals", "attempts", "injected", "publishes",
            "parks", "wakeups", "parked_ms", "spin_ms", "max_deque", "rescued");
    weft_pool_stats(p, -1, &s);
    ws_stats_line("all", &s);
    for (unsigned i = 0; i < p->nworkers; i++) {
        char who[16];
        snprintf(who, sizeof who, "%u", i);
        weft_pool_stats(p, (int)i, &s);
        ws_stats_line(who, &s);
    }
}
