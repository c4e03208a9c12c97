/* DPDK's side of the in-process mempool A/B (scripts/compare/mempool_ab): its EAL, its
 * pools, and the measured loop of DPDK 22.11's mempool_perf_autotest
 * (app/test/test_mempool_perf.c, test_loop), compiled here so that DPDK's inline
 * get/put are inlined into the loop exactly as in dpdk-test. */
#include <stdint.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_mempool.h>

#include "../mempool_loop.h"

int ab_eal_init(int argc, char **argv)
{
	return rte_eal_init(argc, argv);
}

/* A pool as the autotest makes it: n objects of elt_size bytes, a per-lcore cache of
 * cache_size objects (0: none), on the default (ring_mp_mc) backend. */
void *ab_pool_new(const char *name, unsigned n, unsigned elt_size, unsigned cache_size)
{
	return rte_mempool_create(name, n, elt_size, cache_size, 0, NULL, NULL, NULL, NULL,
				  SOCKET_ID_ANY, 0);
}

unsigned ab_pool_avail(void *mp)
{
	return rte_mempool_avail_count(mp);
}

/* A user-owned cache of RTE_MEMPOOL_CACHE_MAX_SIZE objects, for threads that are not
 * DPDK lcores (the A/B threads); NULL for a pool without cache, as the default cache
 * the autotest asks for would be. */
void *ab_cache_new(void *mp)
{
	struct rte_mempool *m = mp;
	if (m->cache_size == 0)
		return NULL;
	return rte_mempool_cache_create(RTE_MEMPOOL_CACHE_MAX_SIZE, SOCKET_ID_ANY);
}

void ab_cache_free(void *c, void *mp)
{
	if (c != NULL) {
		rte_mempool_cache_flush(c, mp);
		rte_mempool_cache_free(c);
	}
}

static __rte_noinline int
round_var(struct rte_mempool *mp, struct rte_mempool_cache *c, void **tbl, unsigned keep,
	  unsigned gb, unsigned pb)
{
	return fp_round(mp, c, tbl, keep, gb, pb);
}

#define ROUND_C(B)                                                                      \
	static __rte_noinline int round_c##B(struct rte_mempool *mp,                     \
					     struct rte_mempool_cache *c, void **tbl,    \
					     unsigned keep)                              \
	{                                                                                \
		return fp_round(mp, c, tbl, keep, B, B);                                  \
	}
ROUND_C(1)
ROUND_C(4)
ROUND_C(8)
ROUND_C(32)

/* Whole rounds until `cycles` TSC cycles have passed; objects moved, or -1 if a get
 * failed. *elapsed: the TSC cycles the rounds took (the last round ends past `cycles`).
 * constant: bulk sizes as compile-time constants (gb == pb in 1, 4, 8, 32). */
int64_t ab_run(void *mp, void *cache, unsigned keep, unsigned gb, unsigned pb, int constant,
	       uint64_t cycles, uint64_t *elapsed)
{
	/* Cache-line aligned, as ours (workload.rs Table); the ABI alone gives 16. */
	void *tbl[MAX_KEEP] __rte_cache_aligned;
	int64_t n = 0;
	uint64_t t0 = rte_rdtsc();
	while (rte_rdtsc() - t0 < cycles) {
		int r;
		if (constant && gb == pb && gb == 1)
			r = round_c1(mp, cache, tbl, keep);
		else if (constant && gb == pb && gb == 4)
			r = round_c4(mp, cache, tbl, keep);
		else if (constant && gb == pb && gb == 8)
			r = round_c8(mp, cache, tbl, keep);
		else if (constant && gb == pb && gb == 32)
			r = round_c32(mp, cache, tbl, keep);
		else
			r = round_var(mp, cache, tbl, keep, gb, pb);
		if (r < 0)
			return -1;
		n += N;
	}
	*elapsed = rte_rdtsc() - t0;
	return n;
}
