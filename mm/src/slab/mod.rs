//! SLUB: the object allocator (Linux's `mm/slub.c`).
//!
//! A [`KmemCache`] hands out objects of one size, carved from *slabs*:
//! buddy blocks of an order chosen so that little is wasted. Free objects
//! of a slab are chained through a free pointer stored inside each of them,
//! obfuscated as with `SLAB_FREELIST_HARDENED` so that a corrupted pointer
//! is caught rather than followed ([`freelist`]).
//!
//! ```text
//!  alloc:  this CPU's freelist ──empty──▶ CPU slab's own freelist (remote
//!          frees) ──empty──▶ a slab from the node partial list ──none──▶
//!          a new slab from the page allocator
//!  free:   object of this CPU's slab ──▶ push on this CPU's freelist
//!          otherwise ──▶ its slab's freelist under list_lock; a full slab
//!          joins the partial list, an empty one beyond `min_partial`
//!          goes back to the page allocator
//! ```
//!
//! Caches created with a `sheaf_capacity` get the 6.18 layer above this
//! one: per-CPU sheaves and a barn ([`sheaf`]), and `kfree_rcu` batching
//! through `rcu_free` sheaves.
//!
//! Files: this one has the cache ([`KmemCache`]: creation, `alloc`,
//! `free`, destruction); [`cpu_slab`] the CPU slab (`kmem_cache_cpu`,
//! fast paths, refill, deactivation); [`node`] the node's partial list,
//! new and discarded slabs, the slow free and shrinking; [`object`] the
//! raw accesses to object memory and the debug checks; [`freelist`] the
//! slab descriptor and the hardened free pointer; [`sheaf`] the sheaves
//! and the barn; [`kmalloc`] the size classes; [`stats`] the counters.
//!
//! # Invariants
//!
//! See [`freelist`] (S1..S3). In addition:
//! - K1: `nr_slabs` counts the cache's slabs (CPU, partial and full), and
//!   `nr_pages` the frames they hold (a fallback-order slab holds fewer than
//!   `pagesperslab`).
//! - K2: an object is in exactly one place: allocated, on a CPU freelist,
//!   or on its slab's freelist.
//!
//! # Locking
//!
//! The lock order of the whole allocator, sheaves included (as
//! `mm/slub.c`'s header numbers it; Linux takes `list_lock` outside the
//! CPU slab lock, we take it inside):
//!
//! 1. a CPU's sheaves (`Sheaves::pcs`, a [`LocalTryLock`]; [`sheaf`]):
//!    trylock on paths that may run in interrupt context (alloc, free,
//!    kfree_rcu); `lock` where the caller may block (the relock after a
//!    refill, prefill, return); `lock_on` to flush any CPU's sheaves from
//!    the calling one (shrink, destroy), which makes that CPU's trylocks
//!    fail meanwhile (its objects take the slab path). It also guards
//!    that CPU's `AllocPcs` and `FreePcs` counter slots, which the fast
//!    paths bump with a plain load and store under it
//!    (`SlabStats::inc_locked`). Held across a barn exchange, the
//!    queueing of an `rcu_free` sheaf (RCU's callback lock) and, in
//!    `return_sheaf`, the flush of a partly used sheaf to the slabs (3, 4);
//!    never across a refill from the slabs nor a sheaf allocation.
//! 2. the barn lock (interrupts off): the barn's full and empty lists.
//!    Its counts are read racily before the lock, to fail fast, and again
//!    under it. Nothing is taken under it.
//! 3. the CPU slab lock (`cpu`, a [`LocalTryLock`]): trylock on alloc and
//!    free, so that an interrupt that finds it held goes to the node (as
//!    does this CPU while another one flushes it); `lock_on` when
//!    flushing, from any CPU, one CPU's lock at a time. Never taken with
//!    2 held. A new slab is allocated from the page allocator under it
//!    (but not under 4).
//! 4. the node's `list_lock` (interrupts off): the partial list, and the
//!    freelist and counters of every slab (S2).
//!
//! # Context
//!
//! `alloc` and `free` never sleep and may run in interrupt context.
//! `flush_cpu_slab` acts on the calling CPU's slab; `shrink` and the
//! cache's destruction flush every CPU's sheaves and slab from the calling
//! CPU (task context).
//!
//! # Debugging
//!
//! `SlabFlags::RED_ZONE` puts a guard word after each object that records
//! whether it is allocated (0xcc..) or free (0xbb..): a write past the end
//! and a double free are caught at free. `SlabFlags::POISON` fills free
//! objects with 0x6b (last byte 0xa5): a write after free is caught at the
//! next allocation. Reports name the cache, the object and the call site.
//! Without debugging, a free of the object already at the head of the
//! freelist is still caught (`set_freepointer`'s hardened check), but only
//! below the sheaves: on a cache with sheaves an immediate double free
//! lands twice in the sheaf and is neither caught nor counted, as in Linux
//! 6.18 (objects in sheaves count as allocated to the checks).

mod cpu_slab;
mod freelist;
mod kmalloc;
mod node;
mod object;
mod sheaf;
mod stats;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sheaf;
#[cfg(test)]
mod tests_stress;

use alloc::boxed::Box;
use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use kmalloc::{KMALLOC_MAX_CACHE_SIZE, KMALLOC_SIZES, Kmalloc};
pub use sheaf::{MAX_EMPTY_SHEAVES, MAX_FULL_SHEAVES, Sheaf};
pub use stats::{SlabStat, SlabStats};

use crate::addr::{CpuId, Order};
use crate::gfp::Gfp;
use crate::memmap::PageList;
use crate::page_alloc::{PAGE_ALLOC_COSTLY_ORDER, PageAlloc};
use crate::platform::Platform;
use crate::rcu::Rcu;
use crate::sync::{LocalTryLock, SpinLockIrq};
use cpu_slab::CpuSlab;
use freelist::Slab;
use node::KmemCacheNode;

bitflags::bitflags! {
    /// Cache creation flags (`SLAB_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    pub struct SlabFlags: u32 {
        /// Align objects to cache lines (`SLAB_HWCACHE_ALIGN`).
        const HWCACHE_ALIGN = 1 << 0;
        /// Guard word after each object (`SLAB_RED_ZONE`).
        const RED_ZONE = 1 << 1;
        /// Poison free objects (`SLAB_POISON`).
        const POISON = 1 << 2;
    }
}

/// Optional arguments of [`KmemCache::new`] (`struct kmem_cache_args`).
#[derive(Clone, Copy, Debug, Default)]
pub struct KmemCacheArgs {
    /// Minimum object alignment (0: the word size).
    pub align: usize,
    pub flags: SlabFlags,
    /// Objects per per-CPU sheaf; 0: no sheaves. Ignored for debug caches.
    pub sheaf_capacity: u32,
}

/// Why a cache could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabError {
    /// Object size 0 or above what one slab of the largest order holds.
    BadSize(usize),
    /// Alignment not a power of two or above a page.
    BadAlign(usize),
}

/// A `/proc/slabinfo` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabInfo {
    pub active_objs: u64,
    pub num_objs: u64,
    pub objsize: usize,
    pub objperslab: u32,
    pub pagesperslab: u32,
    pub num_slabs: u64,
}

/// Where an object's pieces are.
#[derive(Clone, Copy, Debug)]
struct Layout {
    object_size: usize,
    /// Slot size: object, red zone, free pointer, alignment padding.
    size: usize,
    /// `ceil(2^64 / size)`, to test divisibility by `size` without a
    /// division ([`Layout::is_slot_offset`]; Linux keeps
    /// `s->reciprocal_size` for `obj_to_index` likewise).
    size_recip: u64,
    /// Free pointer offset within the slot.
    offset: usize,
    /// Red zone offset, if any.
    red_zone: Option<usize>,
    order: Order,
    objects: u32,
    /// The smallest order that holds one object (`s->min`).
    min_order: Order,
}

/// A cache of equal-sized objects (`struct kmem_cache`). Created boxed:
/// slabs point back to it, so it never moves.
pub struct KmemCache<'a, P: Platform> {
    name: &'static str,
    layout: Layout,
    flags: SlabFlags,
    /// Empty slabs kept on the partial list before freeing (`min_partial`).
    min_partial: usize,
    /// Free-pointer obfuscation key (`s->random`).
    random: u64,
    pa: &'a PageAlloc<P>,
    cpu: LocalTryLock<CpuSlab>,
    list_lock: SpinLockIrq<KmemCacheNode>,
    /// Partial slabs (racy mirror for reports). Write: list_lock.
    nr_partial: AtomicU64,
    /// Slabs of this cache (K1).
    nr_slabs: AtomicU64,
    /// Object slots in those slabs (slabs of a fallback order hold fewer).
    nr_objects: AtomicU64,
    /// Frames of those slabs (K1; Linux's `NR_SLAB_*_B` in pages).
    nr_pages: AtomicU64,
    /// Event counters, per CPU. Objects allocated and not freed are
    /// `Allocs - Frees` (no shared counter is written per object).
    stats: SlabStats,
    /// Per-CPU sheaves and the barn, if the cache has them.
    sheaves: Option<sheaf::Sheaves>,
    /// RCU, for `kfree_rcu` (set with [`KmemCache::with_rcu`]).
    rcu: Option<&'a Rcu<P>>,
}

impl Layout {
    /// Whether a byte offset into a slab is the start of a slot, i.e. a
    /// multiple of `size`. For `off` and `size` below 2^32, `off` is a
    /// multiple of `size` exactly when `off * ceil(2^64 / size)`, wrapped,
    /// is below `ceil(2^64 / size)` (Lemire, Kaser and Kurz, "Faster
    /// remainder by direct computation", 2019): a multiply instead of a
    /// division on every free.
    #[inline]
    fn is_slot_offset(&self, off: u64) -> bool {
        debug_assert!(off < 1 << 32);
        off.wrapping_mul(self.size_recip) < self.size_recip
    }
}

// Offsets within a slab fit in 32 bits (is_slot_offset).
const _: () = assert!(Slab::bytes(Order::MAX) <= 1 << 32);

/// `calculate_order`: the smallest order whose leftover is within 1/16 of
/// the slab (then 1/8, 1/4), with at least `min_objects` when possible.
fn calculate_order(size: usize, nr_cpus: usize) -> Order {
    let max_order = PAGE_ALLOC_COSTLY_ORDER;
    let fls = usize::BITS - nr_cpus.leading_zeros();
    let max_objects = max_order.bytes() as usize / size;
    let min_objects = (4 * (fls as usize + 1)).min(max_objects).max(1);
    let min_order = Order::for_bytes((min_objects * size) as u64).unwrap_or(Order::MAX);
    for fraction in [16, 8, 4] {
        for order in (min_order.min(max_order).get()..=max_order.get()).map(Order::new) {
            let bytes = order.bytes() as usize;
            if bytes / size > 0 && bytes % size <= bytes / fraction {
                return order;
            }
        }
    }
    Order::for_bytes(size as u64).unwrap_or(Order::MAX)
}

impl<'a, P: Platform> KmemCache<'a, P> {
    /// Creates a cache of `object_size`-byte objects (`kmem_cache_create`).
    pub fn new(
        pa: &'a PageAlloc<P>,
        name: &'static str,
        object_size: usize,
        args: KmemCacheArgs,
    ) -> Result<Box<Self>, SlabError> {
        let word = core::mem::size_of::<u64>();
        let mut align = args.align.max(word);
        if !align.is_power_of_two() || align > crate::addr::PAGE_SIZE as usize {
            return Err(SlabError::BadAlign(args.align));
        }
        if args.flags.contains(SlabFlags::HWCACHE_ALIGN) {
            // calculate_alignment: a cache line, halved while objects fit twice.
            let mut ralign = 64;
            while object_size <= ralign / 2 && ralign > word {
                ralign /= 2;
            }
            align = align.max(ralign);
        }
        let max = PAGE_ALLOC_COSTLY_ORDER.bytes() as usize;
        if object_size == 0 || object_size > max {
            return Err(SlabError::BadSize(object_size));
        }
        // calculate_sizes: the object, a red zone, and for debug caches the
        // free pointer after them; else the free pointer mid-object.
        let debug = args
            .flags
            .intersects(SlabFlags::RED_ZONE | SlabFlags::POISON);
        let mut inuse = object_size.next_multiple_of(word);
        let red_zone = args.flags.contains(SlabFlags::RED_ZONE).then(|| {
            inuse += word;
            inuse - word
        });
        let offset = if debug {
            inuse += word;
            inuse - word
        } else {
            (object_size / 2) / word * word
        };
        let size = inuse.next_multiple_of(align);
        if size > max {
            return Err(SlabError::BadSize(object_size));
        }
        let order = calculate_order(size, pa.platform().nr_cpus());
        let objects = (Slab::bytes(order) / size) as u32;
        let nr_cpus = pa.platform().nr_cpus();
        // min_partial = clamp(ilog2(size) / 2, 5, 10).
        let min_partial = ((usize::BITS - 1 - size.leading_zeros()) as usize / 2).clamp(5, 10);
        // A per-cache key from the cache's parameters and the clock.
        let random = (pa.platform().now_ns() ^ (size as u64) << 32 ^ object_size as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            | 1;
        Ok(Box::new(Self {
            name,
            layout: Layout {
                object_size,
                size,
                size_recip: u64::MAX / size as u64 + 1,
                offset,
                red_zone,
                order,
                objects,
                // Sizes were checked above: at most a costly-order block.
                min_order: Order::for_bytes(size as u64).unwrap_or(Order::MAX),
            },
            flags: args.flags,
            min_partial,
            random,
            pa,
            cpu: LocalTryLock::new(nr_cpus, |_| CpuSlab {
                slab: None,
                freelist: 0,
            }),
            list_lock: SpinLockIrq::new(KmemCacheNode {
                partial: PageList::new(),
            }),
            nr_partial: AtomicU64::new(0),
            nr_slabs: AtomicU64::new(0),
            nr_objects: AtomicU64::new(0),
            nr_pages: AtomicU64::new(0),
            stats: SlabStats::new(nr_cpus),
            // Linux ignores sheaf_capacity for debug caches.
            sheaves: (args.sheaf_capacity > 0 && !debug)
                .then(|| sheaf::Sheaves::new(nr_cpus, args.sheaf_capacity as usize)),
            rcu: None,
        }))
    }

    /// The cache's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Bytes usable in each object.
    pub fn object_size(&self) -> usize {
        self.layout.object_size
    }

    /// Whether the cache has per-CPU sheaves (and so prefilled sheaves).
    pub fn has_sheaves(&self) -> bool {
        self.sheaves.is_some()
    }

    /// The event counters.
    pub fn stats(&self) -> &SlabStats {
        &self.stats
    }

    /// A `/proc/slabinfo` line for this cache.
    pub fn info(&self) -> SlabInfo {
        let slabs = self.nr_slabs.load(Relaxed);
        SlabInfo {
            active_objs: self.nr_active(),
            num_objs: self.nr_objects.load(Relaxed),
            objsize: self.layout.size,
            objperslab: self.layout.objects,
            pagesperslab: self.layout.order.nr_pages() as u32,
            num_slabs: slabs,
        }
    }

    /// Frames the cache's slabs hold now (K1): what it takes from the page
    /// allocator, fallback-order slabs counted at their own order, unlike
    /// `info().num_slabs * info().pagesperslab`.
    pub fn nr_pages(&self) -> u64 {
        self.nr_pages.load(Relaxed)
    }

    /// Objects allocated and not freed (racy: the two sums are read one
    /// after the other).
    fn nr_active(&self) -> u64 {
        let frees = self.stats.get(SlabStat::Frees);
        self.stats.get(SlabStat::Allocs).saturating_sub(frees)
    }

    /// Counts an event on this CPU.
    #[inline]
    fn stat(&self, s: SlabStat) {
        self.stats.inc(self.pa.platform().cpu_id(), s);
    }

    fn id(&self) -> u64 {
        self as *const Self as u64
    }

    // ----- allocation -----

    /// Allocates an object (`kmem_cache_alloc`). `None` when memory is out.
    /// Caches with sheaves try this CPU's sheaf first.
    #[inline]
    pub fn alloc(&self, gfp: Gfp) -> Option<NonNull<u8>> {
        // slab_pre_alloc_hook(): the fault-injection point.
        if self.pa.platform().should_failslab(gfp) {
            return None;
        }
        if let Some(sh) = &self.sheaves
            && let Some(obj) = self.alloc_from_pcs(sh, gfp)
        {
            // Counted as `AllocPcs` under the sheaves lock (stats.rs).
            return self.post_alloc(obj, gfp);
        }
        let obj = self.alloc_classic(gfp)?;
        self.stat(SlabStat::Allocs);
        self.post_alloc(obj, gfp)
    }

    /// Debug checks and zeroing of an object being handed out; the
    /// caller has counted it.
    #[inline]
    fn post_alloc(&self, obj: u64, gfp: Gfp) -> Option<NonNull<u8>> {
        self.debug_check_alloc(obj);
        if gfp.contains(Gfp::ZERO) {
            self.fill(obj, self.layout.object_size, 0);
        }
        NonNull::new(obj as *mut u8)
    }

    /// Allocates `out.len()` objects, or none (`kmem_cache_alloc_bulk`).
    pub fn alloc_bulk(&self, gfp: Gfp, out: &mut [*mut u8]) -> usize {
        for i in 0..out.len() {
            match self.alloc(gfp) {
                Some(p) => out[i] = p.as_ptr(),
                None => {
                    // SAFETY: the first i entries were just allocated here.
                    unsafe { self.free_bulk(&out[..i]) };
                    return 0;
                }
            }
        }
        out.len()
    }

    // ----- free -----

    /// Frees an object of this cache (`kmem_cache_free`). A pointer that
    /// is not an allocated object of this cache is reported and refused.
    ///
    /// # Safety
    ///
    /// If `obj` is an object of this cache, the caller owns it and does not
    /// use it after this call.
    #[track_caller]
    pub unsafe fn free(&self, obj: NonNull<u8>) {
        let caller = Location::caller();
        let addr = obj.as_ptr() as u64;
        let Some(slab) = self.lookup(addr, caller) else {
            return;
        };
        if !self.debug_check_free(addr, caller) {
            return;
        }
        if let Some(sh) = &self.sheaves
            && self.free_to_pcs(sh, addr)
        {
            return; // Counted as `FreePcs` under the sheaves lock.
        }
        if self.free_classic(slab, addr, caller) {
            self.account_free();
        }
    }

    fn account_free(&self) {
        self.stat(SlabStat::Frees);
    }

    /// Frees several objects (`kmem_cache_free_bulk`).
    ///
    /// # Safety
    ///
    /// As [`KmemCache::free`], for each object.
    #[track_caller]
    pub unsafe fn free_bulk(&self, objs: &[*mut u8]) {
        for &p in objs {
            if let Some(p) = NonNull::new(p) {
                // SAFETY: forwarded from the caller.
                unsafe { self.free(p) };
            }
        }
    }

    // ----- flushing and shrinking -----

    /// Flushes every CPU's sheaves, the barn, then every CPU's slab
    /// (`flush_all`). Sheaves go first: their objects are freed through
    /// this CPU's slab, which is flushed with the others after them.
    fn flush_all(&self) {
        let nr_cpus = self.pa.platform().nr_cpus() as u32;
        if let Some(sh) = &self.sheaves {
            for cpu in 0..nr_cpus {
                self.flush_cpu_sheaves(sh, CpuId::new(cpu));
            }
            self.barn_shrink(sh);
        }
        for cpu in 0..nr_cpus {
            self.flush_cpu_slab_on(CpuId::new(cpu));
        }
    }
}

impl<P: Platform> Drop for KmemCache<'_, P> {
    /// `kmem_cache_destroy`: everything must have been freed; leftover
    /// objects are reported and their slabs leaked, never freed under them.
    fn drop(&mut self) {
        if let Some(rcu) = self.rcu {
            // rcu_free sheaves, on any CPU or in flight, hold objects and
            // point at this cache.
            self.flush_all_rcu_sheaves();
            rcu.rcu_barrier();
        }
        self.shrink();
        let left = self.nr_slabs.load(Relaxed);
        if left > 0 {
            log::error!(
                "BUG {}: kmem_cache_destroy: {} objects remain in {left} slabs; slabs leaked",
                self.name,
                self.nr_active()
            );
            self.pa.platform().slab_leak(self.name, self.nr_active());
        }
    }
}
