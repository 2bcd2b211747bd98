/*
 * bench/close_cost.c — what weft_flow_close_async costs against
 * weft_flow_close, from a thread that is not a worker (an event loop's):
 * open a flow on a pool, spawn K tiny tasks, close it and learn that it is
 * done. Variants, in interleaved rounds (the order rotates every round):
 *
 *   close       weft_flow_close (the thread sleeps or spins in it)
 *   async-spin  weft_flow_close_async; done sets a flag the thread spins on
 *               (the close's own cost: hand-over, done on a worker)
 *   async-efd   weft_flow_close_async; done writes an eventfd the thread
 *               reads (blocking read), as an epoll loop would learn of it
 *
 * Prints ns per flow, min and median over the rounds, for K = 0, 1, 64.
 *
 *   cc -O2 -Iinclude -Ibuild/X/include bench/close_cost.c build/X/libweft.a -lpthread
 *   ./a.out [workers] [rounds]
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include "weft.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

enum { FLOWS = 2000, MAX_ROUNDS = 101 };

static int efd;
static _Atomic int flag;

static int tiny(void *arg)
{
    (void)arg;
    return 0;
}

static void done_spin(void *arg, int r)
{
    (void)arg, (void)r;
    atomic_store_explicit(&flag, 1, memory_order_release);
}

static void done_efd(void *arg, int r)
{
    (void)arg, (void)r;
    uint64_t one = 1;
    if (write(efd, &one, sizeof one) != sizeof one)
        abort();
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* ns per flow of variant v with k tasks each. */
static double run(weft_pool *pool, int v, int k)
{
    double t0 = now_ns();
    for (int i = 0; i < FLOWS; i++) {
        weft_flow f;
        if (weft_flow_open(&f, pool))
            abort();
        for (int j = 0; j < k; j++)
            weft_spawn(&f, tiny, NULL);
        if (v == 0) {
            if (weft_flow_close(&f))
                abort();
        } else if (v == 1) {
            atomic_store_explicit(&flag, 0, memory_order_relaxed);
            if (weft_flow_close_async(&f, done_spin, NULL))
                abort();
            while (!atomic_load_explicit(&flag, memory_order_acquire))
                ;
        } else {
            if (weft_flow_close_async(&f, done_efd, NULL))
                abort();
            uint64_t n;
            if (read(efd, &n, sizeof n) != sizeof n)
                abort();
        }
    }
    return (now_ns() - t0) / FLOWS;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    unsigned workers = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
    int rounds = argc > 2 ? atoi(argv[2]) : 21;
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 21;
    efd = eventfd(0, 0);
    weft_pool *pool;
    if (efd < 0 || weft_pool_create(&pool, &(weft_pool_config){.workers = workers}))
        return 1;
    static const char *names[3] = {"close", "async-spin", "async-efd"};
    static const int ks[3] = {0, 1, 64};
    printf("workers %u, %d rounds of %d flows (noisy 2-vCPU VM: compare within one run)\n",
           workers, rounds, FLOWS);
    printf("%-4s %-11s %10s %10s\n", "K", "variant", "min ns", "median ns");
    for (int ki = 0; ki < 3; ki++) {
        double t[3][MAX_ROUNDS];
        for (int r = 0; r < rounds; r++)
            for (int j = 0; j < 3; j++) {
                int v = (r + j) % 3;
                t[v][r] = run(pool, v, ks[ki]);
            }
        for (int v = 0; v < 3; v++) {
            qsort(t[v], (size_t)rounds, sizeof t[v][0], cmp);
            printf("%-4d %-11s %10.0f %10.0f\n", ks[ki], names[v], t[v][0], t[v][rounds / 2]);
        }
    }
    close(efd);
    return weft_pool_destroy(pool);
}
