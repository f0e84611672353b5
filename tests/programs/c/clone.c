/*
 * clone: clone(2), clone3(2) and vfork(2) as Linux answers them:
 * the flag combinations copy_process refuses and clone3's argument
 * checks (EINVAL, E2BIG, EFAULT); the exit signal a child chooses
 * (SIGUSR1, or none) with its siginfo, and wait4 seeing such a "clone
 * child" only with __WCLONE or __WALL (ECHILD otherwise); a vfork child
 * and a CLONE_VM child writing the parent's memory, the vfork parent
 * suspended until its child exits; CLONE_PARENT_SETTID,
 * CLONE_CHILD_SETTID and CLONE_CHILD_CLEARTID (the word cleared and
 * futex-woken at exit, as pthread_join relies on); CLONE_PIDFD through
 * clone3's pidfd and legacy clone's parent_tid (close-on-exec, readable
 * at the child's exit, a SIGKILL sent through it), EFAULT for a bad
 * pidfd pointer with no child made.
 *
 * Children do only raw system calls and plain stores (a CLONE_VM child
 * shares the parent's libc state). Only facts that hold on any Linux are
 * printed, by the parent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
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

#ifndef __WCLONE
#define __WCLONE 0x80000000
#endif
#ifndef __WALL
#define __WALL 0x40000000
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x1000
#endif
#define FUTEX_WAIT 0

struct clone_args_v2 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack,
		stack_size, tls, set_tid, set_tid_size, cgroup;
};

static const char *errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EINVAL: return "EINVAL";
	case EFAULT: return "EFAULT";
	case E2BIG: return "E2BIG";
	case ECHILD: return "ECHILD";
	case ENOSYS: return "ENOSYS";
	case EPERM: return "EPERM";
	default: return strerror(e);
	}
}

static const char *yes(int c)
{
	return c ? "yes" : "no";
}

/* A refused clone must not create anything: a child that did get made
 * exits at once with 99 and is reported. */
static void refused(const char *what, long r)
{
	if (r == 0)
		syscall(SYS_exit, 99);
	if (r > 0) {
		waitpid((pid_t)r, NULL, __WALL);
		printf("%s: created a child\n", what);
		return;
	}
	printf("%s: -1 %s\n", what, errname(errno));
}

static long raw_clone(unsigned long flags)
{
	return syscall(SYS_clone, flags, 0UL, NULL, NULL, 0UL);
}

static long raw_clone3(void *args, size_t size)
{
	return syscall(SYS_clone3, args, size);
}

static void errors(void)
{
	refused("clone SIGHAND without VM", raw_clone(CLONE_SIGHAND | SIGCHLD));
	refused("clone THREAD without SIGHAND", raw_clone(CLONE_THREAD | CLONE_VM | SIGCHLD));
	refused("clone NEWNS | FS", raw_clone(CLONE_NEWNS | CLONE_FS | SIGCHLD));
	refused("clone exit signal 65", raw_clone(65));
	refused("clone PIDFD | PARENT_SETTID", raw_clone(CLONE_PIDFD | CLONE_PARENT_SETTID | SIGCHLD));
	refused("clone PIDFD | DETACHED", raw_clone(CLONE_PIDFD | 0x400000 | SIGCHLD));

	struct clone_args_v2 ca;
	char big[4096 + 8];
	memset(&ca, 0, sizeof ca);
	ca.exit_signal = SIGCHLD;
	refused("clone3 size 63", raw_clone3(&ca, 63));
	refused("clone3 size 0", raw_clone3(&ca, 0));
	memset(big, 0, sizeof big);
	memcpy(big, &ca, sizeof ca);
	refused("clone3 size 4097", raw_clone3(big, 4097));
	big[100] = 1;
	refused("clone3 size 104, byte 100 set", raw_clone3(big, 104));
	refused("clone3 bad pointer", raw_clone3((void *)8, sizeof ca));
	ca.exit_signal = 65;
	refused("clone3 exit_signal 65", raw_clone3(&ca, sizeof ca));
	ca.exit_signal = SIGCHLD;
	ca.flags = CLONE_THREAD | CLONE_SIGHAND | CLONE_VM;
	refused("clone3 THREAD with exit_signal", raw_clone3(&ca, sizeof ca));
	ca.flags = 0x400000; /* CLONE_DETACHED */
	refused("clone3 DETACHED", raw_clone3(&ca, sizeof ca));
	ca.flags = 1ULL << 40;
	refused("clone3 unknown flag bit 40", raw_clone3(&ca, sizeof ca));
	ca.flags = 0;
	ca.stack = 0x10000;
	refused("clone3 stack without size", raw_clone3(&ca, sizeof ca));
	ca.stack = 0;
	ca.stack_size = 4096;
	refused("clone3 size without stack", raw_clone3(&ca, sizeof ca));
	ca.stack_size = 0;
	ca.set_tid_size = 1;
	refused("clone3 set_tid_size without set_tid", raw_clone3(&ca, sizeof ca));
}

static volatile int got_signo, got_code, got_status;
static volatile pid_t got_pid;

static void on_chld_like(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	got_signo = sig;
	got_code = si->si_code;
	got_pid = si->si_pid;
	got_status = si->si_status;
}

static void exit_signals(void)
{
	struct sigaction sa;
	int st = 0;
	pid_t c;
	long r;

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_chld_like;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);

	/* Exit signal SIGUSR1. */
	got_signo = 0;
	c = (pid_t)raw_clone(SIGUSR1);
	if (c == 0)
		syscall(SYS_exit, 3);
	r = waitpid(c, &st, 0);
	printf("exit signal SIGUSR1: waitpid without __WCLONE: %ld %s\n", r,
	       r < 0 ? errname(errno) : "");
	r = waitpid(-1, &st, WNOHANG);
	printf("  waitpid(-1, WNOHANG) without __WCLONE: %ld %s\n", r,
	       r < 0 ? errname(errno) : "");
	r = waitpid(c, &st, __WCLONE);
	printf("  with __WCLONE: the child %s, exited %s, status %d\n", yes(r == c),
	       yes(WIFEXITED(st)), WEXITSTATUS(st));
	printf("  signal SIGUSR1 %s, CLD_EXITED %s, si_pid the child %s, si_status %d\n",
	       yes(got_signo == SIGUSR1), yes(got_code == CLD_EXITED),
	       yes(got_pid == c), got_status);

	/* No exit signal at all. */
	got_signo = 0;
	c = (pid_t)raw_clone(0);
	if (c == 0)
		syscall(SYS_exit, 4);
	r = waitpid(c, &st, WNOHANG);
	printf("exit signal 0: waitpid without __WCLONE: %ld %s\n", r,
	       r < 0 ? errname(errno) : "");
	r = waitpid(c, &st, __WALL);
	printf("  with __WALL: the child %s, status %d, a signal came: %s\n",
	       yes(r == c), WEXITSTATUS(st), yes(got_signo != 0));

	/* A SIGCHLD child is not a clone child: __WCLONE does not see it. */
	got_signo = 0;
	c = fork();
	if (c == 0)
		_exit(5);
	r = waitpid(c, &st, __WCLONE);
	printf("fork child: waitpid with __WCLONE: %ld %s\n", r, r < 0 ? errname(errno) : "");
	r = waitpid(c, &st, __WALL);
	printf("  with __WALL: the child %s, status %d, SIGCHLD %s\n", yes(r == c),
	       WEXITSTATUS(st), yes(got_signo == SIGCHLD));

	/* clone3's exit_signal. */
	struct clone_args_v2 ca;
	memset(&ca, 0, sizeof ca);
	ca.exit_signal = SIGUSR1;
	got_signo = 0;
	c = (pid_t)raw_clone3(&ca, 64);
	if (c == 0)
		syscall(SYS_exit, 6);
	r = waitpid(c, &st, __WCLONE);
	printf("clone3 exit_signal SIGUSR1: __WCLONE sees it %s, status %d, SIGUSR1 %s\n",
	       yes(r == c), WEXITSTATUS(st), yes(got_signo == SIGUSR1));
	memset(&ca, 0, sizeof ca);
	c = (pid_t)raw_clone3(&ca, 64);
	if (c == 0)
		syscall(SYS_exit, 7);
	r = waitpid(-1, &st, 0);
	printf("clone3 exit_signal 0: waitpid(-1): %ld %s\n", r, r < 0 ? errname(errno) : "");
	r = waitpid(-1, &st, __WCLONE);
	printf("  waitpid(-1, __WCLONE): the child %s, status %d\n", yes(r == c), WEXITSTATUS(st));

	signal(SIGUSR1, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
}

static volatile int shared_word;
static volatile int child_done;

static int vm_child(void *arg)
{
	struct timespec ts = {0, 50000000L};
	shared_word = (int)(intptr_t)arg;
	/* The parent of a CLONE_VFORK child sleeps meanwhile. */
	syscall(SYS_nanosleep, &ts, NULL);
	child_done = 1;
	return 0;
}

static uint32_t ctid, ptid;
static volatile uint32_t seen_ctid;

static int tid_child(void *arg)
{
	(void)arg;
	seen_ctid = ctid;
	struct timespec ts = {0, 20000000L};
	syscall(SYS_nanosleep, &ts, NULL);
	return 0;
}

static void shared_vm(void)
{
	size_t sz = 64 * 1024;
	char *stack = mmap(NULL, sz, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int st;
	pid_t c;

	shared_word = 0;
	c = vfork();
	if (c == 0) {
		shared_word = 41;
		_exit(0);
	}
	waitpid(c, &st, 0);
	printf("vfork child wrote the parent's memory: %d\n", shared_word);

	shared_word = 0;
	child_done = 0;
	c = clone(vm_child, stack + sz, CLONE_VM | CLONE_VFORK | SIGCHLD, (void *)42);
	printf("CLONE_VM | CLONE_VFORK: parent resumed after the child ended: %s, word %d\n",
	       yes(child_done), shared_word);
	waitpid(c, &st, 0);

	shared_word = 0;
	child_done = 0;
	c = clone(vm_child, stack + sz, CLONE_VM | SIGCHLD, (void *)43);
	waitpid(c, &st, 0);
	printf("CLONE_VM child: word %d, exit status %d\n", shared_word, WEXITSTATUS(st));

	/* The tid words: set in the parent and the child, cleared and
	 * woken at the child's exit (its Mm is shared, so it is cleared). */
	ctid = 1;
	ptid = 0;
	seen_ctid = 0;
	c = clone(tid_child, stack + sz,
		  CLONE_VM | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID |
			  CLONE_CHILD_CLEARTID | SIGCHLD,
		  NULL, &ptid, NULL, &ctid);
	printf("PARENT_SETTID: the child's pid %s\n", yes(ptid == (uint32_t)c));
	uint32_t v;
	int woke = 0;
	while ((v = __atomic_load_n(&ctid, __ATOMIC_SEQ_CST)) != 0) {
		/* A shared futex wait: the exit's wake is a shared one. */
		if (syscall(SYS_futex, &ctid, FUTEX_WAIT, v, NULL, NULL, 0) == 0)
			woke = 1;
	}
	printf("CHILD_SETTID: the child saw its tid %s; CHILD_CLEARTID: 0 at exit, "
	       "a waiter woken or the word already 0: %s\n",
	       yes(seen_ctid == (uint32_t)c), yes(woke || ctid == 0));
	waitpid(c, &st, 0);
	munmap(stack, sz);
}

static void pidfds(void)
{
	struct clone_args_v2 ca;
	int pfd = -1, st;
	pid_t c;

	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_PIDFD;
	ca.pidfd = (uintptr_t)&pfd;
	ca.exit_signal = SIGCHLD;
	c = (pid_t)raw_clone3(&ca, 64);
	if (c == 0) {
		struct timespec ts = {0, 50000000L};
		syscall(SYS_nanosleep, &ts, NULL);
		syscall(SYS_exit, 9);
	}
	struct pollfd pf = {.fd = pfd, .events = POLLIN};
	int pr = poll(&pf, 1, 10000);
	printf("clone3 CLONE_PIDFD: an fd %s, close-on-exec %s, readable at exit %s\n",
	       yes(pfd > 2), yes(fcntl(pfd, F_GETFD) == FD_CLOEXEC),
	       yes(pr == 1 && (pf.revents & POLLIN)));
	waitpid(c, &st, 0);
	printf("  the child: status %d\n", WEXITSTATUS(st));
	close(pfd);

	int lfd = -1;
	c = (pid_t)syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, 0UL, &lfd, NULL, 0UL);
	if (c == 0) {
		for (;;)
			syscall(SYS_pause);
	}
	long k = syscall(SYS_pidfd_send_signal, lfd, SIGKILL, NULL, 0);
	waitpid(c, &st, 0);
	printf("clone CLONE_PIDFD: the fd through parent_tid %s, SIGKILL through it %ld, "
	       "killed %s\n",
	       yes(lfd > 2), k, yes(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL));
	close(lfd);

	ca.pidfd = 8;
	refused("clone3 CLONE_PIDFD, bad pidfd pointer", raw_clone3(&ca, 64));
	refused("clone CLONE_PIDFD, bad pidfd pointer",
		syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, 0UL, (void *)8, NULL, 0UL));
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("clone: start\n");
	errors();
	exit_signals();
	shared_vm();
	pidfds();
	printf("clone: done\n");
	return 0;
}
