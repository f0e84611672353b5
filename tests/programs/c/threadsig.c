/*
 * threadsig: signals in a multi-threaded process, as Linux delivers them:
 * pthread_kill (tgkill) runs the handler on the target thread; a signal
 * sent to the process goes to a thread that does not block it; each
 * thread has its own mask (/proc/thread-self/status SigBlk); sigwait in
 * one thread takes a process-directed signal; a handler interrupts a
 * read() and a futex wait in its thread with EINTR; futex timeouts,
 * relative and on the wall clock; tgkill with a tid of another process
 * fails with ESRCH; a fatal signal, abort() in a thread, and exit_group
 * from a thread end every thread of the process, whose parent sees the
 * status.
 *
 * Only facts that hold on any Linux are printed, by the main thread, in
 * an order the program fixes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* <linux/futex.h>'s values (the kernel headers may not be installed). */
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAIT_BITSET_PRIVATE (9 | 128)
#define FUTEX_CLOCK_REALTIME 256
#define FUTEX_BITSET_MATCH_ANY 0xffffffffU

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static volatile pid_t handler_tid;
static volatile int handler_sig;

static void record(int sig)
{
	handler_tid = gettid_();
	handler_sig = sig;
}

/* SigBlk of /proc/thread-self/status, as a number. */
static unsigned long long thread_sigblk(void)
{
	FILE *f = fopen("/proc/thread-self/status", "r");
	char line[256];
	unsigned long long v = ~0ULL;
	if (!f)
		return v;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "SigBlk: %llx", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* 1. pthread_kill reaches the named thread. */
static volatile int worker_done;
static volatile pid_t worker_tid;

static void *spin_until_done(void *arg)
{
	(void)arg;
	worker_tid = gettid_();
	while (!worker_done)
		sleep_ms(1);
	return NULL;
}

static void test_pthread_kill(void)
{
	pthread_t t;
	signal(SIGUSR1, record);
	worker_done = 0;
	worker_tid = 0;
	handler_tid = 0;
	pthread_create(&t, NULL, spin_until_done, NULL);
	while (!worker_tid)
		sleep_ms(1);
	int rc = pthread_kill(t, SIGUSR1);
	while (!handler_tid)
		sleep_ms(1);
	printf("pthread_kill: rc %d, handler ran on the target thread: %s\n", rc,
	       yes(handler_tid == worker_tid));
	worker_done = 1;
	pthread_join(t, NULL);
}

/* 2. kill() to the process: the main thread blocks the signal, so the
 * worker, which does not, runs the handler. */
static void *unblock_and_wait(void *arg)
{
	sigset_t none;
	(void)arg;
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);
	worker_tid = gettid_();
	while (!worker_done)
		sleep_ms(1);
	return NULL;
}

static void test_process_directed(void)
{
	pthread_t t;
	sigset_t usr2, old;
	signal(SIGUSR2, record);
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr2, &old);
	worker_done = 0;
	worker_tid = 0;
	handler_tid = 0;
	pthread_create(&t, NULL, unblock_and_wait, NULL);
	while (!worker_tid)
		sleep_ms(1);
	kill(getpid(), SIGUSR2);
	while (!handler_tid)
		sleep_ms(1);
	printf("kill to the process: handled by the thread that does not block "
	       "it: %s, signal %d\n",
	       yes(handler_tid == worker_tid), handler_sig);
	worker_done = 1;
	pthread_join(t, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* 3. Masks are per thread. */
static volatile unsigned long long worker_blk;

static void *read_own_mask(void *arg)
{
	sigset_t s;
	(void)arg;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	sigaddset(&s, SIGHUP);
	pthread_sigmask(SIG_SETMASK, &s, NULL);
	worker_blk = thread_sigblk();
	return NULL;
}

static void test_masks(void)
{
	pthread_t t;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	pthread_sigmask(SIG_SETMASK, &s, NULL);
	pthread_create(&t, NULL, read_own_mask, NULL);
	pthread_join(t, NULL);
	unsigned long long mine = thread_sigblk();
	/* glibc and musl may block their own internal signals (32..34) in
	 * places: look at the standard ones only. */
	printf("per-thread masks: main SigBlk %llx, thread's %llx\n",
	       mine & 0x7fffffffULL, worker_blk & 0x7fffffffULL);
	sigemptyset(&s);
	pthread_sigmask(SIG_SETMASK, &s, NULL);
}

/* 4. sigwait in a thread takes a signal sent to the process. */
static volatile int waited_sig;

static void *wait_for_usr1(void *arg)
{
	sigset_t s;
	int sig = 0;
	(void)arg;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	worker_tid = gettid_();
	sigwait(&s, &sig);
	waited_sig = sig;
	return NULL;
}

static void test_sigwait(void)
{
	pthread_t t;
	sigset_t s, old;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	/* Blocked everywhere (the thread inherits the mask): only sigwait
	 * takes it. */
	pthread_sigmask(SIG_BLOCK, &s, &old);
	worker_tid = 0;
	waited_sig = 0;
	pthread_create(&t, NULL, wait_for_usr1, NULL);
	while (!worker_tid)
		sleep_ms(1);
	sleep_ms(20);
	kill(getpid(), SIGUSR1);
	pthread_join(t, NULL);
	printf("sigwait in a thread: got signal %d\n", waited_sig);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* 5. A handler interrupts a read() in its own thread. */
static int pipefd[2];
static volatile int read_ret, read_errno;

static void *blocked_reader(void *arg)
{
	char c;
	(void)arg;
	worker_tid = gettid_();
	read_ret = (int)read(pipefd[0], &c, 1);
	read_errno = errno;
	return NULL;
}

static void test_eintr(void)
{
	pthread_t t;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = record; /* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);
	if (pipe(pipefd))
		return;
	worker_tid = 0;
	pthread_create(&t, NULL, blocked_reader, NULL);
	while (!worker_tid)
		sleep_ms(1);
	sleep_ms(50);
	pthread_kill(t, SIGUSR1);
	pthread_join(t, NULL);
	printf("read in a thread interrupted: ret %d, %s\n", read_ret,
	       read_errno == EINTR ? "EINTR" : strerror(read_errno));
	close(pipefd[0]);
	close(pipefd[1]);
}

/* 5b. A handler interrupts a futex wait in its thread: EINTR with and
 * without a timeout; timeouts expire with ETIMEDOUT, also on the wall
 * clock (FUTEX_CLOCK_REALTIME). */
static int futex_word;
static volatile long futex_ret;
static volatile int futex_errno;
static volatile int futex_timed;

static void *futex_waiter(void *arg)
{
	struct timespec ts = {5, 0};
	(void)arg;
	worker_tid = gettid_();
	futex_ret = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0,
			    futex_timed ? &ts : NULL, NULL, 0);
	futex_errno = errno;
	return NULL;
}

static const char *errname(int e)
{
	return e == EINTR ? "EINTR" : e == ETIMEDOUT ? "ETIMEDOUT" : strerror(e);
}

static void test_futex_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = record; /* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);
	for (futex_timed = 0; futex_timed < 2; futex_timed++) {
		pthread_t t;
		worker_tid = 0;
		pthread_create(&t, NULL, futex_waiter, NULL);
		while (!worker_tid)
			sleep_ms(1);
		sleep_ms(50);
		pthread_kill(t, SIGUSR1);
		pthread_join(t, NULL);
		printf("futex wait %s a timeout, interrupted: ret %ld %s\n",
		       futex_timed ? "with" : "without", futex_ret,
		       errname(futex_errno));
	}
	struct timespec rel = {0, 30 * 1000000L}, t0, t1, abs;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	errno = 0;
	long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, &rel,
			 NULL, 0);
	int e = errno;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 +
		  (t1.tv_nsec - t0.tv_nsec) / 1000000;
	printf("futex wait 30 ms: ret %ld %s, waited at least 25 ms: %s\n", r,
	       errname(e), yes(ms >= 25));
	clock_gettime(CLOCK_REALTIME, &abs);
	abs.tv_nsec += 30 * 1000000L;
	if (abs.tv_nsec >= 1000000000L) {
		abs.tv_sec++;
		abs.tv_nsec -= 1000000000L;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	errno = 0;
	r = syscall(SYS_futex, &futex_word,
		    FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME, 0, &abs,
		    NULL, FUTEX_BITSET_MATCH_ANY);
	e = errno;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	printf("futex wait until realtime + 30 ms: ret %ld %s, waited 25 ms to "
	       "1 s: %s\n",
	       r, errname(e), yes(ms >= 25 && ms < 1000));
}

/* 6. tgkill's checks. */
static void test_tgkill_errors(void)
{
	long r1 = syscall(SYS_tgkill, getpid(), gettid_(), 0);
	errno = 0;
	long r2 = syscall(SYS_tgkill, getpid() + 100000, gettid_(), 0);
	int e2 = errno;
	errno = 0;
	long r3 = syscall(SYS_tgkill, 0, gettid_(), 0);
	int e3 = errno;
	errno = 0;
	long r4 = syscall(SYS_tgkill, getpid(), gettid_(), 99);
	int e4 = errno;
	printf("tgkill: self %ld; wrong tgid %ld %s; tgid 0 %ld %s; "
	       "signal 99 %ld %s\n",
	       r1, r2, e2 == ESRCH ? "ESRCH" : strerror(e2), r3,
	       e3 == EINVAL ? "EINVAL" : strerror(e3), r4,
	       e4 == EINVAL ? "EINVAL" : strerror(e4));
}

/* 7-9. Children with sleeping threads, ended in three ways. */
static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void *abort_soon(void *arg)
{
	(void)arg;
	sleep_ms(20);
	abort();
	return NULL;
}

static void *exit_group_soon(void *arg)
{
	(void)arg;
	sleep_ms(20);
	exit(42);
	return NULL;
}

static void report(const char *what, int status)
{
	if (WIFEXITED(status))
		printf("%s: exited %d\n", what, WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		printf("%s: killed by signal %d\n", what, WTERMSIG(status));
	else
		printf("%s: status %x\n", what, status);
}

static void test_group_ends(void)
{
	int status;
	pid_t c;
	int ready[2];

	/* A fatal signal to the process. */
	if (pipe(ready))
		return;
	c = fork();
	if (c == 0) {
		pthread_t t;
		for (int i = 0; i < 3; i++)
			pthread_create(&t, NULL, sleeper, NULL);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	char b;
	if (read(ready[0], &b, 1) != 1)
		return;
	kill(c, SIGTERM);
	waitpid(c, &status, 0);
	report("SIGTERM to a process of 4 threads", status);
	close(ready[0]);
	close(ready[1]);

	/* abort() in a thread. */
	c = fork();
	if (c == 0) {
		pthread_t t;
		pthread_create(&t, NULL, sleeper, NULL);
		pthread_create(&t, NULL, abort_soon, NULL);
		for (;;)
			pause();
	}
	waitpid(c, &status, 0);
	report("abort() in a thread", status);

	/* exit() from a thread while the main thread sleeps in join. */
	c = fork();
	if (c == 0) {
		pthread_t t, u;
		pthread_create(&u, NULL, sleeper, NULL);
		pthread_create(&t, NULL, exit_group_soon, NULL);
		pthread_join(u, NULL);
		_exit(1);
	}
	waitpid(c, &status, 0);
	report("exit(42) in a thread, main in pthread_join", status);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("threadsig: start\n");
	test_pthread_kill();
	test_process_directed();
	test_masks();
	test_sigwait();
	test_eintr();
	test_futex_signals();
	test_tgkill_errors();
	test_group_ends();
	printf("threadsig: done\n");
	return 0;
}
