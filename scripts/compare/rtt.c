/* Cache-line round trip between two CPUs, for the compare scripts' run labels.
 *
 * usage: rtt CPU_A CPU_B   prints the median of 5 bursts of 20 000 ping-pongs, in ns.
 *
 * On a VM the host decides where the vCPUs run; the two-core mempool and ring rates move
 * with this number (on the development VM: about 64 ns or about 340 ns, flipping on a
 * scale of minutes), for DPDK and Ferroplane alike. The scripts print it before and
 * after each side's run so a table says which placement each run had.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERS 20000
#define BURSTS 5
#define STOP UINT64_MAX

static _Atomic uint64_t flag;

static int pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	return pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

static void *echo(void *arg)
{
	if (pin(*(int *)arg) != 0) {
		atomic_store_explicit(&flag, STOP, memory_order_release);
		return (void *)1;
	}
	for (;;) {
		/* Acquire: pairs with the pinger's release. */
		uint64_t v = atomic_load_explicit(&flag, memory_order_acquire);
		if (v == STOP)
			return NULL;
		if (v & 1)
			/* Release: pairs with the pinger's acquire. */
			atomic_store_explicit(&flag, v + 1, memory_order_release);
	}
}

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	char *end;
	if (argc != 3) {
		fprintf(stderr, "usage: rtt CPU_A CPU_B\n");
		return 2;
	}
	int a = (int)strtol(argv[1], &end, 10);
	if (*end || a < 0) {
		fprintf(stderr, "rtt: invalid cpu '%s'\n", argv[1]);
		return 2;
	}
	int b = (int)strtol(argv[2], &end, 10);
	if (*end || b < 0 || b == a) {
		fprintf(stderr, "rtt: invalid cpu '%s' (a number other than the first)\n", argv[2]);
		return 2;
	}
	if (pin(a) != 0) {
		fprintf(stderr, "rtt: cannot pin to cpu %d\n", a);
		return 1;
	}
	pthread_t t;
	if (pthread_create(&t, NULL, echo, &b) != 0) {
		fprintf(stderr, "rtt: cannot start the echo thread\n");
		return 1;
	}
	double ns[BURSTS];
	uint64_t v = 0;
	int ok = 1;
	for (int i = 0; i < BURSTS && ok; i++) {
		double t0 = now_ns();
		for (int k = 0; k < ITERS && ok; k++) {
			/* Release: the echo thread's acquire load sees the odd value. */
			atomic_store_explicit(&flag, v + 1, memory_order_release);
			for (;;) {
				/* Acquire: pairs with the echo thread's release. */
				uint64_t f = atomic_load_explicit(&flag, memory_order_acquire);
				if (f == v + 2)
					break;
				if (f == STOP) {
					ok = 0;
					break;
				}
			}
			v += 2;
		}
		ns[i] = (now_ns() - t0) / ITERS;
	}
	atomic_store_explicit(&flag, STOP, memory_order_release);
	void *r;
	pthread_join(t, &r);
	if (!ok || r != NULL) {
		fprintf(stderr, "rtt: the echo thread could not pin to cpu %d\n", b);
		return 1;
	}
	qsort(ns, BURSTS, sizeof(ns[0]), cmp);
	printf("%.0f\n", ns[BURSTS / 2]);
	return 0;
}
