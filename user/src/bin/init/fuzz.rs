//! `init fuzz [SEED [ITERATIONS]]`: random memory syscalls with random and
//! hostile arguments, seeded (the same seed replays the same calls).
//!
//! Every result must be a valid value (an address where one is due, 0
//! otherwise) or `-errno` with an errno Linux gives for these calls; the
//! kernel must survive; at the end everything is unmapped and init exits,
//! and the kernel checks that every frame came back (`run_init`).
//!
//! The calls are aimed at an arena (`ARENA`, 16 TiB up) and at addresses no
//! user mapping can have (the kernel half, unaligned, wrapping lengths), so
//! that they never unmap init's own code, data or stack ([`Rng::range`]). Forked children
//! write to random arena pages: they exit 0 or die of SIGSEGV, nothing
//! else. Buffers the kernel writes (`read` from a `/proc` file) land at
//! random arena addresses, exercising the uaccess fault path.

use user::*;

use crate::{MIB, PAGE, sysctl};

/// Base and length of the arena the calls hit.
const ARENA: u64 = 0x1000_0000_0000;
const ARENA_LEN: u64 = 1 << 34;

/// Errnos a memory syscall may return here (Linux's set for these calls).
const ALLOWED: [Errno; 10] = [
    Errno::EPERM,
    Errno::EBADF,
    Errno::EAGAIN,
    Errno::ENOMEM,
    Errno::EACCES,
    Errno::EFAULT,
    Errno::EEXIST,
    Errno::ENODEV,
    Errno::EINVAL,
    Errno(95), // EOPNOTSUPP: MAP_SHARED_VALIDATE with unknown flags
];

/// xorshift64*: a small, seedable generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// An address: mostly page-aligned in the arena, sometimes hostile.
    fn addr(&mut self) -> u64 {
        match self.below(20) {
            0 => 0xffff_8880_0000_0000 + self.below(1 << 30) * PAGE,
            1 => 0xffff_ffff_ffff_f000,
            2 => ARENA + self.below(ARENA_LEN),
            3 => (1 << 47) + self.below(2) * PAGE,
            _ => ARENA + self.below(1 << 16) * PAGE,
        }
    }

    /// A range for munmap, mprotect and madvise: one that starts in the
    /// arena ends there too (or wraps around, which every call refuses).
    /// Linux applies madvise to every VMA of a range that runs to the top
    /// of user space, and munmap unmaps all of one: init's stack with it.
    fn range(&mut self) -> (u64, u64) {
        let (addr, len) = (self.addr(), self.len());
        match addr.checked_add(len) {
            Some(end) if addr < 1 << 47 && end > ARENA + 2 * ARENA_LEN => {
                (addr, ARENA + 2 * ARENA_LEN - addr)
            }
            _ => (addr, len),
        }
    }

    /// A length: mostly a few pages, sometimes huge or hostile.
    fn len(&mut self) -> u64 {
        match self.below(20) {
            0 => 0,
            1 => u64::MAX - self.below(PAGE),
            2 => 1 << 47,
            3 => self.below(1 << 30),
            4 => (1 + self.below(512)) * 2 * MIB,
            _ => (1 + self.below(64)) * PAGE,
        }
    }
}

/// Mappings made outside the arena (mmap without a usable hint lands
/// below the stack), unmapped when the list fills and at the end.
struct Outside {
    maps: [(u64, u64); 64],
    len: usize,
}

impl Outside {
    fn add(&mut self, addr: u64, len: u64) {
        if self.len == self.maps.len() {
            self.clear();
        }
        self.maps[self.len] = (addr, len);
        self.len += 1;
    }

    fn clear(&mut self) {
        for &(addr, len) in &self.maps[..self.len] {
            // SAFETY: a mapping the fuzzer made and nothing else uses.
            let _ = unsafe { munmap(addr, len) };
        }
        self.len = 0;
    }
}

/// What the run saw, per call.
#[derive(Default)]
struct Tally {
    calls: u64,
    ok: u64,
    errors: u64,
    children: u64,
    segv: u64,
}

pub fn run(seed: u64, iterations: u64) -> i32 {
    println!("init: fuzz: seed {seed}, {iterations} iterations, arena {ARENA:#x}+{ARENA_LEN:#x}");
    let t0 = monotonic_ns();
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut t = Tally::default();
    let orders = b"/proc/sys/vm/anon_orders\0";
    let reclaim = b"/proc/sys/vm/pt_reclaim\0";
    let saved = (sysctl(orders, 1), sysctl(reclaim, 1));
    let (Ok(old_orders), Ok(old_reclaim)) = saved else {
        println!("init: fuzz: /proc/sys/vm not writable: {saved:?}");
        return 1;
    };
    let status_fd = match open(b"/proc/self/status\0") {
        Ok(fd) => fd,
        Err(e) => return crate::fail("open /proc/self/status", e),
    };
    let mut bad = 0;
    let mut outside = Outside {
        maps: [(0, 0); 64],
        len: 0,
    };
    for i in 0..iterations {
        if let Err(what) = step(&mut rng, &mut t, status_fd, &mut outside) {
            println!("init: fuzz: iteration {i}: {what}");
            bad += 1;
            if bad > 10 {
                break;
            }
        }
        if i % 1000 == 999 {
            println!(
                "init: fuzz: {} iterations, {} ms",
                i + 1,
                (monotonic_ns() - t0) / 1_000_000
            );
        }
        if i % 512 == 511 {
            // Keep memory bounded: empty the arena now and then.
            // SAFETY: nothing of init's lives in the arena.
            outside.clear();
            // SAFETY: the arena holds only the fuzzer's own mappings; nothing of init lives there.
            if let Err(e) = unsafe { munmap(ARENA, 2 * ARENA_LEN) } {
                println!("init: fuzz: arena munmap: {e:?}");
                bad += 1;
            }
        }
    }
    let _ = close(status_fd);
    outside.clear();
    // SAFETY: the arena holds only the fuzzer's own mappings; nothing of init lives there.
    let end = unsafe { munmap(ARENA, 2 * ARENA_LEN) };
    let restored = (sysctl(orders, old_orders), sysctl(reclaim, old_reclaim));
    println!(
        "init: fuzz: {} calls, {} ok, {} -errno, {} children ({} SIGSEGV), {} bad results, {} ms",
        t.calls,
        t.ok,
        t.errors,
        t.children,
        t.segv,
        bad,
        (monotonic_ns() - t0) / 1_000_000
    );
    if bad != 0 || end.is_err() || restored.0.is_err() || restored.1.is_err() {
        println!("init: fuzz FAILED");
        return 1;
    }
    println!("init: fuzz done");
    0
}

/// One random call; `Err` describes a result that is not allowed.
fn step(
    rng: &mut Rng,
    t: &mut Tally,
    status_fd: u64,
    outside: &mut Outside,
) -> Result<(), &'static str> {
    t.calls += 1;
    let (nr, args, returns_addr) = match rng.below(100) {
        0..=29 => {
            let mut flags = [MAP_PRIVATE, MAP_PRIVATE, MAP_SHARED, 0, 3][rng.below(5) as usize];
            for f in [MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_NORESERVE] {
                if rng.chance(if f == MAP_ANONYMOUS { 90 } else { 30 }) {
                    flags |= f;
                }
            }
            let addr = if flags & MAP_FIXED != 0 || rng.chance(50) {
                rng.addr()
            } else {
                0
            };
            let len = rng.len();
            if rng.chance(10) && len <= MIB {
                flags |= MAP_POPULATE;
            }
            if rng.chance(2) {
                flags |= 1 << rng.below(32);
            }
            if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 && addr < ARENA {
                // MAP_FIXED only ever at the arena or the kernel half.
                t.calls -= 1;
                return Ok(());
            }
            let prot = if rng.chance(5) {
                rng.below(16)
            } else {
                rng.below(4)
            };
            let fd = if rng.chance(5) { status_fd } else { u64::MAX };
            let off = if rng.chance(5) { rng.next() } else { 0 };
            (SYS_MMAP, [addr, len, prot, flags, fd, off], true)
        }
        30..=44 => {
            let (addr, len) = rng.range();
            (SYS_MUNMAP, [addr, len, 0, 0, 0, 0], false)
        }
        45..=59 => {
            let prot = if rng.chance(5) {
                rng.next() & 0xff
            } else {
                rng.below(8)
            };
            let (addr, len) = rng.range();
            (SYS_MPROTECT, [addr, len, prot, 0, 0, 0], false)
        }
        60..=74 => {
            let advice = [
                MADV_DONTNEED,
                MADV_DONTNEED,
                MADV_NORMAL,
                MADV_DONTFORK,
                MADV_DOFORK,
                rng.next() & 0xffff,
            ][rng.below(6) as usize];
            let (addr, len) = rng.range();
            (SYS_MADVISE, [addr, len, advice, 0, 0, 0], false)
        }
        75..=89 => {
            // The kernel writes a fresh /proc snapshot to a random address.
            let Ok(fd) = open(b"/proc/self/maps\0") else {
                return Err("open /proc/self/maps failed");
            };
            let n = rng.below(2 * PAGE);
            // SAFETY: as below: the buffer is in the arena or unmappable.
            let r = check(unsafe { syscall6(SYS_READ, [fd, rng.addr(), n, 0, 0, 0]) });
            tally(t, r);
            if close(fd).is_err() {
                return Err("close failed");
            }
            return match r {
                Ok(v) if v > n => Err("read: more than asked"),
                Err(e) if e != Errno::EFAULT => Err("read: not EFAULT"),
                _ => Ok(()),
            };
        }
        90..=93 => {
            let v = [0, 1, 16, 17, 1 << 20][rng.below(5) as usize];
            let path: &[u8] = if rng.chance(50) {
                b"/proc/sys/vm/anon_orders\0"
            } else {
                b"/proc/sys/vm/pt_reclaim\0"
            };
            let r = sysctl(path, v);
            tally(t, r.map(|_| 0));
            return match r {
                Err(e) if !ALLOWED.contains(&e) => Err("sysctl: unexpected errno"),
                _ => Ok(()),
            };
        }
        94..=96 => return child(rng, t),
        _ => {
            let cur = brk(0);
            // Small moves (a far break would make one huge heap VMA that
            // every fork walks), and hostile ones that must fail.
            let target = [
                0,
                cur.wrapping_add(rng.below(64) * PAGE),
                cur.wrapping_sub(rng.below(64) * PAGE),
                0xffff_8880_0000_0000,
            ][rng.below(4) as usize];
            let r = brk(target);
            tally(t, Ok(r));
            return if r == cur || r == target {
                Ok(())
            } else {
                Err("brk: neither the old nor the asked break")
            };
        }
    };
    // SAFETY: the arguments aim at the arena or at addresses no mapping of
    // init's has; nothing init uses can change.
    let ret = unsafe { syscall6(nr, args) };
    let r = check(ret);
    tally(t, r);
    match r {
        Err(e) if !ALLOWED.contains(&e) => Err("unexpected errno"),
        Err(_) => Ok(()),
        Ok(v) if returns_addr => {
            let fixed = args[3] & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
            if v % PAGE != 0 || v >= 1 << 47 || (fixed && v != args[0]) {
                Err("mmap: bad address")
            } else {
                if !(ARENA..ARENA + 2 * ARENA_LEN).contains(&v) {
                    outside.add(v, args[1]);
                }
                Ok(())
            }
        }
        Ok(0) => Ok(()),
        Ok(_) => Err("nonzero success value"),
    }
}

fn tally(t: &mut Tally, r: Result<u64, Errno>) {
    if r.is_ok() {
        t.ok += 1;
    } else {
        t.errors += 1;
    }
}

/// Seeds the children from the parent's generator (fork copies it).
fn child(rng: &mut Rng, t: &mut Tally) -> Result<(), &'static str> {
    let pid = match fork() {
        Ok(0) => {
            // Child: write to random arena pages (a few are mapped).
            for _ in 0..16 {
                let a = ARENA + rng.below(1 << 16) * PAGE;
                if rng.chance(50) {
                    // SAFETY: a stray write kills only this child (SIGSEGV),
                    // and the arena holds nothing of init's.
                    unsafe { core::ptr::write_volatile(a as *mut u64, a) };
                }
            }
            exit(0);
        }
        Ok(pid) => pid,
        Err(e) if ALLOWED.contains(&e) => return Ok(()),
        Err(_) => return Err("fork: unexpected errno"),
    };
    rng.next();
    t.children += 1;
    match wait4(pid as i64, 0) {
        Ok((got, 0)) if got == pid => Ok(()),
        Ok((got, w)) if got == pid && wifsignaled(w) && wtermsig(w) == SIGSEGV => {
            t.segv += 1;
            Ok(())
        }
        _ => Err("child: neither exit 0 nor SIGSEGV"),
    }
}
