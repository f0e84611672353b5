/*
 * stack: the main thread's stack grows down on use.
 *
 * Linux maps a small stack at exec and grows the [stack] VMA when the
 * program touches the pages below it (up to RLIMIT_STACK, 8 MiB by
 * default). Here 3000 nested calls with a 1 KiB frame each use ~3 MiB, and
 * one 256 KiB frame is touched from its lowest address first (a fault far
 * below the last touched page, within the stack's gap). Each frame holds
 * data derived from its depth, checked on the way back up, so a frame that
 * was lost or shared would change the checksum.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FRAME = 1024 };

/* Recurses `depth` times; returns a checksum of every frame's contents. */
static __attribute__((noinline)) uint64_t recurse(unsigned depth, uint64_t seed)
{
	volatile unsigned char frame[FRAME];
	for (unsigned i = 0; i < FRAME; i++)
		frame[i] = (unsigned char)(seed + i * 7 + depth);
	uint64_t below = depth ? recurse(depth - 1, seed * 6364136223846793005ull + 1) : 0;
	uint64_t sum = 0;
	for (unsigned i = 0; i < FRAME; i++) {
		if (frame[i] != (unsigned char)(seed + i * 7 + depth))
			return UINT64_MAX; /* a frame changed under us */
		sum = sum * 31 + frame[i];
	}
	/* Not a tail call: the frame stays live across the recursion. */
	return below == UINT64_MAX ? below : below * 1099511628211ull ^ sum;
}

/* One 256 KiB frame, written from the bottom (lowest address) up. */
static __attribute__((noinline)) uint64_t big_frame(void)
{
	volatile unsigned char big[256 * 1024];
	for (unsigned i = 0; i < sizeof big; i += 4096)
		big[i] = (unsigned char)(i >> 12);
	uint64_t sum = 0;
	for (unsigned i = 0; i < sizeof big; i += 4096)
		sum += big[i];
	return sum;
}

/* Size in KiB of the [stack] line of /proc/self/maps, or -1. */
static long stack_kib(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	long kib = -1;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long start, end;
		if (strstr(line, "[stack]") && sscanf(line, "%lx-%lx", &start, &end) == 2)
			kib = (long)((end - start) / 1024);
	}
	if (f)
		fclose(f);
	return kib;
}

int main(int argc, char **argv)
{
	/* The depth may be given as argv[1]; 3000 by default. */
	unsigned depth = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 3000;
	printf("stack: start\n");
	long before = stack_kib();
	printf("~ [stack] before: %ld KiB\n", before);
	printf("[stack] line in maps: %s\n", before > 0 ? "yes" : "no");

	/* First, while the stack is still small: a fault 256 KiB below it. */
	printf("big frame 256 KiB touched bottom-first: sum %llu\n",
	       (unsigned long long)big_frame());

	uint64_t sum = recurse(depth, 1);
	printf("recursion depth %u x %d B frames: checksum %016llx\n", depth, FRAME,
	       (unsigned long long)sum);
	long after = stack_kib();
	printf("~ [stack] after: %ld KiB\n", after);
	/* The VMA grew to hold the frames (and does not shrink back). */
	printf("[stack] grew to at least %u KiB: %s\n", depth * FRAME / 1024,
	       after >= (long)(depth * FRAME / 1024) ? "yes" : "no");

	/* A second descent reuses the grown stack. */
	uint64_t again = recurse(depth, 1);
	printf("same checksum the second time: %s\n", again == sum ? "yes" : "no");
	printf("stack: done\n");
	return sum == UINT64_MAX;
}
