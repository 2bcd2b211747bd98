/*
 * tests/sched_signals.c — waiting under a signal storm. One thread sends
 * SIGUSR1 (handler installed with SA_RESTART) and SIGUSR2 (handler without
 * SA_RESTART, so blocking calls fail with EINTR) as fast as it can: with
 * pthread_kill to the external threads that wait, with tgkill to every
 * worker thread, and with kill to the process. Meanwhile:
 *
 *   - external threads wait in weft_flow_close, weft_join and weft_for on
 *     work that takes a while: tasks that busy-wait 2 to 20 ms, tasks that
 *     wait for a gate another thread opens (napping or yielding), tasks
 *     that spawn more tasks into their flow while it closes, tasks that
 *     wait on workers themselves (a nested flow on their pool or on
 *     another pool, a weft_join), sometimes one task that fails;
 *   - each task records that it started and that it finished; the waiter
 *     checks, once its call returns, that every task that started has
 *     finished (no early return), that every task ran when nothing failed,
 *     and the result (0, the failing task's value, a's result if nonzero
 *     else b's, every index of the range once). A lost wake-up would hang:
 *     the watchdog turns that into a failure that names the stage;
 *   - then the pools sit idle (workers parked) while the storm goes on,
 *     and a spawn must still wake them (and a destroy stop them).
 *
 * Nothing is timed: durations only make the waits long enough for signals
 * to land. Replay: the seed of the waiters' choices (task kinds, lengths,
 * pools, which task fails) is printed at start ("seed: N");
 * WEFT_FUZZ_SEED=N repeats them, but signal arrival and interleaving vary
 * from run to run, so repeat a failing seed a few times. WEFT_SOAK=1 runs
 * 10x more rounds.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>

enum {
    NWAIT = 3,   /* external threads that wait */
    MAXTOP = 6,  /* tasks a waiter spawns per round */
    MAXT = MAXTOP * 3,
    ROUNDS = 250, /* per waiter (Release) */
};

/* ---- signals ------------------------------------------------------------- */

static atomic_long sig_seen[2], sig_on_worker, sig_sent;

static void on_signal(int sig)
{
    int saved = errno; /* the interrupted code may be about to read it */
    atomic_fetch_add_explicit(&sig_seen[sig == SIGUSR2], 1, memory_order_relaxed);
    if (weft_worker_index() >= 0)
        atomic_fetch_add_explicit(&sig_on_worker, 1, memory_order_relaxed);
    errno = saved;
}

static void install(int sig, int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(sig, &sa, NULL) == 0);
}

/* External threads that wait; the storm sends to them under the lock, and
 * a thread leaves the list before it exits, so no pthread_kill ever sees a
 * joined thread. */
static pthread_mutex_t g_targets_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t       g_targets[NWAIT + 1];
static bool            g_target_used[NWAIT + 1];

static void target_add(int slot)
{
    pthread_mutex_lock(&g_targets_mu);
    g_targets[slot] = pthread_self();
    g_target_used[slot] = true;
    pthread_mutex_unlock(&g_targets_mu);
}

static void target_remove(int slot)
{
    pthread_mutex_lock(&g_targets_mu);
    g_target_used[slot] = false;
    pthread_mutex_unlock(&g_targets_mu);
}

/* The thread ids of this process's workers (named after their pool). */
static int worker_tids(pid_t *tids, int max)
{
    int n = threads_named_ids("sig", tids, NULL, max);
    if (n > max)
        n = max;
    int m = threads_named_ids("weft", tids + n, NULL, max - n);
    return n + (m < max - n ? m : max - n);
}

static atomic_int storm_stop;

static void *storm_main(void *unused)
{
    (void)unused;
    pid_t pid = getpid(), tids[64];
    int ntid = 0;
    double rescan = 0;
    for (long i = 0; !atomic_load_explicit(&storm_stop, memory_order_relaxed); i++) {
        if (now_s() > rescan) { /* pools come and go */
            ntid = worker_tids(tids, 64);
            rescan = now_s() + 0.05;
        }
        int sig = (i & 1) ? SIGUSR2 : SIGUSR1;
        pthread_mutex_lock(&g_targets_mu);
        for (int k = 0; k <= NWAIT; k++)
            if (g_target_used[k])
                pthread_kill(g_targets[k], sig);
        pthread_mutex_unlock(&g_targets_mu);
        for (int k = 0; k < ntid; k++)
            syscall(SYS_tgkill, pid, tids[k], sig); /* ESRCH: it exited */
        kill(pid, sig);
        atomic_fetch_add_explicit(&sig_sent, 1, memory_order_relaxed);
    }
    return NULL;
}

/* Sleeps until the monotonic clock is us later. Not sleep_us: a relative
 * nanosleep restarted with its remaining time counts only the time spent
 * inside it, and under the storm a signal is pending at nearly every entry,
 * so it need never end. An absolute deadline passes whatever happens. */
static void nap_us(long us)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += us / 1000000;
    t.tv_nsec += (us % 1000000) * 1000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {
    }
}

/* ---- gates: opened by a thread of their own, never by a waiter ----------- */

static atomic_long g_tick;
static atomic_int  gate_stop;

static void *gatekeeper_main(void *unused)
{
    (void)unused;
    while (!atomic_load_explicit(&gate_stop, memory_order_relaxed)) {
        nap_us(2000);
        atomic_fetch_add_explicit(&g_tick, 1, memory_order_release);
    }
    return NULL;
}

/* Waits until the gatekeeper has ticked n more times. */
static void gate_wait(long n, bool nap)
{
    long until = atomic_load_explicit(&g_tick, memory_order_acquire) + n;
    while (atomic_load_explicit(&g_tick, memory_order_acquire) < until) {
        if (nap)
            nap_us(300); /* clock_nanosleep, interrupted and resumed */
        else
            sched_yield();
    }
}

static void busy_ms(int ms)
{
    double end = now_s() + ms * 1e-3;
    while (now_s() < end) {
    }
}

/* ---- tasks ----------------------------------------------------------------- */

static weft_pool *g_pool_a, *g_pool_b;

enum { K_BUSY, K_GATE_NAP, K_GATE_YIELD, K_SPAWNER, K_NEST_SAME, K_NEST_OTHER, K_JOIN, K_NKINDS };

typedef struct task {
    atomic_int   started, finished;
    atomic_int   spawned;  /* set by whoever spawned it, once weft_spawn said 0 */
    int          kind, ms, ret;
    weft_flow   *flow;     /* the flow it runs in (spawners spawn into it) */
    weft_pool   *pool;     /* that flow's pool (NULL: the default pool) */
    bool         may_cancel; /* a task of its flow fails: flows below count as canceled */
    struct task *kids;     /* K_SPAWNER: two more */
} task;

static int run_task(void *p);

/* Every task that started finished; without a failure, every one spawned
 * ran. */
static void check_tasks(task *t, int n, bool all_ran, const char *what)
{
    for (int i = 0; i < n; i++) {
        int s = atomic_load(&t[i].started), f = atomic_load(&t[i].finished);
        int sp = atomic_load(&t[i].spawned);
        if (s != f) {
            fprintf(stderr, "%s: task %d (kind %d) started but not finished when the wait returned\n",
                    what, i, t[i].kind);
            CHECK(s == f);
        }
        CHECK(s <= 1);
        CHECK(sp || !s); /* never spawned, never ran */
        if (all_ran && sp && s != 1) {
            fprintf(stderr, "%s: task %d (kind %d) spawned but never ran\n", what, i, t[i].kind);
            CHECK(s == 1);
        }
    }
}

static int half(void *p)
{
    task *t = p;
    CHECK_EQ(atomic_fetch_add(&t->started, 1), 0);
    if (t->kind == K_GATE_NAP)
        gate_wait(2, true);
    else
        busy_ms(t->ms);
    atomic_store(&t->finished, 1);
    return t->ret;
}

static void init_task(task *t, int kind, int ms, int ret)
{
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->ms = ms;
    t->ret = ret;
}

/* A worker waits too: a nested flow (on its pool or on the other one) of
 * gate and busy tasks, or a join of two busy halves. */
static void worker_wait(task *t)
{
    if (t->kind == K_JOIN) {
        task h[2];
        init_task(&h[0], K_BUSY, 2, 0);
        init_task(&h[1], K_GATE_NAP, 0, 0);
        CHECK_EQ(weft_join(half, &h[0], half, &h[1]), 0);
        CHECK(atomic_load(&h[0].finished) && atomic_load(&h[1].finished));
        return;
    }
    task sub[3];
    weft_flow f;
    weft_pool *other = t->pool == g_pool_a ? g_pool_b : g_pool_a;
    CHECK_EQ(weft_flow_open(&f, t->kind == K_NEST_SAME ? NULL : other), 0);
    for (int i = 0; i < 3; i++) {
        init_task(&sub[i], i == 0 ? K_BUSY : i == 1 ? K_GATE_NAP : K_GATE_YIELD, 3, 0);
        sub[i].flow = &f;
        CHECK_EQ(weft_spawn(&f, run_task, &sub[i]), 0);
        atomic_store(&sub[i].spawned, 1);
    }
    int rc = weft_flow_close(&f);
    check_tasks(sub, 3, !t->may_cancel, "nested close on a worker");
    CHECK(rc == 0 || (t->may_cancel && rc == ECANCELED));
}

static int run_task(void *p)
{
    task *t = p;
    CHECK_EQ(atomic_fetch_add(&t->started, 1), 0);
    switch (t->kind) {
    case K_BUSY:
        busy_ms(t->ms);
        break;
    case K_GATE_NAP:
        gate_wait(1 + t->ms / 4, true);
        break;
    case K_GATE_YIELD:
        gate_wait(1 + t->ms / 4, false);
        break;
    case K_SPAWNER:
        /* Spawned while the flow is (likely) closing already. */
        busy_ms(t->ms / 2);
        for (int i = 0; i < 2; i++) {
            CHECK_EQ(weft_spawn(t->flow, run_task, &t->kids[i]), 0);
            atomic_store(&t->kids[i].spawned, 1);
        }
        break;
    default:
        worker_wait(t);
        break;
    }
    atomic_store(&t->finished, 1);
    return t->ret;
}

/* ---- the waiters ------------------------------------------------------------ */

static atomic_long st_closes, st_joins, st_fors, st_tasks;
static uint64_t    g_seed;

static uint64_t next_rand(uint64_t *s)
{
    *s = mix64(*s);
    return *s;
}

/* A flow of busy, gate, spawning and worker-waiting tasks; one may fail. */
static void round_close(uint64_t *rng, int who)
{
    task t[MAXT];
    weft_flow f;
    weft_pool *pools[3] = {g_pool_a, g_pool_b, NULL};
    weft_pool *pool = pools[next_rand(rng) % 3];
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    int ntop = 2 + (int)(next_rand(rng) % (MAXTOP - 1));
    bool fail = next_rand(rng) % 4 == 0;
    int failer = fail ? (int)(next_rand(rng) % (uint64_t)ntop) : -1;
    int failval = 1000 + who;
    for (int i = 0; i < MAXT; i++)
        init_task(&t[i], K_BUSY, 2 + (int)(next_rand(rng) % 19), 0);
    for (int i = 0; i < ntop; i++) {
        t[i].kind = (int)(next_rand(rng) % K_NKINDS);
        t[i].flow = &f;
        t[i].pool = pool;
        t[i].may_cancel = fail;
        t[i].kids = &t[MAXTOP + 2 * i];
        t[i].ret = i == failer ? failval : 0;
    }
    for (int i = 0; i < ntop; i++) {
        CHECK_EQ(weft_spawn(&f, run_task, &t[i]), 0);
        atomic_store(&t[i].spawned, 1);
    }
    int rc = weft_flow_close(&f);
    /* A failure cancels the flow: tasks not started are skipped. */
    check_tasks(t, MAXT, !fail, "weft_flow_close under signals");
    CHECK_EQ(rc, fail ? failval : 0);
    atomic_fetch_add(&st_closes, 1);
    for (int i = 0; i < MAXT; i++)
        atomic_fetch_add(&st_tasks, atomic_load(&t[i].started));
}

static int ra_ret(uint64_t *rng)
{
    return next_rand(rng) % 3 == 0 ? (int)(next_rand(rng) % 1000) + 1 : 0;
}

static void round_join(uint64_t *rng)
{
    task h[2];
    for (int i = 0; i < 2; i++)
        init_task(&h[i], next_rand(rng) % 2 ? K_BUSY : K_GATE_NAP, 2 + (int)(next_rand(rng) % 19),
                  ra_ret(rng));
    int rc = weft_join(half, &h[0], half, &h[1]);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(atomic_load(&h[i].started), 1);
        CHECK_EQ(atomic_load(&h[i].finished), 1);
    }
    CHECK_EQ(rc, h[0].ret ? h[0].ret : h[1].ret);
    atomic_fetch_add(&st_joins, 1);
}

typedef struct range {
    atomic_int hits[64];
} range;

static void range_fn(size_t b, size_t e, void *p)
{
    range *r = p;
    busy_ms(1);
    for (size_t i = b; i < e; i++)
        atomic_fetch_add(&r->hits[i], 1);
}

static void round_for(uint64_t *rng)
{
    range r;
    for (int i = 0; i < 64; i++)
        atomic_init(&r.hits[i], 0);
    weft_pool *pools[3] = {g_pool_a, g_pool_b, NULL};
    CHECK_EQ(weft_for(pools[next_rand(rng) % 3], 0, 64, 1 + next_rand(rng) % 4, range_fn, &r), 0);
    for (int i = 0; i < 64; i++)
        CHECK_EQ(atomic_load(&r.hits[i]), 1);
    atomic_fetch_add(&st_fors, 1);
}

typedef struct waiter_arg {
    int  id;
    long rounds;
} waiter_arg;

static void *waiter_main(void *p)
{
    waiter_arg *w = p;
    uint64_t rng = mix64(g_seed + (uint64_t)w->id * 0x9E3779B9u);
    target_add(w->id);
    for (long r = 0; r < w->rounds; r++) {
        if (w->id == 0)
            ROUND(r);
        uint64_t k = next_rand(&rng) % 8;
        if (k < 5)
            round_close(&rng, w->id);
        else if (k < 7)
            round_join(&rng);
        else
            round_for(&rng);
    }
    target_remove(w->id);
    return NULL;
}

/* ---- parked workers ---------------------------------------------------------- */

static int mark(void *p)
{
    atomic_store((atomic_int *)p, 1);
    return 0;
}

static void parked_rounds(long rounds)
{
    weft_pool *park;
    weft_pool_config cfg = {.workers = 3, .name = "sigpark"};
    CHECK_EQ(weft_pool_create(&park, &cfg), 0);
    weft_pool *pools[4] = {park, g_pool_a, g_pool_b, NULL};
    for (long r = 0; r < rounds; r++) {
        ROUND(r);
        /* Everything idle: the workers park while the signals land. */
        nap_us(20000);
        for (int k = 0; k < 4; k++) {
            atomic_int ran = 0;
            weft_flow f;
            CHECK_EQ(weft_flow_open(&f, pools[k]), 0);
            CHECK_EQ(weft_spawn(&f, mark, &ran), 0);
            CHECK_EQ(weft_flow_close(&f), 0);
            CHECK_EQ(atomic_load(&ran), 1);
        }
    }
    nap_us(20000);
    CHECK_EQ(weft_pool_destroy(park), 0); /* parked workers still stop */
}

int main(void)
{
    /* The watchdog thread never takes the signals (its sleep is relative:
     * see nap_us); every thread created later does. */
    sigset_t usr, old;
    sigemptyset(&usr);
    sigaddset(&usr, SIGUSR1);
    sigaddset(&usr, SIGUSR2);
    CHECK(pthread_sigmask(SIG_BLOCK, &usr, &old) == 0);
    watchdog_start(TEST_TSAN ? 240 : 90);
    CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
    const char *seed = getenv("WEFT_FUZZ_SEED");
    g_seed = (seed && *seed) ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL);
    printf("seed: %llu\n", (unsigned long long)g_seed);
    install(SIGUSR1, SA_RESTART);
    install(SIGUSR2, 0);

    weft_pool_config ca = {.workers = 2, .name = "sigA"};
    weft_pool_config cb = {.workers = 2, .name = "sigB"};
    CHECK_EQ(weft_pool_create(&g_pool_a, &ca), 0);
    CHECK_EQ(weft_pool_create(&g_pool_b, &cb), 0);
    CHECK(weft_default_pool() != NULL);

    pthread_t gk = start_thread(gatekeeper_main, NULL);
    target_add(NWAIT); /* the main thread waits too, in the parked stage */
    pthread_t storm = start_thread(storm_main, NULL);

    STAGE("waits under signals");
    /* The rounds are long waits, not CPU work: sanitizers run them all. */
    long rounds = (long)(ROUNDS * test_scale_with(1, 1));
    if (rounds < 4)
        rounds = 4;
    double t0 = now_s();
    pthread_t th[NWAIT];
    waiter_arg args[NWAIT];
    for (int i = 0; i < NWAIT; i++) {
        args[i] = (waiter_arg){i, rounds};
        th[i] = start_thread(waiter_main, &args[i]);
    }
    for (int i = 0; i < NWAIT; i++)
        join_thread(th[i]);
    double t1 = now_s();

    STAGE("parked workers under signals");
    long prounds = rounds / 5 < 4 ? 4 : rounds / 5;
    parked_rounds(prounds);

    atomic_store(&storm_stop, 1);
    join_thread(storm);
    target_remove(NWAIT);
    atomic_store(&gate_stop, 1);
    join_thread(gk);

    CHECK_EQ(weft_pool_destroy(g_pool_a), 0);
    CHECK_EQ(weft_pool_destroy(g_pool_b), 0);
    long seen = atomic_load(&sig_seen[0]) + atomic_load(&sig_seen[1]);
    printf("%ld waiter rounds x %d (%ld closes, %ld joins, %ld fors, %ld tasks run) in %.1f s, "
           "%ld parked rounds; %ld storm iterations, signals handled: %ld SIGUSR1, %ld SIGUSR2, "
           "%ld of them on workers\n",
           rounds, NWAIT, atomic_load(&st_closes), atomic_load(&st_joins), atomic_load(&st_fors),
           atomic_load(&st_tasks), t1 - t0, prounds, atomic_load(&sig_sent),
           atomic_load(&sig_seen[0]), atomic_load(&sig_seen[1]), atomic_load(&sig_on_worker));
    /* The storm reached its targets, workers included (counted, not timed). */
    CHECK(atomic_load(&sig_seen[0]) > 0 && atomic_load(&sig_seen[1]) > 0);
    CHECK(seen > 0 && atomic_load(&sig_on_worker) > 0);
    return 0;
}
