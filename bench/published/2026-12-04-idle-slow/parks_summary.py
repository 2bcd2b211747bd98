# parks_summary.py FILE: max and median M/s and parks per round of each build and worker count

import sys,statistics as st,collections
d=collections.defaultdict(list);pk=collections.defaultdict(list)
for l in (l for l in open(sys.argv[1]) if not l.startswith("#")):
    n,w,v,p=l.split(); d[(w,n)].append(float(v)); pk[(w,n)].append(int(p))
for k in sorted(d): print("workers %s %-5s max %5.1f median %5.1f M/s (n=%d)  parks/round median %s mean %.1f max %d"%(k[0],k[1],max(d[k]),st.median(d[k]),len(d[k]),st.median(pk[k]),st.mean(pk[k]),max(pk[k])))
