/*
 * procpid: /proc/PID of another process, as Linux shows it: a child's
 * status (Pid, PPid, Threads), stat (pid, state field count, arg/env
 * addresses that bracket the strings), statm, cmdline and environ (the
 * strings as exec laid them out), exe, task/, oom_score_adj written and
 * read back (range-checked), oom_score moving with it; /proc lists the child; a pid that names no process is ENOENT.
 *
 * The program re-executes itself with a fixed argv and environment so
 * that cmdline and environ are the same on any Linux; the values that
 * depend on the kernel are compared, not printed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

/* The whole file, NUL-terminated; its length in *len. */
static char *slurp(const char *path, size_t *len)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY);
	size_t n = 0;
	ssize_t r;
	*len = 0;
	if (fd < 0)
		return NULL;
	while (n < sizeof buf - 1 &&
	       (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = 0;
	*len = n;
	return buf;
}

/* The decimal value of "Field:" in a status file, -1 if absent. */
static long status_field(const char *text, const char *field)
{
	const char *p = text;
	size_t fl = strlen(field);
	while (p && *p) {
		if (!strncmp(p, field, fl) && p[fl] == ':')
			return strtol(p + fl + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

/* Prints NUL-separated strings as [a][b]... */
static void print_strings(const char *what, const char *s, size_t n)
{
	printf("%s:", what);
	for (size_t i = 0; i < n; i += strlen(s + i) + 1)
		printf(" [%s]", s + i);
	printf("\n");
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	ssize_t r = write(fd, s, strlen(s));
	int e = errno;
	close(fd);
	return r < 0 ? -e : 0;
}

static const char *err(int neg)
{
	return neg == 0 ? "ok" : neg == -EINVAL ? "EINVAL" : neg == -ENOENT ? "ENOENT" : strerror(-neg);
}

static void as_exec_child(void)
{
	size_t n;
	char path[64], own[64];
	int ready[2], go[2];
	pid_t me = getpid();
	if (pipe(ready) || pipe(go))
		exit(1);
	pid_t c = fork();
	if (c == 0) {
		char b;
		close(ready[0]);
		close(go[1]);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &b, 1) < 0)
			_exit(1);
		_exit(0);
	}
	char b;
	if (read(ready[0], &b, 1) != 1)
		exit(1);

	snprintf(path, sizeof path, "/proc/%d/status", c);
	char *st = slurp(path, &n);
	printf("child status: Pid is the child %s, PPid is us %s, Threads %ld\n",
	       yes(st && status_field(st, "Pid") == c),
	       yes(st && status_field(st, "PPid") == me),
	       st ? status_field(st, "Threads") : -1);

	snprintf(path, sizeof path, "/proc/%d/stat", c);
	char *stat = slurp(path, &n);
	int fields = 0;
	long pid_field = stat ? strtol(stat, NULL, 10) : -1;
	unsigned long long v[64] = {0};
	if (stat) {
		/* After the ") " that ends comm: field 3 on. */
		char *q = strrchr(stat, ')');
		fields = 2;
		for (char *tok = strtok(q + 2, " \n"); tok && fields < 64;
		     tok = strtok(NULL, " \n"))
			v[++fields] = strtoull(tok, NULL, 10);
	}
	printf("child stat: pid field is the child %s, %d fields\n",
	       yes(pid_field == c), fields);
	/* Fields 48..51: arg_start, arg_end, env_start, env_end. */
	printf("child stat: arg_start < arg_end <= env_start < env_end: %s\n",
	       yes(v[48] && v[48] < v[49] && v[49] <= v[50] && v[50] < v[51]));

	snprintf(path, sizeof path, "/proc/%d/statm", c);
	char *sm = slurp(path, &n);
	unsigned long m[7] = {0};
	int nm = sm ? sscanf(sm, "%lu %lu %lu %lu %lu %lu %lu", &m[0], &m[1],
			     &m[2], &m[3], &m[4], &m[5], &m[6])
		    : 0;
	printf("child statm: %d fields, size >= resident > 0: %s\n", nm,
	       yes(m[0] >= m[1] && m[1] > 0));

	snprintf(path, sizeof path, "/proc/%d/cmdline", c);
	char *cl = slurp(path, &n);
	print_strings("child cmdline", cl ? cl : "", cl ? n : 0);
	snprintf(path, sizeof path, "/proc/%d/environ", c);
	char *env = slurp(path, &n);
	print_strings("child environ", env ? env : "", env ? n : 0);

	snprintf(path, sizeof path, "/proc/%d/exe", c);
	char exe[256] = "", self[256] = "";
	ssize_t l1 = readlink(path, exe, sizeof exe - 1);
	ssize_t l2 = readlink("/proc/self/exe", self, sizeof self - 1);
	if (l1 >= 0)
		exe[l1] = 0;
	if (l2 >= 0)
		self[l2] = 0;
	printf("child exe is ours: %s\n", yes(l1 > 0 && !strcmp(exe, self)));

	snprintf(path, sizeof path, "/proc/%d/task", c);
	DIR *d = opendir(path);
	int tasks = 0, is_child = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		tasks++;
		is_child = atoi(e->d_name) == c;
	}
	if (d)
		closedir(d);
	printf("child task/: %d entry, the child's tid: %s\n", tasks, yes(is_child));

	int listed = 0, self_listed = 0;
	d = opendir("/proc");
	while (d && (e = readdir(d))) {
		listed |= atoi(e->d_name) == c;
		self_listed |= atoi(e->d_name) == me;
	}
	if (d)
		closedir(d);
	printf("/proc lists the child: %s, us: %s\n", yes(listed), yes(self_listed));

	/* oom_score_adj: ours inherited by the child, then its own. */
	snprintf(own, sizeof own, "/proc/%d/oom_score", c);
	char *sc = slurp(own, &n);
	long score0 = sc ? atol(sc) : -1;
	snprintf(path, sizeof path, "/proc/%d/oom_score_adj", c);
	printf("write 500 to the child's oom_score_adj: %s\n", err(write_str(path, "500\n")));
	char *adj = slurp(path, &n);
	printf("child oom_score_adj: %s", adj ? adj : "?\n");
	sc = slurp(own, &n);
	long score1 = sc ? atol(sc) : -1;
	printf("child oom_score grew with it: %s (in 0..2000: %s)\n",
	       yes(score1 > score0), yes(score1 >= 0 && score1 <= 2000));
	/* (Below 0 needs CAP_SYS_RESOURCE on Linux: the host run may lack
	 * it, so only values from 0 up are written.) */
	printf("write 1001: %s; write abc: %s; write 0: %s\n",
	       err(write_str(path, "1001")), err(write_str(path, "abc")),
	       err(write_str(path, "0")));
	sc = slurp(own, &n);
	printf("child oom_score back at 0 is the first one: %s\n",
	       yes(sc && atol(sc) == score0));
	printf("ours stays 0: %s", (adj = slurp("/proc/self/oom_score_adj", &n)) ? adj : "?\n");

	if (write(go[1], "g", 1) != 1)
		exit(1);
	int status;
	waitpid(c, &status, 0);
	printf("child exited %d\n", WEXITSTATUS(status));

	/* A pid nobody has. */
	int fd = open("/proc/999999/status", O_RDONLY);
	printf("open /proc/999999/status: %s\n", fd < 0 && errno == ENOENT ? "ENOENT" : "opened");
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && !strcmp(argv[1], "exec")) {
		printf("procpid: start\n");
		as_exec_child();
		printf("procpid: done\n");
		return 0;
	}
	/* Re-execute with a fixed argv and environment. */
	char self[256];
	ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
	if (l <= 0) {
		printf("procpid: start\nreadlink /proc/self/exe failed\n");
		return 1;
	}
	self[l] = 0;
	char *nargv[] = {"procpid", "exec", "two words", NULL};
	char *nenv[] = {"ALPHA=1", "BETA=two words", "EMPTY=", NULL};
	execve(self, nargv, nenv);
	printf("procpid: start\nexecve failed: %s\n", strerror(errno));
	return 1;
}
