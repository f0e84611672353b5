/*
 * smaps: /proc/self/smaps and smaps_rollup of a known layout, as Linux
 * counts them. Each region sits in its own VMA (PROT_NONE gaps between):
 *
 *   priv    8 private pages, written
 *   zero    4 private pages, only read (the zero page: not resident)
 *   ro      4 pages written, then mprotect(PROT_READ)
 *   shared  4 pages of MAP_SHARED | MAP_ANONYMOUS, written
 *   cow     8 private pages, written; after fork the child writes 4
 *   large   16 pages at a 64 KiB boundary, written (one 64 KiB folio
 *           where mTHP is on); after fork the child writes pages 8..15
 *
 * For each region, at each step (before fork, the child's view, the
 * parent's view while the child lives, after the child exits), one line
 * with Rss, Pss, Pss_Dirty, Shared_*, Private_*, Anonymous (kB) and
 * VmFlags; then the field names of a smaps entry in order, smaps' header
 * lines against /proc/self/maps, and smaps_rollup against the sum of
 * smaps. Referenced is not printed (page aging may clear it on the
 * host), nor addresses. THPeligible of the large region goes on a `~`
 * line (it depends on the mTHP settings, not on the accounting).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096UL

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

/* Buffers touched up front, so that reading the files faults nothing in. */
static char smaps_buf[1 << 18];
static char other_buf[1 << 16];

static size_t slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	size_t n = 0;
	ssize_t r;
	if (fd < 0)
		return 0;
	while (n < size - 1 && (r = read(fd, buf + n, size - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = 0;
	return n;
}

/* The entry of smaps text `t` whose header starts at `addr`. */
static const char *entry_at(const char *t, unsigned long addr)
{
	char want[32];
	int n = snprintf(want, sizeof want, "%lx-", addr);
	for (const char *p = t; p && *p;) {
		if (!strncmp(p, want, (size_t)n))
			return p;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

/* The kB value of "Name:" in the entry starting at `e` (before the next
 * header), -1 if absent. */
static long field(const char *e, const char *name)
{
	size_t l = strlen(name);
	const char *p = strchr(e, '\n');
	while (p && *++p) {
		if (!strncmp(p, name, l) && p[l] == ':')
			return strtol(p + l + 1, NULL, 10);
		if (!strncmp(p, "VmFlags:", 8))
			break;
		p = strchr(p, '\n');
	}
	return -1;
}

/* The entry's VmFlags codes, copied without the trailing space and
 * without "sd" (soft-dirty): a kernel built without CONFIG_MEM_SOFT_DIRTY,
 * as some hosts are, never shows it; softdirty.c checks it. */
static void vmflags(const char *e, char *out, size_t size)
{
	const char *p = strstr(e, "VmFlags: ");
	size_t n = 0;
	out[0] = 0;
	if (!p)
		return;
	p += 9;
	while (p[n] && p[n] != '\n' && n < size - 1)
		n++;
	memcpy(out, p, n);
	out[n] = 0;
	char *sd = strstr(out, "sd ");
	if (sd && (sd == out || sd[-1] == ' ')) {
		memmove(sd, sd + 3, strlen(sd + 3) + 1);
		n -= 3;
	}
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = 0;
}

static void show(const char *who, const char *name, unsigned long addr, int thp_line)
{
	slurp("/proc/self/smaps", smaps_buf, sizeof smaps_buf);
	const char *e = entry_at(smaps_buf, addr);
	char flags[128];
	if (!e) {
		printf("%s %s: no smaps entry\n", who, name);
		return;
	}
	vmflags(e, flags, sizeof flags);
	printf("%s %s: Size %ld Rss %ld Pss %ld Pss_Dirty %ld Shared_Clean %ld "
	       "Shared_Dirty %ld Private_Clean %ld Private_Dirty %ld Anonymous %ld "
	       "Swap %ld Locked %ld",
	       who, name, field(e, "Size"), field(e, "Rss"), field(e, "Pss"),
	       field(e, "Pss_Dirty"), field(e, "Shared_Clean"), field(e, "Shared_Dirty"),
	       field(e, "Private_Clean"), field(e, "Private_Dirty"), field(e, "Anonymous"),
	       field(e, "Swap"), field(e, "Locked"));
	if (thp_line)
		printf(" VmFlags %s\n~%s %s THPeligible %ld\n", flags, who, name,
		       field(e, "THPeligible"));
	else
		printf(" THPeligible %ld VmFlags %s\n", field(e, "THPeligible"), flags);
	fflush(stdout);
}

static void touch(volatile char *p, unsigned long pages, int write)
{
	for (unsigned long i = 0; i < pages; i++) {
		if (write)
			p[i * PG] = (char)(i + 1);
		else
			(void)p[i * PG];
	}
}

static char *priv, *zero, *ro, *shared, *cow, *large;

static void show_all(const char *who)
{
	show(who, "priv", (unsigned long)priv, 0);
	show(who, "ro", (unsigned long)ro, 0);
	show(who, "shared", (unsigned long)shared, 0);
	show(who, "cow", (unsigned long)cow, 0);
	show(who, "large", (unsigned long)large, 1);
}

/* The names of the fields of the first smaps entry, in order. */
static void field_names(void)
{
	slurp("/proc/self/smaps", smaps_buf, sizeof smaps_buf);
	const char *p = strchr(smaps_buf, '\n');
	printf("fields:");
	while (p && *++p) {
		const char *colon = strchr(p, ':');
		const char *nl = strchr(p, '\n');
		if (!colon || (nl && nl < colon))
			break;
		printf(" %.*s", (int)(colon - p), p);
		if (!strncmp(p, "VmFlags:", 8))
			break;
		p = nl;
	}
	printf("\n");
}

/* Each smaps header line equals the maps line of the same VMA, in the
 * same order, and every entry ends with VmFlags. */
static void headers_match_maps(void)
{
	slurp("/proc/self/smaps", smaps_buf, sizeof smaps_buf);
	slurp("/proc/self/maps", other_buf, sizeof other_buf);
	const char *m = other_buf;
	int ok = 1, entries = 0, flags_lines = 0;
	for (const char *p = smaps_buf; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		const char *sp = memchr(p, ' ', len);
		/* A header line: "start-end perms ...", no ':' before its space. */
		const char *colon = memchr(p, ':', len);
		if (sp && (!colon || colon > sp)) {
			const char *mnl = strchr(m, '\n');
			size_t mlen = mnl ? (size_t)(mnl - m) : strlen(m);
			if (mlen != len || memcmp(m, p, len))
				ok = 0;
			m = mnl ? mnl + 1 : m + mlen;
			entries++;
		} else if (!strncmp(p, "VmFlags: ", 9)) {
			flags_lines++;
		}
		p = nl ? nl + 1 : NULL;
	}
	printf("smaps headers equal the maps lines: %s\n", yes(ok && !*m && entries > 0));
	printf("every smaps entry has VmFlags: %s\n", yes(entries == flags_lines));
}

/* smaps_rollup: header named [rollup] spanning every VMA, Rss the sum of
 * the entries', Pss the sum up to the per-entry truncation, Pss_Anon +
 * Pss_File + Pss_Shmem = Pss up to rounding. */
static void rollup(void)
{
	slurp("/proc/self/smaps", smaps_buf, sizeof smaps_buf);
	slurp("/proc/self/smaps_rollup", other_buf, sizeof other_buf);
	long rss = 0, pss = 0, anon = 0, entries = 0;
	unsigned long first = 0, last = 0;
	for (const char *p = smaps_buf; p && *p;) {
		unsigned long s, e;
		if (sscanf(p, "%lx-%lx ", &s, &e) == 2 && strchr(p, ' ') < strchr(p, '\n')) {
			const char *colon = strchr(p, ':');
			/* Not the [vsyscall] gate, which is no VMA of the mm. */
			if (colon > strchr(p, ' ') && s < (1UL << 47)) {
				if (!entries)
					first = s;
				last = e;
				rss += field(p, "Rss");
				pss += field(p, "Pss");
				anon += field(p, "Anonymous");
				entries++;
			}
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	unsigned long rs, re;
	char name[32] = "";
	int header = sscanf(other_buf, "%lx-%lx ---p 00000000 00:00 0 %31s", &rs, &re, name) == 3;
	const char *r = other_buf;
	long rrss = field(r, "Rss"), rpss = field(r, "Pss");
	long parts = field(r, "Pss_Anon") + field(r, "Pss_File") + field(r, "Pss_Shmem");
	printf("rollup header [rollup] from the first VMA to the last: %s\n",
	       yes(header && !strcmp(name, "[rollup]") && rs == first && re == last));
	printf("rollup Rss is the sum of smaps Rss: %s\n", yes(rrss == rss));
	printf("rollup Anonymous is the sum: %s\n", yes(field(r, "Anonymous") == anon));
	printf("rollup Pss within the entries' truncation: %s\n",
	       yes(rpss >= pss && rpss <= pss + entries));
	printf("rollup Pss_Anon + Pss_File + Pss_Shmem = Pss within 2 kB: %s\n",
	       yes(parts >= rpss - 2 && parts <= rpss));
	printf("rollup has Pss_Dirty, Shared_Dirty, SwapPss, Locked: %s\n",
	       yes(field(r, "Pss_Dirty") >= 0 && field(r, "Shared_Dirty") >= 0 &&
		   field(r, "SwapPss") >= 0 && field(r, "Locked") >= 0));
}

int main(void)
{
	memset(smaps_buf, 1, sizeof smaps_buf);
	memset(other_buf, 1, sizeof other_buf);
	printf("smaps: start\n");
	fflush(stdout);

	/* A PROT_NONE reservation; regions go at 16-page slots of its
	 * 64 KiB-aligned part, PROT_NONE left between them. */
	char *resv = mmap(NULL, 160 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (resv == MAP_FAILED) {
		printf("mmap: %s\n", strerror(errno));
		return 1;
	}
	char *base = (char *)(((unsigned long)resv + 16 * PG - 1) & ~(16 * PG - 1));
	int rw = PROT_READ | PROT_WRITE;
	int fixed = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
	priv = mmap(base, 8 * PG, rw, fixed, -1, 0);
	zero = mmap(base + 16 * PG, 4 * PG, rw, fixed, -1, 0);
	ro = mmap(base + 32 * PG, 4 * PG, rw, fixed, -1, 0);
	shared = mmap(base + 48 * PG, 4 * PG, rw, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	cow = mmap(base + 64 * PG, 8 * PG, rw, fixed, -1, 0);
	large = mmap(base + 96 * PG, 16 * PG, rw, fixed, -1, 0);
	if (priv == MAP_FAILED || zero == MAP_FAILED || ro == MAP_FAILED ||
	    shared == MAP_FAILED || cow == MAP_FAILED || large == MAP_FAILED) {
		printf("mmap fixed: %s\n", strerror(errno));
		return 1;
	}
	touch(priv, 8, 1);
	touch(zero, 4, 0);
	touch(ro, 4, 1);
	mprotect(ro, 4 * PG, PROT_READ);
	touch(shared, 4, 1);
	touch(cow, 8, 1);
	touch(large, 16, 1);

	show("before", "zero", (unsigned long)zero, 0);
	show_all("before");

	int to_child[2], to_parent[2];
	if (pipe(to_child) || pipe(to_parent)) {
		printf("pipe: %s\n", strerror(errno));
		return 1;
	}
	char c = 0;
	pid_t pid = fork();
	if (pid == 0) {
		touch(cow, 8, 0);
		touch(cow + 4 * PG, 4, 1);
		/* Every page of the shared region: Linux's fault-around would
		 * map the neighbours of one read anyway. */
		touch(shared, 4, 0);
		touch(large + 8 * PG, 8, 1);
		show_all("child");
		if (write(to_parent[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	if (pid < 0 || read(to_parent[0], &c, 1) != 1) {
		printf("fork: %s\n", strerror(errno));
		return 1;
	}
	show_all("parent");
	if (write(to_child[1], &c, 1) != 1) {
		printf("write: %s\n", strerror(errno));
		return 1;
	}
	int status = 0;
	waitpid(pid, &status, 0);
	printf("child exited 0: %s\n", yes(WIFEXITED(status) && WEXITSTATUS(status) == 0));
	show_all("alone");

	field_names();
	headers_match_maps();
	rollup();
	printf("smaps: done\n");
	return 0;
}
