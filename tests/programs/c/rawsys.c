/*
 * rawsys: no libc at all. Built with gcc -static -nostdlib -ffreestanding:
 * its own _start, the raw `syscall` instruction, no TLS, no stdio, no
 * auxv parsing. The smallest program the kernel can run: it checks the
 * initial stack (argc, argv), write, getpid, mmap/munmap of anonymous
 * memory and exit_group.
 */
typedef unsigned long u64;

enum {
	SYS_write = 1,
	SYS_mmap = 9,
	SYS_munmap = 11,
	SYS_getpid = 39,
	SYS_exit_group = 231,
};

static long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

static long sys3(long nr, long a, long b, long c)
{
	return sys6(nr, a, b, c, 0, 0, 0);
}

static u64 len(const char *s)
{
	u64 n = 0;
	while (s[n])
		n++;
	return n;
}

static void put(const char *s)
{
	sys3(SYS_write, 1, (long)s, (long)len(s));
}

/* Writes `v` in decimal (negative values with a '-'). */
static void put_num(long v)
{
	char buf[24];
	int i = sizeof buf;
	unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
	buf[--i] = 0;
	do
		buf[--i] = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		buf[--i] = '-';
	put(buf + i);
}

static void put_yes(const char *what, int cond)
{
	put(what);
	put(cond ? ": yes\n" : ": no\n");
}

/* Called by _start with the initial stack pointer: [argc, argv..., 0, envp...]. */
__attribute__((used, noreturn)) void rawsys_main(u64 *sp)
{
	long argc = (long)sp[0];
	char **argv = (char **)(sp + 1);
	int failed = 0;

	put("rawsys: start\n");
	put("argc ");
	put_num(argc);
	put("\n");
	for (long i = 1; i < argc; i++) {
		put("argv[");
		put_num(i);
		put("] ");
		put(argv[i]);
		put("\n");
	}
	put_yes("argv[argc] is NULL", argv[argc] == 0);

	long pid = sys3(SYS_getpid, 0, 0, 0);
	put_yes("getpid > 0", pid > 0);

	/* 64 KiB of anonymous memory: zero-filled, writable, page-aligned. */
	enum { LEN = 64 * 1024, PROT_RW = 3, MAP_PRIVATE_ANON = 0x22 };
	long m = sys6(SYS_mmap, 0, LEN, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
	int mapped = m > 0 && (m & 4095) == 0;
	put_yes("mmap 64 KiB anonymous", mapped);
	if (mapped) {
		volatile unsigned char *p = (unsigned char *)m;
		long zero = 1, sum = 0;
		for (long i = 0; i < LEN; i++)
			zero &= p[i] == 0;
		for (long i = 0; i < LEN; i++)
			p[i] = (unsigned char)i;
		for (long i = 0; i < LEN; i++)
			sum += p[i];
		put_yes("fresh memory reads zero", zero);
		put("sum after writing i & 0xff: ");
		put_num(sum);
		put("\n");
		put("munmap: ");
		put_num(sys3(SYS_munmap, m, LEN, 0));
		put("\n");
		failed |= !zero;
	}
	failed |= !mapped;

	/* Errors are -errno in rax: mmap of length 0 is EINVAL (22),
	 * write to fd 99 is EBADF (9). */
	put("mmap length 0: ");
	put_num(sys6(SYS_mmap, 0, 0, PROT_RW, MAP_PRIVATE_ANON, -1, 0));
	put("\nwrite to fd 99: ");
	put_num(sys3(SYS_write, 99, (long)"x", 1));
	put("\n");

	put("rawsys: done\n");
	sys3(SYS_exit_group, failed ? 1 : 0, 0, 0);
	__builtin_unreachable();
}

/* The entry point: rsp points at argc; align the stack for the call. */
__asm__(".globl _start\n"
	"_start:\n"
	"	xor %ebp, %ebp\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call rawsys_main\n"
	"	hlt\n");
