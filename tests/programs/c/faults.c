/*
 * faults: a benchmark to run the same binary on Linux and on this kernel
 * (`cargo run -- --init faults ...`) and compare: first-touch write faults
 * over MIB mebibytes, counted by getrusage's ru_minflt and timed with
 * CLOCK_MONOTONIC, then MADV_DONTNEED and a second touch. With "64k" it
 * first writes 17 to /proc/sys/vm/anon_orders (4 KiB and 64 KiB folios:
 * this kernel's mTHP setting; on Linux the file does not exist and the
 * run says so). Not a test: it prints figures.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static long minflt(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void touch(char *p, size_t len, const char *what)
{
	long f0 = minflt();
	double t0 = now();
	for (size_t i = 0; i < len; i += 4096)
		p[i] = 1;
	double dt = now() - t0;
	long f = minflt() - f0;
	printf("%-22s %8zu pages %8ld minflt %8.0f ns/page %8.0f ns/fault\n", what, len / 4096, f,
	       dt * 1e9 / (len / 4096), f ? dt * 1e9 / f : 0.0);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
	if (argc > 2 && !strcmp(argv[2], "64k")) {
		int fd = open("/proc/sys/vm/anon_orders", O_WRONLY);
		printf("anon_orders=17 (64 KiB folios): %s\n",
		       fd >= 0 && write(fd, "17", 2) == 2 ? "set" : "no such setting here");
		if (fd >= 0)
			close(fd);
	}
	size_t len = mib << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	touch(p, len, "first touch");
	madvise(p, len, MADV_DONTNEED);
	touch(p, len, "after MADV_DONTNEED");
	munmap(p, len);
	return 0;
}
