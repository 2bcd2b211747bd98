/*
 * examples/task_graph.cpp — Taskflow's first example, with weft.hpp:
 *
 *          +---+
 *    +---->| B |-----+
 *    |     +---+     |
 *  +---+           +-v-+
 *  | A |           | D |
 *  +---+           +-^-+
 *    |     +---+     |
 *    +---->| C |-----+
 *          +---+
 *
 * Taskflow builds the graph (A.precede(B, C); D.succeed(B, C)) and runs it
 * with executor.run(taskflow).wait(). weft has no graph object: a
 * dependency is program order around a flow's wait(). A runs, then B and C
 * in parallel in a flow, then D. Run on a pool of our own (Taskflow's
 * executor).
 *
 *   c++ -std=c++17 task_graph.cpp -lweft && ./a.out
 */
#include <weft.hpp>

#include <atomic>
#include <cstdio>

int main()
{
    weft::pool executor; // one worker per CPU, like tf::Executor
    std::atomic<int> step{0};
    int a = -1, b = -1, c = -1, d = -1;

    auto A = [&] { std::printf("TaskA\n"); a = step++; };
    auto B = [&] { std::printf("TaskB\n"); b = step++; };
    auto C = [&] { std::printf("TaskC\n"); c = step++; };
    auto D = [&] { std::printf("TaskD\n"); d = step++; };

    weft::flow graph(executor);
    graph.spawn([&] {
        A();
        weft::flow bc; // A precedes B and C
        bc.spawn(B);
        bc.spawn(C);
        bc.wait();     // D succeeds B and C
        D();
    });
    graph.wait();      // executor.run(taskflow).wait()

    bool ok = a == 0 && d == 3 && b > 0 && b < 3 && c > 0 && c < 3;
    std::printf("order %s\n", ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
