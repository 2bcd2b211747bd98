/* pp.c: the round trip of one cache line between CPU 0 and CPU 1 (two
 * threads, pinned, taking turns incrementing one word): 1,000,000 round
 * trips. cc -O2 pp.c -o pp -lpthread; ./pp */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <time.h>
#include <sched.h>
static _Alignas(64) _Atomic long a; 
static void pin(int c){cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);pthread_setaffinity_np(pthread_self(),sizeof s,&s);}
static void *t(void*x){pin(1);for(long i=1;i<2000000;i+=2){while(atomic_load_explicit(&a,memory_order_acquire)!=i);atomic_store_explicit(&a,i+1,memory_order_release);}return 0;}
int main(){pthread_t th;pthread_create(&th,0,t,0);pin(0);struct timespec t0,t1;clock_gettime(CLOCK_MONOTONIC,&t0);
for(long i=0;i<2000000;i+=2){while(atomic_load_explicit(&a,memory_order_acquire)!=i);atomic_store_explicit(&a,i+1,memory_order_release);}
clock_gettime(CLOCK_MONOTONIC,&t1);pthread_join(th,0);printf("%.0f ns/roundtrip\n",((t1.tv_sec-t0.tv_sec)*1e9+(t1.tv_nsec-t0.tv_nsec))/1e6);}
