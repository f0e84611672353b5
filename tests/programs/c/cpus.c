/*
 * cpus: the CPUs a program sees: the "processor" entries of /proc/cpuinfo
 * with their APIC ids, the affinity mask of sched_getaffinity, and
 * sysconf's count of online processors.
 *
 * The counts depend on the machine, so the test runs it only under QEMU
 * with a known CPU count (`--smp 2`) and fixed expected lines.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char text[64 * 1024];

int main(void)
{
	printf("cpus: start\n");
	int fd = open("/proc/cpuinfo", O_RDONLY);
	if (fd < 0) {
		printf("open /proc/cpuinfo failed\n");
		return 1;
	}
	long len = 0, n;
	while ((n = read(fd, text + len, sizeof text - 1 - len)) > 0)
		len += n;
	close(fd);
	text[len] = 0;

	/* One block per processor; its fields in Linux's order. */
	int count = 0, processor = -1, apicid = -1, initial = -1;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		int value = atoi(colon + 1);
		if (strncmp(line, "processor\t", 10) == 0) {
			processor = value;
			count++;
		} else if (strncmp(line, "apicid\t", 7) == 0) {
			apicid = value;
		} else if (strncmp(line, "initial apicid\t", 15) == 0) {
			initial = value;
			printf("processor %d apicid %d initial apicid %d\n", processor, apicid,
			       initial);
		}
	}
	printf("cpuinfo: %d processors\n", count);

	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof set, &set) != 0) {
		printf("sched_getaffinity failed\n");
		return 1;
	}
	printf("sched_getaffinity: %d CPUs\n", CPU_COUNT(&set));
	printf("sysconf(_SC_NPROCESSORS_ONLN): %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
	printf("cpus: done\n");
	return 0;
}
