//! The in-kernel benchmark harness (the `kbench` image).
//!
//! Benchmarks live next to the code they measure, each module exporting a
//! `BENCHES: &[Bench]` list; `kbench` runs the lists in order. A benchmark
//! prints its own figures (`docs/BENCHMARKS.md` records them with the
//! command that reproduces them); the harness brackets each with a
//! `bench NAME` line and its wall time, and closes with
//! `N benchmarks done` and a successful exit. Benchmarks are not timed
//! tests: they fail only by panicking (an internal check), which ends the
//! run with the usual report.
#![forbid(unsafe_code)]

use crate::println;

/// One benchmark.
pub struct Bench {
    /// Shown in the output, e.g. `kernel::sched::bench::yield_pingpong`.
    pub name: &'static str,
    pub func: fn(),
}

/// Declares a list of benchmarks from function paths: `benches![a, b::c]`.
#[macro_export]
macro_rules! benches {
    ($($f:path),* $(,)?) => {
        &[$($crate::bench::Bench { name: concat!(module_path!(), "::", stringify!($f)), func: $f }),*]
    };
}

/// Runs every benchmark of every list, then exits QEMU with success.
pub fn run(lists: &[&'static [Bench]]) -> ! {
    let total: usize = lists.iter().map(|l| l.len()).sum();
    println!("running {total} in-kernel benchmarks (QEMU TCG: compare ratios, not absolutes)");
    for bench in lists.iter().flat_map(|l| l.iter()) {
        println!("bench {}", bench.name);
        let t0 = crate::time::now_ns();
        (bench.func)();
        let ms = (crate::time::now_ns() - t0) / 1_000_000;
        println!("bench {} done in {ms} ms", bench.name);
    }
    println!("{total} benchmarks done");
    crate::qemu::exit(crate::qemu::ExitCode::Success)
}

/// Sorts `samples` and returns (min, median, max).
pub fn min_median_max(samples: &mut [u64]) -> (u64, u64, u64) {
    assert!(!samples.is_empty());
    samples.sort_unstable();
    (
        samples[0],
        samples[samples.len() / 2],
        samples[samples.len() - 1],
    )
}
