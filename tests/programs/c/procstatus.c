/*
 * procstatus: /proc/self/status, /proc/self/maps and /proc/meminfo as a
 * program sees them.
 *
 * Numbers differ between kernels (RSS of the binary, page-table pages,
 * total memory), so the program prints facts that must hold on any Linux
 * instead: fields exist, VmRSS grows when 4 MiB is touched and VmSize
 * drops when it is unmapped, an mprotect in the middle of a mapping splits
 * it into three lines of maps, the break shows as [heap]. Lines starting
 * with '~' carry numbers and are for humans; the test does not compare them.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MIB (1024L * 1024L)

static char text[64 * 1024];

/* Reads a whole /proc file into `text`; returns its length or -1. With
 * open/read, not stdio: fopen's malloc would change VmSize between the
 * measurements. */
static long slurp(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, text + n, sizeof text - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	text[n] = 0;
	return (long)n;
}

/* The number after "name:" in `text` (a status/meminfo line), or -1. */
static long field(const char *name)
{
	size_t len = strlen(name);
	for (const char *line = text; *line;) {
		if (!strncmp(line, name, len) && line[len] == ':')
			return strtol(line + len + 1, NULL, 10);
		const char *nl = strchr(line, '\n');
		if (!nl)
			break;
		line = nl + 1;
	}
	return -1;
}

static long status(const char *name)
{
	if (slurp("/proc/self/status") < 0)
		return -1;
	return field(name);
}

/* Lines of /proc/self/maps that lie inside [lo, hi). */
static int maps_lines_within(unsigned long lo, unsigned long hi)
{
	int n = 0;
	slurp("/proc/self/maps");
	for (char *line = text; *line;) {
		unsigned long start, end;
		if (sscanf(line, "%lx-%lx", &start, &end) == 2 && start >= lo && end <= hi)
			n++;
		char *nl = strchr(line, '\n');
		if (!nl)
			break;
		line = nl + 1;
	}
	return n;
}

/* Whether maps has the line "start-end perms " exactly. */
static int maps_has(unsigned long start, unsigned long end, const char *perms)
{
	char want[64];
	snprintf(want, sizeof want, "%08lx-%08lx %s ", start, end, perms);
	slurp("/proc/self/maps");
	return strstr(text, want) != NULL;
}

/* Copies the maps line whose range holds `addr` into line[]; 0 if none. */
static int maps_line_of(unsigned long addr, char *line, size_t size)
{
	slurp("/proc/self/maps");
	for (char *l = text; *l;) {
		unsigned long start, end;
		char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);
		if (sscanf(l, "%lx-%lx", &start, &end) == 2 && start <= addr && addr < end) {
			snprintf(line, size, "%.*s", (int)len, l);
			return 1;
		}
		if (!nl)
			break;
		l = nl + 1;
	}
	return 0;
}

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

int main(void)
{
	printf("procstatus: start\n");

	/* /proc/self/status: the memory fields exist and are sane. */
	slurp("/proc/self/status");
	long size0 = field("VmSize"), rss0 = field("VmRSS"), pte0 = field("VmPTE");
	printf("~ VmSize %ld kB, VmRSS %ld kB, VmPTE %ld kB\n", size0, rss0, pte0);
	printf("status has Name, Pid, VmSize, VmRSS, VmPTE: %s\n",
	       yes(strstr(text, "Name:\t") && field("Pid") > 0 && size0 > 0 && rss0 > 0 &&
		   pte0 >= 0));
	printf("status Pid is getpid(): %s\n", yes(field("Pid") == getpid()));
	printf("VmRSS <= VmSize: %s\n", yes(rss0 <= size0));

	/* Map 4 MiB: VmSize grows, VmRSS does not (nothing touched yet). */
	/* A PROT_NONE page on each side keeps it from merging with a
	 * neighbour, so its maps line is exactly [p, p + 4 MiB). */
	unsigned char *g = mmap(NULL, 4 * MIB + 8192, PROT_NONE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *p = g + 4096;
	if (g == MAP_FAILED || mmap(p, 4 * MIB, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != p) {
		printf("mmap 4 MiB failed\n");
		return 1;
	}
	long size1 = status("VmSize"), rss1 = status("VmRSS");
	printf("~ VmSize %ld kB after mmap (+%ld kB)\n", size1, size1 - size0);
	printf("VmSize grows by 4 MiB + 8 KiB after mmap: %s\n", yes(size1 - size0 == 4096 + 8));
	printf("VmRSS grows by less than 1 MiB before touching: %s\n", yes(rss1 - rss0 < 1024));

	/* Touch every page: VmRSS grows by (nearly) 4 MiB. */
	for (long i = 0; i < 4 * MIB; i += 4096)
		p[i] = (unsigned char)(i >> 12);
	long rss2 = status("VmRSS"), pte2 = status("VmPTE");
	printf("~ after touching 4 MiB: VmRSS %ld kB, VmPTE %ld kB\n", rss2, pte2);
	/* (At least 3.5 MiB: Linux's VmRSS is approximate, see below.) */
	printf("VmRSS grows by at least 3.5 MiB after touching 4 MiB: %s\n",
	       yes(rss2 - rss1 >= 3584));
	printf("VmPTE > 0 after touching: %s\n", yes(pte2 > 0));

	/* maps: the mapping is one rw-p line; mprotect of its second page
	 * splits it into three lines with the middle one r--p. */
	unsigned long a = (unsigned long)p, e = a + 4 * MIB;
	printf("maps has the 4 MiB mapping as rw-p: %s\n", yes(maps_has(a, e, "rw-p")));
	printf("maps lines inside the mapping: %d\n", maps_lines_within(a, e));
	if (mprotect(p + 4096, 4096, PROT_READ)) {
		printf("mprotect failed\n");
		return 1;
	}
	printf("after mprotect of page 1: lines %d, middle r--p: %s\n", maps_lines_within(a, e),
	       yes(maps_has(a + 4096, a + 8192, "r--p")));
	mprotect(p + 4096, 4096, PROT_READ | PROT_WRITE);
	printf("after mprotect back: lines %d\n", maps_lines_within(a, e));

	/* MADV_DONTNEED of 2 MiB gives the memory back: VmRSS drops. Linux's
	 * RSS counters are per-CPU percpu_counters and status reads their
	 * approximate sum: each CPU may hold up to a batch (32 pages) not yet
	 * folded in, so a process that moved between CPUs sees up to a few
	 * hundred KiB less of the drop. */
	madvise(p, 2 * MIB, MADV_DONTNEED);
	long rss3 = status("VmRSS");
	printf("VmRSS drops by at least 1.5 MiB after MADV_DONTNEED of 2 MiB: %s\n",
	       yes(rss2 - rss3 >= 1536));
	printf("MADV_DONTNEED'd memory reads zero, the rest is kept: %s\n",
	       yes(p[0] == 0 && p[4096] == 0 && p[2 * MIB] == (unsigned char)(2 * MIB >> 12)));

	/* munmap: VmSize and VmRSS back to where they started (+- 1 MiB for
	 * stdio's buffers and page tables). */
	munmap(p, 4 * MIB);
	munmap(g, 4 * MIB + 8192);
	long size4 = status("VmSize"), rss4 = status("VmRSS");
	printf("~ VmSize %ld kB after munmap\n", size4);
	printf("VmSize back after munmap: %s\n", yes(size4 == size0));
	printf("VmRSS back within 1 MiB after munmap: %s\n", yes(rss4 - rss0 < 1024));
	printf("maps has the mapping after munmap: %s\n", yes(maps_lines_within(a, e) > 0));

	/* The break: growing it by 64 KiB makes a [heap] line (musl's sbrk
	 * refuses to grow, so the raw syscall). */
	unsigned long brk0 = syscall(SYS_brk, 0);
	unsigned long brk1 = syscall(SYS_brk, brk0 + 65536);
	printf("brk grows by 64 KiB: %s\n", yes(brk1 == brk0 + 65536));
	slurp("/proc/self/maps");
	printf("maps has [heap]: %s\n", yes(strstr(text, "[heap]") != NULL));
	printf("maps has [stack]: %s\n", yes(strstr(text, "[stack]") != NULL));
	printf("maps has an r-xp line (text): %s\n", yes(strstr(text, " r-xp ") != NULL));
	int local;
	char line[256];
	printf("a local variable lies in the rw-p [stack] line: %s\n",
	       yes(maps_line_of((unsigned long)&local, line, sizeof line) &&
		   strstr(line, " rw-p ") && strstr(line, "[stack]")));
	syscall(SYS_brk, brk0);

	/* /proc/meminfo: the usual first lines, consistent with each other. */
	slurp("/proc/meminfo");
	long total = field("MemTotal"), free_ = field("MemFree"), avail = field("MemAvailable");
	printf("~ MemTotal %ld kB, MemFree %ld kB, MemAvailable %ld kB\n", total, free_, avail);
	printf("meminfo starts with MemTotal: %s\n", yes(!strncmp(text, "MemTotal:", 9)));
	printf("meminfo lines end in kB: %s\n", yes(strstr(text, " kB\n") != NULL));
	printf("MemFree <= MemTotal, MemAvailable <= MemTotal: %s\n",
	       yes(total > 0 && free_ > 0 && free_ <= total && avail > 0 && avail <= total));
	printf("procstatus: done\n");
	return 0;
}
