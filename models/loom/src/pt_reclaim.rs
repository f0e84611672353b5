//! Model 4: empty PTE-table reclaim against a lockless walker.
//!
//! Follows `mm/src/pgtable/mod.rs` and `mm/src/vm/zap.rs`:
//! - `PageTable::pte_offset_map_lock`: in an RCU read-side section, load
//!   the PMD (`Acquire`), lock the PTE table's split lock (bit 0 of its
//!   ptdesc word, `BitSpinLock::lock`: `fetch_or` `Acquire`), re-load the
//!   PMD and retry if it changed;
//! - `PageTable::pte_alloc_map_lock`: a missing table is installed under
//!   the PMD lock if the PMD is still none (`pmd_install`), then
//!   `pte_offset_map_lock`, retried if the table went away meanwhile;
//! - `PteLock::set` (`Release`), `PteLock::get_and_clear` (`swap`,
//!   `AcqRel`); the zap's lazy MMU queue is applied before the lock is
//!   dropped, so it is folded into direct stores here;
//! - `Mm::zap_pte_range` with `reclaim_pt` over one whole PTE table: the
//!   fast path (`PteLock::try_clear_pmd`: trylock of the PMD lock while
//!   holding the PTE lock, `pmd.store(0, Release)`) when the lock was held
//!   from the first entry to the last, else the slow path
//!   (`PageTable::try_free_pte_table`: PMD lock, PTE lock, rescan every
//!   entry, clear the PMD only if all are none);
//! - `PageTable::queue_table_free` and the gather: the table is freed
//!   after a grace period (`tlb_remove_table` / `synchronize_rcu`), then
//!   poisoned (`free_table_now`).
//!
//! RCU itself is model 3's subject; here it is abstracted by a loom
//! `RwLock`: a read-side section holds it for reading, a grace period
//! takes it for writing once. That gives exactly RCU's guarantee (the
//! free happens after every section that began before the grace period)
//! and no more.
//!
//! Tables have two entries (Linux: 512). A table's frame has an `alive`
//! flag in a loom `UnsafeCell`: freeing writes it, every access to the
//! table's lock word or entries reads it first, so loom reports a walker
//! that touches a freed table. Scenario: the PMD points to table A whose
//! entry 0 is present; CPU 0 zaps the whole table with `reclaim_pt`
//! (MADV_DONTNEED), with the gather full after the first page in the
//! slow-path scenario, which drops the PTE lock midway as a full gather
//! does; CPU 1 faults on entry 1 (`pte_alloc_map_lock`, then sets the PTE),
//! or, in the lockless runs, reads entry 0 with `get_pte` (RCU, no lock).
//! Checked: no table is touched after its free, no table is freed with a
//! present entry, every table is freed at most once, and the fault's PTE
//! is either in the table the PMD points to at the end or was zapped.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::sync::{Arc, RwLock, RwLockReadGuard};

/// Entries per PTE table.
const PTRS: usize = 2;
/// Tables in the pool: A (linked at the start) and two the fault may
/// allocate.
const TABLES: usize = 3;
/// A present PTE.
const PRESENT: u64 = 0x1;
/// A freed table's entries (`TABLE_POISON`).
const POISON: u64 = 0x6b6b_6b6b;

/// How the model deviates from the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Faithful,
    /// `pte_offset_map_lock` does not re-check the PMD after locking.
    NoRecheck,
    /// The table is freed at once, without waiting for a grace period.
    FreeWithoutGp,
    /// `try_free_pte_table` rescans the table without taking its lock.
    SlowPathWithoutPteLock,
    /// The bit spinlock's unlock is `Relaxed` instead of `Release`.
    RelaxedUnlock,
    /// `get_pte` reads without entering an RCU read-side section.
    LocklessWithoutRcu,
}

struct Table {
    entries: [AtomicU64; PTRS],
    /// The split PTE lock (bit 0).
    lock: AtomicU64,
    /// The frame is a live page table (false once freed).
    alive: UnsafeCell<bool>,
}

/// The address space's page tables below one PMD entry.
pub struct Pt {
    /// The PMD entry: 0 none, else `table + 1`.
    pmd: AtomicU64,
    /// The PMD table's lock (bit 0 of its ptdesc word).
    pmd_lock: AtomicU64,
    tables: [Table; TABLES],
    /// The next pool table a fault allocates.
    next_table: AtomicUsize,
    rcu: RwLock<()>,
    variant: Variant,
}

/// A held bit spinlock (`BitSpinGuard`).
struct BitGuard<'a> {
    word: &'a AtomicU64,
    variant: Variant,
}

impl Drop for BitGuard<'_> {
    fn drop(&mut self) {
        // A failed check unwinds out of loom's execution: leave loom's
        // objects alone then.
        if std::thread::panicking() {
            return;
        }
        let order = if self.variant == Variant::RelaxedUnlock {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        self.word.fetch_and(!1, order);
    }
}

/// `PteLock`: the RCU read lock, the table's lock, the table.
pub struct PteLock<'a> {
    pt: &'a Pt,
    table: usize,
    _lock: BitGuard<'a>,
    _rcu: RwLockReadGuard<'a, ()>,
}

impl PteLock<'_> {
    fn entry(&self, i: usize) -> &AtomicU64 {
        self.pt.touch(self.table);
        &self.pt.tables[self.table].entries[i]
    }

    /// `PteLock::get`.
    fn get(&self, i: usize) -> u64 {
        self.entry(i).load(Ordering::Acquire)
    }

    /// `PteLock::set`.
    fn set(&mut self, i: usize, e: u64) {
        self.entry(i).store(e, Ordering::Release);
    }

    /// `PteLock::get_and_clear`.
    fn get_and_clear(&mut self, i: usize) -> u64 {
        self.entry(i).swap(0, Ordering::AcqRel)
    }

    /// `PteLock::try_clear_pmd`: the table was emptied under this lock.
    fn try_clear_pmd(&mut self) -> Option<usize> {
        let _pml = self.pt.bit_try_lock(&self.pt.pmd_lock)?;
        self.pt.pmd.store(0, Ordering::Release);
        Some(self.table)
    }
}

impl Pt {
    fn new(variant: Variant) -> Self {
        let table = |alive: bool, first: u64| Table {
            entries: [AtomicU64::new(first), AtomicU64::new(0)],
            lock: AtomicU64::new(0),
            alive: UnsafeCell::new(alive),
        };
        Pt {
            pmd: AtomicU64::new(1),
            pmd_lock: AtomicU64::new(0),
            tables: [table(true, PRESENT), table(false, 0), table(false, 0)],
            next_table: AtomicUsize::new(1),
            rcu: RwLock::new(()),
            variant,
        }
    }

    /// Checks that table `t` is a live table before an access to it.
    fn touch(&self, t: usize) {
        // SAFETY: reads the frame's state; the protocol under test keeps
        // the free (the only write after the table's allocation) ordered
        // after this read, and loom reports it otherwise.
        let alive = self.tables[t].alive.with(|a| unsafe { *a });
        assert!(alive, "use after free: table {t} touched after its free");
    }

    /// `BitSpinLock::lock`.
    fn bit_lock<'a>(&'a self, word: &'a AtomicU64) -> BitGuard<'a> {
        loop {
            if word.fetch_or(1, Ordering::Acquire) & 1 == 0 {
                return BitGuard {
                    word,
                    variant: self.variant,
                };
            }
            while word.load(Ordering::Relaxed) & 1 != 0 {
                loom::hint::spin_loop();
            }
        }
    }

    /// `BitSpinLock::try_lock`.
    fn bit_try_lock<'a>(&'a self, word: &'a AtomicU64) -> Option<BitGuard<'a>> {
        (word.fetch_or(1, Ordering::Acquire) & 1 == 0).then_some(BitGuard {
            word,
            variant: self.variant,
        })
    }

    fn table_lock(&self, t: usize) -> BitGuard<'_> {
        self.touch(t);
        self.bit_lock(&self.tables[t].lock)
    }

    /// `pte_offset_map_lock`.
    pub fn pte_offset_map_lock(&self) -> Option<PteLock<'_>> {
        loop {
            let rcu = self.rcu.read().unwrap();
            let pmdval = self.pmd.load(Ordering::Acquire);
            if pmdval == 0 {
                return None;
            }
            let table = pmdval as usize - 1;
            let lock = self.table_lock(table);
            if self.variant != Variant::NoRecheck && self.pmd.load(Ordering::Acquire) != pmdval {
                drop(lock);
                drop(rcu);
                continue;
            }
            return Some(PteLock {
                pt: self,
                table,
                _lock: lock,
                _rcu: rcu,
            });
        }
    }

    /// `PageTable::get_pte`: the PTE read locklessly under RCU (`slot`
    /// descends through the PMD with an `Acquire` load, then the entry
    /// `Acquire`); `None` when no PTE table is linked.
    pub fn get_pte(&self, i: usize) -> Option<u64> {
        let _rcu = (self.variant != Variant::LocklessWithoutRcu).then(|| self.rcu.read().unwrap());
        let pmdval = self.pmd.load(Ordering::Acquire);
        if pmdval == 0 {
            return None;
        }
        let table = pmdval as usize - 1;
        self.touch(table);
        Some(self.tables[table].entries[i].load(Ordering::Acquire))
    }

    /// `pte_alloc_map_lock`.
    pub fn pte_alloc_map_lock(&self) -> PteLock<'_> {
        loop {
            if self.pmd.load(Ordering::Acquire) == 0 {
                // alloc_table: a zeroed frame (the pool's tables are).
                let new = self.next_table.fetch_add(1, Ordering::Relaxed);
                assert!(new < TABLES, "model: table pool exhausted");
                // SAFETY: the new table is not published yet: only this
                // thread can reach it.
                self.tables[new].alive.with_mut(|a| unsafe { *a = true });
                let guard = self.bit_lock(&self.pmd_lock);
                if self.pmd.load(Ordering::Acquire) == 0 {
                    self.pmd.store(new as u64 + 1, Ordering::Release);
                    drop(guard);
                } else {
                    drop(guard);
                    self.free_table_now(new);
                }
            }
            if let Some(ptl) = self.pte_offset_map_lock() {
                return ptl;
            }
        }
    }

    /// `free_table_now`: poison and give the frame back.
    fn free_table_now(&self, t: usize) {
        self.touch(t);
        for e in &self.tables[t].entries {
            assert_eq!(
                e.load(Ordering::Relaxed) & PRESENT,
                0,
                "freed PTE table {t} with a present PTE (the PTE is lost)"
            );
            e.store(POISON, Ordering::Relaxed);
        }
        // SAFETY: the table is unlinked and its grace period has passed (or
        // it was never published): no walker can reach it. Loom checks it.
        self.tables[t].alive.with_mut(|a| unsafe { *a = false });
    }

    /// `queue_table_free`, and the gather's free after a grace period.
    fn queue_table_free(&self, t: usize) {
        if self.variant != Variant::FreeWithoutGp {
            // synchronize_rcu: waits for every read-side section that began
            // before it.
            drop(self.rcu.write().unwrap());
        }
        self.free_table_now(t);
    }

    /// `try_free_pte_table` (`try_to_free_pte`): the slow path.
    fn try_free_pte_table(&self) -> bool {
        let rcu = self.rcu.read().unwrap();
        let pml = self.bit_lock(&self.pmd_lock);
        let pmdval = self.pmd.load(Ordering::Acquire);
        if pmdval == 0 {
            return false;
        }
        let table = pmdval as usize - 1;
        let ptl = (self.variant != Variant::SlowPathWithoutPteLock).then(|| self.table_lock(table));
        self.touch(table);
        let empty = self.tables[table]
            .entries
            .iter()
            .all(|e| e.load(Ordering::Acquire) == 0);
        if empty {
            self.pmd.store(0, Ordering::Release);
        }
        drop(ptl);
        drop(pml);
        drop(rcu);
        if !empty {
            return false;
        }
        self.queue_table_free(table);
        true
    }

    /// `zap_pte_range` over the whole table with `reclaim_pt`; with
    /// `gather_batch` 1 the gather is full after each page, which drops the
    /// PTE lock midway (`force_flush`). Returns the PTEs it cleared.
    pub fn zap_whole_table(&self, gather_batch: Option<usize>) -> Vec<usize> {
        let mut zapped = Vec::new();
        let mut direct_reclaim = true;
        let mut addr = 0;
        let mut cleared_pmd = None;
        let mut gathered = 0;
        loop {
            let Some(mut ptl) = self.pte_offset_map_lock() else {
                return zapped;
            };
            while addr < PTRS {
                let here = addr;
                addr += 1;
                if ptl.get(here) == 0 {
                    continue;
                }
                let old = ptl.get_and_clear(here);
                if old & PRESENT == 0 {
                    continue;
                }
                zapped.push(here);
                gathered += 1;
                if gather_batch.is_some_and(|b| gathered >= b) {
                    // `force_flush`: flush the TLB, drop the lock, free
                    // the gathered pages, go on with the rest.
                    gathered = 0;
                    break;
                }
            }
            if direct_reclaim && addr == PTRS {
                cleared_pmd = ptl.try_clear_pmd();
            }
            drop(ptl);
            if addr == PTRS {
                break;
            }
            direct_reclaim = false;
        }
        match cleared_pmd {
            Some(table) => self.queue_table_free(table),
            None => {
                self.try_free_pte_table();
            }
        }
        zapped
    }
}

/// What CPU 1 does while CPU 0 zaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walker {
    /// A fault on entry 1 (`pte_alloc_map_lock`, `set_pte_at`).
    Fault,
    /// A lockless read of entry 0 (`get_pte`, as GUP-fast or
    /// `/proc/self/pagemap` readers do).
    Lockless,
}

/// The scenario of the module header; `slow` forces the slow path (the
/// gather fills after the first page).
pub fn model(variant: Variant, slow: bool, walker: Walker) {
    let pt = Arc::new(Pt::new(variant));
    let zapper = {
        let pt = pt.clone();
        loom::thread::spawn(move || pt.zap_whole_table(slow.then_some(1)))
    };
    // Each CPU is a spawned thread: a check that fails on the main thread
    // while another runs would unwind through loom objects outside loom's
    // scheduler.
    if walker == Walker::Lockless {
        let reader = {
            let pt = pt.clone();
            loom::thread::spawn(move || pt.get_pte(0))
        };
        zapper.join().unwrap();
        let got = reader.join().unwrap();
        assert!(
            matches!(got, None | Some(0) | Some(PRESENT)),
            "a lockless reader read {got:x?}: a freed table's poison"
        );
        return;
    }
    let fault = {
        let pt = pt.clone();
        loom::thread::spawn(move || {
            let mut ptl = pt.pte_alloc_map_lock();
            if ptl.get(1) == 0 {
                ptl.set(1, PRESENT);
            }
            ptl.table
        })
    };
    let zapped = zapper.join().unwrap();
    let table = fault.join().unwrap();

    let linked = pt.pmd.load(Ordering::Acquire);
    let in_linked = linked == table as u64 + 1
        && pt.tables[table].entries[1].load(Ordering::Acquire) & PRESENT != 0;
    let was_zapped = table == 0 && zapped.contains(&1);
    assert!(
        in_linked || was_zapped,
        "the fault's PTE is neither mapped nor zapped (lost); pmd {linked}, table {table}, zapped {zapped:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::PREEMPTIONS;

    #[test]
    fn pt_reclaim_fast_path() {
        crate::check("pt_reclaim/fast", PREEMPTIONS, || {
            model(Variant::Faithful, false, Walker::Fault)
        });
    }

    #[test]
    fn pt_reclaim_lockless_reader() {
        for slow in [false, true] {
            crate::check(
                &format!("pt_reclaim/lockless (slow {slow})"),
                PREEMPTIONS,
                move || model(Variant::Faithful, slow, Walker::Lockless),
            );
        }
    }

    #[test]
    fn pt_reclaim_lockless_without_rcu_is_caught() {
        crate::expect_caught(
            "pt_reclaim/lockless-without-rcu",
            PREEMPTIONS,
            BROKEN,
            || model(Variant::LocklessWithoutRcu, false, Walker::Lockless),
        );
    }

    #[test]
    fn pt_reclaim_slow_path() {
        crate::check("pt_reclaim/slow", PREEMPTIONS, || {
            model(Variant::Faithful, true, Walker::Fault)
        });
    }

    const BROKEN: &[&str] = &[
        "Causality violation",
        "use after free",
        "with a present PTE",
        "lost",
    ];

    #[test]
    fn pt_reclaim_without_recheck_is_caught() {
        crate::expect_caught("pt_reclaim/no-recheck", PREEMPTIONS, BROKEN, || {
            model(Variant::NoRecheck, false, Walker::Fault)
        });
    }

    #[test]
    fn pt_reclaim_free_without_gp_is_caught() {
        crate::expect_caught("pt_reclaim/free-without-gp", PREEMPTIONS, BROKEN, || {
            model(Variant::FreeWithoutGp, false, Walker::Fault)
        });
    }

    #[test]
    fn pt_reclaim_slow_path_without_pte_lock_is_caught() {
        crate::expect_caught(
            "pt_reclaim/slow-without-pte-lock",
            PREEMPTIONS,
            BROKEN,
            || model(Variant::SlowPathWithoutPteLock, true, Walker::Fault),
        );
    }

    #[test]
    fn pt_reclaim_relaxed_unlock_is_caught() {
        crate::expect_caught("pt_reclaim/relaxed-unlock", PREEMPTIONS, BROKEN, || {
            model(Variant::RelaxedUnlock, false, Walker::Fault)
        });
    }
}
