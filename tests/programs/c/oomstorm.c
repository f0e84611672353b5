/*
 * oomstorm: the scenario of issue 16 (a frame leak reported after it):
 *   1. oom:   a child touches anonymous memory in 64 MiB mmaps until the
 *             kernel kills it for memory (SIGKILL);
 *   2. big:   the parent maps, touches and unmaps BIG MiB;
 *   3. storm: the parent forks until fork fails (or KIDS children), each
 *             child in pause(); then kill(-1, SIGKILL) and reap them all.
 * The kernel's exit check must then find every frame back. QEMU only (the
 * host would run out of memory or processes). Usage:
 *   oomstorm [PARTS [BIG_MIB [KIDS]]]
 * PARTS: a comma list of oom, big, storm (default all three), and hold
 * (BIG_MIB stay mapped during the storm); BIG_MIB default 256; KIDS 0
 * (default): fork until it fails.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK (64UL << 20)

static int has(const char *parts, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = parts; (p = strstr(p, word)); p += n)
		if ((p == parts || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
			return 1;
	return 0;
}

static void touch(char *p, size_t bytes)
{
	for (size_t off = 0; off < bytes; off += 4096)
		p[off] = 1;
}

/* A child that eats memory until the kernel kills it. */
static void oom(void)
{
	pid_t c = fork();
	if (c < 0) {
		printf("oom: fork failed: %s\n", strerror(errno));
		exit(1);
	}
	if (c == 0) {
		for (;;) {
			char *p = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				_exit(3);
			touch(p, CHUNK);
		}
	}
	int st;
	if (waitpid(c, &st, 0) != c) {
		printf("oom: waitpid failed: %s\n", strerror(errno));
		exit(1);
	}
	if (WIFSIGNALED(st))
		printf("oom: child killed by signal %d\n", WTERMSIG(st));
	else
		printf("oom: child exited %d\n", WEXITSTATUS(st));
}

/* Maps and touches MIB MiB; unmaps it unless KEEP (then returns it). */
static char *big(unsigned long mib, int keep)
{
	size_t bytes = mib << 20;
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		printf("big: mmap of %lu MiB failed: %s\n", mib, strerror(errno));
		exit(1);
	}
	touch(p, bytes);
	if (keep) {
		printf("hold: touched %lu MiB\n", mib);
		return p;
	}
	printf("big: touched %lu MiB, munmap %d\n", mib, munmap(p, bytes));
	return NULL;
}

static void storm(int kids)
{
	int n = 0, err = 0;
	while (kids == 0 || n < kids) {
		pid_t c = fork();
		if (c < 0) {
			err = errno;
			break;
		}
		if (c == 0) {
			/* Sleeps until SIGKILL (a kernel without pause() makes
			 * zombies here, which hold their slots as well). */
			pause();
			_exit(0);
		}
		n++;
	}
	if (kids == 0)
		printf("~storm: fork failed after %d children: %s\n", n, strerror(err));
	else
		printf("storm: %d children forked%s\n", n, err ? " (fork failed)" : "");
	if (kill(-1, SIGKILL) != 0)
		printf("storm: kill(-1, SIGKILL) failed: %s\n", strerror(errno));
	int reaped = 0, killed = 0, st;
	pid_t w;
	while ((w = wait(&st)) > 0) {
		reaped++;
		killed += WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
	}
	printf("storm: reaped all: %s, killed by SIGKILL: %s, wait then: %s\n",
	       reaped == n ? "yes" : "no", killed == n ? "yes" : "no",
	       errno == ECHILD ? "ECHILD" : strerror(errno));
}

int main(int argc, char **argv)
{
	const char *parts = argc > 1 ? argv[1] : "oom,big,storm";
	unsigned long mib = argc > 2 ? strtoul(argv[2], NULL, 0) : 256;
	int kids = argc > 3 ? atoi(argv[3]) : 0;
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("oomstorm: start\n");
	if (has(parts, "oom"))
		oom();
	if (has(parts, "big"))
		big(mib, 0);
	/* hold: BIG MiB stay mapped through the storm, so that each child's
	 * fork copies their page tables and fork may fail for memory. */
	char *held = has(parts, "hold") ? big(mib, 1) : NULL;
	if (has(parts, "storm"))
		storm(kids);
	if (held)
		printf("hold: munmap %d\n", munmap(held, mib << 20));
	printf("oomstorm: done\n");
	return 0;
}
