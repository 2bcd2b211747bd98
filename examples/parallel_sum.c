/*
 * examples/parallel_sum.c — a flow of tasks, an error that cancels the rest,
 * and weft_for. Uses only <weft.h>.
 *
 *   cc parallel_sum.c -lweft && ./a.out
 */
#include <weft.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

enum { N = 1 << 20, CHUNKS = 16 };

static unsigned data[N];

struct chunk {
    size_t             begin, end;
    unsigned long long sum;
};

static int sum_chunk(void *arg)
{
    struct chunk *c = arg;
    c->sum = 0;
    for (size_t i = c->begin; i < c->end; i++)
        c->sum += data[i];
    return 0;
}

static int refuse(void *arg)
{
    (void)arg;
    return EDOM; /* the first error comes back from the close */
}

static void square(size_t begin, size_t end, void *arg)
{
    (void)arg;
    for (size_t i = begin; i < end; i++)
        data[i] = (unsigned)(i % 1000) * (unsigned)(i % 1000);
}

int main(void)
{
    /* A data-parallel loop on the default pool. */
    if (weft_for(NULL, 0, N, 0, square, NULL) != 0)
        return 1;

    /* A flow: spawn, then close (the join barrier). */
    struct chunk chunks[CHUNKS];
    weft_flow flow;
    if (weft_flow_open(&flow, NULL) != 0)
        return 1;
    for (int i = 0; i < CHUNKS; i++) {
        chunks[i].begin = (size_t)i * N / CHUNKS;
        chunks[i].end = (size_t)(i + 1) * N / CHUNKS;
        weft_spawn(&flow, sum_chunk, &chunks[i]);
    }
    int err = weft_flow_close(&flow);
    unsigned long long total = 0, expect = 0;
    for (int i = 0; i < CHUNKS; i++)
        total += chunks[i].sum;
    for (size_t i = 0; i < N; i++)
        expect += (unsigned long long)(i % 1000) * (i % 1000);
    printf("sum %llu (%s), close returned %d\n", total, total == expect ? "right" : "WRONG", err);

    /* A failing task: its error comes back from the close. */
    weft_flow_open(&flow, NULL);
    weft_spawn(&flow, refuse, NULL);
    err = weft_flow_close(&flow);
    printf("a failing flow closed with %d (EDOM is %d)\n", err, EDOM);
    return total == expect && err == EDOM ? 0 : 1;
}
