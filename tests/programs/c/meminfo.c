/*
 * meminfo: how /proc/meminfo's page-cache lines move with shmem files and
 * their mappings, against what Linux does. 8 MiB written to a memfd:
 * Shmem and Cached grow by it, Mapped and Dirty do not (shmem's
 * noop_dirty_folio accounts no NR_FILE_DIRTY). Mapped (NR_FILE_MAPPED)
 * counts each page once however many mappings map it: a shared mapping
 * read through grows it, a second (private) mapping and a forked child
 * do not; a private write replaces the page-cache page with an anonymous
 * copy, which is not file-mapped. Shared anonymous memory is shmem too.
 * Other tasks move the host's counters: each check takes the deltas of a
 * whole run and retries the run (up to 10 times) until they are within
 * 1 MiB of the expected ones; `~` lines carry the tries and deltas.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096L
#define NPG 2048L
#define KB (NPG * PG / 1024)
#define SLACK 1024L

enum { MAPPED, SHMEM, CACHED, DIRTY, NFIELDS };
static const char *const names[NFIELDS] = { "Mapped", "Shmem", "Cached", "Dirty" };

struct snap {
	long v[NFIELDS];
};

static struct snap snap(void)
{
	struct snap s;
	char line[256], name[64];
	long kb;
	for (int i = 0; i < NFIELDS; i++)
		s.v[i] = -1000000;
	FILE *f = fopen("/proc/meminfo", "r");
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "%63[^:]: %ld kB", name, &kb) == 2)
			for (int i = 0; i < NFIELDS; i++)
				if (!strcmp(name, names[i]))
					s.v[i] = kb;
	if (f)
		fclose(f);
	return s;
}

/* Whether every field moved from `a` to `b` by `want` kB, give or take SLACK. */
static int moved(struct snap a, struct snap b, const long want[NFIELDS])
{
	for (int i = 0; i < NFIELDS; i++) {
		long d = b.v[i] - a.v[i] - want[i];
		if (d > SLACK || d < -SLACK)
			return 0;
	}
	return 1;
}

static void touch_read(const char *p, long pages)
{
	for (long i = 0; i < pages; i++)
		(void)*(volatile const char *)(p + i * PG);
}

#define NCHECK 9
static const char *const what[NCHECK] = {
	"8 MiB written to a memfd: Shmem, Cached +8 MiB; Mapped, Dirty unchanged",
	"mapped shared and read: Mapped +8 MiB",
	"a forked child reading the shared mapping: unchanged",
	"mapped private too and read: unchanged",
	"the shared mapping unmapped: unchanged (the private one maps them)",
	"half the private pages written: Mapped -4 MiB",
	"the private mapping unmapped: Mapped -4 MiB",
	"the memfd closed: Shmem, Cached -8 MiB",
	"8 MiB shared anonymous touched: Shmem, Cached, Mapped +8 MiB",
};

/* One run; ok[i] tells whether check i held. */
static void run(int ok[NCHECK], long delta[NCHECK][NFIELDS])
{
	static const long want[NCHECK][NFIELDS] = {
		/* Mapped, Shmem, Cached, Dirty */
		{ 0, KB, KB, 0 },
		{ KB, 0, 0, 0 },
		{ 0, 0, 0, 0 },
		{ 0, 0, 0, 0 },
		{ 0, 0, 0, 0 },
		{ -KB / 2, 0, 0, 0 },
		{ -KB / 2, 0, 0, 0 },
		{ 0, -KB, -KB, 0 },
		{ KB, KB, KB, 0 },
	};
	struct snap s[NCHECK + 2];
	int n = 0;
	int fd = (int)syscall(SYS_memfd_create, "meminfo", 0);
	static char buf[64 * 1024];
	memset(buf, 'm', sizeof buf);

	s[n++] = snap();
	for (long off = 0; off < NPG * PG; off += sizeof buf)
		pwrite(fd, buf, sizeof buf, off);
	s[n++] = snap();
	char *sh = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	touch_read(sh, NPG);
	s[n++] = snap();
	int pfd[2];
	pipe(pfd);
	pid_t pid = fork();
	if (pid == 0) {
		touch_read(sh, NPG);
		struct snap c = snap();
		write(pfd[1], &c, sizeof c);
		_exit(0);
	}
	read(pfd[0], &s[n++], sizeof s[0]);
	waitpid(pid, NULL, 0);
	close(pfd[0]);
	close(pfd[1]);
	char *pv = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	touch_read(pv, NPG);
	s[n++] = snap();
	munmap(sh, NPG * PG);
	s[n++] = snap();
	for (long i = 0; i < NPG / 2; i++)
		pv[i * PG] = 'p';
	s[n++] = snap();
	munmap(pv, NPG * PG);
	s[n++] = snap();
	close(fd);
	s[n++] = snap();
	struct snap before = s[n - 1];
	char *an = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	for (long i = 0; i < NPG; i++)
		an[i * PG] = 'a';
	s[n++] = snap();
	munmap(an, NPG * PG);
	struct snap after = snap();

	for (int i = 0; i < NCHECK; i++) {
		ok[i] = moved(s[i], s[i + 1], want[i]);
		for (int j = 0; j < NFIELDS; j++)
			delta[i][j] = s[i + 1].v[j] - s[i].v[j];
	}
	/* the shared anonymous unmap gives it all back (folded into the last check) */
	static const long none[NFIELDS];
	ok[NCHECK - 1] &= moved(before, after, none);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("meminfo: start\n");
	struct snap s = snap();
	for (int i = 0; i < NFIELDS; i++)
		printf("%s: present %s\n", names[i], s.v[i] >= 0 ? "yes" : "no");
	int ok[NCHECK], tries = 0, all;
	long delta[NCHECK][NFIELDS];
	do {
		run(ok, delta);
		tries++;
		all = 1;
		for (int i = 0; i < NCHECK; i++)
			all &= ok[i];
	} while (!all && tries < 10);
	printf("~tries %d\n", tries);
	for (int i = 0; i < NCHECK; i++) {
		printf("%s: %s\n", what[i], ok[i] ? "yes" : "no");
		printf("~ Mapped %+ld Shmem %+ld Cached %+ld Dirty %+ld kB\n", delta[i][MAPPED],
		       delta[i][SHMEM], delta[i][CACHED], delta[i][DIRTY]);
	}
	printf("meminfo: done\n");
	return 0;
}
