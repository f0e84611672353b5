/*
 * tmpfs: files and directories in /dev/shm and /tmp (Linux's shmem file
 * system): open with O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY and
 * O_TMPFILE; write, read, lseek, fstat and stat (size, blocks, nlink,
 * times moving); unlink of an open and mapped file (it lives on with
 * nlink 0, "(deleted)" in /proc/self/maps, until closed and unmapped);
 * mkdir, rmdir (ENOTEMPTY, ENOTDIR), unlink of a directory (EISDIR);
 * rename (over a file, a directory over a non-empty one, a directory
 * into itself, RENAME_NOREPLACE, across file systems EXDEV); getdents64
 * of a directory; a file mapped MAP_SHARED by a parent and its child,
 * truncated under them (SIGBUS); shm_open / shm_unlink.
 *
 * The detailed checks run in /dev/shm, tmpfs on any Linux; /tmp (tmpfs
 * here, maybe a disk file system on the host) gets only the checks that
 * hold on every file system. Names carry the pid (other programs may use
 * the same directories on the host); only relative names are printed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096L

static char base[128], tbase[128];

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

static const char *err(long r)
{
	if (r != -1)
		return "ok";
	switch (errno) {
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	case EXDEV: return "EXDEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ENOTEMPTY: return "ENOTEMPTY";
	case EBADF: return "EBADF";
	case EBUSY: return "EBUSY";
	default: return "other";
	}
}

static char *at(const char *dir, const char *name)
{
	static char bufs[4][256];
	static int n;
	char *b = bufs[n++ % 4];
	snprintf(b, 256, "%s/%s", dir, name);
	return b;
}

static sigjmp_buf bus_jmp;

static void on_bus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

static int sigbus(volatile char *p)
{
	if (sigsetjmp(bus_jmp, 1) == 0) {
		(void)*p;
		return 0;
	}
	return 1;
}

static void show(const char *what, struct stat *st)
{
	printf("%s: %s size %ld blocks %ld nlink %ld\n", what,
	       S_ISDIR(st->st_mode) ? "dir" : S_ISREG(st->st_mode) ? "file" : "other",
	       (long)st->st_size, (long)st->st_blocks, (long)st->st_nlink);
}

static void show_fd(const char *what, int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0)
		show(what, &st);
	else
		printf("%s: fstat %s\n", what, err(-1));
}

static void show_path(const char *what, const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0)
		show(what, &st);
	else
		printf("%s: stat %s\n", what, err(-1));
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a directory (getdents64 through readdir), sorted. */
static void list(const char *dir)
{
	char *names[64];
	int n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)) && n < 64)
		names[n++] = strdup(e->d_name);
	if (d)
		closedir(d);
	qsort(names, n, sizeof names[0], cmp);
	printf("ls:");
	for (int i = 0; i < n; i++) {
		printf(" %s", names[i]);
		free(names[i]);
	}
	printf("\n");
}

static void maps_name(void *addr)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	while (f && fgets(line, sizeof line, f)) {
		unsigned long s;
		if (sscanf(line, "%lx-", &s) != 1 || s != (unsigned long)addr)
			continue;
		char *name = strrchr(line, '/');
		if (name)
			name[strcspn(name, "\n")] = 0;
		printf("maps name: %s\n", name ? name + 1 : "(none)");
	}
	if (f)
		fclose(f);
}

static long long ns(struct timespec t)
{
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };
	nanosleep(&ts, NULL);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("tmpfs: start\n");
	struct sigaction sa = { 0 };
	sa.sa_handler = on_bus;
	sigaction(SIGBUS, &sa, NULL);
	snprintf(base, sizeof base, "/dev/shm/tmpfs-test-%d", getpid());
	snprintf(tbase, sizeof tbase, "/tmp/tmpfs-test-%d", getpid());
	struct stat st0, st1;
	printf("/dev/shm is a dir: %s\n", yes(stat("/dev/shm", &st0) == 0 && S_ISDIR(st0.st_mode)));
	printf("mkdir: %s\n", err(mkdir(base, 0755)));
	printf("mkdir again: %s\n", err(mkdir(base, 0755)));
	show_path("new dir", base);

	/* create, write, read */
	char *a = strdup(at(base, "a"));
	int fd = open(a, O_CREAT | O_EXCL | O_RDWR, 0644);
	printf("create: %s\n", err(fd));
	printf("create O_EXCL again: %s\n", err(open(a, O_CREAT | O_EXCL | O_RDWR, 0644)));
	printf("open missing: %s\n", err(open(at(base, "nope"), O_RDONLY)));
	printf("create in a missing dir: %s\n", err(open(at(base, "nope/x"), O_CREAT | O_RDWR, 0644)));
	printf("create under a file: %s\n", err(open(at(a, "x"), O_CREAT | O_RDWR, 0644)));
	printf("O_DIRECTORY on a file: %s\n", err(open(a, O_RDONLY | O_DIRECTORY)));
	printf("write a dir: %s\n", err(open(base, O_RDWR)));
	printf("O_CREAT on a dir: %s\n", err(open(base, O_CREAT | O_RDWR, 0644)));
	show_fd("empty", fd);
	fstat(fd, &st0);
	sleep_ms(20);
	printf("write: %ld\n", (long)write(fd, "tmpfs data", 10));
	fstat(fd, &st1);
	printf("mtime moved: %s, ctime = mtime: %s\n",
	       yes(ns(st1.st_mtim) > ns(st0.st_mtim)),
	       yes(ns(st1.st_ctim) == ns(st1.st_mtim)));
	show_path("written", a);
	char buf[64] = { 0 };
	printf("pread: %ld '%s'\n", (long)pread(fd, buf, sizeof buf, 0), buf);
	close(fd);
	fd = open(a, O_WRONLY | O_APPEND);
	lseek(fd, 0, SEEK_SET);
	long wrote = (long)write(fd, "++", 2);
	printf("append: %ld, offset %ld\n", wrote, (long)lseek(fd, 0, SEEK_CUR));
	close(fd);
	fd = open(a, O_RDONLY);
	memset(buf, 0, sizeof buf);
	printf("read: %ld '%s'\n", (long)read(fd, buf, sizeof buf), buf);
	printf("write on O_RDONLY: %s\n", err(write(fd, "x", 1)));
	close(fd);
	fd = open(a, O_RDWR | O_TRUNC);
	show_fd("O_TRUNC", fd);
	close(fd);
	printf("truncate by path: %s\n", err(truncate(a, 3 * PG)));
	show_path("truncated", a);

	/* directories */
	char *d = strdup(at(base, "d"));
	printf("mkdir d: %s\n", err(mkdir(d, 0755)));
	close(open(at(d, "f1"), O_CREAT | O_WRONLY, 0644));
	close(open(at(d, "f2"), O_CREAT | O_WRONLY, 0644));
	printf("mkdir d/sub: %s\n", err(mkdir(at(d, "sub"), 0755)));
	list(d);
	show_path("d", d);
	printf("rmdir non-empty: %s\n", err(rmdir(d)));
	printf("rmdir a file: %s\n", err(rmdir(at(d, "f1"))));
	printf("unlink a dir: %s\n", err(unlink(at(d, "sub"))));
	printf("unlink missing: %s\n", err(unlink(at(d, "f9"))));
	int dfd = open(d, O_RDONLY | O_DIRECTORY);
	printf("openat in dir: %s\n", err(close(openat(dfd, "f3", O_CREAT | O_WRONLY, 0644))));
	printf("unlinkat in dir: %s\n", err(unlinkat(dfd, "f3", 0)));
	close(dfd);

	/* rename */
	printf("rename f1 -> g: %s\n", err(rename(at(d, "f1"), at(d, "g"))));
	int keep = open(at(d, "f2"), O_RDWR);
	write(keep, "old f2", 6);
	printf("rename g over f2: %s\n", err(rename(at(d, "g"), at(d, "f2"))));
	show_fd("replaced f2, still open", keep);
	close(keep);
	printf("rename a file over a dir: %s\n", err(rename(at(d, "f2"), at(d, "sub"))));
	printf("rename a dir over a file: %s\n", err(rename(at(d, "sub"), at(d, "f2"))));
	printf("rename a dir into itself: %s\n", err(rename(d, at(d, "sub/x"))));
	printf("rename a dir over a non-empty dir: %s\n", err(rename(at(d, "sub"), base)));
	printf("RENAME_NOREPLACE: %s\n",
	       err(syscall(SYS_renameat2, AT_FDCWD, at(d, "f2"), AT_FDCWD, a, 1)));
	printf("rename missing: %s\n", err(rename(at(d, "zz"), at(d, "yy"))));
	printf("rename dir: %s\n", err(rename(at(d, "sub"), at(base, "moved"))));
	list(d);
	list(base);

	/* unlink of an open, mapped file */
	char *b = strdup(at(base, "b"));
	fd = open(b, O_CREAT | O_RDWR, 0600);
	ftruncate(fd, 2 * PG);
	char *m = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	strcpy(m, "mapped");
	printf("unlink open file: %s\n", err(unlink(b)));
	show_fd("unlinked", fd);
	printf("stat unlinked: %s\n", err(stat(b, &st0)));
	maps_name(m);
	memset(buf, 0, sizeof buf);
	pread(fd, buf, 6, 0);
	printf("still readable: %s\n", yes(strcmp(buf, "mapped") == 0));
	close(fd);
	printf("mapping keeps it after close: %s\n", yes(strcmp(m, "mapped") == 0));
	munmap(m, 2 * PG);

	/* shared by a parent and its child, truncated under both */
	char *c = strdup(at(base, "c"));
	fd = open(c, O_CREAT | O_RDWR, 0600);
	ftruncate(fd, 2 * PG);
	m = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int cfd = open(c, O_RDWR);
		char *cm = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
		cm[PG] = 'k';
		ftruncate(cfd, PG);
		_exit(sigbus(cm + PG) ? 0 : 1);
	}
	int status = -1;
	waitpid(pid, &status, 0);
	printf("child truncated: status %d, parent SIGBUS %s\n", WEXITSTATUS(status),
	       yes(sigbus(m + PG)));
	munmap(m, 2 * PG);
	close(fd);

	/* O_TMPFILE */
	fd = open(base, O_TMPFILE | O_RDWR, 0600);
	printf("O_TMPFILE: %s\n", err(fd));
	printf("write: %ld\n", (long)write(fd, "anon", 4));
	show_fd("tmpfile", fd);
	close(fd);
	printf("O_TMPFILE read-only: %s\n", err(open(base, O_TMPFILE | O_RDONLY, 0600)));
	list(base);

	/* shm_open */
	fd = shm_open("/tmpfs-test-shm", O_CREAT | O_EXCL | O_RDWR, 0600);
	printf("shm_open: %s\n", err(fd));
	ftruncate(fd, PG);
	m = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int fd2 = shm_open("/tmpfs-test-shm", O_RDWR, 0);
	m[0] = 's';
	pread(fd2, buf, 1, 0);
	printf("shm_open twice, one object: %s\n", yes(buf[0] == 's'));
	printf("shm_unlink: %s\n", err(shm_unlink("/tmpfs-test-shm")));
	printf("shm_open after unlink: %s\n", err(shm_open("/tmpfs-test-shm", O_RDWR, 0)));
	munmap(m, PG);
	close(fd);
	close(fd2);

	/* across file systems, and /tmp basics */
	printf("mkdir in /tmp: %s\n", err(mkdir(tbase, 0755)));
	printf("rename to /tmp: %s\n", err(rename(a, at(tbase, "a"))));
	fd = open(at(tbase, "t"), O_CREAT | O_EXCL | O_RDWR, 0644);
	printf("create in /tmp: %s\n", err(fd));
	printf("write: %ld\n", (long)write(fd, "in tmp", 6));
	memset(buf, 0, sizeof buf);
	printf("pread: %ld '%s'\n", (long)pread(fd, buf, sizeof buf, 0), buf);
	close(fd);
	printf("rename in /tmp: %s\n", err(rename(at(tbase, "t"), at(tbase, "u"))));
	list(tbase);
	printf("unlink: %s\n", err(unlink(at(tbase, "u"))));
	printf("rmdir: %s\n", err(rmdir(tbase)));

	/* clean up */
	unlink(a);
	unlink(c);
	unlink(at(d, "f2"));
	rmdir(at(base, "moved"));
	rmdir(d);
	printf("rmdir base: %s\n", err(rmdir(base)));
	printf("tmpfs: done\n");
	return 0;
}
