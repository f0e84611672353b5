/*
 * sigfault: faults become signals with Linux's siginfo, and a handler can
 * repair and resume: SIGSEGV (SEGV_MAPERR with si_addr, SEGV_ACCERR fixed
 * by mprotect and the write resumed), SIGILL (ILL_ILLOPN at the ud2,
 * skipped through the ucontext's RIP), SIGFPE (FPE_INTDIV), SIGTRAP from
 * int3, a stack overflow caught on the alternate stack; then the same
 * faults without a handler kill children with their signal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

static const char *yes(int cond)
{
	return cond ? "yes" : "no";
}

static sigjmp_buf env;
static volatile int got_sig, got_code;
static void *volatile got_addr;
static volatile uintptr_t got_rip;
static char *volatile fix_page;
static volatile int skip_bytes;

static void handler(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	got_sig = sig;
	got_code = si->si_code;
	got_addr = si->si_addr;
	got_rip = uc->uc_mcontext.gregs[REG_RIP];
	/* int3 is a trap: RIP is past it already. */
	if (sig == SIGTRAP)
		return;
	if (fix_page) {
		/* Repair and return: the faulting write runs again. */
		mprotect(fix_page, 4096, PROT_READ | PROT_WRITE);
		fix_page = NULL;
		return;
	}
	if (skip_bytes) {
		uc->uc_mcontext.gregs[REG_RIP] += skip_bytes;
		skip_bytes = 0;
		return;
	}
	siglongjmp(env, 1);
}

static void install(int sig, int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | flags;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static int recurse(int n)
{
	volatile char pad[1024];
	pad[0] = (char)n;
	return recurse(n + 1) + pad[0];
}

static void do_null(void) { *(volatile int *)0 = 1; }
static void do_ud2(void) { __asm__ volatile("ud2"); }
static void do_div0(void)
{
	volatile int z = 0;
	volatile int r = 7 / z;
	(void)r;
}
static void do_int3(void) { __asm__ volatile("int3"); }
static void do_ro_write(void)
{
	char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p[0] = 1;
}
static void do_overflow(void) { recurse(0); }

static void describe_child(const char *what, void (*fn)(void))
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		fn();
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	if (WIFSIGNALED(st))
		printf("%s: killed by %s\n", what, strsignal(WTERMSIG(st)));
	else
		printf("%s: exited %d\n", what, WEXITSTATUS(st));
}

int main(void)
{
	printf("sigfault: start\n");
	install(SIGSEGV, 0);
	install(SIGILL, 0);
	install(SIGFPE, 0);
	install(SIGTRAP, 0);

	if (sigsetjmp(env, 1) == 0)
		*(volatile int *)16 = 1;
	printf("NULL+16 write: SIGSEGV %s, SEGV_MAPERR %s, si_addr 16 %s\n", yes(got_sig == SIGSEGV),
	       yes(got_code == SEGV_MAPERR), yes(got_addr == (void *)16));

	char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fix_page = ro;
	got_sig = 0;
	*(volatile char *)(ro + 100) = 42;
	printf("write to PROT_READ: SIGSEGV %s, SEGV_ACCERR %s, si_addr exact %s, resumed after mprotect: %d\n",
	       yes(got_sig == SIGSEGV), yes(got_code == SEGV_ACCERR), yes(got_addr == ro + 100),
	       ro[100]);

	char *gone = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(gone, 8192);
	got_sig = 0;
	if (sigsetjmp(env, 1) == 0)
		(void)*(volatile char *)(gone + 4097);
	printf("read of an unmapped page: SIGSEGV %s, SEGV_MAPERR %s, si_addr exact %s\n",
	       yes(got_sig == SIGSEGV), yes(got_code == SEGV_MAPERR), yes(got_addr == gone + 4097));

	got_sig = 0;
	skip_bytes = 2;
	__asm__ volatile("ud2");
	printf("ud2: SIGILL %s, ILL_ILLOPN %s, si_addr is RIP %s, skipped and resumed: yes\n",
	       yes(got_sig == SIGILL), yes(got_code == ILL_ILLOPN),
	       yes((uintptr_t)got_addr == got_rip));

	got_sig = 0;
	if (sigsetjmp(env, 1) == 0) {
		volatile int z = 0;
		volatile int r = 7 / z;
		(void)r;
	}
	printf("divide by zero: SIGFPE %s, FPE_INTDIV %s\n", yes(got_sig == SIGFPE),
	       yes(got_code == FPE_INTDIV));

	got_sig = 0;
	__asm__ volatile("int3");
	printf("int3: SIGTRAP %s, SI_KERNEL %s, resumed after it: yes\n", yes(got_sig == SIGTRAP),
	       yes(got_code == SI_KERNEL));

	/* A stack overflow, caught on the alternate stack. */
	static char alt[65536];
	stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
	sigaltstack(&ss, NULL);
	install(SIGSEGV, SA_ONSTACK);
	got_sig = 0;
	if (sigsetjmp(env, 1) == 0)
		recurse(0);
	printf("stack overflow: SIGSEGV on the alternate stack %s\n", yes(got_sig == SIGSEGV));

	signal(SIGSEGV, SIG_DFL);
	signal(SIGILL, SIG_DFL);
	signal(SIGFPE, SIG_DFL);
	signal(SIGTRAP, SIG_DFL);
	describe_child("NULL write", do_null);
	describe_child("write to PROT_READ", do_ro_write);
	describe_child("ud2", do_ud2);
	describe_child("divide by zero", do_div0);
	describe_child("int3", do_int3);
	describe_child("stack overflow", do_overflow);
	printf("sigfault: done\n");
	return 0;
}
