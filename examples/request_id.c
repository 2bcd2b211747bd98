/*
 * examples/request_id.c — a request id set on one thread is seen by every
 * task spawned for that request, on whichever worker runs it, and can be
 * carried into a thread weft does not know with capture/run. Uses only
 * <weft.h>.
 *
 *   cc request_id.c -lweft -lpthread && ./a.out
 */
#include <weft.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

static weft_ctx_var *request_id;
static int mismatches;

static int handle_part(void *arg)
{
    uintptr_t want = (uintptr_t)arg;
    uintptr_t got = (uintptr_t)weft_ctx_get(request_id);
    if (got != want)
        __atomic_add_fetch(&mismatches, 1, __ATOMIC_RELAXED);
    return 0;
}

struct io_job {
    weft_ctx *ctx;
    uintptr_t seen;
};

static int log_line(void *arg)
{
    struct io_job *job = arg;
    job->seen = (uintptr_t)weft_ctx_get(request_id);
    return 0;
}

static void *io_thread(void *arg)
{
    struct io_job *job = arg;
    weft_ctx_run(job->ctx, log_line, job); /* runs in the captured context */
    return NULL;
}

int main(void)
{
    if (weft_ctx_var_create(&request_id, "request_id", NULL) != 0)
        return 1;
    for (uintptr_t req = 1; req <= 3; req++) {
        weft_ctx_set(request_id, (void *)req);
        weft_flow flow;
        weft_flow_open(&flow, NULL);
        for (int part = 0; part < 100; part++)
            weft_spawn(&flow, handle_part, (void *)req); /* each sees req */
        weft_flow_close(&flow);

        struct io_job job = {weft_ctx_capture(), 0};
        pthread_t t;
        pthread_create(&t, NULL, io_thread, &job);
        pthread_join(t, NULL);
        weft_ctx_release(job.ctx);
        printf("request %lu: io thread saw %lu\n", (unsigned long)req, (unsigned long)job.seen);
        if (job.seen != req)
            return 1;
    }
    printf("%d tasks saw another request's id\n", mismatches);
    return mismatches == 0 ? 0 : 1;
}
