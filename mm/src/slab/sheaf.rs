//! Per-CPU sheaves and per-node barns (Linux 6.18's sheaves series).
//!
//! A *sheaf* is an array of object pointers used as a stack. Each CPU has a
//! `main` sheaf it allocates from and frees into, and a `spare`; the node's
//! *barn* keeps full and empty sheaves to exchange. Most alloc/free pairs
//! then touch only the local CPU's arrays under a local trylock.
//!
//! ```text
//!  alloc: main ─empty─▶ swap with a non-empty spare ─▶ barn: trade the
//!         empty main for a full sheaf ─▶ (may block) refill a sheaf from
//!         slabs by bulk allocation ─▶ else the slab path
//!  free:  main ─full─▶ empty spare ─▶ barn: trade the full main for an
//!         empty sheaf ─(barn over MAX_FULL_SHEAVES)▶ flush a full sheaf to
//!         slabs by bulk free ─▶ else a new empty sheaf ─▶ else the slab path
//! ```
//!
//! # Invariants
//!
//! - SH1: while its lock is free, a CPU's `main` exists. Its `spare` is
//!   absent or of any fill: the paths that make a spare aim for an empty
//!   or a full one, but an interrupt that allocates during
//!   `replace_full_main`'s unlocked window leaves `main` partly used, and
//!   the install step then makes it the spare (the loom model
//!   `sheaves_sh1_as_documented_does_not_hold` shows it; Linux's
//!   `__pcs_install_empty_sheaf` has the same window). No path relies on
//!   a spare's fill: each checks its size.
//! - SH2: the barn's `full` list holds only full sheaves and `empty` only
//!   empty ones; `nr_full`/`nr_empty` mirror their lengths.
//! - SH3: objects in sheaves count as allocated to the slab layer (and to
//!   the debug checks: Linux's documented limitation).
//!
//! # Locking
//!
//! The sheaves lock and the barn lock are locks 1 and 2 of the
//! allocator's one lock order, in the [`super`] module header.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::{KmemCache, SlabStat};
use crate::addr::CpuId;
use crate::gfp::Gfp;
use crate::platform::Platform;
use crate::rcu::{Rcu, RcuHead};
use crate::sync::{LocalGuard, LocalTryLock, SpinLockIrq};

/// A barn refuses more full sheaves than this on the free path.
pub const MAX_FULL_SHEAVES: usize = 10;
/// The barn keeps at most this many empty sheaves from RCU and returns.
pub const MAX_EMPTY_SHEAVES: usize = 10;
/// Objects copied out of a main sheaf per lock hold when flushing it.
const PCS_BATCH_MAX: usize = 32;

/// An array of free objects of one cache (`struct slab_sheaf`).
#[repr(C)]
pub struct Sheaf {
    /// For the grace period of an `rcu_free` sheaf; first, so the RCU
    /// callback finds the sheaf from its head.
    rcu_head: RcuHead,
    /// The cache, for the RCU callback (an `rcu_free` sheaf only).
    cache: usize,
    /// Objects held (top of the stack).
    size: usize,
    /// Slots; the cache's `sheaf_capacity`, or more for an oversize
    /// prefilled sheaf.
    objects: Box<[u64]>,
}

impl Sheaf {
    /// An empty sheaf of `capacity` slots, or `None` when memory is short.
    fn try_new(capacity: usize) -> Option<Box<Sheaf>> {
        let mut objects = Vec::new();
        objects.try_reserve_exact(capacity).ok()?;
        objects.resize(capacity, 0);
        Some(Box::new(Sheaf {
            rcu_head: RcuHead::new(),
            cache: 0,
            size: 0,
            objects: objects.into_boxed_slice(),
        }))
    }

    /// Objects left in the sheaf (`kmem_cache_sheaf_size`).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Slots in the sheaf.
    pub fn capacity(&self) -> usize {
        self.objects.len()
    }

    #[inline]
    fn is_full(&self) -> bool {
        self.size == self.objects.len()
    }

    #[inline]
    fn push(&mut self, obj: u64) {
        let pushed = self.try_push(obj);
        assert!(pushed, "push onto a full sheaf");
    }

    /// Pushes `obj` unless the sheaf is full (one bounds check).
    #[inline]
    fn try_push(&mut self, obj: u64) -> bool {
        match self.objects.get_mut(self.size) {
            Some(slot) => {
                *slot = obj;
                self.size += 1;
                true
            }
            None => false,
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<u64> {
        let top = self.size.checked_sub(1)?;
        let obj = *self.objects.get(top)?;
        self.size = top;
        Some(obj)
    }
}

/// One CPU's sheaves (`struct slub_percpu_sheaves`).
pub(super) struct PcpSheaves {
    /// Allocated from and freed into; always present (SH1), exchanged in
    /// place (`mem::replace`, `mem::swap`), never taken out.
    main: Box<Sheaf>,
    spare: Option<Box<Sheaf>>,
    /// Collects `kfree_rcu` objects until full.
    rcu_free: Option<Box<Sheaf>>,
}

impl PcpSheaves {
    /// Makes the spare the main sheaf and the old main the spare.
    fn swap_main_spare(&mut self) {
        let spare = self.spare.as_mut().expect("a spare to swap with");
        core::mem::swap(&mut self.main, spare);
    }
}

/// Sheaves travel as boxes between CPUs, the barn and RCU (which needs a
/// stable address for the head), so the lists hold boxes too.
#[allow(clippy::vec_box)]
struct BarnInner {
    full: Vec<Box<Sheaf>>,
    empty: Vec<Box<Sheaf>>,
}

/// The node's exchange of full and empty sheaves (`struct node_barn`).
pub(super) struct Barn {
    lock: SpinLockIrq<BarnInner>,
    /// Racy mirrors of the list lengths (SH2). Write: barn lock.
    pub(super) nr_full: AtomicUsize,
    pub(super) nr_empty: AtomicUsize,
}

/// The sheaf state of a cache.
pub(super) struct Sheaves {
    capacity: usize,
    pub(super) pcs: LocalTryLock<PcpSheaves>,
    pub(super) barn: Barn,
}

// SAFETY: sheaves hold object addresses (plain integers) of the cache's
// slabs; every access goes through the per-CPU lock or the barn lock.
unsafe impl Send for PcpSheaves {}

impl Sheaves {
    pub(super) fn new(nr_cpus: usize, capacity: usize) -> Self {
        Self {
            capacity,
            pcs: LocalTryLock::new(nr_cpus, |_| PcpSheaves {
                main: Sheaf::try_new(capacity).expect("boot-time sheaf"),
                spare: None,
                rcu_free: None,
            }),
            barn: Barn {
                // Room for the limits up front: no allocation under the lock.
                lock: SpinLockIrq::new(BarnInner {
                    full: Vec::with_capacity(MAX_FULL_SHEAVES),
                    empty: Vec::with_capacity(MAX_EMPTY_SHEAVES),
                }),
                nr_full: AtomicUsize::new(0),
                nr_empty: AtomicUsize::new(0),
            },
        }
    }
}

type PcsGuard<'g, P> = LocalGuard<'g, PcpSheaves, P>;

impl<P: Platform> KmemCache<'_, P> {
    // ----- barn -----

    fn barn_locked<R>(&self, sh: &Sheaves, f: impl FnOnce(&mut BarnInner) -> R) -> R {
        let mut inner = sh.barn.lock.lock_irqsave(self.pa.platform());
        let r = f(&mut inner);
        sh.barn.nr_full.store(inner.full.len(), Relaxed);
        sh.barn.nr_empty.store(inner.empty.len(), Relaxed);
        r
    }

    /// Trades the empty sheaf in `slot` for a full one
    /// (`barn_replace_empty_sheaf`); false if the barn has none.
    fn barn_replace_empty(&self, sh: &Sheaves, slot: &mut Box<Sheaf>) -> bool {
        if sh.barn.nr_full.load(Relaxed) == 0 {
            return false;
        }
        self.barn_locked(sh, |b| match b.full.pop() {
            Some(full) => {
                b.empty.push(core::mem::replace(slot, full));
                true
            }
            None => false,
        })
    }

    /// Trades the full sheaf in `slot` for an empty one
    /// (`barn_replace_full_sheaf`): `Err(Full)` if the barn holds its limit
    /// of full sheaves, `Err(NoEmpty)` if it has no empty one.
    fn barn_replace_full(&self, sh: &Sheaves, slot: &mut Box<Sheaf>) -> Result<(), BarnRefusal> {
        if sh.barn.nr_full.load(Relaxed) >= MAX_FULL_SHEAVES {
            return Err(BarnRefusal::Full);
        }
        if sh.barn.nr_empty.load(Relaxed) == 0 {
            return Err(BarnRefusal::NoEmpty);
        }
        self.barn_locked(sh, |b| match b.empty.pop() {
            Some(empty) => {
                b.full.push(core::mem::replace(slot, empty));
                Ok(())
            }
            None => Err(BarnRefusal::NoEmpty),
        })
    }

    fn barn_get_empty(&self, sh: &Sheaves) -> Option<Box<Sheaf>> {
        if sh.barn.nr_empty.load(Relaxed) == 0 {
            return None;
        }
        self.barn_locked(sh, |b| b.empty.pop())
    }

    fn barn_put_empty(&self, sh: &Sheaves, sheaf: Box<Sheaf>) {
        debug_assert_eq!(sheaf.size, 0);
        let kept = self.barn_locked(sh, |b| {
            if b.empty.len() < MAX_EMPTY_SHEAVES {
                b.empty.push(sheaf);
                None
            } else {
                Some(sheaf)
            }
        });
        if kept.is_some() {
            self.stat(SlabStat::SheafFree);
        }
    }

    fn barn_put_full(&self, sh: &Sheaves, sheaf: Box<Sheaf>) {
        self.stat(SlabStat::BarnPut);
        self.barn_locked(sh, |b| b.full.push(sheaf));
    }

    // ----- moving objects between sheaves and slabs -----

    /// Fills `sheaf` to capacity from the slabs, all or nothing
    /// (`refill_sheaf`).
    fn refill_sheaf(&self, sheaf: &mut Sheaf, gfp: Gfp) -> bool {
        let want = sheaf.capacity() - sheaf.size;
        let mut got = 0;
        while got < want {
            match self.alloc_classic(gfp) {
                Some(obj) => {
                    sheaf.push(obj);
                    got += 1;
                }
                None => {
                    for _ in 0..got {
                        let obj = sheaf.pop().expect("pushed above");
                        self.free_to_slab(obj);
                    }
                    return false;
                }
            }
        }
        self.stats.add(
            self.pa.platform().cpu_id(),
            SlabStat::SheafRefill,
            got as u64,
        );
        true
    }

    /// Returns every object of `sheaf` to the slabs (`sheaf_flush_unused`).
    fn flush_sheaf(&self, sheaf: &mut Sheaf) {
        let flushed = sheaf.size as u64;
        while let Some(obj) = sheaf.pop() {
            self.free_to_slab(obj);
        }
        self.stats
            .add(self.pa.platform().cpu_id(), SlabStat::SheafFlush, flushed);
    }

    /// Frees one object, known to be ours, to its slab.
    fn free_to_slab(&self, obj: u64) {
        let caller = core::panic::Location::caller();
        if let Some(slab) = self.lookup(obj, caller) {
            self.free_classic(slab, obj, caller);
        }
    }

    // ----- the allocation side -----

    /// Allocates from this CPU's sheaves (`alloc_from_pcs`); `None` sends
    /// the caller to the slab path. Counts the object (`AllocPcs`, which
    /// reads as `Allocs` too) under the lock: the only counter written.
    #[inline]
    pub(super) fn alloc_from_pcs(&self, sh: &Sheaves, gfp: Gfp) -> Option<u64> {
        let mut pcs = sh.pcs.try_lock(self.pa.platform())?;
        match pcs.main.pop() {
            Some(obj) => {
                self.stats.inc_locked(pcs.cpu(), SlabStat::AllocPcs);
                Some(obj)
            }
            None => self.alloc_from_pcs_slow(sh, pcs, gfp),
        }
    }

    /// [`KmemCache::alloc_from_pcs`] with an empty main sheaf.
    #[inline(never)]
    fn alloc_from_pcs_slow<'g>(
        &'g self,
        sh: &'g Sheaves,
        pcs: PcsGuard<'g, P>,
        gfp: Gfp,
    ) -> Option<u64> {
        // The lock may have been dropped and re-taken on another CPU: count
        // under the guard we get back.
        let mut pcs = self.replace_empty_main(sh, pcs, gfp)?;
        let obj = pcs.main.pop().expect("main refilled above");
        self.stats.inc_locked(pcs.cpu(), SlabStat::AllocPcs);
        Some(obj)
    }

    /// The main sheaf is empty; find objects (`__pcs_replace_empty_main`).
    /// Returns the (possibly re-taken) lock with a non-empty main, or
    /// `None` with the lock dropped.
    fn replace_empty_main<'g>(
        &'g self,
        sh: &'g Sheaves,
        mut pcs: PcsGuard<'g, P>,
        gfp: Gfp,
    ) -> Option<PcsGuard<'g, P>> {
        if pcs.spare.as_ref().is_some_and(|s| s.size > 0) {
            pcs.swap_main_spare();
            return Some(pcs);
        }
        if self.barn_replace_empty(sh, &mut pcs.main) {
            self.stat(SlabStat::BarnGet);
            return Some(pcs);
        }
        self.stat(SlabStat::BarnGetFail);
        if !gfp.allows_blocking() {
            return None;
        }
        // Refill a sheaf from slabs without holding the CPU lock.
        let to_fill = pcs.spare.take().or_else(|| self.barn_get_empty(sh));
        drop(pcs);
        let mut full = match to_fill {
            Some(s) => s,
            None => {
                self.stat(SlabStat::SheafAlloc);
                Sheaf::try_new(sh.capacity)?
            }
        };
        if !self.refill_sheaf(&mut full, gfp | Gfp::NOMEMALLOC) {
            self.stat(SlabStat::SheafFree);
            return None;
        }
        // Relock (we may be on another CPU now) and decide again.
        let mut pcs = sh.pcs.lock(self.pa.platform());
        if pcs.main.size == 0 {
            let old = core::mem::replace(&mut pcs.main, full);
            if pcs.spare.is_none() {
                pcs.spare = Some(old);
            } else {
                self.barn_put_empty(sh, old);
            }
        } else if pcs.spare.is_none() {
            pcs.spare = Some(full);
        } else if pcs.spare.as_ref().is_some_and(|s| s.size == 0) {
            let old = pcs.spare.replace(full).expect("checked");
            self.barn_put_empty(sh, old);
        } else {
            self.barn_put_full(sh, full);
        }
        Some(pcs)
    }

    // ----- the free side -----

    /// Frees into this CPU's sheaves (`free_to_pcs`); `false` sends the
    /// caller to the slab path.
    /// Counts the object (`FreePcs`, which reads as `Frees` too) under the
    /// lock: the only counter written.
    #[inline]
    pub(super) fn free_to_pcs(&self, sh: &Sheaves, obj: u64) -> bool {
        let Some(mut pcs) = sh.pcs.try_lock(self.pa.platform()) else {
            return false;
        };
        if pcs.main.try_push(obj) {
            self.stats.inc_locked(pcs.cpu(), SlabStat::FreePcs);
            return true;
        }
        self.free_to_pcs_slow(sh, pcs, obj)
    }

    /// [`KmemCache::free_to_pcs`] with a full main sheaf.
    #[inline(never)]
    fn free_to_pcs_slow<'g>(&'g self, sh: &'g Sheaves, pcs: PcsGuard<'g, P>, obj: u64) -> bool {
        // As in alloc_from_pcs_slow, count under the guard we get back.
        let Some(mut pcs) = self.replace_full_main(sh, pcs) else {
            return false;
        };
        pcs.main.push(obj);
        self.stats.inc_locked(pcs.cpu(), SlabStat::FreePcs);
        true
    }

    /// The main sheaf is full; make room (`__pcs_replace_full_main`).
    fn replace_full_main<'g>(
        &'g self,
        sh: &'g Sheaves,
        mut pcs: PcsGuard<'g, P>,
    ) -> Option<PcsGuard<'g, P>> {
        let empty = match pcs.spare.take() {
            None => match self.barn_get_empty(sh) {
                Some(empty) => {
                    let old = core::mem::replace(&mut pcs.main, empty);
                    pcs.spare = Some(old);
                    return Some(pcs);
                }
                None => {
                    drop(pcs);
                    self.new_empty_sheaf(sh)?
                }
            },
            Some(spare) if spare.size == 0 => {
                let old = core::mem::replace(&mut pcs.main, spare);
                pcs.spare = Some(old);
                return Some(pcs);
            }
            Some(full_spare) => {
                match self.barn_replace_full(sh, &mut pcs.main) {
                    Ok(()) => {
                        pcs.spare = Some(full_spare);
                        self.stat(SlabStat::BarnPut);
                        return Some(pcs);
                    }
                    Err(refusal) => {
                        if refusal == BarnRefusal::Full {
                            // The barn holds enough: flush the full spare to
                            // slabs and use it as our empty sheaf.
                            self.stat(SlabStat::BarnPutFail);
                            drop(pcs);
                            let mut s = full_spare;
                            self.flush_sheaf(&mut s);
                            s
                        } else {
                            pcs.spare = Some(full_spare);
                            drop(pcs);
                            self.new_empty_sheaf(sh)?
                        }
                    }
                }
            }
        };
        // Install the empty sheaf (`__pcs_install_empty_sheaf`).
        let Some(mut pcs) = sh.pcs.try_lock(self.pa.platform()) else {
            self.barn_put_empty(sh, empty);
            return None;
        };
        if pcs.spare.is_none() {
            let old = core::mem::replace(&mut pcs.main, empty);
            pcs.spare = Some(old);
        } else if !pcs.main.is_full() {
            self.barn_put_empty(sh, empty);
        } else if pcs.spare.as_ref().is_some_and(|s| !s.is_full()) {
            pcs.swap_main_spare();
            self.barn_put_empty(sh, empty);
        } else {
            let old = core::mem::replace(&mut pcs.main, empty);
            self.barn_put_full(sh, old);
        }
        Some(pcs)
    }

    fn new_empty_sheaf(&self, sh: &Sheaves) -> Option<Box<Sheaf>> {
        self.stat(SlabStat::SheafAlloc);
        Sheaf::try_new(sh.capacity)
    }

    // ----- prefilled sheaves -----

    /// A sheaf holding at least `count` objects, for a section that must
    /// not fail (`kmem_cache_prefill_sheaf`). `count` may exceed the
    /// capacity (an oversize sheaf). `None`: no sheaves, `count` 0, or no
    /// memory.
    pub fn prefill_sheaf(&self, gfp: Gfp, count: usize) -> Option<Box<Sheaf>> {
        let sh = self.sheaves.as_ref()?;
        if count == 0 {
            return None;
        }
        // As an allocation, a fault-injection point.
        if self.pa.platform().should_failslab(gfp) {
            return None;
        }
        if count > sh.capacity {
            self.stat(SlabStat::SheafPrefillOversize);
            let mut sheaf = Sheaf::try_new(count)?;
            self.stat(SlabStat::SheafAlloc);
            return self.refill_sheaf(&mut sheaf, gfp).then_some(sheaf);
        }
        let mut sheaf = {
            let mut pcs = sh.pcs.lock(self.pa.platform());
            match pcs.spare.take() {
                Some(s) => {
                    self.stat(SlabStat::SheafPrefillFast);
                    Some(s)
                }
                None => {
                    drop(pcs);
                    self.stat(SlabStat::SheafPrefillSlow);
                    let got = self.barn_locked(sh, |b| b.full.pop().or_else(|| b.empty.pop()));
                    self.stat(if got.as_ref().is_some_and(|s| s.size > 0) {
                        SlabStat::BarnGet
                    } else {
                        SlabStat::BarnGetFail
                    });
                    got
                }
            }
        };
        if sheaf.is_none() {
            sheaf = Some(self.new_empty_sheaf(sh)?);
        }
        let mut sheaf = sheaf.expect("set above");
        if sheaf.size < count && !self.refill_sheaf(&mut sheaf, gfp) {
            self.flush_sheaf(&mut sheaf);
            self.stat(SlabStat::SheafFree);
            return None;
        }
        Some(sheaf)
    }

    /// Takes one object of a prefilled sheaf (`kmem_cache_alloc_from_sheaf`);
    /// `None` only when the sheaf is empty. Only `Gfp::ZERO` matters.
    pub fn alloc_from_sheaf(&self, sheaf: &mut Sheaf, gfp: Gfp) -> Option<NonNull<u8>> {
        let obj = sheaf.pop()?;
        self.stat(SlabStat::Allocs);
        self.post_alloc(obj, gfp)
    }

    /// Makes `*sheaf` hold at least `count` objects
    /// (`kmem_cache_refill_sheaf`): a standard sheaf is refilled to full
    /// capacity; for more than its capacity it is replaced by an oversize
    /// one and the old sheaf is returned to the cache. On failure `*sheaf`
    /// is untouched.
    pub fn refill_prefilled_sheaf(&self, gfp: Gfp, sheaf: &mut Box<Sheaf>, count: usize) -> bool {
        if sheaf.size >= count {
            return true;
        }
        if sheaf.capacity() >= count {
            return self.refill_sheaf(sheaf, gfp);
        }
        let Some(bigger) = self.prefill_sheaf(gfp, count) else {
            return false;
        };
        let old = core::mem::replace(sheaf, bigger);
        self.return_sheaf(gfp, old);
        true
    }

    /// Gives a prefilled sheaf back (`kmem_cache_return_sheaf`): it becomes
    /// this CPU's spare if there is none, else it goes to the barn refilled,
    /// or is flushed and freed when the barn has enough or memory is short.
    pub fn return_sheaf(&self, gfp: Gfp, mut sheaf: Box<Sheaf>) {
        let Some(sh) = self.sheaves.as_ref() else {
            self.flush_sheaf(&mut sheaf);
            return;
        };
        if sheaf.capacity() == sh.capacity {
            let mut pcs = sh.pcs.lock(self.pa.platform());
            if pcs.spare.is_none()
                && (sheaf.size == 0 || sheaf.is_full() || {
                    // A returned spare is made empty or full, as the
                    // other paths make theirs (SH1 does not need it).
                    self.flush_sheaf(&mut sheaf);
                    true
                })
            {
                pcs.spare = Some(sheaf);
                self.stat(SlabStat::SheafReturnFast);
                return;
            }
            drop(pcs);
            self.stat(SlabStat::SheafReturnSlow);
            if sh.barn.nr_full.load(Relaxed) < MAX_FULL_SHEAVES
                && self.refill_sheaf(&mut sheaf, gfp)
            {
                self.barn_put_full(sh, sheaf);
                return;
            }
        }
        self.flush_sheaf(&mut sheaf);
        self.stat(SlabStat::SheafFree);
    }

    // ----- flushing -----

    /// Flushes `cpu`'s sheaves to the slabs (`pcs_flush_all`), from any
    /// CPU: the spare is taken out and flushed, the main sheaf is emptied
    /// in place (`sheaf_flush_main`). The objects go to the slabs through
    /// the calling CPU.
    pub(super) fn flush_cpu_sheaves(&self, sh: &Sheaves, cpu: CpuId) {
        let spare = sh.pcs.lock_on(cpu, self.pa.platform()).spare.take();
        if let Some(mut spare) = spare {
            self.flush_sheaf(&mut spare);
            self.stat(SlabStat::SheafFree);
        }
        self.flush_main(sh, cpu);
    }

    /// Empties the main sheaf to the slabs, [`PCS_BATCH_MAX`] objects at a
    /// time copied out under the lock and freed without it
    /// (`sheaf_flush_main`).
    fn flush_main(&self, sh: &Sheaves, cpu: CpuId) {
        loop {
            let mut batch = [0u64; PCS_BATCH_MAX];
            let n = {
                let mut pcs = sh.pcs.lock_on(cpu, self.pa.platform());
                let main = &mut pcs.main;
                let n = main.size.min(PCS_BATCH_MAX);
                main.size -= n;
                batch[..n].copy_from_slice(&main.objects[main.size..main.size + n]);
                n
            };
            if n == 0 {
                return;
            }
            for &obj in &batch[..n] {
                self.free_to_slab(obj);
            }
            self.stats
                .add(self.pa.platform().cpu_id(), SlabStat::SheafFlush, n as u64);
        }
    }

    /// Empties the barn: full sheaves are flushed to slabs, all are freed
    /// (`barn_shrink`).
    pub(super) fn barn_shrink(&self, sh: &Sheaves) {
        let (full, empty) = self.barn_locked(sh, |b| {
            (core::mem::take(&mut b.full), core::mem::take(&mut b.empty))
        });
        for mut s in full {
            self.flush_sheaf(&mut s);
        }
        drop(empty);
    }
}

#[cfg(test)]
impl<P: Platform> KmemCache<'_, P> {
    /// Objects in `cpu`'s main and spare sheaves, and in its `rcu_free`
    /// sheaf (taken under that CPU's lock, from any CPU).
    pub(super) fn objects_in_sheaves_of(&self, cpu: CpuId) -> (usize, usize) {
        let sh = self.sheaves.as_ref().expect("a cache with sheaves");
        let pcs = sh.pcs.lock_on(cpu, self.pa.platform());
        let size = |s: &Option<Box<Sheaf>>| s.as_ref().map_or(0, |s| s.size);
        (pcs.main.size + size(&pcs.spare), size(&pcs.rcu_free))
    }
}

/// Why the barn refused a full sheaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BarnRefusal {
    /// It holds [`MAX_FULL_SHEAVES`] already (`-E2BIG`).
    Full,
    /// It has no empty sheaf to give (`-ENOMEM`).
    NoEmpty,
}

// ----- kfree_rcu -----

impl<'a, P: Platform> KmemCache<'a, P> {
    /// Lets this cache free objects after a grace period with
    /// [`KmemCache::kfree_rcu`].
    pub fn with_rcu(mut self: Box<Self>, rcu: &'a Rcu<P>) -> Box<Self> {
        self.rcu = Some(rcu);
        self
    }

    /// Frees `obj` after a grace period (`kfree_rcu`): into this CPU's
    /// `rcu_free` sheaf, which goes through one `call_rcu` when full and
    /// then into the barn as a full sheaf (its objects are reused without
    /// touching slabs); without a sheaf, through RCU's kvfree batching.
    /// Panics if the cache has no RCU ([`KmemCache::with_rcu`]).
    ///
    /// # Safety
    ///
    /// As [`KmemCache::free`]; readers that found `obj` before it was
    /// unpublished may use it until their read-side sections end.
    #[track_caller]
    pub unsafe fn kfree_rcu(&self, obj: NonNull<u8>) {
        let rcu = self.rcu.expect("kfree_rcu on a cache without with_rcu");
        let caller = core::panic::Location::caller();
        let addr = obj.as_ptr() as u64;
        if self.lookup(addr, caller).is_none() || !self.debug_check_free(addr, caller) {
            return;
        }
        self.account_free();
        if let Some(sh) = &self.sheaves
            && self.kfree_rcu_sheaf(sh, rcu, addr)
        {
            self.stat(SlabStat::FreeRcuSheaf);
            return;
        }
        self.stat(SlabStat::FreeRcuSheafFail);
        // SAFETY: the cache outlives the callback: its Drop waits for
        // rcu_barrier; `addr` is our object, given up by the caller.
        unsafe {
            rcu.kvfree_rcu_raw(
                addr as *mut u8,
                self as *const Self as *const (),
                kfree_rcu_fallback::<P>,
            )
        };
    }

    /// `__kfree_rcu_sheaf`: false if no sheaf could be had.
    fn kfree_rcu_sheaf(&self, sh: &Sheaves, rcu: &Rcu<P>, obj: u64) -> bool {
        let platform = self.pa.platform();
        let Some(mut pcs) = sh.pcs.try_lock(platform) else {
            return false;
        };
        if pcs.rcu_free.is_none() {
            if pcs.spare.as_ref().is_some_and(|s| s.size == 0) {
                pcs.rcu_free = pcs.spare.take();
            } else if let Some(empty) = self.barn_get_empty(sh) {
                pcs.rcu_free = Some(empty);
            } else {
                drop(pcs);
                let Some(empty) = self.new_empty_sheaf(sh) else {
                    return false;
                };
                let Some(again) = sh.pcs.try_lock(platform) else {
                    self.barn_put_empty(sh, empty);
                    return false;
                };
                pcs = again;
                if pcs.rcu_free.is_some() {
                    self.barn_put_empty(sh, empty);
                } else {
                    pcs.rcu_free = Some(empty);
                }
            }
        }
        let sheaf = pcs.rcu_free.as_mut().expect("installed above");
        sheaf.push(obj);
        if sheaf.is_full() {
            let sheaf = pcs.rcu_free.take().expect("full");
            // Submitted before unlocking, as 7.0 does, so that a flush of
            // this CPU's rcu_free sheaf cannot miss it.
            self.submit_rcu_sheaf(rcu, sheaf);
        }
        true
    }

    fn submit_rcu_sheaf(&self, rcu: &Rcu<P>, mut sheaf: Box<Sheaf>) {
        sheaf.cache = self as *const Self as usize;
        let head = Box::into_raw(sheaf).cast::<RcuHead>();
        // SAFETY: the sheaf is leaked here and reclaimed only by
        // rcu_free_sheaf; the cache outlives it (Drop waits for rcu_barrier).
        unsafe { rcu.call_rcu(head, rcu_free_sheaf::<P>) };
    }

    /// Submits this CPU's partly filled `rcu_free` sheaf, if any
    /// (`flush_rcu_sheaves_on_cache` for one CPU).
    pub fn flush_rcu_sheaf(&self) {
        self.flush_rcu_sheaf_on(self.pa.platform().cpu_id());
    }

    /// Submits every CPU's partly filled `rcu_free` sheaf
    /// (`flush_rcu_sheaves_on_cache`), from any CPU: what a caller needs
    /// whose frees may have run on several CPUs (a task that migrated).
    pub fn flush_all_rcu_sheaves(&self) {
        for cpu in 0..self.pa.platform().nr_cpus() as u32 {
            self.flush_rcu_sheaf_on(CpuId::new(cpu));
        }
    }

    fn flush_rcu_sheaf_on(&self, cpu: CpuId) {
        let (Some(sh), Some(rcu)) = (&self.sheaves, self.rcu) else {
            return;
        };
        let mut pcs = sh.pcs.lock_on(cpu, self.pa.platform());
        if let Some(sheaf) = pcs.rcu_free.take() {
            if sheaf.size > 0 {
                self.submit_rcu_sheaf(rcu, sheaf);
            } else {
                pcs.rcu_free = Some(sheaf);
            }
        }
    }
}

/// After the grace period of an `rcu_free` sheaf (`rcu_free_sheaf`): keep
/// it in the barn as a full sheaf if the barn has room, else flush it.
///
/// # Safety
///
/// `head` is the head of a sheaf leaked by `submit_rcu_sheaf`, whose cache
/// is still alive.
unsafe fn rcu_free_sheaf<P: Platform>(head: *mut RcuHead) {
    // SAFETY: `rcu_head` is the first field of the repr(C) Sheaf leaked by
    // submit_rcu_sheaf; we take it back once.
    let mut sheaf = unsafe { Box::from_raw(head.cast::<Sheaf>()) };
    // SAFETY: the cache outlives its in-flight sheaves (its Drop runs
    // rcu_barrier first); the lifetime is not used beyond this call.
    let cache = unsafe { &*(sheaf.cache as *const KmemCache<'static, P>) };
    let sh = cache
        .sheaves
        .as_ref()
        .expect("rcu_free sheaves come from sheaf caches");
    if sheaf.size > 0 && sheaf.is_full() && sh.barn.nr_full.load(Relaxed) < MAX_FULL_SHEAVES {
        cache.barn_put_full(sh, sheaf);
        return;
    }
    cache.stat(SlabStat::BarnPutFail);
    cache.flush_sheaf(&mut sheaf);
    cache.barn_put_empty(sh, sheaf);
}

/// Fallback of kfree_rcu without a sheaf: free to the slab after the grace
/// period.
///
/// # Safety
///
/// `ctx` is a live `KmemCache<P>` and `obj` one of its objects.
unsafe fn kfree_rcu_fallback<P: Platform>(ctx: *const (), obj: *mut u8) {
    // SAFETY: the function's contract.
    let cache = unsafe { &*(ctx as *const KmemCache<'static, P>) };
    cache.free_to_slab(obj as u64);
}
