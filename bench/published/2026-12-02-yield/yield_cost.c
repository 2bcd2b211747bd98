/* The cost of one sched_yield with nothing else to run, and of 32 pauses
 * (the idle round before 7fb10b2): cc -O2 yield_cost.c -o y; ./y */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
int main(){ for(int k=0;k<3;k++){ double t0=now(); for(int i=0;i<100000;i++) sched_yield(); double t1=now();
 for(int i=0;i<100000;i++) for(int j=0;j<32;j++) __builtin_ia32_pause(); double t2=now();
 printf("yield %.0f ns, 32 pauses %.0f ns\n",(t1-t0)/1e5,(t2-t1)/1e5);} }
