//! Model 1: the barn's racy availability checks and sheaf exchange.
//!
//! Follows `mm/src/slab/sheaf.rs`:
//! - `KmemCache::barn_locked`: the barn lock (a spinlock, interrupts off)
//!   around a change of the lists, then `nr_full`/`nr_empty` stored
//!   `Relaxed` *under the lock* (SH2: the counters mirror the lists);
//! - `barn_replace_empty` (Linux `barn_replace_empty_sheaf`): a racy
//!   `nr_full == 0` check fails fast, the lock re-checks by popping;
//! - `barn_replace_full` (`barn_replace_full_sheaf`): racy checks of the
//!   full limit and of `nr_empty`, the lock re-checks `empty` only (Linux
//!   does not repeat the limit check under the lock either: the limit is
//!   soft);
//! - `barn_get_empty`, `barn_put_empty` (bounded by `MAX_EMPTY_SHEAVES`),
//!   `barn_put_full`;
//! - `alloc_from_pcs` / `replace_empty_main` without blocking (spare swap,
//!   barn exchange, else the slab path) and `free_to_pcs` /
//!   `replace_full_main` with its install step (`__pcs_install_empty_sheaf`).
//!
//! Each thread is one CPU and owns its `PcpSheaves` (the per-CPU lock is
//! model 2's subject; here nothing else takes it). A sheaf's objects live
//! in a loom `UnsafeCell`, so that loom checks that the barn lock hands a
//! sheaf's contents over from the CPU that filled it to the one that takes
//! it.
//!
//! Checked at the end: no sheaf or object lost or duplicated, the barn's
//! lists hold only full resp. empty sheaves, the counters equal the list
//! lengths. A racy check may fail spuriously (a stale zero): that is allowed, it only costs the
//! slab path.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use loom::sync::{Arc, Mutex};

/// Objects per sheaf (the cache's `sheaf_capacity`; small for the model).
pub const CAPACITY: usize = 2;
/// `MAX_FULL_SHEAVES`, `MAX_EMPTY_SHEAVES` scaled down.
pub const MAX_FULL_SHEAVES: usize = 2;
pub const MAX_EMPTY_SHEAVES: usize = 2;

/// How the model deviates from the code, to show that loom catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The code as it is.
    Faithful,
    /// `barn_replace_empty` trusts its racy `nr_full` check and pops
    /// under the lock without re-checking.
    NoRecheck,
    /// `barn_locked` stores the counters after dropping the lock, so an
    /// older critical section's counts can overwrite a newer one's.
    CountersAfterUnlock,
}

/// An array of objects used as a stack (`struct slab_sheaf`).
pub struct Sheaf {
    pub id: usize,
    /// (size, slots). Written by the CPU that owns the sheaf; ownership
    /// moves through the barn lock.
    data: UnsafeCell<(usize, [u64; CAPACITY])>,
}

impl Sheaf {
    pub(crate) fn new(id: usize, objects: &[u64]) -> Box<Sheaf> {
        let mut slots = [0; CAPACITY];
        slots[..objects.len()].copy_from_slice(objects);
        Box::new(Sheaf {
            id,
            data: UnsafeCell::new((objects.len(), slots)),
        })
    }

    pub fn size(&self) -> usize {
        // SAFETY: the sheaf is reached through a `Box` its caller owns (a
        // CPU's sheaves or the barn's lists under the barn lock), so no
        // other thread writes it now; loom checks that the last write
        // happened before this read.
        self.data.with(|d| unsafe { (*d).0 })
    }

    pub(crate) fn is_full(&self) -> bool {
        self.size() == CAPACITY
    }

    pub(crate) fn pop(&mut self) -> Option<u64> {
        // SAFETY: `&mut self`: the caller owns the sheaf; loom checks the
        // hand-over from the previous owner.
        self.data.with_mut(|d| unsafe {
            let (size, slots) = &mut *d;
            let top = size.checked_sub(1)?;
            *size = top;
            Some(slots[top])
        })
    }

    pub(crate) fn try_push(&mut self, obj: u64) -> bool {
        // SAFETY: `&mut self`: the caller owns the sheaf, so no other
        // thread accesses it; loom checks the hand-over from the previous
        // owner.
        self.data.with_mut(|d| unsafe {
            let (size, slots) = &mut *d;
            if *size == CAPACITY {
                return false;
            }
            slots[*size] = obj;
            *size += 1;
            true
        })
    }

    /// Returns every object (`flush_sheaf` to the slabs).
    pub(crate) fn flush(&mut self, slab: &mut Vec<u64>) {
        while let Some(obj) = self.pop() {
            slab.push(obj);
        }
    }

    pub(crate) fn objects(&self) -> Vec<u64> {
        self.data.with(|d| {
            // SAFETY: the caller holds the sheaf (a CPU's own, or the
            // barn's under its lock), so no other thread writes it; loom
            // checks that the last write happened before this read.
            let (size, slots) = unsafe { &*d };
            slots[..*size].to_vec()
        })
    }
}

/// `BarnInner`: the lists, under the barn lock. Boxes, as in the code
/// (sheaves travel as boxes between CPUs and the barn).
#[allow(clippy::vec_box)]
#[derive(Default)]
pub struct BarnInner {
    pub full: Vec<Box<Sheaf>>,
    pub empty: Vec<Box<Sheaf>>,
}

/// Why the barn refused a full sheaf (`BarnRefusal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BarnRefusal {
    Full,
    NoEmpty,
}

/// The node's barn (`struct node_barn`).
pub struct Barn {
    pub(crate) lock: Mutex<BarnInner>,
    /// Racy mirrors of the list lengths (SH2). Write: barn lock, Relaxed.
    /// Racy read: Relaxed, before taking the lock.
    pub(crate) nr_full: AtomicUsize,
    pub(crate) nr_empty: AtomicUsize,
    variant: Variant,
}

impl Barn {
    pub fn new(inner: BarnInner, variant: Variant) -> Barn {
        Barn {
            nr_full: AtomicUsize::new(inner.full.len()),
            nr_empty: AtomicUsize::new(inner.empty.len()),
            lock: Mutex::new(inner),
            variant,
        }
    }

    /// `barn_locked`.
    pub(crate) fn locked<R>(&self, f: impl FnOnce(&mut BarnInner) -> R) -> R {
        let mut inner = self.lock.lock().unwrap();
        let r = f(&mut inner);
        if self.variant == Variant::CountersAfterUnlock {
            let (full, empty) = (inner.full.len(), inner.empty.len());
            drop(inner);
            self.nr_full.store(full, Relaxed);
            self.nr_empty.store(empty, Relaxed);
        } else {
            self.nr_full.store(inner.full.len(), Relaxed);
            self.nr_empty.store(inner.empty.len(), Relaxed);
        }
        r
    }

    /// `barn_replace_empty`.
    pub(crate) fn replace_empty(&self, slot: &mut Box<Sheaf>) -> bool {
        if self.nr_full.load(Relaxed) == 0 {
            return false;
        }
        let recheck = self.variant != Variant::NoRecheck;
        self.locked(|b| {
            let full = if recheck {
                b.full.pop()
            } else {
                Some(
                    b.full
                        .pop()
                        .expect("barn: the racy count promised a full sheaf"),
                )
            };
            match full {
                Some(full) => {
                    b.empty.push(std::mem::replace(slot, full));
                    true
                }
                None => false,
            }
        })
    }

    /// `barn_replace_full`.
    pub(crate) fn replace_full(&self, slot: &mut Box<Sheaf>) -> Result<(), BarnRefusal> {
        if self.nr_full.load(Relaxed) >= MAX_FULL_SHEAVES {
            return Err(BarnRefusal::Full);
        }
        if self.nr_empty.load(Relaxed) == 0 {
            return Err(BarnRefusal::NoEmpty);
        }
        self.locked(|b| match b.empty.pop() {
            Some(empty) => {
                b.full.push(std::mem::replace(slot, empty));
                Ok(())
            }
            None => Err(BarnRefusal::NoEmpty),
        })
    }

    /// `barn_get_empty`.
    pub(crate) fn get_empty(&self) -> Option<Box<Sheaf>> {
        if self.nr_empty.load(Relaxed) == 0 {
            return None;
        }
        self.locked(|b| b.empty.pop())
    }

    /// `barn_put_empty`: a sheaf the barn does not keep is freed.
    #[allow(clippy::vec_box)]
    pub(crate) fn put_empty(&self, sheaf: Box<Sheaf>, freed: &mut Vec<Box<Sheaf>>) {
        assert_eq!(sheaf.size(), 0);
        let kept = self.locked(|b| {
            if b.empty.len() < MAX_EMPTY_SHEAVES {
                b.empty.push(sheaf);
                None
            } else {
                Some(sheaf)
            }
        });
        freed.extend(kept);
    }

    /// `barn_put_full`.
    pub(crate) fn put_full(&self, sheaf: Box<Sheaf>) {
        self.locked(|b| b.full.push(sheaf));
    }
}

/// One CPU's sheaves and what its operations produced.
#[allow(clippy::vec_box)]
pub struct Cpu {
    pub main: Box<Sheaf>,
    pub spare: Option<Box<Sheaf>>,
    /// Objects handed to callers.
    pub allocated: Vec<u64>,
    /// Objects that went to (or came from) the slab path.
    pub slab: Vec<u64>,
    /// Sheaves freed (`SheafFree`).
    pub freed: Vec<Box<Sheaf>>,
    /// Id for a sheaf this CPU allocates (`new_empty_sheaf`).
    pub next_id: usize,
}

impl Cpu {
    /// `alloc_from_pcs` with a gfp that does not allow blocking: `None`
    /// means the slab path.
    pub fn alloc(&mut self, barn: &Barn) -> Option<u64> {
        if let Some(obj) = self.main.pop() {
            self.allocated.push(obj);
            return Some(obj);
        }
        // replace_empty_main
        if self.spare.as_ref().is_some_and(|s| s.size() > 0) {
            self.swap_main_spare();
        } else if !barn.replace_empty(&mut self.main) {
            return None;
        }
        let obj = self.main.pop().expect("main refilled above");
        self.allocated.push(obj);
        Some(obj)
    }

    /// `free_to_pcs`: false means the slab path.
    pub fn free(&mut self, barn: &Barn, obj: u64) -> bool {
        if self.main.try_push(obj) {
            return true;
        }
        if !self.replace_full_main(barn) {
            return false;
        }
        assert!(self.main.try_push(obj), "main emptied above");
        true
    }

    /// `replace_full_main` (the per-CPU lock is never contended here, so
    /// its re-take always succeeds).
    fn replace_full_main(&mut self, barn: &Barn) -> bool {
        let empty = match self.spare.take() {
            None => match barn.get_empty() {
                Some(empty) => {
                    let old = std::mem::replace(&mut self.main, empty);
                    self.spare = Some(old);
                    return true;
                }
                None => self.new_empty_sheaf(),
            },
            Some(spare) if spare.size() == 0 => {
                let old = std::mem::replace(&mut self.main, spare);
                self.spare = Some(old);
                return true;
            }
            Some(full_spare) => match barn.replace_full(&mut self.main) {
                Ok(()) => {
                    self.spare = Some(full_spare);
                    return true;
                }
                Err(BarnRefusal::Full) => {
                    let mut s = full_spare;
                    s.flush(&mut self.slab);
                    s
                }
                Err(BarnRefusal::NoEmpty) => {
                    self.spare = Some(full_spare);
                    self.new_empty_sheaf()
                }
            },
        };
        // __pcs_install_empty_sheaf
        if self.spare.is_none() {
            let old = std::mem::replace(&mut self.main, empty);
            self.spare = Some(old);
        } else if !self.main.is_full() {
            barn.put_empty(empty, &mut self.freed);
        } else if self.spare.as_ref().is_some_and(|s| !s.is_full()) {
            self.swap_main_spare();
            barn.put_empty(empty, &mut self.freed);
        } else {
            let old = std::mem::replace(&mut self.main, empty);
            barn.put_full(old);
        }
        true
    }

    /// `PcpSheaves::swap_main_spare`.
    fn swap_main_spare(&mut self) {
        let spare = self.spare.as_mut().expect("a spare to swap with");
        std::mem::swap(&mut self.main, spare);
    }

    fn new_empty_sheaf(&mut self) -> Box<Sheaf> {
        self.next_id += 1;
        Sheaf::new(self.next_id, &[])
    }

    fn sheaves(&self) -> impl Iterator<Item = &Sheaf> {
        std::iter::once(&*self.main)
            .chain(self.spare.as_deref())
            .chain(self.freed.iter().map(|s| &**s))
    }
}

fn cpu(main: Box<Sheaf>, spare: Option<Box<Sheaf>>, first_id: usize) -> Cpu {
    Cpu {
        main,
        spare,
        allocated: Vec::new(),
        slab: Vec::new(),
        freed: Vec::new(),
        next_id: first_id,
    }
}

/// The scenario: the barn holds one full sheaf (objects 1, 2) and one
/// empty one. CPUs 0 and 1 allocate with empty mains and no spare, so both
/// race for the full sheaf (`barn_replace_empty`); CPU 2 frees object 9
/// with a full main (7, 8) and a full spare (5, 6), so it trades its main
/// for an empty sheaf (`barn_replace_full`), racing with the empties the
/// allocators deposit. Then checks conservation and SH2.
pub fn model(variant: Variant) {
    let barn = Arc::new(Barn::new(
        BarnInner {
            full: vec![Sheaf::new(1, &[1, 2])],
            empty: vec![Sheaf::new(2, &[])],
        },
        variant,
    ));
    let allocator = |id: usize| {
        let barn = barn.clone();
        loom::thread::spawn(move || {
            // Sheaf ids from 100 * (cpu + 1) for this CPU's new sheaves.
            let mut c = cpu(Sheaf::new(10 + id, &[]), None, 100 * (id + 1));
            if c.alloc(&barn).is_none() {
                // The slab path: a fresh object.
                c.slab.push(1000 + id as u64);
            }
            c
        })
    };
    let t0 = allocator(0);
    let t1 = allocator(1);
    let mut c2 = cpu(Sheaf::new(20, &[7, 8]), Some(Sheaf::new(21, &[5, 6])), 300);
    if !c2.free(&barn, 9) {
        c2.slab.push(9);
    }
    let cpus = [t0.join().unwrap(), t1.join().unwrap(), c2];

    let inner = barn.lock.lock().unwrap();
    // SH2: lists hold what their names say; counters mirror them.
    assert!(
        inner.full.iter().all(|s| s.is_full()),
        "non-full sheaf on the full list"
    );
    assert!(
        inner.empty.iter().all(|s| s.size() == 0),
        "non-empty sheaf on the empty list"
    );
    assert_eq!(
        barn.nr_full.load(Relaxed),
        inner.full.len(),
        "nr_full mirrors the full list"
    );
    assert_eq!(
        barn.nr_empty.load(Relaxed),
        inner.empty.len(),
        "nr_empty mirrors the empty list"
    );

    // Sheaves: the five we started with are each in exactly one place.
    let mut ids: Vec<usize> = inner
        .full
        .iter()
        .chain(&inner.empty)
        .map(|s| s.id)
        .chain(cpus.iter().flat_map(|c| c.sheaves().map(|s| s.id)))
        .filter(|&id| id < 100)
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 10, 11, 20, 21], "a sheaf lost or duplicated");

    // Objects: each exactly once, in a sheaf, handed out, or in the slabs.
    let mut objs: Vec<u64> = inner
        .full
        .iter()
        .chain(&inner.empty)
        .flat_map(|s| s.objects())
        .chain(
            cpus.iter()
                .flat_map(|c| c.sheaves().flat_map(|s| s.objects())),
        )
        .chain(
            cpus.iter()
                .flat_map(|c| c.allocated.iter().chain(&c.slab).copied()),
        )
        .filter(|&o| o < 1000)
        .collect();
    objs.sort();
    assert_eq!(objs, [1, 2, 5, 6, 7, 8, 9], "an object lost or duplicated");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barn_exchange() {
        crate::check("barn", crate::PREEMPTIONS, || model(Variant::Faithful));
    }

    #[test]
    fn barn_without_recheck_is_caught() {
        crate::expect_caught(
            "barn/no-recheck",
            crate::PREEMPTIONS,
            &["the racy count promised a full sheaf"],
            || model(Variant::NoRecheck),
        );
    }

    #[test]
    fn barn_counters_after_unlock_are_caught() {
        crate::expect_caught(
            "barn/counters-after-unlock",
            crate::PREEMPTIONS,
            &["mirrors the"],
            || model(Variant::CountersAfterUnlock),
        );
    }
}
