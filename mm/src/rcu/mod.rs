//! Read-copy-update (Linux's Tree RCU, reduced to one node).
//!
//! Readers mark read-side critical sections with [`Rcu::read_lock`]; they
//! never block and never write shared state beyond their own CPU's nesting
//! counter. Updaters publish a new version, then wait for a *grace period*
//! ([`Rcu::synchronize_rcu`]) or queue a callback ([`Rcu::call_rcu`]) before
//! freeing the old one: a grace period ends only when every online CPU has
//! passed a *quiescent state* since it began, which proves that every
//! reader that could have seen the old version has finished.
//!
//! Quiescent states (QS): a context switch ([`Rcu::note_context_switch`]),
//! the idle loop, return to user mode, and a timer tick that interrupted
//! code outside any read-side section ([`Rcu::sched_clock_irq`]).
//!
//! ```text
//!  gp_seq:  4 ──start──▶ 5 ──last CPU reports QS──▶ 6 ──start──▶ 7 ...
//!           idle         in progress (low bit set)    idle
//!
//!  call_rcu at gp_seq 4 waits for 6; at gp_seq 5 it waits for 8 (the
//!  grace period in progress may have begun after the caller's readers).
//! ```
//!
//! # Invariants
//!
//! - R1: while a grace period is in progress (`gp_seq` odd), `qs_mask` has
//!   the bit of every online CPU that has not reported a QS since it began.
//! - R2: a CPU reports a QS only at a point where its read-side nesting is
//!   zero, so all its earlier readers have ended.
//! - R3: a callback queued when `gp_seq` was `s` runs only once `gp_seq`
//!   reaches `snap(s)`, the end of a grace period that began after it was
//!   queued.
//!
//! # Locking
//!
//! 1. a CPU's callback list lock (`RcuData::cblist`), IRQs off;
//! 2. the grace-period lock (`Rcu::gp`), IRQs off: starts and ends grace
//!    periods, writes `qs_mask`, the online mask and `gp_seq`.
//!
//! Both are taken with interrupts disabled, because the tick reports QS and
//! `call_rcu` may come from interrupt context.
//!
//! # Context
//!
//! `read_lock`, `call_rcu`, `kvfree_rcu`, `sched_clock_irq`: any context.
//! `synchronize_rcu`, `rcu_barrier`: may block; never inside a read-side
//! section (that is reported as a bug), never from interrupt context.
//! `rcu_core`: task context (the kernel's RCU thread, or a test thread).
//!
//! # Ordering
//!
//! As Linux's `rcu_seq_snap()`, `call_rcu` and `synchronize_rcu` issue a
//! full fence before reading `gp_seq`, and a grace-period start issues one
//! after advancing it, so that an updater's unpublishing store is visible to
//! every reader that begins after the grace period it waits for has begun.
//! QS reports go through the grace-period lock (release), after the
//! reporting CPU's read-side accesses in program order.

mod head;
mod kvfree;
mod stats;

#[cfg(test)]
mod tests;

use alloc::boxed::Box;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering, compiler_fence, fence};

pub use head::{RcuCallback, RcuHead};
pub use stats::{RcuStat, RcuStats};

use crate::addr::CpuId;
use crate::platform::{IrqGuard, Platform};
use crate::sync::SpinLockIrq;
use head::CbList;
use kvfree::KvfreeCpu;

/// The most CPUs RCU tracks (one bit each in `qs_mask`).
pub const RCU_MAX_CPUS: usize = 64;

/// Default time after which a grace period still waiting for a CPU prints
/// a stall warning (Linux: `CONFIG_RCU_CPU_STALL_TIMEOUT`, 21 s).
pub const RCU_STALL_TIMEOUT_NS: u64 = 21_000_000_000;

/// The grace period that must end before something queued at `seq` may
/// run (`rcu_seq_snap`): the next one if idle, the one after the current
/// one if a grace period is in progress.
const fn seq_snap(seq: u64) -> u64 {
    (seq + 3) & !1
}

const fn seq_in_progress(seq: u64) -> bool {
    seq & 1 == 1
}

/// Grace-period state under the lock.
struct GpState {
    /// CPUs that take part in grace periods.
    online: u64,
    /// When the current grace period began (ns).
    start_ns: u64,
    /// Whether the current grace period already printed a stall warning.
    stall_warned: bool,
}

/// Per-CPU RCU state (Linux's `struct rcu_data`).
struct RcuData {
    /// Read-side nesting depth. Write: this CPU only (with preemption off).
    /// Read: this CPU, including its interrupt handlers.
    nesting: AtomicU32,
    /// Queued callbacks (lock 1).
    cblist: SpinLockIrq<CbList>,
    /// Callbacks ever queued / invoked on this CPU, for `rcu_barrier`.
    /// Write: under `cblist` (queued) or after invoking (invoked). Read:
    /// Acquire in `rcu_barrier`, pairing with the Release increments.
    nr_queued: AtomicU64,
    nr_invoked: AtomicU64,
    /// kvfree_rcu batch of this CPU.
    kvfree: SpinLockIrq<KvfreeCpu>,
}

/// RCU for one machine.
pub struct Rcu<P: Platform> {
    platform: P,
    /// Grace-period sequence number; odd while a grace period runs.
    /// Write: `gp` lock, Release. Read: Acquire.
    gp_seq: AtomicU64,
    /// The highest `gp_seq` some waiter or callback needs. Write: fetch_max.
    gp_seq_needed: AtomicU64,
    /// CPUs that still owe the current grace period a QS (R1). Write: `gp`
    /// lock. Racy read: Relaxed, to skip the lock when this CPU owes nothing.
    qs_mask: AtomicU64,
    gp: SpinLockIrq<GpState>,
    cpus: Box<[RcuData]>,
    stats: RcuStats,
    /// Stall warning threshold in ns.
    stall_timeout_ns: AtomicU64,
    /// kvfree_rcu batches older than this are handed to call_rcu at the tick.
    kvfree_drain_ns: AtomicU64,
}

/// Proof of being inside a read-side critical section; ends it on drop.
/// Not `Send`: it must end on the CPU where it began.
#[must_use = "the read-side section ends when the guard is dropped"]
pub struct RcuReadGuard<'a, P: Platform> {
    rcu: &'a Rcu<P>,
    cpu: CpuId,
    _not_send: PhantomData<*const ()>,
}

impl<P: Platform> Drop for RcuReadGuard<'_, P> {
    fn drop(&mut self) {
        compiler_fence(Ordering::SeqCst);
        let old = self.rcu.cpus[self.cpu.index()]
            .nesting
            .fetch_sub(1, Ordering::Relaxed);
        debug_assert!(old > 0);
        self.rcu.platform.preempt_enable();
    }
}

impl<P: Platform> Rcu<P> {
    /// RCU for `platform`, with every CPU `0..nr_cpus()` online.
    pub fn new(platform: P) -> Self {
        let nr_cpus = platform.nr_cpus();
        assert!(
            (1..=RCU_MAX_CPUS).contains(&nr_cpus),
            "RCU supports 1..=64 CPUs, not {nr_cpus}"
        );
        let online = if nr_cpus == 64 {
            u64::MAX
        } else {
            (1u64 << nr_cpus) - 1
        };
        Self {
            platform,
            gp_seq: AtomicU64::new(0),
            gp_seq_needed: AtomicU64::new(0),
            qs_mask: AtomicU64::new(0),
            gp: SpinLockIrq::new(GpState {
                online,
                start_ns: 0,
                stall_warned: false,
            }),
            cpus: (0..nr_cpus)
                .map(|_| RcuData {
                    nesting: AtomicU32::new(0),
                    cblist: SpinLockIrq::new(CbList::new()),
                    nr_queued: AtomicU64::new(0),
                    nr_invoked: AtomicU64::new(0),
                    kvfree: SpinLockIrq::new(KvfreeCpu::new()),
                })
                .collect(),
            stats: RcuStats::new(),
            stall_timeout_ns: AtomicU64::new(RCU_STALL_TIMEOUT_NS),
            kvfree_drain_ns: AtomicU64::new(kvfree::KFREE_DRAIN_NS),
        }
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The event counters.
    pub fn stats(&self) -> &RcuStats {
        &self.stats
    }

    /// The current grace-period sequence number.
    pub fn gp_seq(&self) -> u64 {
        self.gp_seq.load(Ordering::Acquire)
    }

    /// Sets the stall-warning threshold.
    pub fn set_stall_timeout_ns(&self, ns: u64) {
        self.stall_timeout_ns.store(ns, Ordering::Relaxed);
    }

    /// Sets how long a kvfree_rcu batch may wait before the tick submits it.
    pub fn set_kvfree_drain_ns(&self, ns: u64) {
        self.kvfree_drain_ns.store(ns, Ordering::Relaxed);
    }

    fn this_cpu(&self) -> &RcuData {
        &self.cpus[self.platform.cpu_id().index()]
    }

    /// Enters a read-side critical section (`rcu_read_lock`); nests.
    /// Disables preemption until the guard is dropped.
    #[inline]
    pub fn read_lock(&self) -> RcuReadGuard<'_, P> {
        self.platform.preempt_disable();
        let cpu = self.platform.cpu_id();
        self.cpus[cpu.index()]
            .nesting
            .fetch_add(1, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        RcuReadGuard {
            rcu: self,
            cpu,
            _not_send: PhantomData,
        }
    }

    /// Whether this CPU is inside a read-side critical section.
    pub fn in_read_section(&self) -> bool {
        self.this_cpu().nesting.load(Ordering::Relaxed) > 0
    }

    /// Reports sleeping inside a read-side section, loudly
    /// (`might_sleep` / `rcu_note_context_switch` checks). True if it did.
    #[track_caller]
    pub fn might_sleep(&self) -> bool {
        let nesting = self.this_cpu().nesting.load(Ordering::Relaxed);
        if nesting == 0 {
            return false;
        }
        self.stats.inc(RcuStat::BlockedInReader);
        log::error!(
            "BUG: sleeping or scheduling inside an RCU read-side critical section \
             (CPU {}, nesting {nesting}) at {}",
            self.platform.cpu_id().index(),
            core::panic::Location::caller()
        );
        true
    }

    /// A context switch on this CPU: a quiescent state, unless it happens
    /// inside a read-side section, which is a bug and is reported.
    #[track_caller]
    pub fn note_context_switch(&self) {
        if !self.might_sleep() {
            self.report_qs(self.platform.cpu_id());
        }
    }

    /// The idle loop, or return to user mode: a quiescent state.
    pub fn note_quiescent_state(&self) {
        if !self.in_read_section() {
            self.report_qs(self.platform.cpu_id());
        }
    }

    /// The timer tick on this CPU (`rcu_sched_clock_irq`): a QS if the tick
    /// interrupted code outside a read-side section; starts a needed grace
    /// period, warns about stalls, submits old kvfree_rcu batches. Returns
    /// whether this CPU has callbacks ready to invoke with [`Rcu::rcu_core`].
    pub fn sched_clock_irq(&self) -> bool {
        let cpu = self.platform.cpu_id();
        let data = &self.cpus[cpu.index()];
        if data.nesting.load(Ordering::Relaxed) == 0 {
            self.report_qs(cpu);
        }
        self.kvfree_monitor(cpu);
        self.start_gp_if_needed();
        self.check_stall();
        self.has_ready_callbacks(cpu)
    }

    /// Whether `cpu` has callbacks whose grace period is over.
    pub fn has_ready_callbacks(&self, cpu: CpuId) -> bool {
        let seq = self.gp_seq();
        self.cpus[cpu.index()]
            .cblist
            .lock_irqsave(&self.platform)
            .first_ready(|need| seq >= need)
    }

    /// Invokes this CPU's callbacks whose grace period is over, and those
    /// of offline CPUs (`rcu_core` / `rcu_do_batch`). Task context.
    pub fn rcu_core(&self) {
        self.invoke_ready(self.platform.cpu_id());
        let online = self.gp.lock_irqsave(&self.platform).online;
        for cpu in 0..self.cpus.len() {
            if online & (1 << cpu) == 0 {
                self.invoke_ready(CpuId::new(cpu as u32));
            }
        }
    }

    fn invoke_ready(&self, cpu: CpuId) {
        let seq = self.gp_seq();
        let data = &self.cpus[cpu.index()];
        let ready = data
            .cblist
            .lock_irqsave(&self.platform)
            .take_ready(|need| seq >= need);
        let n = ready.len() as u64;
        if n > 0 {
            ready.invoke();
            data.nr_invoked.fetch_add(n, Ordering::Release);
            self.stats.add(RcuStat::CallbacksInvoked, n);
            self.platform.wake_waiters();
        }
    }

    /// Queues `func(head)` to run after a grace period (`call_rcu`).
    ///
    /// # Safety
    ///
    /// `head` points to a valid [`RcuHead`] that stays valid and is not moved
    /// until `func` has run; `func` may then free its enclosing object.
    #[track_caller]
    pub unsafe fn call_rcu(&self, head: *mut RcuHead, func: RcuCallback) {
        // Interrupts off before choosing this CPU's list.
        let irq = IrqGuard::new(&self.platform);
        let data = self.this_cpu();
        let mut list = data.cblist.lock_irqs_off(&irq);
        // The snapshot is taken under the list lock, as Linux assigns
        // `gp_seq` to new callbacks under the CPU's lock: taken before it,
        // a task preempted in between could queue an older snapshot behind
        // a newer one that another task queued meanwhile (H2).
        fence(Ordering::SeqCst);
        let need = seq_snap(self.gp_seq.load(Ordering::Acquire));
        // SAFETY: forwarded from the caller's contract; `need` is not below
        // earlier entries because gp_seq never decreases and the snapshot
        // was taken holding the list lock with interrupts off (H2).
        if !unsafe { list.push(head, func, need) } {
            drop(list);
            self.stats.inc(RcuStat::DoubleQueue);
            log::error!(
                "BUG: call_rcu on an rcu_head that is already queued ({head:p}) from {}; ignored",
                core::panic::Location::caller()
            );
            return;
        }
        data.nr_queued.fetch_add(1, Ordering::Release);
        drop(list);
        self.stats.inc(RcuStat::CallbacksQueued);
        self.gp_seq_needed.fetch_max(need, Ordering::AcqRel);
    }

    /// Waits for a full grace period (`synchronize_rcu`). Must not be
    /// called inside a read-side section (reported, then it returns at once
    /// rather than deadlock) or from interrupt context.
    #[track_caller]
    pub fn synchronize_rcu(&self) {
        if self.might_sleep() {
            return;
        }
        self.stats.inc(RcuStat::SynchronizeCalls);
        fence(Ordering::SeqCst);
        let need = seq_snap(self.gp_seq.load(Ordering::Acquire));
        self.gp_seq_needed.fetch_max(need, Ordering::AcqRel);
        let done = || self.gp_seq.load(Ordering::Acquire) >= need;
        while !done() {
            // We are about to block: a quiescent state for this CPU.
            self.report_qs(self.platform.cpu_id());
            self.start_gp_if_needed();
            self.platform.wait(&done);
        }
    }

    /// Waits until every callback queued before the call has been invoked
    /// (`rcu_barrier`). Callbacks queued meanwhile are not waited for.
    pub fn rcu_barrier(&self) {
        if self.might_sleep() {
            return;
        }
        self.stats.inc(RcuStat::BarrierCalls);
        let targets: alloc::vec::Vec<u64> = self
            .cpus
            .iter()
            .map(|d| d.nr_queued.load(Ordering::Acquire))
            .collect();
        let done = || {
            self.cpus
                .iter()
                .zip(&targets)
                .all(|(d, &t)| d.nr_invoked.load(Ordering::Acquire) >= t)
        };
        while !done() {
            self.report_qs(self.platform.cpu_id());
            self.start_gp_if_needed();
            self.rcu_core();
            if !done() {
                self.platform.wait(&done);
            }
        }
    }

    /// Takes `cpu` out of grace-period tracking (CPU hotplug, or a test
    /// thread that stops): it no longer holds up grace periods. Its queued
    /// callbacks stay and are invoked by `rcu_core` on any CPU.
    pub fn cpu_offline(&self, cpu: CpuId) {
        let ended = {
            let mut gp = self.gp.lock_irqsave(&self.platform);
            gp.online &= !(1 << cpu.index());
            self.clear_qs_locked(&mut gp, cpu)
        };
        self.gp_ended(ended);
    }

    /// Brings `cpu` (back) into grace-period tracking, from the next grace
    /// period on: it cannot hold readers older than that.
    pub fn cpu_online(&self, cpu: CpuId) {
        assert!(cpu.index() < self.cpus.len());
        self.gp.lock_irqsave(&self.platform).online |= 1 << cpu.index();
    }

    /// Reports a quiescent state of `cpu` (R2 is the caller's duty).
    fn report_qs(&self, cpu: CpuId) {
        let bit = 1u64 << cpu.index();
        if self.qs_mask.load(Ordering::Relaxed) & bit == 0 {
            return;
        }
        fence(Ordering::SeqCst);
        let ended = {
            let mut gp = self.gp.lock_irqsave(&self.platform);
            self.clear_qs_locked(&mut gp, cpu)
        };
        self.gp_ended(ended);
    }

    /// Clears `cpu`'s bit; true if that ended the grace period.
    fn clear_qs_locked(&self, gp: &mut GpState, cpu: CpuId) -> bool {
        let bit = 1u64 << cpu.index();
        let mask = self.qs_mask.load(Ordering::Relaxed);
        if !seq_in_progress(self.gp_seq.load(Ordering::Relaxed)) || mask & bit == 0 {
            return false;
        }
        self.stats.inc(RcuStat::QsReported);
        let mask = mask & !bit;
        self.qs_mask.store(mask, Ordering::Relaxed);
        mask == 0 && {
            self.end_gp_locked(gp);
            true
        }
    }

    /// After a grace period ended: wake the waiters, outside the
    /// grace-period lock (the platform's wake-up takes scheduler locks that
    /// may be held around a context switch, which reports QS under ours).
    fn gp_ended(&self, ended: bool) {
        if ended {
            self.platform.wake_waiters();
        }
    }

    /// Starts a grace period if one is needed and none runs.
    fn start_gp_if_needed(&self) {
        let seq = self.gp_seq.load(Ordering::Acquire);
        if seq_in_progress(seq) || self.gp_seq_needed.load(Ordering::Acquire) <= seq {
            return;
        }
        let ended = {
            let mut gp = self.gp.lock_irqsave(&self.platform);
            self.start_gp_locked(&mut gp)
        };
        self.gp_ended(ended);
    }

    /// Starts a grace period if needed; true if it ended at once (no
    /// online CPU to wait for).
    fn start_gp_locked(&self, gp: &mut GpState) -> bool {
        let seq = self.gp_seq.load(Ordering::Relaxed);
        if seq_in_progress(seq) || self.gp_seq_needed.load(Ordering::Acquire) <= seq {
            return false;
        }
        self.gp_seq.store(seq + 1, Ordering::Release);
        fence(Ordering::SeqCst);
        self.stats.inc(RcuStat::GpStarted);
        gp.start_ns = self.platform.now_ns();
        gp.stall_warned = false;
        self.qs_mask.store(gp.online, Ordering::Relaxed);
        gp.online == 0 && {
            self.end_gp_locked(gp);
            true
        }
    }

    fn end_gp_locked(&self, gp: &mut GpState) {
        let seq = self.gp_seq.load(Ordering::Relaxed);
        debug_assert!(seq_in_progress(seq));
        self.gp_seq.store(seq + 1, Ordering::Release);
        self.stats.inc(RcuStat::GpCompleted);
        let ns = self.platform.now_ns().saturating_sub(gp.start_ns);
        self.stats.record_gp_ns(ns);
        // Someone may already wait for the next one.
        self.start_gp_locked(gp);
    }

    /// Prints a stall warning once per grace period that has waited longer
    /// than the threshold, naming the CPUs that hold it up.
    fn check_stall(&self) {
        let seq = self.gp_seq.load(Ordering::Acquire);
        if !seq_in_progress(seq) {
            return;
        }
        let Some(mut gp) = self.gp.try_lock_irqsave(&self.platform) else {
            return;
        };
        let waited = self.platform.now_ns().saturating_sub(gp.start_ns);
        if gp.stall_warned || waited < self.stall_timeout_ns.load(Ordering::Relaxed) {
            return;
        }
        gp.stall_warned = true;
        self.stats.inc(RcuStat::Stalls);
        let mask = self.qs_mask.load(Ordering::Relaxed);
        log::warn!(
            "rcu: INFO: rcu_sched detected stalls on CPUs: {} (grace period {}, waited {} ms; \
             a CPU looping without a quiescent state, or inside rcu_read_lock)",
            CpuList(mask),
            seq,
            waited / 1_000_000
        );
    }
}

/// Formats a CPU mask as `{ 0 2 5 }`.
struct CpuList(u64);

impl core::fmt::Display for CpuList {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{{")?;
        for cpu in 0..64 {
            if self.0 & (1 << cpu) != 0 {
                write!(f, " {cpu}")?;
            }
        }
        write!(f, " }}")
    }
}

/// A pointer published under RCU (`__rcu` with `rcu_assign_pointer` /
/// `rcu_dereference`).
pub struct RcuPtr<T> {
    ptr: AtomicPtr<T>,
}

impl<T> RcuPtr<T> {
    /// A pointer initialised to `p`.
    pub const fn new(p: *mut T) -> Self {
        Self {
            ptr: AtomicPtr::new(p),
        }
    }

    /// Reads the pointer inside a read-side section (`rcu_dereference`).
    /// Acquire: pairs with the Release of [`RcuPtr::assign`], so the
    /// pointee's initialisation is visible.
    #[inline]
    pub fn load<P: Platform>(&self, _guard: &RcuReadGuard<'_, P>) -> *mut T {
        self.ptr.load(Ordering::Acquire)
    }

    /// Publishes `p` (`rcu_assign_pointer`) and returns the old pointer,
    /// which readers may still hold until a grace period has passed.
    #[inline]
    pub fn assign(&self, p: *mut T) -> *mut T {
        self.ptr.swap(p, Ordering::AcqRel)
    }

    /// Reads the pointer where updates are excluded by the caller's lock
    /// (`rcu_dereference_protected`).
    pub fn load_protected(&self) -> *mut T {
        self.ptr.load(Ordering::Acquire)
    }
}
