/*
 * idle_load: how an idle pool behaves between bursts. One pool of W
 * workers; 20 bursts of 2,000 tiny tasks from the main thread, each
 * followed by a 100 ms sleep. Prints the process CPU used during the
 * sleeps (CPU-s per second of gap: the workers' idle cost, the main
 * thread sleeps), spin time per park, parks, and the process's voluntary
 * and involuntary context switches.
 * cc -O2 -I include -I BUILD/include idle_load.c BUILD/libweft.a -lpthread
 * ./a.out WORKERS
 */
#define _GNU_SOURCE
#include <weft.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/resource.h>
static double cpu_s(void){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec/1e9;}
static int tiny(void *p){(void)p;return 0;}
int main(int argc,char**argv){
  unsigned w=argc>1?atoi(argv[1]):2; enum{BURSTS=20,TASKS=2000};
  weft_pool *p; weft_pool_config c={0}; c.workers=w; if(weft_pool_create(&p,&c)) abort();
  double gap_cpu=0; struct timespec gap={0,100000000};
  weft_stats a,b; weft_pool_stats(p,-1,&a); struct rusage r0,r1; getrusage(RUSAGE_SELF,&r0);
  for(int i=0;i<BURSTS;i++){
    weft_flow f; if(weft_flow_open(&f,p)) abort();
    for(int k=0;k<TASKS;k++) if(weft_spawn(&f,tiny,NULL)) abort();
    if(weft_flow_close(&f)) abort();
    double c0=cpu_s(); nanosleep(&gap,NULL); gap_cpu+=cpu_s()-c0;
  }
  weft_pool_stats(p,-1,&b); getrusage(RUSAGE_SELF,&r1);
  unsigned long parks=b.parks-a.parks;
  printf("workers %u idle %.4f CPU-s/s spin/park %.1f us parks %lu nvcsw %ld nivcsw %ld\n", w,
    gap_cpu/(BURSTS*0.1), parks?(b.spin_ns-a.spin_ns)/1e3/parks:0.0, parks,
    r1.ru_nvcsw-r0.ru_nvcsw, r1.ru_nivcsw-r0.ru_nivcsw);
  weft_pool_destroy(p); return 0;}
