//! Loom models of the `mm` crate's concurrency protocols.
//!
//! [loom](https://docs.rs/loom) runs a closure under every interleaving of
//! its threads (up to a bound on preemptions) and under the weak-memory
//! executions the C11 model allows for its atomics, and reports data races
//! on its `UnsafeCell`s, deadlocks and panics. Each module here re-states
//! one protocol of `mm` with loom's atomics and locks, step by step and
//! ordering by ordering, citing the functions it follows; `mm` itself uses
//! `core`'s atomics and runs on the simulated machine or real CPUs, so
//! these models are copies that must be kept in step with the code (each
//! module names what it follows).
//!
//! Every model has a `Variant` (or a flag) that breaks the protocol the way
//! a plausible edit would (a `Relaxed` where the code has `Release`, a
//! missing re-check), and a test ([`expect_caught`]) showing that loom
//! fails it, for the expected reason: a model that cannot fail proves
//! nothing.
//!
//! Models:
//! - [`barn`]: the barn's racy availability checks and sheaf exchange
//!   (`mm/src/slab/sheaf.rs`);
//! - [`sheaves`]: the per-CPU sheaves' unlocked windows under the real
//!   per-CPU lock, with an interrupt and a remote flush
//!   (`mm/src/slab/sheaf.rs`);
//! - [`localtry`]: the per-CPU `LocalTryLock` with an interrupt on the
//!   holding CPU and a remote `lock_on` (`mm/src/sync.rs`);
//! - [`rcu`]: RCU's grace-period machine (`mm/src/rcu/mod.rs`);
//! - [`pt_reclaim`]: empty PTE-table reclaim against a lockless walker and
//!   `pte_offset_map_lock`'s re-check (`mm/src/pgtable/mod.rs`,
//!   `mm/src/vm/zap.rs`);
//! - [`maple`]: the maple tree's node publication (`mm/src/maple/`).
//!
//! Run them with `scripts/loom.sh` (release mode; `LOOM_MAX_PREEMPTIONS`
//! overrides each model's bound). Results are in `docs/RELIABILITY.md`.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod barn;
pub mod localtry;
pub mod maple;
pub mod pt_reclaim;
pub mod rcu;
pub mod sheaves;

use std::sync::atomic::{AtomicUsize, Ordering};

/// Every model's preemption bound: loom explores every interleaving with
/// at most this many preemptions (switches away from a thread that could
/// go on). At 5 the set runs in about 50 s in release mode (the
/// three-CPU RCU run keeps a bound of 2); the small models are exhausted
/// well below it (their execution counts stop growing), see
/// docs/RELIABILITY.md.
pub const PREEMPTIONS: usize = 5;

/// Runs `f` under loom with `preemptions` as the preemption bound (unless
/// `LOOM_MAX_PREEMPTIONS` sets another) and returns how many executions
/// loom explored; prints that figure with `name` for the record.
pub fn check<F>(name: &str, preemptions: usize, f: F) -> usize
where
    F: Fn() + Sync + Send + 'static,
{
    // Tests run in parallel threads: count this model's runs on its own.
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    let bound = builder.preemption_bound;
    let start = std::time::Instant::now();
    builder.check(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        f();
    });
    let n = runs.load(Ordering::Relaxed);
    println!(
        "loom model {name}: {n} executions, preemption bound {}, {:.2} s",
        bound.map_or("none".to_string(), |b| b.to_string()),
        start.elapsed().as_secs_f64()
    );
    n
}

/// Runs `f` with [`check`], catching a failure: `Err` holds the panic
/// message loom (or the model's own check) failed it with.
pub fn try_check<F>(name: &str, preemptions: usize, f: F) -> Result<usize, String>
where
    F: Fn() + Sync + Send + 'static,
{
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(name, preemptions, f))).map_err(
        |payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".to_string())
        },
    )
}

/// Runs a broken variant of a model with [`check`] and asserts that loom
/// fails it with a panic whose message contains one of `expected` (a loom
/// report such as "Causality violation", or the model's own check).
pub fn expect_caught<F>(name: &str, preemptions: usize, expected: &[&str], f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let message = match try_check(name, preemptions, f) {
        Ok(n) => panic!("{name}: loom did not catch the broken variant ({n} executions)"),
        Err(message) => message,
    };
    assert!(
        expected.iter().any(|e| message.contains(e)),
        "{name}: caught, but for another reason: {message}"
    );
    println!("loom model {name}: caught: {message}");
}
