/*
 * pidfd: pidfd_open, pidfd_send_signal, poll on a pidfd and
 * process_mrelease as Linux 6.19 has them: the argument errnos (EINVAL,
 * ESRCH, EBADF, EPERM for a forged si_code, EFAULT), close-on-exec and
 * PIDFD_NONBLOCK, poll that times out while the process lives, wakes when
 * it exits (POLLIN) and reports POLLHUP once it is reaped, signals
 * through the pidfd (a zombie takes them, a reaped process is ESRCH),
 * and process_mrelease: EINVAL for a process that is not dying, the
 * victim's memory released after SIGKILL (0, or ESRCH when the victim
 * was faster), ESRCH for a zombie.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errname.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_process_mrelease
#define SYS_process_mrelease 448
#endif
#define PIDFD_NONBLOCK O_NONBLOCK

static long pidfd_open(pid_t pid, unsigned flags)
{
	return syscall(SYS_pidfd_open, pid, flags);
}

static long pidfd_send_signal(int fd, int sig, siginfo_t *info, unsigned flags)
{
	return syscall(SYS_pidfd_send_signal, fd, sig, info, flags);
}

static long mrelease(int fd, unsigned flags)
{
	return syscall(SYS_process_mrelease, fd, flags);
}

/* poll's revents of fd: "timeout" or the events set. */
static const char *poll_fd(int fd, int timeout)
{
	static char b[64];
	struct pollfd p = {fd, POLLIN, 0};
	int r = poll(&p, 1, timeout);
	if (r < 0)
		return err(r);
	if (r == 0)
		return "timeout";
	snprintf(b, sizeof b, "%s%s%s", p.revents & POLLIN ? "IN" : "",
		 p.revents & POLLHUP ? " HUP" : "",
		 p.revents & ~(POLLIN | POLLHUP | POLLRDNORM) ? " other" : "");
	return b;
}

static const char *status(int st)
{
	static char b[32];
	if (WIFEXITED(st))
		snprintf(b, sizeof b, "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(b, sizeof b, "signal %d", WTERMSIG(st));
	else
		snprintf(b, sizeof b, "other");
	return b;
}

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
	(void)sig;
	got_usr1 = 1;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("pidfd: start\n");
	signal(SIGUSR1, on_usr1);

	/* pidfd_open's errnos. */
	printf("pidfd_open pid 0: %s\n", err(pidfd_open(0, 0)));
	printf("pidfd_open pid -1: %s\n", err(pidfd_open(-1, 0)));
	printf("pidfd_open flags 1: %s\n", err(pidfd_open(getpid(), 1)));
	pid_t gone = fork();
	if (gone == 0)
		_exit(0);
	waitpid(gone, NULL, 0);
	printf("pidfd_open of a reaped pid: %s\n", err(pidfd_open(gone, 0)));

	int self = pidfd_open(getpid(), 0);
	printf("pidfd_open self: %s, cloexec %d\n", self >= 0 ? "ok" : err(-1),
	       fcntl(self, F_GETFD) & FD_CLOEXEC);
	int nb = pidfd_open(getpid(), PIDFD_NONBLOCK);
	printf("PIDFD_NONBLOCK: %s\n",
	       fcntl(nb, F_GETFL) & O_NONBLOCK ? "set" : "clear");
	close(nb);
	printf("poll self: %s\n", poll_fd(self, 0));
	long r = pidfd_send_signal(self, SIGUSR1, NULL, 0);
	printf("send SIGUSR1 to self: %s, handled %d\n", err(r), got_usr1);
	got_usr1 = 0;
	r = pidfd_send_signal(self, SIGUSR1, NULL, 1);
	printf("send to self's thread (PIDFD_SIGNAL_THREAD): %s, handled %d\n",
	       err(r), got_usr1);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = SIGUSR1;
	si.si_code = SI_QUEUE;
	si.si_value.sival_int = 5;
	got_usr1 = 0;
	r = pidfd_send_signal(self, SIGUSR1, &si, 0);
	printf("send with info to self: %s, handled %d\n", err(r), got_usr1);
	printf("mrelease self (alive): %s\n", err(mrelease(self, 0)));
	close(self);

	/* A child that waits. */
	int up[2];
	if (pipe(up))
		return 1;
	fflush(stdout);
	pid_t a = fork();
	if (a == 0) {
		for (;;)
			pause();
	}
	int fd = pidfd_open(a, 0);
	printf("poll a live child (0 ms): %s\n", poll_fd(fd, 0));
	printf("poll a live child (30 ms): %s\n", poll_fd(fd, 30));
	printf("send flags 8: %s\n", err(pidfd_send_signal(fd, SIGTERM, NULL, 8)));
	printf("send flags 3: %s\n", err(pidfd_send_signal(fd, SIGTERM, NULL, 3)));
	printf("send sig 65: %s\n", err(pidfd_send_signal(fd, 65, NULL, 0)));
	printf("send sig 0: %s\n", err(pidfd_send_signal(fd, 0, NULL, 0)));
	printf("send on a pipe fd: %s\n",
	       err(pidfd_send_signal(up[0], SIGTERM, NULL, 0)));
	printf("send on fd 999: %s\n", err(pidfd_send_signal(999, SIGTERM, NULL, 0)));
	si.si_signo = SIGUSR2;
	printf("info with another signo: %s\n",
	       err(pidfd_send_signal(fd, SIGUSR1, &si, 0)));
	si.si_signo = SIGUSR1;
	si.si_code = SI_USER;
	printf("info claiming SI_USER: %s\n",
	       err(pidfd_send_signal(fd, SIGUSR1, &si, 0)));
	printf("info at a bad address: %s\n",
	       err(pidfd_send_signal(fd, SIGUSR1, (siginfo_t *)8, 0)));
	printf("mrelease live child: %s\n", err(mrelease(fd, 0)));
	printf("mrelease flags 1: %s\n", err(mrelease(fd, 1)));
	printf("mrelease fd 999: %s\n", err(mrelease(999, 0)));
	printf("mrelease a pipe fd: %s\n", err(mrelease(up[0], 0)));
	printf("send SIGTERM: %s\n", err(pidfd_send_signal(fd, SIGTERM, NULL, 0)));
	printf("poll until it exits: %s\n", poll_fd(fd, -1));
	printf("mrelease zombie: %s\n", err(mrelease(fd, 0)));
	printf("send sig 0 to the zombie: %s\n",
	       err(pidfd_send_signal(fd, 0, NULL, 0)));
	printf("send SIGKILL to the zombie: %s\n",
	       err(pidfd_send_signal(fd, SIGKILL, NULL, 0)));
	int st;
	printf("waitpid: %s\n", waitpid(a, &st, 0) == a ? status(st) : "failed");
	printf("poll the reaped child: %s\n", poll_fd(fd, 0));
	printf("send to the reaped child: %s\n",
	       err(pidfd_send_signal(fd, 0, NULL, 0)));
	printf("mrelease the reaped child: %s\n", err(mrelease(fd, 0)));
	close(fd);

	/* A child that exits by itself: poll wakes at its exit. */
	fflush(stdout);
	pid_t b = fork();
	if (b == 0) {
		usleep(20000);
		_exit(7);
	}
	fd = pidfd_open(b, 0);
	printf("poll a child that exits: %s\n", poll_fd(fd, 5000));
	printf("waitpid: %s\n", waitpid(b, &st, 0) == b ? status(st) : "failed");
	close(fd);

	/* The low-memory killer's sequence: SIGKILL, then release the
	 * victim's 32 MiB before it is reaped. */
	fflush(stdout);
	pid_t c = fork();
	if (c == 0) {
		size_t len = 32 << 20;
		char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		memset(m, 1, len);
		if (write(up[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	char ch;
	if (read(up[0], &ch, 1) != 1)
		return 1;
	fd = pidfd_open(c, 0);
	printf("victim alive, mrelease: %s\n", err(mrelease(fd, 0)));
	printf("SIGKILL: %s\n", err(pidfd_send_signal(fd, SIGKILL, NULL, 0)));
	r = mrelease(fd, 0);
	printf("mrelease after SIGKILL: %s\n",
	       r == 0 || errno == ESRCH ? "released or gone" : err(r));
	printf("~ mrelease returned %s\n", err(r));
	printf("poll: %s\n", poll_fd(fd, -1));
	printf("waitpid: %s\n", waitpid(c, &st, 0) == c ? status(st) : "failed");
	close(fd);
	printf("pidfd: done\n");
	return 0;
}
