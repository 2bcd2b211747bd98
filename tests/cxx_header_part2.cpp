// tests/cxx_header_part2.cpp — the second translation unit of cxx_header.
#include <weft.hpp>

#include <atomic>

const void *part2_tag()
{
    return weft::detail::thread_tag();
}

int part2_sum(int n)
{
    std::atomic<int> s{0};
    weft::parallel_for(0, n, 0, [&s](int i) { s.fetch_add(i, std::memory_order_relaxed); });
    weft::flow f;
    f.spawn([] { return 0; });
    f.wait();
    return s.load();
}
