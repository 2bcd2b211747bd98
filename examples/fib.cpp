/*
 * examples/fib.cpp — oneTBB's task_group example (parallel Fibonacci), with
 * weft.hpp: a weft::flow is the task_group, spawn() is run(), wait() is
 * wait(). Then the same with weft::join, the cheaper fork-join, and an
 * exception thrown by a task coming back from wait().
 *
 *   c++ -std=c++17 fib.cpp -lweft && ./a.out
 */
#include <weft.hpp>

#include <cstdio>
#include <stdexcept>

// As oneTBB's documentation writes it:
//   tbb::task_group g;
//   g.run([&]{ x = Fib(n - 1); });
//   g.run([&]{ y = Fib(n - 2); });
//   g.wait();
static long fib(long n)
{
    if (n < 2)
        return n;
    long x, y;
    weft::flow g;
    g.spawn([&] { x = fib(n - 1); });
    g.spawn([&] { y = fib(n - 2); });
    g.wait();
    return x + y;
}

// Fork-join of two halves: no flow, no copy of the lambdas.
static long fib_join(long n)
{
    if (n < 2)
        return n;
    long x, y;
    weft::join([&] { x = fib_join(n - 1); }, [&] { y = fib_join(n - 2); });
    return x + y;
}

int main()
{
    long a = fib(25), b = fib_join(30);
    std::printf("fib(25) = %ld, fib(30) = %ld\n", a, b);

    // A task that throws cancels its flow; wait() rethrows the exception.
    bool caught = false;
    try {
        weft::flow g;
        for (int i = 0; i < 100; i++)
            g.spawn([i] {
                if (i == 42)
                    throw std::runtime_error("task 42 failed");
            });
        g.wait();
    } catch (const std::exception &e) {
        std::printf("caught: %s\n", e.what());
        caught = true;
    }
    weft::shutdown_default_pool(); // nothing left for leak checkers
    return a == 75025 && b == 832040 && caught ? 0 : 1;
}
