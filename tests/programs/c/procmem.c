/*
 * procmem: /proc/PID/mem as Linux 6.19 has it (fs/proc/base.c mem_rw with
 * FOLL_FORCE): reads and writes at the file position's address of the
 * process itself and of a child; a write into read-only private memory
 * lands in a private copy and leaves the mapping read-only (a debugger's
 * breakpoint), in the child without touching the parent's copy; shared
 * read-only memory refuses (EIO); PROT_NONE memory reads as what it holds
 * (zeros if never touched); unmapped memory is EIO, a read running into
 * it is short; a bad buffer is EFAULT; SEEK_END is EINVAL; once the
 * process is gone, reads return 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errname.h"

#define PG 4096

static long mem_read(int fd, void *buf, size_t n, const void *addr)
{
	return pread(fd, buf, n, (off_t)(uintptr_t)addr);
}

static long mem_write(int fd, const void *buf, size_t n, const void *addr)
{
	if (lseek(fd, (off_t)(uintptr_t)addr, SEEK_SET) < 0)
		return -1;
	return write(fd, buf, n);
}

/* The permissions in /proc/self/maps of the mapping at p. */
static const char *perms(void *p)
{
	static char out[8];
	char want[32], line[512];
	snprintf(want, sizeof want, "%lx-", (unsigned long)p);
	strcpy(out, "none");
	FILE *f = fopen("/proc/self/maps", "r");
	while (f && fgets(line, sizeof line, f)) {
		if (!strncmp(line, want, strlen(want))) {
			snprintf(out, sizeof out, "%.4s", strchr(line, ' ') + 1);
			break;
		}
	}
	if (f)
		fclose(f);
	return out;
}

static long secret = 0x1122334455667788;

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("procmem: start\n");
	int fd = open("/proc/self/mem", O_RDWR);
	printf("open /proc/self/mem: %s\n", fd >= 0 ? "ok" : err(-1));
	long v = 0;
	long r = mem_read(fd, &v, sizeof v, &secret);
	printf("read a variable: %s, %d\n", err(r), v == secret);
	long nv = 42;
	r = mem_write(fd, &nv, sizeof nv, &secret);
	printf("write a variable: %s, now %ld\n", err(r), secret);
	printf("position after it: %d\n",
	       lseek(fd, 0, SEEK_CUR) == (off_t)(uintptr_t)&secret + 8);
	printf("SEEK_END: %s\n", err(lseek(fd, 0, SEEK_END)));

	/* Read-only private memory: the write goes to a private copy. */
	char *ro = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(ro, 'a', 2 * PG);
	mprotect(ro, 2 * PG, PROT_READ);
	r = mem_write(fd, "XY", 2, ro + 10);
	printf("write read-only private: %s, sees %c%c, perms %s\n", err(r),
	       ro[10], ro[11], perms(ro));

	/* Shared read-only memory refuses. */
	char *sh = mmap(NULL, PG, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	printf("write read-only shared: %s\n", err(mem_write(fd, "Z", 1, sh)));
	printf("read read-only shared: %s\n", err(mem_read(fd, &v, 1, sh)));

	/* PROT_NONE: what it holds, zeros when never touched. */
	char *pn = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pn[5] = 'q';
	mprotect(pn, 2 * PG, PROT_NONE);
	char c2[2] = {1, 1};
	r = mem_read(fd, c2, 1, pn + 5);
	printf("read PROT_NONE: %s, %c\n", err(r), c2[0]);
	r = mem_read(fd, c2, 1, pn + PG + 5);
	printf("read untouched PROT_NONE: %s, %d\n", err(r), c2[0]);

	/* Holes. */
	char *h = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(h, 'h', 2 * PG);
	munmap(h + PG, PG);
	char big[2 * PG];
	printf("read into a hole: %s\n", err(mem_read(fd, big, 2 * PG, h + PG - 100)));
	printf("read a hole: %s\n", err(mem_read(fd, big, 8, h + PG)));
	printf("write a hole: %s\n", err(mem_write(fd, "w", 1, h + PG)));
	void *volatile bad = (void *)8;
	printf("read to a bad buffer: %s\n", err(mem_read(fd, bad, 8, h)));
	printf("write from a bad buffer: %s\n", err(mem_write(fd, bad, 8, h)));
	close(fd);

	/* A child's read-only page, written through its /proc/PID/mem: the
	 * child sees it, the parent keeps its copy. */
	int up[2], down[2];
	if (pipe(up) || pipe(down))
		return 1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		if (write(up[1], "r", 1) != 1 || read(down[0], &c, 1) != 1)
			_exit(2);
		printf("child: sees %c%c, perms %s\n", ro[0], ro[1], perms(ro));
		fflush(stdout);
		_exit(0);
	}
	char c;
	if (read(up[0], &c, 1) != 1)
		return 1;
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/mem", pid);
	int cfd = open(path, O_RDWR);
	printf("open child's mem: %s\n", cfd >= 0 ? "ok" : err(-1));
	printf("write child's read-only page: %s\n", err(mem_write(cfd, "CD", 2, ro)));
	printf("parent's copy: %c%c\n", ro[0], ro[1]);
	char got[2];
	r = mem_read(cfd, got, 2, ro);
	printf("read it back: %s, %c%c\n", err(r), got[0], got[1]);
	if (write(down[1], "g", 1) != 1)
		return 1;
	int st;
	waitpid(pid, &st, 0);
	printf("child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	printf("read after the child is gone: %s\n", err(mem_read(cfd, got, 2, ro)));
	close(cfd);
	printf("procmem: done\n");
	return 0;
}
