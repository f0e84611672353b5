/*
 * mmthreads: one address space under several threads at once.
 *
 * - parallel first touch: 4 threads fault in their quarters of one
 *   mapping together; every page holds what its thread wrote;
 * - MADV_DONTNEED racing faults: writers store and re-read their own
 *   words in pages that another thread zaps over and over; a read gives
 *   the value just written or zero, never anything else;
 * - munmap / mmap(MAP_FIXED) / mprotect / madvise of one range by
 *   different threads while others pass it to write() (the kernel reads
 *   it: success or EFAULT, never a crash) and a neighbour range in the
 *   same page tables keeps its contents;
 * - fork while threads write: the child sees the fork-time contents,
 *   the parent its threads' new writes (copy-on-write of pages written by
 *   several threads).
 *
 * Threads never touch memory that another thread may unmap (no signal
 * handlers are needed); they reach it only through system calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL
#define NTHREADS 4

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		printf("mmap failed: %s\n", strerror(errno));
		exit(1);
	}
	return p;
}

/* ---- parallel first touch ---- */

#define TOUCH_PAGES 1024
static unsigned char *touch_area;

static void *toucher(void *arg)
{
	long q = (long)arg;
	for (unsigned long i = q; i < TOUCH_PAGES; i += NTHREADS)
		for (unsigned long off = 0; off < PAGE; off += 512)
			touch_area[i * PAGE + off] = (unsigned char)(i * 7 + q);
	return NULL;
}

/* ---- MADV_DONTNEED racing faults ---- */

#define ZAP_PAGES 64
static volatile unsigned long *zap_area;
static volatile int zap_stop;
static long bad_reads;

static void *zap_writer(void *arg)
{
	long id = (long)arg;
	long bad = 0;
	for (unsigned long round = 1; round <= 3000; round++) {
		unsigned long page = (round * 13 + id * 5) % ZAP_PAGES;
		volatile unsigned long *w = zap_area + page * (PAGE / 8) + id;
		unsigned long v = (id << 32) | round;
		*w = v;
		unsigned long got = *w;
		if (got != v && got != 0)
			bad++;
	}
	__atomic_add_fetch(&bad_reads, bad, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *zapper(void *arg)
{
	(void)arg;
	long n = 0;
	while (!zap_stop) {
		madvise((void *)zap_area, ZAP_PAGES * PAGE, MADV_DONTNEED);
		if (++n % 16 == 0)
			sched_yield();
	}
	return NULL;
}

/* ---- munmap/mprotect/madvise vs uaccess ---- */

#define CHURN_PAGES 32
static unsigned char *churn; /* churned range, then a stable neighbour */
static volatile int churn_stop;
static long churn_ops;

static void *unmapper(void *arg)
{
	(void)arg;
	for (int i = 0; i < 400; i++) {
		munmap(churn, CHURN_PAGES * PAGE);
		void *p = mmap(churn, CHURN_PAGES * PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p != churn)
			return (void *)1L;
		if (i % 8 == 0)
			sched_yield();
	}
	return NULL;
}

static void *protector(void *arg)
{
	(void)arg;
	long n = 0;
	while (!churn_stop) {
		mprotect(churn + PAGE * (n % 8), 8 * PAGE, (n & 1) ? PROT_READ : PROT_READ | PROT_WRITE);
		madvise(churn + PAGE * (n % 16), 4 * PAGE, MADV_DONTNEED);
		n++;
	}
	__atomic_add_fetch(&churn_ops, n, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *copier(void *arg)
{
	(void)arg;
	long weird = 0;
	char buf[PAGE];
	int fds[2];
	if (pipe(fds) != 0)
		return (void *)1L;
	while (!churn_stop) {
		ssize_t r = write(fds[1], churn + PAGE * 3, PAGE);
		if (r < 0 && errno != EFAULT)
			weird++;
		if (r > 0 && read(fds[0], buf, r) != r)
			weird++;
	}
	close(fds[0]);
	close(fds[1]);
	return (void *)weird;
}

/* ---- fork while threads write ---- */

#define COW_PAGES 16
static volatile unsigned long *cow;
static pthread_barrier_t cow_go;

static void *cow_writer(void *arg)
{
	long id = (long)arg;
	for (int i = 0; i < COW_PAGES; i++)
		cow[i * (PAGE / 8) + id] = 1000 + id;
	pthread_barrier_wait(&cow_go); /* before fork */
	pthread_barrier_wait(&cow_go); /* after fork */
	for (int i = 0; i < COW_PAGES; i++)
		cow[i * (PAGE / 8) + id] = 2000 + id;
	return NULL;
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("mmthreads: start\n");
	pthread_t t[NTHREADS + 2];

	touch_area = map(TOUCH_PAGES * PAGE);
	for (long i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, toucher, (void *)i);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	int ok = 1;
	for (unsigned long i = 0; i < TOUCH_PAGES; i++)
		for (unsigned long off = 0; off < PAGE; off += 512)
			ok &= touch_area[i * PAGE + off] == (unsigned char)(i * 7 + i % NTHREADS);
	printf("parallel first touch of %d pages by %d threads: %s\n", TOUCH_PAGES, NTHREADS, yes(ok));
	munmap(touch_area, TOUCH_PAGES * PAGE);

	zap_area = map(ZAP_PAGES * PAGE);
	pthread_t z;
	pthread_create(&z, NULL, zapper, NULL);
	for (long i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, zap_writer, (void *)i);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	zap_stop = 1;
	pthread_join(z, NULL);
	printf("MADV_DONTNEED racing faults: reads give the value or zero: %s\n", yes(bad_reads == 0));
	munmap((void *)zap_area, ZAP_PAGES * PAGE);

	churn = map(2 * CHURN_PAGES * PAGE);
	unsigned char *stable = churn + CHURN_PAGES * PAGE;
	for (unsigned long i = 0; i < CHURN_PAGES * PAGE; i += 64)
		stable[i] = (unsigned char)(i / 64);
	pthread_create(&t[0], NULL, unmapper, NULL);
	pthread_create(&t[1], NULL, protector, NULL);
	pthread_create(&t[2], NULL, copier, NULL);
	pthread_create(&t[3], NULL, copier, NULL);
	void *unmapper_ret, *w1, *w2;
	pthread_join(t[0], &unmapper_ret);
	churn_stop = 1;
	pthread_join(t[1], NULL);
	pthread_join(t[2], &w1);
	pthread_join(t[3], &w2);
	ok = 1;
	for (unsigned long i = 0; i < CHURN_PAGES * PAGE; i += 64)
		ok &= stable[i] == (unsigned char)(i / 64);
	printf("munmap/mmap/mprotect/madvise vs write(): no odd result: %s\n",
	       yes(unmapper_ret == NULL && w1 == NULL && w2 == NULL));
	printf("neighbour range intact: %s\n", yes(ok));
	munmap(churn, 2 * CHURN_PAGES * PAGE);

	cow = map(COW_PAGES * PAGE);
	pthread_barrier_init(&cow_go, NULL, NTHREADS + 1);
	for (long i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, cow_writer, (void *)i);
	pthread_barrier_wait(&cow_go);
	pid_t pid = fork();
	if (pid == 0) {
		/* Give the parent's threads time to write, then check. */
		usleep(50000);
		int good = 1;
		for (int i = 0; i < COW_PAGES; i++)
			for (int id = 0; id < NTHREADS; id++)
				good &= cow[i * (PAGE / 8) + id] == 1000UL + id;
		for (int i = 0; i < COW_PAGES; i++)
			cow[i * (PAGE / 8)] = 3000;
		_exit(good ? 0 : 1);
	}
	pthread_barrier_wait(&cow_go);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	int status;
	waitpid(pid, &status, 0);
	printf("fork child sees the fork-time contents: %s\n",
	       yes(WIFEXITED(status) && WEXITSTATUS(status) == 0));
	ok = 1;
	for (int i = 0; i < COW_PAGES; i++)
		for (int id = 0; id < NTHREADS; id++)
			ok &= cow[i * (PAGE / 8) + id] == 2000UL + id;
	printf("parent sees its threads' writes after fork: %s\n", yes(ok));

	printf("mmthreads: done\n");
	return 0;
}
