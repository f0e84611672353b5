/*
 * sharedanon: MAP_SHARED | MAP_ANONYMOUS memory is one object that a
 * parent and its forked children all map (Linux's shmem_zero_setup()).
 *
 * Parent and child talk through the mapping both ways, on pages touched
 * before fork and pages first touched after it; MADV_DONTNEED on a shared
 * page drops only the mapping (the data is re-read from the object);
 * mprotect of part of it splits the VMA without unsharing; mremap grows it
 * (the object keeps its size: the new part raises SIGBUS) and moves it;
 * /proc/self/maps shows it as "/dev/zero (deleted)"; /proc/self/status
 * counts it as RssShmem; a shared futex word in it, mapped at different
 * addresses in two processes, wakes the other process's waiter (keyed by
 * object and offset, not by address).
 *
 * Children print nothing: they report through their exit status (1 + the
 * number of the check that failed), which the parent prints. Handshakes
 * spin on volatile words in the mapping, with sched_yield().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096UL
/* <linux/futex.h> is not on musl-gcc's path. */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

/* Forks a child that runs fn(arg) and _exits with its result. */
static pid_t spawn(int (*fn)(volatile uint64_t *), volatile uint64_t *arg)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

static int wait_status(pid_t pid)
{
	int status;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 1000 + WTERMSIG(status);
}

/* Waits until *w == want (another process sets it). */
static int await(volatile uint64_t *w, uint64_t want)
{
	for (long i = 0; i < 100000000L; i++) {
		if (*w == want)
			return 1;
		sched_yield();
	}
	return 0;
}

/*
 * Layout of the 8-page region (words are at the start of each page):
 * page 0: written before fork; page 1: written by the child after fork;
 * page 2: written by the parent after fork; page 3: handshake flags;
 * page 4: MADV_DONTNEED'd by the child; page 5..7: untouched until late.
 */
enum { PAGES = 8 };
#define W(p) ((volatile uint64_t *)(region + (p) * PG))
static char *region;

static int child_talk(volatile uint64_t *flags)
{
	if (*W(0) != 0x1111)
		return 1;                       /* the page from before fork */
	*W(1) = 0x2222;                         /* touched first after fork */
	flags[0] = 1;                           /* "written" */
	if (!await(&flags[1], 1))
		return 2;
	if (*W(2) != 0x3333)                    /* the parent's post-fork page */
		return 3;
	/* DONTNEED drops our mapping only: the data stays in the object. */
	*W(4) = 0x4444;
	if (madvise(region + 4 * PG, PG, MADV_DONTNEED) != 0)
		return 4;
	if (*W(4) != 0x4444)
		return 5;
	flags[2] = 1;
	if (!await(&flags[3], 1))
		return 6;
	/* The parent made page 5 read-only in its own mapping: ours is not. */
	*W(5) = 0x5555;
	flags[4] = 1;
	return 0;
}

static sigjmp_buf bus_jmp;
static volatile int bus_code;

static void on_bus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	bus_code = si->si_code;
	siglongjmp(bus_jmp, 1);
}

/* Whether touching *p raises SIGBUS (and with which si_code). */
static int raises_sigbus(volatile uint64_t *p, int write)
{
	bus_code = 0;
	if (sigsetjmp(bus_jmp, 1) == 0) {
		if (write)
			*p = 1;
		else
			(void)*p;
		return 0;
	}
	return 1;
}

/* RssShmem of /proc/self/status, in kB (-1 if absent). */
static long rss_shmem_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "RssShmem: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static long futex(volatile uint32_t *uaddr, int op, uint32_t val)
{
	return syscall(SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

/* Sleeps on the shared futex word until it is non-zero. */
static int child_futex(volatile uint64_t *base)
{
	volatile uint32_t *word = (volatile uint32_t *)base;
	while (*word == 0) {
		long r = futex(word, FUTEX_WAIT, 0);
		if (r != 0 && errno != EAGAIN && errno != EINTR)
			return 1;
	}
	return *word == 7 ? 0 : 2;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000 * 1000 };
	nanosleep(&ts, NULL);
}

static void maps_line(void *addr)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long want = (unsigned long)addr;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long s, e, off;
		char perm[8];
		unsigned dmaj, dmin;
		unsigned long ino;
		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &s, &e, perm, &off,
			   &dmaj, &dmin, &ino) != 7 || s != want)
			continue;
		char *name = strchr(line, '/');
		if (name)
			name[strcspn(name, "\n")] = 0;
		printf("maps: %lu pages %s offset %lu inode>0 %s name %s\n",
		       (e - s) / PG, perm, off, yes(ino > 0),
		       name ? name : "(none)");
	}
	if (f)
		fclose(f);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("sharedanon: start\n");
	region = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED) {
		printf("mmap failed: %d\n", errno);
		return 1;
	}
	maps_line(region);
	*W(0) = 0x1111;
	printf("RssShmem counts the page: %s\n", yes(rss_shmem_kb() >= 4));
	volatile uint64_t *flags = W(3);

	pid_t pid = spawn(child_talk, flags);
	printf("child wrote its page: %s\n", yes(await(&flags[0], 1)));
	printf("parent reads the child's post-fork page: %s\n",
	       yes(*W(1) == 0x2222));
	*W(2) = 0x3333;
	flags[1] = 1;
	printf("child's DONTNEED re-read its data: %s\n",
	       yes(await(&flags[2], 1)));
	printf("parent sees the child's DONTNEED'd page: %s\n",
	       yes(*W(4) == 0x4444));
	/* Our own DONTNEED, then the page comes back from the object. */
	printf("parent DONTNEED: %d, data kept: %s\n",
	       madvise(region, 2 * PG, MADV_DONTNEED),
	       yes(*W(0) == 0x1111 && *W(1) == 0x2222));
	/* mprotect part of it: the VMA splits, the pages stay shared. */
	printf("mprotect page 5 read-only: %d\n",
	       mprotect(region + 5 * PG, PG, PROT_READ));
	flags[3] = 1;
	printf("child wrote page 5: %s\n", yes(await(&flags[4], 1)));
	printf("read-only page 5 shows the child's write: %s\n",
	       yes(*W(5) == 0x5555));
	printf("child: exit %d\n", wait_status(pid));
	printf("mprotect back: %d\n",
	       mprotect(region + 5 * PG, PG, PROT_READ | PROT_WRITE));
	maps_line(region);

	/* mremap grows and moves it: old pages keep their data and sharing.
	 * A child forked first keeps it at the old address, waiting on a
	 * shared futex in page 6. */
	pid = spawn(child_futex, W(6));
	char *grown = mremap(region, PAGES * PG, 2 * PAGES * PG, MREMAP_MAYMOVE);
	printf("mremap grow: %s\n", yes(grown != MAP_FAILED));
	if (grown == MAP_FAILED)
		return 1;
	region = grown;
	maps_line(region);
	printf("moved data intact: %s\n",
	       yes(*W(0) == 0x1111 && *W(2) == 0x3333 && *W(5) == 0x5555));
	struct sigaction sa = { 0 };
	sa.sa_sigaction = on_bus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);
	int bus = raises_sigbus(W(PAGES), 0);
	printf("read past the object: SIGBUS %s (si_code %d)\n", yes(bus),
	       bus_code);
	bus = raises_sigbus(W(2 * PAGES - 1), 1);
	printf("write past the object: SIGBUS %s (si_code %d)\n", yes(bus),
	       bus_code);
	printf("last page of the object still works: %s\n",
	       yes(!raises_sigbus(W(PAGES - 1), 1)));

	/* Wake the child, who sleeps on its own address of page 6's word:
	 * a wake that finds it (returns 1) before the word changes shows
	 * the key is the object and offset. Then release it for good. */
	volatile uint32_t *word = (volatile uint32_t *)W(6);
	long found = 0;
	for (int i = 0; i < 500 && found != 1; i++) {
		found = futex(word, FUTEX_WAKE, 1);
		if (found != 1)
			sleep_ms(10);
	}
	printf("futex wake found the other process's waiter: %s\n",
	       yes(found == 1));
	*word = 7;
	int status = -1;
	for (int i = 0; i < 500; i++) {
		futex(word, FUTEX_WAKE, 1);
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		sleep_ms(10);
	}
	if (!WIFEXITED(status)) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	printf("futex child: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0
					     ? "exit 0" : "stuck or failed");

	printf("munmap: %d\n", munmap(region, 2 * PAGES * PG));
	printf("sharedanon: done\n");
	return 0;
}
