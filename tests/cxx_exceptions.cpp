// tests/cxx_exceptions.cpp — an exception thrown by a task never reaches
// weft's C code: the first one cancels its flow and is rethrown from
// wait(); later ones are dropped. Thrown from the first, the middle and the
// last task spawned; from nested flows (the original, not the ECANCELED
// its cancel causes in sibling flows, comes out); from tasks spawned by
// tasks on other workers and by foreign threads; from join halves,
// parallel_for and parallel_reduce bodies and context::run. Error codes
// and exceptions: whichever failure came first is reported.
#include <weft.hpp>

#include "tests/check.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

struct boom {
    int id;
};

std::atomic<long> live{0};
struct tracked {
    tracked() { live++; }
    tracked(const tracked &) { live++; }
    ~tracked() { live--; }
};

// n tasks, task k (in spawn order) throws boom{k}; the rest are short.
// On a one-worker pool that runs them in order, the later tasks are
// skipped once k threw.
int throw_at(weft::pool &p, int n, int k, std::atomic<int> &ran)
{
    try {
        weft::flow f(p);
        for (int i = 0; i < n; i++)
            f.spawn([i, k, &ran, t = tracked()] {
                (void)t;
                ran++;
                if (i == k)
                    throw boom{i};
            });
        f.wait();
    } catch (const boom &b) {
        return b.id;
    }
    return -1;
}

void first_middle_last(weft::pool &one, weft::pool &two)
{
    const int n = 200;
    for (int k : {0, n / 2, n - 1}) {
        std::atomic<int> ran{0};
        CHECK_EQ(throw_at(two, n, k, ran), k);
        CHECK(ran.load() >= 1 && ran.load() <= n);
        CHECK_EQ(live.load(), 0); // skipped tasks' callables destroyed too
    }
    // One worker: a flow opened off the pool runs its tasks in spawn order
    // (the injection queue is FIFO); after the throw the rest are skipped.
    std::atomic<int> ran{0};
    {
        std::atomic<bool> go{false};
        weft::flow gate(one); // holds the worker until every task is queued
        gate.spawn([&go] {
            while (!go.load())
                std::this_thread::yield();
        });
        int got = -2;
        try {
            weft::flow f(one);
            for (int i = 0; i < n; i++)
                f.spawn([i, &ran] {
                    ran++;
                    if (i == 0)
                        throw boom{i};
                });
            go = true;
            f.wait();
        } catch (const boom &b) {
            got = b.id;
        }
        gate.wait();
        CHECK_EQ(got, 0);
        CHECK_EQ(ran.load(), 1);
    }
}

// Every task throws: one exception comes out, the others are dropped.
void all_throw(weft::pool &p)
{
    int caught = 0;
    try {
        weft::flow f(p);
        for (int i = 0; i < 1000; i++)
            f.spawn([i] { throw std::runtime_error("task " + std::to_string(i)); });
        f.wait();
    } catch (const std::runtime_error &e) {
        caught++;
        CHECK(std::string(e.what()).rfind("task ", 0) == 0);
    }
    CHECK_EQ(caught, 1);
}

// depth levels of flows; the deepest task throws. Siblings at every level
// run long nested flows that the cancel reaches (their wait() throws
// ECANCELED): the original exception is what the top wait() rethrows.
void nested(int depth, int level)
{
    weft::flow f;
    if (level == depth) {
        f.spawn([] { throw boom{1000}; });
    } else {
        f.spawn([depth, level] { nested(depth, level + 1); });
        for (int s = 0; s < 2; s++)
            f.spawn([] {
                weft::flow g;
                for (int i = 0; i < 50; i++)
                    g.spawn([] { std::this_thread::sleep_for(std::chrono::microseconds(100)); });
                g.wait();
            });
    }
    f.wait();
}

void nested_flows(weft::pool &p)
{
    for (int depth : {1, 3, 6}) {
        int got = -1;
        try {
            weft::flow root(p);
            root.spawn([depth] { nested(depth, 1); });
            root.wait();
        } catch (const boom &b) {
            got = b.id;
        } catch (const std::system_error &e) {
            std::fprintf(stderr, "nested depth %d: system_error %d came out instead\n", depth,
                         e.code().value());
        }
        CHECK_EQ(got, 1000);
    }
    // A task catches its nested flow's exception itself: the outer flow is fine.
    weft::flow f(p);
    std::atomic<int> handled{0};
    f.spawn([&handled] {
        try {
            weft::flow g;
            g.spawn([] { throw boom{1}; });
            g.wait();
        } catch (const boom &) {
            handled++;
        }
    });
    f.wait();
    CHECK_EQ(handled.load(), 1);
}

// Thrown by tasks that tasks spawned on other workers, and by tasks that a
// foreign thread spawned.
void remote_spawners(weft::pool &p)
{
    int got = -1;
    try {
        weft::flow f(p);
        for (int t = 0; t < 4; t++)
            f.spawn([&f, t] {
                for (int i = 0; i < 100; i++)
                    f.spawn([t, i] {
                        if (t == 2 && i == 50)
                            throw boom{250};
                    });
            });
        f.wait();
    } catch (const boom &b) {
        got = b.id;
    }
    CHECK_EQ(got, 250);
    got = -1;
    try {
        weft::flow f(p);
        std::thread th([&f] {
            for (int i = 0; i < 100; i++)
                f.spawn([i] {
                    if (i == 99)
                        throw boom{99};
                });
        });
        th.join();
        f.wait();
    } catch (const boom &b) {
        got = b.id;
    }
    CHECK_EQ(got, 99);
}

// The first failure wins, an error code or an exception.
void codes_and_exceptions(weft::pool &one)
{
    // One worker, tasks queued before it starts: EIO first, the thrower skipped.
    std::atomic<bool> go{false};
    weft::flow gate(one);
    gate.spawn([&go] {
        while (!go.load())
            std::this_thread::yield();
    });
    int code = 0;
    try {
        weft::flow f(one);
        f.spawn([] { return EIO; });
        f.spawn([] { throw boom{2}; });
        go = true;
        f.wait();
    } catch (const std::system_error &e) {
        code = e.code().value();
    } catch (const boom &) {
        code = -1;
    }
    gate.wait();
    CHECK_EQ(code, EIO);
    // A thrower first, then a task returning an error: the exception.
    int got = 0;
    try {
        weft::flow f(one);
        f.spawn([] { throw boom{3}; });
        f.wait();
    } catch (const boom &b) {
        got = b.id;
    }
    CHECK_EQ(got, 3);
    // Canceled without a failure: ECANCELED.
    code = 0;
    try {
        weft::flow f(one);
        f.spawn([] {});
        f.cancel();
        f.wait();
    } catch (const std::system_error &e) {
        code = e.code().value();
    }
    CHECK_EQ(code, ECANCELED);
}

void joins()
{
    std::atomic<int> ran{0};
    auto count = [&ran] { ran++; };
    auto thrower = [&ran](int id) {
        return [&ran, id] {
            ran++;
            throw boom{id};
        };
    };
    int got = 0;
    try {
        weft::join(thrower(1), count);
    } catch (const boom &b) {
        got = b.id;
    }
    CHECK_EQ(got, 1);
    CHECK_EQ(ran.load(), 2); // both halves ran
    try {
        weft::join(count, thrower(2));
    } catch (const boom &b) {
        got = b.id;
    }
    CHECK_EQ(got, 2);
    try {
        weft::join(thrower(3), thrower(4)); // both: f's
    } catch (const boom &b) {
        got = b.id;
    }
    CHECK_EQ(got, 3);
    CHECK_EQ(ran.load(), 6);
    int code = 0;
    try {
        weft::join([] { return 0; }, [] { return ENOSPC; });
    } catch (const std::system_error &e) {
        code = e.code().value();
    }
    CHECK_EQ(code, ENOSPC);
    // Inside tasks, recursively: an exception deep in a join tree.
    std::function<long(int)> fib = [&fib](int n) -> long {
        if (n == 13)
            throw boom{13};
        if (n < 2)
            return n;
        long x = 0, y = 0;
        weft::join([&] { x = fib(n - 1); }, [&] { y = fib(n - 2); });
        return x + y;
    };
    got = 0;
    try {
        weft::flow f;
        f.spawn([&fib] { (void)fib(20); });
        f.wait();
    } catch (const boom &b) {
        got = b.id;
    }
    CHECK_EQ(got, 13);
}

void loops(weft::pool &p, weft::pool &one)
{
    int got = 0;
    std::atomic<long> ran{0};
    try {
        weft::parallel_for(one, 0, 100000, 10, [&ran](int i) {
            ran++;
            if (i == 5)
                throw boom{i};
        });
    } catch (const boom &b) {
        got = b.id;
    }
    CHECK_EQ(got, 5);
    CHECK(ran.load() < 100000); // the pieces not started were skipped
    got = 0;
    try {
        weft::parallel_for(p, 0, 1000, 1, [](int b, int e) {
            if (b <= 999 && 999 < e)
                throw boom{999};
        });
    } catch (const boom &b) {
        got = b.id;
    }
    CHECK_EQ(got, 999);
    got = 0;
    try {
        (void)weft::parallel_reduce(
            p, 0, 10000, 16, 0L,
            [](int b, int e, long acc) {
                if (b <= 7777 && 7777 < e)
                    throw boom{7777};
                return acc + (e - b);
            },
            [](long a, long b) { return a + b; });
    } catch (const boom &b) {
        got = b.id;
    }
    CHECK_EQ(got, 7777);
    // A reduce inside a task of a canceled flow: ECANCELED.
    int code = 0;
    weft::flow f(p);
    f.spawn([&code, &f] {
        f.cancel();
        try {
            (void)weft::parallel_reduce(0, 1000, 1, 0, [](int b, int e) { return e - b; },
                                        [](int a, int b) { return a + b; });
        } catch (const std::system_error &e) {
            code = e.code().value();
        }
    });
    try {
        f.wait();
    } catch (const std::system_error &) {
    }
    CHECK_EQ(code, ECANCELED);
}

void contexts()
{
    weft::context c = weft::context::capture();
    int got = 0;
    try {
        c.run([] { throw boom{42}; });
    } catch (const boom &b) {
        got = b.id;
    }
    CHECK_EQ(got, 42);
    CHECK_EQ(c.run([] { return 9; }), 9);
}

} // namespace

int main()
{
    weft::pool_options o1;
    o1.workers = 1;
    weft::pool one(o1);
    weft::pool_options o2;
    o2.workers = 2;
    weft::pool two(o2);

    first_middle_last(one, two);
    all_throw(two);
    nested_flows(two);
    remote_spawners(two);
    codes_and_exceptions(one);
    joins();
    loops(two, one);
    contexts();
    CHECK_EQ(live.load(), 0);
    std::printf("cxx_exceptions: ok\n");
    one.destroy();
    two.destroy();
    weft::shutdown_default_pool();
    return 0;
}
