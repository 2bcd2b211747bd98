/*
 * tests/ctx_carry.c — weft_ctx_capture / weft_ctx_run / weft_ctx_release:
 * carrying a context into code weft does not schedule, with pools of 1, 2
 * and 4 workers.
 *
 *  1. io thread: tasks capture their context (some after a set of their
 *     own, some their borrowed spawn-time snapshot) and hand it to a plain
 *     pthread (an "I/O thread") that has a context of its own. The I/O
 *     thread runs a function in each snapshot with weft_ctx_run: it sees the
 *     captured values; it opens a flow on the pool (from a thread that is
 *     not a worker) whose tasks see the captured values, and, after a set
 *     inside the run, the new one; afterwards the I/O thread's own context
 *     is back; then the I/O thread releases the snapshot. Tasks capture
 *     and exit before the I/O thread gets to their snapshot.
 *  2. run inside a task: a task runs a capture with weft_ctx_run, spawns
 *     into its own flow and into a flow opened inside the run; the children
 *     see the captured values; the task's own context is back afterwards.
 *     The same snapshot is run concurrently on every worker and nested in
 *     itself.
 *  3. the docs/context.md example, as written there (a request id through
 *     nested flows into an I/O thread and back), with two requests handled
 *     at the same time on two threads; every log line must carry its own
 *     request's id, on the thread kind the doc says. Once with the pool
 *     under test, once with the default pool (NULL, as in the doc).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ctx_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static weft_ctx_var *va, *vb;
#define INIT_A V(0xA0)
#define INIT_B V(0xB0)

static unsigned   g_n;
static weft_pool *g_pool; /* the pool under test; NULL: the default pool */

/* ------------------------------------------------------------------------ */
/* A tiny I/O thread: a queue of jobs, each run in its carried context       */
/* ------------------------------------------------------------------------ */

struct io_job {
    weft_ctx      *ctx;
    weft_fn        fn;
    void          *arg;
    struct io_job *next;
};

static pthread_mutex_t io_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  io_cond = PTHREAD_COND_INITIALIZER;
static struct io_job  *io_head, *io_tail;
static long            io_submitted, io_finished;
static bool            io_stop;
static pthread_t       io_thr;
#define IO_OWN_A V(0x10A)

static void io_submit(struct io_job *job)
{
    pthread_mutex_lock(&io_lock);
    job->next = NULL;
    if (io_tail)
        io_tail->next = job;
    else
        io_head = job;
    io_tail = job;
    io_submitted++;
    pthread_cond_broadcast(&io_cond);
    pthread_mutex_unlock(&io_lock);
}

static struct io_job *io_next(void)
{
    pthread_mutex_lock(&io_lock);
    while (!io_head && !io_stop)
        pthread_cond_wait(&io_cond, &io_lock);
    struct io_job *j = io_head;
    if (j) {
        io_head = j->next;
        if (!io_head)
            io_tail = NULL;
    }
    pthread_mutex_unlock(&io_lock);
    return j;
}

static void *io_thread_main(void *arg)
{
    (void)arg;
    /* The I/O thread's own context. */
    CHECK(weft_ctx_get(va) == INIT_A);
    CHECK_EQ(weft_ctx_set(va, IO_OWN_A), 0);
    for (struct io_job *job; (job = io_next()) != NULL;) {
        CHECK_EQ(weft_ctx_run(job->ctx, job->fn, job->arg), 0);
        /* Restored after every run, whatever the run set. */
        CHECK(weft_ctx_get(va) == IO_OWN_A);
        CHECK(weft_ctx_get(vb) == INIT_B);
        weft_ctx_release(job->ctx);
        pthread_mutex_lock(&io_lock);
        io_finished++;
        pthread_cond_broadcast(&io_cond);
        pthread_mutex_unlock(&io_lock);
    }
    return NULL;
}

static void io_start(void)
{
    io_stop = false;
    CHECK_EQ(pthread_create(&io_thr, NULL, io_thread_main, NULL), 0);
}

static void io_drain(void)
{
    pthread_mutex_lock(&io_lock);
    while (io_finished != io_submitted)
        pthread_cond_wait(&io_cond, &io_lock);
    pthread_mutex_unlock(&io_lock);
}

static void io_end(void)
{
    io_drain();
    pthread_mutex_lock(&io_lock);
    io_stop = true;
    pthread_cond_broadcast(&io_cond);
    pthread_mutex_unlock(&io_lock);
    CHECK_EQ(pthread_join(io_thr, NULL), 0);
}

/* ------------------------------------------------------------------------ */
/* 1: tasks hand their context to the I/O thread                             */
/* ------------------------------------------------------------------------ */

enum { NCARRY = 64, KSUB = 8 };

struct sub {
    void *want_a, *want_b, *got_a, *got_b;
    int   worker;
};

struct carry {
    int           i;
    void         *want_a, *want_b;
    struct io_job job;
    struct sub    before[KSUB], after[KSUB];
    void         *run_a, *run_b;
    int           run_worker;
};

static int sub_task(void *arg)
{
    struct sub *s = arg;
    s->worker = weft_worker_index();
    s->got_a = weft_ctx_get(va);
    s->got_b = weft_ctx_get(vb);
    return 0;
}

/* On the I/O thread, inside weft_ctx_run. */
static int carry_on_io(void *arg)
{
    struct carry *c = arg;
    c->run_worker = weft_worker_index();
    c->run_a = weft_ctx_get(va);
    c->run_b = weft_ctx_get(vb);
    weft_flow f; /* from a thread that is not a worker */
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    for (int k = 0; k < KSUB; k++) {
        c->before[k].want_a = c->want_a;
        c->before[k].want_b = c->want_b;
        CHECK_EQ(weft_spawn(&f, sub_task, &c->before[k]), 0);
    }
    /* A set inside the run: this run's alone. */
    CHECK_EQ(weft_ctx_set(va, V(0xF00 + c->i)), 0);
    for (int k = 0; k < KSUB; k++) {
        c->after[k].want_a = V(0xF00 + c->i);
        c->after[k].want_b = c->want_b;
        CHECK_EQ(weft_spawn(&f, sub_task, &c->after[k]), 0);
    }
    return weft_flow_close(&f);
}

static int carry_task(void *arg)
{
    struct carry *c = arg;
    if (c->i % 2) { /* a context of its own */
        CHECK_EQ(weft_ctx_set(vb, V(0xB00 + c->i)), 0);
        c->want_b = V(0xB00 + c->i);
    }
    c->job.ctx = weft_ctx_capture(); /* else: its borrowed snapshot */
    CHECK(c->job.ctx != NULL);
    c->job.fn = carry_on_io;
    c->job.arg = c;
    /* Later sets do not change the capture. */
    CHECK_EQ(weft_ctx_set(va, V(0xBAD)), 0);
    CHECK_EQ(weft_ctx_set(vb, V(0xBAD)), 0);
    io_submit(&c->job);
    return 0;
}

static void check_sub(const struct sub *s, int n)
{
    for (int k = 0; k < n; k++) {
        CHECK(s[k].worker >= 0);
        CHECK(s[k].got_a == s[k].want_a);
        CHECK(s[k].got_b == s[k].want_b);
    }
}

static void test_io_thread(void)
{
    static struct carry cs[NCARRY];
    memset(cs, 0, sizeof cs);
    io_start();
    CHECK_EQ(weft_ctx_set(va, V(0x1234)), 0);
    CHECK_EQ(weft_ctx_set(vb, V(0x5678)), 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    for (int i = 0; i < NCARRY; i++) {
        cs[i].i = i;
        cs[i].want_a = V(0x1234);
        cs[i].want_b = V(0x5678);
        CHECK_EQ(weft_spawn(&f, carry_task, &cs[i]), 0);
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    /* Our own context was never touched by any of it. */
    CHECK_EQ(weft_ctx_set(va, V(0x4321)), 0);
    io_end(); /* every job ran and was released */
    for (int i = 0; i < NCARRY; i++) {
        CHECK_EQ(cs[i].run_worker, -1);
        CHECK(cs[i].run_a == cs[i].want_a);
        CHECK(cs[i].run_b == cs[i].want_b);
        check_sub(cs[i].before, KSUB);
        check_sub(cs[i].after, KSUB);
    }
    CHECK(weft_ctx_get(va) == V(0x4321));
    CHECK(weft_ctx_get(vb) == V(0x5678));
}

/* ------------------------------------------------------------------------ */
/* 2: weft_ctx_run inside tasks                                              */
/* ------------------------------------------------------------------------ */

struct inrun {
    weft_ctx   *cap;   /* values: a = 0xCA, b = 0xCB */
    struct sub  subs[64][4];
    _Atomic(int) next;
    int          depth;
};

static int inrun_body(void *arg)
{
    struct inrun *r = arg;
    CHECK(weft_ctx_get(va) == V(0xCA));
    CHECK(weft_ctx_get(vb) == V(0xCB));
    int slot = atomic_fetch_add(&r->next, 1);
    CHECK(slot < 64);
    struct sub *s = r->subs[slot];
    for (int k = 0; k < 4; k++) {
        s[k].want_a = V(0xCA);
        s[k].want_b = V(0xCB);
    }
    /* Into the task's own flow, from inside the run. */
    CHECK_EQ(weft_spawn(weft_current_flow(), sub_task, &s[0]), 0);
    /* A flow opened inside the run (closed inside too). */
    weft_flow g;
    CHECK_EQ(weft_flow_open(&g, NULL), 0);
    CHECK_EQ(weft_spawn(&g, sub_task, &s[1]), 0);
    CHECK_EQ(weft_ctx_set(va, V(0xCC)), 0);
    s[2].want_a = V(0xCC);
    CHECK_EQ(weft_spawn(&g, sub_task, &s[2]), 0);
    /* The same snapshot nested in itself: starts from the captured values. */
    s[3].want_a = V(0xCA);
    weft_ctx *again = weft_ctx_capture();
    CHECK(again != NULL);
    CHECK_EQ(weft_ctx_run(r->cap, sub_task, &s[3]), 0);
    CHECK(weft_ctx_get(va) == V(0xCC));
    CHECK_EQ(weft_flow_close(&g), 0);
    weft_ctx_release(again);
    return 0;
}

static int inrun_task(void *arg)
{
    struct inrun *r = arg;
    void *mine = V(0x700 + (uintptr_t)weft_worker_index());
    CHECK_EQ(weft_ctx_set(va, mine), 0);
    CHECK_EQ(weft_ctx_run(r->cap, inrun_body, r), 0);
    CHECK(weft_ctx_get(va) == mine);   /* restored */
    CHECK(weft_ctx_get(vb) == V(0x5678));
    return 0;
}

static void test_run_in_tasks(void)
{
    static struct inrun r;
    memset(&r, 0, sizeof r);
    CHECK_EQ(weft_ctx_set(va, V(0xCA)), 0);
    CHECK_EQ(weft_ctx_set(vb, V(0xCB)), 0);
    r.cap = weft_ctx_capture();
    CHECK(r.cap != NULL);
    CHECK_EQ(weft_ctx_set(vb, V(0x5678)), 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_pool), 0);
    for (int i = 0; i < 64; i++)
        CHECK_EQ(weft_spawn(&f, inrun_task, &r), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&r.next), 64);
    for (int i = 0; i < 64; i++)
        check_sub(r.subs[i], 4);
    weft_ctx_release(r.cap);
    CHECK(weft_ctx_get(va) == V(0xCA));
    CHECK(weft_ctx_get(vb) == V(0x5678));
}

/* ------------------------------------------------------------------------ */
/* 3: the docs/context.md example                                            */
/* ------------------------------------------------------------------------ */

static weft_ctx_var *request_id;

enum { MAXLOG = 64 };
struct log_entry {
    const char *id, *what;
    int         worker;
};
static pthread_mutex_t  log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_entry log_lines[MAXLOG];
static int              nlog;

static void log_line(const char *what)
{
    pthread_mutex_lock(&log_lock);
    CHECK(nlog < MAXLOG);
    log_lines[nlog++] = (struct log_entry){(const char *)weft_ctx_get(request_id), what,
                                           weft_worker_index()};
    pthread_mutex_unlock(&log_lock);
}

struct doc_job {
    struct io_job io; /* the I/O thread's queue entry; io.arg is this job */
    weft_ctx     *ctx;
    const char   *path;
};

static int parse(void *arg)
{
    log_line(arg);
    return 0;
}

static int on_read_done(void *arg)
{
    struct doc_job *job = arg;
    log_line("read done");
    weft_flow f;
    int err = weft_flow_open(&f, g_pool);
    if (err)
        return err;
    weft_spawn(&f, parse, (void *)job->path);
    return weft_flow_close(&f);
}

static int fetch(void *arg)
{
    struct doc_job *job = arg;
    job->ctx = weft_ctx_capture();
    if (!job->ctx)
        return ENOMEM;
    job->io = (struct io_job){job->ctx, on_read_done, job, NULL};
    io_submit(&job->io);
    return 0;
}

static int shard(void *arg)
{
    struct doc_job *jobs = arg;
    weft_flow f;
    int err = weft_flow_open(&f, NULL);
    if (err)
        return err;
    weft_spawn(&f, fetch, &jobs[0]);
    weft_spawn(&f, fetch, &jobs[1]);
    return weft_flow_close(&f);
}

static int handle_request(const char *id, struct doc_job jobs[2])
{
    int err = weft_ctx_set(request_id, (void *)id);
    if (err)
        return err;
    weft_flow f;
    if ((err = weft_flow_open(&f, g_pool)))
        return err;
    weft_spawn(&f, shard, jobs);
    return weft_flow_close(&f);
}

struct req_thread {
    const char    *id;
    struct doc_job jobs[2];
};

static void *request_thread(void *arg)
{
    struct req_thread *r = arg;
    r->jobs[0].path = "a.dat";
    r->jobs[1].path = "b.dat";
    CHECK_EQ(handle_request(r->id, r->jobs), 0);
    CHECK(weft_ctx_get(request_id) == r->id);
    return NULL;
}

static void test_doc_example(void)
{
    static const char *const ids[2] = {"req-42", "req-43"};
    static struct req_thread rt[2];
    nlog = 0;
    io_start();
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&rt[i], 0, sizeof rt[i]);
        rt[i].id = ids[i];
        CHECK_EQ(pthread_create(&th[i], NULL, request_thread, &rt[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    io_end(); /* "jobs must stay valid until the I/O thread is done with them" */
    CHECK_EQ(nlog, 8);
    for (int i = 0; i < 2; i++) {
        int read_done = 0, a = 0, b = 0;
        for (int k = 0; k < nlog; k++) {
            struct log_entry *e = &log_lines[k];
            CHECK(e->id == ids[0] || e->id == ids[1]); /* never "-" */
            if (e->id != ids[i])
                continue;
            if (!strcmp(e->what, "read done")) {
                CHECK_EQ(e->worker, -1); /* on the I/O thread */
                read_done++;
            } else if (!strcmp(e->what, "a.dat")) {
                CHECK(e->worker >= 0);
                a++;
            } else if (!strcmp(e->what, "b.dat")) {
                CHECK(e->worker >= 0);
                b++;
            } else {
                CHECK(!"unexpected log line");
            }
        }
        CHECK_EQ(read_done, 2);
        CHECK_EQ(a, 1);
        CHECK_EQ(b, 1);
    }
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    alarm(900);
    setvbuf(stdout, NULL, _IOLBF, 0);
    va = ctx_new_var("a", INIT_A);
    vb = ctx_new_var("b", INIT_B);
    CHECK_EQ(weft_ctx_var_create(&request_id, "request_id", "-"), 0);
    for (size_t k = 0; k < CTX_NSIZES; k++) {
        g_n = ctx_pool_sizes[k];
        printf("pool of %u workers\n", g_n);
        g_pool = ctx_pool_new(g_n, 0);
        for (int round = 0; round < 5; round++) {
            test_io_thread();
            test_run_in_tasks();
            test_doc_example();
        }
        ctx_pool_free(g_pool);
    }
    printf("default pool (NULL, as in docs/context.md)\n");
    g_pool = NULL;
    test_doc_example();
    test_io_thread();
    puts("ctx_carry: all tests passed");
    return 0;
}
