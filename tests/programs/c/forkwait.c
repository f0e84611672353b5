/*
 * forkwait: fork, wait4 and exit statuses, a child killed by SIGSEGV, and
 * copy-on-write between parent and child.
 *
 * Children print nothing (their output would interleave with the parent's
 * in a scheduler-dependent order); they report through their exit status,
 * which the parent decodes and prints. stdout is flushed before every fork
 * so that buffered text is not written twice.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

/* Forks a child that runs fn() and _exits with its result. */
static pid_t spawn(int (*fn)(void))
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn());
	return pid;
}

/* "exited N", "killed by signal N" or "?" for a wait status. */
static const char *describe(int status)
{
	static char buf[64];
	if (WIFEXITED(status))
		snprintf(buf, sizeof buf, "exited %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		/* Not WCOREDUMP: whether a core is dumped is host configuration. */
		snprintf(buf, sizeof buf, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, sizeof buf, "? %#x", status);
	return buf;
}

static int exit_0(void) { return 0; }
static int exit_7(void) { return 7; }
static int exit_255(void) { return 255; }

/* exit(300) is exit(300 & 0xff) = 44. */
static int exit_300(void) { return 300; }

static int write_null(void)
{
	*(volatile int *)0 = 1;
	return 0;
}

static pid_t parent_pid;
static int child_sees_parent(void)
{
	return getppid() == parent_pid && getpid() != parent_pid ? 0 : 1;
}

/* CoW: three buffers, static, heap and stack, written by both sides. */
enum { BUF = 64 * 1024 };
static char static_buf[BUF];
static char *heap_buf;
static char *stack_buf;

static void fill_all(char c)
{
	memset(static_buf, c, BUF);
	memset(heap_buf, c, BUF);
	memset(stack_buf, c, BUF);
}

static int all_are(char c)
{
	for (int i = 0; i < BUF; i++)
		if (static_buf[i] != c || heap_buf[i] != c || stack_buf[i] != c)
			return 0;
	return 1;
}

static int cow_child(void)
{
	/* The parent's 'P' is visible before the child writes ... */
	if (!all_are('P'))
		return 1;
	fill_all('C');
	/* ... and the child then sees only its own data. */
	return all_are('C') ? 0 : 2;
}

int main(void)
{
	printf("forkwait: start\n");
	parent_pid = getpid();
	/* No core file from the SIGSEGV child on the host. */
	struct rlimit no_core = {0, 0};
	setrlimit(RLIMIT_CORE, &no_core);

	/* Exit codes reach the parent through wait4, in the pid asked for. */
	int (*fns[])(void) = {exit_0, exit_7, exit_255, exit_300};
	const char *names[] = {"exit(0)", "exit(7)", "exit(255)", "exit(300)"};
	pid_t pids[4];
	for (int i = 0; i < 4; i++)
		pids[i] = spawn(fns[i]);
	for (int i = 3; i >= 0; i--) {
		int status = -1;
		struct rusage ru;
		pid_t got = wait4(pids[i], &status, 0, &ru);
		printf("child %s: wait4 returns its pid: %s, %s\n", names[i],
		       yes(got == pids[i]), describe(status));
	}

	/* wait4(-1) reaps any child; then there is none left. */
	pid_t a = spawn(exit_7), b = spawn(exit_0);
	int s1 = -1, s2 = -1;
	pid_t r1 = wait4(-1, &s1, 0, NULL), r2 = wait4(-1, &s2, 0, NULL);
	printf("wait4(-1) reaps both children: %s\n",
	       yes((r1 == a && r2 == b) || (r1 == b && r2 == a)));
	printf("their statuses: %s", describe(r1 == a ? s1 : s2));
	printf(", %s\n", describe(r1 == a ? s2 : s1));
	int ret = wait4(-1, &s1, 0, NULL);
	printf("wait4(-1) with no children: %d, ECHILD: %s\n", ret, yes(errno == ECHILD));
	ret = wait4(-1, &s1, WNOHANG, NULL);
	printf("wait4(-1, WNOHANG) with no children: %d, ECHILD: %s\n", ret, yes(errno == ECHILD));

	/* A child writing through NULL dies of SIGSEGV, the parent lives on. */
	pid_t c = spawn(write_null);
	int status = -1;
	waitpid(c, &status, 0);
	printf("child writing NULL: %s\n", describe(status));
	printf("WIFSIGNALED && WTERMSIG == SIGSEGV: %s\n",
	       yes(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV));

	/* getppid() in the child is the parent's pid. */
	c = spawn(child_sees_parent);
	waitpid(c, &status, 0);
	printf("child's getppid() is the parent: %s\n", yes(WIFEXITED(status) && WEXITSTATUS(status) == 0));

	/* CoW: the child writes 'C' over the parent's 'P' and exits; the
	 * parent still sees 'P' everywhere, then writes 'Q' itself. */
	char on_stack[BUF];
	stack_buf = on_stack;
	heap_buf = malloc(BUF);
	fill_all('P');
	c = spawn(cow_child);
	waitpid(c, &status, 0);
	printf("CoW child saw P, wrote C, read C: %s (%s)\n",
	       yes(WIFEXITED(status) && WEXITSTATUS(status) == 0), describe(status));
	printf("CoW parent still reads P: %s\n", yes(all_are('P')));
	fill_all('Q');
	printf("CoW parent writes Q and reads it: %s\n", yes(all_are('Q')));

	/* Parent writes first this time, while the child is still alive: the
	 * child, which waits on a pipe, must still see 'Q'. */
	int pipefd[2];
	if (pipe(pipefd)) {
		printf("pipe failed\n");
		return 1;
	}
	fflush(stdout);
	c = fork();
	if (c == 0) {
		char byte;
		close(pipefd[1]);
		if (read(pipefd[0], &byte, 1) != 1)
			_exit(3);
		_exit(all_are('Q') ? 0 : 1);
	}
	close(pipefd[0]);
	fill_all('R');
	int wrote = write(pipefd[1], "x", 1) == 1;
	close(pipefd[1]);
	waitpid(c, &status, 0);
	printf("parent wrote R first, child still reads Q: %s (%s)\n",
	       yes(wrote && WIFEXITED(status) && WEXITSTATUS(status) == 0), describe(status));
	printf("parent reads R: %s\n", yes(all_are('R')));
	free(heap_buf);

	printf("forkwait: done\n");
	return 0;
}
