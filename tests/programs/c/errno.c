/*
 * errno: Linux's error codes for bad arguments, one syscall at a time.
 *
 * Every call goes through musl's syscall(), which returns the kernel's
 * result unchanged (-1 with errno set from -ERRNO), so a line shows exactly
 * what the kernel said: `label: -EFAULT`, or `label: N` for a success whose
 * value is the same on every kernel. Each case was checked against Linux
 * (6.18 on the development host); the test compares the lines with a run
 * of this program on the host.
 *
 * Bad pointers are 1 (never mapped: the first page is not mappable) and
 * BAD_HIGH, a canonical kernel-half address. syscall() is variadic and
 * reads every argument as a long, so negative numbers are written -1L (an
 * int -1 would arrive as 0xffffffff).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BAD ((void *)1)
#define BAD_HIGH ((void *)0xffff800000000000ul)

static const char *errname(int e)
{
	switch (e) {
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EBADF) E(ECHILD) E(EAGAIN) E(ENOMEM)
	E(EACCES) E(EFAULT) E(EEXIST) E(ENOTDIR) E(EISDIR) E(EINVAL) E(EMFILE)
	E(ENOTTY) E(ESPIPE) E(EROFS) E(ERANGE) E(ENOSYS) E(EOPNOTSUPP) E(ENAMETOOLONG)
#undef E
	}
	static char buf[16];
	snprintf(buf, sizeof buf, "errno %d", e);
	return buf;
}

/* Prints "label: -ENAME" or "label: RET". */
static void show(const char *label, long ret)
{
	if (ret == -1)
		printf("%s: -%s\n", label, errname(errno));
	else
		printf("%s: %ld\n", label, ret);
}

#define T(label, call)                                                                             \
	do {                                                                                       \
		errno = 0;                                                                         \
		show(label, (long)(call));                                                         \
	} while (0)

int main(void)
{
	char buf[256];
	struct stat st;
	struct timespec ts;
	struct iovec iov = {buf, sizeof buf};
	unsigned long set = 0;
	/* A readable regular-ish file every kernel has. */
	int fd = open("/proc/self/status", O_RDONLY);

	printf("errno: start\n");
	printf("open /proc/self/status: %s\n", fd >= 0 ? "ok" : "failed");

	/* read / write */
	T("read bad fd", syscall(SYS_read, -1L, buf, 1));
	T("read closed fd 99", syscall(SYS_read, 99, buf, 1));
	T("read bad buffer", syscall(SYS_read, fd, BAD, 16));
	T("read kernel buffer", syscall(SYS_read, fd, BAD_HIGH, 16));
	T("read 0 bytes", syscall(SYS_read, fd, buf, 0));
	T("write bad fd", syscall(SYS_write, -1L, "x", 1));
	T("write read-only fd", syscall(SYS_write, fd, "x", 1));
	T("write bad buffer", syscall(SYS_write, 1, BAD, 16));
	T("write 0 bytes", syscall(SYS_write, 1, buf, 0));

	/* readv / writev */
	T("readv bad fd", syscall(SYS_readv, -1L, &iov, 1));
	T("readv bad iov", syscall(SYS_readv, fd, BAD, 1));
	T("readv iovcnt -1", syscall(SYS_readv, fd, &iov, -1L));
	T("readv iovcnt 1025", syscall(SYS_readv, fd, &iov, 1025));
	T("writev bad fd", syscall(SYS_writev, -1L, &iov, 1));
	T("writev bad iov", syscall(SYS_writev, 1, BAD, 1));
	T("writev iovcnt -1", syscall(SYS_writev, 1, &iov, -1L));
	T("writev iovcnt 0", syscall(SYS_writev, 1, &iov, 0));

	/* open / openat / close */
	T("open NULL path", syscall(SYS_open, NULL, O_RDONLY));
	T("open bad path", syscall(SYS_open, BAD, O_RDONLY));
	T("open missing file", syscall(SYS_open, "/nonexistent", O_RDONLY));
	T("open empty path", syscall(SYS_open, "", O_RDONLY));
	T("open file as dir", syscall(SYS_open, "/proc/self/status/x", O_RDONLY));
	T("open O_DIRECTORY on a file", syscall(SYS_open, "/proc/self/status", O_RDONLY | O_DIRECTORY));
	T("openat bad dirfd", syscall(SYS_openat, -1L, "relative", O_RDONLY));
	T("openat closed dirfd", syscall(SYS_openat, 99, "relative", O_RDONLY));
	T("openat bad path", syscall(SYS_openat, AT_FDCWD, BAD, O_RDONLY));
	T("close bad fd", syscall(SYS_close, -1L));
	T("close closed fd 99", syscall(SYS_close, 99));

	/* lseek / fstat / newfstatat */
	T("lseek bad fd", syscall(SYS_lseek, -1L, 0, SEEK_SET));
	T("lseek bad whence", syscall(SYS_lseek, fd, 0, 99));
	T("lseek negative offset", syscall(SYS_lseek, fd, -1L, SEEK_SET));
	T("lseek to 0", syscall(SYS_lseek, fd, 0, SEEK_SET));
	T("fstat bad fd", syscall(SYS_fstat, -1L, &st));
	T("fstat bad buffer", syscall(SYS_fstat, fd, BAD));
	T("fstat", syscall(SYS_fstat, fd, &st));
	T("fstatat bad path", syscall(SYS_newfstatat, AT_FDCWD, BAD, &st, 0));
	T("fstatat bad buffer", syscall(SYS_newfstatat, AT_FDCWD, "/proc/self/status", BAD, 0));
	T("fstatat bad flags", syscall(SYS_newfstatat, AT_FDCWD, "/proc/self/status", &st, 0x10000000));
	T("fstatat missing file", syscall(SYS_newfstatat, AT_FDCWD, "/nonexistent", &st, 0));
	T("fstatat bad dirfd", syscall(SYS_newfstatat, -1L, "relative", &st, 0));
	T("fstatat empty path", syscall(SYS_newfstatat, AT_FDCWD, "", &st, 0));

	/* ioctl / poll / fcntl */
	T("ioctl bad fd", syscall(SYS_ioctl, -1L, TCGETS, buf));
	T("ioctl TCGETS on a /proc file", syscall(SYS_ioctl, fd, TCGETS, buf));
	struct pollfd pfd = {.fd = 99, .events = POLLIN};
	T("poll bad pointer", syscall(SYS_poll, BAD, 1, 0));
	T("poll nfds > RLIMIT_NOFILE", syscall(SYS_poll, &pfd, 0x7fffffff, 0));
	T("poll closed fd", syscall(SYS_poll, &pfd, 1, 0));
	printf("poll closed fd: revents POLLNVAL: %s\n", pfd.revents == POLLNVAL ? "yes" : "no");
	T("poll nothing, timeout 0", syscall(SYS_poll, NULL, 0, 0));
	T("fcntl bad fd", syscall(SYS_fcntl, -1L, F_GETFD));
	T("fcntl bad cmd", syscall(SYS_fcntl, fd, 9999));
	T("fcntl F_GETFD", syscall(SYS_fcntl, fd, F_GETFD));
	T("fcntl F_SETFD FD_CLOEXEC", syscall(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC));
	T("fcntl F_GETFD after", syscall(SYS_fcntl, fd, F_GETFD));
	T("fcntl F_DUPFD -1", syscall(SYS_fcntl, fd, F_DUPFD, -1L));
	T("fcntl F_GETFL", syscall(SYS_fcntl, fd, F_GETFL) & O_ACCMODE);

	/* mmap and friends */
	long RW = PROT_READ | PROT_WRITE, PA = MAP_PRIVATE | MAP_ANONYMOUS;
	T("mmap length 0", syscall(SYS_mmap, 0, 0, RW, PA, -1L, 0));
	T("mmap no SHARED/PRIVATE", syscall(SYS_mmap, 0, 4096, RW, MAP_ANONYMOUS, -1L, 0));
	T("mmap unaligned offset", syscall(SYS_mmap, 0, 4096, RW, MAP_PRIVATE, fd, 1));
	T("mmap bad fd", syscall(SYS_mmap, 0, 4096, RW, MAP_PRIVATE, -1L, 0));
	T("mmap MAP_FIXED unaligned", syscall(SYS_mmap, 0x10000001, 4096, RW, PA | MAP_FIXED, -1L, 0));
	T("mmap MAP_FIXED kernel half", syscall(SYS_mmap, BAD_HIGH, 4096, RW, PA | MAP_FIXED, -1L, 0));
	T("mmap length 2^62", syscall(SYS_mmap, 0, 1ul << 62, RW, PA, -1L, 0));
	char *m = (char *)syscall(SYS_mmap, 0, 3 * 4096, RW, PA, -1L, 0);
	printf("mmap 3 pages: %s\n", m != MAP_FAILED ? "ok" : "failed");
	T("munmap unaligned", syscall(SYS_munmap, m + 1, 4096));
	T("munmap length 0", syscall(SYS_munmap, m, 0));
	T("munmap kernel half", syscall(SYS_munmap, BAD_HIGH, 4096));
	T("mprotect unaligned", syscall(SYS_mprotect, m + 1, 4096, PROT_READ));
	T("mprotect bad prot", syscall(SYS_mprotect, m, 4096, 0x100));
	T("mprotect length 0", syscall(SYS_mprotect, m, 0, PROT_READ));
	T("madvise unaligned", syscall(SYS_madvise, m + 1, 4096, MADV_DONTNEED));
	T("madvise bad advice", syscall(SYS_madvise, m, 4096, 9999));
	T("madvise length 0", syscall(SYS_madvise, m, 0, MADV_DONTNEED));
	T("mremap unaligned", syscall(SYS_mremap, m + 1, 4096, 8192, 0));
	T("mremap new length 0", syscall(SYS_mremap, m, 4096, 0, 0));
	T("mremap bad flags", syscall(SYS_mremap, m, 4096, 8192, 0x80));
	T("mremap FIXED without MAYMOVE", syscall(SYS_mremap, m, 4096, 8192, MREMAP_FIXED, m + 8192));
	/* Hole in the middle: page 1 unmapped, then calls that need it. */
	syscall(SYS_munmap, m + 4096, 4096);
	T("munmap of a hole", syscall(SYS_munmap, m + 4096, 4096));
	T("mprotect over a hole", syscall(SYS_mprotect, m, 3 * 4096, PROT_READ));
	T("madvise DONTNEED over a hole", syscall(SYS_madvise, m, 3 * 4096, MADV_DONTNEED));
	T("mremap of a hole", syscall(SYS_mremap, m + 4096, 4096, 8192, MREMAP_MAYMOVE));
	T("mremap grow onto the next mapping, no MAYMOVE", syscall(SYS_mremap, m, 4096, 3 * 4096, 0));
	syscall(SYS_munmap, m, 3 * 4096);
	long brk0 = syscall(SYS_brk, 0);
	printf("brk(1) returns the current break: %s\n", syscall(SYS_brk, 1) == brk0 ? "yes" : "no");
	printf("brk(kernel half) returns the current break: %s\n",
	       syscall(SYS_brk, BAD_HIGH) == brk0 ? "yes" : "no");

	/* signals */
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		unsigned long mask;
	} act = {SIG_IGN, 0, 0, 0}, old;
	T("rt_sigaction signal 0", syscall(SYS_rt_sigaction, 0, &act, NULL, 8));
	T("rt_sigaction signal 65", syscall(SYS_rt_sigaction, 65, &act, NULL, 8));
	T("rt_sigaction SIGKILL", syscall(SYS_rt_sigaction, SIGKILL, &act, NULL, 8));
	T("rt_sigaction SIGSTOP", syscall(SYS_rt_sigaction, SIGSTOP, &act, NULL, 8));
	T("rt_sigaction SIGKILL query", syscall(SYS_rt_sigaction, SIGKILL, NULL, &old, 8));
	T("rt_sigaction sigsetsize 4", syscall(SYS_rt_sigaction, SIGUSR1, &act, NULL, 4));
	T("rt_sigaction bad act", syscall(SYS_rt_sigaction, SIGUSR1, BAD, NULL, 8));
	T("rt_sigaction bad oldact", syscall(SYS_rt_sigaction, SIGUSR1, NULL, BAD, 8));
	T("rt_sigprocmask bad how", syscall(SYS_rt_sigprocmask, 99, &set, NULL, 8));
	T("rt_sigprocmask sigsetsize 4", syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, 4));
	T("rt_sigprocmask bad set", syscall(SYS_rt_sigprocmask, SIG_BLOCK, BAD, NULL, 8));
	T("rt_sigprocmask bad oldset", syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, BAD, 8));
	T("rt_sigprocmask query", syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &set, 8));
	stack_t ss = {.ss_sp = buf, .ss_flags = 0x1234, .ss_size = 65536};
	T("sigaltstack bad flags", syscall(SYS_sigaltstack, &ss, NULL));
	ss.ss_flags = 0;
	ss.ss_size = 1024;
	T("sigaltstack too small", syscall(SYS_sigaltstack, &ss, NULL));
	T("sigaltstack bad pointer", syscall(SYS_sigaltstack, BAD, NULL));
	T("sigaltstack bad old pointer", syscall(SYS_sigaltstack, NULL, BAD));

	/* random, time */
	T("getrandom bad flags", syscall(SYS_getrandom, buf, 16, 0xff00));
	T("getrandom bad buffer", syscall(SYS_getrandom, BAD, 16, 0));
	T("getrandom 0 bytes", syscall(SYS_getrandom, buf, 0, 0));
	T("getrandom 16 bytes", syscall(SYS_getrandom, buf, 16, 0));
	T("clock_gettime bad clock", syscall(SYS_clock_gettime, 999, &ts));
	T("clock_gettime bad pointer", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, BAD));
	T("clock_getres bad clock", syscall(SYS_clock_getres, 999, &ts));
	T("clock_getres bad pointer", syscall(SYS_clock_getres, CLOCK_MONOTONIC, BAD));
	T("clock_getres NULL", syscall(SYS_clock_getres, CLOCK_MONOTONIC, NULL));
	T("gettimeofday bad pointer", syscall(SYS_gettimeofday, BAD, NULL));
	T("gettimeofday NULL, NULL", syscall(SYS_gettimeofday, NULL, NULL));
	struct timespec bad_ns = {0, 1000000000}, neg = {-1, 0};
	T("nanosleep tv_nsec 1e9", syscall(SYS_nanosleep, &bad_ns, NULL));
	T("nanosleep tv_sec -1", syscall(SYS_nanosleep, &neg, NULL));
	T("nanosleep bad pointer", syscall(SYS_nanosleep, BAD, NULL));

	/* identity, limits, scheduling */
	T("uname bad pointer", syscall(SYS_uname, BAD));
	T("getrusage bad who", syscall(SYS_getrusage, 99, buf));
	T("getrusage bad pointer", syscall(SYS_getrusage, RUSAGE_SELF, BAD));
	struct rlimit rl;
	T("getrlimit bad resource", syscall(SYS_getrlimit, 999, &rl));
	T("getrlimit bad pointer", syscall(SYS_getrlimit, RLIMIT_STACK, BAD));
	T("prlimit64 bad resource", syscall(SYS_prlimit64, 0, 999, NULL, &rl));
	T("prlimit64 bad pointer", syscall(SYS_prlimit64, 0, RLIMIT_STACK, NULL, BAD));
	T("prlimit64 no such pid", syscall(SYS_prlimit64, 0x3fffffff, RLIMIT_STACK, NULL, &rl));
	T("sched_getaffinity size 4", syscall(SYS_sched_getaffinity, 0, 4, buf));
	T("sched_getaffinity bad pointer", syscall(SYS_sched_getaffinity, 0, 8, BAD));
	T("sched_getaffinity no such pid", syscall(SYS_sched_getaffinity, 0x3fffffff, 8, buf));

	/* processes */
	T("wait4 no children", syscall(SYS_wait4, -1L, NULL, 0, NULL));
	T("wait4 bad options", syscall(SYS_wait4, -1L, NULL, 0x12345678, NULL));
	T("kill no such pid", syscall(SYS_kill, 0x3fffffff, 0));
	T("kill bad signal", syscall(SYS_kill, getpid(), 999));
	T("kill self signal 0", syscall(SYS_kill, getpid(), 0));
	T("arch_prctl bad code", syscall(SYS_arch_prctl, 0x9999, 0));
	T("arch_prctl ARCH_GET_FS bad pointer", syscall(SYS_arch_prctl, 0x1003, BAD));
	char *argv[] = {"/nonexistent", NULL};
	T("execve missing file", syscall(SYS_execve, "/nonexistent", argv, argv + 1));
	T("execve bad path", syscall(SYS_execve, BAD, argv, argv + 1));
	T("mkdir /proc", syscall(SYS_mkdir, "/proc", 0755));
	T("mkdir bad path", syscall(SYS_mkdir, BAD, 0755));

	/*
	 * Copies to and from user memory at their edges: into a page not
	 * faulted in yet (the copy itself faults it in), across and up to
	 * the end of a mapping, into read-only and PROT_NONE pages, out of a
	 * page only the zero page backs, and a child's copy into a page it
	 * shares copy-on-write with its parent (the copy breaks the CoW).
	 */
	char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int pp[2];
	if (two == MAP_FAILED || ro == MAP_FAILED || none == MAP_FAILED || pipe(pp) != 0) {
		printf("uaccess set-up failed\n");
		return 1;
	}
	munmap(two + 4096, 4096);
	T("clock_gettime into an untouched page", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, two + 64));
	T("clock_gettime up to a mapping's end",
	  syscall(SYS_clock_gettime, CLOCK_MONOTONIC, two + 4096 - 16));
	T("clock_gettime across a mapping's end",
	  syscall(SYS_clock_gettime, CLOCK_MONOTONIC, two + 4096 - 8));
	T("clock_gettime into a read-only page", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, ro));
	T("clock_gettime into a PROT_NONE page", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, none));
	T("pipe write from a zero-page-backed page", syscall(SYS_write, pp[1], ro, 16));
	T("pipe write from a PROT_NONE page", syscall(SYS_write, pp[1], none, 16));
	T("pipe read into a read-only page", syscall(SYS_read, pp[0], ro, 16));
	T("rt_sigprocmask old set across a mapping's end",
	  syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, two + 4096 - 4, 8));
	char saved[16];
	memcpy(saved, two + 64, sizeof saved);
	pid_t child = fork();
	if (child == 0) {
		long r = syscall(SYS_clock_gettime, CLOCK_REALTIME, two + 64);
		_exit(r == 0 && memcmp(saved, two + 64, sizeof saved) != 0 ? 7 : 8);
	}
	int status = 0;
	waitpid(child, &status, 0);
	printf("child's clock_gettime into a copy-on-write page: %s\n",
	       WIFEXITED(status) && WEXITSTATUS(status) == 7 ? "ok" : "failed");
	printf("parent's copy unchanged: %s\n", memcmp(saved, two + 64, sizeof saved) ? "no" : "yes");

	printf("errno: done\n");
	return 0;
}
