//! Model 3: RCU's grace-period state machine.
//!
//! Follows `mm/src/rcu/mod.rs` (`Rcu`), function by function:
//! - `read_lock` / `RcuReadGuard::drop`: the CPU's `nesting`,
//!   `fetch_add`/`fetch_sub` `Relaxed` (the `compiler_fence`s around them
//!   are program order, which loom keeps);
//! - `RcuPtr::assign` (`swap`, `AcqRel`) and `RcuPtr::load` (`Acquire`);
//! - `sched_clock_irq`: a QS if `nesting == 0`, then
//!   `start_gp_if_needed`;
//! - `report_qs`: racy `qs_mask` check (`Relaxed`), `fence(SeqCst)`, the
//!   `gp` lock, `clear_qs_locked`, which ends the grace period when the
//!   mask empties (`end_gp_locked`: `gp_seq` odd to even, `Release`, then
//!   `start_gp_locked` for a waiter of the next one);
//! - `start_gp_if_needed` / `start_gp_locked`: `gp_seq` even to odd
//!   (`Release`), `fence(SeqCst)`, `qs_mask = online`;
//! - `call_rcu`: `fence(SeqCst)`, `need = seq_snap(gp_seq)` (`Acquire`),
//!   the CPU's callback list under its lock, `gp_seq_needed.fetch_max`;
//! - `invoke_ready`: `gp_seq` (`Acquire`), the callbacks whose `need` it
//!   reached, taken under the list lock and invoked;
//! - `cpu_offline`: the CPU leaves `online` and its `qs_mask` bit is
//!   cleared under the `gp` lock.
//!
//! Scenario: CPU 0 is a reader. Its first read-side section loads the
//! published pointer and reads the object twice, with a timer tick in
//! between (no QS: nesting is 1, but the tick may start a grace period);
//! a tick between the sections reports a QS; the second section loads the
//! pointer again and reads; then the CPU goes offline (so that grace
//! periods stop waiting for it: the model has no endless tick). CPU 1 is
//! the updater: it initialises a new object, publishes it, and either
//! queues the old one with `call_rcu` and loops on its own tick (QS,
//! start) and `invoke_ready` until the callback has freed it, or waits in
//! `synchronize_rcu` (whose wait reports this CPU's QS and starts the
//! grace period, `Platform::wait` being a spin here) and frees it. A grace
//! period is already wanted at the start (`gp_seq_needed = 2`, an earlier
//! callback), so one may be in progress when `call_rcu` snapshots.
//!
//! Objects live in loom `UnsafeCell`s: freeing writes a poison value, so
//! a reader's read either is ordered before the free (fine), or races with
//! it (loom: "Causality violation"), or sees the poison ("use after
//! free"). Checked: neither happens, and the callback ran.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
use loom::sync::{Arc, Mutex};

const POISON: u64 = 0x6b6b_6b6b;

/// How the model deviates from the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Faithful,
    /// `seq_snap` waits only for the end of the grace period in progress,
    /// which may have begun before the caller's readers: `(s + 1) & !1`.
    SnapCurrentGp,
    /// `call_rcu` (or `synchronize_rcu`) without its `fence(SeqCst)`
    /// before reading `gp_seq`.
    NoFenceInCallRcu,
    /// `end_gp_locked` stores the new `gp_seq` `Relaxed`.
    RelaxedGpEnd,
    /// The tick reports a QS without checking `nesting`.
    QsInsideReader,
}

/// `rcu_seq_snap`.
fn seq_snap(seq: u64, variant: Variant) -> u64 {
    if variant == Variant::SnapCurrentGp {
        (seq + 1) & !1
    } else {
        (seq + 3) & !1
    }
}

fn seq_in_progress(seq: u64) -> bool {
    seq & 1 == 1
}

struct GpState {
    online: u64,
}

struct Callback {
    need: u64,
    /// The object to free.
    obj: usize,
}

/// `struct RcuData`, what the model needs of it.
struct RcuData {
    nesting: AtomicU32,
    cblist: Mutex<Vec<Callback>>,
}

/// `Rcu`, with the objects it protects.
pub struct Rcu {
    gp_seq: AtomicU64,
    gp_seq_needed: AtomicU64,
    qs_mask: AtomicU64,
    gp: Mutex<GpState>,
    cpus: [RcuData; 3],
    variant: Variant,
    /// The published pointer (`RcuPtr`): an index into `objects`.
    ptr: AtomicUsize,
    objects: [UnsafeCell<u64>; 2],
}

impl Rcu {
    /// `online`: the CPUs taking part in grace periods.
    fn new(variant: Variant, online: u64) -> Self {
        let data = || RcuData {
            nesting: AtomicU32::new(0),
            cblist: Mutex::new(Vec::new()),
        };
        Rcu {
            gp_seq: AtomicU64::new(0),
            // An earlier callback wants the first grace period.
            gp_seq_needed: AtomicU64::new(2),
            qs_mask: AtomicU64::new(0),
            gp: Mutex::new(GpState { online }),
            cpus: [data(), data(), data()],
            variant,
            ptr: AtomicUsize::new(0),
            objects: [UnsafeCell::new(1), UnsafeCell::new(0)],
        }
    }

    fn read_lock(&self, cpu: usize) {
        self.cpus[cpu].nesting.fetch_add(1, Ordering::Relaxed);
    }

    fn read_unlock(&self, cpu: usize) {
        self.cpus[cpu].nesting.fetch_sub(1, Ordering::Relaxed);
    }

    /// `rcu_dereference`.
    fn dereference(&self) -> usize {
        self.ptr.load(Ordering::Acquire)
    }

    /// A read of object `p` inside a read-side section.
    fn read_object(&self, p: usize) -> u64 {
        // SAFETY: the object is published (its initialisation happened
        // before the Release of the pointer's assign) and freed only
        // after a grace period, which is what this model checks: loom
        // reports the read if a free is not ordered after it.
        let v = self.objects[p].with(|v| unsafe { *v });
        assert_ne!(v, POISON, "use after free: a reader saw a freed object");
        v
    }

    /// `sched_clock_irq` on `cpu` (without kvfree and stall checks).
    fn sched_clock_irq(&self, cpu: usize) {
        if self.variant == Variant::QsInsideReader
            || self.cpus[cpu].nesting.load(Ordering::Relaxed) == 0
        {
            self.report_qs(cpu);
        }
        self.start_gp_if_needed();
    }

    /// `report_qs`.
    fn report_qs(&self, cpu: usize) {
        let bit = 1u64 << cpu;
        if self.qs_mask.load(Ordering::Relaxed) & bit == 0 {
            return;
        }
        fence(Ordering::SeqCst);
        let mut gp = self.gp.lock().unwrap();
        self.clear_qs_locked(&mut gp, cpu);
    }

    /// `clear_qs_locked`.
    fn clear_qs_locked(&self, gp: &mut GpState, cpu: usize) -> bool {
        let bit = 1u64 << cpu;
        let mask = self.qs_mask.load(Ordering::Relaxed);
        if !seq_in_progress(self.gp_seq.load(Ordering::Relaxed)) || mask & bit == 0 {
            return false;
        }
        let mask = mask & !bit;
        self.qs_mask.store(mask, Ordering::Relaxed);
        mask == 0 && {
            self.end_gp_locked(gp);
            true
        }
    }

    /// `start_gp_if_needed`.
    fn start_gp_if_needed(&self) {
        let seq = self.gp_seq.load(Ordering::Acquire);
        if seq_in_progress(seq) || self.gp_seq_needed.load(Ordering::Acquire) <= seq {
            return;
        }
        let mut gp = self.gp.lock().unwrap();
        self.start_gp_locked(&mut gp);
    }

    /// `start_gp_locked`.
    fn start_gp_locked(&self, gp: &mut GpState) -> bool {
        let seq = self.gp_seq.load(Ordering::Relaxed);
        if seq_in_progress(seq) || self.gp_seq_needed.load(Ordering::Acquire) <= seq {
            return false;
        }
        self.gp_seq.store(seq + 1, Ordering::Release);
        fence(Ordering::SeqCst);
        self.qs_mask.store(gp.online, Ordering::Relaxed);
        gp.online == 0 && {
            self.end_gp_locked(gp);
            true
        }
    }

    /// `end_gp_locked`.
    fn end_gp_locked(&self, gp: &mut GpState) {
        let seq = self.gp_seq.load(Ordering::Relaxed);
        assert!(seq_in_progress(seq));
        let order = if self.variant == Variant::RelaxedGpEnd {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        self.gp_seq.store(seq + 1, order);
        self.start_gp_locked(gp);
    }

    /// `call_rcu` on `cpu` for object `obj`.
    fn call_rcu(&self, cpu: usize, obj: usize) {
        if self.variant != Variant::NoFenceInCallRcu {
            fence(Ordering::SeqCst);
        }
        let need = seq_snap(self.gp_seq.load(Ordering::Acquire), self.variant);
        self.cpus[cpu]
            .cblist
            .lock()
            .unwrap()
            .push(Callback { need, obj });
        self.gp_seq_needed.fetch_max(need, Ordering::AcqRel);
    }

    /// `synchronize_rcu` on `cpu` (`Platform::wait` is a spin here).
    fn synchronize_rcu(&self, cpu: usize) {
        if self.variant != Variant::NoFenceInCallRcu {
            fence(Ordering::SeqCst);
        }
        let need = seq_snap(self.gp_seq.load(Ordering::Acquire), self.variant);
        self.gp_seq_needed.fetch_max(need, Ordering::AcqRel);
        while self.gp_seq.load(Ordering::Acquire) < need {
            self.report_qs(cpu);
            self.start_gp_if_needed();
            loom::hint::spin_loop();
        }
    }

    /// Frees object `obj` (the callback's work, or the code after
    /// `synchronize_rcu`).
    fn free_object(&self, obj: usize) {
        // SAFETY: the object's grace period is over, so no reader holds
        // it; loom checks that every reader's access happened before this
        // write.
        self.objects[obj].with_mut(|v| unsafe { *v = POISON });
    }

    /// `invoke_ready` for `cpu`: frees the objects of ready callbacks;
    /// returns how many ran.
    fn invoke_ready(&self, cpu: usize) -> usize {
        let seq = self.gp_seq.load(Ordering::Acquire);
        let ready: Vec<Callback> = {
            let mut list = self.cpus[cpu].cblist.lock().unwrap();
            let (ready, wait) = list.drain(..).partition(|cb| seq >= cb.need);
            *list = wait;
            ready
        };
        for cb in &ready {
            self.free_object(cb.obj);
        }
        ready.len()
    }

    /// `cpu_offline`.
    fn cpu_offline(&self, cpu: usize) {
        let mut gp = self.gp.lock().unwrap();
        gp.online &= !(1 << cpu);
        self.clear_qs_locked(&mut gp, cpu);
    }
}

/// How the updater waits for the grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Updater {
    /// `call_rcu`, then its tick and `invoke_ready` until the callback ran.
    CallRcu,
    /// `synchronize_rcu`, then the free.
    Synchronize,
}

/// The scenario described in the module header; with `second_reader`,
/// CPU 2 also reads once (one section, a tick, offline).
pub fn model(variant: Variant, updater: Updater, second_reader: bool) {
    let online = if second_reader { 0b111 } else { 0b011 };
    let rcu = Arc::new(Rcu::new(variant, online));
    let reader2 = second_reader.then(|| {
        let rcu = rcu.clone();
        loom::thread::spawn(move || {
            rcu.read_lock(2);
            let p = rcu.dereference();
            rcu.read_object(p);
            rcu.read_unlock(2);
            rcu.sched_clock_irq(2);
            rcu.cpu_offline(2);
        })
    });
    let reader = {
        let rcu = rcu.clone();
        loom::thread::spawn(move || {
            rcu.read_lock(0);
            let p = rcu.dereference();
            rcu.read_object(p);
            rcu.sched_clock_irq(0);
            rcu.read_object(p);
            rcu.read_unlock(0);
            rcu.sched_clock_irq(0);
            rcu.read_lock(0);
            let p = rcu.dereference();
            rcu.read_object(p);
            rcu.read_unlock(0);
            rcu.cpu_offline(0);
        })
    };

    // CPU 1, the updater: publish object 1, free object 0 through RCU.
    // SAFETY: object 1 is not published yet: only this thread sees it.
    rcu.objects[1].with_mut(|v| unsafe { *v = 2 });
    let old = rcu.ptr.swap(1, Ordering::AcqRel);
    match updater {
        Updater::CallRcu => {
            rcu.call_rcu(1, old);
            loop {
                rcu.sched_clock_irq(1);
                if rcu.invoke_ready(1) > 0 {
                    break;
                }
                loom::hint::spin_loop();
            }
        }
        Updater::Synchronize => {
            rcu.synchronize_rcu(1);
            rcu.free_object(old);
        }
    }
    reader.join().unwrap();
    if let Some(r) = reader2 {
        r.join().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::PREEMPTIONS;
    const UPDATERS: [Updater; 2] = [Updater::CallRcu, Updater::Synchronize];

    #[test]
    fn rcu_grace_period() {
        for u in UPDATERS {
            crate::check(&format!("rcu/{u:?}"), PREEMPTIONS, move || {
                model(Variant::Faithful, u, false)
            });
        }
    }

    /// Three CPUs: two readers and the updater. Bound 2 (about 95,000
    /// executions, 15 s per updater); bound 3 takes 2.5 minutes per updater
    /// (`--skip two_readers` when raising `LOOM_MAX_PREEMPTIONS`).
    #[test]
    fn rcu_grace_period_two_readers() {
        for u in UPDATERS {
            crate::check(&format!("rcu/{u:?}/two-readers"), 2, move || {
                model(Variant::Faithful, u, true)
            });
        }
    }

    const UAF: &[&str] = &["Causality violation", "use after free"];

    fn caught(name: &str, variant: Variant) {
        for u in UPDATERS {
            crate::expect_caught(&format!("rcu/{u:?}/{name}"), PREEMPTIONS, UAF, move || {
                model(variant, u, false)
            });
        }
    }

    #[test]
    fn rcu_snap_of_current_gp_is_caught() {
        caught("snap-current-gp", Variant::SnapCurrentGp);
    }

    #[test]
    fn rcu_without_fence_is_caught() {
        caught("no-fence", Variant::NoFenceInCallRcu);
    }

    #[test]
    fn rcu_relaxed_gp_end_is_caught() {
        caught("relaxed-gp-end", Variant::RelaxedGpEnd);
    }

    #[test]
    fn rcu_qs_inside_reader_is_caught() {
        caught("qs-inside-reader", Variant::QsInsideReader);
    }
}
