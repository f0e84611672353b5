/*
 * sigmisc: signal rules the other programs do not reach, as Linux has
 * them: the default action of every standard signal but the stop signals
 * (which a child reports through WTERMSIG or not at all); children
 * reaped by the kernel when SIGCHLD is ignored or has SA_NOCLDWAIT (wait
 * then ECHILD); a blocked or ignored SIGSEGV from a fault still kills; a
 * signal frame that cannot be pushed kills with SIGSEGV; SS_ONSTACK
 * inside a handler on the alternate stack and EPERM for changing it
 * there, SS_AUTODISARM disarming it for the handler's time (a nested
 * SA_ONSTACK handler then stays on the stack in use, further down) and
 * sigreturn arming it again; SIGKILL and SIGSTOP never blocked; kill of a zombie.
 *
 * Only facts that hold on any Linux are printed, by the parent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

static const char *yes(int c)
{
	return c ? "yes" : "no";
}

/* Signal names without SIG (musl has no sigabbrev_np). */
static const char *const names[32] = {
	"0", "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE",
	"KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM", "STKFLT",
	"CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU",
	"XFSZ", "VTALRM", "PROF", "WINCH", "POLL", "PWR", "SYS",
};

static const char *name(int sig)
{
	return sig > 0 && sig < 32 ? names[sig] : "?";
}

/* A bad address the compiler cannot see through. */
static volatile int *volatile bad = (int *)8;

static void describe(const char *what, int st)
{
	if (WIFEXITED(st))
		printf("%s: exited %d\n", what, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		printf("%s: killed by %s\n", what, name(WTERMSIG(st)));
	else
		printf("%s: status %#x\n", what, st);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* The default action of each signal, raised by a child. */
static void defaults(void)
{
	for (int sig = 1; sig < 32; sig++) {
		if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
			continue;
		pid_t c = fork();
		if (c == 0) {
			struct rlimit no_core = {0, 0};
			setrlimit(RLIMIT_CORE, &no_core);
			sigset_t all;
			sigemptyset(&all);
			sigprocmask(SIG_SETMASK, &all, NULL);
			signal(sig, SIG_DFL);
			raise(sig);
			_exit(100);
		}
		int st;
		waitpid(c, &st, 0);
		char what[32];
		snprintf(what, sizeof what, "SIG%s by default", name(sig));
		describe(what, st);
	}
}

/* Children of a parent that ignores SIGCHLD, or sets SA_NOCLDWAIT, are
 * reaped at exit: wait4 waits for all of them, then ECHILD. */
static void nocldwait(void)
{
	struct sigaction sa;
	int st;

	for (int mode = 0; mode < 2; mode++) {
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = mode == 0 ? SIG_IGN : SIG_DFL;
		sa.sa_flags = mode == 0 ? 0 : SA_NOCLDWAIT;
		sigaction(SIGCHLD, &sa, NULL);
		pid_t c = fork();
		if (c == 0)
			_exit(7);
		sleep_ms(50);
		errno = 0;
		pid_t r = waitpid(c, &st, 0);
		printf("%s: waitpid after the child exited: %d %s\n",
		       mode == 0 ? "SIGCHLD ignored" : "SA_NOCLDWAIT", (int)r,
		       r < 0 && errno == ECHILD ? "ECHILD" : strerror(errno));
		/* A blocked wait returns ECHILD once the last child is gone. */
		c = fork();
		if (c == 0) {
			sleep_ms(50);
			_exit(8);
		}
		r = waitpid(-1, &st, 0);
		printf("  waitpid(-1) while a child runs: %d %s\n", (int)r,
		       r < 0 && errno == ECHILD ? "ECHILD" : strerror(errno));
	}
	signal(SIGCHLD, SIG_DFL);
}

static void on_sig(int sig)
{
	(void)sig;
	_exit(42);
}

/* Faults are forced: blocked or ignored, SIGSEGV still kills. */
static void forced(void)
{
	int st;
	pid_t c = fork();
	if (c == 0) {
		sigset_t s;
		signal(SIGSEGV, on_sig);
		sigemptyset(&s);
		sigaddset(&s, SIGSEGV);
		sigprocmask(SIG_BLOCK, &s, NULL);
		*bad = 1;
		_exit(0);
	}
	waitpid(c, &st, 0);
	describe("fault with SIGSEGV blocked", st);

	c = fork();
	if (c == 0) {
		signal(SIGSEGV, SIG_IGN);
		*bad = 1;
		_exit(0);
	}
	waitpid(c, &st, 0);
	describe("fault with SIGSEGV ignored", st);

	/* A handled SIGILL whose frame cannot be pushed (no stack). */
	c = fork();
	if (c == 0) {
		signal(SIGILL, on_sig);
		__asm__ volatile("xor %%esp, %%esp\n\tud2" ::: "memory");
		_exit(0);
	}
	waitpid(c, &st, 0);
	describe("SIGILL handler without a stack", st);

	/* A blocked SIGUSR1 sent by kill waits; only faults are forced. */
	c = fork();
	if (c == 0) {
		sigset_t s;
		signal(SIGUSR1, on_sig);
		sigemptyset(&s);
		sigaddset(&s, SIGUSR1);
		sigprocmask(SIG_BLOCK, &s, NULL);
		raise(SIGUSR1);
		_exit(3);
	}
	waitpid(c, &st, 0);
	describe("raise of a blocked SIGUSR1, then exit", st);
}

static char altstack[65536] __attribute__((aligned(16)));
static volatile int alt_flags = -1, alt_change_errno = -1;

static void on_alt(int sig)
{
	stack_t now, other;
	(void)sig;
	sigaltstack(NULL, &now);
	alt_flags = now.ss_flags;
	other.ss_sp = altstack;
	other.ss_size = sizeof altstack;
	other.ss_flags = 0;
	alt_change_errno = sigaltstack(&other, NULL) == -1 ? errno : 0;
}

static volatile int nested_on_alt = -1, disarmed_flags = -1;

static int on_altstack(void)
{
	char here;
	return &here >= altstack && &here < altstack + sizeof altstack;
}

static void on_nested(int sig)
{
	(void)sig;
	nested_on_alt = on_altstack();
}

static void on_autodisarm(int sig)
{
	stack_t now;
	(void)sig;
	sigaltstack(NULL, &now);
	disarmed_flags = now.ss_flags;
	raise(SIGUSR1);
}

static void autodisarm(void)
{
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack,
		      .ss_flags = SS_AUTODISARM};
	struct sigaction sa;
	stack_t now;

	printf("sigaltstack SS_AUTODISARM: %d\n", sigaltstack(&ss, NULL));
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_nested;
	sa.sa_flags = SA_ONSTACK;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_autodisarm;
	sigaction(SIGUSR2, &sa, NULL);
	raise(SIGUSR2);
	sigaltstack(NULL, &now);
	printf("  inside: SS_DISABLE %s; a nested SA_ONSTACK handler still on the "
	       "alternate stack %s; after: flags %#x, size kept %s\n",
	       yes(disarmed_flags == SS_DISABLE), yes(nested_on_alt == 1),
	       (unsigned)now.ss_flags, yes(now.ss_size == sizeof altstack));
	ss.ss_flags = SS_DISABLE;
	sigaltstack(&ss, NULL);
	signal(SIGUSR1, SIG_DFL);
	signal(SIGUSR2, SIG_DFL);
}

static void altstack_rules(void)
{
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
	struct sigaction sa;
	stack_t now;

	sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alt;
	sa.sa_flags = SA_ONSTACK;
	sigaction(SIGUSR2, &sa, NULL);
	raise(SIGUSR2);
	printf("in a handler on the alternate stack: SS_ONSTACK %s, changing it EPERM %s\n",
	       yes(alt_flags == SS_ONSTACK), yes(alt_change_errno == EPERM));
	sigaltstack(NULL, &now);
	printf("outside: flags %d, size kept %s\n", now.ss_flags,
	       yes(now.ss_size == sizeof altstack));
	ss.ss_flags = SS_DISABLE;
	sigaltstack(&ss, NULL);
	signal(SIGUSR2, SIG_DFL);
}

static void masks(void)
{
	sigset_t all, got;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &got);
	sigprocmask(SIG_SETMASK, &got, &all);
	printf("block everything: SIGKILL blocked %s, SIGSTOP blocked %s, SIGUSR1 blocked %s\n",
	       yes(sigismember(&all, SIGKILL)), yes(sigismember(&all, SIGSTOP)),
	       yes(sigismember(&all, SIGUSR1)));

	/* A zombie can still be signalled (kill returns 0). */
	pid_t c = fork();
	if (c == 0)
		_exit(0);
	sleep_ms(50);
	printf("kill(zombie, 0): %d, kill(zombie, SIGTERM): %d\n", kill(c, 0), kill(c, SIGTERM));
	int st;
	waitpid(c, &st, 0);
	describe("the zombie, reaped", st);
	errno = 0;
	int r = kill(c, 0);
	printf("kill(reaped, 0): %d %s\n", r, errno == ESRCH ? "ESRCH" : strerror(errno));
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("sigmisc: start\n");
	defaults();
	nocldwait();
	forced();
	altstack_rules();
	autodisarm();
	masks();
	printf("sigmisc: done\n");
	return 0;
}
