/* One case of DPDK's mempool_perf_autotest on DPDK's own mempool, for the paired
 * comparison in scripts/compare/mempool_paired.sh (dpdk-test runs all 720 cases in a fixed
 * order and cannot be asked for one).
 *
 * Same pool and loop as DPDK 22.11 app/test/test_mempool_perf.c: a pool of
 * lcores * (MAX_KEEP + RTE_MEMPOOL_CACHE_MAX_SIZE) - 1 objects of 2048 bytes, with a
 * per-lcore cache of RTE_MEMPOOL_CACHE_MAX_SIZE or none; every lcore of the case gets
 * n_keep objects in calls of n_get_bulk and puts them back in calls of n_put_bulk,
 * N = 65536 objects per round, for `secs` seconds; the rate is all lcores' objects per
 * second. "constant n" calls get/put with the bulk sizes as compile-time constants
 * (1, 4 and 32 here), as DPDK's test does with its inlined loop.
 *
 * usage: mempool_case <EAL args> -- CACHE(0|1) CORES KEEP GET PUT SECS
 * prints: const=0 rate_persec=R  and  const=1 rate_persec=R (const=1 only if GET == PUT
 * and it is 1, 4 or 32).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_mempool.h>

#include "mempool_loop.h"

static struct rte_mempool *mp;
static unsigned keep, gbulk, pbulk, use_const, cores;
static double secs;
static volatile int go;
static uint64_t counts[RTE_MAX_LCORE];

static __rte_always_inline int
round_n(struct rte_mempool_cache *c, void **tbl, unsigned gb, unsigned pb)
{
	return fp_round(mp, c, tbl, keep, gb, pb);
}

static __rte_noinline int round_var(struct rte_mempool_cache *c, void **tbl)
{
	return round_n(c, tbl, gbulk, pbulk);
}
static __rte_noinline int round_c1(struct rte_mempool_cache *c, void **tbl) { return round_n(c, tbl, 1, 1); }
static __rte_noinline int round_c4(struct rte_mempool_cache *c, void **tbl) { return round_n(c, tbl, 4, 4); }
static __rte_noinline int round_c32(struct rte_mempool_cache *c, void **tbl) { return round_n(c, tbl, 32, 32); }

static int worker(void *arg)
{
	(void)arg;
	void *tbl[MAX_KEEP];
	struct rte_mempool_cache *c = rte_mempool_default_cache(mp, rte_lcore_id());
	int (*fn)(struct rte_mempool_cache *, void **) = round_var;
	if (use_const)
		fn = gbulk == 1 ? round_c1 : gbulk == 4 ? round_c4 : round_c32;
	while (!go)
		rte_pause();
	uint64_t hz = rte_get_timer_hz(), t0 = rte_get_timer_cycles(), n = 0;
	while (rte_get_timer_cycles() - t0 < (uint64_t)(hz * secs)) {
		if (fn(c, tbl) < 0)
			return -1;
		n += N;
	}
	counts[rte_lcore_id()] = n;
	return 0;
}

static int run(void)
{
	unsigned lc, launched = 0;
	memset(counts, 0, sizeof(counts));
	go = 0;
	RTE_LCORE_FOREACH_WORKER(lc) {
		if (launched + 1 >= cores)
			break;
		if (rte_eal_remote_launch(worker, NULL, lc) != 0)
			return -1;
		launched++;
	}
	go = 1;
	int ret = worker(NULL);
	RTE_LCORE_FOREACH_WORKER(lc) {
		if (rte_eal_wait_lcore(lc) < 0)
			ret = -1;
	}
	if (ret < 0 || rte_mempool_avail_count(mp) != mp->size)
		return -1;
	uint64_t t = 0;
	for (unsigned i = 0; i < RTE_MAX_LCORE; i++)
		t += counts[i];
	printf("const=%u rate_persec=%.0f\n", use_const, t / secs);
	return 0;
}

int main(int argc, char **argv)
{
	int r = rte_eal_init(argc, argv);
	if (r < 0) {
		fprintf(stderr, "mempool_case: rte_eal_init failed\n");
		return 1;
	}
	argc -= r;
	argv += r;
	if (argc != 7) {
		fprintf(stderr, "usage: mempool_case <EAL args> -- CACHE(0|1) CORES KEEP GET PUT SECS\n");
		return 2;
	}
	unsigned cache_on = atoi(argv[1]);
	cores = atoi(argv[2]);
	keep = atoi(argv[3]);
	gbulk = atoi(argv[4]);
	pbulk = atoi(argv[5]);
	secs = atof(argv[6]);
	if (cores < 1 || cores > rte_lcore_count() || keep < 1 || keep > MAX_KEEP || gbulk < 1 ||
	    pbulk < 1 || keep % gbulk || keep % pbulk || !(secs > 0)) {
		fprintf(stderr, "mempool_case: bad case arguments\n");
		return 2;
	}
	unsigned size = rte_lcore_count() * (MAX_KEEP + RTE_MEMPOOL_CACHE_MAX_SIZE) - 1;
	mp = rte_mempool_create("case", size, 2048, cache_on ? RTE_MEMPOOL_CACHE_MAX_SIZE : 0, 0,
				NULL, NULL, NULL, NULL, SOCKET_ID_ANY, 0);
	if (mp == NULL) {
		fprintf(stderr, "mempool_case: rte_mempool_create failed\n");
		return 1;
	}
	use_const = 0;
	if (run() < 0)
		return 1;
	if (gbulk == pbulk && (gbulk == 1 || gbulk == 4 || gbulk == 32)) {
		use_const = 1;
		if (run() < 0)
			return 1;
	}
	rte_mempool_free(mp);
	rte_eal_cleanup();
	return 0;
}
