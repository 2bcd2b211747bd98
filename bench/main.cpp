/*
 * bench/main.cpp — registers every workload × runtime × worker count with
 * google-benchmark, checks every answer, and runs.
 *
 * Benchmark names are  <workload>/<runtime>/workers:<n>  where runtime is
 * serial, weft[.variant], omp[.variant], tbb[.variant] or rayon[.variant]
 * (the last when built with bench/rayon, WEFT_BENCH_HAVE_RAYON); bench/report.py
 * parses them. Built as weft_bench_libomp (WEFT_BENCH_OMP_FAMILY "libomp",
 * workloads_omp.cpp compiled by clang against libomp), the OpenMP rows are
 * named libomp[.variant] instead. The weft.cxx_* variants are the C++ layer (weft.hpp,
 * workloads_cxx.cpp) on the same pools as the C rows. Each repetition of
 * each benchmark is a separate run, so
 * --benchmark_enable_random_interleaving=true interleaves the runtimes.
 *
 * Options of our own (removed before google-benchmark sees the rest):
 *   --quick              smaller inputs (bench/run --quick)
 *   --workers=1,2,...    worker counts (default 1, 2 and nproc if larger)
 *   --meta-out=FILE      write the machine's load before/after and the CPU
 *                        other processes used during the run (JSON)
 *   --iterations=N       every benchmark runs N iterations instead of as many
 *                        as fit in its minimum time (bench/run --trace: 1)
 *   --only=FAM[,FAM...]  register only the runtimes of these families (the
 *                        part of a runtime before its first dot: serial,
 *                        weft, omp, libomp, tbb, rayon); bench/run gives
 *                        weft_bench_libomp --only=libomp
 *   --idle-child RT W S  internal: measure idle CPU of runtime RT with W
 *                        workers over S seconds in this fresh process, print it
 *
 * SPDX-License-Identifier: MIT
 */
#include <benchmark/benchmark.h>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include "peers.hpp"
#include "timing.h"
#include "workloads.h"
#include "workloads_cxx.hpp"
#ifdef WEFT_BENCH_HAVE_RAYON
#include "workloads_rayon.h"
#endif
#ifdef WEFT_BENCH_HAVE_DEQUE
#include "deque_micro.h"
#endif

#include <sched.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern char **environ;

namespace {

struct Config {
    bool     quick = false;
    int      fib_n = 32;
    int      nq_n = 12;
    const uts_params *trees[2] = {&uts_T1, &uts_T3};
    uint64_t skynet_leaves = 1000000;
    size_t   msort_n = size_t(1) << 22;
    size_t   reduce_n = size_t(1) << 25;
    size_t   tiny_n = 1000000;
    int      wake_samples = 300;
    long     wake_gap_ns = 2000000;
    double   idle_seconds = 1.0;
    size_t   deque_n = 1u << 22;
    double   min_time = 0.2;
    int      iterations = 0; /* --iterations=N; 0: by min_time */

    void make_quick()
    {
        quick = true;
        fib_n = 25;
        nq_n = 10;
        trees[0] = &uts_T1_small;
        trees[1] = &uts_T3_small;
        skynet_leaves = 100000;
        msort_n = size_t(1) << 20;
        reduce_n = size_t(1) << 23;
        tiny_n = 200000;
        wake_samples = 60;
        idle_seconds = 0.3;
        deque_n = 1u << 20;
        min_time = 0.05;
    }
};

Config cfg;
std::vector<unsigned> worker_counts;
std::vector<std::string> only_families; /* --only; empty: every family */

#ifndef WEFT_BENCH_OMP_FAMILY
#define WEFT_BENCH_OMP_FAMILY "omp" /* gcc's libgomp */
#endif
/* An OpenMP row's runtime name: libgomp's "omp...", or "libomp..." in
 * weft_bench_libomp. */
std::string OMP(const char *variant)
{
    return std::string(WEFT_BENCH_OMP_FAMILY) + variant;
}

bool family_wanted(const std::string &runtime)
{
    if (only_families.empty())
        return true;
    std::string fam = runtime.substr(0, runtime.find('.'));
    return std::find(only_families.begin(), only_families.end(), fam) != only_families.end();
}

/* ---- helpers -------------------------------------------------------------- */

void settle()
{
    /* Let the previous benchmark's runtime stop spinning (oneTBB lingers
     * 1 ms, libgomp spins for a while) before this one starts. */
    bench_sleep_ns(3000000);
}

void fail(benchmark::State &st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fail(benchmark::State &st, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    st.SkipWithError(buf);
}

/* weft pools live for the whole run, like oneTBB's and libgomp's threads
 * (made in workloads_weft.c: this file does not include weft.h). */
weft_pool *weft_pool_for(benchmark::State &st, unsigned w)
{
    int err = 0;
    weft_pool *p = bench_weft_pool(w, &err);
    if (!p)
        fail(st, "weft_pool_create(workers=%u) = %d", w, err);
    return p;
}

#ifdef WEFT_BENCH_HAVE_RAYON
/* rayon pools, one per worker count, made on first use and kept for the
 * whole run like weft's (never destroyed: the process exits with them). */
rayon_pool *rayon_pool_for(benchmark::State &st, unsigned w)
{
    static std::map<unsigned, rayon_pool *> pools;
    rayon_pool *&p = pools[w];
    if (!p && !(p = rayon_pool_create(w)))
        fail(st, "rayon ThreadPoolBuilder::num_threads(%u).build() failed", w);
    return p;
}
#endif

double process_cpu_s()
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

enum class Timing { Real, Manual };

using Body = std::function<void(benchmark::State &)>;

/* iters 0: as many iterations as fit in cfg.min_time (at least one).
 * Registers nothing for a runtime that --only leaves out. */
void reg(const std::string &workload, const std::string &runtime, unsigned workers, Body body,
         Timing t = Timing::Real, int iters = 0, benchmark::TimeUnit unit = benchmark::kMillisecond)
{
    if (!family_wanted(runtime))
        return;
    std::string name = workload + "/" + runtime + "/workers:" + std::to_string(workers);
    auto *b = benchmark::RegisterBenchmark(name.c_str(), [body](benchmark::State &st) {
        settle();
        /* CPU-seconds of the whole process (every thread) per iteration:
         * on a shared machine, a measure of the work done that other
         * processes' load disturbs far less than wall time does. */
        double c0 = process_cpu_s();
        body(st);
        double c1 = process_cpu_s();
        if (st.iterations() > 0)
            st.counters["cpu_s"] = (c1 - c0) / (double)st.iterations();
    });
    if (t == Timing::Real)
        b->UseRealTime();
    else
        b->UseManualTime();
    if (iters > 0)
        b->Iterations(iters);
    else if (cfg.iterations > 0)
        b->Iterations(cfg.iterations);
    else
        b->MinTime(cfg.min_time);
    b->Unit(unit);
}

void reg_na(const std::string &workload, const std::string &runtime, const char *why)
{
    for (unsigned w : worker_counts)
        reg(workload, runtime, w, [why](benchmark::State &st) {
            st.SkipWithError((std::string("n/a: ") + why).c_str());
        }, Timing::Real, 1);
}

/* Runs fn each iteration; fails the benchmark on an error or a wrong answer. */
void run_checked(benchmark::State &st, uint64_t expect, const std::function<int(uint64_t *)> &fn)
{
    for (auto _ : st) {
        uint64_t got = 0;
        int rc = fn(&got);
        if (rc != 0 || got != expect) {
            fail(st, "wrong: rc=%d got %llu want %llu", rc, (unsigned long long)got,
                 (unsigned long long)expect);
            break;
        }
    }
}

/* The weft.hpp rows (weft.cxx_*) throw on error: an error code for run_checked. */
int cxx_checked(uint64_t *o, const std::function<uint64_t()> &fn)
{
    try {
        *o = fn();
        return 0;
    } catch (const std::system_error &e) {
        return e.code().value() ? e.code().value() : -1;
    } catch (...) {
        return -1;
    }
}

void set_units(benchmark::State &st, double units)
{
    st.counters["tasks"] = units; /* work units per iteration: report.py's ns/task */
}

std::string label(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
std::string label(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

/* ---- big shared inputs, made once ------------------------------------------ */

struct Arrays {
    std::vector<uint64_t> reduce;
    std::vector<int32_t>  sort_src, sort_work, sort_tmp;
    uint64_t              sort_sum = 0;
};

Arrays &arrays()
{
    static std::unique_ptr<Arrays> a;
    if (!a) {
        a.reset(new Arrays);
        a->reduce.resize(cfg.reduce_n);
        reduce_fill(a->reduce.data(), cfg.reduce_n);
        a->sort_src.resize(cfg.msort_n);
        a->sort_work.resize(cfg.msort_n);
        a->sort_tmp.resize(cfg.msort_n);
        a->sort_sum = msort_fill(a->sort_src.data(), cfg.msort_n, 0x5eed);
    }
    return *a;
}

/* ---- workloads ------------------------------------------------------------------ */

void reg_fib()
{
    const int n = cfg.fib_n;
    const uint64_t want = fib_expect(n);
    const std::string lab = label("fib(%d), spawn per call, no cutoff", n);
    /* Spawns per run: every call but the root for weft.flow2 (which spawns
     * both halves); one per inner node for the spawn-one-inline versions. */
    const double calls = (double)fib_calls(n), inner = (calls - 1) / 2;
    auto common = [=](benchmark::State &st) {
        st.SetLabel(lab);
        set_units(st, calls);
    };
    reg("fib", "serial", 1, [=](benchmark::State &st) {
        common(st);
        run_checked(st, want, [=](uint64_t *o) {
            *o = fib_serial(n);
            return 0;
        });
    });
    using WeftFib = int (*)(weft_pool *, int, uint64_t *);
    const std::pair<const char *, WeftFib> variants[] = {
        {"weft.flow2", fib_weft_flow2}, {"weft.flow1", fib_weft_flow1}, {"weft.join", fib_weft_join}};
    for (unsigned w : worker_counts) {
        for (auto &v : variants) {
            WeftFib f = v.second;
            const bool both = f == fib_weft_flow2;
            reg("fib", v.first, w, [=](benchmark::State &st) {
                common(st);
                st.counters["spawns"] = both ? calls - 1 : inner;
                weft_pool *p = weft_pool_for(st, w);
                if (!p)
                    return;
                run_checked(st, want, [=](uint64_t *o) { return f(p, n, o); });
            });
        }
        /* The same three with weft.hpp: weft::join, weft::flow. */
        using CxxFib = uint64_t (*)(weft_pool *, int);
        const std::pair<const char *, CxxFib> cxx_variants[] = {{"weft.cxx_flow2", cxx_wl::fib_flow2},
                                                                {"weft.cxx_flow1", cxx_wl::fib_flow1},
                                                                {"weft.cxx_join", cxx_wl::fib_join}};
        for (auto &v : cxx_variants) {
            CxxFib f = v.second;
            const bool both = f == cxx_wl::fib_flow2;
            reg("fib", v.first, w, [=](benchmark::State &st) {
                common(st);
                st.counters["spawns"] = both ? calls - 1 : inner;
                weft_pool *p = weft_pool_for(st, w);
                if (!p)
                    return;
                run_checked(st, want, [=](uint64_t *o) { return cxx_checked(o, [=] { return f(p, n); }); });
            });
        }
        reg("fib", OMP(".task"), w, [=](benchmark::State &st) {
            common(st);
            st.counters["spawns"] = inner;
            run_checked(st, want, [=](uint64_t *o) {
                *o = omp_wl::fib(n, w);
                return 0;
            });
        });
        reg("fib", "tbb.task_group", w, [=](benchmark::State &st) {
            common(st);
            st.counters["spawns"] = inner;
            tbb::task_arena a((int)w);
            a.initialize();
            run_checked(st, want, [&](uint64_t *o) {
                *o = tbb_wl::fib(a, n);
                return 0;
            });
        });
    }
}

void reg_nqueens()
{
    const int n = cfg.nq_n;
    const uint64_t want = nqueens_expect(n);
    const std::string lab = label("nqueens(%d), spawn per legal placement", n);
    reg("nqueens", "serial", 1, [=](benchmark::State &st) {
        st.SetLabel(lab);
        run_checked(st, want, [=](uint64_t *o) {
            *o = nqueens_serial(n);
            return 0;
        });
    });
    for (unsigned w : worker_counts) {
        reg("nqueens", "weft", w, [=](benchmark::State &st) {
            st.SetLabel(lab);
            weft_pool *p = weft_pool_for(st, w);
            if (!p)
                return;
            run_checked(st, want, [=](uint64_t *o) { return nqueens_weft(p, n, o); });
        });
        reg("nqueens", "weft.cxx", w, [=](benchmark::State &st) {
            st.SetLabel(lab);
            weft_pool *p = weft_pool_for(st, w);
            if (!p)
                return;
            run_checked(st, want, [=](uint64_t *o) { return cxx_checked(o, [=] { return cxx_wl::nqueens(p, n); }); });
        });
        reg("nqueens", OMP(".task"), w, [=](benchmark::State &st) {
            st.SetLabel(lab);
            run_checked(st, want, [=](uint64_t *o) {
                *o = omp_wl::nqueens(n, w);
                return 0;
            });
        });
        reg("nqueens", "tbb.task_group", w, [=](benchmark::State &st) {
            st.SetLabel(lab);
            tbb::task_arena a((int)w);
            a.initialize();
            run_checked(st, want, [&](uint64_t *o) {
                *o = tbb_wl::nqueens(a, n);
                return 0;
            });
        });
    }
}

void reg_uts()
{
    for (const uts_params *t : cfg.trees) {
        const std::string wl = std::string("uts_") + t->name;
        const uint64_t want = t->expect;
        const std::string lab = label("UTS %s, %llu nodes, task per node", t->name,
                                      (unsigned long long)want);
        auto common = [=](benchmark::State &st) {
            st.SetLabel(lab);
            set_units(st, (double)want);
        };
        reg(wl, "serial", 1, [=](benchmark::State &st) {
            common(st);
            run_checked(st, want, [=](uint64_t *o) {
                uts_node r;
                uts_root(t, &r);
                *o = uts_count_serial(t, &r);
                return 0;
            });
        });
        for (unsigned w : worker_counts) {
            reg(wl, "weft", w, [=](benchmark::State &st) {
                common(st);
                weft_pool *p = weft_pool_for(st, w);
                if (!p)
                    return;
                run_checked(st, want, [=](uint64_t *o) { return uts_weft(p, t, o); });
            });
            reg(wl, OMP(".task"), w, [=](benchmark::State &st) {
                common(st);
                run_checked(st, want, [=](uint64_t *o) {
                    *o = omp_wl::uts(t, w);
                    return 0;
                });
            });
            reg(wl, "tbb.task_group", w, [=](benchmark::State &st) {
                common(st);
                tbb::task_arena a((int)w);
                a.initialize();
                run_checked(st, want, [&](uint64_t *o) {
                    *o = tbb_wl::uts(a, t);
                    return 0;
                });
            });
        }
    }
}

void reg_skynet()
{
    const uint64_t leaves = cfg.skynet_leaves;
    const uint64_t want = skynet_expect(leaves);
    const std::string lab = label("skynet, %llu leaves, 10-ary", (unsigned long long)leaves);
    auto common = [=](benchmark::State &st) {
        st.SetLabel(lab);
        set_units(st, (double)skynet_tasks(leaves));
    };
    reg("skynet", "serial", 1, [=](benchmark::State &st) {
        common(st);
        run_checked(st, want, [=](uint64_t *o) {
            *o = skynet_serial(0, leaves);
            return 0;
        });
    });
    for (unsigned w : worker_counts) {
        reg("skynet", "weft", w, [=](benchmark::State &st) {
            common(st);
            weft_pool *p = weft_pool_for(st, w);
            if (!p)
                return;
            run_checked(st, want, [=](uint64_t *o) { return skynet_weft(p, leaves, o); });
        });
        reg("skynet", OMP(".task"), w, [=](benchmark::State &st) {
            common(st);
            run_checked(st, want, [=](uint64_t *o) {
                *o = omp_wl::skynet(leaves, w);
                return 0;
            });
        });
        reg("skynet", "tbb.task_group", w, [=](benchmark::State &st) {
            common(st);
            tbb::task_arena a((int)w);
            a.initialize();
            run_checked(st, want, [&](uint64_t *o) {
                *o = tbb_wl::skynet(a, leaves);
                return 0;
            });
        });
    }
}

/* Sorts a fresh copy of the input each iteration (the copy is not timed). */
void msort_loop(benchmark::State &st, const std::function<int(int32_t *, int32_t *, size_t)> &sort)
{
    Arrays &A = arrays();
    const size_t n = cfg.msort_n;
    st.SetLabel(label("mergesort of %zu int32, serial below %d", n, MSORT_CUTOFF));
    for (auto _ : st) {
        st.PauseTiming();
        std::memcpy(A.sort_work.data(), A.sort_src.data(), n * sizeof(int32_t));
        st.ResumeTiming();
        int rc = sort(A.sort_work.data(), A.sort_tmp.data(), n);
        st.PauseTiming();
        bool ok = rc == 0 && msort_check(A.sort_work.data(), n, A.sort_sum);
        st.ResumeTiming();
        if (!ok) {
            fail(st, "wrong: rc=%d, result not sorted or not a permutation", rc);
            break;
        }
    }
}

void reg_msort()
{
    reg("msort", "serial", 1, [](benchmark::State &st) {
        msort_loop(st, [](int32_t *a, int32_t *t, size_t n) {
            msort_serial(a, t, n);
            return 0;
        });
    });
    for (unsigned w : worker_counts) {
        reg("msort", "weft.join", w, [=](benchmark::State &st) {
            weft_pool *p = weft_pool_for(st, w);
            if (!p)
                return;
            msort_loop(st, [p](int32_t *a, int32_t *t, size_t n) { return msort_weft(p, a, t, n); });
        });
        reg("msort", OMP(".task"), w, [=](benchmark::State &st) {
            msort_loop(st, [w](int32_t *a, int32_t *t, size_t n) {
                omp_wl::msort(a, t, n, w);
                return 0;
            });
        });
        reg("msort", "tbb.task_group", w, [=](benchmark::State &st) {
            tbb::task_arena ar((int)w);
            ar.initialize();
            msort_loop(st, [&ar](int32_t *a, int32_t *t, size_t n) {
                tbb_wl::msort(ar, a, t, n);
                return 0;
            });
        });
    }
}

void reg_reduce()
{
    const size_t n = cfg.reduce_n;
    const uint64_t want = reduce_expect(n);
    const std::string lab = label("sum of %zu uint64 (%zu MiB)", n, n * 8 >> 20);
    reg("reduce", "serial", 1, [=](benchmark::State &st) {
        st.SetLabel(lab);
        const uint64_t *a = arrays().reduce.data();
        run_checked(st, want, [=](uint64_t *o) {
            *o = reduce_serial(a, n);
            return 0;
        });
    });
    for (unsigned w : worker_counts) {
        reg("reduce", "weft.for", w, [=](benchmark::State &st) {
            st.SetLabel(lab);
            const uint64_t *a = arrays().reduce.data();
            weft_pool *p = weft_pool_for(st, w);
            if (!p)
                return;
            run_checked(st, want, [=](uint64_t *o) { return reduce_weft(p, a, n, o); });
        });
        reg("reduce", OMP(".for"), w, [=](benchmark::State &st) {
            st.SetLabel(lab);
            const uint64_t *a = arrays().reduce.data();
            run_checked(st, want, [=](uint64_t *o) {
                *o = omp_wl::reduce(a, n, w);
                return 0;
            });
        });
        reg("reduce", "tbb.parallel_reduce", w, [=](benchmark::State &st) {
            st.SetLabel(lab);
            const uint64_t *a = arrays().reduce.data();
            tbb::task_arena ar((int)w);
            ar.initialize();
            run_checked(st, want, [&](uint64_t *o) {
                *o = tbb_wl::reduce(ar, a, n);
                return 0;
            });
        });
    }
}

/* Every slot is incremented once per iteration; checked at the end. */
void tiny_loop(benchmark::State &st, unsigned threads, const std::function<int(uint64_t *, size_t)> &run)
{
    const size_t n = cfg.tiny_n;
    std::vector<uint64_t> slots(n, 0);
    st.SetLabel(label("%zu tiny tasks from %u external thread%s", n, threads, threads > 1 ? "s" : ""));
    set_units(st, (double)n);
    uint64_t iters = 0;
    for (auto _ : st) {
        int rc = run(slots.data(), n);
        iters++;
        if (rc) {
            fail(st, "error %d", rc);
            break;
        }
    }
    if (!st.error_occurred() && !tiny_check(slots.data(), n, iters))
        fail(st, "wrong: some task ran zero or several times");
    st.SetItemsProcessed((int64_t)(iters * n));
}

void reg_tiny()
{
    for (unsigned threads : {1u, 4u}) {
        const std::string wl = "tiny_ext" + std::to_string(threads);
        reg(wl, "serial", 1, [=](benchmark::State &st) {
            tiny_loop(st, threads, [](uint64_t *s, size_t n) {
                tiny_serial(s, n);
                return 0;
            });
        });
        for (unsigned w : worker_counts) {
            reg(wl, "weft", w, [=](benchmark::State &st) {
                weft_pool *p = weft_pool_for(st, w);
                if (!p)
                    return;
                tiny_loop(st, threads, [=](uint64_t *s, size_t n) { return tiny_weft(p, s, n, threads); });
            });
            reg(wl, "tbb.arena_enqueue", w, [=](benchmark::State &st) {
                tbb::task_arena a((int)w, 0);
                a.initialize();
                tiny_loop(st, threads, [&](uint64_t *s, size_t n) {
                    tbb_wl::tiny_enqueue(a, s, n, threads);
                    return 0;
                });
            });
            if (threads == 1)
                reg(wl, "tbb.task_group", w, [=](benchmark::State &st) {
                    tbb::task_arena a((int)w);
                    a.initialize();
                    tiny_loop(st, threads, [&](uint64_t *s, size_t n) {
                        tbb_wl::tiny_task_group(a, s, n);
                        return 0;
                    });
                });
        }
        reg_na(wl, OMP(""), "OpenMP cannot take work from a thread outside a parallel region");
    }
}

/* Median of the samples is the benchmark's time; p50/p99 are counters. */
void wake_loop(benchmark::State &st, const std::function<int(double *)> &run)
{
    const int n = cfg.wake_samples;
    std::vector<double> lat((size_t)n);
    st.SetLabel(label("spawn onto an idle pool, %d samples %.0f ms apart; time = median",
                      n, cfg.wake_gap_ns / 1e6));
    double p50 = 0, p99 = 0;
    for (auto _ : st) {
        int rc = run(lat.data());
        if (rc) {
            fail(st, "error %d", rc);
            break;
        }
        p99 = bench_quantile(lat.data(), (size_t)n, 0.99);
        p50 = bench_quantile(lat.data(), (size_t)n, 0.50);
        st.SetIterationTime(p50 * 1e-9);
    }
    st.counters["p50_us"] = p50 / 1e3;
    st.counters["p99_us"] = p99 / 1e3;
}

void reg_wake()
{
    for (unsigned w : worker_counts) {
        reg("wake", "weft", w, [=](benchmark::State &st) {
            weft_pool *p = weft_pool_for(st, w);
            if (!p)
                return;
            wake_loop(st, [=](double *lat) { return wake_weft(p, cfg.wake_samples, cfg.wake_gap_ns, lat); });
        }, Timing::Manual, 1, benchmark::kMicrosecond);
        reg("wake", "tbb.arena_enqueue", w, [=](benchmark::State &st) {
            tbb::task_arena a((int)w, 0);
            a.initialize();
            wake_loop(st, [&](double *lat) {
                tbb_wl::wake(a, cfg.wake_samples, cfg.wake_gap_ns, lat);
                return 0;
            });
        }, Timing::Manual, 1, benchmark::kMicrosecond);
    }
    reg_na("wake", OMP(""), "OpenMP cannot take work from a thread outside a parallel region");
}

/* rayon (bench/rayon): every workload, with the inputs, labels, work units
 * and checks of the rows above. */
void reg_rayon()
{
#ifdef WEFT_BENCH_HAVE_RAYON
    const int fn = cfg.fib_n;
    const uint64_t fib_want = fib_expect(fn);
    const double calls = (double)fib_calls(fn), inner = (calls - 1) / 2;
    const std::string fib_lab = label("fib(%d), spawn per call, no cutoff", fn);
    const int qn = cfg.nq_n;
    const uint64_t nq_want = nqueens_expect(qn);
    const std::string nq_lab = label("nqueens(%d), spawn per legal placement", qn);
    const uint64_t leaves = cfg.skynet_leaves;
    const std::string sky_lab = label("skynet, %llu leaves, 10-ary", (unsigned long long)leaves);
    const size_t rn = cfg.reduce_n;
    const std::string red_lab = label("sum of %zu uint64 (%zu MiB)", rn, rn * 8 >> 20);
    for (unsigned w : worker_counts) {
        reg("fib", "rayon.join", w, [=](benchmark::State &st) {
            st.SetLabel(fib_lab);
            set_units(st, calls);
            st.counters["spawns"] = inner;
            rayon_pool *p = rayon_pool_for(st, w);
            if (!p)
                return;
            run_checked(st, fib_want, [=](uint64_t *o) {
                *o = fib_rayon(p, fn);
                return 0;
            });
        });
        reg("nqueens", "rayon.join", w, [=](benchmark::State &st) {
            st.SetLabel(nq_lab);
            rayon_pool *p = rayon_pool_for(st, w);
            if (!p)
                return;
            run_checked(st, nq_want, [=](uint64_t *o) {
                *o = nqueens_rayon(p, qn);
                return 0;
            });
        });
        for (const uts_params *t : cfg.trees) {
            const uint64_t want = t->expect;
            const std::string lab = label("UTS %s, %llu nodes, task per node", t->name,
                                          (unsigned long long)want);
            reg(std::string("uts_") + t->name, "rayon.join", w, [=](benchmark::State &st) {
                st.SetLabel(lab);
                set_units(st, (double)want);
                rayon_pool *p = rayon_pool_for(st, w);
                if (!p)
                    return;
                run_checked(st, want, [=](uint64_t *o) {
                    *o = uts_rayon(p, t);
                    return 0;
                });
            });
        }
        for (int scope = 0; scope < 2; scope++)
            reg("skynet", scope ? "rayon.scope" : "rayon.join", w, [=](benchmark::State &st) {
                st.SetLabel(sky_lab);
                set_units(st, (double)skynet_tasks(leaves));
                rayon_pool *p = rayon_pool_for(st, w);
                if (!p)
                    return;
                run_checked(st, skynet_expect(leaves), [=](uint64_t *o) {
                    *o = skynet_rayon(p, leaves, scope);
                    return 0;
                });
            });
        reg("msort", "rayon.join", w, [=](benchmark::State &st) {
            rayon_pool *p = rayon_pool_for(st, w);
            if (!p)
                return;
            msort_loop(st, [p](int32_t *a, int32_t *t, size_t n) {
                msort_rayon(p, a, t, n);
                return 0;
            });
        });
        reg("reduce", "rayon.par_iter", w, [=](benchmark::State &st) {
            st.SetLabel(red_lab);
            const uint64_t *a = arrays().reduce.data();
            rayon_pool *p = rayon_pool_for(st, w);
            if (!p)
                return;
            run_checked(st, reduce_expect(rn), [=](uint64_t *o) {
                *o = reduce_rayon(p, a, rn);
                return 0;
            });
        });
        for (unsigned threads : {1u, 4u}) {
            const std::string wl = "tiny_ext" + std::to_string(threads);
            reg(wl, "rayon.in_place_scope", w, [=](benchmark::State &st) {
                rayon_pool *p = rayon_pool_for(st, w);
                if (!p)
                    return;
                tiny_loop(st, threads, [=](uint64_t *s, size_t n) { return tiny_rayon(p, s, n, threads, 0); });
            });
            if (threads == 1)
                reg(wl, "rayon.scope", w, [=](benchmark::State &st) {
                    rayon_pool *p = rayon_pool_for(st, w);
                    if (!p)
                        return;
                    tiny_loop(st, threads, [=](uint64_t *s, size_t n) { return tiny_rayon(p, s, n, 1, 1); });
                });
        }
        reg("wake", "rayon.in_place_scope", w, [=](benchmark::State &st) {
            rayon_pool *p = rayon_pool_for(st, w);
            if (!p)
                return;
            wake_loop(st, [=](double *lat) { return wake_rayon(p, cfg.wake_samples, cfg.wake_gap_ns, lat); });
        }, Timing::Manual, 1, benchmark::kMicrosecond);
    }
#endif
}

/* Idle CPU is measured in a fresh child process (this binary with
 * --idle-child), so that no other runtime's threads are counted. */
double run_idle_child(const char *rt, unsigned workers, double seconds)
{
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return -1;
    exe[len] = 0;
    std::string w = std::to_string(workers), s = std::to_string(seconds);
    char *argv[] = {exe, const_cast<char *>("--idle-child"), const_cast<char *>(rt),
                    const_cast<char *>(w.c_str()), const_cast<char *>(s.c_str()), nullptr};
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    pid_t pid;
    int rc = posix_spawn(&pid, exe, &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return -1;
    }
    std::string out;
    char buf[256];
    ssize_t k;
    while ((k = read(fds[0], buf, sizeof buf)) > 0)
        out.append(buf, (size_t)k);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return std::atof(out.c_str());
}

int idle_child_main(const char *rt, unsigned workers, double seconds)
{
    double v = -1;
    if (!std::strcmp(rt, "weft"))
        v = idle_weft(workers, seconds);
    else if (!std::strcmp(rt, WEFT_BENCH_OMP_FAMILY))
        v = omp_wl::idle(workers, seconds);
#ifdef WEFT_BENCH_HAVE_RAYON
    else if (!std::strcmp(rt, "rayon"))
        v = idle_rayon(workers, seconds);
#endif
    else if (!std::strcmp(rt, "tbb"))
        v = tbb_wl::idle(workers, seconds);
    if (v < 0)
        return 1;
    std::printf("%.6f\n", v);
    return 0;
}

void reg_idle()
{
    const unsigned w = 2;
    std::vector<std::pair<std::string, std::string>> rts = {
        {"weft", "weft"}, {OMP(""), OMP("")}, {"tbb", "tbb.arena"}};
#ifdef WEFT_BENCH_HAVE_RAYON
    rts.push_back({"rayon", "rayon"});
#endif
    for (auto &r : rts) {
        std::string rt = r.first;
        reg("idle_cpu", r.second, w, [=](benchmark::State &st) {
            st.SetLabel(label("CPU-s per idle s after work, %u workers; time = that, in s", w));
            double v = 0;
            for (auto _ : st) {
                v = run_idle_child(rt.c_str(), w, cfg.idle_seconds);
                if (v < 0) {
                    fail(st, "idle child for %s failed", rt.c_str());
                    break;
                }
                st.SetIterationTime(v);
            }
            st.counters["cpu_s_per_s"] = v;
        }, Timing::Manual, 1, benchmark::kSecond);
    }
}

void reg_deque()
{
#ifdef WEFT_BENCH_HAVE_DEQUE
    const size_t n = cfg.deque_n;
    const std::string lab = label("%zu operations", n);
    for (const char *wl : {"deque_pushtake", "deque_batch256", "deque_steal"}) {
        reg(wl, "serial.call", 1, [=](benchmark::State &st) {
            st.SetLabel(lab + ", noinline calls for scale");
            set_units(st, (double)n);
            for (auto _ : st)
                benchmark::DoNotOptimize(dq_call_loop(n));
        }, Timing::Real, 0, benchmark::kMicrosecond);
    }
    reg("deque_pushtake", "weft.deque", 1, [=](benchmark::State &st) {
        st.SetLabel(lab + ", owner push+take pairs");
        set_units(st, (double)n);
        for (auto _ : st)
            if (int rc = dq_push_take(n)) {
                fail(st, "error %d", rc);
                break;
            }
    }, Timing::Real, 0, benchmark::kMicrosecond);
    reg("deque_batch256", "weft.deque", 1, [=](benchmark::State &st) {
        st.SetLabel(lab + ", owner: 256 pushes then 256 takes");
        set_units(st, (double)n);
        for (auto _ : st)
            if (int rc = dq_push_batch_take(n, 256)) {
                fail(st, "error %d", rc);
                break;
            }
    }, Timing::Real, 0, benchmark::kMicrosecond);
    for (unsigned thieves : {1u, 2u}) {
        reg("deque_steal", "weft.deque", thieves, [=](benchmark::State &st) {
            st.SetLabel(lab + ", thieves (= workers) steal a full deque");
            set_units(st, (double)n);
            for (auto _ : st) {
                double s = 0;
                int rc = dq_steal(n, thieves, &s);
                if (rc) {
                    fail(st, rc < 0 ? "wrong: items lost or stolen twice" : "error %d", rc);
                    break;
                }
                st.SetIterationTime(s);
            }
        }, Timing::Manual, 0, benchmark::kMicrosecond);
    }
#else
    reg("deque_pushtake", "weft.deque", 1, [](benchmark::State &st) {
        st.SkipWithError("n/a: queue/wq_deque.h missing or not matching the benchmark");
    }, Timing::Real, 1);
#endif
}

unsigned cpus_available()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* ---- machine load, for flagging noisy runs ------------------------------------ */

struct LoadSample {
    double loadavg[3] = {0, 0, 0};
    double busy_s = 0;  /* CPU-seconds every process on the machine has used */
    double own_s = 0;   /* ... of which this process and its children */
    double wall_s = 0;
};

LoadSample sample_load()
{
    LoadSample s;
    if (FILE *f = std::fopen("/proc/loadavg", "r")) {
        if (std::fscanf(f, "%lf %lf %lf", &s.loadavg[0], &s.loadavg[1], &s.loadavg[2]) != 3)
            s.loadavg[0] = s.loadavg[1] = s.loadavg[2] = -1;
        std::fclose(f);
    }
    if (FILE *f = std::fopen("/proc/stat", "r")) {
        unsigned long long v[8] = {0};
        if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                        &v[3], &v[4], &v[5], &v[6], &v[7]) == 8)
            s.busy_s = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
        std::fclose(f);
    }
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    auto sec = [](const timeval &t) { return (double)t.tv_sec + t.tv_usec * 1e-6; };
    s.own_s = sec(self.ru_utime) + sec(self.ru_stime) + sec(kids.ru_utime) + sec(kids.ru_stime);
    s.wall_s = (double)bench_now_ns() * 1e-9;
    return s;
}

void write_meta(const std::string &path, const LoadSample &idle0, const LoadSample &a,
                const LoadSample &b)
{
    FILE *f = std::fopen(path.c_str(), "w");
    if (!f)
        return;
    double wall = b.wall_s - a.wall_s;
    double foreign = (b.busy_s - a.busy_s) - (b.own_s - a.own_s);
    double busy_start = (a.busy_s - idle0.busy_s) - (a.own_s - idle0.own_s);
    std::fprintf(f,
                 "{\"loadavg_start\": [%.2f, %.2f, %.2f], \"loadavg_end\": [%.2f, %.2f, %.2f],\n"
                 " \"busy_cores_start\": %.3f, \"wall_s\": %.1f, \"foreign_cpu_s\": %.2f,"
                 " \"foreign_cores\": %.3f, \"cpus\": %u}\n",
                 a.loadavg[0], a.loadavg[1], a.loadavg[2], b.loadavg[0], b.loadavg[1],
                 b.loadavg[2], busy_start / std::max(a.wall_s - idle0.wall_s, 1e-3), wall,
                 foreign < 0 ? 0.0 : foreign, (foreign < 0 ? 0.0 : foreign) / std::max(wall, 1e-3),
                 cpus_available());
    std::fclose(f);
}


} // namespace

int main(int argc, char **argv)
{
    std::vector<char *> rest;
    rest.push_back(argv[0]);
    std::string workers_opt, meta_out;
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--idle-child") && i + 3 < argc)
            return idle_child_main(argv[i + 1], (unsigned)std::atoi(argv[i + 2]), std::atof(argv[i + 3]));
        if (!std::strcmp(argv[i], "--quick"))
            cfg.make_quick();
        else if (!std::strncmp(argv[i], "--workers=", 10))
            workers_opt = argv[i] + 10;
        else if (!std::strncmp(argv[i], "--meta-out=", 11))
            meta_out = argv[i] + 11;
        else if (!std::strncmp(argv[i], "--iterations=", 13))
            cfg.iterations = std::max(0, std::atoi(argv[i] + 13));
        else if (!std::strncmp(argv[i], "--only=", 7)) {
            std::string list = argv[i] + 7;
            for (size_t a = 0; a <= list.size();) {
                size_t b = list.find(',', a);
                if (b == std::string::npos)
                    b = list.size();
                if (b > a)
                    only_families.push_back(list.substr(a, b - a));
                a = b + 1;
            }
        }
        else
            rest.push_back(argv[i]);
    }
    unsigned ncpu = cpus_available();
    if (workers_opt.empty()) {
        worker_counts = {1, 2};
        if (ncpu > 2)
            worker_counts.push_back(ncpu);
    } else {
        for (char *tok = std::strtok(&workers_opt[0], ","); tok; tok = std::strtok(nullptr, ","))
            if (int v = std::atoi(tok); v > 0)
                worker_counts.push_back((unsigned)v);
    }
    if (worker_counts.empty()) {
        std::fprintf(stderr, "weft_bench: --workers needs a list of positive numbers\n");
        return 2;
    }
    unsigned maxw = *std::max_element(worker_counts.begin(), worker_counts.end());
    /* Let oneTBB have maxw workers (its default is nproc - 1), so that an
     * arena(n, 0) fed from outside gets n workers as weft does. */
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism, maxw + 1);

    benchmark::AddCustomContext("weft_bench_mode", cfg.quick ? "quick" : "full");
    benchmark::AddCustomContext("weft_bench_cpus", std::to_string(ncpu));
    std::string wl;
    for (unsigned w : worker_counts)
        wl += (wl.empty() ? "" : ",") + std::to_string(w);
    benchmark::AddCustomContext("weft_bench_workers", wl);

    reg_fib();
    reg_nqueens();
    reg_uts();
    reg_msort();
    reg_skynet();
    reg_reduce();
    reg_tiny();
    reg_wake();
    reg_rayon();
    reg_idle();
    reg_deque();

    int rargc = (int)rest.size();
    rest.push_back(nullptr);
    benchmark::Initialize(&rargc, rest.data());
    if (benchmark::ReportUnrecognizedArguments(rargc, rest.data()))
        return 1;
    LoadSample idle0 = sample_load();
    if (!meta_out.empty())
        bench_sleep_ns(500000000); /* how busy is the machine without us? */
    LoadSample start = sample_load();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    if (!meta_out.empty())
        write_meta(meta_out, idle0, start, sample_load());
    bench_weft_pools_destroy();
    return 0;
}
