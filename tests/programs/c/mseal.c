/*
 * mseal: memory sealing (Linux 6.10) against Linux. mseal's own errnos,
 * then what a sealed mapping refuses with EPERM (munmap, mprotect,
 * mremap from and over it, MAP_FIXED over it, discarding madvise on
 * sealed read-only private memory) and what it still allows (reads,
 * writes, madvise that discards nothing, MADV_DONTNEED of writable
 * memory), the VMAs sealing splits (/proc/self/maps), and that a fork
 * child inherits the seal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errname.h"

#define PG 4096L
#ifndef SYS_mseal
#define SYS_mseal 462
#endif

static long mseal(void *p, long len, long flags)
{
	return syscall(SYS_mseal, p, len, flags);
}

/* VMAs of /proc/self/maps inside [lo, hi), with their permissions. */
static void vmas(const char *label, char *lo, char *hi)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	printf("%s:", label);
	while (f && fgets(line, sizeof line, f)) {
		unsigned long s, e;
		char perm[5];
		if (sscanf(line, "%lx-%lx %4s", &s, &e, perm) == 3 && s >= (unsigned long)lo &&
		    e <= (unsigned long)hi)
			printf(" [%ld,%ld) %s", (long)(s - (unsigned long)lo) / PG,
			       (long)(e - (unsigned long)lo) / PG, perm);
	}
	printf("\n");
	if (f)
		fclose(f);
}

/*
 * 8 pages between two PROT_NONE guards, far below the top-down mmap area,
 * so that nothing the C library maps later lands in a hole made in them.
 */
static char *region(int prot)
{
	static char *at = (char *)0x200000000;
	char *g = mmap(at, 10 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	at += 16 * PG;
	mprotect(g, PG, PROT_NONE);
	mprotect(g + 9 * PG, PG, PROT_NONE);
	memset(g + PG, 1, 8 * PG);
	mprotect(g + PG, 8 * PG, prot);
	return g + PG;
}

int main(void)
{
	printf("mseal: start\n");
	char *p = region(PROT_READ | PROT_WRITE);
	show("mseal bad flags", mseal(p, PG, 1));
	show("mseal unaligned start", mseal(p + 1, PG, 0));
	show("mseal length 0", mseal(p, 0, 0));
	show("mseal wrapping length", mseal(p, -PG, 0));
	show("mseal over a guard (unmapped below)", mseal(p - 2 * PG, 3 * PG, 0));
	munmap(p + 7 * PG, PG);
	show("mseal across a hole", mseal(p + 6 * PG, 2 * PG, 0));
	vmas("VMAs after the failed mseal", p, p + 8 * PG);

	show("mseal pages 2-3 (length rounded up)", mseal(p + 2 * PG, PG + 1, 0));
	vmas("VMAs", p, p + 8 * PG);
	show("mseal again", mseal(p + 2 * PG, 2 * PG, 0));
	p[2 * PG] = 7;
	printf("write to a sealed page: %d\n", p[2 * PG]);
	show("munmap of a sealed page", munmap(p + 2 * PG, PG));
	show("munmap across a sealed VMA", munmap(p, 6 * PG));
	printf("page 0 still mapped: %d\n", p[0]);
	show("mprotect of a sealed page", mprotect(p + 3 * PG, PG, PROT_READ));
	show("mprotect of a page next to it", mprotect(p + 4 * PG, PG, PROT_READ));
	show("mremap of a sealed page", (long)mremap(p + 2 * PG, PG, 2 * PG, MREMAP_MAYMOVE) == -1 ? -1 : 0);
	show("mremap shrinking a sealed VMA", (long)mremap(p + 2 * PG, 2 * PG, PG, 0) == -1 ? -1 : 0);
	show("mremap onto a sealed page",
	     (long)mremap(p + 5 * PG, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, p + 3 * PG) == -1 ? -1 : 0);
	show("mmap MAP_FIXED over a sealed page",
	     mmap(p + 2 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED
		     ? -1
		     : 0);
	show("madvise DONTNEED of sealed writable memory", madvise(p + 2 * PG, PG, MADV_DONTNEED));
	printf("page 2 after it: %d\n", p[2 * PG]);
	show("madvise WILLNEED of a sealed page", madvise(p + 2 * PG, PG, MADV_WILLNEED));
	vmas("VMAs after all that", p, p + 8 * PG);

	char *r = region(PROT_READ);
	show("mseal a read-only region", mseal(r, 8 * PG, 0));
	show("madvise DONTNEED of sealed read-only memory", madvise(r, PG, MADV_DONTNEED));
	show("madvise FREE of sealed read-only memory", madvise(r, PG, MADV_FREE));
	show("madvise DONTFORK of sealed read-only memory", madvise(r, PG, MADV_DONTFORK));
	show("madvise NORMAL of sealed read-only memory", madvise(r, PG, MADV_NORMAL));
	printf("page 0 of it still holds: %d\n", r[0]);
	show("mprotect PROT_WRITE of it", mprotect(r, PG, PROT_READ | PROT_WRITE));

	fflush(stdout);
	pid_t child = fork();
	if (child == 0) {
		show("child: munmap of a sealed page", munmap(p + 2 * PG, PG));
		show("child: mprotect of the read-only region", mprotect(r, PG, PROT_NONE));
		fflush(stdout);
		_exit(0);
	}
	waitpid(child, NULL, 0);
	printf("mseal: done\n");
	return 0;
}
