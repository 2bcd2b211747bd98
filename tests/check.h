/*
 * tests/check.h — the tiny assertion macros every weft test uses.
 *
 * CHECK(cond)      fails the test when cond is false.
 * CHECK_EQ(a, b)   fails when a != b, printing both as long long.
 *
 * A failure prints file:line and the expression to stderr and exits with
 * status 1 (_Exit: safe from any thread, even while others run), so CTest
 * and every sanitizer run see it. Not affected by NDEBUG.
 */
#ifndef WEFT_TESTS_CHECK_H
#define WEFT_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,    \
                    #cond);                                                     \
            fflush(stderr);                                                     \
            _Exit(1);                                                           \
        }                                                                       \
    } while (0)

#define CHECK_EQ(a, b)                                                          \
    do {                                                                        \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);         \
        if (check_a_ != check_b_) {                                             \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n", \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_);            \
            fflush(stderr);                                                     \
            _Exit(1);                                                           \
        }                                                                       \
    } while (0)

#endif /* WEFT_TESTS_CHECK_H */
