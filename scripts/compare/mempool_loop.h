/* The measured loop of DPDK 22.11's mempool_perf_autotest (app/test/test_mempool_perf.c,
 * test_loop), shared by mempool_case.c (mempool_paired.sh) and mempool_ab/shim.c
 * (mempool_ab.sh): N / keep cycles of "get keep objects in calls of gb, put them back in
 * calls of pb". Returns -1 if a get failed. */
#ifndef FP_MEMPOOL_LOOP_H
#define FP_MEMPOOL_LOOP_H

#include <rte_mempool.h>

#define N 65536
#define MAX_KEEP 512

static __rte_always_inline int
fp_round(struct rte_mempool *mp, struct rte_mempool_cache *c, void **tbl, unsigned keep,
	 unsigned gb, unsigned pb)
{
	for (unsigned i = 0; i < N / keep; i++) {
		for (unsigned idx = 0; idx < keep; idx += gb)
			if (rte_mempool_generic_get(mp, &tbl[idx], gb, c) < 0)
				return -1;
		for (unsigned idx = 0; idx < keep; idx += pb)
			rte_mempool_generic_put(mp, &tbl[idx], pb, c);
	}
	return 0;
}

#endif
