/*
 * reexec: a program running itself again through /proc/self/exe, as
 * programs that re-exec themselves do: execve("/proc/self/exe") in a
 * fork child (its comm becomes "exe", its /proc/self/exe still names the
 * program file), /proc/PID/exe of the parent, posix_spawn (musl: clone
 * with CLONE_VM | CLONE_VFORK; glibc: clone3 with them), and execve from
 * a second thread, which ends the other threads and takes the process's
 * pid.
 *
 * The children print their own lines; the parent waits for each before
 * going on, so the order is fixed. Only facts that hold on any Linux are
 * printed (not the program's path, which differs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *yes(int c)
{
	return c ? "yes" : "no";
}

static void read_line(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "r");
	buf[0] = 0;
	if (f) {
		if (!fgets(buf, (int)n, f))
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
}

/* The status line "Threads:" of /proc/self/status. */
static int threads(void)
{
	char line[256];
	int n = -1;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

static int child(int argc, char **argv)
{
	char comm[64], exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[n > 0 ? n : 0] = 0;
	read_line("/proc/self/comm", comm, sizeof comm);
	printf("  child %s: argc %d, comm %s, exe the parent's %s, pid %s, Threads %d\n",
	       argv[2], argc, comm, yes(!strcmp(exe, getenv("REEXEC_EXE"))),
	       argc > 3 && atoi(argv[3]) == getpid() ? "kept" : "new", threads());
	return 7;
}

static void *exec_from_thread(void *arg)
{
	char pid[16];
	(void)arg;
	snprintf(pid, sizeof pid, "%d", getpid());
	char *av[] = {"reexec", "child", "from-a-thread", pid, NULL};
	execve("/proc/self/exe", av, environ);
	printf("execve from a thread failed: %s\n", strerror(errno));
	_exit(1);
}

int main(int argc, char **argv)
{
	int st;
	pid_t c;
	char exe[4096];

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 2 && !strcmp(argv[1], "child"))
		return child(argc, argv);
	printf("reexec: start\n");
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[n > 0 ? n : 0] = 0;
	setenv("REEXEC_EXE", exe, 1);

	c = fork();
	if (c == 0) {
		char *av[] = {"reexec", "child", "exec-self", NULL};
		execve("/proc/self/exe", av, environ);
		printf("execve(/proc/self/exe): %s\n", strerror(errno));
		_exit(1);
	}
	waitpid(c, &st, 0);
	printf("execve(/proc/self/exe) in a fork child: status %d\n", WEXITSTATUS(st));

	char path[64];
	snprintf(path, sizeof path, "/proc/%d/exe", getpid());
	c = fork();
	if (c == 0) {
		char *av[] = {"reexec", "child", "exec-parent", NULL};
		execve(path, av, environ);
		printf("execve(/proc/PPID/exe): %s\n", strerror(errno));
		_exit(1);
	}
	waitpid(c, &st, 0);
	printf("execve(/proc/<parent>/exe): status %d\n", WEXITSTATUS(st));

	char *sav[] = {"reexec", "child", "spawned", NULL};
	/* The child runs on once posix_spawn returned: wait before printing. */
	int e = posix_spawn(&c, "/proc/self/exe", NULL, NULL, sav, environ);
	if (!e)
		waitpid(c, &st, 0);
	printf("posix_spawn: %s, child status %d\n", e ? strerror(e) : "0",
	       e ? -1 : WEXITSTATUS(st));

	errno = 0;
	char *bad[] = {"reexec", NULL};
	int r = execve("/proc/999999/exe", bad, environ);
	printf("execve(/proc/999999/exe): %d %s\n", r,
	       errno == ENOENT ? "ENOENT" : strerror(errno));

	c = fork();
	if (c == 0) {
		pthread_t t;
		pthread_create(&t, NULL, exec_from_thread, NULL);
		for (;;)
			pause();
	}
	waitpid(c, &st, 0);
	printf("execve from a second thread: status %d\n", WEXITSTATUS(st));
	printf("reexec: done\n");
	return 0;
}
