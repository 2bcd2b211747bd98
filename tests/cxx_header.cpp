// tests/cxx_header.cpp — include/weft.hpp compiles on its own, with
// -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
// -Wold-style-cast -Werror, as C++17 (cxx_header) and C++20
// (cxx_header20), and links from two translation units
// (cxx_header_part2.cpp): its inline functions and variables are defined
// once. A few calls from each unit, so the instantiations link too.
#include <weft.hpp>
#include <weft.hpp> // twice: the include guard

#include <cstdio>

int part2_sum(int n); // cxx_header_part2.cpp

int main()
{
    static_assert(sizeof(weft::flow) % alignof(weft_flow) == 0, "weft::flow keeps weft_flow's alignment");
    static_assert(alignof(weft::flow) == alignof(weft_flow), "weft::flow is aligned as weft_flow");
    // Both units' thread tags are the same variable (one per thread).
    extern const void *part2_tag();
    if (part2_tag() != weft::detail::thread_tag()) {
        std::fprintf(stderr, "cxx_header: two thread tags for one thread\n");
        return 1;
    }
    int a = 0, b = 0;
    {
        weft::flow f;
        f.spawn([&a] { a = 1; });
        f.wait();
    }
    weft::join([&b] { b += 2; }, [] {});
    int s = part2_sum(100);
    std::printf("cxx_header: a=%d b=%d s=%d (C++ %ld)\n", a, b, s, static_cast<long>(__cplusplus));
    return a == 1 && b == 2 && s == 4950 ? 0 : 1;
}
