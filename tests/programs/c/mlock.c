/*
 * mlock: the mlock family against Linux. mlock, mlock2 (MLOCK_ONFAULT),
 * munlock, mlockall (MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT), munlockall,
 * MAP_LOCKED: their errnos, the VMAs they split and merge back
 * (/proc/self/maps lines), VmLck in /proc/self/status, and whether the
 * pages were faulted in by the call (ru_minflt of touching them after:
 * 0 when populated), including a fork child, which inherits no lock.
 * Only what any two kernels agree on is printed (no addresses, no
 * absolute sizes of the whole process).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errname.h"

#define PG 4096L
#define MLOCK_ONFAULT_ 1

static long status_kb(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(key);
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, key, n) && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

/* VMAs of /proc/self/maps that lie inside [lo, hi). */
static int vmas_in(char *lo, char *hi)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s >= (unsigned long)lo &&
		    e <= (unsigned long)hi)
			n++;
	}
	if (f)
		fclose(f);
	return n;
}

static long minflt(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* Page faults taken by writing one byte to each of n pages at p. */
static long touch(char *p, long n)
{
	long before = minflt();
	for (long i = 0; i < n; i++)
		((volatile char *)p)[i * PG] = 1;
	return minflt() - before;
}

int main(void)
{
	printf("mlock: start\n");
	/*
	 * 16 pages between two PROT_NONE guard pages: no neighbour merges
	 * with them, and nothing the C library maps lands next to them.
	 */
	char *g = mmap(NULL, 18 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mprotect(g, PG, PROT_NONE);
	mprotect(g + 17 * PG, PG, PROT_NONE);
	char *p = g + PG;
	char *end = p + 16 * PG;
	long lck0 = status_kb("VmLck");
	printf("VmLck at start: %ld kB\n", lck0);

	/* An unaligned start: pages 4, 5 and 6. */
	show("mlock pages 4-6", mlock(p + 4 * PG + 100, 2 * PG));
	printf("VmLck: +%ld kB, VMAs %d\n", status_kb("VmLck") - lck0, vmas_in(p, end));
	printf("faults touching pages 4-6: %ld\n", touch(p + 4 * PG, 3));
	printf("faults touching pages 0-1: %ld\n", touch(p, 2));
	show("munlock page 5", munlock(p + 5 * PG, PG));
	printf("VmLck: +%ld kB, VMAs %d\n", status_kb("VmLck") - lck0, vmas_in(p, end));
	show("munlock all 16", munlock(p, 16 * PG));
	printf("VmLck: +%ld kB, VMAs %d\n", status_kb("VmLck") - lck0, vmas_in(p, end));

	/* On fault: locked, not populated. */
	show("mlock2 ONFAULT pages 8-10", syscall(SYS_mlock2, p + 8 * PG, 3 * PG, MLOCK_ONFAULT_));
	printf("VmLck: +%ld kB, VMAs %d\n", status_kb("VmLck") - lck0, vmas_in(p, end));
	printf("faults touching pages 8-10: %ld\n", touch(p + 8 * PG, 3));
	show("mlock over it (populates the rest)", mlock(p + 8 * PG, 4 * PG));
	printf("faults touching page 11: %ld\n", touch(p + 11 * PG, 1));
	show("munlock", munlock(p, 16 * PG));

	/* Errors. */
	show("mlock2 bad flags", syscall(SYS_mlock2, p, PG, 2L));
	show("mlock length 0", mlock(p, 0));
	munmap(p + 12 * PG, PG);
	show("mlock across a hole", mlock(p + 10 * PG, 4 * PG));
	printf("VmLck after the failed mlock: +%ld kB\n", status_kb("VmLck") - lck0);
	show("munlock across a hole", munlock(p + 10 * PG, 4 * PG));
	show("mlock unmapped", mlock(p + 12 * PG, PG));
	show("mlock wrapping", syscall(SYS_mlock, p, -2L * PG));
	show("mlockall 0", mlockall(0));
	show("mlockall MCL_ONFAULT alone", mlockall(MCL_ONFAULT));
	show("mlockall bad bit", mlockall(MCL_CURRENT | 8));
	show("munlock everything", munlock(p, 12 * PG));
	printf("VmLck: +%ld kB\n", status_kb("VmLck") - lck0);

	/* MAP_LOCKED: populated and counted. */
	long before = status_kb("VmLck");
	char *q = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
	printf("MAP_LOCKED: VmLck +%ld kB, faults touching it: %ld\n", status_kb("VmLck") - before,
	       touch(q, 2));
	munmap(q, 2 * PG);
	printf("after munmap: VmLck +%ld kB\n", status_kb("VmLck") - before);

	/* mlockall: everything now and every later mapping. */
	show("mlockall CURRENT|FUTURE", mlockall(MCL_CURRENT | MCL_FUTURE));
	printf("VmLck > 0: %s\n", status_kb("VmLck") > 0 ? "yes" : "no");
	before = status_kb("VmLck");
	char *r = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("a later mmap: VmLck +%ld kB, faults touching it: %ld\n", status_kb("VmLck") - before,
	       touch(r, 4));
	fflush(stdout);
	pid_t child = fork();
	if (child == 0) {
		char *c = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		printf("child: VmLck %ld kB, faults touching a new mapping: %ld\n", status_kb("VmLck"),
		       touch(c, 4));
		fflush(stdout);
		_exit(0);
	}
	waitpid(child, NULL, 0);
	show("munlockall", munlockall());
	printf("VmLck after munlockall: %ld kB\n", status_kb("VmLck"));
	char *t = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("faults touching a mapping made after munlockall: %ld\n", touch(t, 4));

	/* MCL_FUTURE | MCL_ONFAULT: later mappings locked, not populated. */
	show("mlockall FUTURE|ONFAULT", mlockall(MCL_FUTURE | MCL_ONFAULT));
	before = status_kb("VmLck");
	char *u = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("on-fault mmap: VmLck +%ld kB, faults touching it: %ld\n", status_kb("VmLck") - before,
	       touch(u, 4));
	show("munlockall", munlockall());
	printf("mlock: done\n");
	return 0;
}
