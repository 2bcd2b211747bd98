#include <weft.h>
#include <stdlib.h>
#include <stdio.h>
static int tiny(void *p){ unsigned long *s=p; *s = *s*3+1; return 0;}
int main(int argc,char**argv){ size_t n=argc>1?atol(argv[1]):200000; unsigned w=argc>2?atoi(argv[2]):1;
  weft_pool *p; weft_pool_config cfg={0}; cfg.workers=w; if(weft_pool_create(&p,&cfg)) abort();
  unsigned long *s=calloc(n,8);
  for (int r=0;r<2;r++){ weft_flow f; if (weft_flow_open(&f,p)) abort();
  for(size_t i=0;i<n;i++) if (weft_spawn(&f,tiny,&s[i])) abort();
  if (weft_flow_close(&f)) abort(); }
  weft_pool_destroy(p); return 0;}
