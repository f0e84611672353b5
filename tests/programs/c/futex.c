/*
 * futex: the futex(2) operations as Linux answers them, called directly:
 * FUTEX_WAIT's EAGAIN, FUTEX_WAKE's counts (nr 0 and negative wake one),
 * FUTEX_WAIT_BITSET / FUTEX_WAKE_BITSET matching bitsets, FUTEX_REQUEUE
 * and FUTEX_CMP_REQUEUE (woken + moved, EAGAIN when the word changed),
 * FUTEX_WAKE_OP (every op and comparison, the shifted argument, the word
 * it leaves), timeouts (relative, absolute on both clocks, already
 * passed), the argument errors in Linux's order (EINVAL, EFAULT, ENOSYS;
 * a shared futex at an unmapped address is EFAULT where a private one is
 * not looked up), and a handler ending a timed wait with EINTR even with
 * SA_RESTART.
 *
 * Waiters are threads; the main thread counts the waiters queued on a
 * word with FUTEX_CMP_REQUEUE onto the same word (woken 0, moved all),
 * which changes nothing and returns how many there are, so every step
 * waits until the threads really sleep. Only facts that hold on any Linux
 * are printed, by the main thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* <linux/futex.h>'s values (the kernel headers may not be installed). */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_REQUEUE 3
#define FUTEX_CMP_REQUEUE 4
#define FUTEX_WAKE_OP 5
#define FUTEX_LOCK_PI 6
#define FUTEX_WAIT_BITSET 9
#define FUTEX_WAKE_BITSET 10
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_CLOCK_REALTIME 256
#define FUTEX_BITSET_MATCH_ANY 0xffffffffU
#define FUTEX_OP(op, oparg, cmp, cmparg)                                       \
	((((op) & 0xf) << 28) | (((cmp) & 0xf) << 24) |                        \
	 (((oparg) & 0xfff) << 12) | ((cmparg) & 0xfff))
#define FUTEX_OP_OPARG_SHIFT 8

#define P FUTEX_PRIVATE_FLAG

static long futex(void *uaddr, int op, uint32_t val, const void *timeout,
		  void *uaddr2, uint32_t val3)
{
	return syscall(SYS_futex, uaddr, op, val, timeout, uaddr2, val3);
}

/* FUTEX_REQUEUE-family calls pass nr_requeue where the timeout goes. */
static long futex2(void *uaddr, int op, uint32_t val, long val2, void *uaddr2,
		   uint32_t val3)
{
	return syscall(SYS_futex, uaddr, op, val, val2, uaddr2, val3);
}

static const char *errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EAGAIN: return "EAGAIN";
	case EINVAL: return "EINVAL";
	case EFAULT: return "EFAULT";
	case ENOSYS: return "ENOSYS";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EINTR: return "EINTR";
	case EPERM: return "EPERM";
	default: return strerror(e);
	}
}

/* "ret R" or "-1 ERRNO". */
static void show(const char *what, long r)
{
	if (r == -1)
		printf("%s: -1 %s\n", what, errname(errno));
	else
		printf("%s: %ld\n", what, r);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* How many waiters sleep on the private futex at w (moves them onto w). */
static long queued(uint32_t *w)
{
	return futex2(w, FUTEX_CMP_REQUEUE | P, 0, INT_MAX, w, *w);
}

/* Waits (up to 10 s) until n waiters sleep on w; whether they did. */
static int wait_queued(uint32_t *w, long n)
{
	for (int i = 0; i < 10000; i++) {
		if (queued(w) == n)
			return 1;
		sleep_ms(1);
	}
	return 0;
}

struct waiter {
	pthread_t th;
	uint32_t *word;
	uint32_t bitset;
	volatile long ret;
	volatile int err;
	volatile int done;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	long r = futex(w->word, FUTEX_WAIT_BITSET | P, *w->word, NULL, NULL,
		       w->bitset);
	w->err = r == -1 ? errno : 0;
	w->ret = r;
	__atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void start(struct waiter *w, uint32_t *word, uint32_t bitset)
{
	w->word = word;
	w->bitset = bitset;
	w->done = 0;
	pthread_create(&w->th, NULL, waiter_main, w);
}

static int ndone(struct waiter *w, int n)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		k += __atomic_load_n(&w[i].done, __ATOMIC_SEQ_CST);
	return k;
}

static void join_all(struct waiter *w, int n)
{
	for (int i = 0; i < n; i++)
		pthread_join(w[i].th, NULL);
}

static uint32_t a, b;

static void errors(void)
{
	uint32_t w = 7;
	struct timespec bad_ns = {0, 1000000000L}, neg = {-1, 0};
	char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	show("WAIT value differs", futex(&w, FUTEX_WAIT | P, 6, NULL, NULL, 0));
	show("WAIT unaligned", futex((char *)&w + 1, FUTEX_WAIT | P, 7, NULL, NULL, 0));
	show("WAIT NULL", futex(NULL, FUTEX_WAIT | P, 0, NULL, NULL, 0));
	show("WAIT kernel address",
	     futex((void *)0xffff800000000000UL, FUTEX_WAIT | P, 0, NULL, NULL, 0));
	show("WAIT nsec 1e9", futex(&w, FUTEX_WAIT | P, 7, &bad_ns, NULL, 0));
	show("WAIT negative sec", futex(&w, FUTEX_WAIT | P, 7, &neg, NULL, 0));
	show("WAIT bad timeout pointer", futex(&w, FUTEX_WAIT | P, 7, (void *)8, NULL, 0));
	show("WAIT bad timeout, value differs",
	     futex(&w, FUTEX_WAIT | P, 6, (void *)8, NULL, 0));
	show("WAIT_BITSET bitset 0", futex(&w, FUTEX_WAIT_BITSET | P, 7, NULL, NULL, 0));
	show("WAKE_BITSET bitset 0", futex(&w, FUTEX_WAKE_BITSET | P, 1, NULL, NULL, 0));
	show("WAIT read-only page, value differs", futex(ro, FUTEX_WAIT | P, 1, NULL, NULL, 0));
	show("WAIT PROT_NONE page", futex(none, FUTEX_WAIT | P, 0, NULL, NULL, 0));
	show("WAIT | CLOCK_REALTIME", futex(&w, FUTEX_WAIT | FUTEX_CLOCK_REALTIME | P, 6, NULL, NULL, 0));
	show("WAIT | CLOCK_REALTIME, bad timeout pointer",
	     futex(&w, FUTEX_WAIT | FUTEX_CLOCK_REALTIME | P, 7, (void *)8, NULL, 0));
	show("WAIT | CLOCK_REALTIME, nsec 1e9",
	     futex(&w, FUTEX_WAIT | FUTEX_CLOCK_REALTIME | P, 7, &bad_ns, NULL, 0));
	show("WAKE | CLOCK_REALTIME", futex(&w, FUTEX_WAKE | FUTEX_CLOCK_REALTIME | P, 1, NULL, NULL, 0));
	show("unknown op 42", futex(&w, 42 | P, 0, NULL, NULL, 0));
	show("WAKE private NULL", futex(NULL, FUTEX_WAKE | P, 1, NULL, NULL, 0));
	show("WAKE shared NULL", futex(NULL, FUTEX_WAKE, 1, NULL, NULL, 0));
	show("WAKE shared PROT_NONE page", futex(none, FUTEX_WAKE, 1, NULL, NULL, 0));
	show("WAKE shared read-only page", futex(ro, FUTEX_WAKE, 1, NULL, NULL, 0));
	show("WAKE private unaligned", futex((char *)&w + 2, FUTEX_WAKE | P, 1, NULL, NULL, 0));
	show("WAKE nobody waits", futex(&w, FUTEX_WAKE | P, INT_MAX, NULL, NULL, 0));
	show("WAKE shared nobody waits", futex(&w, FUTEX_WAKE, 1, NULL, NULL, 0));
	show("REQUEUE nr_wake -1", futex2(&w, FUTEX_REQUEUE | P, -1, 1, &a, 0));
	show("REQUEUE nr_requeue -1", futex2(&w, FUTEX_REQUEUE | P, 1, -1, &a, 0));
	show("REQUEUE unaligned target", futex2(&w, FUTEX_REQUEUE | P, 1, 1, (char *)&a + 1, 0));
	show("CMP_REQUEUE value differs", futex2(&w, FUTEX_CMP_REQUEUE | P, 1, 1, &a, 8));
	show("CMP_REQUEUE NULL", futex2(NULL, FUTEX_CMP_REQUEUE | P, 1, 1, &a, 0));
	show("CMP_REQUEUE shared, target NULL", futex2(&w, FUTEX_CMP_REQUEUE, 1, 1, NULL, 7));
	show("WAKE_OP target NULL",
	     futex2(&w, FUTEX_WAKE_OP | P, 1, 1, NULL, FUTEX_OP(0, 1, 0, 0)));
	show("WAKE_OP target read-only",
	     futex2(&w, FUTEX_WAKE_OP | P, 1, 1, ro, FUTEX_OP(0, 1, 0, 0)));
	show("WAKE_OP unknown op 6", futex2(&w, FUTEX_WAKE_OP | P, 1, 1, &a, FUTEX_OP(6, 1, 0, 0)));
	a = 5;
	show("WAKE_OP unknown cmp 7", futex2(&w, FUTEX_WAKE_OP | P, 1, 1, &a, FUTEX_OP(1, 1, 7, 0)));
	printf("  the word after it: %u\n", a);
	show("LOCK_PI nsec 1e9", futex(&w, FUTEX_LOCK_PI | P, 0, &bad_ns, NULL, 0));
	munmap(ro, 4096);
	munmap(none, 4096);
}

static void timeouts(void)
{
	uint32_t w = 0;
	struct timespec rel = {0, 20000000L}, now, t0, t1;
	long r, ms;
	int e;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = futex(&w, FUTEX_WAIT | P, 0, &rel, NULL, 0);
	e = errno;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	printf("WAIT 20 ms relative: %ld %s, waited 20 ms to 1 s: %s\n", r,
	       errname(e), ms >= 19 && ms < 1000 ? "yes" : "no");

	struct timespec zero = {0, 0};
	show("WAIT zero relative timeout", futex(&w, FUTEX_WAIT | P, 0, &zero, NULL, 0));
	show("WAIT_BITSET absolute 0 (passed)",
	     futex(&w, FUTEX_WAIT_BITSET | P, 0, &zero, NULL, FUTEX_BITSET_MATCH_ANY));
	/* 1 ms ago (the machine may have booted less than a second ago). */
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_nsec >= 1000000L)
		now.tv_nsec -= 1000000L;
	else if (now.tv_sec > 0) {
		now.tv_sec--;
		now.tv_nsec += 999000000L;
	}
	show("WAIT_BITSET monotonic 1 ms ago",
	     futex(&w, FUTEX_WAIT_BITSET | P, 0, &now, NULL, FUTEX_BITSET_MATCH_ANY));
	clock_gettime(CLOCK_REALTIME, &now);
	now.tv_sec -= 1;
	show("WAIT_BITSET realtime 1 s ago",
	     futex(&w, FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME | P, 0, &now, NULL,
		   FUTEX_BITSET_MATCH_ANY));
	clock_gettime(CLOCK_MONOTONIC, &now);
	t0 = now;
	now.tv_nsec += 30000000L;
	if (now.tv_nsec >= 1000000000L) {
		now.tv_sec++;
		now.tv_nsec -= 1000000000L;
	}
	r = futex(&w, FUTEX_WAIT_BITSET | P, 0, &now, NULL, FUTEX_BITSET_MATCH_ANY);
	e = errno;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	printf("WAIT_BITSET monotonic + 30 ms: %ld %s, waited 29 ms to 1 s: %s\n",
	       r, errname(e), ms >= 29 && ms < 1000 ? "yes" : "no");
	/* The value is checked before the time: EAGAIN, not ETIMEDOUT. */
	show("WAIT value differs, timeout passed",
	     futex(&w, FUTEX_WAIT_BITSET | P, 1, &zero, NULL, FUTEX_BITSET_MATCH_ANY));
}

static void wakes(void)
{
	struct waiter w[4];

	a = 0;
	for (int i = 0; i < 4; i++)
		start(&w[i], &a, FUTEX_BITSET_MATCH_ANY);
	printf("4 waiters queued: %s\n", wait_queued(&a, 4) ? "yes" : "no");
	show("WAKE 0", futex(&a, FUTEX_WAKE | P, 0, NULL, NULL, 0));
	show("WAKE -5", futex(&a, FUTEX_WAKE | P, -5, NULL, NULL, 0));
	printf("2 still queued: %s\n", wait_queued(&a, 2) ? "yes" : "no");
	show("WAKE shared (private waiters, private memory)", futex(&a, FUTEX_WAKE, 1, NULL, NULL, 0));
	show("WAKE INT_MAX", futex(&a, FUTEX_WAKE | P, INT_MAX, NULL, NULL, 0));
	join_all(w, 4);
	int ok = 1;
	for (int i = 0; i < 4; i++)
		ok &= w[i].ret == 0;
	printf("every waiter returned 0: %s\n", ok ? "yes" : "no");

	/* Bitsets: a wake reaches only the waiters whose bits meet its own. */
	start(&w[0], &a, 1);
	start(&w[1], &a, 2);
	start(&w[2], &a, 3);
	printf("bitset waiters 1, 2, 3 queued: %s\n", wait_queued(&a, 3) ? "yes" : "no");
	show("WAKE_BITSET 4", futex(&a, FUTEX_WAKE_BITSET | P, INT_MAX, NULL, NULL, 4));
	show("WAKE_BITSET 2", futex(&a, FUTEX_WAKE_BITSET | P, INT_MAX, NULL, NULL, 2));
	pthread_join(w[1].th, NULL);
	pthread_join(w[2].th, NULL);
	printf("left queued 1: %s, the waiters of 2 and 3 returned %ld %ld, "
	       "of 1 done: %s\n",
	       wait_queued(&a, 1) ? "yes" : "no", w[1].ret, w[2].ret,
	       w[0].done ? "yes" : "no");
	show("WAKE (all bits)", futex(&a, FUTEX_WAKE | P, INT_MAX, NULL, NULL, 0));
	pthread_join(w[0].th, NULL);
}

static void requeues(void)
{
	struct waiter w[4];

	a = 0;
	b = 0;
	for (int i = 0; i < 4; i++)
		start(&w[i], &a, FUTEX_BITSET_MATCH_ANY);
	printf("4 waiters on a: %s\n", wait_queued(&a, 4) ? "yes" : "no");
	show("REQUEUE wake 1, move 2", futex2(&a, FUTEX_REQUEUE | P, 1, 2, &b, 0));
	printf("a has 1, b has 2: %s\n",
	       wait_queued(&a, 1) && wait_queued(&b, 2) ? "yes" : "no");
	show("CMP_REQUEUE expecting 1 (a is 0)", futex2(&a, FUTEX_CMP_REQUEUE | P, 1, 1, &b, 1));
	show("CMP_REQUEUE wake 0, move 0", futex2(&a, FUTEX_CMP_REQUEUE | P, 0, 0, &b, 0));
	show("CMP_REQUEUE wake 0, move all", futex2(&a, FUTEX_CMP_REQUEUE | P, 0, INT_MAX, &b, 0));
	printf("a has 0, b has 3: %s\n",
	       wait_queued(&a, 0) && wait_queued(&b, 3) ? "yes" : "no");
	show("WAKE a", futex(&a, FUTEX_WAKE | P, INT_MAX, NULL, NULL, 0));
	/* The moved waiters wake on b; their own word was a. */
	show("CMP_REQUEUE b->a wake 2, move 5", futex2(&b, FUTEX_CMP_REQUEUE | P, 2, 5, &a, 0));
	show("WAKE a", futex(&a, FUTEX_WAKE | P, INT_MAX, NULL, NULL, 0));
	join_all(w, 4);
	int ok = 1;
	for (int i = 0; i < 4; i++)
		ok &= w[i].ret == 0;
	printf("every waiter returned 0: %s, done %d\n", ok ? "yes" : "no", ndone(w, 4));
}

static void wake_ops(void)
{
	static const struct {
		const char *name;
		int op, oparg, cmp, cmparg;
		uint32_t start;
	} cases[] = {
		{"SET 3, EQ 5", 0, 3, 0, 5, 5},
		{"ADD 3, NE 5", 1, 3, 1, 5, 5},
		{"OR 0x30, LT 2", 2, 0x30, 2, 2, 1},
		{"ANDN 1, LE 0", 3, 1, 3, 0, 3},
		{"XOR 0xff, GT -1", 4, 0xff, 4, -1, 0},
		{"ADD -1, GE 7", 1, -1, 5, 7, 7},
		{"SET 1<<4, EQ 0", FUTEX_OP_OPARG_SHIFT | 0, 4, 0, 0, 0},
		{"OR 1<<31, LT 0", FUTEX_OP_OPARG_SHIFT | 2, 31, 2, 0, 0},
		{"SET 1<<40 (shift taken mod 32)", FUTEX_OP_OPARG_SHIFT | 0, 40, 0, 0, 0},
		{"SET 1<<-1 (shift taken mod 32)", FUTEX_OP_OPARG_SHIFT | 0, -1, 0, 0, 0},
		{"LT -1 on 0x80000000 (signed)", 1, 0, 2, -1, 0x80000000U},
	};
	struct waiter w[2];

	for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		a = 0;
		b = cases[i].start;
		start(&w[0], &a, FUTEX_BITSET_MATCH_ANY);
		start(&w[1], &b, FUTEX_BITSET_MATCH_ANY);
		int q = wait_queued(&a, 1) && wait_queued(&b, 1);
		long r = futex2(&a, FUTEX_WAKE_OP | P, 1, 1, &b,
				FUTEX_OP(cases[i].op, cases[i].oparg, cases[i].cmp,
					 cases[i].cmparg));
		int e = errno;
		printf("WAKE_OP %s on %#x: %ld %s, b now %#x, queued %s\n",
		       cases[i].name, cases[i].start, r, r < 0 ? errname(e) : "",
		       b, q ? "yes" : "no");
		futex(&a, FUTEX_WAKE | P, INT_MAX, NULL, NULL, 0);
		futex(&b, FUTEX_WAKE | P, INT_MAX, NULL, NULL, 0);
		join_all(w, 2);
	}
	/* nr_wake 0 on the first word wakes one there too; both words one. */
	a = 0;
	b = 0;
	start(&w[0], &a, FUTEX_BITSET_MATCH_ANY);
	start(&w[1], &a, FUTEX_BITSET_MATCH_ANY);
	wait_queued(&a, 2);
	show("WAKE_OP same word, nr 0 and 0, EQ holds",
	     futex2(&a, FUTEX_WAKE_OP | P, 0, 0, &a, FUTEX_OP(0, 0, 0, 0)));
	show("WAKE a", futex(&a, FUTEX_WAKE | P, INT_MAX, NULL, NULL, 0));
	join_all(w, 2);
}

/* A handler ends a timed futex wait with EINTR even under SA_RESTART
 * (ERESTART_RESTARTBLOCK); an untimed one restarts under SA_RESTART. */
static volatile int handled;
static void on_usr1(int sig)
{
	(void)sig;
	handled++;
}

struct timed {
	uint32_t *word;
	int timed;
	volatile long ret;
	volatile int err;
	volatile pid_t tid;
	volatile int done;
};

static void *timed_main(void *arg)
{
	struct timed *t = arg;
	struct timespec ts = {20, 0};
	t->tid = (pid_t)syscall(SYS_gettid);
	long r = futex(t->word, FUTEX_WAIT | P, 0, t->timed ? &ts : NULL, NULL, 0);
	t->err = r == -1 ? errno : 0;
	t->ret = r;
	__atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void interrupted(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);

	for (int timed = 1; timed >= 0; timed--) {
		struct timed t = {.word = &a, .timed = timed};
		pthread_t th;
		a = 0;
		handled = 0;
		pthread_create(&th, NULL, timed_main, &t);
		wait_queued(&a, 1);
		pthread_kill(th, SIGUSR1);
		while (!handled)
			sleep_ms(1);
		/* Under SA_RESTART the untimed wait goes back to sleep. */
		long again = 0;
		for (int i = 0; i < 10000; i++) {
			if (__atomic_load_n(&t.done, __ATOMIC_SEQ_CST))
				break;
			if ((again = queued(&a)) == 1)
				break;
			sleep_ms(1);
		}
		futex(&a, FUTEX_WAKE | P, INT_MAX, NULL, NULL, 0);
		pthread_join(th, NULL);
		printf("%s wait, SA_RESTART handler: %ld %s, queued again %ld\n",
		       timed ? "timed" : "untimed", t.ret, errname(t.err), again);
	}
	signal(SIGUSR1, SIG_DFL);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("futex: start\n");
	errors();
	timeouts();
	wakes();
	requeues();
	wake_ops();
	interrupted();
	printf("futex: done\n");
	return 0;
}
