/*
 * mallocs: printf and musl's malloc (mallocng) over 1 B .. 1 MiB.
 *
 * Small sizes come from groups carved out of brk/mmap'd "meta areas"; sizes
 * above MMAP_THRESHOLD (~128 KiB) are one mmap each, and realloc of those
 * goes through mremap. Every block is filled with a pattern derived from
 * (size, index), checked after all blocks of a size exist (so overlapping
 * blocks would show), grown and shrunk with realloc (the prefix must
 * survive), and freed. Output is a function of the sizes only: no
 * addresses, no timings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char pattern(size_t size, size_t block, size_t i)
{
	return (unsigned char)(size * 31 + block * 7 + i * 13 + (i >> 8));
}

static void fill(unsigned char *p, size_t size, size_t block)
{
	for (size_t i = 0; i < size; i++)
		p[i] = pattern(size, block, i);
}

/* Number of bytes of p[0..n) that differ from the pattern of (size, block). */
static size_t check(const unsigned char *p, size_t n, size_t size, size_t block)
{
	size_t bad = 0;
	for (size_t i = 0; i < n; i++)
		bad += p[i] != pattern(size, block, i);
	return bad;
}

static uint32_t checksum(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

int main(void)
{
	static const size_t sizes[] = {
		1,     2,     3,     8,      15,     16,     33,     64,
		100,   255,   1000,  4095,   4096,   4097,   10000,  65536,
		100000, 131072, 200000, 524288, 1048576,
	};
	enum { MAX_BLOCKS = 64 };
	unsigned char *blocks[MAX_BLOCKS];
	int failed = 0;

	printf("mallocs: start\n");
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		size_t size = sizes[s];
		/* Fewer blocks of the big sizes: 64 of 1 B, 4 of 1 MiB. */
		size_t nr = size >= 65536 ? 4 : MAX_BLOCKS;
		size_t bad = 0, bad_grow = 0, bad_shrink = 0;
		uint32_t sum = 0;

		for (size_t b = 0; b < nr; b++) {
			blocks[b] = malloc(size);
			if (!blocks[b]) {
				printf("size %zu: malloc failed\n", size);
				return 1;
			}
			fill(blocks[b], size, b);
		}
		for (size_t b = 0; b < nr; b++) {
			bad += check(blocks[b], size, size, b);
			sum = sum * 31 + checksum(blocks[b], size);
		}
		/* Grow to 3x + 5 (moves most blocks), check the old bytes, then
		 * shrink to half and check again. */
		for (size_t b = 0; b < nr; b++) {
			unsigned char *p = realloc(blocks[b], size * 3 + 5);
			if (!p) {
				printf("size %zu: realloc grow failed\n", size);
				return 1;
			}
			memset(p + size, 0xa5, size * 2 + 5);
			bad_grow += check(p, size, size, b);
			blocks[b] = p;
		}
		for (size_t b = 0; b < nr; b++) {
			size_t half = size / 2 + 1;
			unsigned char *p = realloc(blocks[b], half);
			if (!p) {
				printf("size %zu: realloc shrink failed\n", size);
				return 1;
			}
			bad_shrink += check(p, half, size, b);
			blocks[b] = p;
		}
		for (size_t b = 0; b < nr; b++)
			free(blocks[b]);
		printf("size %7zu: %2zu blocks, checksum %08x, bad bytes %zu/%zu/%zu\n",
		       size, nr, sum, bad, bad_grow, bad_shrink);
		failed |= bad || bad_grow || bad_shrink;
	}

	/* One block grown by doubling from 1 B to 1 MiB: every step keeps the
	 * bytes written so far (brk-backed groups, then mmap, then mremap). */
	unsigned char *p = NULL;
	size_t have = 0, lost = 0;
	for (size_t n = 1; n <= 1048576; n *= 2) {
		p = realloc(p, n);
		if (!p) {
			printf("doubling: realloc %zu failed\n", n);
			return 1;
		}
		lost += check(p, have, 1048576, 0);
		for (size_t i = 0; i < n; i++)
			p[i] = pattern(1048576, 0, i);
		have = n;
	}
	printf("doubling 1 B -> 1 MiB: checksum %08x, lost bytes %zu\n",
	       checksum(p, have), lost);
	free(p);
	failed |= lost != 0;

	/* calloc must return zeroed memory, also when reusing freed blocks. */
	size_t nonzero = 0;
	for (int round = 0; round < 2; round++) {
		for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
			unsigned char *z = calloc(1, sizes[s]);
			if (!z)
				return 1;
			for (size_t i = 0; i < sizes[s]; i++)
				nonzero += z[i] != 0;
			memset(z, 0xff, sizes[s]);
			free(z);
		}
	}
	printf("calloc zeroed: %s\n", nonzero ? "no" : "yes");
	failed |= nonzero != 0;

	printf("mallocs: %s\n", failed ? "FAILED" : "done");
	return failed;
}
