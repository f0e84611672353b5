/*
 * itimer: alarm(2), setitimer(2) and getitimer(2) with ITIMER_REAL, as
 * Linux has them: alarm's return (the seconds left, rounded), SIGALRM
 * from the kernel (SI_KERNEL) ending pause() and interrupting a sleep
 * with EINTR, its default action killing a child, a periodic timer
 * firing by its interval and read back by getitimer, NULL disarming, the
 * errnos (EINVAL for a bad which or timeval, EFAULT), the timer not
 * inherited by fork, and a timer of a child not reaching the parent.
 *
 * Timings are checked with wide margins (the guest's clock ticks every
 * 4 ms); only facts that hold on any Linux are printed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *yes(int c)
{
	return c ? "yes" : "no";
}

static const char *errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EINVAL: return "EINVAL";
	case EFAULT: return "EFAULT";
	case EINTR: return "EINTR";
	default: return strerror(e);
	}
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static volatile int alarms, last_code;

static void on_alrm(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	alarms++;
	last_code = si->si_code;
}

static void raw_itimer(int which, const void *v, void *old, const char *what)
{
	errno = 0;
	long r = syscall(SYS_setitimer, which, v, old);
	printf("%s: %ld %s\n", what, r, r < 0 ? errname(errno) : "");
}

int main(void)
{
	struct sigaction sa;
	struct timespec t0;
	struct itimerval it, old;
	long ms;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("itimer: start\n");
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_alrm;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGALRM, &sa, NULL);

	/* alarm's return values. */
	printf("alarm(5) with none pending: %u\n", alarm(5));
	printf("alarm(2) then: %u (5 s left, rounded)\n", alarm(2));
	getitimer(ITIMER_REAL, &it);
	printf("getitimer: value 1..2 s %s, no interval %s\n",
	       yes(it.it_value.tv_sec == 1 || (it.it_value.tv_sec == 2 && it.it_value.tv_usec == 0)),
	       yes(it.it_interval.tv_sec == 0 && it.it_interval.tv_usec == 0));
	printf("alarm(0) then: %u\n", alarm(0));
	printf("alarm(0) again: %u\n", alarm(0));
	getitimer(ITIMER_REAL, &it);
	printf("getitimer after alarm(0): %ld.%06ld\n", (long)it.it_value.tv_sec,
	       (long)it.it_value.tv_usec);

	/* SIGALRM ends pause(), from the kernel. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	alarm(1);
	int r = pause();
	ms = ms_since(&t0);
	printf("alarm(1) + pause: %d %s, %d SIGALRM, SI_KERNEL %s, after 0.9 to 3 s %s\n",
	       r, errname(errno), alarms, yes(last_code == SI_KERNEL),
	       yes(ms >= 900 && ms < 3000));

	/* A periodic timer: 20 ms, five rounds. */
	alarms = 0;
	it.it_interval.tv_sec = 0;
	it.it_interval.tv_usec = 20000;
	it.it_value = it.it_interval;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	printf("setitimer 20 ms periodic: %d\n", setitimer(ITIMER_REAL, &it, &old));
	printf("  the old one: %ld.%06ld / %ld.%06ld\n", (long)old.it_value.tv_sec,
	       (long)old.it_value.tv_usec, (long)old.it_interval.tv_sec,
	       (long)old.it_interval.tv_usec);
	sigset_t none;
	sigemptyset(&none);
	while (alarms < 5)
		sigsuspend(&none);
	ms = ms_since(&t0);
	getitimer(ITIMER_REAL, &it);
	printf("  5 SIGALRMs after 90 ms to 3 s %s; still armed %s, interval 20 ms %s\n",
	       yes(ms >= 90 && ms < 3000),
	       yes(it.it_value.tv_sec == 0 && it.it_value.tv_usec > 0 && it.it_value.tv_usec <= 20000),
	       yes(it.it_interval.tv_sec == 0 && it.it_interval.tv_usec == 20000));
	memset(&it, 0, sizeof it);
	setitimer(ITIMER_REAL, &it, &old);
	printf("  disarmed: the old interval 20 ms %s\n", yes(old.it_interval.tv_usec == 20000));
	alarms = 0;
	struct timespec ts = {0, 100000000L};
	nanosleep(&ts, NULL);
	printf("  no SIGALRM after disarming: %s\n", yes(alarms == 0));

	/* A SIGALRM interrupts a sleep with EINTR (no SA_RESTART for sleeps). */
	it.it_value.tv_usec = 50000;
	setitimer(ITIMER_REAL, &it, NULL);
	ts.tv_sec = 5;
	ts.tv_nsec = 0;
	struct timespec left;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	errno = 0;
	r = nanosleep(&ts, &left);
	printf("nanosleep(5 s) with a 50 ms timer: %d %s, left more than 4 s %s, after < 3 s %s\n",
	       r, errname(errno), yes(left.tv_sec >= 4), yes(ms_since(&t0) < 3000));

	/* NULL new value disarms. */
	alarm(10);
	raw_itimer(ITIMER_REAL, NULL, &old, "setitimer(REAL, NULL)");
	printf("  the old value 9..10 s %s\n",
	       yes(old.it_value.tv_sec == 9 || old.it_value.tv_sec == 10));
	getitimer(ITIMER_REAL, &it);
	printf("  now disarmed %s\n", yes(it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0));

	/* Errors. */
	struct itimerval bad = {{0, 0}, {0, 1000000}};
	raw_itimer(ITIMER_REAL, &bad, NULL, "setitimer usec 1000000");
	bad.it_value.tv_usec = -1;
	raw_itimer(ITIMER_REAL, &bad, NULL, "setitimer usec -1");
	bad.it_value.tv_usec = 0;
	bad.it_value.tv_sec = -1;
	raw_itimer(ITIMER_REAL, &bad, NULL, "setitimer sec -1");
	bad.it_value.tv_sec = 0;
	bad.it_interval.tv_usec = 2000000;
	raw_itimer(ITIMER_REAL, &bad, NULL, "setitimer interval usec 2000000");
	it.it_value.tv_sec = 1;
	raw_itimer(3, &it, NULL, "setitimer which 3");
	raw_itimer(-1, &it, NULL, "setitimer which -1");
	raw_itimer(3, &bad, NULL, "setitimer which 3, bad value");
	raw_itimer(ITIMER_REAL, (void *)8, NULL, "setitimer bad value pointer");
	raw_itimer(3, (void *)8, NULL, "setitimer which 3, bad value pointer");
	errno = 0;
	long gr = syscall(SYS_getitimer, 3, &it);
	printf("getitimer which 3: %ld %s\n", gr, errname(errno));
	errno = 0;
	gr = syscall(SYS_getitimer, ITIMER_REAL, (void *)8);
	printf("getitimer bad pointer: %ld %s\n", gr, errname(errno));
	it.it_value.tv_sec = 30;
	raw_itimer(ITIMER_REAL, &it, (void *)8, "setitimer bad old pointer");
	getitimer(ITIMER_REAL, &it);
	printf("  armed anyway %s\n", yes(it.it_value.tv_sec >= 29));
	alarm(0);

	/* fork: the child has no timer; the child's own timer kills it, not
	 * the parent. */
	alarm(30);
	pid_t c = fork();
	if (c == 0) {
		struct itimerval mine;
		getitimer(ITIMER_REAL, &mine);
		signal(SIGALRM, SIG_DFL);
		if (mine.it_value.tv_sec != 0 || mine.it_value.tv_usec != 0)
			_exit(1);
		struct itimerval soon = {{0, 0}, {0, 30000}};
		setitimer(ITIMER_REAL, &soon, NULL);
		for (;;)
			pause();
	}
	int st;
	alarms = 0;
	while (waitpid(c, &st, 0) < 0 && errno == EINTR)
		;
	printf("fork: the child had no timer and died of its own: %s\n",
	       yes(WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM));
	printf("  the parent got none: %s, its own still armed: %s\n", yes(alarms == 0),
	       yes(alarm(0) >= 29));

	printf("itimer: done\n");
	return 0;
}
