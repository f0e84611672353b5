/*
 * threadbench: the cost of threads and futexes.
 *
 * - create+join: pthread_create of a thread that returns at once, then
 *   pthread_join (clone(CLONE_THREAD), the thread's exit with its
 *   CLONE_CHILD_CLEARTID futex wake, the joiner's FUTEX_WAIT);
 * - futex ping-pong: two threads hand a token back and forth through one
 *   word each, with raw FUTEX_WAIT / FUTEX_WAKE (one round = two
 *   hand-overs, each a wake and a sleep);
 * - sched_yield between two threads.
 *
 * Prints microseconds per operation (CLOCK_MONOTONIC), median of 5 runs.
 *
 *   musl-gcc -static -O2 -o threadbench tests/programs/bench/threadbench.c
 *   ./threadbench                                  # the host
 *   cargo run --release -- --init ./threadbench    # this kernel (QEMU)
 *   scripts/bench-vs-linux.sh --icount --program threadbench  # and Linux
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RUNS 5
/* <linux/futex.h> is not in musl-gcc's include path. */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_PRIVATE_FLAG 128

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v)
{
	qsort(v, RUNS, sizeof *v, cmp);
	return v[RUNS / 2];
}

static void *nothing(void *arg)
{
	return arg;
}

static double create_join(int n)
{
	double t0 = now_us();
	for (int i = 0; i < n; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, nothing, NULL) != 0) {
			printf("pthread_create failed\n");
			exit(1);
		}
		pthread_join(t, NULL);
	}
	return (now_us() - t0) / n;
}

static int ping, pong;
static int rounds;

static long futex(int *uaddr, int op, int val)
{
	return syscall(SYS_futex, uaddr, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

/* Waits until *w == want, then sets *o = want and wakes its waiter. */
static void hand(int *w, int *o, int want)
{
	while (__atomic_load_n(w, __ATOMIC_ACQUIRE) != want)
		futex(w, FUTEX_WAIT, want - 1);
	__atomic_store_n(o, want, __ATOMIC_RELEASE);
	futex(o, FUTEX_WAKE, 1);
}

static void *ponger(void *arg)
{
	(void)arg;
	for (int i = 1; i <= rounds; i++)
		hand(&ping, &pong, i);
	return NULL;
}

static double ping_pong(int n)
{
	ping = pong = 0;
	rounds = n;
	pthread_t t;
	pthread_create(&t, NULL, ponger, NULL);
	double t0 = now_us();
	for (int i = 1; i <= n; i++) {
		__atomic_store_n(&ping, i, __ATOMIC_RELEASE);
		futex(&ping, FUTEX_WAKE, 1);
		while (__atomic_load_n(&pong, __ATOMIC_ACQUIRE) != i)
			futex(&pong, FUTEX_WAIT, i - 1);
	}
	double us = (now_us() - t0) / n;
	pthread_join(t, NULL);
	return us;
}

static volatile int yield_stop;

static void *yielder(void *arg)
{
	(void)arg;
	while (!yield_stop)
		sched_yield();
	return NULL;
}

static double yields(int n)
{
	yield_stop = 0;
	pthread_t t;
	pthread_create(&t, NULL, yielder, NULL);
	double t0 = now_us();
	for (int i = 0; i < n; i++)
		sched_yield();
	double us = (now_us() - t0) / n;
	yield_stop = 1;
	pthread_join(t, NULL);
	return us;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	double v[RUNS];
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("threadbench: %d iterations, median of %d runs\n", n, RUNS);
	for (int r = 0; r < RUNS; r++)
		v[r] = create_join(n);
	printf("create+join      %10.2f us\n", median(v));
	for (int r = 0; r < RUNS; r++)
		v[r] = ping_pong(n);
	printf("futex ping-pong  %10.2f us/round\n", median(v));
	for (int r = 0; r < RUNS; r++)
		v[r] = yields(n);
	printf("sched_yield      %10.2f us\n", median(v));
	printf("threadbench: done\n");
	return 0;
}
