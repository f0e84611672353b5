/*
 * smpcpus: threads of one process on two CPUs. Thread 0 pins itself to
 * CPU 0 with sched_setaffinity(0, ...); the main thread pins thread 1 to
 * CPU 1 by its thread id while thread 1 spins. Each thread then waits
 * until getcpu names its CPU and reports that CPU three ways: getcpu,
 * field 39 (processor) of its /proc/thread-self/stat, and its
 * sched_getaffinity mask. Then the errnos of bad affinity and getcpu
 * calls (raw syscalls: the libc wrappers rewrite results).
 *
 * Needs two CPUs: with one, pinning to CPU 1 is EINVAL and the output
 * differs, so the test runs it at --smp 2 (the host has two or more).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "errname.h"

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

static long setaff(pid_t tid, size_t len, const void *mask)
{
	return syscall(SYS_sched_setaffinity, tid, len, mask);
}

static long getaff(pid_t tid, size_t len, void *mask)
{
	return syscall(SYS_sched_getaffinity, tid, len, mask);
}

static int getcpu_(void)
{
	unsigned cpu = ~0u, node = ~0u;
	if (syscall(SYS_getcpu, &cpu, &node, NULL) != 0)
		return -1;
	return (int)cpu;
}

/* Field 39 (processor) of /proc/thread-self/stat, -1 if unreadable. */
static int stat_processor(void)
{
	char buf[1024];
	FILE *f = fopen("/proc/thread-self/stat", "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	/* Field 3 (state) is the first after ") ". */
	int field = 2;
	char *save;
	/* strtok_r: both threads parse at once (strtok's state is shared). */
	for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (++field == 39)
			return atoi(tok);
	}
	return -1;
}

struct report {
	long set;	/* sched_setaffinity's result: 0 or -errno */
	int cpu;	/* getcpu once it named the wanted CPU, else the last */
	int stat_cpu;	/* field 39 then */
	unsigned long mask; /* sched_getaffinity's first word */
};

static struct report reports[2];
static atomic_int tid1, pinned1, done1;

static void settle(int want, struct report *r)
{
	/* A thread moves at its next switch: give it a few. */
	for (int i = 0; i < 1000 && (r->cpu = getcpu_()) != want; i++)
		sched_yield();
	r->stat_cpu = stat_processor();
	unsigned long m[16] = { 0 };
	if (getaff(0, sizeof m, m) > 0)
		r->mask = m[0];
}

static void *thread0(void *arg)
{
	(void)arg;
	unsigned long one = 1;
	reports[0].set = setaff(0, sizeof one, &one) == 0 ? 0 : -errno;
	settle(0, &reports[0]);
	return NULL;
}

static void *thread1(void *arg)
{
	(void)arg;
	atomic_store(&tid1, (int)syscall(SYS_gettid));
	/* Spin (running, or preempted and queued) until the main thread
	 * has changed this thread's affinity. */
	while (!atomic_load(&pinned1))
		;
	settle(1, &reports[1]);
	atomic_store(&done1, 1);
	return NULL;
}

int main(void)
{
	printf("smpcpus: start\n");
	pthread_t t0, t1;
	pthread_create(&t1, NULL, thread1, NULL);
	while (!atomic_load(&tid1))
		;
	unsigned long two = 2;
	reports[1].set = setaff(atomic_load(&tid1), sizeof two, &two) == 0 ? 0 : -errno;
	atomic_store(&pinned1, 1);
	pthread_create(&t0, NULL, thread0, NULL);
	pthread_join(t0, NULL);
	pthread_join(t1, NULL);
	for (int i = 0; i < 2; i++) {
		struct report *r = &reports[i];
		printf("thread %d: sched_setaffinity to CPU %d: %s\n", i, i,
		       r->set == 0 ? "0" : errname((int)-r->set));
		printf("thread %d: getcpu: CPU %d\n", i, r->cpu);
		printf("thread %d: /proc/thread-self/stat processor: %d\n", i, r->stat_cpu);
		printf("thread %d: sched_getaffinity: %#lx\n", i, r->mask);
	}
	printf("threads ran on two CPUs: %s\n",
	       yes(reports[0].cpu == 0 && reports[1].cpu == 1));

	/* The main thread may use every CPU; both are in its mask. */
	unsigned long m[16] = { 0 };
	long n = getaff(0, sizeof m, m);
	printf("main: sched_getaffinity returns a whole number of longs: %s\n",
	       yes(n > 0 && n % 8 == 0));
	printf("main: CPUs 0 and 1 in its mask: %s\n", yes((m[0] & 3) == 3));

	unsigned long zero = 0, cpu63 = 1ul << 63, one = 1;
	printf("setaffinity, empty mask: %s\n", err(setaff(0, sizeof zero, &zero)));
	printf("setaffinity, only a CPU that does not exist: %s\n",
	       err(setaff(0, sizeof cpu63, &cpu63)));
	printf("setaffinity, length 0: %s\n", err(setaff(0, 0, &one)));
	printf("setaffinity, bad pointer: %s\n", err(setaff(0, sizeof one, (void *)8)));
	printf("setaffinity, no such thread: %s\n", err(setaff(-1, sizeof one, &one)));
	printf("getaffinity, length 4: %s\n", err(getaff(0, 4, m)));
	printf("getaffinity, length 12: %s\n", err(getaff(0, 12, m)));
	printf("getaffinity, bad pointer: %s\n", err(getaff(0, sizeof m, (void *)8)));
	printf("getaffinity, no such thread: %s\n", err(getaff(-1, sizeof m, m)));
	unsigned c;
	printf("getcpu, null pointers: %s\n", err(syscall(SYS_getcpu, NULL, NULL, NULL)));
	printf("getcpu, bad pointer: %s\n", err(syscall(SYS_getcpu, (void *)8, NULL, NULL)));
	printf("getcpu, CPU in range: %s\n",
	       yes(syscall(SYS_getcpu, &c, NULL, NULL) == 0 && c < 64));
	printf("smpcpus: done\n");
	return 0;
}
