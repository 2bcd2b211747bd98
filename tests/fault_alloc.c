/*
 * tests/fault_alloc.c — allocation- and thread-failure injection.
 *
 * The linker's --wrap (tests/CMakeLists.txt) sends every malloc, calloc,
 * realloc, aligned_alloc, posix_memalign, strdup, pthread_create,
 * pthread_key_create, pthread_mutex_init and pthread_getattr_np that
 * libweft (linked statically) makes through the wrappers below. While armed
 * they count the calls and fail the Nth one: NULL and errno ENOMEM for the
 * malloc family, EAGAIN from pthread_create and pthread_key_create, ENOMEM
 * from pthread_mutex_init and pthread_getattr_np. The test's own threads and
 * bookkeeping call the __real_ functions (or allocate nothing while armed),
 * so only the library's calls are counted. (Today the library calls no
 * realloc, posix_memalign or pthread_getattr_np; they are wrapped so that a
 * new call is counted too.)
 *
 * One scenario touches every site: pools of 1 (named), 2 (WEFT_POOL_NO_CTX)
 * and 3 (named) workers; flows opened by external threads and by tasks,
 * nested flows; weft_join on a worker (also on a full deque) and off one
 * (on the default pool, with its injection ring full); weft_for on a
 * worker's own pool and onto another pool; weft_ctx_set in tasks, on a
 * thread, on a NO_CTX worker and inside weft_ctx_run; capture/run/release;
 * a task's burst of 5000 spawns (its deque grows three times); an external
 * burst of 5200 spawns into one flow while a gate task blocks every worker
 * (the 4096-cell ring overflows); weft_flow_close_async from an external
 * thread, from a task (on its own pool and onto another) and in hooked
 * contexts (var_c, set on the thread, in the tasks and in done);
 * weft_pool_destroy.
 *
 * Round 0 runs it with no failure and counts the calls: "injection points:
 * C". Round N fails exactly the Nth call, for every N in 1..C (under
 * ThreadSanitizer, inside a run of consecutive calls from one call site,
 * only every 8th: a run's first and last call, hence every site, always);
 * a sample of rounds then fails every call from the Nth on (persistent
 * failure). Sites that nondeterminism kept from failing get a round of
 * their own at the end. Before round 0, three one-time stages do the same
 * for weft_ctx_var_create, the first weft_ctx_set on a thread (its
 * pthread_key_create) and the default pool's creation.
 *
 * Checked in every round (a violation is printed with its round and the
 * test fails at the end):
 *  - every call returns 0 or an error its contract names, ENOMEM or EAGAIN;
 *    ENOMEM/EAGAIN only when a failure was injected during the call; flow
 *    closes and pool destroys return 0 (no task fails, nothing is canceled);
 *  - a failed weft_pool_create leaves *pool NULL and no thread behind;
 *  - a spawn that returned 0 ran exactly once by the time its flow's close
 *    returned; a spawn that failed never ran; tasks see their context;
 *  - weft_join: 0 means each half ran once; an error means neither ran;
 *  - weft_for: 0 means every index ran once; an error means none did;
 *  - weft_ctx_set: 0 means the new value reads back; ENOMEM the old one;
 *    var_b has lifetime hooks: by the end of each round (its NO_CTX
 *    workers have exited) its values were released as often as retained,
 *    never more, so a failed set retained nothing; the same for var_c;
 *  - weft_flow_close_async: 0 means done ran exactly once (by the time the
 *    thread's wait ends, or the outer flow's close returned) with result 0,
 *    in the closer's context, and the flow's tasks ran once; an error
 *    means done never ran and the flow is still open (a close then
 *    succeeds). It allocates nothing itself (it retains the closer's
 *    context): the calls it makes on the calling thread are counted and
 *    printed ("close_async allocation calls");
 *  - every worker has its stack guard (ws_worker.nest_limit) set;
 *  - no leak (LeakSanitizer at exit under ASan); no hang (the watchdog, and
 *    a stall check that names the round).
 *
 * Replay one round: FAULT_ALLOC_N=k fails only the kth call (0: round 0);
 * FAULT_ALLOC_N=k+ fails every call from the kth on. The one-time stages
 * run first either way. FAULT_ALLOC_STRIDE=s overrides the run sampling.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "test_common.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>

#include "sched/ws.h" /* ws_self, nest_limit: the stack guard */

/* ---- the wrappers -------------------------------------------------------- */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
int   __real_posix_memalign(void **out, size_t align, size_t size);
char *__real_strdup(const char *s);
int   __real_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                            void *arg);
int   __real_pthread_key_create(pthread_key_t *key, void (*dtor)(void *));
int   __real_pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr);
int   __real_pthread_getattr_np(pthread_t t, pthread_attr_t *attr);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);
int   __wrap_posix_memalign(void **out, size_t align, size_t size);
char *__wrap_strdup(const char *s);
int   __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                            void *arg);
int   __wrap_pthread_key_create(pthread_key_t *key, void (*dtor)(void *));
int   __wrap_pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr);
int   __wrap_pthread_getattr_np(pthread_t t, pthread_attr_t *attr);

enum fa_kind {
    FA_MALLOC, FA_CALLOC, FA_REALLOC, FA_ALIGNED_ALLOC, FA_POSIX_MEMALIGN, FA_STRDUP,
    FA_PTHREAD_CREATE, FA_KEY_CREATE, FA_MUTEX_INIT, FA_GETATTR, FA_NKINDS
};
static const char *const fa_kind_name[FA_NKINDS] = {
    "malloc", "calloc", "realloc", "aligned_alloc", "posix_memalign", "strdup",
    "pthread_create", "pthread_key_create", "pthread_mutex_init", "pthread_getattr_np",
};

/* A call site: the return address into the library. */
typedef struct fa_site {
    _Atomic(uintptr_t) addr;
    atomic_int         kind;
    atomic_long        calls;  /* in every armed round */
    atomic_long        failed; /* injected failures */
} fa_site;
enum { FA_MAX_SITES = 128, FA_SEQ_MAX = 1 << 16 };

static atomic_int  fa_armed;          /* config below is stable while set */
static atomic_long fa_fail_at;        /* 0: fail nothing by number */
static atomic_int  fa_persist;        /* fail every call from fa_fail_at on */
static atomic_int  fa_target_site;    /* site index + 1: fail its first call */
static _Atomic(const void *) fa_only; /* count only this thread's calls */
static atomic_long fa_calls;          /* counted calls this round */
static atomic_long fa_injected;       /* failures injected this round */
static atomic_long fa_kind_calls[FA_NKINDS];
static atomic_int  fa_recording;      /* round 0: note each call's site */
static atomic_short fa_seq[FA_SEQ_MAX]; /* call number -> site index + 1 */
static fa_site     fa_sites[FA_MAX_SITES];
static _Thread_local long fa_injected_here;
static _Thread_local long fa_calls_here; /* counted calls of this thread's */
static _Thread_local char fa_thread_token;

static int fa_site_index(int kind, uintptr_t addr)
{
    for (int i = 0; i < FA_MAX_SITES; i++) {
        uintptr_t cur = atomic_load_explicit(&fa_sites[i].addr, memory_order_acquire);
        if (cur == 0) {
            if (atomic_compare_exchange_strong_explicit(&fa_sites[i].addr, &cur, addr,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire)) {
                /* Read only when no round runs. */
                atomic_store_explicit(&fa_sites[i].kind, kind, memory_order_relaxed);
                return i;
            }
        }
        if (cur == addr)
            return i;
    }
    return -1; /* table full: counted, not tracked (reported at the end) */
}

/* Counts a call of the library's; true when it must fail. */
static bool fa_hit(int kind, void *ret)
{
    /* Acquire pairs with fa_arm's release store: the config is visible. */
    if (!atomic_load_explicit(&fa_armed, memory_order_acquire))
        return false;
    const void *only = atomic_load_explicit(&fa_only, memory_order_relaxed);
    if (only && only != &fa_thread_token)
        return false;
    long n = atomic_fetch_add_explicit(&fa_calls, 1, memory_order_relaxed) + 1;
    fa_calls_here++;
    atomic_fetch_add_explicit(&fa_kind_calls[kind], 1, memory_order_relaxed);
    int site = fa_site_index(kind, (uintptr_t)ret);
    if (site >= 0)
        atomic_fetch_add_explicit(&fa_sites[site].calls, 1, memory_order_relaxed);
    if (atomic_load_explicit(&fa_recording, memory_order_relaxed) && n < FA_SEQ_MAX)
        atomic_store_explicit(&fa_seq[n], (short)(site + 1), memory_order_relaxed);

    long at = atomic_load_explicit(&fa_fail_at, memory_order_relaxed);
    bool fail = at && (n == at || (n > at && atomic_load_explicit(&fa_persist,
                                                                  memory_order_relaxed)));
    if (!fail && site >= 0) {
        int want = site + 1;
        fail = atomic_compare_exchange_strong_explicit(&fa_target_site, &want, 0,
                                                       memory_order_relaxed,
                                                       memory_order_relaxed);
    }
    if (fail) {
        atomic_fetch_add_explicit(&fa_injected, 1, memory_order_relaxed);
        fa_injected_here++;
        if (site >= 0)
            atomic_fetch_add_explicit(&fa_sites[site].failed, 1, memory_order_relaxed);
    }
    return fail;
}

#define FA_RET __builtin_return_address(0)

void *__wrap_malloc(size_t size)
{
    if (fa_hit(FA_MALLOC, FA_RET)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (fa_hit(FA_CALLOC, FA_RET)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    if (fa_hit(FA_REALLOC, FA_RET)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, size);
}

void *__wrap_aligned_alloc(size_t align, size_t size)
{
    if (fa_hit(FA_ALIGNED_ALLOC, FA_RET)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_aligned_alloc(align, size);
}

int __wrap_posix_memalign(void **out, size_t align, size_t size)
{
    if (fa_hit(FA_POSIX_MEMALIGN, FA_RET))
        return ENOMEM;
    return __real_posix_memalign(out, align, size);
}

char *__wrap_strdup(const char *s)
{
    if (fa_hit(FA_STRDUP, FA_RET)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strdup(s);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg)
{
    if (fa_hit(FA_PTHREAD_CREATE, FA_RET))
        return EAGAIN;
    return __real_pthread_create(t, attr, fn, arg);
}

int __wrap_pthread_key_create(pthread_key_t *key, void (*dtor)(void *))
{
    if (fa_hit(FA_KEY_CREATE, FA_RET))
        return EAGAIN;
    return __real_pthread_key_create(key, dtor);
}

int __wrap_pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr)
{
    if (fa_hit(FA_MUTEX_INIT, FA_RET))
        return ENOMEM;
    return __real_pthread_mutex_init(m, attr);
}

int __wrap_pthread_getattr_np(pthread_t t, pthread_attr_t *attr)
{
    if (fa_hit(FA_GETATTR, FA_RET))
        return ENOMEM;
    return __real_pthread_getattr_np(t, attr);
}

/* Arms the counter: fail call number at (0: none), and every later one if
 * persist; only_me counts only the calling thread's calls. */
static void fa_arm(long at, bool persist, bool only_me)
{
    atomic_store_explicit(&fa_calls, 0, memory_order_relaxed);
    atomic_store_explicit(&fa_injected, 0, memory_order_relaxed);
    for (int k = 0; k < FA_NKINDS; k++)
        atomic_store_explicit(&fa_kind_calls[k], 0, memory_order_relaxed);
    atomic_store_explicit(&fa_fail_at, at, memory_order_relaxed);
    atomic_store_explicit(&fa_persist, persist, memory_order_relaxed);
    atomic_store_explicit(&fa_only, only_me ? (const void *)&fa_thread_token : NULL,
                          memory_order_relaxed);
    atomic_store_explicit(&fa_armed, 1, memory_order_release);
}

/* Returns the number of failures injected since fa_arm. */
static long fa_disarm(void)
{
    atomic_store_explicit(&fa_armed, 0, memory_order_release);
    atomic_store_explicit(&fa_target_site, 0, memory_order_relaxed);
    return atomic_load_explicit(&fa_injected, memory_order_relaxed);
}

/* Whether a failure was injected since a mark: anywhere (a pool's worker,
 * say) or on this thread. */
typedef struct fa_mark {
    long global, here;
} fa_mark;

static fa_mark fa_now(void)
{
    return (fa_mark){atomic_load_explicit(&fa_injected, memory_order_relaxed), fa_injected_here};
}

static bool fa_injected_since(fa_mark m)
{
    return atomic_load_explicit(&fa_injected, memory_order_relaxed) != m.global ||
           fa_injected_here != m.here;
}

/* ---- where we are, violations, replay hints ------------------------------ */

static atomic_long cur_n = -1;     /* the round's N; -1 outside rounds */
static atomic_int  cur_persist;
static atomic_int  cur_site;       /* a fill-in round's site index + 1 */
static atomic_long round_began_us; /* 0: no round running (stall check) */

static void where(char *buf, size_t size)
{
    long n = atomic_load_explicit(&cur_n, memory_order_relaxed);
    const char *stage = atomic_load_explicit(&test_stage_, memory_order_relaxed);
    int site = atomic_load_explicit(&cur_site, memory_order_relaxed);
    if (n < 0)
        snprintf(buf, size, "stage %s, k=%ld", stage,
                 atomic_load_explicit(&test_round_, memory_order_relaxed));
    else if (site)
        snprintf(buf, size, "%s, the first call from site %d failing", stage, site - 1);
    else
        snprintf(buf, size, "%s, replay: FAULT_ALLOC_N=%ld%s", stage, n,
                 atomic_load_explicit(&cur_persist, memory_order_relaxed) ? "+" : "");
}

typedef struct violation_kind {
    const char *kind;
    long        count;
    char        first[160]; /* where it was first seen */
} violation_kind;
static pthread_mutex_t violations_lock = PTHREAD_MUTEX_INITIALIZER;
static violation_kind  violations[48];
static int             nviolation_kinds;

/* Records a broken invariant; the first three of a kind are printed. */
__attribute__((format(printf, 2, 3))) static void violation(const char *kind, const char *fmt, ...)
{
    char at[160], msg[400];
    where(at, sizeof at);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&violations_lock);
    violation_kind *v = NULL;
    for (int i = 0; i < nviolation_kinds; i++)
        if (strcmp(violations[i].kind, kind) == 0)
            v = &violations[i];
    if (!v && nviolation_kinds < (int)(sizeof violations / sizeof violations[0])) {
        v = &violations[nviolation_kinds++];
        v->kind = kind;
        snprintf(v->first, sizeof v->first, "%s", at);
    }
    long count = v ? ++v->count : 0;
    pthread_mutex_unlock(&violations_lock);
    if (count <= 3)
        fprintf(stderr, "VIOLATION %s [%s]: %s\n", kind, at, msg);
}

/* A harness invariant (not the library's): stop at once, saying where. */
#define FA_REQUIRE(cond)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            char at_[160];                                                      \
            where(at_, sizeof at_);                                             \
            fprintf(stderr, "%s:%d: harness check failed: %s [%s]\n", __FILE__,  \
                    __LINE__, #cond, at_);                                      \
            _Exit(1);                                                           \
        }                                                                       \
    } while (0)

/* A crash or a sanitizer's report: say which round to replay. */
static void print_where_dying(void)
{
    char at[160], line[220];
    where(at, sizeof at);
    int len = snprintf(line, sizeof line, "fault_alloc: died in %s\n", at);
    if (len > 0 && write(2, line, (size_t)len) < 0) {
    }
}

static void on_fatal_signal(int sig)
{
    print_where_dying();
    signal(sig, SIG_DFL);
    raise(sig);
}

void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static void install_death_notes(void)
{
    if (__sanitizer_set_death_callback) {
        __sanitizer_set_death_callback(print_where_dying);
        return; /* the sanitizer owns the fatal signals */
    }
    int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], on_fatal_signal);
}

/* A round that runs far longer than rounds do has hung: name it. */
static void *stall_check_main(void *arg)
{
    long limit_us = (long)(*(double *)arg * 1e6);
    for (;;) {
        sleep_us(200000);
        long began = atomic_load_explicit(&round_began_us, memory_order_relaxed);
        if (began && (long)(now_s() * 1e6) - began > limit_us) {
            char at[160];
            where(at, sizeof at);
            fprintf(stderr, "fault_alloc: a round hung (over %ld s) in %s\n", limit_us / 1000000,
                    at);
            fflush(stderr);
            _Exit(1);
        }
    }
    return NULL;
}

static double long_wait_s(void)
{
    return TEST_SANITIZED ? 60 : 20;
}

static bool wait_at_least(atomic_int *v, int target, double timeout_s)
{
    double end = now_s() + timeout_s;
    for (unsigned i = 0; atomic_load_explicit(v, memory_order_acquire) < target; i++) {
        if (now_s() > end)
            return false;
        if (i > 200)
            sleep_us(50);
    }
    return true;
}

/* The test's own threads are not the library's: not counted. */
static pthread_t start_own_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    FA_REQUIRE(__real_pthread_create(&t, NULL, fn, arg) == 0);
    return t;
}

/* ---- checking return values ---------------------------------------------- */

/* rc of a call that may fail for lack of memory or threads. */
static void check_rc(const char *what, int rc, fa_mark m)
{
    if (rc == 0)
        return;
    if (rc != ENOMEM && rc != EAGAIN)
        violation("bad-error", "%s returned %d (%s)", what, rc, strerror(rc));
    else if (!fa_injected_since(m))
        violation("spurious-error", "%s returned %s with no failure injected during the call",
                  what, rc == ENOMEM ? "ENOMEM" : "EAGAIN");
}

/* ---- tasks and their accounting ------------------------------------------ */

/* One task: how often it ran, whether its spawn returned 0, the flow it
 * was spawned into (0: a weft_join half, checked by its caller) and the
 * context value it must see (var NULL: no check). */
typedef struct job {
    atomic_int   runs;
    atomic_int   accepted;
    atomic_long  tag;
    _Atomic(const weft_ctx_var *) var;
    _Atomic(void *) expect;
    _Atomic(void *) data;
} job;
enum { MAX_JOBS = 24000 };
static job        jobs[MAX_JOBS];
static atomic_int jobs_used;
static atomic_long next_tag; /* never reset: a stale slot cannot match */

static weft_ctx_var *var_a; /* created under failure injection (stage vars) */
static weft_ctx_var *var_b; /* set on NO_CTX workers; lifetime hooks */
static atomic_long var_b_retains, var_b_releases;

static void var_b_retain(void *v)
{
    (void)v;
    atomic_fetch_add_explicit(&var_b_retains, 1, memory_order_relaxed);
}

static void var_b_release(void *v)
{
    (void)v;
    atomic_fetch_add_explicit(&var_b_releases, 1, memory_order_relaxed);
}
static weft_ctx_var *var_c; /* set around async closes; lifetime hooks */
static atomic_long var_c_retains, var_c_releases;

static void var_c_retain(void *v)
{
    (void)v;
    atomic_fetch_add_explicit(&var_c_retains, 1, memory_order_relaxed);
}

static void var_c_release(void *v)
{
    (void)v;
    atomic_fetch_add_explicit(&var_c_releases, 1, memory_order_relaxed);
}
static int tag_c_thread, tag_c_task, tag_c_done;
static int var_a_initial, tag_key, tag_thread, tag_task, tag_nested, tag_run, tag_worker[2];

static job *job_new(long tag, const weft_ctx_var *var, void *expect, void *data)
{
    int i = atomic_fetch_add_explicit(&jobs_used, 1, memory_order_relaxed);
    FA_REQUIRE(i < MAX_JOBS);
    job *j = &jobs[i];
    atomic_store_explicit(&j->runs, 0, memory_order_relaxed);
    atomic_store_explicit(&j->accepted, 0, memory_order_relaxed);
    atomic_store_explicit(&j->var, var, memory_order_relaxed);
    atomic_store_explicit(&j->expect, expect, memory_order_relaxed);
    atomic_store_explicit(&j->data, data, memory_order_relaxed);
    atomic_store_explicit(&j->tag, tag, memory_order_relaxed);
    return j;
}

static void job_ran(job *j)
{
    atomic_fetch_add_explicit(&j->runs, 1, memory_order_relaxed);
    const weft_ctx_var *var = atomic_load_explicit(&j->var, memory_order_relaxed);
    if (var) {
        void *want = atomic_load_explicit(&j->expect, memory_order_relaxed);
        void *got = weft_ctx_get(var);
        if (got != want)
            violation("ctx-value", "a task saw %p, its spawner's context had %p", got, want);
    }
}

static int task_count(void *arg)
{
    job_ran(arg);
    return 0;
}

/* A flow with the tag its jobs carry and the first job slot it may own. */
typedef struct tflow {
    weft_flow   f;
    long        tag;
    int         first_job;
    const char *what;
} tflow;

static bool tf_open(tflow *t, weft_pool *pool, const char *what)
{
    t->tag = atomic_fetch_add_explicit(&next_tag, 1, memory_order_relaxed) + 1;
    t->first_job = atomic_load_explicit(&jobs_used, memory_order_relaxed);
    t->what = what;
    fa_mark m = fa_now();
    int rc = weft_flow_open(&t->f, pool);
    check_rc(what, rc, m);
    return rc == 0;
}

static int tf_spawn(tflow *t, weft_fn fn, job *j)
{
    fa_mark m = fa_now();
    int rc = weft_spawn(&t->f, fn, j);
    if (rc == 0)
        atomic_store_explicit(&j->accepted, 1, memory_order_relaxed);
    else
        check_rc("weft_spawn", rc, m);
    return rc;
}

/* Every job of the flow: ran once if its spawn returned 0, else never. */
static void check_jobs(long tag, int from, const char *what)
{
    int used = atomic_load_explicit(&jobs_used, memory_order_relaxed);
    for (int i = from; i < used; i++) {
        job *j = &jobs[i];
        if (atomic_load_explicit(&j->tag, memory_order_relaxed) != tag)
            continue;
        int runs = atomic_load_explicit(&j->runs, memory_order_relaxed);
        int accepted = atomic_load_explicit(&j->accepted, memory_order_relaxed);
        if (runs != accepted)
            violation("exactly-once", "%s: a task whose spawn %s ran %d times", what,
                      accepted ? "returned 0" : "failed", runs);
    }
}

static void tf_close(tflow *t)
{
    int rc = weft_flow_close(&t->f);
    if (rc != 0)
        violation("close-error", "%s: weft_flow_close returned %d", t->what, rc);
    check_jobs(t->tag, t->first_job, t->what);
}

/* weft_ctx_set's outcome: the new value, or on ENOMEM the old one. */
static void check_set(const char *what, weft_ctx_var *var, int rc, fa_mark m, void *before,
                      void *want)
{
    check_rc(what, rc, m);
    void *now = weft_ctx_get(var);
    if (rc == 0 && now != want)
        violation("ctx-set", "%s returned 0 but the variable reads %p, not %p", what, now, want);
    if (rc != 0 && now != before)
        violation("ctx-set", "%s failed but the variable changed from %p to %p", what, before,
                  now);
}

static void *set_and_check(const char *what, weft_ctx_var *var, void *value)
{
    void *before = weft_ctx_get(var);
    fa_mark m = fa_now();
    int rc = weft_ctx_set(var, value);
    check_set(what, var, rc, m, before, value);
    return weft_ctx_get(var);
}

/* weft_join of two counting halves: all or nothing. */
static int join_check(const char *what)
{
    job *a = job_new(0, NULL, NULL, NULL), *b = job_new(0, NULL, NULL, NULL);
    fa_mark m = fa_now();
    int rc = weft_join(task_count, a, task_count, b);
    int ra = atomic_load_explicit(&a->runs, memory_order_relaxed);
    int rb = atomic_load_explicit(&b->runs, memory_order_relaxed);
    if (rc == 0) {
        if (ra != 1 || rb != 1)
            violation("join-runs", "%s returned 0; its halves ran %d and %d times", what, ra, rb);
        return 0;
    }
    check_rc(what, rc, m);
    if (ra > 1 || rb > 1)
        violation("join-runs", "%s returned %d; its halves ran %d and %d times", what, rc, ra,
                  rb);
    else if (ra + rb == 1)
        violation("join-partial", "%s returned %d after running one half (a %d, b %d)", what,
                  rc, ra, rb);
    else if (ra + rb == 2)
        violation("join-partial", "%s returned %d after running both halves", what, rc);
    return rc;
}

/* weft_for over [0, FOR_N): every index once, or (on an error) none. */
enum { FOR_N = 512, MAX_COVERS = 8 };
typedef struct cover {
    atomic_uchar hits[FOR_N];
} cover;
static cover      covers[MAX_COVERS];
static atomic_int covers_used;

static void cover_range(size_t begin, size_t end, void *arg)
{
    cover *c = arg;
    for (size_t i = begin; i < end; i++)
        atomic_fetch_add_explicit(&c->hits[i], 1, memory_order_relaxed);
}

static void for_check(weft_pool *pool, const char *what)
{
    int k = atomic_fetch_add_explicit(&covers_used, 1, memory_order_relaxed);
    FA_REQUIRE(k < MAX_COVERS);
    cover *c = &covers[k];
    for (int i = 0; i < FOR_N; i++)
        atomic_store_explicit(&c->hits[i], 0, memory_order_relaxed);
    fa_mark m = fa_now();
    int rc = weft_for(pool, 0, FOR_N, 0, cover_range, c);
    int once = 0, more = 0;
    for (int i = 0; i < FOR_N; i++) {
        int h = atomic_load_explicit(&c->hits[i], memory_order_relaxed);
        once += h == 1;
        more += h > 1;
    }
    if (more)
        violation("for-runs", "%s: %d indices ran more than once", what, more);
    if (rc == 0 && once != FOR_N)
        violation("for-runs", "%s returned 0 but only %d of %d indices ran", what, once, FOR_N);
    if (rc != 0) {
        check_rc(what, rc, m);
        if (once)
            violation("for-partial", "%s returned %d after running %d of %d indices", what, rc,
                      once, FOR_N);
    }
}

/* weft_flow_close_async: the flow and its done's record, in static slots
 * (a task's flow must outlive the task). */
typedef struct aflow {
    tflow       t;
    atomic_int  accepted; /* close_async returned 0 */
    atomic_int  runs;     /* done ran (release) */
    atomic_int  result;
    _Atomic(void *) want_c; /* var_c in the closer's context */
} aflow;
enum { MAX_AFLOWS = 8 };
static aflow       aflows[MAX_AFLOWS];
static atomic_int  aflows_used;
static atomic_long close_async_allocs; /* counted calls made inside close_async */

static void on_done(void *arg, int rc)
{
    aflow *a = arg;
    atomic_store_explicit(&a->result, rc, memory_order_relaxed);
    void *want = atomic_load_explicit(&a->want_c, memory_order_relaxed);
    if (weft_ctx_get(var_c) != want)
        violation("ctx-value", "done saw var_c %p, its closer had %p", weft_ctx_get(var_c), want);
    set_and_check("weft_ctx_set in done", var_c, &tag_c_done);
    atomic_fetch_add_explicit(&a->runs, 1, memory_order_release);
}

/* Opens a flow on pool, spawns into it and async-closes it; on an error the
 * flow must still be open: closed here. NULL if no flow was opened. */
static aflow *async_flow(weft_pool *pool, const char *what)
{
    int k = atomic_fetch_add_explicit(&aflows_used, 1, memory_order_relaxed);
    FA_REQUIRE(k < MAX_AFLOWS);
    aflow *a = &aflows[k];
    atomic_store_explicit(&a->accepted, 0, memory_order_relaxed);
    atomic_store_explicit(&a->runs, 0, memory_order_relaxed);
    atomic_store_explicit(&a->result, -1, memory_order_relaxed);
    if (!tf_open(&a->t, pool, what))
        return NULL;
    void *c = weft_ctx_get(var_c);
    atomic_store_explicit(&a->want_c, c, memory_order_relaxed);
    for (int i = 0; i < 10; i++)
        tf_spawn(&a->t, task_count, job_new(a->t.tag, var_c, c, NULL));
    fa_mark m = fa_now();
    long calls = fa_calls_here;
    int rc = weft_flow_close_async(&a->t.f, on_done, a);
    atomic_fetch_add_explicit(&close_async_allocs, fa_calls_here - calls, memory_order_relaxed);
    if (rc == 0) {
        atomic_store_explicit(&a->accepted, 1, memory_order_relaxed);
        return a;
    }
    check_rc("weft_flow_close_async", rc, m);
    if (atomic_load_explicit(&a->runs, memory_order_relaxed))
        violation("async-done", "%s: weft_flow_close_async returned %d, but done ran", what, rc);
    tf_close(&a->t); /* it stays open on an error */
    return a;
}

/* done ran once with 0 and every task of the flow once; or, if the call
 * failed, never. */
static void async_check(aflow *a)
{
    int runs = atomic_load_explicit(&a->runs, memory_order_acquire);
    int accepted = atomic_load_explicit(&a->accepted, memory_order_relaxed);
    if (runs != accepted)
        violation("async-done", "%s: close_async %s, done ran %d times", a->t.what,
                  accepted ? "returned 0" : "failed", runs);
    if (accepted && runs) {
        int rc = atomic_load_explicit(&a->result, memory_order_relaxed);
        if (rc != 0)
            violation("async-result", "%s: done's result %d", a->t.what, rc);
        check_jobs(a->t.tag, a->t.first_job, a->t.what);
    }
}

/* ---- the scenario -------------------------------------------------------- */

typedef struct env {
    weft_pool *one;   /* 1 worker, named "fa-one" */
    weft_pool *noctx; /* 2 workers, WEFT_POOL_NO_CTX, no name ("weft") */
    weft_pool *three; /* 3 workers, named "fa-three" */
} env;
static env envp; /* set before the tasks that read it are spawned */
static unsigned default_workers;

/* n tasks that wait for each other: each worker of an n-worker pool runs
 * one (so all of them have started), and checks its stack guard. */
typedef struct barrier {
    atomic_int  arrived;
    int         n;
    const char *pool;
} barrier;

static int task_barrier(void *arg)
{
    job *j = arg;
    job_ran(j);
    barrier *b = atomic_load_explicit(&j->data, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel);
    if (!wait_at_least(&b->arrived, b->n, long_wait_s()))
        violation("barrier", "pool %s: only %d of its %d workers ran a task", b->pool,
                  atomic_load_explicit(&b->arrived, memory_order_relaxed), b->n);
    ws_worker *w = ws_self;
    if (!w)
        violation("barrier", "pool %s: a task ran off a worker", b->pool);
    else if (w->nest_limit == 0)
        violation("stack-guard", "pool %s: worker %u runs without a stack guard (nest_limit 0)",
                  b->pool, w->index);
    return 0;
}

static void every_worker_check(weft_pool *p, const char *name)
{
    barrier b = {.n = (int)weft_pool_workers(p), .pool = name};
    atomic_init(&b.arrived, 0);
    tflow f;
    if (!tf_open(&f, p, "weft_flow_open from main"))
        return;
    for (int i = 0; i < b.n; i++)
        tf_spawn(&f, task_barrier, job_new(f.tag, NULL, NULL, &b));
    tf_close(&f);
}

/* A task that holds its worker until the gate opens. */
typedef struct gate {
    atomic_int arrived, open;
} gate;

static int task_gate(void *arg)
{
    job *j = arg;
    job_ran(j);
    gate *g = atomic_load_explicit(&j->data, memory_order_relaxed);
    atomic_fetch_add_explicit(&g->arrived, 1, memory_order_acq_rel);
    if (!wait_at_least(&g->open, 1, long_wait_s()))
        violation("gate", "a gate task waited %.0f s for its gate", long_wait_s());
    return 0;
}

/* Blocks every worker of p with a gate task of f; false if not all came. */
static bool close_gate(tflow *f, weft_pool *p, gate *g)
{
    int n = (int)weft_pool_workers(p), spawned = 0;
    for (int i = 0; i < n; i++)
        spawned += tf_spawn(f, task_gate, job_new(f->tag, NULL, NULL, g)) == 0;
    if (!wait_at_least(&g->arrived, spawned, long_wait_s())) {
        violation("gate", "only %d of %d gate tasks started",
                  atomic_load_explicit(&g->arrived, memory_order_relaxed), spawned);
        return false;
    }
    return spawned == n;
}

static weft_pool *make_pool(unsigned workers, unsigned flags, const char *name,
                            const char *prefix, int threads_left)
{
    weft_pool *p = (weft_pool *)&envp; /* must come back NULL on failure */
    weft_pool_config cfg = {.workers = workers, .flags = flags, .name = name};
    fa_mark m = fa_now();
    int rc = weft_pool_create(&p, &cfg);
    if (rc == 0) {
        if (!p || weft_pool_workers(p) != workers) {
            violation("pool-create", "weft_pool_create returned 0 with pool %p", (void *)p);
            return NULL;
        }
        every_worker_check(p, prefix);
        return p;
    }
    check_rc("weft_pool_create", rc, m);
    if (p != NULL)
        violation("pool-create", "a failed weft_pool_create left *pool %p, not NULL", (void *)p);
    int left = wait_threads_named(prefix, threads_left);
    if (left != threads_left)
        violation("threads-left", "a failed weft_pool_create left %d threads named %s*",
                  left - threads_left, prefix);
    return NULL;
}

static void destroy_pool(weft_pool *p, const char *prefix, int threads_left)
{
    if (!p)
        return;
    int rc = weft_pool_destroy(p);
    if (rc != 0) {
        violation("destroy", "weft_pool_destroy returned %d", rc);
        return;
    }
    int left = wait_threads_named(prefix, threads_left);
    if (left != threads_left)
        violation("threads-left", "weft_pool_destroy left %d threads named %s*",
                  left - threads_left, prefix);
}

typedef struct expect_ctx {
    weft_ctx_var *var;
    void         *value;
} expect_ctx;

static int fn_expect_ctx(void *arg)
{
    expect_ctx *e = arg;
    void *got = weft_ctx_get(e->var);
    if (got != e->value)
        violation("ctx-value", "weft_ctx_run's function saw %p, the snapshot had %p", got,
                  e->value);
    return 42;
}

/* Capture, run in the snapshot, release; fn must see want. */
static void capture_run_check(const char *what, weft_fn fn, void *arg, weft_ctx_var *var,
                              void *want)
{
    fa_mark m = fa_now();
    weft_ctx *snap = weft_ctx_capture();
    if (!snap) {
        if (!fa_injected_since(m))
            violation("ctx-capture", "%s: weft_ctx_capture returned NULL with memory to spare",
                      what);
        return;
    }
    int rc = weft_ctx_run(snap, fn, arg);
    if (rc != 42)
        violation("ctx-run", "%s: weft_ctx_run returned %d, its function 42", what, rc);
    if (weft_ctx_get(var) != want)
        violation("ctx-run", "%s: weft_ctx_run left the context changed", what);
    weft_ctx_release(snap);
}

/* A child of a nested flow: sets, opens its own flow, spawns, closes. */
static int task_nested(void *arg)
{
    job_ran(arg);
    void *mine = set_and_check("weft_ctx_set in a nested task", var_a, &tag_nested);
    tflow f;
    if (tf_open(&f, NULL, "weft_flow_open in a nested task")) {
        for (int i = 0; i < 10; i++)
            tf_spawn(&f, task_count, job_new(f.tag, var_a, mine, NULL));
        tf_close(&f);
    }
    return 0;
}

/* On the 3-worker pool: the task-side API, one call after another. */
static int task_worker_mix(void *arg)
{
    job_ran(arg);
    void *mine = set_and_check("weft_ctx_set in a task", var_a, &tag_task);
    tflow f;
    if (tf_open(&f, NULL, "weft_flow_open in a task")) {
        for (int i = 0; i < 20; i++)
            tf_spawn(&f, task_count, job_new(f.tag, var_a, mine, NULL));
        tf_spawn(&f, task_nested, job_new(f.tag, var_a, mine, NULL));
        tf_close(&f);
    }
    join_check("weft_join on a worker");
    for_check(NULL, "weft_for on the worker's own pool");
    if (envp.noctx)
        for_check(envp.noctx, "weft_for from a task onto another pool");
    expect_ctx e = {var_a, mine};
    capture_run_check("in a task", fn_expect_ctx, &e, var_a, mine);
    /* Return before their dones: the outer flow's close waits for them. */
    set_and_check("weft_ctx_set of var_c in a task", var_c, &tag_c_task);
    async_flow(NULL, "close_async in a task");
    if (envp.one)
        async_flow(envp.one, "close_async in a task, onto another pool");
    return 0;
}

/* On a NO_CTX pool a set changes the worker thread's own context. */
static int task_set_on_worker(void *arg)
{
    job *j = arg;
    job_ran(j);
    set_and_check("weft_ctx_set on a NO_CTX worker", var_b,
                  atomic_load_explicit(&j->data, memory_order_relaxed));
    return 0;
}

/* On the 1-worker pool (no thieves, so the deque only grows): 5000 spawns
 * into a nested flow; the join and the weft_for come when the deque is
 * full (its first array holds 1024; a private detail, the test only
 * exercises growth less precisely if it changes). */
enum { DEQUE_BURST = 5000 };
static int task_deque_burst(void *arg)
{
    job_ran(arg);
    tflow f;
    if (!tf_open(&f, NULL, "weft_flow_open in the burst task"))
        return 0;
    for (int i = 0; i < DEQUE_BURST; i++) {
        if (i == 1024)
            join_check("weft_join on a full deque");
        if (i == 2048)
            for_check(NULL, "weft_for on a full deque");
        tf_spawn(&f, task_count, job_new(f.tag, NULL, NULL, NULL));
    }
    tf_close(&f);
    return 0;
}

/* From one external thread into one flow while every worker waits at the
 * gate: the ring (4096 cells) fills, the rest goes to the overflow list. */
enum { RING_BURST = 5200, RING_CELLS = 4096 };
static void ring_burst(weft_pool *p, void *mine)
{
    gate g;
    atomic_init(&g.arrived, 0);
    atomic_init(&g.open, 0);
    tflow f;
    if (!tf_open(&f, p, "weft_flow_open from a thread"))
        return;
    close_gate(&f, p, &g);
    for (int i = 0; i < RING_BURST; i++)
        tf_spawn(&f, task_count, job_new(f.tag, i % 256 == 0 ? var_a : NULL, mine, NULL));
    atomic_store_explicit(&g.open, 1, memory_order_release);
    tf_close(&f);
}

static int fn_in_ctx(void *arg)
{
    void *outer = arg;
    if (weft_ctx_get(var_a) != outer)
        violation("ctx-value", "weft_ctx_run's function does not see the snapshot");
    void *inner = set_and_check("weft_ctx_set inside weft_ctx_run", var_a, &tag_run);
    tflow f;
    if (envp.one && tf_open(&f, envp.one, "weft_flow_open inside weft_ctx_run")) {
        for (int i = 0; i < 10; i++)
            tf_spawn(&f, task_count, job_new(f.tag, var_a, inner, NULL));
        tf_close(&f);
    }
    return 42;
}

static void *external_thread_main(void *unused)
{
    (void)unused;
    void *mine = set_and_check("weft_ctx_set on a thread", var_a, &tag_thread);
    set_and_check("weft_ctx_set of var_c on a thread", var_c, &tag_c_thread);
    if (envp.three) {
        aflow *a = async_flow(envp.three, "close_async from a thread");
        if (a && atomic_load_explicit(&a->accepted, memory_order_relaxed) &&
            !wait_at_least(&a->runs, 1, long_wait_s()))
            violation("async-done", "done of a close_async from a thread did not run in %.0f s",
                      long_wait_s());
        if (a)
            async_check(a);
    }
    if (envp.three)
        ring_burst(envp.three, mine);
    tflow f;
    if (envp.one && tf_open(&f, envp.one, "weft_flow_open from a thread")) {
        tf_spawn(&f, task_deque_burst, job_new(f.tag, NULL, NULL, NULL));
        tf_close(&f);
    }
    capture_run_check("on a thread", fn_in_ctx, mine, var_a, mine);
    return NULL; /* the thread's context is freed at its exit */
}

typedef struct join_thread_arg {
    atomic_int done;
} join_thread_arg;

static void *join_thread_main(void *arg)
{
    join_thread_arg *a = arg;
    join_check("weft_join off a worker");
    atomic_store_explicit(&a->done, 1, memory_order_release);
    return NULL;
}

/* White-box: the items waiting in d's leased submission rings other than
 * the one flow f leased. */
static uint64_t ring_items_besides(weft_pool *d, weft_flow *f)
{
    struct weft_pool *p = (struct weft_pool *)d;
    const wq_ring *mine = ((ws_flow *)(void *)f)->ring;
    uint64_t m = atomic_load_explicit(&p->rings_leased, memory_order_acquire), n = 0;
    while (m) {
        unsigned i = (unsigned)__builtin_ctzll(m);
        m &= m - 1;
        wq_ring *r = atomic_load_explicit(&p->rings[i], memory_order_acquire);
        if (r && r != mine)
            n += atomic_load_explicit(&r->tail, memory_order_acquire) -
                 atomic_load_explicit(&r->head, memory_order_acquire);
    }
    return n;
}

/* weft_join off a worker, on the default pool while a gate holds its
 * workers and a flow fills the injection queue: its flow leases a
 * submission ring (the first time: an allocation), or, with none to be
 * had, its spawns take the injection queue's allocations. */
static void default_pool_join(void)
{
    weft_pool *d = weft_default_pool(); /* made before round 0: no allocation */
    if (!d) {
        violation("default-pool", "weft_default_pool returned NULL after it was created");
        return;
    }
    gate g;
    atomic_init(&g.arrived, 0);
    atomic_init(&g.open, 0);
    tflow f;
    if (!tf_open(&f, d, "weft_flow_open on the default pool"))
        return;
    close_gate(&f, d, &g);
    for (int i = 0; i < RING_CELLS; i++)
        tf_spawn(&f, task_count, job_new(f.tag, NULL, NULL, NULL));
    long calls0 = atomic_load_explicit(&fa_calls, memory_order_relaxed);
    join_thread_arg ja;
    atomic_init(&ja.done, 0);
    pthread_t t = start_own_thread(join_thread_main, &ja);
    /* Open the gate once the join has made its two spawns: into a ring of
     * its own (seen there), or into the injection queue (two allocation
     * calls at least), or it gave up (done). */
    double end = now_s() + 2;
    while (!atomic_load_explicit(&ja.done, memory_order_acquire) &&
           atomic_load_explicit(&fa_calls, memory_order_relaxed) < calls0 + 2 &&
           ring_items_besides(d, &f.f) < 2 && now_s() < end)
        sleep_us(50);
    atomic_store_explicit(&g.open, 1, memory_order_release);
    tf_close(&f);
    FA_REQUIRE(pthread_join(t, NULL) == 0);
}

static void scenario(void)
{
    int unnamed_left = (int)default_workers; /* the default pool's "weft-N" */
    envp.one = make_pool(1, 0, "fa-one", "fa-one", 0);
    envp.noctx = make_pool(2, WEFT_POOL_NO_CTX, NULL, "weft-", unnamed_left);
    envp.three = make_pool(3, 0, "fa-three", "fa-three", 0);

    tflow f;
    if (envp.three && tf_open(&f, envp.three, "weft_flow_open from main")) {
        int from = atomic_load_explicit(&aflows_used, memory_order_relaxed);
        tf_spawn(&f, task_worker_mix, job_new(f.tag, NULL, NULL, NULL));
        for (int i = 0; i < 50; i++)
            tf_spawn(&f, task_count, job_new(f.tag, NULL, NULL, NULL));
        tf_close(&f);
        /* The flows its task async-closed are done by now. */
        int to = atomic_load_explicit(&aflows_used, memory_order_relaxed);
        for (int i = from; i < to; i++)
            async_check(&aflows[i]);
    }
    if (envp.noctx && tf_open(&f, envp.noctx, "weft_flow_open from main")) {
        for (int i = 0; i < 2; i++)
            tf_spawn(&f, task_set_on_worker, job_new(f.tag, NULL, NULL, &tag_worker[i]));
        for (int i = 0; i < 20; i++)
            tf_spawn(&f, task_count, job_new(f.tag, NULL, NULL, NULL));
        tf_close(&f);
    }
    FA_REQUIRE(pthread_join(start_own_thread(external_thread_main, NULL), NULL) == 0);
    default_pool_join();

    destroy_pool(envp.one, "fa-one", 0);
    destroy_pool(envp.noctx, "weft-", unnamed_left);
    destroy_pool(envp.three, "fa-three", 0);
    envp = (env){0};
}

/* One round: arm, run the scenario, disarm, check every job. Returns the
 * number of calls counted. */
static long run_round(long n, bool persist, int target_site)
{
    atomic_store_explicit(&cur_n, n, memory_order_relaxed);
    atomic_store_explicit(&cur_persist, persist, memory_order_relaxed);
    ROUND(n);
    atomic_store_explicit(&jobs_used, 0, memory_order_relaxed);
    atomic_store_explicit(&covers_used, 0, memory_order_relaxed);
    atomic_store_explicit(&aflows_used, 0, memory_order_relaxed);
    atomic_store_explicit(&round_began_us, (long)(now_s() * 1e6), memory_order_relaxed);
    atomic_store_explicit(&fa_target_site, target_site, memory_order_relaxed);
    atomic_store_explicit(&cur_site, target_site, memory_order_relaxed);
    fa_arm(n, persist, false);
    scenario();
    fa_disarm();
    atomic_store_explicit(&round_began_us, 0, memory_order_relaxed);
    int used = atomic_load_explicit(&jobs_used, memory_order_relaxed);
    for (int i = 0; i < used; i++) {
        job *j = &jobs[i];
        if (atomic_load_explicit(&j->tag, memory_order_relaxed) == 0)
            continue; /* join halves: checked by join_check */
        int runs = atomic_load_explicit(&j->runs, memory_order_relaxed);
        if (runs != atomic_load_explicit(&j->accepted, memory_order_relaxed))
            violation("exactly-once", "at the end of the round a task ran %d times", runs);
    }
    /* Relaxed: the hooks ran on workers that destroy_pool joined. */
    long rt = atomic_load_explicit(&var_b_retains, memory_order_relaxed);
    long rl = atomic_load_explicit(&var_b_releases, memory_order_relaxed);
    if (rt != rl)
        violation("ctx-hooks", "var_b retained %ld times, released %ld", rt, rl);
    /* var_c: the external thread exited, the dones' contexts went before
     * their pools could be destroyed. */
    rt = atomic_load_explicit(&var_c_retains, memory_order_relaxed);
    rl = atomic_load_explicit(&var_c_releases, memory_order_relaxed);
    if (rt != rl)
        violation("ctx-hooks", "var_c retained %ld times, released %ld", rt, rl);
    int na = atomic_load_explicit(&aflows_used, memory_order_relaxed);
    for (int i = 0; i < na; i++)
        async_check(&aflows[i]);
    atomic_store_explicit(&cur_n, -1, memory_order_relaxed);
    atomic_store_explicit(&cur_site, 0, memory_order_relaxed);
    return atomic_load_explicit(&fa_calls, memory_order_relaxed);
}

/* ---- the one-time stages ------------------------------------------------- */

/* Runs op with its kth counted call failing, k = 1, 2, ... until a run
 * with no failure injected (op made fewer than k calls). */
static void stage(const char *name, void (*op)(void), bool only_me)
{
    STAGE(name);
    for (long k = 1;; k++) {
        ROUND(k);
        fa_arm(k, false, only_me);
        op();
        if (!fa_disarm())
            break;
        FA_REQUIRE(k < 100);
    }
}

/* Variables live forever: the failed creates must free what they took. */
static void op_var_create(void)
{
    weft_ctx_var *v = NULL;
    fa_mark m = fa_now();
    int rc = weft_ctx_var_create(&v, "fault-alloc-var", &var_a_initial);
    check_rc("weft_ctx_var_create", rc, m);
    if (rc == 0) {
        if (!v || weft_ctx_get(v) != &var_a_initial)
            violation("ctx-var", "weft_ctx_var_create returned 0 with a bad variable");
        else if (!var_a)
            var_a = v;
    }
}

/* A fresh thread's first set: a context, and the library's thread-exit key
 * (pthread_key_create, once); a failure of either must not stick. */
static void *key_thread_main(void *unused)
{
    (void)unused;
    set_and_check("the first weft_ctx_set on a thread", var_a, &tag_key);
    return NULL;
}

static void op_first_thread_set(void)
{
    FA_REQUIRE(pthread_join(start_own_thread(key_thread_main, NULL), NULL) == 0);
}

/* weft_join off a worker creates the default pool; a failed creation
 * returns its error with neither half run, and is retried next time. */
static void op_default_pool(void)
{
    join_check("weft_join creating the default pool");
}

/* ---- main ---------------------------------------------------------------- */

static void print_sites(void)
{
    for (int i = 0; i < FA_MAX_SITES; i++) {
        uintptr_t a = atomic_load_explicit(&fa_sites[i].addr, memory_order_relaxed);
        if (!a)
            break;
        Dl_info info;
        uintptr_t off = a;
        if (dladdr((void *)a, &info) && info.dli_fbase)
            off = a - (uintptr_t)info.dli_fbase;
        printf("  site %2d: %-18s calls %6ld, failed %4ld  (addr2line -f -e fault_alloc 0x%lx)\n",
               i, fa_kind_name[atomic_load_explicit(&fa_sites[i].kind, memory_order_relaxed)],
               atomic_load_explicit(&fa_sites[i].calls, memory_order_relaxed),
               atomic_load_explicit(&fa_sites[i].failed, memory_order_relaxed),
               (unsigned long)(off - 1));
    }
}

static int finish(double t0)
{
    printf("fault_alloc: %.1f s\n", now_s() - t0);
    printf("close_async allocation calls (calling thread, all rounds): %ld\n",
           atomic_load_explicit(&close_async_allocs, memory_order_relaxed));
    print_sites();
    pthread_mutex_lock(&violations_lock);
    int kinds = nviolation_kinds;
    for (int i = 0; i < kinds; i++)
        fprintf(stderr, "fault_alloc: %ld violation(s) of %s, first in %s\n",
                violations[i].count, violations[i].kind, violations[i].first);
    pthread_mutex_unlock(&violations_lock);
    fflush(stdout);
    if (kinds) {
        fprintf(stderr, "fault_alloc: FAILED\n");
        return 1;
    }
    printf("fault_alloc: ok\n");
    return 0;
}

/* Under sampling, whether call n of round 0 is the inside of a run of
 * calls from one site that the stride skips. */
static bool skipped_by_stride(long n, long calls, long stride)
{
    if (stride <= 1 || n <= 1 || n >= calls || n + 1 >= FA_SEQ_MAX || n % stride == 0)
        return false;
    short s = atomic_load_explicit(&fa_seq[n], memory_order_relaxed);
    return s == atomic_load_explicit(&fa_seq[n - 1], memory_order_relaxed) &&
           s == atomic_load_explicit(&fa_seq[n + 1], memory_order_relaxed);
}

int main(void)
{
    double t0 = now_s();
    watchdog_start(TEST_TSAN ? 760 : 380);
    install_death_notes();
    static double stall_limit;
    stall_limit = TEST_SANITIZED ? 120 : 40;
    pthread_detach(start_own_thread(stall_check_main, &stall_limit));
    unsetenv("WEFT_WORKERS"); /* the default pool gets the CPUs */

    const char *replay = getenv("FAULT_ALLOC_N");
    const char *stride_env = getenv("FAULT_ALLOC_STRIDE");
    /* Sampled where each round is slow: under TSan, and under an emulator. */
    bool slow = TEST_TSAN || test_env_flag("WEFT_UNDER_EMULATOR");
    long stride = stride_env && *stride_env ? atol(stride_env) : slow ? 8 : 1;

    stage("vars", op_var_create, true);
    FA_REQUIRE(var_a != NULL);
    static const weft_ctx_var_ops var_b_ops = {var_b_retain, var_b_release};
    FA_REQUIRE(weft_ctx_var_create_ops(&var_b, NULL, NULL, &var_b_ops) == 0);
    static const weft_ctx_var_ops var_c_ops = {var_c_retain, var_c_release};
    FA_REQUIRE(weft_ctx_var_create_ops(&var_c, "fa-c", NULL, &var_c_ops) == 0);
    stage("first set on a thread", op_first_thread_set, false);
    stage("default pool", op_default_pool, true);
    weft_pool *d = weft_default_pool();
    FA_REQUIRE(d != NULL);
    default_workers = weft_pool_workers(d);
    every_worker_check(d, "default");
    printf("one-time stages done (%.1f s)\n", now_s() - t0);

    STAGE("round 0");
    if (replay && *replay) {
        long n = atol(replay);
        bool persist = strchr(replay, '+') != NULL;
        STAGE(persist ? "replay, persistent" : "replay");
        long calls = run_round(n, persist, 0);
        printf("replayed N=%ld%s: %ld calls\n", n, persist ? "+" : "", calls);
        return finish(t0);
    }

    atomic_store_explicit(&fa_recording, 1, memory_order_relaxed);
    long calls = run_round(0, false, 0);
    atomic_store_explicit(&fa_recording, 0, memory_order_relaxed);
    FA_REQUIRE(calls > 0 && calls < FA_SEQ_MAX);
    printf("injection points: %ld (", calls);
    for (int k = 0; k < FA_NKINDS; k++) {
        long c = atomic_load_explicit(&fa_kind_calls[k], memory_order_relaxed);
        if (c)
            printf(" %s %ld", fa_kind_name[k], c);
    }
    printf(" )\n");

    STAGE("single failure");
    double t1 = now_s();
    long rounds = 0, missed = 0;
    for (long n = 1; n <= calls; n++) {
        if (skipped_by_stride(n, calls, stride))
            continue;
        run_round(n, false, 0);
        rounds++;
        if (!atomic_load_explicit(&fa_injected, memory_order_relaxed))
            missed++; /* this round made fewer calls than round 0 */
        if (rounds % 200 == 0)
            printf("  ... %ld rounds, N=%ld (%.1f s)\n", rounds, n, now_s() - t1);
    }
    printf("single failure: %ld rounds (stride %ld in runs of one site), %ld with fewer calls "
           "than N, %.1f s\n",
           rounds, stride, missed, now_s() - t1);

    STAGE("persistent failure");
    t1 = now_s();
    long samples = (long)(64 * test_scale_with(0.25, 0.5));
    if (samples < 8)
        samples = 8;
    long prounds = 0;
    for (long i = 0; i < samples; i++) {
        long n = 1 + i * calls / samples;
        run_round(n, true, 0);
        prounds++;
    }
    printf("persistent failure: %ld rounds, %.1f s\n", prounds, now_s() - t1);

    /* Sites nondeterminism kept from failing: one round each. */
    STAGE("site fill-in");
    int filled = 0, never = 0;
    for (int i = 0; i < FA_MAX_SITES; i++) {
        if (!atomic_load_explicit(&fa_sites[i].addr, memory_order_relaxed))
            break;
        if (atomic_load_explicit(&fa_sites[i].failed, memory_order_relaxed))
            continue;
        run_round(0, false, i + 1);
        filled++;
        if (!atomic_load_explicit(&fa_sites[i].failed, memory_order_relaxed)) {
            never++;
            printf("  site %d (%s) was reached but never failed\n", i,
                   fa_kind_name[atomic_load_explicit(&fa_sites[i].kind, memory_order_relaxed)]);
        }
    }
    printf("site fill-in: %d rounds, %d sites never failed\n", filled, never);
    return finish(t0);
}
