/*
 * execkill: what needs the kernel's initramfs and command line, so it runs
 * under QEMU only (no host comparison): a packed file read back, execve of
 * a packed program (itself, with an argument that makes it the "child"
 * half), vfork + execve, kill of a looping child, the command line's
 * NAME=VALUE parameter in the environment and /proc/cmdline, thp_anon=
 * in the mTHP sysfs files.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *yes(int c) { return c ? "yes" : "no"; }

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "child")) {
		printf("exec'd: argv[0] %s, argc %d\n", argv[0], argc);
		return 9;
	}
	printf("execkill: start\n");
	printf("argv[1] from the command line: %s\n", argc > 1 ? argv[1] : "(none)");
	const char *mode = getenv("mode");
	printf("env mode=%s\n", mode ? mode : "(unset)");

	char buf[128];
	int fd = open("/data/note.txt", O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
	buf[n > 0 ? n : 0] = 0;
	printf("packed file: %s", n > 0 ? buf : "(unreadable)\n");
	close(fd);

	fd = open("/proc/cmdline", O_RDONLY);
	n = read(fd, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	close(fd);
	printf("/proc/cmdline has mode=fast: %s\n", yes(strstr(buf, "mode=fast") != NULL));

	/* thp_anon=64K:always on the command line: 64 KiB folios on. */
	static const char *const sizes[] = {"16", "64"};
	for (int i = 0; i < 2; i++) {
		char path[96];
		snprintf(path, sizeof path,
			 "/sys/kernel/mm/transparent_hugepage/hugepages-%skB/enabled", sizes[i]);
		fd = open(path, O_RDONLY);
		n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
		buf[n > 0 ? n : 0] = 0;
		close(fd);
		printf("hugepages-%skB/enabled: %s", sizes[i], n > 0 ? buf : "(unreadable)\n");
	}

	char *cargv[] = {"/init", "child", NULL};
	char *cenv[] = {NULL};
	int st;
	pid_t c = fork();
	if (c == 0) {
		execve("/init", cargv, cenv);
		_exit(99);
	}
	waitpid(c, &st, 0);
	printf("fork+execve child exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

	c = vfork();
	if (c == 0) {
		execve("/init", cargv, cenv);
		_exit(98);
	}
	waitpid(c, &st, 0);
	printf("vfork+execve child exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

	errno = 0;
	int r = execve("/no/such/program", cargv, cenv);
	printf("execve of a missing file: %d, ENOENT: %s\n", r, yes(errno == ENOENT));
	r = execve("/data/note.txt", cargv, cenv);
	printf("execve of a non-executable file: EACCES: %s\n", yes(r == -1 && errno == EACCES));

	c = fork();
	if (c == 0)
		for (;;)
			getppid();
	kill(c, SIGTERM);
	waitpid(c, &st, 0);
	printf("looping child killed by SIGTERM: %s\n", yes(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM));
	printf("kill of a missing pid: ESRCH: %s\n", yes(kill(99999, 0) == -1 && errno == ESRCH));
	printf("execkill: done\n");
	return 0;
}
