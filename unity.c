/*
 * unity.c — the whole library as one translation unit. Every internal
 * (ws_, wq_, wctx_) symbol is then defined and used in one object, which
 * lets the build make them all local in libweft.a (objcopy
 * --localize-hidden), as visibility already does in libweft.so: a user's
 * program sees weft_* and nothing else. Each file still compiles alone.
 */
#include "queue/deque.c"
#include "queue/inject.c"
#include "ctx/ctx.c"
#include "sched/pool.c"
#include "sched/park.c"
#include "sched/flow.c"
#include "sched/join.c"
#include "sched/for.c"
#include "sched/version.c"
#include "sched/stats.c"
#include "sched/trace.c"
