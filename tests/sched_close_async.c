/*
 * weft_flow_close_async against its header comment, through the public API
 * only (no sched/ internals):
 *   - dozens of flows of tens of thousands of tiny tasks, closed at once
 *     from main: plain, one failing task, canceled mid-way, empty, and all
 *     tasks finished before the call. done runs exactly once per flow, with
 *     the close's result, on a worker of the flow's pool (thread name),
 *     never inside the call (a thread-local flag set around it), in the
 *     caller's context at the call (a context variable changed right after
 *     the call), after every task (plain per-task stores that done reads:
 *     ThreadSanitizer sees a missing happens-before), and may free the
 *     flow's memory (AddressSanitizer sees a later touch);
 *   - misuse: NULL flow or done, a flow never opened, closed, or closed
 *     async already, a spawn after the call, a call from inside the flow or
 *     below it: EINVAL, and a refused call leaves the flow open;
 *   - the flow's own tasks may still spawn into it after the call;
 *   - weft_pool_destroy says EBUSY while a close is pending, both while a
 *     task is held back and while done itself is, then 0;
 *   - tasks that open a flow (on their own pool or another), close it async
 *     and return: their own flow's close still waits until done has
 *     returned, and its cancel reaches the flow (shown with a gate);
 *   - callers on a worker of another pool, on external threads that exit
 *     before done runs, and in done itself (a chain of flows);
 *   - a WEFT_POOL_NO_CTX pool.
 * A hang is the watchdog's failure; nothing here is timed.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <stdbool.h>

enum { MAXJOBS = 8192, CODE_BASE = 1000 };

static weft_ctx_var *tag;             /* the caller's context, read by done */
static _Thread_local int inside_call; /* set around each weft_flow_close_async */

/* Every async close of this test goes through here, so done can tell
 * whether it runs inside the call on the caller's thread. */
static int close_async(weft_flow *f, weft_done_fn done, void *arg)
{
    inside_call = 1;
    int err = weft_flow_close_async(f, done, arg);
    inside_call = 0;
    return err;
}

/* ---- finished dones, counted under a mutex -------------------------------- */

static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static long dones;
static atomic_int calls[MAXJOBS]; /* done calls per job id */
static int next_id;                /* main's and its helpers' job ids (atomic) */

static void note_done(void)
{
    pthread_mutex_lock(&done_mu);
    dones++;
    pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&done_mu);
}

static void wait_dones(long n)
{
    pthread_mutex_lock(&done_mu);
    while (dones < n)
        pthread_cond_wait(&done_cv, &done_mu);
    pthread_mutex_unlock(&done_mu);
}

static long dones_now(void)
{
    pthread_mutex_lock(&done_mu);
    long n = dones;
    pthread_mutex_unlock(&done_mu);
    return n;
}

/* The last done's note_done runs just before done returns to weft, and the
 * flow counts as open until then: a destroy right after wait_dones may still
 * see it. EBUSY that never ends is the watchdog's failure. */
static void destroy_settled(weft_pool *pool)
{
    int err;
    while ((err = weft_pool_destroy(pool)) == EBUSY)
        sleep_us(100);
    CHECK_EQ(err, 0);
}

static void check_thread_prefix(const char *prefix)
{
    char name[16] = "";
    CHECK_EQ(pthread_getname_np(pthread_self(), name, sizeof name), 0);
    if (strncmp(name, prefix, strlen(prefix)) != 0) {
        fprintf(stderr, "done ran on thread '%s', not a worker '%s*'\n", name, prefix);
        CHECK(0);
    }
}

/* ---- jobs: a flow, its tasks and what done must see ---------------------- */

enum kind { K_OK, K_FAIL, K_CANCEL, K_EMPTY, K_FINISHED, K_NKINDS };

typedef struct job job;
typedef struct task {
    job          *j;
    int           i;
    unsigned char ran; /* plain: done reads it after every task */
} task;

struct job {
    weft_flow    flow; /* first: a job is aligned_alloc'd at 64 */
    int          id, kind, ntasks;
    int          fail_at;   /* K_FAIL: the one task that returns expect */
    int          cancel_at; /* K_CANCEL: tasks from here on come after the cancel */
    int          expect;    /* the result done must get */
    uintptr_t    tag;       /* the caller's tag at the call; 0: not checked */
    const char  *prefix;    /* done's thread name starts with this */
    bool         free_in_done;
    atomic_int  *done_entered, *done_gate; /* optional: done waits here */
    atomic_int   finished;  /* tasks returned (K_FINISHED waits for all) */
    task        *tasks;
};

static int tiny(void *arg)
{
    task *t = arg;
    t->ran = 1;
    int r = t->i == t->j->fail_at ? t->j->expect : 0;
    /* release: pairs with the acquire load in wait_finished */
    atomic_fetch_add_explicit(&t->j->finished, 1, memory_order_release);
    return r;
}

static job *job_new(int kind, int ntasks, const char *prefix)
{
    int id = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED);
    CHECK(id < MAXJOBS);
    job *j = aligned_alloc(64, (sizeof(job) + 63) / 64 * 64);
    CHECK(j != NULL);
    memset(j, 0, sizeof *j);
    j->id = id;
    j->kind = kind;
    j->ntasks = kind == K_EMPTY ? 0 : ntasks;
    j->fail_at = -1;
    j->cancel_at = j->ntasks;
    j->prefix = prefix;
    j->tag = 0x1000 + (uintptr_t)id;
    if (kind == K_FAIL) {
        j->fail_at = (int)(mix64((uint64_t)id) % (uint64_t)j->ntasks);
        j->expect = CODE_BASE + id;
    } else if (kind == K_CANCEL) {
        j->cancel_at = j->ntasks / 2;
        j->expect = ECANCELED;
    }
    atomic_init(&j->finished, 0);
    j->tasks = calloc((size_t)(j->ntasks ? j->ntasks : 1), sizeof(task));
    CHECK(j->tasks != NULL);
    for (int i = 0; i < j->ntasks; i++) {
        j->tasks[i].j = j;
        j->tasks[i].i = i;
    }
    return j;
}

static void job_free(job *j)
{
    free(j->tasks);
    free(j);
}

static void wait_finished(job *j, int n)
{
    /* acquire: pairs with the release add in tiny */
    while (atomic_load_explicit(&j->finished, memory_order_acquire) < n)
        sleep_us(20);
}

/* Opens the job's flow on pool and spawns its tasks (the cancel half-way);
 * K_FINISHED then waits until all of them returned: only off the pool's
 * own workers (a worker spinning here might hold them in its deque). */
static void job_start(job *j, weft_pool *pool)
{
    CHECK_EQ(weft_flow_open(&j->flow, pool), 0);
    for (int i = 0; i < j->ntasks; i++) {
        if (i == j->cancel_at)
            weft_flow_cancel(&j->flow);
        CHECK_EQ(weft_spawn(&j->flow, tiny, &j->tasks[i]), 0);
    }
    if (j->kind == K_FINISHED)
        wait_finished(j, j->ntasks);
}

static void job_done(void *arg, int result)
{
    job *j = arg;
    CHECK(!inside_call);
    CHECK(weft_worker_index() >= 0);
    check_thread_prefix(j->prefix);
    CHECK_EQ(atomic_fetch_add_explicit(&calls[j->id], 1, memory_order_relaxed), 0);
    CHECK_EQ(result, j->expect);
    if (j->tag)
        CHECK_EQ((uintptr_t)weft_ctx_get(tag), j->tag);
    int ran = 0;
    for (int i = 0; i < j->ntasks; i++)
        ran += j->tasks[i].ran;
    switch (j->kind) {
    case K_OK:
    case K_FINISHED:
    case K_EMPTY:
        CHECK_EQ(ran, j->ntasks);
        break;
    case K_FAIL:
        CHECK_EQ(j->tasks[j->fail_at].ran, 1);
        break;
    case K_CANCEL:
        for (int i = j->cancel_at; i < j->ntasks; i++)
            CHECK_EQ(j->tasks[i].ran, 0);
        break;
    }
    if (j->done_gate) {
        atomic_store_explicit(j->done_entered, 1, memory_order_release); /* pairs with wait_flag */
        CHECK(wait_flag(j->done_gate, 60));
    }
    if (j->free_in_done)
        job_free(j); /* the flow's memory is ours in done */
    note_done();
}

/* The caller's side: tag set before the call, changed right after (done
 * must see the value at the call). */
static void job_close(job *j)
{
    void *before = weft_ctx_get(tag);
    CHECK_EQ(weft_ctx_set(tag, (void *)j->tag), 0);
    CHECK_EQ(close_async(&j->flow, job_done, j), 0);
    /* j may be freed by now (free_in_done): touch it no more */
    CHECK_EQ(weft_ctx_set(tag, (void *)(uintptr_t)0xdead), 0);
    CHECK_EQ(weft_ctx_set(tag, before), 0);
}

static void check_calls_once(int from, int to)
{
    for (int id = from; id < to; id++)
        CHECK_EQ(atomic_load_explicit(&calls[id], memory_order_relaxed), 1);
}

/* ---- gates ------------------------------------------------------------- */

static int gate_task(void *arg)
{
    CHECK(wait_flag(arg, 60));
    return 0;
}

static void noop_done(void *arg, int result)
{
    (void)arg;
    (void)result;
    CHECK(0); /* a refused call must never call done */
}

/* ---- 1. misuse --------------------------------------------------------- */

static int nop(void *arg)
{
    (void)arg;
    return 0;
}

typedef struct inside_arg {
    weft_flow *outer;
    weft_pool *pool;
} inside_arg;

static int below_task(void *arg)
{
    inside_arg *a = arg;
    CHECK_EQ(close_async(a->outer, noop_done, NULL), EINVAL);
    return 0;
}

/* A task of outer: the call from inside it, and from a task below it. */
static int inside_task(void *arg)
{
    inside_arg *a = arg;
    CHECK_EQ(close_async(a->outer, noop_done, NULL), EINVAL);
    CHECK_EQ(weft_spawn(a->outer, nop, NULL), 0); /* still open */
    weft_flow inner;
    CHECK_EQ(weft_flow_open(&inner, NULL), 0);
    CHECK_EQ(weft_spawn(&inner, below_task, a), 0);
    CHECK_EQ(weft_flow_close(&inner), 0);
    return 0;
}

/* On a pool of its own: only a destroy that returns 0 says that done has
 * returned, so that the job may be freed. */
static void misuse(void)
{
    STAGE("misuse");
    weft_pool *pool;
    weft_pool_config cfg = {.workers = 2, .name = "ca-m"};
    CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
    job *j = job_new(K_OK, 10, "ca-m-");
    CHECK_EQ(close_async(NULL, job_done, j), EINVAL);
    CHECK_EQ(close_async(&j->flow, job_done, j), EINVAL); /* zeroed: never opened */
    weft_flow junk;
    memset(&junk, 0xAB, sizeof junk);
    CHECK_EQ(close_async(&junk, noop_done, NULL), EINVAL); /* garbage: never opened */

    CHECK_EQ(weft_flow_open(&j->flow, pool), 0);
    CHECK_EQ(close_async(&j->flow, NULL, j), EINVAL);
    CHECK_EQ(weft_spawn(&j->flow, tiny, &j->tasks[0]), 0); /* still open */

    inside_arg ia = {&j->flow, pool};
    CHECK_EQ(weft_spawn(&j->flow, inside_task, &ia), 0);
    CHECK_EQ(weft_flow_close(&j->flow), 0); /* refused calls left it open */
    CHECK_EQ(close_async(&j->flow, noop_done, NULL), EINVAL); /* closed */

    /* Already closed async: held back by a gate, so that it is pending. */
    atomic_int gate = 0;
    memset(j->tasks, 0, sizeof(task) * (size_t)j->ntasks);
    for (int i = 0; i < j->ntasks; i++) {
        j->tasks[i].j = j;
        j->tasks[i].i = i;
    }
    CHECK_EQ(weft_flow_open(&j->flow, pool), 0);
    CHECK_EQ(weft_spawn(&j->flow, gate_task, &gate), 0);
    for (int i = 0; i < j->ntasks; i++)
        CHECK_EQ(weft_spawn(&j->flow, tiny, &j->tasks[i]), 0);
    long before = dones_now();
    job_close(j);
    CHECK_EQ(close_async(&j->flow, noop_done, NULL), EINVAL);
    CHECK_EQ(weft_flow_close(&j->flow), EINVAL);
    CHECK_EQ(weft_spawn(&j->flow, tiny, &j->tasks[0]), EINVAL);
    CHECK_EQ(weft_pool_destroy(pool), EBUSY);
    CHECK_EQ(dones_now(), before);
    atomic_store_explicit(&gate, 1, memory_order_release); /* pairs with wait_flag */
    wait_dones(before + 1);
    /* done has been called (it may still be returning: the memory stays) */
    CHECK_EQ(close_async(&j->flow, noop_done, NULL), EINVAL);
    CHECK_EQ(weft_spawn(&j->flow, tiny, &j->tasks[0]), EINVAL);
    CHECK_EQ(weft_flow_close(&j->flow), EINVAL);
    check_calls_once(j->id, j->id + 1);
    destroy_settled(pool); /* so done has returned */
    job_free(j);
}

/* ---- 2. many big flows from main --------------------------------------- */

static void bulk(weft_pool *pool, long ntasks, int nflows)
{
    STAGE("bulk");
    int first = __atomic_load_n(&next_id, __ATOMIC_RELAXED);
    long base = dones_now();
    for (int f = 0; f < nflows; f++) {
        ROUND(f);
        int kind = f % K_NKINDS;
        job *j = job_new(kind, (int)ntasks, "ca-a-");
        j->free_in_done = true;
        job_start(j, pool);
        job_close(j);
    }
    wait_dones(base + nflows);
    check_calls_once(first, first + nflows);
}

/* ---- 3. the flow's own tasks spawn into it after the call -------------- */

typedef struct fanout {
    job       *j;
    atomic_int gate;
} fanout;

static int fanout_root(void *arg)
{
    fanout *fo = arg;
    CHECK(wait_flag(&fo->gate, 60));
    weft_flow *f = weft_current_flow();
    CHECK(f == &fo->j->flow);
    for (int i = 0; i < fo->j->ntasks; i++)
        CHECK_EQ(weft_spawn(f, tiny, &fo->j->tasks[i]), 0);
    return 0;
}

static void fanout_after_close(weft_pool *pool, long ntasks)
{
    STAGE("fan-out after the call");
    for (int kind = K_OK; kind <= K_FAIL; kind++) {
        fanout fo;
        fo.j = job_new(kind, (int)ntasks, "ca-a-");
        fo.j->free_in_done = true;
        int id = fo.j->id;
        atomic_init(&fo.gate, 0);
        long before = dones_now();
        CHECK_EQ(weft_flow_open(&fo.j->flow, pool), 0);
        CHECK_EQ(weft_spawn(&fo.j->flow, fanout_root, &fo), 0);
        job_close(fo.j);
        atomic_store_explicit(&fo.gate, 1, memory_order_release); /* pairs with wait_flag */
        wait_dones(before + 1);
        /* every task has finished, and done touches only the job: fo may go */
        check_calls_once(id, id + 1);
    }
}

/* ---- 4. EBUSY while pending -------------------------------------------- */

static void ebusy(void)
{
    STAGE("EBUSY while pending");
    weft_pool *p;
    weft_pool_config cfg = {.workers = 2, .name = "ca-b"};
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    atomic_int task_gate = 0, done_entered = 0, done_gate = 0;
    job *j = job_new(K_OK, 100, "ca-b-");
    j->free_in_done = true;
    j->done_entered = &done_entered;
    j->done_gate = &done_gate;
    long before = dones_now();
    CHECK_EQ(weft_flow_open(&j->flow, p), 0);
    CHECK_EQ(weft_spawn(&j->flow, gate_task, &task_gate), 0);
    for (int i = 0; i < j->ntasks; i++)
        CHECK_EQ(weft_spawn(&j->flow, tiny, &j->tasks[i]), 0);
    int id = j->id;
    job_close(j);
    CHECK_EQ(weft_pool_destroy(p), EBUSY); /* a task is held back */
    atomic_store_explicit(&task_gate, 1, memory_order_release); /* pairs with wait_flag */
    CHECK(wait_flag(&done_entered, 60));
    CHECK_EQ(weft_pool_destroy(p), EBUSY); /* done has not returned */
    atomic_store_explicit(&done_gate, 1, memory_order_release); /* pairs with wait_flag */
    wait_dones(before + 1);
    destroy_settled(p);
    check_calls_once(id, id + 1);
}

/* ---- 5. tasks that close async the flow they opened, and return -------- */

typedef struct opener_arg {
    int         kind;
    int         ntasks;
    const char *prefix;
    weft_pool  *pool;       /* where the task opens its flow; NULL: its own */
    atomic_int *gate;       /* held_opener: a gate task in the flow */
    atomic_int *returned;   /* held_opener: set just before the task returns */
} opener_arg;

static int opener_task(void *arg)
{
    opener_arg *a = arg;
    job *j = job_new(a->kind, a->ntasks, a->prefix);
    j->free_in_done = true;
    CHECK_EQ(weft_flow_open(&j->flow, a->pool), 0);
    for (int i = 0; i < j->ntasks; i++) {
        if (i == j->cancel_at)
            weft_flow_cancel(&j->flow);
        CHECK_EQ(weft_spawn(&j->flow, tiny, &j->tasks[i]), 0);
    }
    /* K_FINISHED on another pool: that pool's workers run them */
    if (j->kind == K_FINISHED)
        wait_finished(j, j->ntasks);
    job_close(j);
    return 0;
}

/* Many tasks of a flow on pool `outer` open flows on `inner` (the same pool
 * or another), close them async and return; outer's flow closes with 0,
 * then every done comes. */
static void openers(weft_pool *outer, weft_pool *inner, const char *prefix, int n, int ntasks,
                    bool finished_too)
{
    int first = __atomic_load_n(&next_id, __ATOMIC_RELAXED);
    long base = dones_now();
    opener_arg *args = calloc((size_t)n, sizeof *args);
    CHECK(args != NULL);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, outer), 0);
    for (int i = 0; i < n; i++) {
        int kind = i % (finished_too ? K_NKINDS : K_FINISHED);
        args[i] = (opener_arg){kind, ntasks, prefix, inner, NULL, NULL};
        CHECK_EQ(weft_spawn(&f, opener_task, &args[i]), 0);
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    /* their flows belong to f: its close waited for every done */
    CHECK_EQ(dones_now(), base + n);
    /* every task called job_new before it returned, so the ids are taken */
    check_calls_once(first, first + n);
    free(args);
}

/* One opener whose flow is held back by a gate: the task has returned, but
 * its flow still belongs to the outer flow (weft.h), so the outer close
 * (on a helper thread) returns only after done has returned; with
 * cancel_outer, canceling the outer flow cancels it too. */
typedef struct outer_close {
    weft_flow *flow;
    int        result;
    atomic_int closed;
} outer_close;

static void *outer_close_thread(void *arg)
{
    outer_close *oc = arg;
    oc->result = weft_flow_close(oc->flow);
    atomic_store_explicit(&oc->closed, 1, memory_order_release); /* pairs with held_done */
    return NULL;
}

static outer_close *held_oc;
static atomic_int held_returned; /* done's last store: it is about to return */

static void held_done(void *arg, int result)
{
    /* acquire: pairs with the release store in outer_close_thread */
    CHECK_EQ(atomic_load_explicit(&held_oc->closed, memory_order_acquire), 0);
    job_done(arg, result);
    atomic_store_explicit(&held_returned, 1, memory_order_release); /* pairs with held_by_outer */
}

static int held_opener(void *arg)
{
    opener_arg *a = arg;
    job *j = job_new(a->kind, a->ntasks, a->prefix);
    j->free_in_done = true;
    if (a->kind == K_CANCEL) {
        j->cancel_at = j->ntasks; /* canceled from outside: all may run or not */
        j->expect = ECANCELED;
    }
    CHECK_EQ(weft_flow_open(&j->flow, a->pool), 0);
    CHECK_EQ(weft_spawn(&j->flow, gate_task, a->gate), 0);
    for (int i = 0; i < j->ntasks; i++)
        CHECK_EQ(weft_spawn(&j->flow, tiny, &j->tasks[i]), 0);
    CHECK_EQ(weft_ctx_set(tag, (void *)j->tag), 0);
    CHECK_EQ(close_async(&j->flow, held_done, j), 0);
    atomic_store_explicit(a->returned, 1, memory_order_release); /* pairs with held_by_outer */
    return 0;
}

static void held_by_outer(weft_pool *outer_pool, weft_pool *inner_pool, const char *prefix,
                          bool cancel_outer)
{
    atomic_int gate = 0, returned = 0;
    opener_arg a = {cancel_outer ? K_CANCEL : K_OK, 100, prefix, inner_pool, &gate, &returned};
    long base = dones_now();
    int first = __atomic_load_n(&next_id, __ATOMIC_RELAXED);
    weft_flow f;
    outer_close oc = {&f, -1, 0};
    held_oc = &oc;
    atomic_store_explicit(&held_returned, 0, memory_order_relaxed);
    CHECK_EQ(weft_flow_open(&f, outer_pool), 0);
    CHECK_EQ(weft_spawn(&f, held_opener, &a), 0);
    CHECK(wait_flag(&returned, 60)); /* the opener task has closed async and returned */
    CHECK_EQ(dones_now(), base);
    CHECK_EQ(weft_pool_destroy(inner_pool ? inner_pool : outer_pool), EBUSY);
    if (cancel_outer)
        weft_flow_cancel(&f);
    pthread_t t = start_thread(outer_close_thread, &oc);
    atomic_store_explicit(&gate, 1, memory_order_release); /* pairs with wait_flag */
    join_thread(t);
    CHECK_EQ(oc.result, cancel_outer ? ECANCELED : 0);
    /* the outer close waited for done to return */
    CHECK_EQ(atomic_load_explicit(&held_returned, memory_order_acquire), 1); /* pairs with held_done */
    CHECK_EQ(dones_now(), base + 1);
    check_calls_once(first, first + 1);
}

/* ---- 6. external threads that exit before done ------------------------ */

typedef struct ext_arg {
    weft_pool  *pool;
    int         n, ntasks;
    atomic_int *gate; /* the thread's last flow is held back by it */
} ext_arg;

static void *ext_thread(void *arg)
{
    ext_arg *a = arg;
    for (int i = 0; i < a->n; i++) {
        job *j = job_new(i % K_NKINDS, a->ntasks, "ca-a-");
        j->free_in_done = true;
        CHECK_EQ(weft_flow_open(&j->flow, a->pool), 0);
        if (i == a->n - 1)
            CHECK_EQ(weft_spawn(&j->flow, gate_task, a->gate), 0);
        for (int t = 0; t < j->ntasks; t++) {
            if (t == j->cancel_at)
                weft_flow_cancel(&j->flow);
            CHECK_EQ(weft_spawn(&j->flow, tiny, &j->tasks[t]), 0);
        }
        if (j->kind == K_FINISHED)
            wait_finished(j, j->ntasks);
        job_close(j);
    }
    return NULL;
}

static void external(weft_pool *pool, int ntasks)
{
    STAGE("external threads");
    enum { T = 3, PER = 20 };
    atomic_int gate = 0;
    ext_arg a = {pool, PER, ntasks, &gate};
    long base = dones_now();
    int first = __atomic_load_n(&next_id, __ATOMIC_RELAXED);
    pthread_t t[T];
    for (int i = 0; i < T; i++)
        t[i] = start_thread(ext_thread, &a);
    for (int i = 0; i < T; i++)
        join_thread(t[i]); /* gone: their contexts live on in the pending dones */
    CHECK(dones_now() <= base + T * (PER - 1));
    atomic_store_explicit(&gate, 1, memory_order_release); /* pairs with wait_flag */
    wait_dones(base + T * PER);
    check_calls_once(first, first + T * PER);
}

/* ---- 7. a chain: each done opens and closes async the next flow -------- */

typedef struct chain {
    weft_flow flow;
    int       left, ntasks;
    atomic_int ran;
} chain;

static int chain_task(void *arg)
{
    chain *c = arg;
    atomic_fetch_add_explicit(&c->ran, 1, memory_order_relaxed);
    return 0;
}

static int nested_sum(void *arg)
{
    int *n = arg;
    (*n)++;
    return 0;
}

static void chain_done(void *arg, int result)
{
    chain *c = arg;
    CHECK(!inside_call);
    CHECK(weft_worker_index() >= 0);
    check_thread_prefix("ca-a-");
    CHECK_EQ(result, 0);
    CHECK_EQ((uintptr_t)weft_ctx_get(tag), 0x5000 + (uintptr_t)c->left);
    /* the tasks' relaxed adds come before done: the flow's completion orders them */
    CHECK_EQ(atomic_load_explicit(&c->ran, memory_order_relaxed), c->ntasks);
    if (--c->left == 0) {
        free(c); /* the flow's memory is ours in done */
        note_done();
        return;
    }
    if (c->left % 2) {
        /* a blocking close inside done: the worker helps while it waits */
        int n = 0;
        weft_flow inner;
        CHECK_EQ(weft_flow_open(&inner, NULL), 0);
        CHECK_EQ(weft_spawn(&inner, nested_sum, &n), 0);
        CHECK_EQ(weft_flow_close(&inner), 0);
        CHECK_EQ(n, 1);
    }
    atomic_store_explicit(&c->ran, 0, memory_order_relaxed);
    CHECK_EQ(weft_flow_open(&c->flow, NULL), 0); /* done's worker's pool */
    for (int i = 0; i < c->ntasks; i++)
        CHECK_EQ(weft_spawn(&c->flow, chain_task, c), 0);
    CHECK_EQ(weft_ctx_set(tag, (void *)(0x5000 + (uintptr_t)c->left)), 0);
    CHECK_EQ(close_async(&c->flow, chain_done, c), 0);
    /* c is the next done's now: no more touching it here */
}

static void chain_run(weft_pool *pool, int links)
{
    STAGE("chain");
    chain *c = aligned_alloc(64, (sizeof(chain) + 63) / 64 * 64);
    CHECK(c != NULL);
    memset(c, 0, sizeof *c);
    c->left = links;
    c->ntasks = 10;
    atomic_init(&c->ran, 0);
    long base = dones_now();
    CHECK_EQ(weft_flow_open(&c->flow, pool), 0);
    for (int i = 0; i < c->ntasks; i++)
        CHECK_EQ(weft_spawn(&c->flow, chain_task, c), 0);
    void *before = weft_ctx_get(tag);
    CHECK_EQ(weft_ctx_set(tag, (void *)(0x5000 + (uintptr_t)links)), 0);
    CHECK_EQ(close_async(&c->flow, chain_done, c), 0);
    CHECK_EQ(weft_ctx_set(tag, before), 0);
    wait_dones(base + 1); /* the last link freed c */
}

/* ---- 8. WEFT_POOL_NO_CTX ------------------------------------------------ */

static void no_ctx(long ntasks)
{
    STAGE("WEFT_POOL_NO_CTX");
    weft_pool *p;
    weft_pool_config cfg = {.workers = 2, .flags = WEFT_POOL_NO_CTX, .name = "ca-n"};
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    int first = __atomic_load_n(&next_id, __ATOMIC_RELAXED);
    long base = dones_now();
    enum { N = 10 };
    for (int f = 0; f < N; f++) {
        job *j = job_new(f % K_NKINDS, (int)ntasks, "ca-n-");
        j->free_in_done = true;
        j->tag = 0; /* no snapshots on this pool: the context is not checked */
        job_start(j, p);
        CHECK_EQ(close_async(&j->flow, job_done, j), 0);
    }
    wait_dones(base + N);
    check_calls_once(first, first + N);
    destroy_settled(p);
}

int main(void)
{
    watchdog_start(TEST_TSAN ? 400 : 200);
    CHECK_EQ(weft_ctx_var_create(&tag, "tag", NULL), 0);
    weft_pool *a, *b;
    weft_pool_config ca = {.workers = 4, .name = "ca-a"};
    weft_pool_config cb = {.workers = 2, .name = "ca-c"};
    CHECK_EQ(weft_pool_create(&a, &ca), 0);
    CHECK_EQ(weft_pool_create(&b, &cb), 0);

    long big = SCALED(20000);
    misuse();
    bulk(a, big, 50);
    fanout_after_close(a, big);
    ebusy();

    STAGE("openers on their own pool");
    openers(a, NULL, "ca-a-", (int)SCALED(2000), (int)SCALED(200), false);
    STAGE("an opener's flow holds up the outer close, on its own pool");
    held_by_outer(a, NULL, "ca-a-", false);
    STAGE("the outer flow's cancel reaches an opener's flow, on its own pool");
    held_by_outer(a, NULL, "ca-a-", true);
    STAGE("openers on a worker of another pool");
    openers(b, a, "ca-a-", (int)SCALED(2000), (int)SCALED(200), true);
    STAGE("an opener's flow holds up the outer close, on another pool");
    held_by_outer(b, a, "ca-a-", false);
    STAGE("the outer flow's cancel reaches an opener's flow, on another pool");
    held_by_outer(b, a, "ca-a-", true);
    external(a, (int)SCALED(2000));
    chain_run(a, (int)SCALED(2000));
    no_ctx(SCALED(5000));

    destroy_settled(a);
    destroy_settled(b);
    printf("ok: %d flows closed async, every done once\n", __atomic_load_n(&next_id, __ATOMIC_RELAXED));
    return 0;
}
