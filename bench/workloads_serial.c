/*
 * bench/workloads_serial.c — the serial C baselines of every workload, the
 * leaf kernels the parallel versions share, and the expected answers.
 *
 * The baselines are what a C programmer would write without a scheduler,
 * with the same shape as the parallel versions (the same recursion, one
 * call where they spawn), so that ratios to serial measure scheduling cost.
 *
 * SPDX-License-Identifier: MIT
 */
#include "workloads.h"
#include "workloads_rayon.h"

#include <string.h>

/* ---- fib ---------------------------------------------------------------- */

/* One call per node. noinline keeps gcc from inlining levels of the
 * recursion, and the empty asm keeps its tail-recursion pass from turning
 * `+ fib(n-2)` into a loop with an accumulator (which at -O2 it does, and
 * which halves the calls). The asm emits no instruction. */
__attribute__((noinline)) uint64_t fib_serial(int n)
{
    if (n < 2)
        return (uint64_t)n;
    uint64_t a = fib_serial(n - 1);
    uint64_t b = fib_serial(n - 2);
    __asm__("" : "+r"(b));
    return a + b;
}

uint64_t fib_expect(int n)
{
    uint64_t a = 0, b = 1;
    for (int i = 0; i < n; i++) {
        uint64_t c = a + b;
        a = b;
        b = c;
    }
    return a;
}

uint64_t fib_calls(int n)
{
    return 2 * fib_expect(n + 1) - 1;
}

/* ---- nqueens ------------------------------------------------------------- */

__attribute__((noinline)) static uint64_t nq_rec(int n, int row, signed char *b)
{
    if (row == n)
        return 1;
    uint64_t s = 0;
    for (int col = 0; col < n; col++) {
        if (nq_ok(b, row, col)) {
            b[row] = (signed char)col;
            s += nq_rec(n, row + 1, b);
        }
    }
    return s;
}

uint64_t nqueens_serial(int n)
{
    signed char b[NQ_MAX] = {0};
    return nq_rec(n, 0, b);
}

/* For bench/rayon: the same kernel, out of line (Rust cannot inline it). */
int nq_children_extern(const nq_arg *a, nq_arg *kids)
{
    return nq_children(a, kids);
}

uint64_t nqueens_expect(int n)
{
    static const uint64_t known[] = {1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724,
                                     2680, 14200, 73712, 365596, 2279184,
                                     14772512};
    return n >= 0 && n <= NQ_MAX ? known[n] : 0;
}

/* ---- skynet ---------------------------------------------------------------- */

__attribute__((noinline)) uint64_t skynet_serial(uint64_t num, uint64_t size)
{
    if (size == 1)
        return num;
    uint64_t sub = size / SKYNET_DIV, s = 0;
    for (uint64_t i = 0; i < SKYNET_DIV; i++)
        s += skynet_serial(num + i * sub, sub);
    return s;
}

uint64_t skynet_tasks(uint64_t leaves)
{
    uint64_t t = 0;
    for (uint64_t l = leaves; l >= 1; l /= SKYNET_DIV) {
        t += l;
        if (l == 1)
            break;
    }
    return t;
}

/* ---- mergesort --------------------------------------------------------------- */

static void insertion_sort(int32_t *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        int32_t v = a[i];
        size_t j = i;
        while (j > 0 && a[j - 1] > v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

void msort_merge(int32_t *a, int32_t *tmp, size_t mid, size_t n)
{
    size_t i = 0, j = mid, k = 0;
    while (i < mid && j < n)
        tmp[k++] = a[j] < a[i] ? a[j++] : a[i++];
    while (i < mid)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

void msort_serial(int32_t *a, int32_t *tmp, size_t n)
{
    if (n <= 32) {
        insertion_sort(a, n);
        return;
    }
    size_t mid = n / 2;
    msort_serial(a, tmp, mid);
    msort_serial(a + mid, tmp + mid, n - mid);
    msort_merge(a, tmp, mid, n);
}

uint64_t msort_fill(int32_t *a, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1, sum = 0;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13; /* xorshift64 */
        x ^= x >> 7;
        x ^= x << 17;
        a[i] = (int32_t)(uint32_t)(x >> 32);
        sum += (uint64_t)(int64_t)a[i];
    }
    return sum;
}

bool msort_check(const int32_t *a, size_t n, uint64_t sum)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && a[i - 1] > a[i])
            return false;
        s += (uint64_t)(int64_t)a[i];
    }
    return s == sum;
}

/* ---- reduction ------------------------------------------------------------------ */

__attribute__((noinline)) uint64_t sum_range(const uint64_t *a, size_t begin, size_t end)
{
    uint64_t s = 0;
    for (size_t i = begin; i < end; i++)
        s += a[i];
    return s;
}

uint64_t reduce_serial(const uint64_t *a, size_t n)
{
    return sum_range(a, 0, n);
}

void reduce_fill(uint64_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (uint64_t)i * 3 + 1;
}

/* ---- tiny tasks ------------------------------------------------------------------ */

static void tiny_call(void *arg)
{
    tiny_body(arg);
}

/* Through a volatile function pointer, as a scheduler would call it. */
void tiny_serial(uint64_t *slots, size_t n)
{
    void (*volatile fn)(void *) = tiny_call;
    for (size_t i = 0; i < n; i++)
        fn(&slots[i]);
}

bool tiny_check(const uint64_t *slots, size_t n, uint64_t times)
{
    for (size_t i = 0; i < n; i++)
        if (slots[i] != times)
            return false;
    return true;
}
