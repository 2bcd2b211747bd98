#include "sched/ws.h"
#include "test_common.h"
static int t(void *p){(void)p;return 0;}
int main(void){
  weft_pool *p; weft_pool_config c={.workers=1};
  CHECK_EQ(weft_pool_create(&p,&c),0);
  double tot=0,mx=0; int n=20;
  for(int i=0;i<n;i++){
    weft_flow f; CHECK_EQ(weft_flow_open(&f,p),0); CHECK_EQ(weft_spawn(&f,t,NULL),0); CHECK_EQ(weft_flow_close(&f),0);
    double t0=now_s();
    while(atomic_load(&p->park.sleepers)!=p->nworkers) sleep_us(20);
    double d=now_s()-t0; tot+=d; if(d>mx)mx=d;
  }
  printf("park latency mean %.2f ms max %.2f ms\n",tot/n*1e3,mx*1e3);
  weft_pool_destroy(p);
}
