//! RCU event counters and grace-period latency.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::stats::{Counters, define_stats};

define_stats! {
    /// Named RCU events.
    pub enum RcuStat {
        /// Grace periods started.
        GpStarted => "gp_started",
        /// Grace periods completed.
        GpCompleted => "gp_completed",
        /// Quiescent states that counted toward a grace period.
        QsReported => "qs_reported",
        /// Callbacks queued with call_rcu (kvfree_rcu batches included).
        CallbacksQueued => "cbs_queued",
        /// Callbacks invoked after their grace period.
        CallbacksInvoked => "cbs_invoked",
        /// synchronize_rcu calls.
        SynchronizeCalls => "synchronize",
        /// rcu_barrier calls.
        BarrierCalls => "barrier",
        /// Objects handed to kvfree_rcu.
        KvfreeObjects => "kvfree_objects",
        /// kvfree_rcu batches submitted to call_rcu (one callback each).
        KvfreeBatches => "kvfree_batches",
        /// Objects kvfree_rcu freed itself after synchronize_rcu, for want
        /// of memory for a batch block (Linux's headless fallback).
        KvfreeSync => "kvfree_sync",
        /// Sleeping or scheduling inside a read-side section (a bug, reported).
        BlockedInReader => "blocked_in_reader",
        /// A head queued twice with call_rcu (a bug, reported and ignored).
        DoubleQueue => "double_queue",
        /// Stall warnings printed.
        Stalls => "stalls",
    }
}

/// RCU counters plus grace-period durations.
pub struct RcuStats {
    counters: Counters<{ RcuStat::COUNT }>,
    gp_ns_min: AtomicU64,
    gp_ns_max: AtomicU64,
    gp_ns_sum: AtomicU64,
}

impl RcuStats {
    pub(super) const fn new() -> Self {
        Self {
            counters: Counters::new(),
            gp_ns_min: AtomicU64::new(u64::MAX),
            gp_ns_max: AtomicU64::new(0),
            gp_ns_sum: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(super) fn inc(&self, s: RcuStat) {
        self.counters.add(s as usize, 1);
    }

    #[inline]
    pub(super) fn add(&self, s: RcuStat, n: u64) {
        self.counters.add(s as usize, n);
    }

    pub(super) fn record_gp_ns(&self, ns: u64) {
        self.gp_ns_min.fetch_min(ns, Relaxed);
        self.gp_ns_max.fetch_max(ns, Relaxed);
        self.gp_ns_sum.fetch_add(ns, Relaxed);
    }

    /// The current value of a counter (racy snapshot).
    pub fn get(&self, s: RcuStat) -> u64 {
        self.counters.get(s as usize)
    }

    /// Grace-period duration (start to end) in ns: (min, mean, max), if any
    /// completed.
    pub fn gp_ns(&self) -> Option<(u64, u64, u64)> {
        let n = self.get(RcuStat::GpCompleted);
        (n > 0).then(|| {
            (
                self.gp_ns_min.load(Relaxed),
                self.gp_ns_sum.load(Relaxed) / n,
                self.gp_ns_max.load(Relaxed),
            )
        })
    }
}
