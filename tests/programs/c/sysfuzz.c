/*
 * sysfuzz: random syscall numbers (0..335) with hostile arguments (NULL,
 * -1, small numbers, kernel and unmapped addresses, random words), each
 * batch in a forked child so that a child which unmaps its own code or
 * breaks its TLS merely dies. The kernel must survive every call (no
 * panic, no BUG), and every frame must come back at the end. Skipped: the
 * calls that end or block the child on purpose (exit, pause, sleeps,
 * blocking reads, wait, rt_sigreturn, fork/exec/kill, reboot, futex).
 * QEMU only. Usage: sysfuzz [CHILDREN [CALLS_PER_CHILD]].
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
static unsigned long long s = 88172645463325252ULL;
static unsigned long long rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
static long arg(void) {
  switch (rnd() % 8) {
  case 0: return 0; case 1: return -1; case 2: return rnd() % 4096;
  case 3: return (long)rnd(); case 4: return 0x7ffffffff000L - (rnd() % 65536);
  case 5: return 0xffff888000000000L; case 6: return rnd() % 64; default: return 1;
  }
}
int main(int argc, char **argv) {
  int kids = argc > 1 ? atoi(argv[1]) : 20, per = argc > 2 ? atoi(argv[2]) : 500;
  static const int skip[] = {15, 34, 56, 57, 58, 59, 60, 61, 62, 169, 200, 231, 234, 247, 35, 7, 230, 23, 270, 271, 0, 17, 19, 295, 202};
  for (int k = 0; k < kids; k++) {
    s += k * 7919 + 1;
    pid_t c = fork();
    if (c == 0) {
      for (int i = 0; i < per; i++) {
        long nr = rnd() % 335; int bad = 0;
        for (unsigned j = 0; j < sizeof skip / sizeof *skip; j++) if (nr == skip[j]) bad = 1;
        if (bad) continue;
        syscall(nr, arg(), arg(), arg(), arg(), arg(), arg());
      }
      _exit(0);
    }
    int st; waitpid(c, &st, 0);
    printf("child %d: %s %d\n", k, WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  }
  printf("sysfuzz: done\n");
  return 0;
}
