// tests/cxx_header_part2.cpp — the second translation unit of cxx_header.
#include <weft.hpp>

#include <atomic>
#include <memory>
#include <string>

const void *part2_tag()
{
    return weft::detail::thread_tag();
}

int part2_sum(int n)
{
    std::atomic<int> s{0};
    weft::parallel_for(0, n, 0, [&s](int i) { s.fetch_add(i, std::memory_order_relaxed); });
    // Mixed index types and boxed context values, under -Wconversion.
    weft::parallel_for(0, std::size_t(3), [](std::size_t) {});
    long r = weft::parallel_reduce(0, std::size_t(10), 0L, [](std::size_t b, std::size_t e) {
        return static_cast<long>(e - b);
    }, [](long a, long b) { return a + b; });
    static weft::context_var<std::shared_ptr<std::string>> name("name");
    name.set(std::make_shared<std::string>("x"));
    weft::flow f;
    f.spawn([] { return name.get()->size() == 1 ? 0 : 1; });
    f.wait();
    return s.load() + static_cast<int>(r) - 10;
}
