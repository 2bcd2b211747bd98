/*
 * examples/mpi/uts.c — Unbalanced Tree Search across MPI ranks with one weft
 * pool per rank: the "MPI + OpenMP" pattern, with weft as the shared-memory
 * half. docs/scaling.md explains how to run it and what its figures mean.
 *
 *   mpirun --bind-to none -np 2 ./example_mpi_uts --tree=T3s --workers=2
 *   mpirun --bind-to none -np 3 ./example_mpi_uts --model=multiple
 *   ./example_mpi_uts --serial --tree=T3      (the serial count and its time)
 *
 * The tree (bench/uts.h) is never stored: a node is 24 bytes from which
 * anyone can compute its children, so work moves between ranks as arrays of
 * nodes (raw bytes: the ranks must share one ABI, as on any one cluster).
 *
 * Distribution:
 *   static    rank r takes the root's children r, r+P, r+2P, ... (P ranks;
 *             rank 0 also counts the root) as its first chunk of work.
 *   dynamic   a rank that runs out of work (no chunk task left) asks
 *             another rank, round-robin, with TAG_REQ; the victim answers
 *             TAG_WORK with at most MAX_SHARE nodes, or TAG_NOWORK if it is
 *             out of work itself. A busy victim's tasks notice a waiting
 *             request by one relaxed atomic load per node and put the upper
 *             half of the children of the node they are at into the rank's
 *             bag (a leaf child is counted on the spot, not shipped); the
 *             request is answered once the bag holds QUOTA nodes for it, or
 *             after SERVE_WAIT_NS, or when the rank runs dry. Every message
 *             is under Open MPI's 4 KiB shared-memory eager limit, so a send
 *             never waits for its receiver. --no-steal: static only.
 *   end       Safra's token ring (EWD998): a token visits the ranks
 *             0 -> 1 -> ... -> P-1 -> 0 as each becomes passive, summing
 *             every rank's count of work messages sent minus received and
 *             turning black at a rank that received work since its last
 *             visit; a white token back at a white, passive rank 0 with a
 *             zero sum means no rank has work and none is in flight: rank 0
 *             sends TAG_DONE. Then every rank answers stray requests until
 *             its own request is answered and an MPI_Ibarrier completes.
 *   result    MPI_Reduce of the per-rank counts; rank 0 compares the total
 *             with a serial count (and the tree's published count) and
 *             every rank exits 1 on a mismatch.
 *
 * The thread models (--model):
 *   funneled  MPI_THREAD_FUNNELED. The main thread is the communication
 *             thread: it never runs tasks. It polls MPI (MPI_Iprobe,
 *             sleeping 2-200 us between empty polls), answers requests from
 *             the "bag" the tasks donated into, spawns work that arrives into
 *             the pool, and carries the token. Tasks never call MPI, so no
 *             worker ever waits on the network; the price is one more
 *             thread per rank and up to a poll interval of latency.
 *   multiple  MPI_THREAD_MULTIPLE. No communication thread: tasks call MPI
 *             themselves. Every POLL_EVERY nodes a task probes for requests
 *             and the token (one task at a time: a trylock); a task that
 *             donates sends the nodes itself (MPI_Send on the worker); and
 *             the task that finds the rank out of work becomes the thief
 *             and loops in MPI until work or termination arrives. While a
 *             task is inside MPI its worker runs nothing else — weft cannot
 *             preempt a task, and a task's blocking call is not a weft wait.
 *             Here that costs nothing because the thief only runs when the
 *             rank has no work, and the other sends are eager; a task that
 *             blocked in MPI_Recv or a collective while work was queued
 *             would take a worker out of the pool for that long.
 *
 * Per rank it reports the time spent idle (no local work: asking for work or
 * waiting for termination), inside MPI calls (all threads) and inside MPI
 * calls made on weft workers, next to weft's own counters (weft_pool_stats).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <mpi.h>
#include <weft.h>

#include "uts.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TAG_REQ = 1, TAG_WORK, TAG_NOWORK, TAG_TOKEN, TAG_DONE };
enum { MODEL_FUNNELED, MODEL_MULTIPLE };

#define MAX_SHARE 160            /* nodes per work message: 3,840 bytes */
#define QUOTA 32                 /* nodes with children a request waits for ... */
#define SERVE_WAIT_NS 1000000u   /* ... unless it has waited this long */
#define POLL_EVERY 64            /* multiple: nodes a worker visits between probes */
#define BACKOFF_MIN_NS 2000u     /* sleep after an empty poll, doubling ... */
#define BACKOFF_MAX_NS 200000u   /* ... up to this, */
#define BACKOFF_WAIT_NS 50000u   /* or this while a request waits (ours or another's) */

typedef struct rank_state {
    int               rank, nranks, model;
    bool              steal;
    const uts_params *tree;
    weft_flow         flow;              /* every chunk task is spawned into it */

    atomic_long       outstanding;       /* chunk tasks spawned and not finished */
    atomic_ullong     nodes;             /* nodes counted on this rank */
    atomic_int        want;              /* requests not yet given a donation;
                                            read without mu as a hint */
    atomic_int        error;             /* the first weft error */
    atomic_ullong     mpi_ns;            /* time inside MPI calls, any thread */
    atomic_ullong     worker_mpi_ns;     /* the part of it on weft workers */
    atomic_ullong     mpi_calls, mpi_max_ns;

    /* mu guards the rest; in multiple mode every receive is made under it */
    pthread_mutex_t   mu;
    int              *pending;           /* ranks whose request waits here, */
    uint64_t         *pending_since;     /* since when */
    int               npending;
    uts_node         *bag;               /* donated, not yet sent */
    int               nbag, bag_cap;
    bool              thief_active;      /* multiple: a task is the thief */
    bool              draining;          /* after termination */
    bool              done;
    bool              req_out;           /* my request is unanswered */
    int               victim;            /* whom to ask next */
    /* Safra */
    bool              black;
    long long         count;             /* work messages sent - received */
    bool              have_token, tok_black, first_round;
    long long         tok_q;
    /* counters */
    uint64_t          idle_since, idle_ns;
    uint64_t          reqs_sent, reqs_ok, nodes_in, nodes_out;
} rank_state;

typedef struct chunk {
    rank_state *R;
    int         n;
    uts_node    nodes[];
} chunk;

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void sleep_ns(unsigned ns)
{
    struct timespec t = {0, (long)ns};
    nanosleep(&t, NULL);
}

static void mpi_time(rank_state *R, uint64_t t0)
{
    uint64_t d = now_ns() - t0;
    atomic_fetch_add_explicit(&R->mpi_ns, d, memory_order_relaxed);
    atomic_fetch_add_explicit(&R->mpi_calls, 1, memory_order_relaxed);
    unsigned long long mx = atomic_load_explicit(&R->mpi_max_ns, memory_order_relaxed);
    while (d > mx && !atomic_compare_exchange_weak_explicit(&R->mpi_max_ns, &mx, d,
                                                            memory_order_relaxed,
                                                            memory_order_relaxed))
        ;
    if (weft_worker_index() >= 0)
        atomic_fetch_add_explicit(&R->worker_mpi_ns, d, memory_order_relaxed);
}

/* Every MPI call of the run goes through this, to be timed. The default
 * error handler (MPI_ERRORS_ARE_FATAL) deals with failures. */
#define MPI_TIMED(R, call)             \
    do {                               \
        uint64_t t0_ = now_ns();       \
        (void)(call);                  \
        mpi_time((R), t0_);            \
    } while (0)

static void protocol_error(rank_state *R, const char *what)
{
    fprintf(stderr, "mpi_uts: rank %d: protocol error: %s\n", R->rank, what);
    MPI_Abort(MPI_COMM_WORLD, 3);
}

static void note_error(rank_state *R, int err)
{
    int zero = 0;
    atomic_compare_exchange_strong(&R->error, &zero, err);
}

/* ---- the tree, in parallel inside a rank ------------------------------------ */

int chunk_task(void *p);
int range_run(void *p);
static int thief(rank_state *R);
static void task_poll(rank_state *R);
static int donate(rank_state *R, const uts_node *n, int k, uint64_t *leaves);

static _Thread_local unsigned tl_polls;

/* The children lo..hi-1 of parent, or the elements lo..hi-1 of array. */
typedef struct range {
    rank_state     *R;
    const uts_node *parent;
    const uts_node *array;
    int             lo, hi;
    uint64_t        count;
} range;

static int visit_node(rank_state *R, const uts_node *n, uint64_t *count);

/* Not static, like chunk_task: exported (-rdynamic), a weft trace names
 * them. */
int range_run(void *p)
{
    range *r = p;
    r->count = 0;
    if (r->hi - r->lo >= 2) {
        int mid = r->lo + (r->hi - r->lo) / 2;
        range a = *r, b = *r;
        a.hi = mid;
        b.lo = mid;
        int rc = weft_join(range_run, &a, range_run, &b);
        r->count = a.count + b.count;
        return rc;
    }
    if (r->hi == r->lo)
        return 0;
    uts_node n;
    if (r->array)
        n = r->array[r->lo];
    else
        uts_child(r->parent, r->lo, &n);
    return visit_node(r->R, &n, &r->count);
}

/* Counts the subtree of n, giving part of it away if another rank asks. */
static int visit_node(rank_state *R, const uts_node *n, uint64_t *count)
{
    int k = uts_num_children(R->tree, n);
    if (R->model == MODEL_MULTIPLE && ++tl_polls >= POLL_EVERY) {
        tl_polls = 0;
        task_poll(R);
    }
    *count = 1;
    if (k >= 2 && atomic_load_explicit(&R->want, memory_order_relaxed) > 0)
        k = donate(R, n, k, count);
    if (k == 0)
        return 0;
    range r = {.R = R, .parent = n, .lo = 0, .hi = k};
    int rc = range_run(&r);
    *count += r.count;
    return rc;
}

/* A chunk of nodes, from the static split or from another rank. */
int chunk_task(void *p)
{
    chunk *c = p;
    rank_state *R = c->R;
    range r = {.R = R, .array = c->nodes, .lo = 0, .hi = c->n};
    int rc = range_run(&r);
    atomic_fetch_add(&R->nodes, r.count);
    free(c);
    if (rc)
        note_error(R, rc);
    /* The last chunk out: the rank has no work left. In multiple mode this
     * task goes looking for more itself. */
    if (atomic_fetch_sub(&R->outstanding, 1) == 1 && R->model == MODEL_MULTIPLE)
        thief(R);
    return 0; /* never cancel the flow: skipped chunks would never count down */
}

static chunk *chunk_new(rank_state *R, int n)
{
    chunk *c = malloc(sizeof *c + (size_t)n * sizeof(uts_node));
    if (!c) {
        fprintf(stderr, "mpi_uts: rank %d: out of memory\n", R->rank);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    c->R = R;
    c->n = n;
    return c;
}

static void spawn_chunk(rank_state *R, chunk *c)
{
    atomic_fetch_add(&R->outstanding, 1);
    int rc = weft_spawn(&R->flow, chunk_task, c);
    if (rc) {
        fprintf(stderr, "mpi_uts: rank %d: weft_spawn: %s\n", R->rank, strerror(rc));
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
}

/* ---- messages (mu held) ------------------------------------------------------ */

static bool passive(rank_state *R)
{
    return atomic_load(&R->outstanding) == 0 && R->nbag == 0;
}

/* How many waiting requests still want donations. */
static void update_want(rank_state *R)
{
    int w = R->npending - R->nbag / QUOTA;
    atomic_store(&R->want, w > 0 ? w : 0);
}

static void send_empty(rank_state *R, int to, int tag)
{
    MPI_TIMED(R, MPI_Send(NULL, 0, MPI_BYTE, to, tag, MPI_COMM_WORLD));
}

/* Receives and handles every message waiting. Returns whether one came
 * that is worth polling again soon for (anything but a refusal). */
static bool handle_messages(rank_state *R)
{
    bool progress = false;
    for (;;) {
        int flag;
        MPI_Status st;
        MPI_TIMED(R, MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st));
        if (!flag)
            return progress;
        int src = st.MPI_SOURCE;
        switch (st.MPI_TAG) {
        case TAG_REQ:
            MPI_TIMED(R, MPI_Recv(NULL, 0, MPI_BYTE, src, TAG_REQ, MPI_COMM_WORLD,
                                  MPI_STATUS_IGNORE));
            if (R->draining || passive(R)) {
                send_empty(R, src, TAG_NOWORK);
            } else {
                R->pending_since[R->npending] = now_ns();
                R->pending[R->npending++] = src;
                update_want(R);
            }
            progress = true;
            break;
        case TAG_WORK: {
            int bytes;
            MPI_Get_count(&st, MPI_BYTE, &bytes);
            int n = bytes / (int)sizeof(uts_node);
            chunk *c = chunk_new(R, n);
            MPI_TIMED(R, MPI_Recv(c->nodes, bytes, MPI_BYTE, src, TAG_WORK, MPI_COMM_WORLD,
                                  MPI_STATUS_IGNORE));
            if (R->draining || !R->req_out)
                protocol_error(R, "work that was not asked for");
            R->count--;
            R->black = true;
            R->req_out = false;
            R->reqs_ok++;
            R->nodes_in += (uint64_t)n;
            spawn_chunk(R, c);
            progress = true;
            break;
        }
        case TAG_NOWORK:
            MPI_TIMED(R, MPI_Recv(NULL, 0, MPI_BYTE, src, TAG_NOWORK, MPI_COMM_WORLD,
                                  MPI_STATUS_IGNORE));
            R->req_out = false;
            break;
        case TAG_TOKEN: {
            long long tok[2];
            MPI_TIMED(R, MPI_Recv(tok, 2, MPI_LONG_LONG, src, TAG_TOKEN, MPI_COMM_WORLD,
                                  MPI_STATUS_IGNORE));
            if (R->draining)
                protocol_error(R, "token after termination");
            R->have_token = true;
            R->tok_q = tok[0];
            R->tok_black = tok[1] != 0;
            progress = true;
            break;
        }
        case TAG_DONE:
            MPI_TIMED(R, MPI_Recv(NULL, 0, MPI_BYTE, src, TAG_DONE, MPI_COMM_WORLD,
                                  MPI_STATUS_IGNORE));
            R->done = true;
            progress = true;
            break;
        default:
            protocol_error(R, "unknown tag");
        }
    }
}

/* A passive rank refuses the requests that were waiting for a donation. */
static void refuse_pending(rank_state *R)
{
    for (int i = 0; i < R->npending; i++)
        send_empty(R, R->pending[i], TAG_NOWORK);
    R->npending = 0;
    atomic_store(&R->want, 0);
}

/* Sends what the tasks donated to the ranks waiting, oldest first: each
 * once the bag holds QUOTA nodes for it, or it waited SERVE_WAIT_NS, or the
 * rank has no task left. What nobody waits for any more is spawned here. */
static void serve_pending(rank_state *R)
{
    bool dry = atomic_load(&R->outstanding) == 0;
    int served = 0;
    uint64_t now = R->npending ? now_ns() : 0;
    while (served < R->npending && R->nbag > 0 &&
           (dry || R->nbag >= QUOTA || now - R->pending_since[served] > SERVE_WAIT_NS)) {
        int left = R->npending - served;
        int share = R->nbag >= QUOTA * left ? R->nbag / left : R->nbag;
        if (share > MAX_SHARE)
            share = MAX_SHARE;
        R->nbag -= share;
        R->count++;
        R->nodes_out += (uint64_t)share;
        MPI_TIMED(R, MPI_Send(R->bag + R->nbag, share * (int)sizeof(uts_node), MPI_BYTE,
                              R->pending[served], TAG_WORK, MPI_COMM_WORLD));
        served++;
    }
    if (served) {
        R->npending -= served;
        memmove(R->pending, R->pending + served, (size_t)R->npending * sizeof *R->pending);
        memmove(R->pending_since, R->pending_since + served,
                (size_t)R->npending * sizeof *R->pending_since);
    }
    if (R->npending == 0 && R->nbag > 0) {
        chunk *c = chunk_new(R, R->nbag);
        memcpy(c->nodes, R->bag, (size_t)R->nbag * sizeof(uts_node));
        R->nbag = 0;
        spawn_chunk(R, c);
    }
    update_want(R);
}

/* Safra's algorithm, the step of a passive rank that holds the token. */
static void safra_passive(rank_state *R)
{
    if (!R->have_token || R->done)
        return;
    if (R->nranks == 1) {
        R->done = true;
        return;
    }
    long long tok[2];
    if (R->rank == 0) {
        if (!R->first_round && !R->tok_black && !R->black && R->tok_q + R->count == 0) {
            for (int r = 1; r < R->nranks; r++)
                send_empty(R, r, TAG_DONE);
            R->done = true;
            return;
        }
        R->first_round = false;
        tok[0] = 0;
        tok[1] = 0;
    } else {
        tok[0] = R->tok_q + R->count;
        tok[1] = R->tok_black || R->black;
    }
    R->black = false;
    R->have_token = false;
    MPI_TIMED(R, MPI_Send(tok, 2, MPI_LONG_LONG, (R->rank + 1) % R->nranks, TAG_TOKEN,
                          MPI_COMM_WORLD));
}

static void ask_for_work(rank_state *R)
{
    if (!R->steal || R->req_out || R->done || R->nranks == 1)
        return;
    send_empty(R, R->victim, TAG_REQ);
    R->req_out = true;
    R->reqs_sent++;
    do
        R->victim = (R->victim + 1) % R->nranks;
    while (R->victim == R->rank);
}

static void idle_begin(rank_state *R)
{
    if (!R->idle_since)
        R->idle_since = now_ns();
}

static void idle_end(rank_state *R)
{
    if (R->idle_since) {
        R->idle_ns += now_ns() - R->idle_since;
        R->idle_since = 0;
    }
}

/* Sleeps with mu released; returns the next backoff. */
static unsigned backoff_sleep(rank_state *R, unsigned backoff)
{
    unsigned max = R->req_out || R->npending ? BACKOFF_WAIT_NS : BACKOFF_MAX_NS;
    if (backoff > max)
        backoff = max;
    pthread_mutex_unlock(&R->mu);
    sleep_ns(backoff);
    pthread_mutex_lock(&R->mu);
    return backoff * 2 > max ? max : backoff * 2;
}

/* ---- giving work away -------------------------------------------------------- */

/* A task at node n, with k children, while some rank waits for work: puts
 * the children k/2..k-1 that have children into the bag, counts those that
 * are leaves into *leaves, and returns how many it keeps. Kept out of line:
 * its buffer must not sit in every frame of the recursion. In multiple mode
 * the donor also sends what is ready (serve_pending: MPI on a worker). */
__attribute__((noinline)) static int donate(rank_state *R, const uts_node *n, int k,
                                            uint64_t *leaves)
{
    int keep = k / 2, give = 0;
    uts_node buf[UTS_MAX_CHILDREN];
    for (int i = keep; i < k; i++) {
        uts_child(n, i, &buf[give]);
        if (uts_num_children(R->tree, &buf[give]) > 0)
            give++;
        else
            ++*leaves;
    }
    if (give == 0)
        return keep; /* only leaves: counted, nothing to ship */
    pthread_mutex_lock(&R->mu);
    if (atomic_load(&R->want) <= 0 || R->npending == 0) {
        pthread_mutex_unlock(&R->mu); /* others gave enough already: keep them */
        *leaves -= (uint64_t)(k - keep - give);
        return k;
    }
    if (R->nbag + give > R->bag_cap) {
        int cap = R->bag_cap ? R->bag_cap * 2 : 4 * MAX_SHARE;
        while (cap < R->nbag + give)
            cap *= 2;
        uts_node *bag = realloc(R->bag, (size_t)cap * sizeof *bag);
        if (!bag) {
            pthread_mutex_unlock(&R->mu);
            *leaves -= (uint64_t)(k - keep - give);
            return k;
        }
        R->bag = bag;
        R->bag_cap = cap;
    }
    memcpy(R->bag + R->nbag, buf, (size_t)give * sizeof *buf);
    R->nbag += give;
    if (R->model == MODEL_MULTIPLE)
        serve_pending(R);
    else
        update_want(R);
    pthread_mutex_unlock(&R->mu);
    return keep;
}

/* ---- funneled: the communication thread -------------------------------------- */

static void comm_loop(rank_state *R)
{
    unsigned backoff = BACKOFF_MIN_NS;
    pthread_mutex_lock(&R->mu);
    while (!R->done) {
        bool progress = handle_messages(R);
        serve_pending(R);
        if (passive(R)) {
            idle_begin(R);
            refuse_pending(R);
            safra_passive(R);
            ask_for_work(R);
        } else {
            idle_end(R);
        }
        if (R->done)
            break;
        if (progress)
            backoff = BACKOFF_MIN_NS;
        else
            backoff = backoff_sleep(R, backoff);
    }
    idle_end(R);
    pthread_mutex_unlock(&R->mu);
}

/* ---- multiple: tasks that call MPI ------------------------------------------- */

/* Every POLL_EVERY nodes: take in requests and the token. One worker at a
 * time; the others go on counting. */
static void task_poll(rank_state *R)
{
    if (pthread_mutex_trylock(&R->mu) != 0)
        return;
    handle_messages(R);
    serve_pending(R); /* the requests that waited too long */
    pthread_mutex_unlock(&R->mu);
}

/* Run by the task that found the rank out of work: asks other ranks until
 * work comes (spawned into the flow; this task then returns) or the run is
 * over. The worker does nothing else meanwhile — there is nothing else. */
static int thief(rank_state *R)
{
    unsigned backoff = BACKOFF_MIN_NS;
    pthread_mutex_lock(&R->mu);
    if (R->thief_active) {
        /* the previous thief's work is done already and it goes on */
        pthread_mutex_unlock(&R->mu);
        return 0;
    }
    R->thief_active = true;
    idle_begin(R);
    while (!R->done) {
        bool progress = handle_messages(R);
        serve_pending(R); /* the bag, to those waiting or spawned here */
        if (atomic_load(&R->outstanding) > 0)
            break; /* work again */
        if (R->done)
            break;
        refuse_pending(R);
        safra_passive(R);
        if (R->done)
            break;
        ask_for_work(R);
        if (progress)
            backoff = BACKOFF_MIN_NS;
        else
            backoff = backoff_sleep(R, backoff);
    }
    idle_end(R);
    R->thief_active = false;
    pthread_mutex_unlock(&R->mu);
    return 0;
}

/* ---- after termination ------------------------------------------------------- */

/* Answers stray requests until this rank's own request is answered and all
 * ranks got that far (MPI_Ibarrier): then no message is left in flight. */
static void drain(rank_state *R)
{
    MPI_Request bar = MPI_REQUEST_NULL;
    bool posted = false;
    pthread_mutex_lock(&R->mu);
    R->draining = true;
    for (;;) {
        handle_messages(R);
        if (!posted && !R->req_out) {
            MPI_TIMED(R, MPI_Ibarrier(MPI_COMM_WORLD, &bar));
            posted = true;
        }
        if (posted) {
            int flag;
            MPI_TIMED(R, MPI_Test(&bar, &flag, MPI_STATUS_IGNORE));
            if (flag)
                break;
        }
        pthread_mutex_unlock(&R->mu);
        sleep_ns(BACKOFF_MIN_NS);
        pthread_mutex_lock(&R->mu);
    }
    pthread_mutex_unlock(&R->mu);
}

/* ---- main -------------------------------------------------------------------- */

enum {
    ST_NODES, ST_ELAPSED, ST_IDLE, ST_MPI, ST_WMPI, ST_REQS, ST_REQS_OK, ST_IN, ST_OUT,
    ST_STEALS, ST_PARKS, ST_PARKED, ST_SPIN, ST_WORKERS, ST_CALLS, ST_MAXCALL, ST_N
};

static void usage(FILE *to)
{
    fprintf(to,
            "usage: mpirun [-np P] example_mpi_uts [options]\n"
            "  --tree=T1s|T3s|T1|T3   the tree (default T3s; bench/uts.h)\n"
            "  --model=funneled|multiple   who calls MPI (default funneled)\n"
            "  --workers=N            weft workers per rank (default: $WEFT_WORKERS,\n"
            "                         else the CPUs the rank may run on)\n"
            "  --no-steal             static split only, no work requests\n"
            "  --no-check             skip the serial count on rank 0\n"
            "  --serial               only the serial count and its time (rank 0)\n"
            "  --trace=PREFIX         weft trace of each rank's pool: PREFIX-<rank>.json\n"
            "  --quiet                no per-rank lines\n");
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }

int main(int argc, char **argv)
{
    const uts_params *tree = &uts_T3_small;
    int model = MODEL_FUNNELED;
    unsigned workers = 0;
    bool steal = true, check = true, serial = false, quiet = false;
    const char *trace = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--tree=", 7)) {
            const uts_params *all[] = {&uts_T1_small, &uts_T3_small, &uts_T1, &uts_T3};
            tree = NULL;
            for (size_t j = 0; j < sizeof all / sizeof *all; j++)
                if (!strcmp(a + 7, all[j]->name))
                    tree = all[j];
            if (!tree) {
                fprintf(stderr, "mpi_uts: unknown tree '%s'\n", a + 7);
                return 2;
            }
        } else if (!strcmp(a, "--model=funneled")) {
            model = MODEL_FUNNELED;
        } else if (!strcmp(a, "--model=multiple")) {
            model = MODEL_MULTIPLE;
        } else if (!strncmp(a, "--workers=", 10)) {
            char *end;
            unsigned long w = strtoul(a + 10, &end, 10);
            if (*end || w < 1 || w > WEFT_MAX_WORKERS) {
                fprintf(stderr, "mpi_uts: bad worker count '%s'\n", a + 10);
                return 2;
            }
            workers = (unsigned)w;
        } else if (!strcmp(a, "--no-steal")) {
            steal = false;
        } else if (!strcmp(a, "--no-check")) {
            check = false;
        } else if (!strcmp(a, "--serial")) {
            serial = true;
        } else if (!strncmp(a, "--trace=", 8)) {
            trace = a + 8;
        } else if (!strcmp(a, "--quiet")) {
            quiet = true;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "mpi_uts: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }

    int required = model == MODEL_MULTIPLE ? MPI_THREAD_MULTIPLE : MPI_THREAD_FUNNELED;
    int provided;
    MPI_Init_thread(&argc, &argv, required, &provided);
    int rank, nranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (provided < required) {
        if (rank == 0)
            fprintf(stderr, "mpi_uts: the MPI library gives thread level %d, %s needs %d\n",
                    provided, model == MODEL_MULTIPLE ? "--model=multiple" : "funneled",
                    required);
        MPI_Finalize();
        return 2;
    }

    uts_node root;
    uts_root(tree, &root);

    if (serial) {
        if (rank == 0) {
            uint64_t t0 = now_ns();
            uint64_t n = uts_count_serial(tree, &root);
            double s = (double)(now_ns() - t0) / 1e9;
            bool ok = !tree->expect || n == tree->expect;
            printf("mpi_uts: tree=%s serial nodes=%llu time_s=%.6f result=%s\n", tree->name,
                   (unsigned long long)n, s, ok ? "OK" : "MISMATCH");
            fflush(stdout);
            if (!ok)
                MPI_Abort(MPI_COMM_WORLD, 1);
        }
        MPI_Finalize();
        return 0;
    }

    weft_pool *pool;
    char name[16];
    snprintf(name, sizeof name, "uts%d", rank);
    weft_pool_config cfg = {.workers = workers, .name = name};
    int rc = weft_pool_create(&pool, &cfg);
    if (rc) {
        fprintf(stderr, "mpi_uts: rank %d: weft_pool_create: %s\n", rank, strerror(rc));
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (trace) {
        char path[4096];
        snprintf(path, sizeof path, "%s-%d.json", trace, rank);
        rc = weft_trace_start(pool, path);
        if (rc)
            fprintf(stderr, "mpi_uts: rank %d: weft_trace_start(%s): %s\n", rank, path,
                    strerror(rc));
    }

    static rank_state R; /* zeroed */
    R.rank = rank;
    R.nranks = nranks;
    R.model = model;
    R.steal = steal;
    R.tree = tree;
    R.pending = calloc((size_t)nranks, sizeof *R.pending);
    R.pending_since = calloc((size_t)nranks, sizeof *R.pending_since);
    R.victim = (rank + 1) % nranks;
    R.have_token = rank == 0;
    R.first_round = true;
    pthread_mutex_init(&R.mu, NULL);
    if (!R.pending || !R.pending_since)
        MPI_Abort(MPI_COMM_WORLD, 2);

    /* the static split: the root's children rank, rank + P, ... */
    int k = uts_num_children(tree, &root);
    chunk *first = chunk_new(&R, k / nranks + 1);
    first->n = 0;
    for (int i = rank; i < k; i += nranks)
        uts_child(&root, i, &first->nodes[first->n++]);
    if (rank == 0)
        atomic_store(&R.nodes, 1); /* the root */

    MPI_Barrier(MPI_COMM_WORLD);
    uint64_t t0 = now_ns();
    rc = weft_flow_open(&R.flow, pool);
    if (rc) {
        fprintf(stderr, "mpi_uts: rank %d: weft_flow_open: %s\n", rank, strerror(rc));
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    spawn_chunk(&R, first);
    if (model == MODEL_FUNNELED)
        comm_loop(&R); /* returns at termination */
    /* multiple: the tasks do it all; this thread just waits */
    rc = weft_flow_close(&R.flow);
    if (rc)
        note_error(&R, rc);
    uint64_t elapsed = now_ns() - t0;
    drain(&R);

    weft_stats ws = {0};
    weft_pool_stats(pool, -1, &ws); /* ENOTSUP without counters: zeros */
    if (trace)
        weft_trace_stop(pool);
    unsigned nworkers = weft_pool_workers(pool);
    rc = weft_pool_destroy(pool);
    if (rc)
        note_error(&R, rc);

    uint64_t st[ST_N] = {
        [ST_NODES] = atomic_load(&R.nodes), [ST_ELAPSED] = elapsed, [ST_IDLE] = R.idle_ns,
        [ST_MPI] = atomic_load(&R.mpi_ns), [ST_WMPI] = atomic_load(&R.worker_mpi_ns),
        [ST_REQS] = R.reqs_sent, [ST_REQS_OK] = R.reqs_ok, [ST_IN] = R.nodes_in,
        [ST_OUT] = R.nodes_out, [ST_STEALS] = ws.steals, [ST_PARKS] = ws.parks,
        [ST_PARKED] = ws.parked_ns, [ST_SPIN] = ws.spin_ns, [ST_WORKERS] = nworkers,
        [ST_CALLS] = atomic_load(&R.mpi_calls), [ST_MAXCALL] = atomic_load(&R.mpi_max_ns),
    };
    uint64_t *all = rank == 0 ? calloc((size_t)nranks * ST_N, sizeof *all) : NULL;
    if (rank == 0 && !all)
        MPI_Abort(MPI_COMM_WORLD, 2);
    MPI_Gather(st, ST_N, MPI_UINT64_T, all, ST_N, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    uint64_t total = 0, max_elapsed = 0;
    MPI_Reduce(&st[ST_NODES], &total, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&st[ST_ELAPSED], &max_elapsed, 1, MPI_UINT64_T, MPI_MAX, 0, MPI_COMM_WORLD);
    int err = atomic_load(&R.error), any_err = 0;
    MPI_Reduce(&err, &any_err, 1, MPI_INT, MPI_MAX, 0, MPI_COMM_WORLD);

    int ok = 1;
    if (rank == 0) {
        uint64_t expect = tree->expect;
        const char *against = "published";
        if (check) {
            expect = uts_count_serial(tree, &root);
            against = "serial";
            if (tree->expect && expect != tree->expect)
                ok = 0;
        }
        ok = ok && total == expect && !any_err;
        uint64_t sum[ST_N] = {0};
        for (int r = 0; r < nranks; r++)
            for (int j = 0; j < ST_N; j++)
                sum[j] += all[r * ST_N + j];
        double rank_time = (double)sum[ST_ELAPSED];
        printf("mpi_uts: tree=%s model=%s ranks=%d workers=%llu steal=%s nodes=%llu "
               "%s=%llu time_s=%.6f idle_pct=%.1f mpi_pct=%.1f worker_mpi_pct=%.1f "
               "reqs=%llu reqs_ok=%llu moved=%llu parked_pct=%.1f result=%s\n",
               tree->name, model == MODEL_MULTIPLE ? "multiple" : "funneled", nranks,
               (unsigned long long)all[ST_WORKERS], steal ? "on" : "off",
               (unsigned long long)total, against, (unsigned long long)expect,
               (double)max_elapsed / 1e9, 100.0 * (double)sum[ST_IDLE] / rank_time,
               100.0 * (double)sum[ST_MPI] / rank_time,
               100.0 * (double)sum[ST_WMPI] / rank_time, (unsigned long long)sum[ST_REQS],
               (unsigned long long)sum[ST_REQS_OK], (unsigned long long)sum[ST_IN],
               100.0 * (double)sum[ST_PARKED] / (rank_time * (double)all[ST_WORKERS]),
               ok ? "OK" : "MISMATCH");
        if (any_err)
            printf("mpi_uts: a weft call failed: %s\n", strerror(any_err));
        if (!quiet)
            for (int r = 0; r < nranks; r++) {
                const uint64_t *s = all + r * ST_N;
                printf("  rank %d: %llu nodes (%.1f%%) in %.1f ms; idle %.1f ms, in MPI %.1f ms "
                       "(on workers %.1f ms; %llu calls, longest %.2f ms); asked %llu, got work %llu (%llu nodes), "
                       "gave %llu nodes | weft: %llu workers, steals %llu, parks %llu, "
                       "parked %.1f ms, spin %.1f ms\n",
                       r, (unsigned long long)s[ST_NODES],
                       100.0 * (double)s[ST_NODES] / (double)(total ? total : 1),
                       ms(s[ST_ELAPSED]), ms(s[ST_IDLE]), ms(s[ST_MPI]), ms(s[ST_WMPI]),
                       (unsigned long long)s[ST_CALLS], ms(s[ST_MAXCALL]),
                       (unsigned long long)s[ST_REQS], (unsigned long long)s[ST_REQS_OK],
                       (unsigned long long)s[ST_IN], (unsigned long long)s[ST_OUT],
                       (unsigned long long)s[ST_WORKERS], (unsigned long long)s[ST_STEALS],
                       (unsigned long long)s[ST_PARKS], ms(s[ST_PARKED]), ms(s[ST_SPIN]));
            }
        fflush(stdout);
        free(all);
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    free(R.pending);
    free(R.pending_since);
    free(R.bag);
    pthread_mutex_destroy(&R.mu);
    MPI_Finalize();
    return ok ? 0 : 1;
}
