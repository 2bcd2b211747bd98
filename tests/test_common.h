/*
 * tests/test_common.h — helpers shared by the tests: scaling of iteration
 * counts, a watchdog that turns a hang into a failure that says where it
 * hung, small thread and time utilities, a fib through weft_join.
 *
 * Scaling. Counts are written for a Release build. They are multiplied by
 * test_scale(): $WEFT_TEST_SCALE if set (a positive number), else 0.1 under
 * ThreadSanitizer and 0.25 under AddressSanitizer; $WEFT_SOAK=1 multiplies
 * by 10 on top. test_scale_with(tsan, asan) is the same with a test's own
 * sanitizer factors. SCALED(n) never goes below 1.
 *
 * Watchdog. watchdog_start(seconds) starts a detached thread; if the test
 * is still running after that long (times the soak factor), it prints the
 * current stage (set with STAGE("...")) and round (ROUND(n)) and exits with
 * status 1. Tests
 * assert what they compute, never how fast; the watchdog only bounds hangs.
 *
 * Threads by name. threads_named(prefix) counts this process's threads whose
 * name (/proc/self/task/N/comm) starts with prefix; wait_threads_named
 * waits until the count is exactly n (new workers name themselves once they
 * run; a joined thread may linger in /proc for a moment).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_TESTS_TEST_COMMON_H
#define WEFT_TESTS_TEST_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "weft.h"

#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_TSAN
#define TEST_TSAN 0
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif
#define TEST_SANITIZED (TEST_TSAN || TEST_ASAN)

/* Whether the environment variable name is set to something other than
 * "" or "0". */
static inline int test_env_flag(const char *name)
{
    const char *s = getenv(name);
    return s && *s && strcmp(s, "0") != 0;
}

static inline int test_soak(void)
{
    return test_env_flag("WEFT_SOAK");
}

/* Under an emulator (tests/CMakeLists.txt sets WEFT_UNDER_EMULATOR in a
 * cross build), a test that cannot work there says why and exits with 77:
 * CTest reports it as skipped. */
static inline void test_skip_under_emulator(const char *why)
{
    if (test_env_flag("WEFT_UNDER_EMULATOR")) {
        printf("skipped under the emulator: %s\n", why);
        fflush(stdout);
        exit(77);
    }
}

static inline double test_scale_with(double tsan, double asan)
{
    double f = TEST_TSAN ? tsan : TEST_ASAN ? asan : 1.0;
    const char *s = getenv("WEFT_TEST_SCALE");
    if (s && *s) {
        double v = atof(s);
        if (v > 0)
            f = v;
    }
    if (test_soak())
        f *= 10;
    return f;
}

static inline double test_scale(void)
{
    return test_scale_with(0.1, 0.25);
}

static inline long scaled(long n)
{
    double v = (double)n * test_scale();
    return v < 1 ? 1 : (long)v;
}
#define SCALED(n) scaled(n)

/* ---- time ---------------------------------------------------------------- */

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sleeps until an absolute deadline, so that a storm of signals (each one
 * interrupting the sleep) cannot keep restarting it with "the time left",
 * which only counts time spent inside the call. */
static inline void sleep_us(long us)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += us / 1000000;
    ts.tv_nsec += (us % 1000000) * 1000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Spins (with a short nap) until *flag becomes nonzero or timeout_s passes;
 * returns whether it became nonzero. For tests that must wait for another
 * thread without depending on the scheduler under test. */
static inline int wait_flag(atomic_int *flag, double timeout_s)
{
    double end = now_s() + timeout_s;
    for (unsigned i = 0; !atomic_load_explicit(flag, memory_order_acquire); i++) {
        if (now_s() > end)
            return 0;
        if (i > 1000)
            sleep_us(50);
    }
    return 1;
}

/* How many of this process's threads whose name starts with prefix are
 * blocked ('S' in /proc/self/task/TID/stat); *named gets how many there
 * are (0: /proc cannot tell). */
static inline int threads_sleeping(const char *prefix, int *named)
{
    int sleeping = 0;
    *named = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return 0;
    size_t len = strlen(prefix);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        /* "TID (name) S ...": the name may hold spaces and parentheses. */
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        if (!open || !close || close[1] != ' ' || (size_t)(close - open - 1) < len ||
            strncmp(open + 1, prefix, len) != 0)
            continue;
        (*named)++;
        sleeping += close[2] == 'S';
    }
    closedir(d);
    return sleeping;
}

/* Waits until every thread named prefix* (the workers of a pool named
 * prefix: "prefix-0", ...) is blocked, as parked workers are, seen so
 * twice 10 ms apart; returns 0 after timeout_s or if /proc names none. A
 * worker in its idle rounds is runnable: on a loaded machine those rounds
 * can outlast any fixed sleep, so a test that needs a parked pool waits
 * for one. */
static inline int wait_threads_parked(const char *prefix, double timeout_s)
{
    double end = now_s() + timeout_s;
    for (int seen = 0; seen < 2;) {
        int named, sleeping = threads_sleeping(prefix, &named);
        if (named == 0 || now_s() > end)
            return 0;
        seen = sleeping == named ? seen + 1 : 0;
        sleep_us(10000);
    }
    return 1;
}

/* ---- watchdog ------------------------------------------------------------ */

static _Atomic(const char *) test_stage_ = "start";
static atomic_long test_round_ = -1;
#define STAGE(s)                                                               \
    (atomic_store_explicit(&test_round_, -1, memory_order_relaxed),            \
     atomic_store_explicit(&test_stage_, (s), memory_order_relaxed))
/* Marks progress inside a stage (printed by the watchdog). */
#define ROUND(n) atomic_store_explicit(&test_round_, (long)(n), memory_order_relaxed)

static void *watchdog_main_(void *arg)
{
    double secs = *(double *)arg;
    free(arg);
    double end = now_s() + secs, moved = now_s();
    /* When the stage or round last changed: a test that is slow (a loaded
     * machine) and one that is stuck (a lost wake-up) read differently. */
    const char *stage = NULL;
    long round = -2;
    while (now_s() < end) {
        const char *st = atomic_load_explicit(&test_stage_, memory_order_relaxed);
        long r = atomic_load_explicit(&test_round_, memory_order_relaxed);
        if (st != stage || r != round)
            stage = st, round = r, moved = now_s();
        sleep_us(100000);
    }
    fprintf(stderr,
            "WATCHDOG: test still running after %.0f s, in stage: %s, round %ld "
            "(unchanged for the last %.1f s)\n",
            secs, atomic_load_explicit(&test_stage_, memory_order_relaxed),
            atomic_load_explicit(&test_round_, memory_order_relaxed), now_s() - moved);
    fflush(stderr);
    _Exit(1);
    return NULL;
}

static inline void watchdog_start(double seconds)
{
    /* Progress lines survive a failing CHECK's _Exit. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    double *arg = malloc(sizeof *arg);
    CHECK(arg != NULL);
    *arg = seconds * (test_soak() ? 10 : 1) *
           (test_env_flag("WEFT_TEST_LOADED") ? 10 : 1); /* tests/run --loaded */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, watchdog_main_, arg) == 0);
    pthread_detach(t);
}

/* ---- threads ------------------------------------------------------------- */

static inline pthread_t start_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fn, arg) == 0);
    return t;
}

static inline void join_thread(pthread_t t)
{
    CHECK(pthread_join(t, NULL) == 0);
}

/* ---- threads of this process, by name ------------------------------------ */

/* Counts this process's threads whose name starts with prefix; if tids or
 * names is not NULL, also collects their thread ids or names (up to max). */
static inline int threads_named_ids(const char *prefix, pid_t *tids, char (*names)[16], int max)
{
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[288], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* the thread just exited */
        if (fgets(comm, sizeof comm, f))
            comm[strcspn(comm, "\n")] = 0;
        fclose(f);
        if (strncmp(comm, prefix, strlen(prefix)) == 0) {
            if (names && n < max) {
                size_t len = strnlen(comm, 15);
                memcpy(names[n], comm, len);
                names[n][len] = 0;
            }
            if (tids && n < max)
                tids[n] = (pid_t)atoi(e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

static inline int threads_named(const char *prefix, char (*names)[16], int max)
{
    return threads_named_ids(prefix, NULL, names, max);
}

/* Waits (up to 10 s) until exactly n threads have a name starting with
 * prefix: a new worker names itself once it runs, and a joined thread may
 * linger in /proc for a moment after pthread_join returns. */
static inline int wait_threads_named(const char *prefix, int n)
{
    double end = now_s() + 10;
    int got;
    while ((got = threads_named(prefix, NULL, 0)) != n && now_s() < end)
        sleep_us(1000);
    return got;
}

static inline void check_no_threads(const char *prefix)
{
    CHECK_EQ(wait_threads_named(prefix, 0), 0);
}

/* A deterministic 64-bit mix (splitmix64's finaliser). */
static inline uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* ---- fib through weft_join (the caller checks the result) --------------- */

typedef struct test_fib_arg {
    int  n;
    long r;
} test_fib_arg;

static inline int test_fib_join(void *p)
{
    test_fib_arg *a = p;
    if (a->n < 2) {
        a->r = a->n;
        return 0;
    }
    test_fib_arg x = {a->n - 1, 0}, y = {a->n - 2, 0};
    CHECK_EQ(weft_join(test_fib_join, &x, test_fib_join, &y), 0);
    a->r = x.r + y.r;
    return 0;
}

#endif /* WEFT_TESTS_TEST_COMMON_H */
