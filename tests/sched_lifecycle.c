/*
 * Life cycle:
 *   - the default pool is created exactly once under concurrent first use
 *     (8 threads race on weft_default_pool(): one pointer, and the process
 *     has exactly that pool's workers);
 *   - hundreds of create/destroy cycles with 1-4 workers, with and without
 *     work, destroyed while workers spin or sleep, from two threads at once;
 *     no worker thread outlives its pool;
 *   - workers = 0 respects the affinity mask (1 CPU: 1 worker) and is at
 *     most the CPUs allowed; cgroup v2 cpu.max parsing (ws_cpu_quota);
 *   - worker threads are named <name>-<index> (seen in /proc/self/task and
 *     from inside the tasks), also for the default name and a long name;
 *   - weft_worker_index: -1 outside workers (main, other threads, a thread a
 *     task starts), 0..n-1 inside, every index of a pool in use.
 * After fork(): tests/sched_fork.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "sched/ws.h" /* ws_cpu_quota */
#include "test_common.h"

#include <errno.h>
#include <sched.h>
#include <stdbool.h>

/* ---- the default pool, raced -------------------------------------------- */

enum { RACERS = 8 };
static pthread_barrier_t g_barrier;
static weft_pool *g_seen[RACERS];

static void *racer(void *p)
{
    int i = (int)(intptr_t)p;
    pthread_barrier_wait(&g_barrier);
    g_seen[i] = weft_default_pool();
    return NULL;
}

static void test_default_once(void)
{
    STAGE("default pool under concurrent first use");
    check_no_threads("weft-");
    CHECK_EQ(pthread_barrier_init(&g_barrier, NULL, RACERS), 0);
    pthread_t t[RACERS];
    for (int i = 0; i < RACERS; i++)
        t[i] = start_thread(racer, (void *)(intptr_t)i);
    for (int i = 0; i < RACERS; i++)
        join_thread(t[i]);
    pthread_barrier_destroy(&g_barrier);
    CHECK(g_seen[0] != NULL);
    for (int i = 1; i < RACERS; i++)
        CHECK(g_seen[i] == g_seen[0]);
    CHECK(weft_default_pool() == g_seen[0]);
    /* Exactly one pool's workers were started. */
    unsigned n = weft_pool_workers(g_seen[0]);
    CHECK(n >= 1);
    CHECK_EQ(wait_threads_named("weft-", (int)n), n);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
}

/* ---- create / destroy cycles -------------------------------------------- */

static atomic_long g_count;

static int count_task(void *p)
{
    atomic_fetch_add_explicit((atomic_long *)p, 1, memory_order_relaxed);
    return 0;
}

static int count_and_spawn(void *p)
{
    count_task(p);
    CHECK_EQ(weft_spawn(weft_current_flow(), count_task, p), 0);
    return 0;
}

typedef struct cycle_arg {
    int  cycles;
    int  salt;
    char name[8];
} cycle_arg;

static void *cycles_thread(void *p)
{
    cycle_arg *a = p;
    atomic_long count;
    for (int c = 0; c < a->cycles; c++) {
        uint64_t h = mix64((uint64_t)(c * 2 + a->salt));
        weft_pool *pool;
        weft_pool_config cfg = {.workers = 1 + (unsigned)(h % 4), .name = a->name,
                                .flags = (h >> 8) & 1 ? WEFT_POOL_NO_CTX : 0};
        CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
        CHECK_EQ(weft_pool_workers(pool), cfg.workers);
        switch ((h >> 16) % 4) {
        case 0: /* no work at all: destroyed while its workers start up */
            break;
        case 1: { /* work, then destroy while the workers still spin */
            long n = 1 + (long)((h >> 24) % 200);
            atomic_store(&count, 0);
            weft_flow f;
            CHECK_EQ(weft_flow_open(&f, pool), 0);
            for (long i = 0; i < n; i++)
                CHECK_EQ(weft_spawn(&f, (i & 3) ? count_task : count_and_spawn, &count), 0);
            CHECK_EQ(weft_flow_close(&f), 0);
            CHECK_EQ(atomic_load(&count), n + (n + 3) / 4);
            break;
        }
        case 2: /* no work, destroyed asleep */
            if ((h >> 24) % 8 == 0)
                sleep_us(2000);
            break;
        case 3: { /* work, then let the workers fall asleep */
            atomic_store(&count, 0);
            weft_flow f;
            CHECK_EQ(weft_flow_open(&f, pool), 0);
            CHECK_EQ(weft_spawn(&f, count_task, &count), 0);
            CHECK_EQ(weft_flow_close(&f), 0);
            CHECK_EQ(atomic_load(&count), 1);
            if ((h >> 24) % 8 == 0)
                sleep_us(2000);
            break;
        }
        }
        CHECK_EQ(weft_pool_destroy(pool), 0);
    }
    return NULL;
}

static void test_cycles(void)
{
    STAGE("create/destroy cycles");
    int cycles = (int)SCALED(400);
    cycle_arg a = {cycles, 0, "cyc"};
    cycles_thread(&a);
    check_no_threads("cyc-");
    STAGE("create/destroy cycles from two threads");
    cycle_arg b[2] = {{cycles / 2, 1, "cya"}, {cycles / 2, 2, "cyb"}};
    pthread_t t0 = start_thread(cycles_thread, &b[0]);
    pthread_t t1 = start_thread(cycles_thread, &b[1]);
    join_thread(t0);
    join_thread(t1);
    check_no_threads("cya-");
    check_no_threads("cyb-");
}

/* ---- worker count from the affinity mask and cpu.max --------------------- */

static void test_affinity(void)
{
    STAGE("workers = 0 respects the affinity mask");
    CHECK_EQ(unsetenv("WEFT_WORKERS"), 0);
    cpu_set_t orig, one;
    CHECK_EQ(sched_getaffinity(0, sizeof orig, &orig), 0);
    int allowed = CPU_COUNT(&orig);
    CHECK(allowed >= 1);

    weft_pool *p;
    CHECK_EQ(weft_pool_create(&p, NULL), 0);
    CHECK(weft_pool_workers(p) >= 1 && weft_pool_workers(p) <= (unsigned)allowed);
    CHECK_EQ(weft_pool_destroy(p), 0);

    int first = -1;
    for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
        if (CPU_ISSET(c, &orig))
            first = c;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    CHECK_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    weft_pool_config zero = {0};
    int err = weft_pool_create(&p, &zero);
    CHECK_EQ(sched_setaffinity(0, sizeof orig, &orig), 0);
    CHECK_EQ(err, 0);
    CHECK_EQ(weft_pool_workers(p), 1);
    weft_flow f;
    atomic_store(&g_count, 0);
    CHECK_EQ(weft_flow_open(&f, p), 0);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(weft_spawn(&f, count_task, &g_count), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_count), 100);
    CHECK_EQ(weft_pool_destroy(p), 0);

    /* Two CPUs allowed (when there are two): at most 2 workers. */
    if (allowed >= 2) {
        cpu_set_t two = one;
        for (int c = first + 1; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &orig)) {
                CPU_SET(c, &two);
                break;
            }
        CHECK_EQ(sched_setaffinity(0, sizeof two, &two), 0);
        err = weft_pool_create(&p, NULL);
        CHECK_EQ(sched_setaffinity(0, sizeof orig, &orig), 0);
        CHECK_EQ(err, 0);
        CHECK(weft_pool_workers(p) >= 1 && weft_pool_workers(p) <= 2);
        CHECK_EQ(weft_pool_destroy(p), 0);
    }
}

static unsigned quota_of(const char *text)
{
    char path[] = "/tmp/weft_cpu_max_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    size_t len = strlen(text);
    CHECK_EQ(write(fd, text, len), (long)len);
    close(fd);
    unsigned q = ws_cpu_quota(path);
    unlink(path);
    return q;
}

static void test_cpu_quota(void)
{
    STAGE("cgroup cpu.max parsing");
    CHECK_EQ(quota_of("max 100000\n"), 0);
    CHECK_EQ(quota_of("max 100000"), 0);
    CHECK_EQ(quota_of("150000 100000\n"), 2);
    CHECK_EQ(quota_of("50000 100000\n"), 1);
    CHECK_EQ(quota_of("200000 100000\n"), 2);
    CHECK_EQ(quota_of("100000 100000\n"), 1);
    CHECK_EQ(quota_of("100001 100000\n"), 2);
    CHECK_EQ(quota_of("1000 100000\n"), 1);
    CHECK_EQ(quota_of("400000 50000\n"), 8);
    CHECK_EQ(quota_of("garbage\n"), 0);
    CHECK_EQ(quota_of("hello world\n"), 0);
    CHECK_EQ(quota_of(""), 0);
    CHECK_EQ(quota_of("150000\n"), 0);
    CHECK_EQ(quota_of("150000 0\n"), 0);
    CHECK_EQ(ws_cpu_quota("/nonexistent/weft/cpu.max"), 0);
    CHECK_EQ(ws_cpu_quota("/tmp"), 0); /* a directory */
}

/* ---- thread names and worker indices ------------------------------------- */

typedef struct gather {
    unsigned   n;
    const char *prefix;
    atomic_int arrived;
    atomic_int seen[WEFT_MAX_WORKERS];
    atomic_int bad;
} gather;

static void *plain_thread(void *p)
{
    *(int *)p = weft_worker_index();
    return NULL;
}

static int gather_task(void *p)
{
    gather *g = p;
    int idx = weft_worker_index();
    CHECK(idx >= 0 && (unsigned)idx < g->n);
    atomic_fetch_add(&g->seen[idx], 1);
    char want[32], name[32] = "";
    snprintf(want, sizeof want, "%s-%d", g->prefix, idx);
    pthread_getname_np(pthread_self(), name, sizeof name);
    if (strcmp(name, want) != 0) {
        fprintf(stderr, "worker %d is named \"%s\", want \"%s\"\n", idx, name, want);
        atomic_store(&g->bad, 1);
    }
    /* A thread a task starts is no worker. */
    int other = 7;
    join_thread(start_thread(plain_thread, &other));
    CHECK_EQ(other, -1);
    CHECK_EQ(weft_worker_index(), idx);
    atomic_fetch_add(&g->arrived, 1);
    double end = now_s() + 30;
    while ((unsigned)atomic_load(&g->arrived) < g->n)
        CHECK(now_s() < end);
    return 0;
}

/* Runs one task per worker, all at once: every index appears exactly once. */
static void check_pool_names(weft_pool *pool, const char *prefix)
{
    gather *g = calloc(1, sizeof *g);
    CHECK(g != NULL);
    g->n = weft_pool_workers(pool);
    g->prefix = prefix;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    for (unsigned i = 0; i < g->n; i++)
        CHECK_EQ(weft_spawn(&f, gather_task, g), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g->bad), 0);
    for (unsigned i = 0; i < g->n; i++)
        CHECK_EQ(atomic_load(&g->seen[i]), 1);

    /* The same names in /proc. */
    char names[64][16];
    char pfx[32];
    snprintf(pfx, sizeof pfx, "%s-", prefix);
    /* Waited for, not read once: a plain thread a task started was named
     * after its worker (Linux copies the name at creation), and a joined
     * thread may linger in /proc for a moment (longer under qemu-user: it
     * reports the guest thread's exit before the host thread is gone). */
    CHECK_EQ(wait_threads_named(pfx, (int)g->n), g->n);
    int found = threads_named(pfx, names, 64);
    CHECK_EQ(found, g->n);
    for (unsigned i = 0; i < g->n && i < 64; i++) {
        char want[32];
        snprintf(want, sizeof want, "%s-%u", prefix, i);
        bool ok = false;
        for (int k = 0; k < found && k < 64; k++)
            ok |= strcmp(names[k], want) == 0;
        if (!ok)
            fprintf(stderr, "no thread named %s\n", want);
        CHECK(ok);
    }
    free(g);
}

static void test_names(void)
{
    STAGE("worker thread names");
    CHECK_EQ(weft_worker_index(), -1);
    int other = 7;
    join_thread(start_thread(plain_thread, &other));
    CHECK_EQ(other, -1);

    weft_pool *p;
    weft_pool_config cfg = {.workers = 3, .name = "tname"};
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    check_pool_names(p, "tname");
    CHECK_EQ(weft_pool_destroy(p), 0);

    /* Two-digit indices. */
    weft_pool_config cfg12 = {.workers = 12, .name = "tw"};
    CHECK_EQ(weft_pool_create(&p, &cfg12), 0);
    check_pool_names(p, "tw");
    CHECK_EQ(weft_pool_destroy(p), 0);

    /* The default prefix: a pool with no name, alongside the default pool
     * (also "weft"), so check it from inside only. */
    weft_pool_config unnamed = {.workers = 2};
    CHECK_EQ(weft_pool_create(&p, &unnamed), 0);
    gather *g = calloc(1, sizeof *g);
    CHECK(g != NULL);
    g->n = 2;
    g->prefix = "weft";
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, p), 0);
    CHECK_EQ(weft_spawn(&f, gather_task, g), 0);
    CHECK_EQ(weft_spawn(&f, gather_task, g), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g->bad), 0);
    free(g);
    CHECK_EQ(weft_pool_destroy(p), 0);

    /* A name too long for the kernel's 15 characters keeps its index. */
    weft_pool_config lng = {.workers = 2, .name = "averyverylongpoolname"};
    CHECK_EQ(weft_pool_create(&p, &lng), 0);
    char names[8][16];
    CHECK_EQ(wait_threads_named("avery", 2), 2);
    int found = threads_named("avery", names, 8);
    CHECK_EQ(found, 2);
    bool has[2] = {false, false};
    for (int k = 0; k < found; k++) {
        size_t len = strlen(names[k]);
        CHECK(len >= 3 && len <= 15);
        CHECK(names[k][len - 2] == '-');
        CHECK(strncmp(names[k], "averyverylongpoolname", len - 2) == 0);
        int idx = names[k][len - 1] - '0';
        CHECK(idx == 0 || idx == 1);
        has[idx] = true;
    }
    CHECK(has[0] && has[1]);
    CHECK_EQ(weft_pool_destroy(p), 0);
}

int main(void)
{
    watchdog_start(120);
    unsetenv("WEFT_WORKERS");
    /* First: no weft call may come before the race. */
    test_default_once();
    printf("default pool once: ok\n");
    double t0 = now_s();
    test_cycles();
    printf("create/destroy cycles: ok (%.2f s)\n", now_s() - t0);
    test_affinity();
    printf("affinity: ok\n");
    test_cpu_quota();
    printf("cpu.max: ok\n");
    test_names();
    printf("names and indices: ok\n");
    printf("sched_lifecycle: ok\n");
    return 0;
}
