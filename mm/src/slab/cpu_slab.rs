//! The CPU slab (`struct kmem_cache_cpu`): each CPU allocates from and
//! frees to one slab of its own through a lockless-in-spirit freelist
//! (here under the CPU slab lock, lock 3 of the order in `slab/mod.rs`);
//! `___slab_alloc()` refills it from the slab's remote frees or the node's
//! partial list, `deactivate_slab()` hands it back.

use core::panic::Location;
use core::sync::atomic::Ordering::Relaxed;

use super::{KmemCache, SlabStat};
use crate::addr::{CpuId, Pfn};
use crate::gfp::Gfp;
use crate::platform::Platform;

/// This CPU's slab and freelist (`kmem_cache_cpu`).
pub(super) struct CpuSlab {
    pub(super) slab: Option<Pfn>,
    /// First free object (raw address) of the CPU freelist, 0 if empty.
    pub(super) freelist: u64,
}

impl<'a, P: Platform> KmemCache<'a, P> {
    /// One object from the slabs, below the sheaves (`__slab_alloc_node`).
    pub(super) fn alloc_classic(&self, gfp: Gfp) -> Option<u64> {
        let platform = self.pa.platform();
        let obj = match self.cpu.try_lock(platform) {
            Some(mut cpu) if cpu.freelist != 0 => {
                let slab = cpu.slab.expect("a CPU freelist has a CPU slab");
                let (obj, next) = self.pop_freelist(slab, cpu.freelist);
                cpu.freelist = next;
                self.stat(SlabStat::AllocFastpath);
                obj
            }
            Some(mut cpu) => self.alloc_slow(&mut cpu, gfp)?,
            None => self.alloc_no_cpu(gfp)?,
        };
        Some(obj)
    }

    /// Refills this CPU's freelist and takes one object (`___slab_alloc`).
    pub(super) fn alloc_slow(&self, cpu: &mut CpuSlab, gfp: Gfp) -> Option<u64> {
        self.stat(SlabStat::AllocSlowpath);
        {
            let mut node = self.list_lock.lock_irqsave(self.pa.platform());
            if let Some(pfn) = cpu.slab {
                let slab = self.slab(pfn);
                let remote = slab.freelist();
                if remote != 0 {
                    // Objects freed remotely to our CPU slab: take them all.
                    slab.set_freelist(0);
                    slab.set_counters(slab.objects(), true);
                    self.stat(SlabStat::AllocRefill);
                    return Some(self.take_first(cpu, pfn, remote));
                }
                // Full: it leaves the CPU and sits on no list (S2).
                slab.set_counters(slab.objects(), false);
                cpu.slab = None;
            }
            if let Some(pfn) = node.partial.pop_front(self.pa.memmap()) {
                self.nr_partial.fetch_sub(1, Relaxed);
                let slab = self.slab(pfn);
                let list = slab.freelist();
                slab.set_freelist(0);
                slab.set_counters(slab.objects(), true);
                self.stat(SlabStat::AllocFromPartial);
                return Some(self.take_first(cpu, pfn, list));
            }
        }
        let slab = self.new_slab(gfp)?;
        let list = slab.freelist();
        slab.set_freelist(0);
        slab.set_counters(slab.objects(), true);
        Some(self.take_first(cpu, slab.pfn, list))
    }

    /// Installs `list` of frozen slab `pfn` as this CPU's and pops one.
    pub(super) fn take_first(&self, cpu: &mut CpuSlab, pfn: Pfn, list: u64) -> u64 {
        let (obj, next) = self.pop_freelist(pfn, list);
        cpu.slab = Some(pfn);
        cpu.freelist = next;
        obj
    }

    /// Frees to the slabs, below the sheaves (`do_slab_free`). False if
    /// the free was refused (double free). Does not count user frees: the
    /// sheaf layer also flushes through here.
    pub(super) fn free_classic(
        &self,
        slab: Pfn,
        addr: u64,
        caller: &'static Location<'static>,
    ) -> bool {
        let platform = self.pa.platform();
        if let Some(mut cpu) = self.cpu.try_lock(platform)
            && cpu.slab == Some(slab)
        {
            if cpu.freelist == addr {
                drop(cpu);
                self.report_double_free(addr, caller);
                return false;
            }
            self.debug_mark_free(addr);
            self.set_freepointer(addr, cpu.freelist);
            cpu.freelist = addr;
            self.stat(SlabStat::FreeFastpath);
            return true;
        }
        self.slab_free_slow(slab, addr, caller)
    }

    /// Hands this CPU's slab back to the node (`deactivate_slab`): its CPU
    /// freelist rejoins the slab's, and the slab goes to the partial list,
    /// or back to the page allocator if empty and enough are kept.
    pub fn flush_cpu_slab(&self) {
        self.flush_cpu_slab_on(self.pa.platform().cpu_id());
    }

    /// [`KmemCache::flush_cpu_slab`] for any CPU's slab, taken under that
    /// CPU's lock from here (`flush_cpu_slab` run by `flush_all`).
    pub(super) fn flush_cpu_slab_on(&self, cpu_id: CpuId) {
        let platform = self.pa.platform();
        let mut cpu = self.cpu.lock_on(cpu_id, platform);
        let Some(pfn) = cpu.slab.take() else {
            return;
        };
        let mut list = core::mem::take(&mut cpu.freelist);
        self.stat(SlabStat::DeactivateSlab);
        let discard = {
            let mut node = self.list_lock.lock_irqsave(platform);
            let slab = self.slab(pfn);
            let mut inuse = slab.inuse();
            while list != 0 {
                let (obj, next) = self.pop_freelist(pfn, list);
                self.set_freepointer(obj, slab.freelist());
                slab.set_freelist(obj);
                inuse -= 1;
                list = next;
            }
            slab.set_counters(inuse, false);
            if inuse == 0 && node.partial.len() >= self.min_partial {
                true
            } else {
                if slab.freelist() != 0 {
                    node.partial.push_back(self.pa.memmap(), pfn);
                    self.nr_partial.fetch_add(1, Relaxed);
                }
                false
            }
        };
        drop(cpu);
        if discard {
            self.discard_slab(self.slab(pfn));
        }
    }
}
