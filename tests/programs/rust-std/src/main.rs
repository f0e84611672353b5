//! A std program the kernel runs unmodified: std's startup (it polls fds
//! 0..2, installs a SIGSEGV handler on an alternate stack, reads auxv),
//! the global allocator under `Vec`, `String`, `HashMap` and `BTreeMap`,
//! `std::fs` on `/proc/self/status`, `std::env::args` and
//! `std::process::exit`.
//!
//! Every printed line is the same on any Linux (no addresses, timings or
//! `HashMap` iteration order); lines starting with `~` carry kernel
//! numbers and are not compared. The last argument `exit=N` picks the exit
//! code. With the single argument `overflow` it runs [`overflow`] instead,
//! with `threads` [`threads`].

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

/// std's threads: spawn and join with results, a named thread, scoped
/// threads borrowing the stack, `Arc<Mutex>` under contention, an `mpsc`
/// channel, a `Barrier`, a `Condvar`, an `RwLock`, thread-locals and
/// `available_parallelism` (a panicking thread is not tried: the profile
/// aborts on panic). Every printed value is the same on any Linux.
fn threads() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Barrier, Condvar, Mutex, RwLock, mpsc};
    use std::thread;

    // Spawn and join: each thread sums its own range.
    let handles: Vec<_> = (0..8u64)
        .map(|i| thread::spawn(move || (i * 1000..(i + 1) * 1000).sum::<u64>()))
        .collect();
    let sums: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    println!("spawn/join: total {}", sums.iter().sum::<u64>());

    let named = thread::Builder::new()
        .name("worker-7".into())
        .spawn(|| thread::current().name().map(String::from))
        .unwrap();
    println!("named thread: {:?}", named.join().unwrap());

    // Scoped threads: each doubles its own chunk of a Vec on our stack.
    let mut data: Vec<u64> = (0..4000).collect();
    thread::scope(|s| {
        for chunk in data.chunks_mut(1000) {
            s.spawn(move || chunk.iter_mut().for_each(|x| *x *= 2));
        }
    });
    println!("scoped threads: sum {}", data.iter().sum::<u64>());

    // A mutex-protected counter, 6 threads x 20000 increments.
    let counter = Arc::new(Mutex::new(0u64));
    let hs: Vec<_> = (0..6)
        .map(|_| {
            let c = counter.clone();
            thread::spawn(move || {
                for _ in 0..20_000 {
                    *c.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    println!("mutex counter: {}", *counter.lock().unwrap());

    // A channel: 4 producers, one consumer.
    let (tx, rx) = mpsc::channel::<u64>();
    for p in 0..4u64 {
        let tx = tx.clone();
        thread::spawn(move || {
            for i in 0..500 {
                tx.send(p * 10_000 + i).unwrap();
            }
        });
    }
    drop(tx);
    let received: Vec<u64> = rx.iter().collect();
    println!(
        "channel: {} messages, sum {}",
        received.len(),
        received.iter().sum::<u64>()
    );

    // A barrier: nobody passes before all 5 have arrived.
    let barrier = Arc::new(Barrier::new(5));
    let arrived = Arc::new(AtomicU64::new(0));
    let hs: Vec<_> = (0..5)
        .map(|_| {
            let (b, a) = (barrier.clone(), arrived.clone());
            thread::spawn(move || {
                a.fetch_add(1, Ordering::SeqCst);
                let leader = b.wait().is_leader();
                (a.load(Ordering::SeqCst), leader)
            })
        })
        .collect();
    let seen: Vec<(u64, bool)> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    println!(
        "barrier: every thread saw 5 arrived: {}, leaders {}",
        seen.iter().all(|s| s.0 == 5),
        seen.iter().filter(|s| s.1).count()
    );

    // A condvar hand-off: the worker waits for `ready`, answers.
    let pair = Arc::new((Mutex::new((false, 0u64)), Condvar::new()));
    let p2 = pair.clone();
    let h = thread::spawn(move || {
        let (m, cv) = &*p2;
        let mut g = cv.wait_while(m.lock().unwrap(), |s| !s.0).unwrap();
        g.1 = 4242;
        cv.notify_all();
    });
    {
        let (m, cv) = &*pair;
        m.lock().unwrap().0 = true;
        cv.notify_all();
        let g = cv.wait_while(m.lock().unwrap(), |s| s.1 == 0).unwrap();
        println!("condvar: answer {}", g.1);
    }
    h.join().unwrap();

    // An RwLock: readers in parallel, one writer.
    let table = Arc::new(RwLock::new(vec![1u64; 100]));
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let t = table.clone();
            thread::spawn(move || {
                if i == 0 {
                    t.write().unwrap().iter_mut().for_each(|x| *x = 3);
                    0
                } else {
                    let s: u64 = t.read().unwrap().iter().sum();
                    u64::from(s == 100 || s == 300)
                }
            })
        })
        .collect();
    let ok: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    println!(
        "rwlock: readers saw a whole table: {}, final sum {}",
        ok == 3,
        table.read().unwrap().iter().sum::<u64>()
    );

    // Thread-locals start fresh in each thread.
    thread_local!(static LOCAL: std::cell::Cell<u64> = const { std::cell::Cell::new(1) });
    LOCAL.with(|l| l.set(99));
    let theirs = thread::spawn(|| LOCAL.with(|l| l.get())).join().unwrap();
    println!("thread-local: main {}, new thread {}", LOCAL.with(|l| l.get()), theirs);

    println!(
        "available_parallelism is at least 1: {}",
        thread::available_parallelism().is_ok_and(|n| n.get() >= 1)
    );
}

fn main() {
    println!("rust-std: start");
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 2 && args[1] == "overflow" {
        overflow();
        println!("rust-std: done");
        return;
    }
    if args.len() == 2 && args[1] == "threads" {
        threads();
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
