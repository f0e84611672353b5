//! A std program the kernel runs unmodified: std's startup (it polls fds
//! 0..2, installs a SIGSEGV handler on an alternate stack, reads auxv),
//! the global allocator under `Vec`, `String`, `HashMap` and `BTreeMap`,
//! `std::fs` on `/proc/self/status`, `std::env::args` and
//! `std::process::exit`.
//!
//! Every printed line is the same on any Linux (no addresses, timings or
//! `HashMap` iteration order); lines starting with `~` carry kernel
//! numbers and are not compared. The last argument `exit=N` picks the exit
//! code. With the single argument `overflow` it runs [`overflow`] instead.

use std::collections::{BTreeMap, HashMap};

/// A 64-bit LCG (Knuth's MMIX constants): the same stream everywhere.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// FNV-1a over bytes.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// The `kB` value of a `/proc/self/status` line such as `VmRSS:  1234 kB`.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.split(':').next() == Some(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

unsafe extern "C" {
    fn fork() -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn pipe(fds: *mut i32) -> i32;
    fn dup2(old: i32, new: i32) -> i32;
    fn close(fd: i32) -> i32;
    fn read(fd: i32, buf: *mut u8, len: usize) -> isize;
}

/// Recurses until the stack runs out (each frame keeps 1 KiB alive).
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 128]);
    recurse(depth + 1).wrapping_add(frame[depth as usize % 128])
}

/// A child overflows its main thread's stack with its stderr on a pipe;
/// the parent prints what the child wrote (std's SIGSEGV handler on its
/// alternate stack names the overflow) and how it died.
fn overflow() {
    let mut fds = [0i32; 2];
    // SAFETY: plain libc calls on a single-threaded process; the child
    // only redirects stderr and recurses, the parent reads and waits.
    unsafe {
        assert_eq!(pipe(fds.as_mut_ptr()), 0);
        let pid = fork();
        if pid == 0 {
            dup2(fds[1], 2);
            close(fds[0]);
            std::process::exit(recurse(0) as i32);
        }
        close(fds[1]);
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let n = read(fds[0], buf.as_mut_ptr(), buf.len());
            if n <= 0 {
                break;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        let mut status = 0;
        waitpid(pid, &mut status, 0);
        for line in String::from_utf8_lossy(&out).lines() {
            println!("child stderr: {line}");
        }
        if status & 0x7f != 0 {
            println!("child killed by signal {}", status & 0x7f);
        } else {
            println!("child exited {}", (status >> 8) & 0xff);
        }
    }
}

fn main() {
    println!("rust-std: start");
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 2 && args[1] == "overflow" {
        overflow();
        println!("rust-std: done");
        return;
    }
    println!("argc {}", args.len());
    for (i, a) in args.iter().enumerate() {
        println!("argv[{i}] {a}");
    }
    let code = args
        .last()
        .and_then(|a| a.strip_prefix("exit="))
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);

    // Words from a fixed alphabet, counted in a HashMap, then sorted through
    // a BTreeMap: 200k words, a few MiB of small allocations.
    let mut rng = Lcg(42);
    let syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po"];
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..200_000 {
        let n = 1 + rng.next() % 3;
        let word: String = (0..n)
            .map(|_| syllables[(rng.next() % 8) as usize])
            .collect();
        *counts.entry(word).or_default() += 1;
    }
    let sorted: BTreeMap<&str, u32> = counts.iter().map(|(w, &c)| (w.as_str(), c)).collect();
    println!("distinct words {}", sorted.len());
    let first: Vec<String> = sorted
        .iter()
        .take(3)
        .map(|(w, c)| format!("{w}={c}"))
        .collect();
    println!("first words {}", first.join(" "));
    let mut by_count: Vec<(&str, u32)> = sorted.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = by_count[..3]
        .iter()
        .map(|(w, c)| format!("{w}={c}"))
        .collect();
    println!("most frequent {}", top.join(" "));

    // A growing Vec of Vecs (reallocations up to ~8 MiB), sorted.
    let mut rows: Vec<Vec<u32>> = (0..2000)
        .map(|i| (0..(i % 97 + 1)).map(|_| rng.next() as u32).collect())
        .collect();
    let mut big: Vec<u64> = Vec::new();
    for row in &rows {
        big.extend(row.iter().map(|&x| u64::from(x)));
    }
    big.sort_unstable();
    rows.sort_by_key(|r| std::cmp::Reverse(r.len()));
    println!(
        "rows {} longest {} numbers {} median {} checksum {:016x}",
        rows.len(),
        rows[0].len(),
        big.len(),
        big[big.len() / 2],
        fnv(&big.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
    );

    // One big String built by pushing (doubling reallocations to ~4 MiB).
    let mut text = String::new();
    let mut line_no = 0u32;
    while text.len() < 4 << 20 {
        line_no += 1;
        text.push_str(&format!("line {line_no}: {}\n", rng.next()));
    }
    println!("text lines {line_no} checksum {:016x}", fnv(text.as_bytes()));
    drop(text);

    // /proc/self/status through std::fs.
    match std::fs::read_to_string("/proc/self/status") {
        Ok(status) => {
            let rss = status_kib(&status, "VmRSS");
            let size = status_kib(&status, "VmSize");
            println!("~ VmRSS {rss:?} kB, VmSize {size:?} kB");
            println!("status has VmRSS and VmSize: {}", rss.is_some() && size.is_some());
            println!(
                "status Pid is std::process::id(): {}",
                status_kib(&status, "Pid") == Some(u64::from(std::process::id()))
            );
        }
        Err(e) => println!("reading /proc/self/status failed: {e}"),
    }
    // A file that does not exist: the error kind comes from ENOENT.
    let missing = std::fs::read("/nonexistent/file").map_err(|e| e.kind());
    println!("reading a missing file: {missing:?}");

    println!("rust-std: exit {code}");
    std::process::exit(code);
}
