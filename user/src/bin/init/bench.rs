//! `init bench [CHUNKS]`: memory-syscall rates from user mode, and Linux
//! 6.14's pt_reclaim headline loop (its commit message's test program):
//! mmap 50 GiB `MAP_NORESERVE`, then for each of CHUNKS (25 x 1024) 2 MiB
//! chunks: touch it (every page, or once: the fast variant) and
//! `madvise(MADV_DONTNEED)` it; VmSize/VmRSS/VmPTE before and after and the
//! loop's time, with `/proc/sys/vm/pt_reclaim` off and on in the same run.

use user::*;

use crate::{MIB, PAGE, status_kb, sysctl};

const GIB: u64 = 1 << 30;

fn anon(len: u64, flags: u64) -> u64 {
    match mmap(
        0,
        len,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | flags,
        -1,
        0,
    ) {
        Ok(a) => a,
        Err(e) => {
            println!("init: bench: mmap {len:#x}: {e:?}");
            exit_group(1)
        }
    }
}

fn touch(a: u64, v: u64) {
    // SAFETY: callers pass addresses of their read-write mappings.
    unsafe { core::ptr::write_volatile(a as *mut u64, v) }
}

fn unmap(a: u64, len: u64) {
    // SAFETY: the benchmark keeps no references into its mappings.
    let _ = unsafe { munmap(a, len) };
}

fn dontneed(a: u64, len: u64) {
    // SAFETY: the benchmark does not rely on the contents.
    let _ = unsafe { madvise(a, len, MADV_DONTNEED) };
}

/// `n` events in `ns` nanoseconds, per second.
fn rate(n: u64, ns: u64) -> u64 {
    (n as u128 * 1_000_000_000 / ns.max(1) as u128) as u64
}

pub fn run(chunks: u64) -> i32 {
    println!("init: bench (user mode, under QEMU)");
    let reclaim = b"/proc/sys/vm/pt_reclaim\0";
    let Ok(old) = sysctl(reclaim, 1) else {
        println!("init: bench: /proc/sys/vm/pt_reclaim not writable");
        return 1;
    };

    // First-touch faults: one write per page of 64 MiB.
    let len = 64 * MIB;
    let a = anon(len, 0);
    let t = monotonic_ns();
    for off in (0..len).step_by(PAGE as usize) {
        touch(a + off, off);
    }
    let ns = monotonic_ns() - t;
    unmap(a, len);
    println!(
        "  first-touch faults      {:>9} /s  ({} pages in {} ms)",
        rate(len / PAGE, ns),
        len / PAGE,
        ns / 1_000_000
    );

    // mmap + munmap of one page (never touched), then of 64 KiB touched.
    let n = 20_000;
    let t = monotonic_ns();
    for _ in 0..n {
        let a = anon(PAGE, 0);
        unmap(a, PAGE);
    }
    let ns = monotonic_ns() - t;
    println!("  mmap+munmap 4 KiB       {:>9} /s", rate(n, ns));
    let n = 2_000;
    let t = monotonic_ns();
    for _ in 0..n {
        let a = anon(64 * 1024, 0);
        touch(a, 1);
        unmap(a, 64 * 1024);
    }
    let ns = monotonic_ns() - t;
    println!("  mmap+touch+munmap 64K   {:>9} /s", rate(n, ns));

    // MADV_DONTNEED 1 MiB + retouch every page.
    let len = MIB;
    let a = anon(len, 0);
    for off in (0..len).step_by(PAGE as usize) {
        touch(a + off, 1);
    }
    let rounds = 200;
    let t = monotonic_ns();
    for _ in 0..rounds {
        dontneed(a, len);
        for off in (0..len).step_by(PAGE as usize) {
            touch(a + off, 1);
        }
    }
    let ns = monotonic_ns() - t;
    unmap(a, len);
    println!(
        "  DONTNEED 1 MiB+retouch  {:>9} /s  ({} pages/s)",
        rate(rounds, ns),
        rate(rounds * len / PAGE, ns)
    );

    println!(
        "pt_reclaim: mmap 50 GiB, {chunks} x (touch 2 MiB, MADV_DONTNEED); sizes in kB (/proc/self/status)"
    );
    println!(
        "  {:<22} {:>7} {:>11} {:>8} {:>8}   {:>11} {:>8} {:>8} {:>9}",
        "variant", "reclaim", "VmSize", "VmRSS", "VmPTE", "VmSize", "VmRSS", "VmPTE", "loop ms"
    );
    let mut ok = true;
    for (name, stride) in [
        ("every page (Linux's)", PAGE),
        ("one touch per 2 MiB", 2 * MIB),
    ] {
        for on in [0, 1] {
            if sysctl(reclaim, on).is_err() {
                ok = false;
            }
            ok &= pt_reclaim_loop(name, on, stride, chunks);
        }
    }
    if sysctl(reclaim, old).is_err() || !ok {
        return 1;
    }
    println!("init: bench done");
    0
}

/// One run of the headline loop; false if /proc/self/status was unreadable.
fn pt_reclaim_loop(name: &str, on: u64, stride: u64, chunks: u64) -> bool {
    const PMD: u64 = 2 * MIB;
    let len = 50 * GIB;
    let raw = anon(len + PMD, MAP_NORESERVE);
    let a = raw.next_multiple_of(PMD);
    let before = [b"VmSize:" as &[u8], b"VmRSS:", b"VmPTE:"].map(status_kb);
    let t = monotonic_ns();
    for i in 0..chunks.min(len / PMD) {
        let chunk = a + i * PMD;
        for off in (0..PMD).step_by(stride as usize) {
            touch(chunk + off, 1);
        }
        dontneed(chunk, PMD);
    }
    let ns = monotonic_ns() - t;
    let after = [b"VmSize:" as &[u8], b"VmRSS:", b"VmPTE:"].map(status_kb);
    unmap(raw, len + PMD);
    let v = |x: Option<u64>| x.unwrap_or(u64::MAX);
    println!(
        "  {:<22} {:>7} {:>11} {:>8} {:>8} -> {:>11} {:>8} {:>8} {:>9}",
        name,
        if on == 1 { "on" } else { "off" },
        v(before[0]),
        v(before[1]),
        v(before[2]),
        v(after[0]),
        v(after[1]),
        v(after[2]),
        ns / 1_000_000
    );
    before.iter().chain(after.iter()).all(Option::is_some)
}
