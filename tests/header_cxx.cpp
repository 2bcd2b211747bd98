// tests/header_cxx.cpp — include/weft.h compiles and works from C++.
#include <weft.h>

#include <cstdio>

static int one(void *arg)
{
    *static_cast<int *>(arg) = 1;
    return 0;
}

int main()
{
    static_assert(alignof(weft_flow) == 16, "weft_flow alignment");
    static_assert(sizeof(weft_flow) == 192, "weft_flow size");
    int x = 0;
    weft_flow f;
    if (weft_flow_open(&f, nullptr) != 0 || weft_spawn(&f, one, &x) != 0 || weft_flow_close(&f) != 0)
        return 1;
    std::printf("header_cxx: %s\n", x == 1 ? "ok" : "WRONG");
    return x == 1 ? 0 : 1;
}
