/*
 * libcstart: what a C library's start-up and ordinary programs rely on
 * from the kernel: the auxiliary vector, the stack protector's canary,
 * TLS, ifunc-selected string functions, readlink("/proc/self/exe"),
 * prctl names and /proc/self/comm, time(), isatty on a pipe, atexit.
 * Prints only facts that hold on any Linux (kernel-dependent values are
 * on `~` lines, which the test does not compare).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

/* "ok N" for a result >= 0, else the errno's name. */
static const char *res(long r)
{
	static char buf[64];
	if (r >= 0) {
		snprintf(buf, sizeof buf, "ok %ld", r);
		return buf;
	}
	switch (errno) {
	case EFAULT: return "EFAULT";
	case EINVAL: return "EINVAL";
	case ENOENT: return "ENOENT";
	case ENOTTY: return "ENOTTY";
	default:
		snprintf(buf, sizeof buf, "errno %d", errno);
		return buf;
	}
}

/* The ELF header the linker maps with the program (GNU ld defines it). */
extern const ElfW(Ehdr) __ehdr_start;
extern char _start[];

static __thread int tls_init = 42;
static __thread char tls_zero[256];

static jmp_buf jump;

/* A bad user pointer, hidden from the compiler's buffer-size checks. */
static char *volatile bad = (char *)8;

static void at_exit(void)
{
	printf("atexit handler ran\n");
	fflush(stdout);
}

/* Reads the first line of `path` without its newline into `buf`. */
static void first_line(const char *path, char *buf, size_t n)
{
	buf[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(buf, n, f))
		buf[strcspn(buf, "\n")] = 0;
	fclose(f);
}

/* The value of `Name:` in /proc/self/status. */
static void status_name(char *buf, size_t n)
{
	char line[256];
	buf[0] = 0;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "Name:\t", 6)) {
			size_t len = strcspn(line + 6, "\n");
			len = len < n - 1 ? len : n - 1;
			memcpy(buf, line + 6, len);
			buf[len] = 0;
		}
	fclose(f);
}

static const char *base(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

int main(int argc, char **argv)
{
	printf("libcstart: start\n");
	printf("argc %d, argv[0] %s\n", argc, argv[0]);
	atexit(at_exit);

	/* The auxiliary vector. */
	const ElfW(Phdr) *phdr = (const void *)getauxval(AT_PHDR);
	const char *ehdr = (const char *)&__ehdr_start;
	printf("AT_PAGESZ %lu, AT_CLKTCK %lu, AT_PHENT %lu\n", getauxval(AT_PAGESZ),
	       getauxval(AT_CLKTCK), getauxval(AT_PHENT));
	printf("AT_PHDR is the loaded program headers: %s\n",
	       yes((const char *)phdr == ehdr + __ehdr_start.e_phoff));
	printf("AT_PHNUM is e_phnum: %s\n", yes(getauxval(AT_PHNUM) == __ehdr_start.e_phnum));
	printf("AT_ENTRY is _start: %s\n", yes(getauxval(AT_ENTRY) == (unsigned long)_start));
	printf("AT_BASE %lu, AT_FLAGS %lu, AT_SECURE %lu\n", getauxval(AT_BASE),
	       getauxval(AT_FLAGS), getauxval(AT_SECURE));
	printf("AT_UID/EUID/GID/EGID are the ids: %s\n",
	       yes(getauxval(AT_UID) == getuid() && getauxval(AT_EUID) == geteuid() &&
		   getauxval(AT_GID) == getgid() && getauxval(AT_EGID) == getegid()));
	const unsigned char *rnd = (const void *)getauxval(AT_RANDOM);
	int rnd_nonzero = 0;
	for (int i = 0; rnd && i < 16; i++)
		rnd_nonzero |= rnd[i];
	printf("AT_RANDOM points at 16 bytes, not all zero: %s\n", yes(rnd && rnd_nonzero));
	const char *platform = (const char *)getauxval(AT_PLATFORM);
	printf("AT_PLATFORM %s\n", platform ? platform : "(none)");
	/* (glibc's getauxval(AT_HWCAP) is its own x86 value, not the kernel's.) */
	printf("~AT_HWCAP %#lx\n", getauxval(AT_HWCAP));
	printf("~AT_HWCAP2 %#lx\n", getauxval(AT_HWCAP2));
	unsigned long minsig = getauxval(AT_MINSIGSTKSZ);
	printf("~AT_MINSIGSTKSZ %lu\n", minsig);
	printf("AT_MINSIGSTKSZ holds a frame with FXSAVE state (>= 440 + 512), 16-aligned: %s\n",
	       yes(minsig >= 952 && minsig % 16 == 0));
	const char *execfn = (const char *)getauxval(AT_EXECFN);

	/* /proc/self/exe: the program file, which execve was given. */
	char exe[PATH_MAX + 1];
	long n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n >= 0)
		exe[n] = 0;
	printf("readlink /proc/self/exe: absolute: %s\n", yes(n > 0 && exe[0] == '/'));
	printf("it is AT_EXECFN (an absolute path here): %s\n",
	       yes(n > 0 && execfn && !strcmp(exe, execfn)));
	char small[4];
	printf("readlink into 4 bytes: %s (truncated, no NUL)\n",
	       res(readlink("/proc/self/exe", small, sizeof small)));
	/* (musl's readlink() turns a size of 0 into 1: the raw call.) */
	printf("readlink bufsiz 0: %s\n",
	       res(syscall(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", small, 0)));
	printf("readlink of a file that is no link: %s\n", res(readlink("/proc/self/status", exe, 64)));
	printf("readlink of a missing file: %s\n", res(readlink("/no/such/file", exe, 64)));
	printf("readlink to a bad buffer: %s\n", res(readlink("/proc/self/exe", bad, 64)));
	char self[32], pid[32];
	n = readlink("/proc/self", self, sizeof self - 1);
	self[n > 0 ? n : 0] = 0;
	snprintf(pid, sizeof pid, "%d", getpid());
	printf("readlink /proc/self is the pid: %s\n", yes(!strcmp(self, pid)));
	n = readlink("/proc/self/cwd", exe, sizeof exe - 1);
	exe[n > 0 ? n : 0] = 0;
	char cwd[PATH_MAX];
	printf("readlink /proc/self/cwd is getcwd(): %s\n",
	       yes(getcwd(cwd, sizeof cwd) && !strcmp(cwd, exe)));

	/* The stack protector's canary (glibc zeroes its low byte, musl its
	 * second one: a NUL stops string overruns from copying it). */
	unsigned long canary;
	__asm__ volatile("mov %%fs:0x28, %0" : "=r"(canary));
	int has_nul = 0;
	for (int i = 0; i < 8; i++)
		has_nul |= ((canary >> (8 * i)) & 0xff) == 0;
	printf("stack canary set, with a NUL byte: %s\n", yes(canary != 0 && has_nul));

	/* TLS: initialized and zeroed thread-locals, the TCB self-pointer. */
	unsigned long tp;
	__asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
	int zero = 1;
	for (unsigned i = 0; i < sizeof tls_zero; i++)
		zero &= tls_zero[i] == 0;
	printf("TLS: initialized %d, zeroed %s, below the thread pointer: %s\n", tls_init,
	       yes(zero), yes((unsigned long)&tls_init < tp && (unsigned long)&tls_zero < tp));
	printf("%%fs:0 is the thread pointer: %s\n", yes(tp != 0));
	printf("errno is thread-local: %s\n",
	       yes((unsigned long)&errno >= tp - (1ul << 20) && (unsigned long)&errno < tp + (1ul << 20)));

	/* String functions (ifunc-selected in glibc, IRELATIVE relocations). */
	char s1[64] = "the quick brown fox", s2[64];
	memcpy(s2, s1, sizeof s1);
	printf("strlen %zu, memcmp %d, strchr %s, strstr %s\n", strlen(s2), memcmp(s1, s2, 64),
	       strchr(s2, 'q'), strstr(s2, "brown"));
	printf("snprintf of a double: %.3f\n", 3.14159265);

	/* prctl names, /proc/self/comm and status agree. */
	char name[32] = "", comm[64], sname[64];
	prctl(PR_GET_NAME, name);
	printf("PR_GET_NAME is AT_EXECFN's last component: %s\n",
	       yes(execfn && !strncmp(name, base(execfn), 15)));
	printf("PR_SET_NAME of 21 bytes: %s\n", res(prctl(PR_SET_NAME, "libcstart-renamed-now")));
	prctl(PR_GET_NAME, name);
	first_line("/proc/self/comm", comm, sizeof comm);
	status_name(sname, sizeof sname);
	printf("PR_GET_NAME %s, /proc/self/comm %s, status Name %s\n", name, comm, sname);
	printf("PR_SET_NAME from a bad pointer: %s\n", res(prctl(PR_SET_NAME, bad)));
	printf("prctl of an unknown option: %s\n", res(prctl(0x7fff0000, 0, 0, 0, 0)));
	printf("PR_GET_DUMPABLE: %s\n", res(prctl(PR_GET_DUMPABLE)));

	/* time() agrees with CLOCK_REALTIME and stores through its pointer. */
	struct timespec ts;
	time_t t1 = 0, t0 = time(&t1);
	clock_gettime(CLOCK_REALTIME, &ts);
	printf("time() stores what it returns: %s; agrees with CLOCK_REALTIME: %s\n",
	       yes(t0 == t1 && t0 > 0), yes(ts.tv_sec - t0 <= 1 && ts.tv_sec >= t0));
	/* A wall clock (the RTC's), not the time since boot: after 2020. */
	printf("CLOCK_REALTIME is after 2020-01-01: %s\n", yes(t0 > 1577836800));
	struct timespec mono;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	printf("CLOCK_MONOTONIC is not CLOCK_REALTIME: %s\n", yes(ts.tv_sec - mono.tv_sec > 86400));

	/* isatty of a pipe: 0, ENOTTY (stdin and stdout differ between the
	 * host's harness and the kernel's console). */
	int fds[2];
	if (pipe(fds) == 0) {
		int tty = isatty(fds[0]);
		printf("isatty(pipe) %d, %s\n", tty, res(-1));
		close(fds[0]);
		close(fds[1]);
	}
	printf("~isatty(0) %d, isatty(1) %d\n", isatty(0), isatty(1));

	struct utsname u;
	uname(&u);
	printf("uname: %s %s\n", u.sysname, u.machine);
	printf("sysconf(_SC_PAGESIZE) %ld, _SC_CLK_TCK %ld\n", sysconf(_SC_PAGESIZE),
	       sysconf(_SC_CLK_TCK));
	printf("~sysconf(_SC_NPROCESSORS_ONLN) %ld\n", sysconf(_SC_NPROCESSORS_ONLN));

	volatile int jumped = 0;
	if (setjmp(jump) == 0) {
		jumped = 1;
		longjmp(jump, 7);
	}
	printf("setjmp/longjmp: %s\n", yes(jumped == 1));

	char *m = malloc(1 << 20);
	memset(m, 1, 1 << 20);
	printf("malloc 1 MiB and touch it: %s\n", yes(m && m[(1 << 20) - 1] == 1));
	free(m);

	printf("libcstart: done\n");
	return 0;
}
