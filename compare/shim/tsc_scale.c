/* LD_PRELOAD shim for dpdk-test's mempool_perf_autotest, whose cases last a fixed 5
 * "seconds" of rte_get_tsc_hz() cycles: reporting the TSC frequency times FP_TSC_SCALE
 * makes each case last 5 * FP_TSC_SCALE real seconds. Nothing else is changed; the tool
 * divides DPDK's printed rates by the same factor. Built by ferroplane-compare with cc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

uint64_t rte_get_tsc_hz(void)
{
	static uint64_t (*real)(void);
	if (!real)
		real = (uint64_t (*)(void))dlsym(RTLD_NEXT, "rte_get_tsc_hz");
	const char *s = getenv("FP_TSC_SCALE");
	double k = s ? atof(s) : 1.0;
	return (uint64_t)((double)real() * k);
}
