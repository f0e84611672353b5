/*
 * pagemap: /proc/self/pagemap and /proc/PID/pagemap of a known layout,
 * as Linux sets the bits: present (63), file/shared-anon (61), exclusively
 * mapped (56), soft-dirty (55), and whether a PFN is shown (bits 0-54;
 * this runs as root, which sees them). Regions, each its own VMA:
 *
 *   priv    4 private pages, written
 *   zero    2 private pages, only read (the shared zero page)
 *   none    1 page written, then mprotect(PROT_NONE) (still present)
 *   shared  2 pages of MAP_SHARED | MAP_ANONYMOUS, written
 *   cow     4 private pages, written; after fork the child writes 2, 3
 *   hole    a PROT_NONE reservation never touched
 *
 * Then the file's rules: lseek/pread at vaddr / 4096 * 8, EINVAL for a
 * position or count that is not a multiple of 8 and for SEEK_END, 0 bytes
 * at or past the end of user space, a read spanning two PMDs.
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

#define PG 4096UL
#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_FILE (1ULL << 61)
#define PM_EXCL (1ULL << 56)
#define PM_SOFT_DIRTY (1ULL << 55)
#define PM_PFN ((1ULL << 55) - 1)

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

static uint64_t entry(int fd, const void *addr)
{
	uint64_t e = 0;
	off_t off = (off_t)((uintptr_t)addr / PG * 8);
	if (pread(fd, &e, 8, off) != 8)
		return ~0ULL;
	/* Soft-dirty is softdirty.c's: a kernel built without
	 * CONFIG_MEM_SOFT_DIRTY, as some hosts are, never sets it. */
	return e & ~PM_SOFT_DIRTY;
}

/* One letter per bit: P(resent) F(ile) E(xclusive) D(soft-dirty) S(wap),
 * N if a PFN is shown, '-' for a clear bit. */
static void bits(char *out, uint64_t e)
{
	out[0] = e & PM_PRESENT ? 'P' : '-';
	out[1] = e & PM_FILE ? 'F' : '-';
	out[2] = e & PM_EXCL ? 'E' : '-';
	out[3] = e & PM_SOFT_DIRTY ? 'D' : '-';
	out[4] = e & PM_SWAP ? 'S' : '-';
	out[5] = e & PM_PFN ? 'N' : '-';
	out[6] = 0;
}

static void show(int fd, const char *who, const char *name, const char *p, int pages)
{
	printf("%s %s:", who, name);
	for (int i = 0; i < pages; i++) {
		char b[8];
		bits(b, entry(fd, p + i * PG));
		printf(" %s", b);
	}
	printf("\n");
	fflush(stdout);
}

static char *priv, *zero, *none, *shared, *cow, *hole;

static void show_all(int fd, const char *who)
{
	show(fd, who, "priv", priv, 4);
	show(fd, who, "zero", zero, 2);
	show(fd, who, "none", none, 1);
	show(fd, who, "shared", shared, 2);
	show(fd, who, "cow", cow, 4);
	show(fd, who, "hole", hole, 2);
}

static void touch(volatile char *p, int pages, int write)
{
	for (int i = 0; i < pages; i++) {
		if (write)
			p[i * PG] = (char)(i + 1);
		else
			(void)p[i * PG];
	}
}

int main(void)
{
	printf("pagemap: start\n");
	fflush(stdout);
	char *resv = mmap(NULL, 128 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (resv == MAP_FAILED) {
		printf("mmap: %s\n", strerror(errno));
		return 1;
	}
	int rw = PROT_READ | PROT_WRITE, fixed = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
	priv = mmap(resv, 4 * PG, rw, fixed, -1, 0);
	zero = mmap(resv + 8 * PG, 2 * PG, rw, fixed, -1, 0);
	none = mmap(resv + 16 * PG, PG, rw, fixed, -1, 0);
	shared = mmap(resv + 24 * PG, 2 * PG, rw, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	cow = mmap(resv + 32 * PG, 4 * PG, rw, fixed, -1, 0);
	hole = resv + 64 * PG;
	if (priv == MAP_FAILED || zero == MAP_FAILED || none == MAP_FAILED ||
	    shared == MAP_FAILED || cow == MAP_FAILED) {
		printf("mmap fixed: %s\n", strerror(errno));
		return 1;
	}
	touch(priv, 4, 1);
	touch(zero, 2, 0);
	touch(none, 1, 1);
	mprotect(none, PG, PROT_NONE);
	touch(shared, 2, 1);
	touch(cow, 4, 1);

	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0) {
		printf("open /proc/self/pagemap: %s\n", strerror(errno));
		return 1;
	}
	show_all(fd, "before");
	printf("both zero pages are one frame: %s\n",
	       yes((entry(fd, zero) & PM_PFN) == (entry(fd, zero + PG) & PM_PFN)));
	fflush(stdout);

	int to_child[2], to_parent[2];
	if (pipe(to_child) || pipe(to_parent)) {
		printf("pipe: %s\n", strerror(errno));
		return 1;
	}
	char c = 0;
	pid_t pid = fork();
	if (pid == 0) {
		/* The child's own file: the parent's fd names the parent. */
		int cfd = open("/proc/self/pagemap", O_RDONLY);
		touch(cow + 2 * PG, 2, 1);
		touch(shared, 2, 0);
		show_all(cfd, "child");
		if (write(to_parent[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	if (pid < 0 || read(to_parent[0], &c, 1) != 1) {
		printf("fork: %s\n", strerror(errno));
		return 1;
	}
	show_all(fd, "parent");
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/pagemap", pid);
	int kfd = open(path, O_RDONLY);
	show(kfd, "parent reads child", "cow", cow, 4);
	printf("same frame at cow page 0, another at page 2: %s\n",
	       yes((entry(fd, cow) & PM_PFN) == (entry(kfd, cow) & PM_PFN) &&
		   (entry(fd, cow + 2 * PG) & PM_PFN) != (entry(kfd, cow + 2 * PG) & PM_PFN)));
	if (write(to_child[1], &c, 1) != 1) {
		printf("write: %s\n", strerror(errno));
		return 1;
	}
	int status = 0;
	waitpid(pid, &status, 0);
	printf("child exited 0: %s\n", yes(WIFEXITED(status) && WEXITSTATUS(status) == 0));
	uint64_t e = 0;
	printf("the exited child's pagemap reads 0 bytes: %s\n",
	       yes(pread(kfd, &e, 8, (off_t)((uintptr_t)cow / PG * 8)) == 0));
	close(kfd);
	show_all(fd, "alone");

	/* The file's rules. */
	off_t at = (off_t)((uintptr_t)priv / PG * 8);
	printf("lseek to priv: %s\n", yes(lseek(fd, at, SEEK_SET) == at));
	uint64_t two[2];
	printf("read 16 bytes: %zd\n", read(fd, two, 16));
	printf("position advanced by 16: %s\n", yes(lseek(fd, 0, SEEK_CUR) == at + 16));
	printf("entries present: %s\n", yes((two[0] & PM_PRESENT) && (two[1] & PM_PRESENT)));
	errno = 0;
	ssize_t r = pread(fd, two, 8, at + 4);
	printf("pread at an odd offset: %zd %s\n", r, errno == EINVAL ? "EINVAL" : "?");
	errno = 0;
	r = pread(fd, two, 12, at);
	printf("read of 12 bytes: %zd %s\n", r, errno == EINVAL ? "EINVAL" : "?");
	printf("read of 0 bytes: %zd\n", pread(fd, two, 0, at));
	errno = 0;
	off_t l = lseek(fd, 0, SEEK_END);
	printf("lseek SEEK_END: %lld %s\n", (long long)l, errno == EINVAL ? "EINVAL" : "?");
	off_t top = (off_t)(((1ULL << 47) - PG) / PG * 8);
	printf("read at the end of user space: %zd\n", pread(fd, two, 16, top));
	printf("read of the last page's entry: %zd\n", pread(fd, two, 16, top - 8));
	printf("read far past it: %zd\n", pread(fd, two, 8, (off_t)1 << 40));
	errno = 0;
	r = pread(fd, two, 8, -8);
	printf("pread at a negative offset: %zd %s\n", r, errno == EINVAL ? "EINVAL" : "?");
	/* 1024 entries from 2 MiB below a 2 MiB boundary: two PMDs. */
	static uint64_t many[1024];
	uintptr_t pmd = ((uintptr_t)priv & ~((2UL << 20) - 1));
	ssize_t n = pread(fd, many, sizeof many, (off_t)(pmd / PG * 8));
	int found = 0;
	for (int i = 0; i < 1024; i++)
		if (pmd + i * PG == (uintptr_t)priv)
			found = (many[i] & PM_PRESENT) && (many[i] & PM_EXCL);
	printf("1024 entries over two PMDs: %zd bytes, priv found present: %s\n", n, yes(found));
	void *volatile bad = (void *)8;
	errno = 0;
	r = pread(fd, bad, 8, at);
	printf("read into a bad buffer: %zd %s\n", r, errno == EFAULT ? "EFAULT" : "?");
	printf("pagemap: done\n");
	return 0;
}
