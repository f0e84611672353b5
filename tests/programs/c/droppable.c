/*
 * droppable: MAP_DROPPABLE (Linux 6.11, the vDSO getrandom state's
 * mapping) and MADV_WIPEONFORK / MADV_KEEPONFORK, as Linux 6.19 has them:
 * MAP_DROPPABLE is a mapping type of its own (the MAP_TYPE value 8, with
 * MAP_ANONYMOUS; with MAP_PRIVATE or MAP_SHARED the type is invalid),
 * refused with MAP_LOCKED or MAP_GROWSDOWN; a fork child gets droppable
 * and wipe-on-fork memory empty (zeros) while the parent keeps its data;
 * MADV_KEEPONFORK and MADV_DODUMP cannot undo a droppable mapping's
 * flags; MADV_WIPEONFORK is for private memory only; its /proc/self/maps
 * line is a private one, and its smaps VmFlags show "nr wf dd dp" (and a
 * sealed mapping's "sl").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errname.h"

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#define MADV_KEEPONFORK 19
#endif

#define PG 4096

/* "ok", or errno's name. */
static const char *ok_or_err(long r)
{
	return r >= 0 ? "ok" : errname(errno);
}

static const char *try_map(int flags)
{
	void *p = mmap(NULL, PG, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return ok_or_err(-1);
	munmap(p, PG);
	return "ok";
}

/* The permissions of the /proc/self/maps line starting at p. */
static void maps_perms(const char *what, void *p)
{
	char want[32], line[512];
	snprintf(want, sizeof want, "%lx-", (unsigned long)p);
	FILE *f = fopen("/proc/self/maps", "r");
	while (f && fgets(line, sizeof line, f)) {
		if (!strncmp(line, want, strlen(want))) {
			char *sp = strchr(line, ' ');
			printf("%s maps perms: %.4s\n", what, sp + 1);
			fclose(f);
			return;
		}
	}
	printf("%s: no maps line\n", what);
	if (f)
		fclose(f);
}

/* The smaps VmFlags line of the VMA starting at p. */
static void smaps_flags(const char *what, void *p)
{
	char want[32], line[512];
	int in = 0;
	snprintf(want, sizeof want, "%lx-", (unsigned long)p);
	FILE *f = fopen("/proc/self/smaps", "r");
	while (f && fgets(line, sizeof line, f)) {
		if (!strncmp(line, want, strlen(want)))
			in = 1;
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			/* Without "sd" (soft-dirty): a kernel built without
			 * CONFIG_MEM_SOFT_DIRTY, as some hosts are, never shows
			 * it; softdirty.c checks it. */
			char *sd = strstr(line, " sd ");
			if (sd)
				memmove(sd, sd + 3, strlen(sd + 3) + 1);
			printf("%s %s", what, line);
			fclose(f);
			return;
		}
	}
	printf("%s: no smaps entry\n", what);
	if (f)
		fclose(f);
}

static int wait_child(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

/* Sum of the bytes of [p, p + n). */
static unsigned long sum(const unsigned char *p, size_t n)
{
	unsigned long s = 0;
	for (size_t i = 0; i < n; i++)
		s += p[i];
	return s;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("droppable: start\n");

	printf("droppable|anon: %s\n", try_map(MAP_DROPPABLE | MAP_ANONYMOUS));
	printf("droppable|private|anon: %s\n",
	       try_map(MAP_DROPPABLE | MAP_PRIVATE | MAP_ANONYMOUS));
	printf("droppable|shared|anon: %s\n",
	       try_map(MAP_DROPPABLE | MAP_SHARED | MAP_ANONYMOUS));
	printf("droppable|anon|locked: %s\n",
	       try_map(MAP_DROPPABLE | MAP_ANONYMOUS | MAP_LOCKED));
	printf("droppable|anon|growsdown: %s\n",
	       try_map(MAP_DROPPABLE | MAP_ANONYMOUS | MAP_GROWSDOWN));
	printf("droppable, fd -1, not anon: %s\n", try_map(MAP_DROPPABLE));
	printf("type 4: %s\n", try_map(0x04 | MAP_ANONYMOUS));
	printf("type 15: %s\n", try_map(0x0f | MAP_ANONYMOUS));

	size_t len = 16 * PG;
	unsigned char *d = mmap(NULL, len, PROT_READ | PROT_WRITE,
				MAP_DROPPABLE | MAP_ANONYMOUS, -1, 0);
	unsigned char *w = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *s = mmap(NULL, PG, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (d == MAP_FAILED || w == MAP_FAILED || s == MAP_FAILED) {
		printf("mmap failed\n");
		return 1;
	}
	memset(d, 1, len);
	memset(w, 2, 4 * PG);
	printf("droppable sum %lu\n", sum(d, len));
	maps_perms("droppable", d);
	smaps_flags("droppable", d);
	printf("mprotect droppable r: %s\n", ok_or_err(mprotect(d, PG, PROT_READ)));
	printf("mprotect droppable rw: %s\n",
	       ok_or_err(mprotect(d, PG, PROT_READ | PROT_WRITE)));

	printf("wipeonfork w[1..3): %s\n",
	       ok_or_err(madvise(w + PG, 2 * PG, MADV_WIPEONFORK)));
	printf("wipeonfork shared: %s\n", ok_or_err(madvise(s, PG, MADV_WIPEONFORK)));
	printf("keeponfork droppable: %s\n",
	       ok_or_err(madvise(d, PG, MADV_KEEPONFORK)));
	printf("dodump droppable: %s\n", ok_or_err(madvise(d, PG, MADV_DODUMP)));
	printf("dontdump droppable: %s\n", ok_or_err(madvise(d, PG, MADV_DONTDUMP)));
	printf("dontdump w: %s\n", ok_or_err(madvise(w, PG, MADV_DONTDUMP)));
	printf("dodump w: %s\n", ok_or_err(madvise(w, PG, MADV_DODUMP)));
	unsigned char *h = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(h + PG, PG);
	printf("wipeonfork over a hole: %s\n",
	       ok_or_err(madvise(h, 3 * PG, MADV_WIPEONFORK)));
	munmap(h, 3 * PG);

	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		printf("child: droppable sum %lu\n", sum(d, len));
		printf("child: w pages %lu %lu %lu %lu\n", sum(w, PG),
		       sum(w + PG, PG), sum(w + 2 * PG, PG),
		       sum(w + 3 * PG, PG));
		memset(d, 3, PG);
		memset(w + PG, 4, PG);
		printf("child: wrote %lu %lu\n", sum(d, PG), sum(w + PG, PG));
		fflush(stdout);
		pid_t g = fork();
		if (g == 0) {
			printf("grandchild: %lu %lu\n", sum(d, PG),
			       sum(w + PG, PG));
			fflush(stdout);
			_exit(0);
		}
		printf("child: grandchild status %d\n", wait_child(g));
		fflush(stdout);
		_exit(0);
	}
	printf("child status %d\n", wait_child(pid));
	printf("parent: droppable sum %lu, w sum %lu\n", sum(d, len),
	       sum(w, 4 * PG));

	printf("keeponfork w: %s\n", ok_or_err(madvise(w, 4 * PG, MADV_KEEPONFORK)));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		printf("child 2: w sum %lu, droppable sum %lu\n",
		       sum(w, 4 * PG), sum(d, len));
		fflush(stdout);
		_exit(0);
	}
	printf("child 2 status %d\n", wait_child(pid));

	/* A sealed mapping's VmFlags end in "sl" (bit 63), after "dp" above. */
	unsigned char *sealed = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("mseal: %s\n", ok_or_err(syscall(462, sealed, PG, 0)));
	smaps_flags("sealed", sealed);

	/* Droppable memory is released as any other. */
	printf("munmap droppable: %s\n", ok_or_err(munmap(d, len)));
	printf("droppable: done\n");
	return 0;
}
