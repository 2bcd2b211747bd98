/*
 * sched/trace.c — the timeline trace: per-worker event buffers, written by
 * their worker alone, turned into Chrome trace-event JSON at stop.
 *
 * Recording (ws_trace_record, the worker itself): one event is a tick
 * count and three words, stored at index len of the worker's buffer; then
 * len is published with a release store. A full buffer counts the event as
 * dropped instead: recording never blocks, never allocates.
 *
 * Stopping (any thread): each worker's buffer pointer is cleared, then its
 * len read with acquire (pairing with the worker's release store): every
 * event below len is complete and visible. A worker that loaded the
 * pointer just before it was cleared may still write one event at len and
 * publish len + 1 (or a few more, if it keeps the pointer across a task);
 * those slots are not read, and the buffer is not freed until the pool is
 * destroyed (after its workers were joined), so late writes land in memory
 * that is still the worker's.
 */
#include "sched/observe.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ws_trace_ev {
    uint64_t  tick;
    uint32_t  kind;
    uint32_t  spare;
    uintptr_t a, b;
} ws_trace_ev;

struct ws_trace_buf {
    _Atomic(uint64_t) len;     /* events stored (worker: release; stop: acquire) */
    _Atomic(uint64_t) dropped; /* events that found the buffer full (worker only) */
    uint64_t          cap;
    struct ws_trace_buf *retired_next; /* buffers of ended sessions, freed at destroy */
    ws_trace_ev       ev[];
};

typedef struct ws_trace_session {
    char     *path;
    uint64_t  tick0, ns0; /* the clocks at start, to convert ticks to time */
    struct ws_trace_buf **bufs;
} ws_trace_session;

/* A cheap, monotonic tick: the cycle counter where there is one. */
static inline uint64_t ws_ticks(void)
{
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    return ws_now_ns();
#endif
}

void ws_trace_record(struct ws_trace_buf *t, unsigned kind, uintptr_t a, uintptr_t b)
{
    uint64_t n = atomic_load_explicit(&t->len, memory_order_relaxed);
    if (WS_UNLIKELY(n >= t->cap)) {
        uint64_t d = atomic_load_explicit(&t->dropped, memory_order_relaxed);
        atomic_store_explicit(&t->dropped, d + 1, memory_order_relaxed);
        return;
    }
    ws_trace_ev *e = &t->ev[n];
    e->tick = ws_ticks();
    e->kind = kind;
    e->a = a;
    e->b = b;
    /* Release pairs with the acquire load of len in ws_trace_write. */
    atomic_store_explicit(&t->len, n + 1, memory_order_release);
}

/* ---- start ------------------------------------------------------------- */

static uint64_t ws_trace_capacity(void)
{
    const char *s = getenv("WEFT_TRACE_EVENTS");
    if (s && *s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (!*end && v >= 16 && v <= (1ull << 26))
            return v;
    }
    return 1u << 16;
}

static int ws_trace_begin(struct weft_pool *p, const char *path)
{
    if (p->tracing)
        return EBUSY;
    ws_trace_session *t = calloc(1, sizeof *t);
    if (!t)
        return ENOMEM;
    t->path = strdup(path);
    t->bufs = calloc(p->nworkers, sizeof *t->bufs);
    uint64_t cap = ws_trace_capacity();
    bool ok = t->path && t->bufs;
    for (unsigned i = 0; ok && i < p->nworkers; i++) {
        t->bufs[i] = malloc(sizeof(struct ws_trace_buf) + cap * sizeof(ws_trace_ev));
        if (!t->bufs[i]) {
            ok = false;
            break;
        }
        atomic_init(&t->bufs[i]->len, 0);
        atomic_init(&t->bufs[i]->dropped, 0);
        t->bufs[i]->cap = cap;
        t->bufs[i]->retired_next = NULL;
    }
    if (!ok) {
        for (unsigned i = 0; t->bufs && i < p->nworkers; i++)
            free(t->bufs[i]);
        free(t->bufs);
        free(t->path);
        free(t);
        return ENOMEM;
    }
    t->ns0 = ws_now_ns();
    t->tick0 = ws_ticks();
    p->tracing = t;
    /* Release pairs with the worker's acquire load in ws_trace: it sees the
     * buffer initialized. */
    for (unsigned i = 0; i < p->nworkers; i++) {
        atomic_store_explicit(&p->workers[i]->trace, t->bufs[i], memory_order_release);
        /* Inline joins go to the library, which traces them (relaxed: a
         * join that has not seen it yet is one the trace does not show). */
        atomic_fetch_or_explicit(&p->workers[i]->deque.user_mode, WEFT_MODE_SLOW_,
                                 memory_order_relaxed);
    }
    return 0;
}

/* start and stop may be called from any thread: one at a time per pool. */
static bool ws_trace_lock(struct weft_pool *p)
{
    int unlocked = 0;
    /* Acquire pairs with the release store in ws_trace_unlock: we see the
     * previous holder's p->tracing. */
    return atomic_compare_exchange_strong_explicit(&p->trace_busy, &unlocked, 1,
                                                   memory_order_acquire, memory_order_relaxed);
}

static void ws_trace_unlock(struct weft_pool *p)
{
    atomic_store_explicit(&p->trace_busy, 0, memory_order_release); /* see ws_trace_lock */
}

int weft_trace_start(weft_pool *p, const char *path)
{
    if (!p || !path || !*path || !ws_pool_usable(p))
        return EINVAL;
    if (!WS_OBSERVE)
        return ENOTSUP;
    if (!ws_trace_lock(p))
        return EBUSY;
    int err = ws_trace_begin(p, path);
    ws_trace_unlock(p);
    return err;
}

void ws_trace_from_env(struct weft_pool *p)
{
    const char *path = getenv("WEFT_TRACE");
    if (!WS_OBSERVE || !path || !*path)
        return;
    char buf[4096];
    if (p->seq == 0) {
        snprintf(buf, sizeof buf, "%s", path);
    } else {
        /* "trace.json" -> "trace-3.json": the n-th pool's own file. */
        const char *slash = strrchr(path, '/');
        const char *dot = strrchr(path, '.');
        if (!dot || (slash && dot < slash))
            dot = path + strlen(path);
        snprintf(buf, sizeof buf, "%.*s-%u%s", (int)(dot - path), path, p->seq, dot);
    }
    if (ws_trace_begin(p, buf) != 0)
        fprintf(stderr, "weft: WEFT_TRACE: cannot trace pool %u into %s\n", p->seq, buf);
}

/* ---- stop: the JSON ------------------------------------------------------ */

static double ws_trace_us(const ws_trace_session *t, uint64_t tick, double ns_per_tick)
{
    return (double)(int64_t)(tick - t->tick0) * ns_per_tick / 1000.0;
}

/* A task's name: its function's symbol where the dynamic symbol table has
 * it, else its address. */
static void ws_trace_fn_name(uintptr_t fn, char *out, size_t n)
{
    Dl_info info;
    if (dladdr((void *)fn, &info) && info.dli_sname && info.dli_saddr == (void *)fn) {
        size_t k = 0;
        for (const char *c = info.dli_sname; *c && k + 1 < n; c++)
            if (*c != '"' && *c != '\\')
                out[k++] = *c;
        out[k] = 0;
    } else {
        snprintf(out, n, "task %#lx", (unsigned long)fn);
    }
}

/* s as the body of a JSON string (the pool's name is the user's). */
static void ws_json_escape(const char *s, char *out, size_t n)
{
    size_t k = 0;
    for (; *s && k + 7 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[k++] = '\\';
            out[k++] = (char)c;
        } else if (c < 0x20) {
            k += (size_t)snprintf(out + k, n - k, "\\u%04x", c);
        } else {
            out[k++] = (char)c;
        }
    }
    out[k] = 0;
}

static void ws_trace_worker(FILE *f, const char *pool_name,
                            const ws_trace_session *t, unsigned k, uint64_t len,
                            uint64_t dropped, double ns_per_tick, double end_us)
{
    const struct ws_trace_buf *b = t->bufs[k];
    int tid = (int)k + 1;
    /* Spans the worker was in when the trace started end without a begin:
     * count them (open), and take the last event's time, which may follow
     * end_us (a worker that took the session before stop unhooked it). */
    int open = 0, depth = 0;
    uint32_t outer = 0; /* the kind of the outermost one's end */
    double last = 0;
    for (uint64_t i = 0; i < len; i++) {
        uint32_t kind = b->ev[i].kind;
        double ts = ws_trace_us(t, b->ev[i].tick, ns_per_tick);
        if (ts > last)
            last = ts;
        bool ends = kind == WS_EV_TASK_END || kind == WS_EV_FLOW_CLOSE || kind == WS_EV_PARK_END;
        if (kind == WS_EV_TASK_BEGIN || kind == WS_EV_FLOW_OPEN || kind == WS_EV_PARK_BEGIN)
            depth++;
        else if (ends && depth > 0)
            depth--;
        else if (ends)
            open++, outer = kind;
    }
    if (end_us < last)
        end_us = last;
    last = 0;
    depth = 0;
    fprintf(f, ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":\"%s-%u\"}}", tid, pool_name, k);
    fprintf(f, ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":%d}}", tid, tid);
    fprintf(f, ",\n{\"ph\":\"X\",\"pid\":1,\"tid\":%d,\"name\":\"worker\",\"cat\":\"worker\",\"ts\":0,\"dur\":%.3f}", tid, end_us);
    /* The spans open at the start begin at 0, as one span "before the
     * trace" (which tasks and flows they were is not recorded), or as a
     * parked span if the worker was parked; what is still open at the end
     * (a task running at stop, events dropped for a full buffer) ends then. */
    if (open && outer == WS_EV_PARK_END)
        fprintf(f, ",\n{\"ph\":\"B\",\"pid\":1,\"tid\":%d,\"ts\":0,\"name\":\"parked\",\"cat\":\"park\"}", tid);
    else if (open)
        fprintf(f, ",\n{\"ph\":\"B\",\"pid\":1,\"tid\":%d,\"ts\":0,\"name\":\"(begun before the trace)\",\"cat\":\"task\",\"args\":{\"fn\":\"?\",\"spans\":%d}}",
                tid, open);
    for (uint64_t i = 0; i < len; i++) {
        const ws_trace_ev *e = &b->ev[i];
        double ts = ws_trace_us(t, e->tick, ns_per_tick);
        if (ts < last)
            ts = last; /* one worker's ticks are monotonic; keep it exact */
        last = ts;
        char name[128];
        switch (e->kind) {
        case WS_EV_TASK_BEGIN:
        case WS_EV_FLOW_OPEN:
        case WS_EV_PARK_BEGIN:
            depth++;
            if (e->kind == WS_EV_TASK_BEGIN) {
                ws_trace_fn_name(e->a, name, sizeof name);
                fprintf(f, ",\n{\"ph\":\"B\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"name\":\"%s\",\"cat\":\"task\",\"args\":{\"fn\":\"%#lx\",\"flow\":\"%#lx\"}}",
                        tid, ts, name, (unsigned long)e->a, (unsigned long)e->b);
            } else if (e->kind == WS_EV_FLOW_OPEN) {
                fprintf(f, ",\n{\"ph\":\"B\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"name\":\"flow\",\"cat\":\"flow\",\"args\":{\"flow\":\"%#lx\"}}",
                        tid, ts, (unsigned long)e->a);
            } else {
                fprintf(f, ",\n{\"ph\":\"B\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"name\":\"parked\",\"cat\":\"park\"}", tid, ts);
            }
            break;
        case WS_EV_TASK_END:
        case WS_EV_FLOW_CLOSE:
        case WS_EV_PARK_END:
            if (depth == 0) { /* one of the spans before the trace */
                if (open > 0 && --open == 0)
                    fprintf(f, ",\n{\"ph\":\"E\",\"pid\":1,\"tid\":%d,\"ts\":%.3f}", tid, ts);
                break;
            }
            depth--;
            if (e->kind == WS_EV_FLOW_CLOSE)
                fprintf(f, ",\n{\"ph\":\"E\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"args\":{\"result\":%d}}", tid, ts, (int)e->b);
            else if (e->kind == WS_EV_TASK_END)
                fprintf(f, ",\n{\"ph\":\"E\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"args\":{\"result\":%d}}", tid, ts, (int)e->a);
            else
                fprintf(f, ",\n{\"ph\":\"E\",\"pid\":1,\"tid\":%d,\"ts\":%.3f}", tid, ts);
            break;
        case WS_EV_STEAL:
            fprintf(f, ",\n{\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"name\":\"steal\",\"cat\":\"steal\",\"args\":{\"victim\":%lu}}",
                    tid, ts, (unsigned long)e->a);
            break;
        case WS_EV_INJECT:
            fprintf(f, ",\n{\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"name\":\"inject\",\"cat\":\"steal\"}", tid, ts);
            break;
        }
    }
    if (dropped)
        fprintf(f, ",\n{\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"name\":\"trace buffer full: %llu events dropped\",\"cat\":\"weft\"}",
                tid, last, (unsigned long long)dropped);
    for (depth += open > 0; depth > 0; depth--)
        fprintf(f, ",\n{\"ph\":\"E\",\"pid\":1,\"tid\":%d,\"ts\":%.3f}", tid, end_us);
}

static int ws_trace_write(struct weft_pool *p, ws_trace_session *t)
{
    /* len[i], then dropped[i]: each worker's counts read once, so that the
     * header's and the buffer-full event's agree (a worker that took the
     * session before it was unhooked may still drop an event meanwhile). */
    uint64_t *len = calloc(2 * (size_t)p->nworkers, sizeof *len);
    if (!len)
        return ENOMEM;
    uint64_t *dropped = len + p->nworkers;
    for (unsigned i = 0; i < p->nworkers; i++) {
        atomic_store_explicit(&p->workers[i]->trace, NULL, memory_order_relaxed);
        atomic_fetch_and_explicit(&p->workers[i]->deque.user_mode, ~WEFT_MODE_SLOW_,
                                  memory_order_relaxed);
        /* Acquire pairs with the release store of len in ws_trace_record. */
        len[i] = atomic_load_explicit(&t->bufs[i]->len, memory_order_acquire);
        dropped[i] = atomic_load_explicit(&t->bufs[i]->dropped, memory_order_relaxed);
    }
    uint64_t tick1 = ws_ticks(), ns1 = ws_now_ns();
    double ns_per_tick = tick1 > t->tick0 ? (double)(ns1 - t->ns0) / (double)(tick1 - t->tick0) : 1.0;
    double end_us = (double)(ns1 - t->ns0) / 1000.0;
    int err = 0;
    char name[sizeof p->name * 6 + 8];
    ws_json_escape(p->name, name, sizeof name);
    FILE *f = fopen(t->path, "w");
    if (!f) {
        err = errno ? errno : EIO;
    } else {
        fprintf(f, "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"weft_version\":\"%s\",\"pool\":\"%s\",\"buffer_events\":%llu,\"dropped\":[",
                WEFT_VERSION_STRING, name, (unsigned long long)t->bufs[0]->cap);
        for (unsigned i = 0; i < p->nworkers; i++)
            fprintf(f, "%s%llu", i ? "," : "", (unsigned long long)dropped[i]);
        fprintf(f, "]},\n\"traceEvents\":[\n{\"ph\":\"M\",\"pid\":1,\"name\":\"process_name\",\"args\":{\"name\":\"weft pool %s\"}}", name);
        for (unsigned i = 0; i < p->nworkers; i++)
            ws_trace_worker(f, name, t, i, len[i], dropped[i], ns_per_tick, end_us);
        fprintf(f, "\n]}\n");
        if (ferror(f))
            err = EIO;
        if (fclose(f) != 0 && !err)
            err = errno ? errno : EIO;
    }
    free(len);
    /* The buffers stay until destroy (see the top of this file). */
    for (unsigned i = 0; i < p->nworkers; i++) {
        t->bufs[i]->retired_next = p->trace_retired;
        p->trace_retired = t->bufs[i];
    }
    free(t->bufs);
    free(t->path);
    free(t);
    p->tracing = NULL;
    return err;
}

int weft_trace_stop(weft_pool *p)
{
    if (!p || !ws_pool_usable(p))
        return EINVAL;
    if (!ws_trace_lock(p))
        return EBUSY;
    int err = p->tracing ? ws_trace_write(p, p->tracing) : EINVAL;
    ws_trace_unlock(p);
    return err;
}

void ws_trace_destroy(struct weft_pool *p, bool write)
{
    ws_trace_session *t = p->tracing;
    if (t && write) {
        /* No caller to return a write error to (a path of $WEFT_TRACE, or a
         * trace never stopped): say it, as the file will be missing. */
        char path[4096];
        snprintf(path, sizeof path, "%s", t->path);
        int err = ws_trace_write(p, t); /* retires the buffers */
        if (err)
            fprintf(stderr, "weft: trace of pool \"%s\": cannot write %s: %s\n", p->name, path,
                    strerror(err));
    } else if (t) {
        /* A pool whose creation failed after its trace began: no file. */
        for (unsigned i = 0; i < p->nworkers; i++)
            free(t->bufs[i]);
        free(t->bufs);
        free(t->path);
        free(t);
        p->tracing = NULL;
    }
    while (p->trace_retired) {
        struct ws_trace_buf *b = p->trace_retired;
        p->trace_retired = b->retired_next;
        free(b);
    }
}
