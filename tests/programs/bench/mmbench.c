/*
 * mmbench: the mm paths of issue 18, timed from user space with the same
 * static binary on Linux and on this kernel, booted as PID 1 in the same
 * QEMU by scripts/bench-vs-linux.sh. Linux ABI only; not a test: it prints
 * figures, one per line, and powers the machine off.
 *
 *   mmbench [64k] [GROUP...]
 *
 * GROUP is faults, forks, ptreclaim or churn: run only those loops (all
 * of them when none is named; for measuring one change quickly).
 *
 * Output (machine-readable; anything else on the serial line is ignored):
 *
 *   info NAME TEXT...          settings and sanity figures (fault counts)
 *   bench NAME VALUE UNIT      one measured path
 *   mmbench: done
 *
 * Each loop is timed with CLOCK_MONOTONIC around it. The paths:
 *
 *   boot_to_init        CLOCK_MONOTONIC at the first line of main (the
 *                       kernel's time from its clock's start to init)
 *   fault_first         first-touch write fault, 256 MiB page by page
 *   madv_dontneed       MADV_DONTNEED of the 256 MiB, populated
 *   fault_retouch       touching them again after MADV_DONTNEED
 *   munmap              munmap of the 256 MiB, populated
 *   fork                fork of a process with 64 MiB populated, to the
 *                       return in the parent (the child waits on a pipe)
 *   cow_child           the child's CoW write fault, per page of the 64 MiB
 *   reuse_parent        the parent's write fault after the child exited
 *                       (its page is exclusive again: reused, not copied)
 *   ptreclaim_1         Linux 6.14's PT-reclaim loop (commit message of
 *                       "mm: pgtable: reclaim empty PTE page in
 *                       madvise(MADV_DONTNEED)"): in a 50 GiB
 *                       MAP_NORESERVE mapping, per 2 MiB chunk touch 1
 *                       page then MADV_DONTNEED the chunk; 25600 chunks
 *   ptreclaim_512       the same with all 512 pages touched, 512 chunks
 *   *_vmpte             VmPTE of /proc/self/status after each loop
 *   mmap_munmap         an mmap + munmap pair of one untouched page
 *   mprotect            mprotect of the middle page of a 3-page mapping to
 *                       read-only (a split into 3 VMAs) and back (a merge
 *                       into 1): time per pair of calls
 *
 * With "64k", 64 KiB anonymous folios are enabled first: Linux's
 * /sys/kernel/mm/transparent_hugepage/hugepages-64kB/enabled (sysfs is
 * mounted if it is not there), or, where that file takes no write (this
 * kernel), /proc/sys/vm/anon_orders = 17 (orders 0 and 4).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define MIB (1UL << 20)
#define GIB (1UL << 30)
#define PMD (2 * MIB)

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static long minflt(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static void bench(const char *name, double value, const char *unit)
{
	printf("bench %s %.1f %s\n", name, value, unit);
}

static void power_off(int status)
{
	printf("mmbench: %s\n", status ? "failed" : "done");
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
	/* Not PID 1, or not allowed: an ordinary exit. */
	exit(status);
}

static void fail(const char *what)
{
	printf("mmbench: %s: %s\n", what, strerror(errno));
	power_off(1);
}

static char *anon(size_t len, int flags)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap");
	return p;
}

static void touch(char *p, size_t len, size_t stride)
{
	for (size_t off = 0; off < len; off += stride)
		((volatile char *)p)[off] = 1;
}

/* Mounts the pseudo file system `type` on `dir` unless `probe` opens. */
static void need(const char *probe, const char *dir, const char *type)
{
	int fd = open(probe, O_RDONLY);
	if (fd >= 0) {
		close(fd);
		return;
	}
	mkdir(dir, 0755);
	if (mount(type, dir, type, 0, NULL))
		printf("info mount_%s failed: %s\n", type, strerror(errno));
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	int ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	close(fd);
	return ok ? 0 : -1;
}

/* The first line of `path` into buf (empty if unreadable). */
static void read_line(const char *path, char *buf, size_t size)
{
	buf[0] = 0;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	buf[strcspn(buf, "\n")] = 0;
}

/* A "Name:   N kB" line of /proc/self/status, in kB; -1 if absent. */
static long status_kb(const char *name)
{
	static char buf[8192];
	int fd = open("/proc/self/status", O_RDONLY);
	if (fd < 0)
		return -1;
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += n;
	close(fd);
	buf[len] = 0;
	for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		size_t k = strlen(name);
		if (!strncmp(line, name, k) && line[k] == ':')
			return strtol(line + k + 1, NULL, 10);
	}
	return -1;
}

static const char THP64[] = "/sys/kernel/mm/transparent_hugepage/hugepages-64kB/enabled";

static void enable_64k(void)
{
	need(THP64, "/sys", "sysfs");
	const char *how = "sysfs";
	if (write_file(THP64, "always")) {
		how = "anon_orders";
		if (write_file("/proc/sys/vm/anon_orders", "17"))
			how = "none (no writable setting)";
	}
	char line[128];
	read_line(THP64, line, sizeof(line));
	printf("info thp64 set by %s: %s\n", how, line);
}

/* First touch, MADV_DONTNEED, retouch, munmap of 256 MiB. */
static void faults(void)
{
	const size_t len = 256 * MIB, pages = len / PAGE;
	char *p = anon(len, 0);

	long f0 = minflt();
	double t = now_ns();
	touch(p, len, PAGE);
	bench("fault_first", (now_ns() - t) / pages, "ns/page");
	printf("info fault_first_minflt %ld\n", minflt() - f0);

	t = now_ns();
	if (madvise(p, len, MADV_DONTNEED))
		fail("madvise");
	bench("madv_dontneed", (now_ns() - t) / pages, "ns/page");

	f0 = minflt();
	t = now_ns();
	touch(p, len, PAGE);
	bench("fault_retouch", (now_ns() - t) / pages, "ns/page");
	printf("info fault_retouch_minflt %ld\n", minflt() - f0);

	t = now_ns();
	if (munmap(p, len))
		fail("munmap");
	bench("munmap", (now_ns() - t) / pages, "ns/page");
}

/*
 * Fork with 64 MiB populated, ROUNDS times: the parent's time in fork(),
 * the child's CoW faults over the 64 MiB (it starts only when the parent
 * has taken its time, through a pipe), then, after the child has exited,
 * the parent's write faults over the same pages (reuse).
 */
static void forks(void)
{
	enum { ROUNDS = 3 };
	const size_t len = 64 * MIB, pages = len / PAGE;
	char *p = anon(len, 0);
	touch(p, len, PAGE);
	double fork_ns = 0, cow_ns = 0, reuse_ns = 0;
	for (int r = 0; r < ROUNDS; r++) {
		int go[2], back[2];
		if (pipe(go) || pipe(back))
			fail("pipe");
		fflush(stdout);
		double t = now_ns();
		pid_t pid = fork();
		if (pid == 0) {
			char c;
			if (read(go[0], &c, 1) != 1)
				_exit(1);
			double t0 = now_ns();
			touch(p, len, PAGE);
			double dt = now_ns() - t0;
			_exit(write(back[1], &dt, sizeof(dt)) == sizeof(dt) ? 0 : 1);
		}
		fork_ns += now_ns() - t;
		if (pid < 0)
			fail("fork");
		if (write(go[1], "g", 1) != 1)
			fail("write pipe");
		double dt;
		int status;
		if (read(back[0], &dt, sizeof(dt)) != sizeof(dt))
			fail("read pipe");
		if (waitpid(pid, &status, 0) != pid || status != 0)
			fail("child");
		cow_ns += dt;
		close(go[0]);
		close(go[1]);
		close(back[0]);
		close(back[1]);
		t = now_ns();
		touch(p, len, PAGE);
		reuse_ns += now_ns() - t;
	}
	bench("fork", fork_ns / ROUNDS / 1000, "us/fork");
	bench("cow_child", cow_ns / ROUNDS / pages, "ns/page");
	bench("reuse_parent", reuse_ns / ROUNDS / pages, "ns/page");
	munmap(p, len);
}

/* Linux 6.14's PT-reclaim loop over `chunks` 2 MiB chunks, `touched` pages each. */
static void ptreclaim(const char *name, size_t chunks, size_t touched)
{
	const size_t len = 50 * GIB;
	char *raw = anon(len + PMD, MAP_NORESERVE);
	char *a = (char *)(((unsigned long)raw + PMD - 1) & ~(PMD - 1));
	if (chunks > len / PMD)
		chunks = len / PMD;
	double t = now_ns();
	for (size_t i = 0; i < chunks; i++) {
		char *chunk = a + i * PMD;
		touch(chunk, touched * PAGE, PAGE);
		if (madvise(chunk, PMD, MADV_DONTNEED))
			fail("madvise");
	}
	char key[64];
	bench(name, (now_ns() - t) / chunks, "ns/chunk");
	snprintf(key, sizeof(key), "%s_vmpte", name);
	bench(key, status_kb("VmPTE"), "kB");
	munmap(raw, len + PMD);
}

/* VMA churn: mmap + munmap pairs, and mprotect splitting and re-merging. */
static void vma_churn(void)
{
	enum { PAIRS = 10000, SPLITS = 5000 };
	double t = now_ns();
	for (int i = 0; i < PAIRS; i++) {
		char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			fail("mmap");
		munmap(p, PAGE);
	}
	bench("mmap_munmap", (now_ns() - t) / PAIRS, "ns/pair");

	char *p = anon(3 * PAGE, 0);
	touch(p, 3 * PAGE, PAGE);
	t = now_ns();
	for (int i = 0; i < SPLITS; i++) {
		if (mprotect(p + PAGE, PAGE, PROT_READ) ||
		    mprotect(p + PAGE, PAGE, PROT_READ | PROT_WRITE))
			fail("mprotect");
	}
	bench("mprotect", (now_ns() - t) / SPLITS, "ns/pair");
	munmap(p, 3 * PAGE);
}

/* Whether GROUP is to run: named in argv[first..], or nothing named. */
static int wanted(int argc, char **argv, int first, const char *group)
{
	if (argc <= first)
		return 1;
	for (int i = first; i < argc; i++)
		if (!strcmp(argv[i], group))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	double boot = now_ns();
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("mmbench: start\n");
	bench("boot_to_init", boot / 1e6, "ms");
	need("/proc/self/status", "/proc", "proc");
	int first = 1;
	if (argc > 1 && !strcmp(argv[1], "64k")) {
		enable_64k();
		first = 2;
	}
	if (wanted(argc, argv, first, "faults"))
		faults();
	if (wanted(argc, argv, first, "forks"))
		forks();
	if (wanted(argc, argv, first, "ptreclaim")) {
		ptreclaim("ptreclaim_1", 25600, 1);
		ptreclaim("ptreclaim_512", 512, 512);
	}
	if (wanted(argc, argv, first, "churn"))
		vma_churn();
	power_off(0);
}
