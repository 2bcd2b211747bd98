/* cc -O2 -I include -I BUILD/include rt.c BUILD/libweft.a -lpthread -o rt; ./rt WORKERS GAP_NS [SAMPLES]
 * Wake-up and round trip of one external task: after a gap (workers asleep)
 * or back to back, the time from the spawn to the task's start, and to the
 * close's return; medians and p90 over the samples, in microseconds. */
#define _GNU_SOURCE
#include <weft.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static int64_t now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
static int task(void *p){ *(int64_t*)p = now(); return 0;}
static int cmp(const void*a,const void*b){double x=*(const double*)a,y=*(const double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){ unsigned w=atoi(argv[1]); long gap=atol(argv[2]); int n=argc>3?atoi(argv[3]):400;
  weft_pool *p; weft_pool_config cfg={0}; cfg.workers=w; if(weft_pool_create(&p,&cfg)) abort();
  double *st=malloc(n*sizeof(double)), *rt=malloc(n*sizeof(double));
  for(int i=0;i<n;i++){ if(gap){struct timespec g={0,gap}; nanosleep(&g,0);}
    weft_flow f; if(weft_flow_open(&f,p)) abort(); int64_t s=0, t0=now();
    if(weft_spawn(&f,task,&s)) abort(); if(weft_flow_close(&f)) abort(); int64_t t1=now();
    st[i]=(s-t0)/1e3; rt[i]=(t1-t0)/1e3; }
  qsort(st,n,sizeof(double),cmp); qsort(rt,n,sizeof(double),cmp);
  printf("%u %ld start %.1f %.1f roundtrip %.1f %.1f\n", w, gap, st[n/2], st[n*9/10], rt[n/2], rt[n*9/10]);
  weft_pool_destroy(p); return 0;}
