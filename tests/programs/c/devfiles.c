/*
 * devfiles: the memory devices ordinary programs open (/dev/null,
 * /dev/zero, /dev/full, /dev/random, /dev/urandom): their stat, reads,
 * writes, seeks and ioctls, and open()'s O_CREAT | O_EXCL rule. Prints
 * only facts that hold on any Linux.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
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
	case ENOSPC: return "ENOSPC";
	case ENOTTY: return "ENOTTY";
	case EINVAL: return "EINVAL";
	case EEXIST: return "EEXIST";
	case EBADF: return "EBADF";
	case EISDIR: return "EISDIR";
	case ENOENT: return "ENOENT";
	case EACCES: return "EACCES";
	case EROFS: return "EROFS";
	default:
		snprintf(buf, sizeof buf, "errno %d", errno);
		return buf;
	}
}

static int all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static void stat_line(const char *path)
{
	struct stat st;
	if (stat(path, &st)) {
		printf("%s: stat %s\n", path, res(-1));
		return;
	}
	printf("%s: chr %s, mode %o, rdev %u:%u, size %ld\n", path, yes(S_ISCHR(st.st_mode)),
	       (unsigned)(st.st_mode & 07777), major(st.st_rdev), minor(st.st_rdev),
	       (long)st.st_size);
	int fd = open(path, O_RDONLY);
	struct stat fst;
	printf("%s: fstat agrees: %s\n", path,
	       yes(fd >= 0 && fstat(fd, &fst) == 0 && fst.st_rdev == st.st_rdev &&
		   fst.st_mode == st.st_mode));
	close(fd);
}

/* NULL, hidden from the compiler's nonnull checks. */
static void *volatile nul;

int main(void)
{
	static unsigned char buf[1 << 20];
	printf("devfiles: start\n");
	const char *devs[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};
	for (unsigned i = 0; i < sizeof devs / sizeof devs[0]; i++)
		stat_line(devs[i]);

	/* /dev/null: end of file; writes take everything, never reading the
	 * buffer (NULL is fine), but the range must be user memory. */
	int fd = open("/dev/null", O_RDWR);
	printf("null: read %s\n", res(read(fd, buf, 16)));
	printf("null: write %s\n", res(write(fd, "hello", 5)));
	printf("null: write from NULL %s\n", res(write(fd, nul, 16)));
	printf("null: read into NULL %s\n", res(read(fd, nul, 16)));
	printf("null: write from a kernel address %s\n",
	       res(write(fd, (void *)0xffff888000000000ul, 16)));
	printf("null: lseek(100) %s\n", res(lseek(fd, 100, SEEK_SET)));
	printf("null: lseek(SEEK_END) %s\n", res(lseek(fd, 0, SEEK_END)));
	int tty = isatty(fd);
	printf("null: isatty %d, %s\n", tty, res(-1));
	close(fd);

	/* /dev/zero: zeros of any length, at any offset. */
	fd = open("/dev/zero", O_RDWR);
	memset(buf, 0xaa, sizeof buf);
	long n = read(fd, buf, sizeof buf);
	printf("zero: read 1 MiB %s, all zero: %s\n", res(n), yes(all_zero(buf, sizeof buf)));
	memset(buf, 0xaa, 4096);
	n = pread(fd, buf, 4096, 12345);
	printf("zero: pread at 12345 %s, all zero: %s\n", res(n), yes(all_zero(buf, 4096)));
	printf("zero: read into NULL %s\n", res(read(fd, nul, 16)));
	printf("zero: write %s\n", res(write(fd, buf, 100)));
	printf("zero: lseek(4096) %s\n", res(lseek(fd, 4096, SEEK_SET)));
	close(fd);

	/* /dev/full: reads zeros, every write fails with ENOSPC. */
	fd = open("/dev/full", O_RDWR);
	memset(buf, 0xaa, 64);
	n = read(fd, buf, 64);
	printf("full: read %s, all zero: %s\n", res(n), yes(all_zero(buf, 64)));
	printf("full: write %s\n", res(write(fd, "x", 1)));
	close(fd);
	FILE *f = fopen("/dev/full", "w");
	int put = fprintf(f, "buffered\n");
	int flushed = fflush(f);
	printf("full: fprintf %d, fflush %d, %s\n", put, flushed, res(-1));
	fclose(f);

	/* /dev/urandom and /dev/random: bytes that differ between reads; a
	 * write reads the caller's bytes. */
	unsigned char a[64], b[64];
	fd = open("/dev/urandom", O_RDWR);
	long ra = read(fd, a, sizeof a), rb = read(fd, b, sizeof b);
	printf("urandom: two reads of 64 %s/%ld, differ: %s, not all zero: %s\n", res(ra), rb,
	       yes(memcmp(a, b, sizeof a) != 0), yes(!all_zero(a, sizeof a)));
	printf("urandom: write %s\n", res(write(fd, a, 8)));
	printf("urandom: write from NULL %s\n", res(write(fd, nul, 8)));
	struct termios t;
	printf("urandom: TCGETS %s\n", res(ioctl(fd, TCGETS, &t)));
	close(fd);
	fd = open("/dev/random", O_RDONLY);
	printf("random: read 16 %s\n", res(read(fd, a, 16)));
	close(fd);

	/* Shell redirections open devices with O_CREAT | O_TRUNC. */
	fd = open("/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	printf("open /dev/null O_WRONLY|O_CREAT|O_TRUNC: %s\n", res(fd));
	printf("write to it: %s\n", res(write(fd, "x", 1)));
	close(fd);
	printf("fopen(/dev/null, w): %s\n", yes(fopen("/dev/null", "w") != NULL));
	printf("access(/dev/null, W_OK): %s\n", res(access("/dev/null", W_OK)));

	/* O_CREAT | O_EXCL of anything that exists: EEXIST, before any other
	 * check (directories and /proc files included). */
	printf("O_CREAT|O_EXCL /dev/null: %s\n", res(open("/dev/null", O_RDWR | O_CREAT | O_EXCL, 0644)));
	printf("O_CREAT|O_EXCL /: %s\n", res(open("/", O_RDONLY | O_CREAT | O_EXCL, 0644)));
	printf("O_CREAT|O_EXCL /proc/self/status: %s\n",
	       res(open("/proc/self/status", O_RDONLY | O_CREAT | O_EXCL, 0644)));
	printf("O_CREAT / without O_EXCL: %s\n", res(open("/", O_RDONLY | O_CREAT, 0644)));
	printf("missing /dev/nothing: %s\n", res(open("/dev/nothing", O_RDONLY)));

	printf("devfiles: done\n");
	return 0;
}
