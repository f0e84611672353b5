/*
 * memfd: memfd_create() files (Linux's mm/memfd.c over mm/shmem.c).
 *
 * The file grows and shrinks: write, pwrite past the end (a hole reads
 * zeros), read, pread, lseek, fstat's size, blocks and mode; ftruncate
 * both ways and fallocate (mode 0, KEEP_SIZE). Mapped MAP_SHARED, its
 * pages are the file's: writes through the fd show in the mapping and
 * the reverse, in a forked child too; MAP_PRIVATE reads the file and a
 * private write copies the page. Touching past the end is SIGBUS, and a
 * shrink makes the pages it cut off SIGBUS in every mapping (shared and
 * private) while the kept part of the last page reads zeros after the
 * new end. /proc/self/maps names it "/memfd:NAME (deleted)", fstat's
 * st_nlink is 0 (it has no name in any directory);
 * /proc/meminfo's Shmem counts its pages. Seals: F_SEAL_WRITE refused
 * (EBUSY) while a writable shared mapping exists, then write and a
 * writable shared mmap are EPERM and mprotect cannot add write;
 * F_SEAL_SHRINK / F_SEAL_GROW refuse ftruncate and growing writes;
 * F_SEAL_FUTURE_WRITE keeps existing mappings writable; F_SEAL_SEAL
 * ends sealing; without MFD_ALLOW_SEALING the file is born F_SEAL_SEAL.
 * The errnos of bad arguments are Linux's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096L

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x8U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x10U
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x10
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x20
#endif

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

/* "ok" or the errno's name, for a call that returns -1 on error. */
static const char *err(long r)
{
	if (r != -1)
		return "ok";
	switch (errno) {
	case EPERM: return "EPERM";
	case EBADF: return "EBADF";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EINVAL: return "EINVAL";
	case EFBIG: return "EFBIG";
	case ESPIPE: return "ESPIPE";
	case ENODEV: return "ENODEV";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default: return "other";
	}
}

static int mfd(const char *name, unsigned flags)
{
	return (int)syscall(SYS_memfd_create, name, flags);
}

static sigjmp_buf bus_jmp;

static void on_bus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

/* Whether touching *p raises SIGBUS. */
static int sigbus(volatile char *p, int write)
{
	if (sigsetjmp(bus_jmp, 1) == 0) {
		if (write)
			*p = 1;
		else
			(void)*p;
		return 0;
	}
	return 1;
}

static void show_stat(const char *what, int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		printf("%s: fstat %s\n", what, err(-1));
		return;
	}
	printf("%s: size %ld blocks %ld mode %o nlink %ld\n", what,
	       (long)st.st_size, (long)st.st_blocks, (unsigned)st.st_mode,
	       (long)st.st_nlink);
}

static void maps_line(void *addr)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long want = (unsigned long)addr;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long s, e, off, ino;
		char perm[8];
		unsigned dmaj, dmin;
		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &s, &e, perm, &off,
			   &dmaj, &dmin, &ino) != 7 || s != want)
			continue;
		char *name = strchr(line, '/');
		if (name)
			name[strcspn(name, "\n")] = 0;
		printf("maps: %lu pages %s offset %lu inode>0 %s name %s\n",
		       (e - s) / PG, perm, off, yes(ino > 0),
		       name ? name : "(none)");
	}
	if (f)
		fclose(f);
}

/* /proc/meminfo's Shmem, in kB. */
static long shmem_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "Shmem: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static void errors(void)
{
	char longname[300];
	memset(longname, 'n', sizeof longname);
	longname[249] = 0;
	int fd = mfd(longname, 0);
	printf("name of 249 bytes: %s\n", err(fd));
	close(fd);
	longname[249] = 'n';
	longname[250] = 0;
	printf("name of 250 bytes: %s\n", err(mfd(longname, 0)));
	printf("unknown flag: %s\n", err(mfd("x", 0x100)));
	printf("EXEC | NOEXEC_SEAL: %s\n", err(mfd("x", MFD_EXEC | MFD_NOEXEC_SEAL)));
	printf("bad name pointer: %s\n", err(mfd((const char *)8, 0)));
	printf("ftruncate bad fd: %s\n", err(ftruncate(999, 0)));
	int p[2];
	if (pipe(p) == 0) {
		printf("ftruncate pipe: %s\n", err(ftruncate(p[0], 0)));
		printf("F_GET_SEALS pipe: %s\n", err(fcntl(p[0], F_GET_SEALS)));
		printf("fallocate pipe: %s\n", err(fallocate(p[1], 0, 0, 1)));
		printf("mmap pipe: %s\n",
		       err((long)mmap(NULL, PG, PROT_READ, MAP_SHARED, p[0], 0)));
		close(p[0]);
		close(p[1]);
	}
	printf("mmap bad fd: %s\n",
	       err((long)mmap(NULL, PG, PROT_READ, MAP_SHARED, 999, 0)));
	fd = mfd("plain", 0);
	printf("plain seals: %d\n", fcntl(fd, F_GET_SEALS));
	printf("plain add seal: %s\n", err(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)));
	printf("ftruncate negative: %s\n", err(ftruncate(fd, -1)));
	printf("fallocate len 0: %s\n", err(fallocate(fd, 0, 0, 0)));
	printf("fallocate bad mode: %s\n", err(fallocate(fd, 0x100, 0, 1)));
	printf("pwrite negative: %s\n", err(pwrite(fd, "x", 1, -1)));
	close(fd);
	fd = mfd("noexec", MFD_NOEXEC_SEAL);
	show_stat("noexec", fd);
	printf("noexec seals: %#x\n", fcntl(fd, F_GET_SEALS));
	close(fd);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("memfd: start\n");
	struct sigaction sa = { 0 };
	sa.sa_handler = on_bus;
	sigaction(SIGBUS, &sa, NULL);
	errors();

	int fd = mfd("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	printf("cloexec %s, O_RDWR %s\n", yes(fcntl(fd, F_GETFD) == FD_CLOEXEC),
	       yes((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR));
	show_stat("new", fd);
	printf("seals: %d\n", fcntl(fd, F_GET_SEALS));

	/* read, write, seek */
	printf("write: %ld\n", (long)write(fd, "hello world", 11));
	printf("offset: %ld\n", (long)lseek(fd, 0, SEEK_CUR));
	char buf[64] = { 0 };
	printf("read at end: %ld\n", (long)read(fd, buf, sizeof buf));
	printf("pread: %ld '%.5s'\n", (long)pread(fd, buf, 5, 6), buf);
	lseek(fd, 0, SEEK_SET);
	memset(buf, 0, sizeof buf);
	printf("read: %ld '%s'\n", (long)read(fd, buf, sizeof buf), buf);
	printf("pwrite past the end: %ld\n", (long)pwrite(fd, "X", 1, 2 * PG + 16));
	printf("SEEK_END: %ld\n", (long)lseek(fd, 0, SEEK_END));
	show_stat("with a hole", fd);
	char hole[8];
	memset(hole, 7, sizeof hole);
	pread(fd, hole, sizeof hole, PG + 5);
	printf("hole reads zeros: %s\n", yes(memcmp(hole, "\0\0\0\0\0\0\0\0", 8) == 0));

	/* MAP_SHARED: the file's own pages */
	printf("ftruncate to 3 pages: %s\n", err(ftruncate(fd, 3 * PG)));
	show_stat("3 pages", fd);
	char *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("mmap shared: %s\n", err((long)m));
	printf("mapping reads the file: %s\n", yes(memcmp(m, "hello world", 11) == 0));
	printf("mapping sees the pwrite: %s\n", yes(m[2 * PG + 16] == 'X'));
	m[PG] = 'M';
	pread(fd, buf, 1, PG);
	printf("fd reads the mapping's write: %s\n", yes(buf[0] == 'M'));
	pwrite(fd, "W", 1, PG + 1);
	printf("mapping sees the fd's write: %s\n", yes(m[PG + 1] == 'W'));
	printf("touch past the end: SIGBUS %s\n", yes(sigbus(m + 3 * PG, 0)));
	maps_line(m);
	char *m2 = mmap(NULL, 2 * PG, PROT_READ, MAP_SHARED, fd, PG);
	printf("second mapping at offset 1 page sees it: %s\n", yes(m2[0] == 'M'));
	maps_line(m2);

	/* fork: the child writes through its inherited mapping and the fd */
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		m[2 * PG] = 'C';
		pwrite(fd, "D", 1, 2 * PG + 1);
		_exit(m[PG] == 'M' ? 0 : 1);
	}
	int status = -1;
	waitpid(pid, &status, 0);
	printf("child: status %d, its writes seen: %s %s\n", WEXITSTATUS(status),
	       yes(m[2 * PG] == 'C'), yes(m[2 * PG + 1] == 'D'));

	/* MAP_PRIVATE: reads the file, a write copies */
	char *pv = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	printf("mmap private: %s\n", err((long)pv));
	printf("private reads the file: %s\n", yes(pv[PG] == 'M' && pv[2 * PG] == 'C'));
	pv[PG] = 'P';
	printf("private write stays private: %s\n", yes(m[PG] == 'M'));
	pread(fd, buf, 1, PG);
	printf("file unchanged: %s\n", yes(buf[0] == 'M'));
	m[PG + 2] = 'S';
	m[2 * PG + 2] = 'T';
	printf("copied page misses later file writes: %s\n", yes(pv[PG + 2] != 'S'));
	printf("uncopied page sees them: %s\n", yes(pv[2 * PG + 2] == 'T'));

	/* shrink: pages past the end go from every mapping */
	printf("ftruncate to 1 page + 100: %s\n", err(ftruncate(fd, PG + 100)));
	show_stat("shrunk", fd);
	printf("shared page 2: SIGBUS %s\n", yes(sigbus(m + 2 * PG, 0)));
	printf("private page 2: SIGBUS %s\n", yes(sigbus(pv + 2 * PG, 1)));
	printf("private copied page 1 kept: %s\n", yes(pv[PG] == 'P'));
	printf("tail of page 1 zeroed: %s\n", yes(m[PG + 100] == 0 && m[PG + 99] == 0 && m[PG] == 'M'));
	printf("ftruncate to 3 pages: %s\n", err(ftruncate(fd, 3 * PG)));
	printf("regrown page 2 reads zero: %s\n", yes(m[2 * PG] == 0 && m[2 * PG + 2] == 0));
	munmap(pv, 3 * PG);

	/* seals */
	printf("F_SEAL_WRITE with a writable mapping: %s\n",
	       err(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)));
	munmap(m, 4 * PG);
	/* m2 is read-only but VM_MAYWRITE (the fd is O_RDWR): it counts. */
	printf("F_SEAL_WRITE with a read-only one: %s\n",
	       err(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)));
	munmap(m2, 2 * PG);
	printf("F_SEAL_WRITE with none: %s\n",
	       err(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)));
	printf("seals: %#x\n", fcntl(fd, F_GET_SEALS));
	printf("write: %s\n", err(write(fd, "x", 1)));
	printf("pwrite: %s\n", err(pwrite(fd, "x", 1, 0)));
	printf("mmap shared writable: %s\n",
	       err((long)mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)));
	char *ro = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
	printf("mmap shared read-only: %s\n", err((long)ro));
	printf("mprotect it writable: %s\n", err(mprotect(ro, PG, PROT_READ | PROT_WRITE)));
	char *pw = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	printf("mmap private writable: %s\n", err((long)pw));
	pw[0] = 'q';
	printf("ftruncate still allowed: %s\n", err(ftruncate(fd, 4 * PG)));
	printf("F_SEAL_SHRINK: %s\n", err(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK)));
	printf("shrink: %s\n", err(ftruncate(fd, PG)));
	printf("grow: %s\n", err(ftruncate(fd, 5 * PG)));
	printf("F_SEAL_SEAL: %s\n", err(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL)));
	printf("F_SEAL_GROW after it: %s\n", err(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW)));
	printf("unknown seal: %s\n", err(fcntl(fd, F_ADD_SEALS, 0x100)));
	printf("seals: %#x\n", fcntl(fd, F_GET_SEALS));
	munmap(ro, PG);
	munmap(pw, PG);
	close(fd);

	/* F_SEAL_GROW: writes inside the size only */
	fd = mfd("grow", MFD_ALLOW_SEALING);
	write(fd, "0123456789", 10);
	printf("F_SEAL_GROW: %s\n", err(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW)));
	printf("write inside: %s\n", err(pwrite(fd, "ab", 2, 3)));
	printf("write past the end: %s\n", err(pwrite(fd, "ab", 2, 9)));
	printf("ftruncate grow: %s\n", err(ftruncate(fd, 20)));
	printf("ftruncate shrink: %s\n", err(ftruncate(fd, 5)));
	printf("fallocate past the end: %s\n", err(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, PG)));
	show_stat("grow-sealed", fd);
	close(fd);

	/* F_SEAL_FUTURE_WRITE: an existing writable mapping still writes */
	fd = mfd("future", MFD_ALLOW_SEALING);
	ftruncate(fd, PG);
	char *fw = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("F_SEAL_FUTURE_WRITE: %s\n", err(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE)));
	fw[0] = 'f';
	pread(fd, buf, 1, 0);
	printf("old mapping writes: %s\n", yes(buf[0] == 'f'));
	printf("write: %s\n", err(write(fd, "x", 1)));
	printf("new writable mapping: %s\n",
	       err((long)mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)));
	close(fd);
	printf("closed fd, mapping keeps the file: %s\n", yes(fw[0] == 'f'));
	munmap(fw, PG);

	/* fallocate */
	fd = mfd("falloc", 0);
	printf("fallocate 2 pages: %s\n", err(fallocate(fd, 0, 0, 2 * PG)));
	show_stat("fallocated", fd);
	printf("fallocate KEEP_SIZE: %s\n", err(fallocate(fd, FALLOC_FL_KEEP_SIZE, 4 * PG, PG)));
	show_stat("kept size", fd);
	printf("fallocate inside: %s\n", err(fallocate(fd, 0, 10, 20)));
	show_stat("inside", fd);

	/* Shmem in /proc/meminfo counts a file's pages */
	long before = shmem_kb();
	static char mib[1 << 20];
	memset(mib, 'z', sizeof mib);
	for (int i = 0; i < 4; i++)
		write(fd, mib, sizeof mib);
	long after = shmem_kb();
	/* 3 MiB: the host's other tasks move Shmem meanwhile. */
	printf("Shmem grew by >= 3 MiB: %s\n", yes(after - before >= 3072));
	close(fd);
	printf("Shmem back after close: %s\n", yes(shmem_kb() <= after - 3072));
	printf("memfd: done\n");
	return 0;
}
