/*
 * dirents: directory listings with opendir/readdir and the raw
 * getdents64/getdents calls: Linux's record layout, d_type, resuming at
 * d_off, rewinding, and the errors (EINVAL for a buffer too small for one
 * record, ENOTDIR, EBADF, EFAULT). The directories' full contents differ
 * between kernels; the program prints only what any Linux has.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

/* "ok N" for a result >= 0, else the errno's name. */
static const char *res(long r)
{
	static char buf[64];
	if (r >= 0) {
		snprintf(buf, sizeof buf, "ok %ld", r);
		return buf;
	}
	switch (errno) {
	case EFAULT: return "EFAULT";
	case EINVAL: return "EINVAL";
	case ENOENT: return "ENOENT";
	case ENOTDIR: return "ENOTDIR";
	case EBADF: return "EBADF";
	default:
		snprintf(buf, sizeof buf, "errno %d", errno);
		return buf;
	}
}

/* Whether readdir of `dir` has `name` with d_type `type`. */
static int has(const char *dir, const char *name, int type)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *e;
	int found = 0;
	while ((e = readdir(d)))
		if (!strcmp(e->d_name, name) && e->d_type == type)
			found = 1;
	closedir(d);
	return found;
}

struct rec64 {
	unsigned long long ino;
	long long off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

/* Lists `dir` with getdents64 in calls of `size` bytes; returns the number
 * of entries, or -1; checks each record's layout into *layout_ok. */
static long count_raw(int fd, size_t size, int *layout_ok, long long *last_off)
{
	char buf[4096];
	long total = 0;
	for (;;) {
		long n = syscall(SYS_getdents64, fd, buf, size);
		if (n < 0)
			return -1;
		if (n == 0)
			return total;
		for (long at = 0; at < n;) {
			struct rec64 *r = (struct rec64 *)(buf + at);
			size_t len = strlen(r->name);
			if (r->reclen % 8 || 19 + len + 1 > r->reclen)
				*layout_ok = 0;
			*last_off = r->off;
			at += r->reclen;
			total++;
		}
	}
}

int main(void)
{
	printf("dirents: start\n");
	const char *devs[] = {"null", "zero", "full", "random", "urandom"};
	for (int i = 0; i < 5; i++)
		printf("/dev has %s as DT_CHR: %s\n", devs[i], yes(has("/dev", devs[i], DT_CHR)));
	printf("/dev has . and .. as DT_DIR: %s\n",
	       yes(has("/dev", ".", DT_DIR) && has("/dev", "..", DT_DIR)));
	printf("/ has proc, sys, dev as DT_DIR: %s\n",
	       yes(has("/", "proc", DT_DIR) && has("/", "sys", DT_DIR) && has("/", "dev", DT_DIR)));
	char pid[32];
	snprintf(pid, sizeof pid, "%d", getpid());
	printf("/proc has self as DT_LNK and our pid as DT_DIR: %s\n",
	       yes(has("/proc", "self", DT_LNK) && has("/proc", pid, DT_DIR)));
	printf("/proc has meminfo and sys: %s\n",
	       yes(has("/proc", "meminfo", DT_REG) && has("/proc", "sys", DT_DIR)));
	printf("/proc/self has status, maps, stat, comm (DT_REG), exe (DT_LNK): %s\n",
	       yes(has("/proc/self", "status", DT_REG) && has("/proc/self", "maps", DT_REG) &&
		   has("/proc/self", "stat", DT_REG) && has("/proc/self", "comm", DT_REG) &&
		   has("/proc/self", "exe", DT_LNK)));
	printf("/sys/kernel/mm/transparent_hugepage has enabled: %s\n",
	       yes(has("/sys/kernel/mm/transparent_hugepage", "enabled", DT_REG)));
	DIR *d = opendir("/proc/self/status");
	printf("opendir of a file: %s\n", res(d ? 0 : -1));
	d = opendir("/no/such/dir");
	printf("opendir of a missing directory: %s\n", res(d ? 0 : -1));

	/* The raw calls on /dev: in one call, then one record at a time, then
	 * again after rewinding: the same entries. */
	int fd = open("/dev", O_RDONLY | O_DIRECTORY);
	int layout_ok = 1;
	long long last_off = 0;
	long whole = count_raw(fd, 4096, &layout_ok, &last_off);
	printf("getdents64 at the end: %s\n", res(syscall(SYS_getdents64, fd, (char[64]){0}, 64)));
	lseek(fd, 0, SEEK_SET);
	long one_by_one = count_raw(fd, 64, &layout_ok, &last_off);
	printf("entries in one call and in 64-byte calls agree: %s\n",
	       yes(whole >= 7 && whole == one_by_one));
	printf("records 8-aligned with NUL-terminated names: %s\n", yes(layout_ok));
	/* (Where the last record's d_off leads is the file system's choice:
	 * tmpfs keeps stable offsets of its own.) */
	printf("~last d_off %lld\n", last_off);
	lseek(fd, 0, SEEK_SET);
	char tiny[8];
	printf("getdents64 into 8 bytes: %s\n", res(syscall(SYS_getdents64, fd, tiny, sizeof tiny)));
	printf("getdents64 into a bad buffer: %s\n", res(syscall(SYS_getdents64, fd, (void *)8, 4096)));

	/* getdents: d_type in each record's last byte, the same as
	 * getdents64's for /dev/null. */
	char buf[4096];
	int old_type = -1;
	long n = syscall(SYS_getdents, fd, buf, sizeof buf);
	for (long at = 0; at < n;) {
		unsigned short reclen = *(unsigned short *)(buf + at + 16);
		if (!strcmp(buf + at + 18, "null"))
			old_type = buf[at + reclen - 1];
		at += reclen;
	}
	printf("getdents: /dev/null's d_type %s\n", yes(old_type == DT_CHR) ? "DT_CHR" : "other");
	close(fd);

	fd = open("/proc/self/status", O_RDONLY);
	printf("getdents64 of a file: %s\n", res(syscall(SYS_getdents64, fd, buf, sizeof buf)));
	close(fd);
	printf("getdents64 of a closed fd: %s\n", res(syscall(SYS_getdents64, fd, buf, sizeof buf)));

	printf("dirents: done\n");
	return 0;
}
