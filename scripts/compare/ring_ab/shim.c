/* DPDK's ring operations are static inline; these wrappers give the A/B harness plain
 * symbols for them (one call per operation, as DPDK's mempool ring driver makes). */
#include <stdlib.h>
#include <rte_ring.h>

void *ab_dpdk_ring_new(unsigned count)
{
	ssize_t sz = rte_ring_get_memsize(count);
	if (sz < 0)
		return NULL;
	void *m = aligned_alloc(4096, ((size_t)sz + 4095) & ~(size_t)4095);
	if (m == NULL || rte_ring_init(m, "ab", count, 0) != 0)
		return NULL;
	return m;
}

unsigned ab_dpdk_enq(void *r, void *const *objs, unsigned n)
{
	return rte_ring_mp_enqueue_bulk(r, objs, n, NULL);
}

unsigned ab_dpdk_deq(void *r, void **objs, unsigned n)
{
	return rte_ring_mc_dequeue_bulk(r, objs, n, NULL);
}
