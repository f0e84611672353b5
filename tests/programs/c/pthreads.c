/*
 * pthreads: POSIX threads over clone(CLONE_THREAD | ...) and futexes:
 * create and join with results, gettid/getpid, thread-local storage, a
 * mutex under contention, condition variables, a barrier, Threads: in
 * /proc/self/status, exit() from a thread ending the whole process, a
 * robust mutex whose owner died (FUTEX_OWNER_DIED through the robust
 * list), fork from a multi-threaded process (only the caller survives),
 * detached threads and create/join in a loop.
 *
 * Only facts that hold on any Linux are printed, in an order the program
 * fixes (threads report through memory; the main thread prints).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Threads: N of /proc/self/status, -1 if absent. */
static int proc_threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

static __thread int tls_value = 7;

struct info {
	int index;
	pid_t tid;
	pid_t pid;
	int tls_before;
	int tls_after;
};

static void *report(void *arg)
{
	struct info *in = arg;
	in->tid = gettid_();
	in->pid = getpid();
	in->tls_before = tls_value;
	tls_value = 100 + in->index;
	in->tls_after = tls_value;
	return (void *)(long)(in->index * in->index);
}

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *count(void *arg)
{
	long n = (long)arg;
	for (long i = 0; i < n; i++) {
		pthread_mutex_lock(&counter_lock);
		counter++;
		pthread_mutex_unlock(&counter_lock);
		if (i % 1000 == 0)
			sched_yield();
	}
	return NULL;
}

/* A one-slot queue: the producer hands 1..N over, the consumer sums. */
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_full = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_empty = PTHREAD_COND_INITIALIZER;
static int q_slot, q_has;

static void *consume(void *arg)
{
	long sum = 0;
	int n = (int)(long)arg;
	for (int i = 0; i < n; i++) {
		pthread_mutex_lock(&q_lock);
		while (!q_has)
			pthread_cond_wait(&q_full, &q_lock);
		sum += q_slot;
		q_has = 0;
		pthread_cond_signal(&q_empty);
		pthread_mutex_unlock(&q_lock);
	}
	return (void *)sum;
}

static pthread_barrier_t barrier;
static int arrived[4];

static void *meet(void *arg)
{
	int i = (int)(long)arg;
	arrived[i] = 1;
	int r = pthread_barrier_wait(&barrier);
	/* After the barrier, everyone has arrived. */
	int all = arrived[0] && arrived[1] && arrived[2] && arrived[3];
	return (void *)(long)((r == PTHREAD_BARRIER_SERIAL_THREAD ? 2 : 0) | all);
}

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;

static void *block_forever(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&gate);
	pthread_mutex_unlock(&gate);
	return NULL;
}

static void *exit_process(void *arg)
{
	exit((int)(long)arg);
}

static pthread_mutex_t robust;

static void *die_holding(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&robust);
	return NULL; /* ends without unlocking */
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* Field `key` (e.g. "Pid:") of a status file, -1 if absent. */
static long status_field(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	char line[256];
	long v = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, strlen(key)) == 0) {
			v = strtol(line + strlen(key), NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* The thread's own /proc/self/task/<tid>/ and /proc/thread-self/ files. */
static void *task_files(void *arg)
{
	(void)arg;
	char path[64];
	pid_t tid = gettid_();
	snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
	int ok = status_field(path, "Pid:") == tid && status_field(path, "Tgid:") == getpid();
	ok &= status_field("/proc/thread-self/status", "Pid:") == tid;
	FILE *f = fopen("/proc/thread-self/stat", "r");
	long first = -1;
	if (f) {
		if (fscanf(f, "%ld", &first) != 1)
			first = -1;
		fclose(f);
	}
	ok &= first == tid;
	snprintf(path, sizeof path, "/proc/self/task/%d/status", getpid());
	ok &= status_field(path, "Pid:") == getpid();
	return (void *)(long)ok;
}

static int done_detached;

static void *detached(void *arg)
{
	__atomic_add_fetch(&done_detached, 1, __ATOMIC_SEQ_CST);
	return arg;
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("pthreads: start\n");

	/* Create and join, results, tids, TLS. */
	pthread_t t[4];
	struct info in[4];
	for (int i = 0; i < 4; i++) {
		in[i].index = i;
		if (pthread_create(&t[i], NULL, report, &in[i]) != 0) {
			printf("pthread_create failed\n");
			return 1;
		}
	}
	int results_ok = 1, pid_ok = 1, tid_ok = 1, tls_ok = 1;
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(t[i], &ret);
		results_ok &= (long)ret == i * i;
		pid_ok &= in[i].pid == getpid();
		tid_ok &= in[i].tid != getpid() && in[i].tid > 0;
		for (int j = 0; j < i; j++)
			tid_ok &= in[i].tid != in[j].tid;
		tls_ok &= in[i].tls_before == 7 && in[i].tls_after == 100 + i;
	}
	printf("join results i*i: %s\n", yes(results_ok));
	printf("getpid in threads is the process's: %s\n", yes(pid_ok));
	printf("gettid distinct and not the pid: %s\n", yes(tid_ok));
	printf("gettid of main is the pid: %s\n", yes(gettid_() == getpid()));
	printf("TLS per thread, main's untouched: %s\n", yes(tls_ok && tls_value == 7));

	/* A mutex under contention. */
	pthread_t c[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&c[i], NULL, count, (void *)20000L);
	for (int i = 0; i < 4; i++)
		pthread_join(c[i], NULL);
	printf("mutex counter: %ld\n", counter);

	/* Condition variables. */
	pthread_t consumer;
	pthread_create(&consumer, NULL, consume, (void *)1000L);
	for (int i = 1; i <= 1000; i++) {
		pthread_mutex_lock(&q_lock);
		while (q_has)
			pthread_cond_wait(&q_empty, &q_lock);
		q_slot = i;
		q_has = 1;
		pthread_cond_signal(&q_full);
		pthread_mutex_unlock(&q_lock);
	}
	void *sum;
	pthread_join(consumer, &sum);
	printf("condvar sum 1..1000: %ld\n", (long)sum);

	/* A barrier of 4 (3 threads + main). */
	pthread_barrier_init(&barrier, NULL, 4);
	pthread_t b[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&b[i], NULL, meet, (void *)(long)(i + 1));
	arrived[0] = 1;
	int serial = pthread_barrier_wait(&barrier) == PTHREAD_BARRIER_SERIAL_THREAD;
	int all = 1;
	for (int i = 0; i < 3; i++) {
		void *r;
		pthread_join(b[i], &r);
		serial += ((long)r & 2) != 0;
		all &= ((long)r & 1) != 0;
	}
	printf("barrier: all arrived %s, one serial thread %s\n", yes(all), yes(serial == 1));

	/* Threads: in /proc/self/status. */
	pthread_mutex_lock(&gate);
	pthread_t blocked[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&blocked[i], NULL, block_forever, NULL);
	printf("Threads: with 3 more: %d\n", proc_threads());
	pthread_t tf;
	void *tf_ok;
	pthread_create(&tf, NULL, task_files, NULL);
	pthread_join(tf, &tf_ok);
	printf("/proc/self/task/<tid>/ and /proc/thread-self/: %s\n", yes((long)tf_ok));

	/* fork from a multi-threaded process: the child has one thread. */
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int n = proc_threads();
		/* And it can start threads of its own. */
		pthread_t x;
		struct info xi = { .index = 3 };
		int ok = pthread_create(&x, NULL, report, &xi) == 0;
		void *r = NULL;
		if (ok)
			pthread_join(x, &r);
		_exit(n == 1 && ok && (long)r == 9 && xi.pid == getpid() ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	printf("fork child: one thread, threads of its own: %s\n",
	       yes(WIFEXITED(status) && WEXITSTATUS(status) == 0));

	pthread_mutex_unlock(&gate);
	for (int i = 0; i < 3; i++)
		pthread_join(blocked[i], NULL);
	/* pthread_join returns once the kernel cleared the thread's tid
	 * (mm_release in do_exit); the thread leaves the group's count only
	 * later (release_task), on Linux too. Another CPU, or a preemption
	 * between the two, shows the window: wait for the count to settle. */
	int after = proc_threads();
	for (int i = 0; i < 1000 && after != 1; i++) {
		usleep(1000);
		after = proc_threads();
	}
	printf("Threads: after joins: %d\n", after);

	/* exit() in a thread ends the process, other threads asleep. */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		pthread_t s1, s2, e;
		pthread_create(&s1, NULL, sleeper, NULL);
		pthread_create(&s2, NULL, block_forever, NULL);
		pthread_mutex_lock(&gate);
		pthread_create(&e, NULL, exit_process, (void *)23L);
		for (;;)
			pause();
	}
	waitpid(pid, &status, 0);
	printf("exit(23) from a thread: %s\n",
	       yes(WIFEXITED(status) && WEXITSTATUS(status) == 23));
	/* The main thread returning from main while others sleep: same. */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		pthread_t s1;
		pthread_create(&s1, NULL, sleeper, NULL);
		return 5;
	}
	waitpid(pid, &status, 0);
	printf("return 5 from main with a sleeping thread: %s\n",
	       yes(WIFEXITED(status) && WEXITSTATUS(status) == 5));
	/* pthread_exit from main: the process lives until the last thread. */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		pthread_t e;
		pthread_create(&e, NULL, exit_process, (void *)0L);
		pthread_exit(NULL);
	}
	waitpid(pid, &status, 0);
	printf("pthread_exit in main, then exit(0) in the thread: %s\n",
	       yes(WIFEXITED(status) && WEXITSTATUS(status) == 0));

	/* A robust mutex whose owner died. */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&robust, &ma);
	pthread_t d;
	pthread_create(&d, NULL, die_holding, NULL);
	pthread_join(d, NULL);
	int r = pthread_mutex_lock(&robust);
	printf("robust mutex after owner died: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
	pthread_mutex_consistent(&robust);
	pthread_mutex_unlock(&robust);
	printf("relocked after consistent: %s\n", yes(pthread_mutex_lock(&robust) == 0));
	pthread_mutex_unlock(&robust);

	/* Detached threads and a loop of create/join. */
	pthread_attr_t da;
	pthread_attr_init(&da);
	pthread_attr_setdetachstate(&da, PTHREAD_CREATE_DETACHED);
	for (int i = 0; i < 20; i++) {
		pthread_t x;
		pthread_create(&x, &da, detached, NULL);
	}
	int ok = 1;
	for (int i = 0; i < 200; i++) {
		pthread_t x;
		struct info xi = { .index = i % 10 };
		void *rv;
		ok &= pthread_create(&x, NULL, report, &xi) == 0;
		ok &= pthread_join(x, &rv) == 0 && (long)rv == (i % 10) * (i % 10);
	}
	while (__atomic_load_n(&done_detached, __ATOMIC_SEQ_CST) < 20)
		sched_yield();
	printf("200 create+join and 20 detached: %s\n", yes(ok));

	printf("pthreads: done\n");
	return 0;
}
