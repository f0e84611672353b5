/*
 * fileops: the file calls around shmem files that are not reads and
 * writes: fallocate(FALLOC_FL_PUNCH_HOLE) (whole pages freed and
 * unmapped, partial ones zeroed, private copies kept, the size kept,
 * EOPNOTSUPP without KEEP_SIZE, EPERM once write-sealed); msync's checks
 * (EINVAL for flags and alignment, ENOMEM for holes); fsync/fdatasync
 * (0 for files and directories, EINVAL for pipes and devices, EBADF);
 * umask applied to files created in /dev/shm and inherited by a child;
 * lseek(SEEK_DATA / SEEK_HOLE) (written and faulted pages are data,
 * fallocated-only pages and reads of holes are not, ENXIO at the size).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096L

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

static const char *err(long r)
{
	if (r != -1)
		return "ok";
	switch (errno) {
	case EPERM: return "EPERM";
	case EBADF: return "EBADF";
	case EINVAL: return "EINVAL";
	case ENOMEM: return "ENOMEM";
	case ENXIO: return "ENXIO";
	case ESPIPE: return "ESPIPE";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default: return "other";
	}
}

static long blocks(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (long)st.st_blocks : -1;
}

/* lseek(fd, off, whence) as the offset or the errno's name. */
static void seek(int fd, const char *what, long off, int whence)
{
	long r = lseek(fd, off, whence);
	if (r < 0)
		printf("%s %s(%ld): %s\n", what, whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE",
		       off, err(r));
	else
		printf("%s %s(%ld): %ld, pos %ld\n", what,
		       whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE", off, r,
		       (long)lseek(fd, 0, SEEK_CUR));
}

static int all(const char *p, char c, long n)
{
	for (long i = 0; i < n; i++)
		if (p[i] != c)
			return 0;
	return 1;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("fileops: start\n");

	/* punch a hole */
	int fd = (int)syscall(SYS_memfd_create, "hole", MFD_ALLOW_SEALING);
	static char buf[4 * PG];
	memset(buf, 'a', sizeof buf);
	write(fd, buf, sizeof buf);
	char *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char *pv = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	pv[2 * PG] = 'p';
	printf("mapped, blocks %ld, private reads 'a': %s\n", blocks(fd), yes(pv[PG] == 'a'));
	printf("punch without KEEP_SIZE: %s\n",
	       err(fallocate(fd, FALLOC_FL_PUNCH_HOLE, PG - 8, 2 * PG + 24)));
	printf("punch: %s\n", err(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					      PG - 8, 2 * PG + 24)));
	printf("size kept: %s, blocks %ld\n", yes(lseek(fd, 0, SEEK_END) == 4 * PG), blocks(fd));
	printf("shared: head kept %s, partial zeroed %s, hole zero %s, tail zeroed %s, rest kept %s\n",
	       yes(all(m, 'a', PG - 8)), yes(all(m + PG - 8, 0, 8)),
	       yes(all(m + PG, 0, 2 * PG)), yes(all(m + 3 * PG, 0, 16)),
	       yes(all(m + 3 * PG + 16, 'a', PG - 16)));
	printf("private copy kept: %s, private uncopied page reads the hole: %s\n",
	       yes(pv[2 * PG] == 'p'), yes(pv[PG] == 0));
	memset(buf, 1, 64);
	pread(fd, buf, 64, PG + 100);
	printf("fd reads the hole as zeros: %s\n", yes(all(buf, 0, 64)));
	m[PG] = 'n';
	printf("a write refills it: blocks %ld\n", blocks(fd));
	printf("punch inside a page: %s\n",
	       err(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * PG + 100, 10)));
	printf("zeroed: %s, neighbours kept: %s\n", yes(all(m + 3 * PG + 100, 0, 10)),
	       yes(m[3 * PG + 99] == 'a' && m[3 * PG + 110] == 'a'));

	/* msync */
	printf("msync MS_SYNC: %s\n", err(msync(m, 4 * PG, MS_SYNC)));
	printf("msync MS_ASYNC, short length: %s\n", err(msync(m, 1, MS_ASYNC)));
	printf("msync MS_INVALIDATE: %s\n", err(msync(m, PG, MS_INVALIDATE)));
	printf("msync length 0: %s\n", err(msync(m, 0, MS_SYNC)));
	printf("msync unaligned: %s\n", err(msync(m + 1, PG, MS_SYNC)));
	printf("msync ASYNC|SYNC: %s\n", err(msync(m, PG, MS_ASYNC | MS_SYNC)));
	printf("msync bad flag: %s\n", err(msync(m, PG, 8)));
	munmap(m + PG, PG);
	printf("msync over a hole, MS_ASYNC: %s\n", err(msync(m, 4 * PG, MS_ASYNC)));
	printf("msync over a hole, MS_SYNC: %s\n", err(msync(m, 4 * PG, MS_SYNC)));
	munmap(m, 4 * PG);
	munmap(pv, 4 * PG);

	/* sealed: no punching */
	fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE);
	printf("punch write-sealed: %s\n",
	       err(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PG)));

	/* fsync, fdatasync */
	printf("fsync memfd: %s, fdatasync: %s\n", err(fsync(fd)), err(fdatasync(fd)));
	close(fd);
	int p[2];
	pipe(p);
	printf("fsync pipe: %s\n", err(fsync(p[0])));
	close(p[0]);
	close(p[1]);
	printf("fsync bad fd: %s\n", err(fsync(99)));
	int dn = open("/dev/null", O_WRONLY);
	printf("fsync /dev/null: %s\n", err(fsync(dn)));
	close(dn);
	int dir = open("/dev/shm", O_RDONLY | O_DIRECTORY);
	printf("fsync a tmpfs dir: %s\n", err(fsync(dir)));
	close(dir);

	/* SEEK_DATA, SEEK_HOLE */
	for (int t = 0; t < 2; t++) {
		char sp[128];
		snprintf(sp, sizeof sp, "/dev/shm/fileops-seek-%d", getpid());
		fd = t ? open(sp, O_CREAT | O_EXCL | O_RDWR, 0600)
		       : (int)syscall(SYS_memfd_create, "seek", 0);
		if (t)
			unlink(sp);
		const char *w = t ? "tmpfs" : "memfd";
		seek(fd, w, 0, SEEK_DATA);
		seek(fd, w, 0, SEEK_HOLE);
		ftruncate(fd, 8 * PG - 100);
		pwrite(fd, "x", 1, 2 * PG + 5);
		seek(fd, w, 0, SEEK_DATA);
		seek(fd, w, 2 * PG + 9, SEEK_DATA);
		seek(fd, w, 3 * PG, SEEK_DATA);
		seek(fd, w, 0, SEEK_HOLE);
		seek(fd, w, 2 * PG, SEEK_HOLE);
		seek(fd, w, 8 * PG - 100, SEEK_HOLE);
		seek(fd, w, 8 * PG - 101, SEEK_HOLE);
		seek(fd, w, -1, SEEK_DATA);
		seek(fd, w, -1, SEEK_HOLE);
		seek(fd, w, 1L << 40, SEEK_DATA);
		printf("%s fallocate pages 4-5: %s\n", w,
		       err(fallocate(fd, FALLOC_FL_KEEP_SIZE, 4 * PG, 2 * PG)));
		seek(fd, w, 3 * PG, SEEK_DATA);
		pread(fd, buf, 64, 3 * PG + 10);
		seek(fd, w, 3 * PG, SEEK_DATA);
		pwrite(fd, "y", 1, 5 * PG);
		seek(fd, w, 3 * PG, SEEK_DATA);
		seek(fd, w, 5 * PG, SEEK_HOLE);
		char *sm = mmap(NULL, 8 * PG, PROT_READ, MAP_SHARED, fd, 0);
		volatile char c = sm[6 * PG + 1];
		(void)c;
		seek(fd, w, 5 * PG + 1, SEEK_HOLE);
		c = sm[7 * PG];
		seek(fd, w, 5 * PG + 1, SEEK_HOLE);
		munmap(sm, 8 * PG);
		fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5 * PG, PG);
		seek(fd, w, 3 * PG, SEEK_DATA);
		close(fd);
	}
	pipe(p);
	printf("pipe SEEK_DATA: %s\n", err(lseek(p[0], 0, SEEK_DATA)));
	close(p[0]);
	close(p[1]);

	/* umask */
	mode_t old = umask(027);
	printf("~umask was %o\n", (unsigned)old);
	printf("umask now: %o\n", (unsigned)umask(027));
	char path[128];
	snprintf(path, sizeof path, "/dev/shm/fileops-%d", getpid());
	fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0666);
	struct stat st;
	fstat(fd, &st);
	printf("created 0666 under 027: %o\n", (unsigned)(st.st_mode & 07777));
	close(fd);
	unlink(path);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(umask(0) == 027 ? 0 : 1);
	int status = -1;
	waitpid(pid, &status, 0);
	printf("child inherits the umask: %s\n", yes(WIFEXITED(status) && WEXITSTATUS(status) == 0));
	printf("fileops: done\n");
	return 0;
}
