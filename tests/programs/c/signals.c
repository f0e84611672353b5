/*
 * signals: handlers and their siginfo, masks, queueing, sigsuspend, the
 * restart rules, the alternate stack, default actions (term, core, stop,
 * continue, ignore), SIGCHLD and SIGPIPE.
 *
 * Prints facts any Linux agrees on. Children print nothing; they report
 * through their exit status. Timing-dependent steps (a child signalling a
 * parent asleep in read or nanosleep) leave the child a generous delay.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

static volatile sig_atomic_t hits;
static volatile int last_sig, last_code, last_pid, last_value;
static volatile int order[8], norder;
static volatile int blocked_inside, mask_bit_inside;
static volatile uintptr_t handler_sp;

static void on_info(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	hits++;
	last_sig = sig;
	last_code = si->si_code;
	last_pid = si->si_pid;
	last_value = si->si_value.sival_int;
	if (norder < 8)
		order[norder++] = si->si_value.sival_int;
	sigset_t cur;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	blocked_inside = sigismember(&cur, sig);
	mask_bit_inside = sigismember(&cur, SIGWINCH);
	int local;
	handler_sp = (uintptr_t)&local;
}

static void on_plain(int sig)
{
	hits++;
	last_sig = sig;
}

static void install(int sig, void (*h)(int, siginfo_t *, void *), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = h;
	sa.sa_flags = SA_SIGINFO | flags;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGWINCH);
	sigaction(sig, &sa, NULL);
}

static void install_plain(int sig, void (*h)(int), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = h;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static pid_t child(void (*fn)(void))
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		fn();
		_exit(0);
	}
	return pid;
}

static int wait_status(pid_t pid)
{
	int st = 0;
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	return st;
}

static void basic(void)
{
	install(SIGUSR1, on_info, 0);
	hits = 0;
	kill(getpid(), SIGUSR1);
	printf("kill to self: handler ran %d time(s), sig %s, SI_USER %s, si_pid is mine %s\n",
	       (int)hits, strsignal(last_sig), yes(last_code == SI_USER),
	       yes(last_pid == getpid()));
	printf("inside the handler: signal blocked %s, sa_mask blocked %s\n",
	       yes(blocked_inside), yes(mask_bit_inside));
	sigset_t cur;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	printf("after the handler: mask restored %s\n",
	       yes(!sigismember(&cur, SIGUSR1) && !sigismember(&cur, SIGWINCH)));
	raise(SIGUSR1);
	printf("raise: SI_TKILL %s\n", yes(last_code == SI_TKILL));

	install(SIGUSR1, on_info, SA_NODEFER);
	kill(getpid(), SIGUSR1);
	printf("SA_NODEFER: signal blocked inside %s\n", yes(blocked_inside));

	union sigval v = {.sival_int = 42};
	sigqueue(getpid(), SIGUSR1, v);
	printf("sigqueue: SI_QUEUE %s, value %d\n", yes(last_code == SI_QUEUE), last_value);
}

static void masks(void)
{
	install(SIGUSR2, on_info, 0);
	sigset_t set, old, pend;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, &old);
	hits = 0;
	raise(SIGUSR2);
	raise(SIGUSR2);
	sigpending(&pend);
	printf("blocked SIGUSR2 raised twice: pending %s, handler ran %d\n",
	       yes(sigismember(&pend, SIGUSR2)), (int)hits);
	sigprocmask(SIG_SETMASK, &old, NULL);
	printf("unblocked: handler ran %d (standard signals coalesce)\n", (int)hits);

	int rt = SIGRTMIN + 1;
	install(rt, on_info, 0);
	sigemptyset(&set);
	sigaddset(&set, rt);
	sigprocmask(SIG_BLOCK, &set, &old);
	norder = 0;
	for (int i = 1; i <= 3; i++) {
		union sigval v = {.sival_int = i};
		sigqueue(getpid(), rt, v);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	printf("real-time signal queued 3 times: delivered %d, in order %s\n", norder,
	       yes(norder == 3 && order[0] == 1 && order[1] == 2 && order[2] == 3));

	install_plain(SIGUSR1, SIG_IGN, 0);
	hits = 0;
	raise(SIGUSR1);
	printf("ignored SIGUSR1: nothing happened %s\n", yes(hits == 0));

	/* SIGKILL and SIGSTOP cannot be caught. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_plain;
	printf("sigaction(SIGKILL): EINVAL %s, sigaction(SIGSTOP): EINVAL %s\n",
	       yes(sigaction(SIGKILL, &sa, NULL) == -1 && errno == EINVAL),
	       yes(sigaction(SIGSTOP, &sa, NULL) == -1 && errno == EINVAL));
	printf("kill with signal 65: EINVAL %s\n", yes(kill(getpid(), 65) == -1 && errno == EINVAL));

	/* sigtimedwait takes a blocked pending signal without the handler. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, &old);
	hits = 0;
	raise(SIGUSR2);
	siginfo_t si;
	struct timespec zero = {0, 0};
	int got = sigtimedwait(&set, &si, &zero);
	/* (glibc reports SI_TKILL as SI_USER here: both say "from a process".) */
	printf("sigtimedwait: got SIGUSR2 %s, handler ran %d, sent by a process %s\n",
	       yes(got == SIGUSR2), (int)hits, yes(si.si_code <= 0));
	struct timespec short_wait = {0, 20000000};
	got = sigtimedwait(&set, &si, &short_wait);
	printf("sigtimedwait with nothing pending: EAGAIN %s\n", yes(got == -1 && errno == EAGAIN));
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static void kill_parent_usr1(void)
{
	sleep_ms(100);
	kill(getppid(), SIGUSR1);
}

static void kill_then_write(void)
{
	/* fd 4 is the pipe's write end (see restarts). */
	sleep_ms(100);
	kill(getppid(), SIGUSR1);
	sleep_ms(100);
	write(4, "x", 1);
}

static void suspend(void)
{
	install(SIGUSR1, on_info, 0);
	sigset_t set, old, wait_mask;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &old);
	hits = 0;
	pid_t c = child(kill_parent_usr1);
	sigemptyset(&wait_mask);
	int r = sigsuspend(&wait_mask);
	int e = errno;
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	printf("sigsuspend: -1 EINTR %s, handler ran %d, old mask back %s\n",
	       yes(r == -1 && e == EINTR), (int)hits, yes(sigismember(&now, SIGUSR1)));
	wait_status(c);
	sigprocmask(SIG_SETMASK, &old, NULL);

	hits = 0;
	c = child(kill_parent_usr1);
	r = pause();
	e = errno;
	printf("pause: -1 EINTR %s, handler ran %d\n", yes(r == -1 && e == EINTR), (int)hits);
	wait_status(c);

	hits = 0;
	c = child(kill_parent_usr1);
	struct timespec ts = {5, 0}, rem = {0, 0};
	r = nanosleep(&ts, &rem);
	e = errno;
	printf("nanosleep: -1 EINTR %s, time left reported %s\n", yes(r == -1 && e == EINTR),
	       yes(rem.tv_sec > 0 && rem.tv_sec < 5));
	wait_status(c);
}

static void restarts(void)
{
	int fds[2];
	char buf[4];
	for (int restart = 0; restart <= 1; restart++) {
		if (pipe(fds) != 0 || fds[0] != 3 || fds[1] != 4) {
			printf("pipe: unexpected fds\n");
			return;
		}
		install(SIGUSR1, on_info, restart ? SA_RESTART : 0);
		hits = 0;
		pid_t c = child(kill_then_write);
		ssize_t n = read(fds[0], buf, sizeof buf);
		int e = errno;
		if (restart)
			printf("read with SA_RESTART: restarted and got %zd byte(s), handler ran %d\n", n,
			       (int)hits);
		else
			printf("read without SA_RESTART: -1 EINTR %s, handler ran %d\n",
			       yes(n == -1 && e == EINTR), (int)hits);
		wait_status(c);
		close(fds[0]);
		close(fds[1]);
	}
}

static char altstack[65536];

static void altstacks(void)
{
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
	printf("sigaltstack: %d\n", sigaltstack(&ss, NULL));
	stack_t small = {.ss_sp = altstack, .ss_size = 100, .ss_flags = 0};
	printf("sigaltstack below MINSIGSTKSZ: ENOMEM %s\n",
	       yes(sigaltstack(&small, NULL) == -1 && errno == ENOMEM));
	install(SIGUSR2, on_info, SA_ONSTACK);
	raise(SIGUSR2);
	uintptr_t lo = (uintptr_t)altstack, hi = lo + sizeof altstack;
	printf("SA_ONSTACK: handler ran on the alternate stack %s\n",
	       yes(handler_sp >= lo && handler_sp < hi));
	install(SIGUSR2, on_info, 0);
	raise(SIGUSR2);
	printf("without SA_ONSTACK: on the alternate stack %s\n",
	       yes(handler_sp >= lo && handler_sp < hi));
	stack_t off = {.ss_flags = SS_DISABLE};
	sigaltstack(&off, NULL);
	stack_t now;
	sigaltstack(NULL, &now);
	printf("disabled: SS_DISABLE %s\n", yes(now.ss_flags == SS_DISABLE));
}

static volatile double fp_in_handler;

static void on_fp(int sig)
{
	(void)sig;
	volatile double x = 3.25;
	for (int i = 0; i < 10; i++)
		x = x * 1.5 + 0.125;
	fp_in_handler = x;
}

static void fpu(void)
{
	install_plain(SIGUSR1, on_fp, 0);
	volatile double a = 1.0 / 3.0;
	double before = a * 7.0;
	raise(SIGUSR1);
	double after = a * 7.0;
	printf("FPU state kept across a handler: %s\n", yes(before == after && fp_in_handler > 0));
}

static void do_abort(void) { abort(); }
static void do_pause_forever(void)
{
	for (;;)
		pause();
}
static void do_write_closed_pipe(void)
{
	int fds[2];
	pipe(fds);
	close(fds[0]);
	write(fds[1], "x", 1);
	_exit(0);
}
static void do_write_closed_pipe_ignored(void)
{
	signal(SIGPIPE, SIG_IGN);
	int fds[2];
	pipe(fds);
	close(fds[0]);
	_exit(write(fds[1], "x", 1) == -1 && errno == EPIPE ? 3 : 4);
}
static void do_resethand(void)
{
	install_plain(SIGUSR1, on_plain, SA_RESETHAND);
	raise(SIGUSR1);
	if (hits != 1)
		_exit(2);
	raise(SIGUSR1);
	_exit(1);
}

static void describe(const char *what, int st)
{
	if (WIFEXITED(st))
		printf("%s: exited %d\n", what, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		printf("%s: killed by %s\n", what, strsignal(WTERMSIG(st)));
	else
		printf("%s: ? %#x\n", what, st);
}

static volatile int chld_code, chld_status, chld_pid;

static void on_chld(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	chld_code = si->si_code;
	chld_status = si->si_status;
	chld_pid = si->si_pid;
}

static void do_exit_5(void) { _exit(5); }

static void defaults(void)
{
	hits = 0;
	describe("abort()", wait_status(child(do_abort)));
	describe("SIGPIPE by default", wait_status(child(do_write_closed_pipe)));
	describe("SIGPIPE ignored, write gives EPIPE (3)", wait_status(child(do_write_closed_pipe_ignored)));
	describe("SA_RESETHAND, second raise", wait_status(child(do_resethand)));

	pid_t c = child(do_pause_forever);
	kill(c, SIGTERM);
	describe("SIGTERM", wait_status(c));
	c = child(do_pause_forever);
	kill(c, SIGKILL);
	describe("SIGKILL", wait_status(c));

	c = child(do_pause_forever);
	kill(c, SIGSTOP);
	int st = 0;
	waitpid(c, &st, WUNTRACED);
	printf("SIGSTOP: WIFSTOPPED %s, WSTOPSIG %s\n", yes(WIFSTOPPED(st)), strsignal(WSTOPSIG(st)));
	kill(c, SIGCONT);
	st = 0;
	waitpid(c, &st, WCONTINUED);
	printf("SIGCONT: WIFCONTINUED %s\n", yes(WIFCONTINUED(st)));
	kill(c, SIGTERM);
	describe("then SIGTERM", wait_status(c));

	install(SIGCHLD, on_chld, 0);
	c = child(do_exit_5);
	st = wait_status(c);
	printf("SIGCHLD: CLD_EXITED %s, si_status %d, si_pid is the child %s\n",
	       yes(chld_code == CLD_EXITED), chld_status, yes(chld_pid == c));
	signal(SIGCHLD, SIG_DFL);
}

static volatile int rip_skipped;

static void on_usr1_ucontext(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = ucv;
	/* The interrupted context is the syscall's return: rax holds its result. */
	rip_skipped = uc->uc_mcontext.gregs[REG_RSP] != 0 && uc->uc_mcontext.gregs[REG_RIP] != 0;
	uc->uc_mcontext.gregs[REG_RAX] = 1234;
}

static void ucontexts(void)
{
	install(SIGUSR1, on_usr1_ucontext, 0);
	long r = syscall(SYS_tgkill, getpid(), getpid(), SIGUSR1);
	printf("ucontext: registers present %s, rax set by the handler returned %ld\n",
	       yes(rip_skipped), r);
	signal(SIGUSR1, SIG_DFL);
}

int main(void)
{
	printf("signals: start\n");
	basic();
	masks();
	suspend();
	restarts();
	altstacks();
	fpu();
	ucontexts();
	defaults();
	printf("signals: done\n");
	return 0;
}
