/*
 * bench/timing.c — see timing.h.
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include "timing.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t k = (size_t)(q * (double)n + 0.999999); /* nearest rank, 1-based */
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static double cpu_seconds(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

/* On-CPU nanoseconds of every thread of this process but the caller, from
 * /proc/self/task/TID/schedstat; -1 if /proc cannot be read. The kernel
 * brings a running thread's figure up to date when it is read, which
 * getrusage(RUSAGE_SELF) does not do for threads running on other CPUs:
 * their time since their last tick or switch (up to a tick, milliseconds)
 * would be missing from the first reading and counted in the window. */
static int64_t others_cpu_ns(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    long self = (long)syscall(SYS_gettid);
    int64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long tid = atol(e->d_name);
        if (tid <= 0 || tid == self)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%ld/schedstat", tid);
        FILE *f = fopen(path, "r");
        long long ns = 0;
        if (f) {
            if (fscanf(f, "%lld", &ns) != 1)
                ns = 0;
            fclose(f);
        }
        sum += ns; /* a thread gone meanwhile counts 0: the probe's threads stay */
    }
    closedir(d);
    return sum;
}

double bench_idle_cpu(double seconds)
{
    int64_t o0 = others_cpu_ns();
    double p0 = cpu_seconds(RUSAGE_SELF), t0 = cpu_seconds(RUSAGE_THREAD);
    int64_t w0 = bench_now_ns();
    bench_sleep_ns((int64_t)(seconds * 1e9));
    double p1 = cpu_seconds(RUSAGE_SELF), t1 = cpu_seconds(RUSAGE_THREAD);
    int64_t o1 = others_cpu_ns();
    double wall = (double)(bench_now_ns() - w0) * 1e-9;
    double others = o0 >= 0 && o1 >= 0 ? (double)(o1 - o0) * 1e-9 : (p1 - p0) - (t1 - t0);
    return (others < 0 ? 0 : others) / wall;
}
