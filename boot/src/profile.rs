//! The host side of the kernel's sampling profiler (`cargo run --
//! --profile`, kernel `profile=N`; `kernel/src/time/profile.rs`): reads
//! the `profile:` lines the kernel prints before it powers off,
//! symbolizes their addresses with the kernel ELF's symbol table (through
//! `llvm-nm` from the toolchain's `llvm-tools`, or one on `PATH`), and
//! prints a flat profile (self and total samples per function) and the
//! commonest call stacks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the kernel's dump said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Samples {
    /// The sampling rate.
    pub hz: u64,
    /// Samples of kernel code, and interrupts that came from user mode.
    pub nr_kernel: u64,
    pub nr_user: u64,
    /// Samples that found the kernel's buffer full.
    pub nr_lost: u64,
    /// Each distinct stack (ELF addresses, innermost first) and its count.
    pub stacks: Vec<(u64, Vec<u64>)>,
}

/// Parses the `profile:` lines of a serial log; `None` without a dump.
pub fn parse(serial: &str) -> Option<Samples> {
    let mut s = Samples::default();
    let mut begun = false;
    for line in serial.lines() {
        let Some(rest) = line.trim_end().strip_prefix("profile: ") else {
            continue;
        };
        if let Some(fields) = rest.strip_prefix("begin ") {
            begun = true;
            for f in fields.split_whitespace() {
                let (k, v) = f.split_once('=')?;
                let v: u64 = v.parse().ok()?;
                match k {
                    "hz" => s.hz = v,
                    "samples" => s.nr_kernel = v,
                    "lost" => s.nr_lost = v,
                    "user" => s.nr_user = v,
                    _ => {}
                }
            }
        } else if rest == "end" {
            return begun.then_some(s);
        } else if begun {
            let mut words = rest.split_whitespace();
            let Some(Ok(count)) = words.next().map(str::parse::<u64>) else {
                continue;
            };
            let addrs = words.filter_map(|w| u64::from_str_radix(w, 16).ok());
            s.stacks.push((count, addrs.collect()));
        }
    }
    None
}

/// A sorted symbol table: (start address, name).
pub struct Symbols(Vec<(u64, String)>);

impl Symbols {
    /// The ELF's function symbols, read with `llvm-nm`.
    pub fn read(elf: &Path) -> Result<Self, String> {
        let nm = llvm_nm().ok_or("no llvm-nm (rustup component add llvm-tools)")?;
        let out = Command::new(&nm)
            .args(["--defined-only", "--demangle", "--numeric-sort"])
            .arg(elf)
            .output()
            .map_err(|e| format!("{}: {e}", nm.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}",
                nm.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.splitn(3, ' ');
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let kind = it.next()?;
                let name = it.next()?;
                matches!(kind, "t" | "T" | "W" | "w").then(|| (addr, strip_hash(name)))
            })
            .collect();
        syms.sort_by_key(|s| s.0);
        Ok(Self(syms))
    }

    /// The function `addr` lies in (the last symbol at or below it).
    pub fn name(&self, addr: u64) -> &str {
        match self.0.partition_point(|s| s.0 <= addr) {
            0 => "?",
            i => &self.0[i - 1].1,
        }
    }
}

/// `foo::bar::h0123456789abcdef` -> `foo::bar`, without LLVM's
/// `(.llvm.123)` suffix, and the kernel's platform type parameter as `P`.
fn strip_hash(name: &str) -> String {
    let name = match name.rsplit_once(" (.llvm.") {
        Some((head, _)) => head,
        None => name,
    };
    let name = name.replace("kernel::platform::KernelPlatform", "P");
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head.to_string()
        }
        _ => name.clone(),
    }
}

/// The toolchain's `llvm-nm` (`llvm-tools`), else one on `PATH`.
fn llvm_nm() -> Option<PathBuf> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(dir) = sysroot.map(|s| s.join("lib/rustlib")) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let nm = entry.path().join("bin/llvm-nm");
            if nm.is_file() {
                return Some(nm);
            }
        }
    }
    Command::new("llvm-nm")
        .arg("--version")
        .output()
        .ok()
        .map(|_| PathBuf::from("llvm-nm"))
}

/// The report: a header, the flat profile (top `nr_rows` functions by
/// self samples, with their total: samples with the function anywhere on
/// the stack) and the `nr_rows` commonest stacks, symbolized.
pub fn report(s: &Samples, syms: &Symbols, nr_rows: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let total = s.nr_kernel + s.nr_user;
    let pct = |n: u64| 100.0 * n as f64 / total.max(1) as f64;
    let _ = writeln!(
        out,
        "profile: {} samples at {} Hz: {} kernel, {} user ({:.1} %), {} lost",
        total,
        s.hz,
        s.nr_kernel,
        s.nr_user,
        pct(s.nr_user),
        s.nr_lost
    );
    let mut own: HashMap<&str, u64> = HashMap::new();
    let mut all: HashMap<&str, u64> = HashMap::new();
    let mut by_stack: HashMap<Vec<&str>, u64> = HashMap::new();
    for (count, addrs) in &s.stacks {
        let names: Vec<&str> = addrs
            .iter()
            .enumerate()
            // A return address points after its call: look up the call.
            .map(|(i, &a)| syms.name(if i == 0 { a } else { a - 1 }))
            .collect();
        if let Some(first) = names.first() {
            *own.entry(first).or_default() += count;
        }
        let mut seen: Vec<&str> = Vec::new();
        for n in &names {
            if !seen.contains(n) {
                seen.push(n);
                *all.entry(n).or_default() += count;
            }
        }
        // Runs of one function (recursion, or several frames inlined into
        // one symbol) print once.
        let mut stack = names.clone();
        stack.dedup();
        *by_stack.entry(stack).or_default() += count;
    }
    let mut flat: Vec<(&str, u64)> = own.into_iter().collect();
    flat.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let _ = writeln!(
        out,
        "\n  self %   total %  function (self: the sampled RIP)"
    );
    for (name, n) in flat.iter().take(nr_rows) {
        let _ = writeln!(
            out,
            "  {:6.2}  {:7.2}  {}",
            pct(*n),
            pct(all.get(name).copied().unwrap_or(0)),
            name
        );
    }
    let mut stacks: Vec<(Vec<&str>, u64)> = by_stack.into_iter().collect();
    stacks.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let _ = writeln!(out, "\n  stacks (innermost first):");
    for (stack, n) in stacks.iter().take(nr_rows) {
        let _ = writeln!(out, "  {:6.2}  {}", pct(*n), stack.join(" <- "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "hello\nprofile: begin hz=1000 samples=3 lost=0 user=1\n\
        profile: 2 20 110\nprofile: 1 120\nprofile: end\nbye\n";

    #[test]
    fn parses_the_dump() {
        let s = parse(LOG).expect("a dump");
        assert_eq!((s.hz, s.nr_kernel, s.nr_user, s.nr_lost), (1000, 3, 1, 0));
        assert_eq!(s.stacks, vec![(2, vec![0x20, 0x110]), (1, vec![0x120])]);
        assert_eq!(parse("profile: begin hz=1 samples=0 lost=0 user=0\n"), None);
    }

    #[test]
    fn symbolizes_self_and_total() {
        let syms = Symbols(vec![(0x10, "leaf".into()), (0x100, "caller".into())]);
        let s = parse(LOG).unwrap();
        let r = report(&s, &syms, 10);
        assert!(
            r.contains("4 samples at 1000 Hz: 3 kernel, 1 user (25.0 %)"),
            "{r}"
        );
        // leaf: 2 of 4 self; caller: 1 self, 3 total.
        assert!(r.contains("   50.00    50.00  leaf"), "{r}");
        assert!(r.contains("   25.00    75.00  caller"), "{r}");
        assert!(r.contains("   50.00  leaf <- caller"), "{r}");
        assert_eq!(strip_hash("a::b::h0123456789abcdef"), "a::b");
        assert_eq!(strip_hash("a::hello"), "a::hello");
        assert_eq!(
            strip_hash("<a::B<kernel::platform::KernelPlatform>>::f (.llvm.123)"),
            "<a::B<P>>::f"
        );
    }
}
