/*
 * mdwe: memory-deny-write-execute (prctl PR_SET_MDWE / PR_GET_MDWE,
 * systemd's MemoryDenyWriteExecute), as Linux 6.19 has it: the argument
 * errnos, bits that can be added but never taken back (EPERM), mmap and
 * mprotect refusing writable+executable memory and memory that gains
 * exec (EACCES: map_deny_write_exec()), and inheritance: a fork child
 * and an exec'd program keep MDWE, unless PR_MDWE_NO_INHERIT was set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_GET_MDWE 66
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1UL
#endif
#ifndef PR_MDWE_NO_INHERIT
#define PR_MDWE_NO_INHERIT 2UL
#endif

#define PG 4096

static char self[256];

/* "ok" or the errno's name of a call's result. */
static const char *err(long r)
{
	if (r >= 0)
		return "ok";
	switch (errno) {
	case EINVAL: return "EINVAL";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENOMEM: return "ENOMEM";
	default: return "other";
	}
}

static long set_mdwe(unsigned long bits, unsigned long a3)
{
	return prctl(PR_SET_MDWE, bits, a3, 0L, 0L);
}

static long get_mdwe(void)
{
	return prctl(PR_GET_MDWE, 0L, 0L, 0L, 0L);
}

static const char *map(int prot)
{
	void *p = mmap(NULL, PG, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return err(-1);
	munmap(p, PG);
	return "ok";
}

/* What a process with MDWE may and may not do. */
static void exec_gain_checks(const char *who)
{
	printf("%s: mmap rwx %s, wx %s, rx %s, rw %s\n", who,
	       map(PROT_READ | PROT_WRITE | PROT_EXEC),
	       map(PROT_WRITE | PROT_EXEC), map(PROT_READ | PROT_EXEC),
	       map(PROT_READ | PROT_WRITE));
}

static void mprotect_checks(void)
{
	char *x = mmap(NULL, PG, PROT_READ | PROT_EXEC,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("rx->rx %s\n", err(mprotect(x, PG, PROT_READ | PROT_EXEC)));
	printf("rx->rwx %s\n",
	       err(mprotect(x, PG, PROT_READ | PROT_WRITE | PROT_EXEC)));
	printf("rx->r %s\n", err(mprotect(x, PG, PROT_READ)));
	printf("r(was rx)->rx %s\n",
	       err(mprotect(x, PG, PROT_READ | PROT_EXEC)));
	char *d = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	d[0] = 1;
	printf("rw->rx %s\n", err(mprotect(d, PG, PROT_READ | PROT_EXEC)));
	printf("rw->x %s\n", err(mprotect(d, PG, PROT_EXEC)));
	printf("rw->r %s\n", err(mprotect(d, 2 * PG, PROT_READ)));
	printf("r(was rw)->rx %s\n",
	       err(mprotect(d, PG, PROT_READ | PROT_EXEC)));
	printf("rw page still readable: %d\n", d[0]);
	munmap(x, PG);
	munmap(d, 2 * PG);
}

static void run_exec(const char *arg)
{
	fflush(stdout);
	char *nargv[] = {"mdwe", (char *)arg, NULL};
	char *nenv[] = {NULL};
	execve(self, nargv, nenv);
	printf("execve failed: %s\n", strerror(errno));
	_exit(1);
}

static int wait_child(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

/* Forks; the child runs f and exits 0. Returns the child's status. */
static int in_child(void (*f)(void))
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		f();
		fflush(stdout);
		_exit(0);
	}
	return wait_child(pid);
}

static void grandchild(void)
{
	printf("grandchild: PR_GET_MDWE %ld\n", get_mdwe());
	exec_gain_checks("grandchild");
}

static void execer(void)
{
	run_exec("exec");
}

/* MDWE that passes on: set in a child, checked there, in its child and
 * across its exec. */
static void inheriting(void)
{
	printf("set refuse: %s\n", err(set_mdwe(PR_MDWE_REFUSE_EXEC_GAIN, 0)));
	printf("PR_GET_MDWE %ld\n", get_mdwe());
	printf("set again: %s\n", err(set_mdwe(PR_MDWE_REFUSE_EXEC_GAIN, 0)));
	printf("unset: %s\n", err(set_mdwe(0, 0)));
	printf("add no_inherit: %s\n",
	       err(set_mdwe(PR_MDWE_REFUSE_EXEC_GAIN | PR_MDWE_NO_INHERIT, 0)));
	printf("PR_GET_MDWE %ld\n", get_mdwe());
	exec_gain_checks("inheriting");
	mprotect_checks();
	printf("grandchild status %d\n", in_child(grandchild));
	printf("exec child status %d\n", in_child(execer));
}

/* MDWE with NO_INHERIT: only this process. */
static void not_inheriting(void)
{
	printf("set refuse|no_inherit: %s\n",
	       err(set_mdwe(PR_MDWE_REFUSE_EXEC_GAIN | PR_MDWE_NO_INHERIT, 0)));
	printf("PR_GET_MDWE %ld\n", get_mdwe());
	printf("drop no_inherit: %s\n",
	       err(set_mdwe(PR_MDWE_REFUSE_EXEC_GAIN, 0)));
	exec_gain_checks("no-inherit");
	printf("grandchild status %d\n", in_child(grandchild));
	printf("exec child status %d\n", in_child(execer));
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "exec")) {
		printf("exec'd: PR_GET_MDWE %ld\n", get_mdwe());
		exec_gain_checks("exec'd");
		return 0;
	}
	printf("mdwe: start\n");
	ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
	if (l <= 0) {
		printf("readlink /proc/self/exe failed\n");
		return 1;
	}
	self[l] = 0;

	printf("PR_GET_MDWE %ld\n", get_mdwe());
	printf("get with arg2: %s\n", err(prctl(PR_GET_MDWE, 1L, 0L, 0L, 0L)));
	printf("get with arg5: %s\n", err(prctl(PR_GET_MDWE, 0L, 0L, 0L, 1L)));
	printf("set no_inherit alone: %s\n", err(set_mdwe(PR_MDWE_NO_INHERIT, 0)));
	printf("set bit 2: %s\n", err(set_mdwe(4, 0)));
	printf("set with arg3: %s\n",
	       err(set_mdwe(PR_MDWE_REFUSE_EXEC_GAIN, 1)));
	printf("set 0: %s\n", err(set_mdwe(0, 0)));
	printf("PR_GET_MDWE %ld\n", get_mdwe());
	exec_gain_checks("before");

	printf("inheriting child status %d\n", in_child(inheriting));
	printf("not-inheriting child status %d\n", in_child(not_inheriting));
	printf("PR_GET_MDWE %ld\n", get_mdwe());
	exec_gain_checks("after");
	printf("mdwe: done\n");
	return 0;
}
