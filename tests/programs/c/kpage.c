/*
 * kpage: /proc/kpagecount and /proc/kpageflags of the frames behind a
 * known layout (found through /proc/self/pagemap; this runs as root):
 *
 *   priv    4 private pages, written
 *   zero    1 private page, only read (the shared zero page)
 *   shared  1 page of MAP_SHARED | MAP_ANONYMOUS, written
 *   large   16 pages at a 64 KiB boundary, written; after fork the
 *           child writes pages 8..15
 *
 * For each page: the mapcount and the flag bits this kernel models
 * (MMAP, ANON, SWAPBACKED, ZERO_PAGE, NOPAGE; the compound and THP bits
 * go on `~` lines: they depend on the folio sizes, not on the rules),
 * before fork, while the child lives and after it exits; then the files'
 * rules: EINVAL for a position or count not a multiple of 8, 0 bytes past
 * the last frame.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096UL
#define PM_PRESENT (1ULL << 63)
#define PM_PFN ((1ULL << 55) - 1)

enum {
	KPF_MMAP = 11,
	KPF_ANON = 12,
	KPF_SWAPBACKED = 14,
	KPF_COMPOUND_HEAD = 15,
	KPF_COMPOUND_TAIL = 16,
	KPF_NOPAGE = 20,
	KPF_THP = 22,
	KPF_ZERO_PAGE = 24,
};

static int pagemap, kcount, kflags;

static uint64_t word(int fd, uint64_t index)
{
	uint64_t w = 0;
	if (pread(fd, &w, 8, (off_t)(index * 8)) != 8)
		return ~0ULL;
	return w;
}

static uint64_t pfn_of(const void *p)
{
	uint64_t e = word(pagemap, (uintptr_t)p / PG);
	return e & PM_PRESENT ? e & PM_PFN : 0;
}

static void show(const char *who, const char *name, const char *p, int pages, int compound_line)
{
	char tildes[256] = "";
	printf("%s %s:", who, name);
	for (int i = 0; i < pages; i++) {
		uint64_t pfn = pfn_of(p + i * PG);
		uint64_t f = word(kflags, pfn), c = word(kcount, pfn);
		printf(" %llu%s%s%s%s", (unsigned long long)c, f >> KPF_MMAP & 1 ? "m" : "",
		       f >> KPF_ANON & 1 ? "a" : "", f >> KPF_SWAPBACKED & 1 ? "s" : "",
		       f >> KPF_ZERO_PAGE & 1 ? "z" : "");
		if (f >> KPF_NOPAGE & 1)
			printf("!");
		size_t l = strlen(tildes);
		snprintf(tildes + l, sizeof tildes - l, " %s%s%s",
			 f >> KPF_COMPOUND_HEAD & 1 ? "H" : "", f >> KPF_COMPOUND_TAIL & 1 ? "T" : "",
			 f >> KPF_THP & 1 ? "thp" : "-");
	}
	printf("\n");
	if (compound_line)
		printf("~%s %s compound:%s\n", who, name, tildes);
	fflush(stdout);
}

static char *priv, *zero, *shared, *large;

static void show_all(const char *who)
{
	show(who, "priv", priv, 4, 0);
	show(who, "zero", zero, 1, 0);
	show(who, "shared", shared, 1, 0);
	show(who, "large", large, 16, 1);
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
	printf("kpage: start\n");
	fflush(stdout);
	pagemap = open("/proc/self/pagemap", O_RDONLY);
	kcount = open("/proc/kpagecount", O_RDONLY);
	kflags = open("/proc/kpageflags", O_RDONLY);
	if (pagemap < 0 || kcount < 0 || kflags < 0) {
		printf("open: %s\n", strerror(errno));
		return 1;
	}
	char *resv = mmap(NULL, 96 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *base = (char *)(((uintptr_t)resv + 16 * PG - 1) & ~(16 * PG - 1));
	int rw = PROT_READ | PROT_WRITE, fixed = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
	priv = mmap(base, 4 * PG, rw, fixed, -1, 0);
	zero = mmap(base + 16 * PG, PG, rw, fixed, -1, 0);
	shared = mmap(base + 24 * PG, PG, rw, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	large = mmap(base + 32 * PG, 16 * PG, rw, fixed, -1, 0);
	if (resv == MAP_FAILED || priv == MAP_FAILED || zero == MAP_FAILED ||
	    shared == MAP_FAILED || large == MAP_FAILED) {
		printf("mmap: %s\n", strerror(errno));
		return 1;
	}
	touch(priv, 4, 1);
	touch(zero, 1, 0);
	touch(shared, 1, 1);
	touch(large, 16, 1);
	show_all("before");

	int to_child[2], to_parent[2];
	if (pipe(to_child) || pipe(to_parent))
		return 1;
	char c = 0;
	pid_t pid = fork();
	if (pid == 0) {
		touch(shared, 1, 0);
		touch(large + 8 * PG, 8, 1);
		if (write(to_parent[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	if (pid < 0 || read(to_parent[0], &c, 1) != 1) {
		printf("fork: %s\n", strerror(errno));
		return 1;
	}
	show_all("parent");
	if (write(to_child[1], &c, 1) != 1)
		return 1;
	int status = 0;
	waitpid(pid, &status, 0);
	printf("child exited 0: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "yes" : "no");
	show_all("alone");

	uint64_t w[2];
	errno = 0;
	ssize_t r = pread(kcount, w, 8, 4);
	printf("kpagecount at an odd offset: %zd %s\n", r, errno == EINVAL ? "EINVAL" : "?");
	errno = 0;
	r = pread(kflags, w, 12, 0);
	printf("kpageflags read of 12 bytes: %zd %s\n", r, errno == EINVAL ? "EINVAL" : "?");
	printf("kpageflags far past the last frame: %zd\n", pread(kflags, w, 16, (off_t)1 << 50));
	printf("kpagecount far past the last frame: %zd\n", pread(kcount, w, 16, (off_t)1 << 50));
	printf("read of frame 0's two words: %zd\n", pread(kflags, w, 16, 0));
	printf("kpage: done\n");
	return 0;
}
