/* ext_rounds.c: one external thread, N tiny tasks into one flow on a pool
 * of W workers, R rounds, each round's spawn loop and close timed.
 * cc -O2 -I include -I BUILD/include ext_rounds.c BUILD/libweft.a -lpthread
 * ./a.out [N=200000] [W=1] [R=10] */
#include <weft.h>
#include <stdlib.h>
#include <stdio.h>
#include <time.h>
static int tiny(void *p){ unsigned long *s=p; *s = *s*3+1; return 0;}
static double now(void){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){ size_t n=argc>1?atol(argv[1]):200000; unsigned w=argc>2?atoi(argv[2]):1; int R=argc>3?atoi(argv[3]):10;
  weft_pool *p; weft_pool_config cfg={0}; cfg.workers=w; if(weft_pool_create(&p,&cfg)) abort();
  unsigned long *s=calloc(n,8);
  for (int r=0;r<R;r++){ double t0=now(); weft_flow f; if (weft_flow_open(&f,p)) abort();
  for(size_t i=0;i<n;i++) if (weft_spawn(&f,tiny,&s[i])) abort();
  double t1=now();
  if (weft_flow_close(&f)) abort(); double t2=now();
  printf("%.2f ms (spawn %.2f close %.2f)\n",(t2-t0)*1e3,(t1-t0)*1e3,(t2-t1)*1e3); }
  weft_pool_destroy(p); return 0;}
