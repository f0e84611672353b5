/*
 * pvm: process_vm_readv / process_vm_writev as Linux 6.19 has them, on
 * the caller itself and on a forked child: copies across iovecs of
 * different shapes, a write into the child's copy-on-write page that
 * leaves the parent's alone, partial transfers (the count of what was
 * copied before an unmapped page or a bad local buffer), and the errnos:
 * EINVAL (flags, UIO_MAXIOV, negative length), EFAULT (bad arrays,
 * unmapped, PROT_NONE or read-only remote memory), ESRCH (no such pid, a
 * zombie), and 0 for empty transfers whatever the pid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errname.h"

#define PG 4096

static long rv(pid_t pid, const struct iovec *l, unsigned long ln,
	       const struct iovec *r, unsigned long rn, unsigned long flags)
{
	return syscall(SYS_process_vm_readv, pid, l, ln, r, rn, flags);
}

static long wv(pid_t pid, const struct iovec *l, unsigned long ln,
	       const struct iovec *r, unsigned long rn, unsigned long flags)
{
	return syscall(SYS_process_vm_writev, pid, l, ln, r, rn, flags);
}

static unsigned long sum(const unsigned char *p, size_t n)
{
	unsigned long s = 0;
	for (size_t i = 0; i < n; i++)
		s = s * 31 + p[i];
	return s;
}

static char src[3 * PG];
static char dst[3 * PG];
static char cow[PG];

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("pvm: start\n");
	pid_t me = getpid();
	for (int i = 0; i < 3 * PG; i++)
		src[i] = (char)(i * 7 + 3);

	/* Self: remote [src..+5000) into local pieces of 100, 3000, 2000. */
	struct iovec l[3] = {{dst, 100}, {dst + 200, 3000}, {dst + 4000, 2000}};
	struct iovec r[2] = {{src, 3000}, {src + 3000, 2000}};
	long n = rv(me, l, 3, r, 2, 0);
	printf("self readv: %s\n", err(n));
	printf("pieces match: %d %d %d\n", !memcmp(dst, src, 100),
	       !memcmp(dst + 200, src + 100, 3000),
	       !memcmp(dst + 4000, src + 3100, 1900));
	memset(dst, 0, sizeof dst);
	struct iovec lw = {src, 3 * PG};
	struct iovec rw = {dst + 1, 3 * PG - 1};
	n = wv(me, &lw, 1, &rw, 1, 0);
	printf("self writev: %s, match %d\n", err(n),
	       !memcmp(dst + 1, src, 3 * PG - 1));

	/* Errnos. */
	struct iovec one_l = {dst, 16}, one_r = {src, 16};
	printf("flags 1: %s\n", err(rv(me, &one_l, 1, &one_r, 1, 1)));
	printf("liovcnt 1025: %s\n", err(rv(me, &one_l, 1025, &one_r, 1, 0)));
	printf("riovcnt 1025: %s\n", err(rv(me, &one_l, 1, &one_r, 1025, 0)));
	struct iovec neg = {src, (size_t)-1};
	printf("negative remote len: %s\n", err(rv(me, &one_l, 1, &neg, 1, 0)));
	printf("negative local len: %s\n", err(rv(me, &neg, 1, &one_r, 1, 0)));
	printf("bad local array: %s\n",
	       err(rv(me, (struct iovec *)8, 1, &one_r, 1, 0)));
	printf("bad remote array: %s\n",
	       err(rv(me, &one_l, 1, (struct iovec *)8, 1, 0)));
	printf("pid 0: %s\n", err(rv(0, &one_l, 1, &one_r, 1, 0)));
	printf("pid -1: %s\n", err(rv(-1, &one_l, 1, &one_r, 1, 0)));
	printf("empty local, pid -1: %s\n", err(rv(-1, &one_l, 0, &one_r, 1, 0)));
	struct iovec zr = {src, 0};
	printf("empty remote, pid -1: %s\n", err(rv(-1, &one_l, 1, &zr, 1, 0)));
	struct iovec nullr = {NULL, 16};
	printf("remote NULL: %s\n", err(rv(me, &one_l, 1, &nullr, 1, 0)));
	struct iovec nulll = {NULL, 16};
	printf("local NULL: %s\n", err(rv(me, &nulll, 1, &one_r, 1, 0)));

	/* Partial: the second remote page unmapped, a local buffer running
	 * into an unmapped page, remote PROT_NONE and read-only pages. */
	char *m = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(m, 0x11, 2 * PG);
	munmap(m + PG, PG);
	struct iovec big_l = {dst, 2 * PG}, big_r = {m, 2 * PG};
	printf("remote runs into a hole: %s\n", err(rv(me, &big_l, 1, &big_r, 1, 0)));
	struct iovec hole_l = {m + PG - 100, 1000}, src_r = {src, 1000};
	printf("local runs into a hole: %s\n", err(rv(me, &hole_l, 1, &src_r, 1, 0)));
	struct iovec segs_r[2] = {{src, 64}, {NULL, 64}};
	printf("second remote segment bad: %s\n", err(rv(me, &big_l, 1, segs_r, 2, 0)));
	mprotect(m, PG, PROT_NONE);
	struct iovec m_r = {m, 64};
	printf("remote PROT_NONE read: %s\n", err(rv(me, &one_l, 1, &m_r, 1, 0)));
	mprotect(m, PG, PROT_READ);
	printf("remote read-only read: %s\n", err(rv(me, &one_l, 1, &m_r, 1, 0)));
	printf("remote read-only write: %s\n", err(wv(me, &one_l, 1, &m_r, 1, 0)));
	munmap(m, PG);

	/* A child: read its memory, write into its copy-on-write page. */
	memset(cow, 'P', sizeof cow);
	int up[2], down[2];
	if (pipe(up) || pipe(down))
		return 1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		memset(src, 'C', PG);
		if (write(up[1], "r", 1) != 1 || read(down[0], &c, 1) != 1)
			_exit(2);
		int ok = cow[0] == 'W' && cow[PG - 1] == 'W' && cow[1] == 'P';
		printf("child: cow page sees the write: %d\n", ok);
		fflush(stdout);
		_exit(0);
	}
	char c;
	if (read(up[0], &c, 1) != 1)
		return 1;
	struct iovec cl = {dst, PG}, cr = {src, PG};
	n = rv(pid, &cl, 1, &cr, 1, 0);
	printf("child readv: %s, its data: %d\n", err(n),
	       dst[0] == 'C' && dst[PG - 1] == 'C');
	char w = 'W';
	struct iovec wl[2] = {{&w, 1}, {&w, 1}};
	struct iovec wr[2] = {{cow, 1}, {cow + PG - 1, 1}};
	printf("child writev: %s\n", err(wv(pid, wl, 2, wr, 2, 0)));
	printf("parent's cow page unchanged: %d\n",
	       cow[0] == 'P' && cow[PG - 1] == 'P');
	if (write(down[1], "g", 1) != 1)
		return 1;
	/* Wait for the exit without reaping: a zombie has no memory. Its
	 * /proc/PID/stat says Z (or is gone where zombies are not listed). */
	char path[64], st_buf[256];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	for (;;) {
		FILE *f = fopen(path, "r");
		if (!f)
			break;
		size_t got = fread(st_buf, 1, sizeof st_buf - 1, f);
		fclose(f);
		st_buf[got] = 0;
		char *rp = strrchr(st_buf, ')');
		if (rp && rp[1] == ' ' && rp[2] == 'Z')
			break;
		usleep(1000);
	}
	printf("zombie: %s\n", err(rv(pid, &cl, 1, &cr, 1, 0)));
	int st;
	waitpid(pid, &st, 0);
	printf("child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	printf("reaped: %s\n", err(rv(pid, &cl, 1, &cr, 1, 0)));
	printf("checksum of src %lu\n", sum((unsigned char *)src, sizeof src));
	printf("pvm: done\n");
	return 0;
}
