/* A submitter whose one worker is stuck in a long task: the spawn loop's time
 * (every spawn past the ring's 4,096 spills), and the whole flow's. */
#define _GNU_SOURCE
#include <weft.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
static int tiny(void *p){ uint64_t *s=p; *s += 1; return 0;}
static int slow(void *p){ (void)p; usleep(300000); return 0;}
int main(void){ weft_pool *p; weft_pool_config cfg={0}; cfg.workers=1; if(weft_pool_create(&p,&cfg)) abort();
  size_t n=1000000; uint64_t *s=calloc(n,8);
  for(int r=0;r<5;r++){ weft_flow f; if(weft_flow_open(&f,p)) abort(); if(weft_spawn(&f,slow,0)) abort(); usleep(1000);
    double t0=now(); for(size_t i=0;i<n;i++) if(weft_spawn(&f,tiny,&s[i])) abort(); double t1=now();
    if(weft_flow_close(&f)) abort(); printf("spawn loop %.1f ms (workers stuck), flow %.1f ms\n",t1-t0,now()-t0);}
  weft_pool_destroy(p); return 0;}
