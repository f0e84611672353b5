/*
 * sigbench: the cost of a signal round trip, timed from user space with
 * the same static binary on Linux and on this kernel. Not a test: it
 * prints figures, one per line.
 *
 *   sigbench [ROUNDS]
 *
 *   bench raise_handler NS ns    raise(SIGUSR1) with a handler installed:
 *                                tkill, frame set-up on the way out,
 *                                the handler, rt_sigreturn
 *   bench sigprocmask NS ns      a block + unblock pair (the baseline of
 *                                two syscalls without delivery)
 *   bench raise_ignored NS ns    raise of an ignored signal (dropped when
 *                                sent)
 *   sigbench: done
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t hits;

static void on_usr1(int sig)
{
	(void)sig;
	hits++;
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 20000;
	printf("sigbench: start\n");
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);

	double t0 = now_ns();
	for (long i = 0; i < rounds; i++)
		raise(SIGUSR1);
	double t1 = now_ns();
	printf("bench raise_handler %.0f ns (%ld handled)\n", (t1 - t0) / rounds, (long)hits);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	t0 = now_ns();
	for (long i = 0; i < rounds; i++) {
		sigprocmask(SIG_BLOCK, &set, NULL);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
	}
	t1 = now_ns();
	printf("bench sigprocmask %.0f ns\n", (t1 - t0) / rounds);

	signal(SIGUSR2, SIG_IGN);
	t0 = now_ns();
	for (long i = 0; i < rounds; i++)
		raise(SIGUSR2);
	t1 = now_ns();
	printf("bench raise_ignored %.0f ns\n", (t1 - t0) / rounds);
	printf("sigbench: done\n");
	return 0;
}
