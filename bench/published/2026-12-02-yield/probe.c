/*
 * weft probe: one pool of W workers, T external threads each opening a flow and
 * spawning 1,000,000/T tiny tasks into it, then closing it; per round: total M/s,
 * each producer's spawn loop, close and CPU time, and the pool's counters.
 * cc -O2 -I include -I BUILD/include probe.c BUILD/libweft.a -lpthread -o probe
 * ./probe WORKERS THREADS [ROUNDS]
 * The first round of a run touches fresh memory: read the others.
 */
#define _GNU_SOURCE
#include <weft.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
static double now(clockid_t c){struct timespec t;clock_gettime(c,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
static int tiny(void *p){ uint64_t *s=p; *s = *s*3+1; return 0;}
typedef struct { weft_pool *p; uint64_t *s; size_t n; double spawn_ms, close_ms, cpu_ms; } job;
static void *sub(void *a){ job *j=a; weft_flow f; double c0=now(CLOCK_THREAD_CPUTIME_ID), t0=now(CLOCK_MONOTONIC);
  if (weft_flow_open(&f,j->p)) abort();
  for(size_t i=0;i<j->n;i++) if (weft_spawn(&f,tiny,&j->s[i])) abort();
  double t1=now(CLOCK_MONOTONIC);
  if (weft_flow_close(&f)) abort();
  double t2=now(CLOCK_MONOTONIC);
  j->spawn_ms=t1-t0; j->close_ms=t2-t1; j->cpu_ms=now(CLOCK_THREAD_CPUTIME_ID)-c0; return NULL;}
int main(int argc,char**argv){ unsigned w=atoi(argv[1]), th=atoi(argv[2]); int rounds=argc>3?atoi(argv[3]):10; size_t n=1000000;
  weft_pool *p; weft_pool_config cfg={0}; cfg.workers=w; if(weft_pool_create(&p,&cfg)) abort();
  uint64_t *s=calloc(n,8);
  for(int r=0;r<rounds;r++){ weft_stats a,b; weft_pool_stats(p,-1,&a); job J[8]; pthread_t t[8];
    double t0=now(CLOCK_MONOTONIC);
    for(unsigned i=0;i<th;i++){J[i]=(job){p,s+i*(n/th),n/th}; pthread_create(&t[i],0,sub,&J[i]);}
    for(unsigned i=0;i<th;i++) pthread_join(t[i],0);
    double t1=now(CLOCK_MONOTONIC); weft_pool_stats(p,-1,&b);
    double sp=0,cl=0,cpu=0; for(unsigned i=0;i<th;i++){sp+=J[i].spawn_ms;cl+=J[i].close_ms;cpu+=J[i].cpu_ms;}
    printf("%6.1f M/s total %.1f ms | per producer: spawn %.1f close %.1f cpu %.1f ms | parks %lu wakeups %lu parked %.1f ms spin %.1f ms injected %lu\n",
      n/(t1-t0)/1e3, t1-t0, sp/th, cl/th, cpu/th, b.parks-a.parks, b.wakeups-a.wakeups,(b.parked_ns-a.parked_ns)/1e6,(b.spin_ns-a.spin_ns)/1e6,b.injected-a.injected);}
  weft_pool_destroy(p); return 0;}
