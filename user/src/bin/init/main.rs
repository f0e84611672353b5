//! `init`, the first user program. Its first argument picks the mode (the
//! kernel passes the words of QEMU's fw_cfg file `opt/mmkernel/init`,
//! `cargo run -- --init MODE`):
//!
//! - none: a short tour of the memory syscalls (map, touch, protect,
//!   advise, unmap, brk) printing the memory lines of `/proc/self/status`
//!   and `/proc/self/maps` at each step;
//! - `test`: the userland test suite (`tests.rs`), `test NAME ... ok`
//!   lines and `N passed, N failed`;
//! - `fuzz [SEED [ITERATIONS]]`: random mm syscalls with hostile arguments
//!   (`fuzz.rs`);
//! - `bench [CHUNKS]`: fault, mmap and madvise rates and Linux 6.14's
//!   pt_reclaim loop (`bench.rs`).
//!
//! init exits 0 on success, and the kernel then powers off with success.
//!
//! Written against the Linux x86_64 syscall ABI only: the same binary runs
//! on Linux.
#![no_std]
#![no_main]

mod bench;
mod fuzz;
mod tests;

use user::*;

user::entry!(main);

const MIB: u64 = 1 << 20;
const PAGE: u64 = 4096;

/// Reads a whole `/proc` file into `buf`; returns the bytes read.
fn read_file(path: &[u8], buf: &mut [u8]) -> Result<usize, Errno> {
    let fd = open(path)?;
    let mut len = 0;
    while len < buf.len() {
        match read(fd, &mut buf[len..])? {
            0 => break,
            n => len += n,
        }
    }
    close(fd)?;
    Ok(len)
}

/// Prints the VmSize, VmRSS, VmData, VmStk and VmPTE lines of
/// `/proc/self/status` on one line, after `step`.
fn status(step: &str) {
    let mut buf = [0u8; 2048];
    let len = match read_file(b"/proc/self/status\0", &mut buf) {
        Ok(len) => len,
        Err(e) => {
            println!("init: /proc/self/status: {e:?}");
            return;
        }
    };
    let mut out = fmt::Stdout::new();
    let _ = core::fmt::Write::write_fmt(&mut out, format_args!("  {step:<28}"));
    for line in buf[..len].split(|&b| b == b'\n') {
        for key in [&b"VmSize:"[..], b"VmRSS:", b"VmData:", b"VmStk:", b"VmPTE:"] {
            if let Some(rest) = line.strip_prefix(key) {
                let v = core::str::from_utf8(rest).unwrap_or("?").trim();
                let k = core::str::from_utf8(&key[..key.len() - 1]).unwrap_or("?");
                let _ = core::fmt::Write::write_fmt(&mut out, format_args!(" {k} {v:>8}"));
            }
        }
    }
    let _ = core::fmt::Write::write_str(&mut out, "\n");
}

/// Prints `/proc/self/maps`.
fn maps() {
    let mut buf = [0u8; 4096];
    match read_file(b"/proc/self/maps\0", &mut buf) {
        Ok(len) => {
            for line in buf[..len].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                println!("    {}", core::str::from_utf8(line).unwrap_or("?"));
            }
        }
        Err(e) => println!("init: /proc/self/maps: {e:?}"),
    }
}

/// The value (in kB) of line `key` (`b"VmPTE:"`) of `/proc/self/status`.
pub fn status_kb(key: &[u8]) -> Option<u64> {
    let mut buf = [0u8; 2048];
    let len = read_file(b"/proc/self/status\0", &mut buf).ok()?;
    field(&buf[..len], key)
}

/// Counter `name` (`b"cow_reuse_large"`) of `/proc/vmstat`.
pub fn vmstat(name: &[u8]) -> Option<u64> {
    let mut buf = [0u8; 4096];
    let len = read_file(b"/proc/vmstat\0", &mut buf).ok()?;
    for line in buf[..len].split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(name)
            && rest.first() == Some(&b' ')
        {
            return parse_u64(&rest[1..]);
        }
    }
    None
}

/// The number after `key` on its line of `text`, ignoring blanks and a
/// `kB` unit.
pub fn field(text: &[u8], key: &[u8]) -> Option<u64> {
    text.split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(key))
        .and_then(parse_u64)
}

/// A decimal number, blanks before it and anything after it ignored.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    let s = s.trim_ascii_start();
    let end = s
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    core::str::from_utf8(&s[..end]).ok()?.parse().ok()
}

/// Writes `value` to `/proc/sys/vm/NAME` (`path` given whole, with its
/// NUL) and returns the previous value.
pub fn sysctl(path: &[u8], value: u64) -> Result<u64, Errno> {
    let mut buf = [0u8; 32];
    let len = read_file(path, &mut buf)?;
    let old = parse_u64(&buf[..len]).ok_or(Errno::EINVAL)?;
    let fd = open_flags(path, O_WRONLY)?;
    let mut text = [0u8; 24];
    let n = fmt_u64(value, &mut text);
    let r = write(fd, &text[..n]);
    close(fd)?;
    r.map(|_| old)
}

/// `v` in decimal, followed by a newline; returns the length.
fn fmt_u64(mut v: u64, out: &mut [u8; 24]) -> usize {
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        out[i] = digits[n - 1 - i];
    }
    out[n] = b'\n';
    n + 1
}

fn fail(what: &str, e: Errno) -> i32 {
    println!("init: {what} failed: {e:?}");
    1
}

fn main(args: &Args) -> i32 {
    let num = |i| args.arg(i).and_then(parse_u64);
    match args.arg(1) {
        None | Some(b"tour") => tour(args),
        Some(b"test") => tests::run(),
        Some(b"fuzz") => fuzz::run(num(2).unwrap_or(1), num(3).unwrap_or(20_000)),
        Some(b"bench") => bench::run(num(2).unwrap_or(25 * 1024)),
        Some(other) => {
            println!(
                "init: unknown mode {:?} (tour, test, fuzz, bench)",
                core::str::from_utf8(other).unwrap_or("?")
            );
            2
        }
    }
}

/// The default mode: the memory tour.
fn tour(args: &Args) -> i32 {
    let t0 = monotonic_ns();
    println!(
        "init: pid {}, argv[0] {:?}, AT_PAGESZ {}, AT_ENTRY {:#x}, AT_PHNUM {}",
        getpid(),
        core::str::from_utf8(args.arg(0).unwrap_or(b"?")).unwrap_or("?"),
        args.auxv(AT_PAGESZ).unwrap_or(0),
        args.auxv(AT_ENTRY).unwrap_or(0),
        args.auxv(AT_PHNUM).unwrap_or(0),
    );
    println!("init: the memory tour (sizes in kB, from /proc/self/status)");
    status("at start");

    // 1. Map 4 MiB of anonymous memory: virtual size grows, RSS does not.
    let len = 4 * MIB;
    let base = match mmap(
        0,
        len,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS,
        -1,
        0,
    ) {
        Ok(a) => a,
        Err(e) => return fail("mmap", e),
    };
    status("mmap 4 MiB");

    // 2. Read it: every page maps the shared zero page, RSS stays put.
    let mut sum = 0u64;
    for off in (0..len).step_by(PAGE as usize) {
        // SAFETY: inside the mapping just made, readable.
        sum += unsafe { core::ptr::read_volatile((base + off) as *const u64) };
    }
    status("read every page (zero page)");

    // 3. Write it: one fault per page allocates it; page tables appear.
    for off in (0..len).step_by(PAGE as usize) {
        // SAFETY: inside the mapping, writable.
        unsafe { core::ptr::write_volatile((base + off) as *mut u64, off + 1) };
    }
    status("write every page");

    // 4. Protect the upper half read-only: the VMA splits in two.
    if let Err(e) = mprotect(base + len / 2, len / 2, PROT_READ) {
        return fail("mprotect", e);
    }
    for off in (len / 2..len).step_by(PAGE as usize) {
        // SAFETY: readable still.
        sum += unsafe { core::ptr::read_volatile((base + off) as *const u64) };
    }
    status("mprotect upper half R");
    println!("  /proc/self/maps:");
    maps();

    // 5. MADV_DONTNEED the first MiB: its pages go, reads give zeros.
    // SAFETY: nothing relies on the contents of the first MiB.
    if let Err(e) = unsafe { madvise(base, MIB, MADV_DONTNEED) } {
        return fail("madvise", e);
    }
    // SAFETY: still mapped and readable.
    let first = unsafe { core::ptr::read_volatile(base as *const u64) };
    status("madvise DONTNEED 1 MiB");
    if first != 0 {
        println!("init: MADV_DONTNEED left {first:#x} behind");
        return 1;
    }

    // 6. Unmap all of it.
    // SAFETY: no references into the mapping live on.
    if let Err(e) = unsafe { munmap(base, len) } {
        return fail("munmap", e);
    }
    status("munmap 4 MiB");

    // 7. The heap: grow the break by 256 KiB, touch it, give it back.
    let start = brk(0);
    let grown = brk(start + 256 * 1024);
    if grown != start + 256 * 1024 {
        println!("init: brk did not grow: {start:#x} -> {grown:#x}");
        return 1;
    }
    for off in (0..256 * 1024).step_by(PAGE as usize) {
        // SAFETY: the heap [start, grown) is mapped read-write.
        unsafe { core::ptr::write_volatile((start + off) as *mut u8, 1) };
    }
    status("brk +256 KiB, touched");
    brk(start);
    status("brk back");

    // 8. Bad arguments are refused with Linux's errno, not a crash.
    let bad = [
        (
            "mmap len 0",
            mmap(0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0).err(),
        ),
        // SAFETY: an unaligned munmap changes nothing.
        ("munmap unaligned", unsafe { munmap(base + 1, PAGE) }.err()),
        (
            "write bad pointer",
            // SAFETY: the kernel must refuse the unmapped buffer with EFAULT.
            check(unsafe { syscall6(SYS_WRITE, [1, 0x10, 8, 0, 0, 0]) }).err(),
        ),
    ];
    for (what, err) in bad {
        println!("  {what:<28} -> {err:?}");
    }

    println!(
        "init: tour done in {} ms (checksum {sum}); exiting 0",
        (monotonic_ns() - t0) / 1_000_000
    );
    0
}
