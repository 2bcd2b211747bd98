// tests/cxx_close_async.cpp — weft::flow::close_async: done is called
// exactly once, on a worker of the flow's pool, after every task (and every
// task they spawned into the flow) finished, with nullptr, the first
// task's exception, a std::system_error with a task's int code, or
// ECANCELED; never inside the call; done may destroy the flow (every
// callable is destroyed by then, also skipped ones); misuse throws EINVAL
// and leaves the flow open (twice, after wait, from inside the flow).
#include <weft.hpp>

#include "tests/check.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

namespace {

std::atomic<long> live{0}; // task callables alive

struct counted {
    std::atomic<long> *ran;
    counted(std::atomic<long> *r) : ran(r) { live++; }
    counted(const counted &o) : ran(o.ran) { live++; }
    ~counted() { live--; }
    void operator()() const { ran->fetch_add(1, std::memory_order_relaxed); }
};

// What one done saw.
struct seen {
    std::atomic<int>   calls{0};
    std::thread::id    thread;          // where done ran
    int                worker = -2;
    long               ran_then = -1;
    long               live_then = -1;
    std::exception_ptr e;
};

void wait_for(const seen &s)
{
    for (int i = 0; s.calls.load(std::memory_order_acquire) == 0; i++) {
        CHECK(i < 20000000); // about 20 s at most: a hang is a failure
        std::this_thread::yield();
    }
}

// n tasks, then close_async; done records and destroys the flow.
void run_ok(weft::pool &p, long n)
{
    std::atomic<long> ran{0};
    seen s;
    auto *f = new weft::flow(p);
    for (long i = 0; i < n; i++)
        f->spawn(counted{&ran});
    f->close_async([&s, &ran, f](std::exception_ptr e) {
        s.worker = weft_worker_index();
        s.thread = std::this_thread::get_id();
        s.ran_then = ran.load(std::memory_order_relaxed);
        s.live_then = live.load(std::memory_order_relaxed);
        s.e = e;
        delete f; // done may destroy the flow
        s.calls.fetch_add(1, std::memory_order_release);
    });
    wait_for(s);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK_EQ(s.calls.load(), 1);
    CHECK(s.worker >= 0); // on a worker, so never inside the call (this thread is none)
    CHECK(s.thread != std::this_thread::get_id());
    CHECK_EQ(s.ran_then, n);
    CHECK_EQ(s.live_then, 0);
    CHECK(!s.e);
}

// A flow whose tasks fail as fail() says; returns the exception done got.
// (A flow is the caller's again only once done has returned: each test's
// done destroys its flow itself, so nothing is freed while done runs.)
template <class Fail>
std::exception_ptr run_failing(weft::pool &p, Fail fail)
{
    seen s;
    auto *f = new weft::flow(p);
    std::atomic<long> ran{0};
    for (int i = 0; i < 100; i++)
        f->spawn(counted{&ran});
    f->spawn(fail);
    for (int i = 0; i < 100; i++)
        f->spawn(counted{&ran});
    f->close_async([&s, f](std::exception_ptr e) {
        s.e = e;
        s.live_then = live.load(std::memory_order_relaxed);
        CHECK(!f->is_open());
        delete f;
        s.calls.fetch_add(1, std::memory_order_release);
    });
    wait_for(s);
    CHECK_EQ(s.live_then, 0); // skipped tasks' callables destroyed too
    return s.e;
}

int code_of(std::exception_ptr e)
{
    try {
        std::rethrow_exception(e);
    } catch (const std::system_error &x) {
        return x.code().value();
    } catch (...) {
        return -1;
    }
}

void misuse(weft::pool &p)
{
    // Twice: EINVAL the second time, done still called once.
    seen s;
    {
        auto *f = new weft::flow(p);
        std::atomic<bool> second{false};
        /* The flow is not done before the second call has been made. */
        f->spawn([&second] {
            while (!second.load(std::memory_order_acquire))
                std::this_thread::yield();
        });
        f->close_async([&s, f](std::exception_ptr) {
            delete f;
            s.calls.fetch_add(1, std::memory_order_release);
        });
        bool threw = false;
        try {
            f->close_async([](std::exception_ptr) { CHECK(false); });
        } catch (const std::system_error &x) {
            threw = x.code().value() == EINVAL;
        }
        CHECK(threw);
        second.store(true, std::memory_order_release);
        wait_for(s);
    }
    CHECK_EQ(s.calls.load(), 1);
    // After wait: EINVAL.
    {
        weft::flow f(p);
        f.wait();
        bool threw = false;
        try {
            f.close_async([](std::exception_ptr) { CHECK(false); });
        } catch (const std::system_error &x) {
            threw = x.code().value() == EINVAL;
        }
        CHECK(threw);
    }
    // From inside the flow: EINVAL, the flow stays open and waits normally.
    {
        weft::flow f(p);
        std::atomic<int> inside{0};
        f.spawn([&f, &inside] {
            try {
                f.close_async([](std::exception_ptr) { CHECK(false); });
            } catch (const std::system_error &x) {
                if (x.code().value() == EINVAL)
                    inside = 1;
            }
        });
        f.wait();
        CHECK_EQ(inside.load(), 1);
    }
}

} // namespace

int main()
{
    weft::pool p(2);
    for (long n : {0L, 1L, 10L, 5000L})
        for (int rep = 0; rep < 20; rep++)
            run_ok(p, n);

    std::exception_ptr e = run_failing(p, [] { throw std::runtime_error("boom"); });
    bool boom = false;
    try {
        std::rethrow_exception(e);
    } catch (const std::runtime_error &x) {
        boom = std::strcmp(x.what(), "boom") == 0;
    }
    CHECK(boom);
    CHECK_EQ(code_of(run_failing(p, [] { return 42; })), 42);

    // Canceled without a failure: ECANCELED.
    {
        seen s;
        auto *f = new weft::flow(p);
        f->cancel();
        std::atomic<long> ran{0};
        f->spawn(counted{&ran});
        f->close_async([&s, f](std::exception_ptr e) {
            s.e = e;
            delete f;
            s.calls.fetch_add(1, std::memory_order_release);
        });
        wait_for(s);
        CHECK_EQ(code_of(s.e), ECANCELED);
        CHECK_EQ(ran.load(), 0);
    }

    misuse(p);
    CHECK_EQ(live.load(), 0);
    std::puts("cxx_close_async: ok");
    return 0;
}
