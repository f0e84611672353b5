//! The maple tree: an RCU-safe B-tree of ranges, after Linux's
//! `lib/maple_tree.c`. It holds an address space's VMAs.
//!
//! Each entry covers an inclusive range `[index, last]` of u64 indices;
//! the ranges between entries are NULL (gaps). Leaves are `leaf_64` nodes
//! (16 slots); internal nodes are `range_64` (16 slots) or, in an
//! allocation-range tree, `arange_64` (10 slots) recording the largest gap
//! below each slot so that a free range of a given size is found without
//! visiting every leaf ([`MapleTree::empty_area`]).
//!
//! Readers ([`MapleTree::load`], [`MapleTree::find`], ...) walk the tree
//! under `rcu_read_lock` without the writer's lock. The writer
//! ([`MapleTree::lock`], a [`MaWriter`]) never changes a node a reader can
//! see in a way that shows a torn state: stores that only swap one slot
//! pointer, or move the boundary between two adjacent slots, write in
//! place in an order that keeps every intermediate view valid; everything
//! else builds new nodes, publishes them with a single pointer store,
//! marks the replaced nodes dead and frees them through `kfree_rcu`. A
//! reader that meets a dead node restarts from the root.
//!
//! # Locking
//!
//! 1. The writer lock (`MapleTree::lock`, Linux's `ma_lock`): one
//!    writer at a time, held for a whole store (preallocation, plan,
//!    stores, retiring the old nodes). It is a plain spin mutex: not
//!    interrupt-safe (no tree is written from interrupt context) and it
//!    does not disable preemption, so a store with `Gfp::KERNEL` may
//!    block in the allocator while holding it, as Linux's VMA tree may
//!    under the mmap lock it uses as its external lock
//!    (`MT_FLAGS_LOCK_EXTERN`). The VMA tree takes it under the mmap lock
//!    (`vm`'s lock order). Under it: the node cache's slab locks and the
//!    page allocator's, and RCU's callback queue (`kfree_rcu`).
//! 2. Readers take no lock: `rcu_read_lock` only. They never wait for a
//!    writer, and a writer never waits for them; what they may see is
//!    in `# Ordering`.
//!
//! A node leaves the tree (marked dead) before it is freed, and is freed
//! only through `kfree_rcu`. [`MapleTree::destroy`] frees every node
//! the same way: readers still inside a section finish safely.
//!
//! # Ordering
//!
//! Every node word is an atomic; the writer's stores to them are Release,
//! the readers' loads Acquire. A node's header word holds a dead bit and
//! a count of the in-place stores made to it.
//!
//! The writer (holding the lock), by store type:
//!
//! 1. New nodes (node store, split, rebalance, spanning store, new
//!    root): fill the new nodes completely; store the one pointer that
//!    publishes them (the parent's slot, or the root); then set the dead
//!    bit of every node replaced (`mas_replace_node()`,
//!    `mte_set_node_dead()`); then `kfree_rcu` them. Gaps above are
//!    updated in place afterwards (`mas_update_gap()`).
//! 2. Exact fit, in place: store the slot; bump the leaf's count.
//! 3. Slot store, in place (`mas_wr_slot_store()`), moving pivot `o`
//!    between slots `o` and `o + 1`: first store the new entry into the
//!    slot that gains range (`o` when the store starts at slot `o`'s
//!    first index, else `o + 1`); then the pivot; then bump the count.
//!    Between the two stores the entry shows over the part of its new
//!    range that its slot already had.
//!
//! A reader, in each node from the root down: loads the header; loads
//! the end (`ma_data_end()`; no in-place store of an RCU tree changes
//! it: append is for non-RCU trees); loads pivots from the first up to the one
//! at or above its index, each pivot ONCE, and takes the slot's range
//! from those same loads (`mtree_range_walk()`: a reload may see a slot
//! store's new pivot and give a range without the index);
//! loads the slot; loads the header again and restarts from the root if
//! it changed: the node died, or took an in-place store that the
//! reader's loads may have combined with another. A find or find_prev
//! goes on to the next (previous) slot with the range starting after
//! (ending before) the one it loaded (`mas_next_slot()`), checking the
//! header once at the end.
//!
//! Why this is enough: a reader's loads of a node between its two header
//! loads see the writes of at most one in-place store that was not
//! complete at the first header load (any later store begins after the
//! count bump, which the second load would then see). Within one store,
//! only one pivot moves, and the slot gaining range is stored first:
//! pivots from before the store with the slot's old value give the old
//! state, with its new value a part of the new entry's range, and the
//! new pivot (Acquire) implies the new slot. Linux has no count: as far
//! as we read `mtree_range_walk()`, its readers can combine two in-place
//! stores to a leaf (the `two_slot_stores_on_one_leaf` case of
//! `tests_race.rs`), and its VMA lookups recheck the VMA's bounds
//! (`lock_vma_under_rcu()`); ours give an entry over a range it covered.
//!
//! Height and depth as Linux 6.16 defines them: the root has depth 0 and
//! height 1; an empty tree has height 0. Unlike Linux, a lone entry at
//! index 0 is not kept in the root pointer: a non-empty tree always has a
//! root node, so the `wr_store_root` case folds into `wr_new_root`.

mod hook;
mod node;
pub mod scenarios;
mod validate;
mod write;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_race;
#[cfg(test)]
mod tests_rcu;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::num::NonZeroUsize;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::*};

use crate::page_alloc::PageAlloc;
use crate::platform::Platform;
use crate::rcu::Rcu;
use crate::slab::{KmemCache, KmemCacheArgs, SlabError};
use crate::stats::{Counters, define_stats};

pub use node::{ARANGE64_SLOTS, MAPLE_HEIGHT_MAX, NODE_SIZE, NodeType, RANGE64_SLOTS};
use node::{Enode, range_size};
pub use write::{MaWriter, StoreType};

/// `sheaf_capacity` of the node cache (Linux 6.18's `maple_node_cache`).
pub const MAPLE_NODE_SHEAF_CAPACITY: u32 = 32;

/// Arguments for the node cache (`maple_tree_init()`): 256-byte objects,
/// 256-byte aligned, with sheaves.
pub fn node_cache_args() -> KmemCacheArgs {
    KmemCacheArgs {
        align: NODE_SIZE,
        sheaf_capacity: MAPLE_NODE_SHEAF_CAPACITY,
        ..Default::default()
    }
}

/// The node cache every tree of a machine shares (`maple_tree_init()`):
/// `maple_node` objects with [`node_cache_args`], freed through `rcu`'s
/// `kfree_rcu`.
pub fn node_cache<'a, P: Platform>(
    pa: &'a PageAlloc<P>,
    rcu: &'a Rcu<P>,
) -> Result<Box<KmemCache<'a, P>>, SlabError> {
    Ok(KmemCache::new(pa, "maple_node", NODE_SIZE, node_cache_args())?.with_rcu(rcu))
}

bitflags::bitflags! {
    /// Tree flags (`ma_flags`; the height lives in bits 2..7 of the same
    /// word).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MtFlags: u32 {
        /// Internal nodes track gaps (`MT_FLAGS_ALLOC_RANGE`).
        const ALLOC_RANGE = 0x01;
        /// Readers may walk concurrently: no in-place appends
        /// (`MT_FLAGS_USE_RCU`).
        const USE_RCU = 0x02;
    }
}

const HEIGHT_SHIFT: u32 = 2;
const HEIGHT_MASK: u32 = 0x7c;

/// A value the tree can store: a non-zero word (Linux stores `void *`).
///
/// # Safety
///
/// `from_raw(into_raw(x))` gives back `x`, and `into_raw` is never zero.
pub unsafe trait MapleEntry: Copy {
    fn into_raw(self) -> usize;
    /// # Safety
    ///
    /// `raw` came from [`MapleEntry::into_raw`].
    unsafe fn from_raw(raw: usize) -> Self;
}

// SAFETY: a NonZeroUsize is its own non-zero raw value.
unsafe impl MapleEntry for NonZeroUsize {
    fn into_raw(self) -> usize {
        self.get()
    }
    unsafe fn from_raw(raw: usize) -> Self {
        NonZeroUsize::new(raw).expect("maple: NULL where an entry was stored")
    }
}

// SAFETY: a NonNull's address is non-zero and round-trips.
unsafe impl<U> MapleEntry for NonNull<U> {
    fn into_raw(self) -> usize {
        self.as_ptr() as usize
    }
    unsafe fn from_raw(raw: usize) -> Self {
        NonNull::new(raw as *mut U).expect("maple: NULL where an entry was stored")
    }
}

/// Why an operation failed (Linux's errno values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapleError {
    /// Bad arguments (`-EINVAL`).
    Inval,
    /// No memory for nodes (`-ENOMEM`).
    NoMem,
    /// No gap of the requested size (`-EBUSY`).
    Busy,
}

impl MapleError {
    /// The negative errno.
    pub fn errno(self) -> i32 {
        match self {
            MapleError::Inval => -22,
            MapleError::NoMem => -12,
            MapleError::Busy => -16,
        }
    }
}

define_stats! {
    /// Events of one tree.
    pub enum MapleStat {
        /// Stores by type (`enum store_type`).
        StoreExactFit => "wr_exact_fit",
        StoreAppend => "wr_append",
        StoreSlotStore => "wr_slot_store",
        StoreNodeStore => "wr_node_store",
        StoreSplit => "wr_split_store",
        StoreRebalance => "wr_rebalance",
        StoreSpanning => "wr_spanning_store",
        StoreNewRoot => "wr_new_root",
        /// Nodes requested by preallocation (vacant/sufficient height).
        NodesRequested => "nodes_requested",
        /// What the same stores would have requested with the pre-6.16
        /// full-height worst case.
        NodesRequestedFullHeight => "nodes_requested_full_height",
        /// Nodes a store actually built.
        NodesUsed => "nodes_used",
        /// Preallocated nodes given back unused.
        NodesUnused => "nodes_unused",
        /// A store needed more nodes than it requested (a bug: the store
        /// then allocates with GFP_NOWAIT and may fail).
        PreallocMiss => "prealloc_miss",
        /// Nodes replaced and freed through RCU.
        NodesFreed => "nodes_freed",
        /// Reader walks restarted after meeting a dead node, or a leaf
        /// that took an in-place store while they read it.
        ReadRestart => "read_restart",
    }
}

/// A reader met a dead node, or a leaf whose count of in-place stores
/// changed while it read it, so that its loads may combine two stores
/// ([`node::Node::changed`]): it must restart from the root.
pub(crate) struct Dead;

/// The maple tree, generic over its entry type.
pub struct MapleTree<'a, T: MapleEntry, P: Platform> {
    /// Encoded root node, 0 when empty.
    root: AtomicUsize,
    /// [`MtFlags`] and the height.
    flags: AtomicU32,
    /// Serializes writers (Linux's tree lock; the VMA tree uses the
    /// mmap lock instead, which its callers hold around this one). It
    /// guards the writer's scratch space: a store's plan and big node
    /// (3.4 KiB), kept from one store to the next once allocated so
    /// that a store does not zero them anew (empty until the first
    /// store that can allocate it; a store that cannot uses the stack).
    lock: spin::Mutex<Vec<write::Scratch>>,
    cache: &'a KmemCache<'a, P>,
    rcu: &'a Rcu<P>,
    stats: Counters<{ MapleStat::COUNT }>,
    _entry: PhantomData<T>,
}

// SAFETY: the tree's shared state is atomics and the writer lock; entries
// are plain words handed back to readers, so T must be shareable.
unsafe impl<T: MapleEntry + Send + Sync, P: Platform> Sync for MapleTree<'_, T, P> {}
// SAFETY: moving the tree moves only the root word and its lock; its nodes belong to it, and
// entries are `Send`.
unsafe impl<T: MapleEntry + Send + Sync, P: Platform> Send for MapleTree<'_, T, P> {}

/// Where a walk ended: a slot of a leaf.
#[derive(Clone, Copy, Debug)]
struct LeafSlot {
    node: Enode,
    min: u64,
    max: u64,
    end: usize,
    offset: usize,
    /// The slot's range, from the same pivot loads that chose the slot.
    lo: u64,
    hi: u64,
    /// The leaf's header when the walk entered it.
    header: u64,
}

impl<'a, T: MapleEntry, P: Platform> MapleTree<'a, T, P> {
    /// An empty tree whose nodes come from `cache` (see
    /// [`node_cache_args`]) and are freed after an RCU grace period.
    /// The cache must have RCU ([`KmemCache::with_rcu`]).
    pub fn new(cache: &'a KmemCache<'a, P>, rcu: &'a Rcu<P>, flags: MtFlags) -> Self {
        assert!(
            cache.object_size() >= NODE_SIZE,
            "maple: node cache objects are too small"
        );
        MapleTree {
            root: AtomicUsize::new(0),
            flags: AtomicU32::new(flags.bits()),
            lock: spin::Mutex::new(Vec::new()),
            cache,
            rcu,
            stats: Counters::new(),
            _entry: PhantomData,
        }
    }

    pub fn flags(&self) -> MtFlags {
        MtFlags::from_bits_truncate(self.flags.load(Relaxed))
    }

    /// Levels of nodes (0: empty).
    pub fn height(&self) -> usize {
        ((self.flags.load(Relaxed) & HEIGHT_MASK) >> HEIGHT_SHIFT) as usize
    }

    fn set_height(&self, h: usize) {
        assert!(h <= MAPLE_HEIGHT_MAX, "maple: tree too high");
        let f = self.flags.load(Relaxed) & !HEIGHT_MASK;
        self.flags.store(f | ((h as u32) << HEIGHT_SHIFT), Relaxed);
    }

    /// Turns RCU mode on or off (`mt_set_in_rcu()`); off only while no
    /// reader can walk the tree.
    pub fn set_in_rcu(&self, on: bool) {
        let _w = self.lock.lock();
        if on {
            self.flags.fetch_or(MtFlags::USE_RCU.bits(), Relaxed);
        } else {
            self.flags.fetch_and(!MtFlags::USE_RCU.bits(), Relaxed);
        }
    }

    pub fn stat(&self, s: MapleStat) -> u64 {
        self.stats.get(s as usize)
    }

    fn inc(&self, s: MapleStat, n: u64) {
        self.stats.add(s as usize, n);
    }

    /// The internal node type of this tree.
    fn internal_type(&self) -> NodeType {
        if self.flags().contains(MtFlags::ALLOC_RANGE) {
            NodeType::Arange64
        } else {
            NodeType::Range64
        }
    }

    pub fn is_empty(&self) -> bool {
        self.root.load(Acquire) == 0
    }

    /// Takes the writer lock.
    pub fn lock(&self) -> MaWriter<'_, 'a, T, P> {
        MaWriter::new(self)
    }

    // ----- readers -----

    /// Runs a lockless read under RCU, restarting when it met a dead node.
    fn read<R>(&self, f: impl Fn() -> Result<R, Dead>) -> R {
        loop {
            let _g = self.rcu.read_lock();
            match f() {
                Ok(r) => return r,
                Err(Dead) => self.inc(MapleStat::ReadRestart, 1),
            }
        }
    }

    /// Descends to the leaf slot containing `index` (`mtree_range_walk()`);
    /// `None` for an empty tree. Callers hold RCU or the writer lock.
    fn walk(&self, index: u64) -> Result<Option<LeafSlot>, Dead> {
        hook::reader_load();
        let mut en = Enode(self.root.load(Acquire));
        if en.0 == 0 {
            return Ok(None);
        }
        let (mut min, mut max) = (0, u64::MAX);
        loop {
            let t = en.node_type();
            // SAFETY: the node was reachable from the root inside our read
            // section (or under the writer lock): it is freed, if at all,
            // only after a grace period.
            let node = unsafe { en.node() };
            let header = node.header();
            let end = node.data_end(t, max);
            // Each pivot is loaded once: the slot's range is made of the
            // loads that chose it (see `# Ordering`).
            let (offset, lo, hi) = node.find_slot(index, end, min, max);
            let slot = node.slot(t, offset);
            if node.changed(header) {
                return Err(Dead);
            }
            if t.is_leaf() {
                return Ok(Some(LeafSlot {
                    node: en,
                    min,
                    max,
                    end,
                    offset,
                    lo,
                    hi,
                    header,
                }));
            }
            (en, min, max) = (Enode(slot), lo, hi);
        }
    }

    /// The entry at `index` (`mtree_load()`).
    pub fn load(&self, index: u64) -> Option<T> {
        self.walk_range(index).2
    }

    /// The range containing `index` and its entry, NULL ranges included
    /// (`mas_walk()`): `(first, last, entry)`.
    pub fn walk_range(&self, index: u64) -> (u64, u64, Option<T>) {
        let raw = self.read(|| self.walk_raw(index));
        (
            raw.0,
            raw.1,
            // SAFETY: non-zero slots of leaves hold stored entries.
            (raw.2 != 0).then(|| unsafe { T::from_raw(raw.2) }),
        )
    }

    fn walk_raw(&self, index: u64) -> Result<(u64, u64, usize), Dead> {
        let Some(ls) = self.walk(index)? else {
            return Ok((0, u64::MAX, 0));
        };
        // SAFETY: `walk` just returned this leaf, reached from the root
        // under the caller's RCU read section (or the writer lock): a node
        // is freed only a grace period after it was unlinked, so it is
        // valid for reads until the section ends; `changed` below catches
        // a leaf replaced meanwhile.
        let node = unsafe { ls.node.node() };
        let raw = node.slot(NodeType::Leaf64, ls.offset);
        if node.changed(ls.header) {
            return Err(Dead);
        }
        Ok((ls.lo, ls.hi, raw))
    }

    /// The first entry whose range intersects `[index, max]`
    /// (`mt_find()`): `(first, last, entry)`.
    pub fn find(&self, index: u64, max: u64) -> Option<(u64, u64, T)> {
        if index > max {
            return None;
        }
        let r = self.read(|| self.find_raw(index, max))?;
        // SAFETY: a non-zero leaf slot.
        Some((r.0, r.1, unsafe { T::from_raw(r.2) }))
    }

    fn find_raw(&self, mut index: u64, max: u64) -> Result<Option<(u64, u64, usize)>, Dead> {
        loop {
            let Some(ls) = self.walk(index)? else {
                return Ok(None);
            };
            // SAFETY: `walk` just returned this leaf, reached from the
            // root inside the caller's RCU read section (or under the
            // writer lock); nodes are freed only a grace period after they
            // are unlinked, so it stays valid for reads until the section
            // ends.
            let node = unsafe { ls.node.node() };
            // The next slot starts after the end loaded for this one
            // (`mas_next_slot()`): each pivot is loaded once.
            let (mut i, mut lo, mut hi) = (ls.offset, ls.lo, ls.hi);
            while lo <= max {
                let raw = node.slot(NodeType::Leaf64, i);
                if raw != 0 {
                    if node.changed(ls.header) {
                        return Err(Dead);
                    }
                    return Ok(Some((lo, hi, raw)));
                }
                if i == ls.end {
                    break;
                }
                i += 1;
                lo = hi + 1;
                hi = if i < ls.end { node.pivot(i) } else { ls.max };
            }
            if node.changed(ls.header) {
                return Err(Dead);
            }
            if ls.max >= max {
                return Ok(None);
            }
            index = ls.max + 1;
        }
    }

    /// The last entry whose range intersects `[min, index]`: the entry
    /// at `index` or the one before it (`mt_prev()`/`mas_find_rev()`).
    pub fn find_prev(&self, index: u64, min: u64) -> Option<(u64, u64, T)> {
        if index < min {
            return None;
        }
        let r = self.read(|| self.find_prev_raw(index, min))?;
        // SAFETY: a non-zero leaf slot.
        Some((r.0, r.1, unsafe { T::from_raw(r.2) }))
    }

    fn find_prev_raw(&self, mut index: u64, min: u64) -> Result<Option<(u64, u64, usize)>, Dead> {
        loop {
            let Some(ls) = self.walk(index)? else {
                return Ok(None);
            };
            // SAFETY: `walk` just returned this leaf, reached from the
            // root inside the caller's RCU read section (or under the
            // writer lock); nodes are freed only a grace period after they
            // are unlinked, so it stays valid for reads until the section
            // ends.
            let node = unsafe { ls.node.node() };
            // The previous slot ends before the start loaded for this one
            // (`mas_prev_slot()`): each pivot is loaded once.
            let (mut i, mut lo, mut hi) = (ls.offset, ls.lo, ls.hi);
            while hi >= min {
                let raw = node.slot(NodeType::Leaf64, i);
                if raw != 0 {
                    if node.changed(ls.header) {
                        return Err(Dead);
                    }
                    return Ok(Some((lo, hi, raw)));
                }
                if i == 0 {
                    break;
                }
                i -= 1;
                hi = lo - 1;
                lo = if i == 0 {
                    ls.min
                } else {
                    node.pivot(i - 1) + 1
                };
            }
            if node.changed(ls.header) {
                return Err(Dead);
            }
            if ls.min <= min {
                return Ok(None);
            }
            index = ls.min - 1;
        }
    }

    /// Entries intersecting `[start, end]`, in order. Each step is its own
    /// read-side section; a concurrent writer's changes may or may not be
    /// seen, but every entry returned was stored at some point.
    pub fn iter(&self, start: u64, end: u64) -> Iter<'_, 'a, T, P> {
        Iter {
            tree: self,
            next: Some(start),
            end,
        }
    }

    /// Entries intersecting `[start, end]`, last first.
    pub fn iter_rev(&self, start: u64, end: u64) -> IterRev<'_, 'a, T, P> {
        IterRev {
            tree: self,
            next: Some(end),
            start,
        }
    }

    // ----- gap search -----

    /// The lowest `size` NULL indices within `[min, max]`
    /// (`mas_empty_area()`): the first index of the area. `Inval` for
    /// `min > max`, `size == 0` or a window smaller than `size`; `Busy`
    /// when there is no such gap.
    pub fn empty_area(&self, min: u64, max: u64, size: u64) -> Result<u64, MapleError> {
        self.empty_area_dir(min, max, size, false)
    }

    /// The highest `size` NULL indices within `[min, max]`
    /// (`mas_empty_area_rev()`): the first index of the area, which ends
    /// at the top of the highest fitting gap (clipped to `max`).
    pub fn empty_area_rev(&self, min: u64, max: u64, size: u64) -> Result<u64, MapleError> {
        self.empty_area_dir(min, max, size, true)
    }

    fn empty_area_dir(&self, min: u64, max: u64, size: u64, rev: bool) -> Result<u64, MapleError> {
        if min > max || size == 0 || range_size(min, max) < size {
            return Err(MapleError::Inval);
        }
        let found = self.read(|| {
            hook::reader_load();
            let en = Enode(self.root.load(Acquire));
            if en.0 == 0 {
                return Ok(Some(if rev { max - (size - 1) } else { min }));
            }
            self.gap_search(en, 0, u64::MAX, min, max, size, rev)
        });
        found.ok_or(MapleError::Busy)
    }

    /// Depth-first search for a gap, skipping subtrees whose recorded gap
    /// is too small (arange nodes; other trees visit every leaf).
    #[allow(clippy::too_many_arguments)]
    fn gap_search(
        &self,
        en: Enode,
        nmin: u64,
        nmax: u64,
        min: u64,
        max: u64,
        size: u64,
        rev: bool,
    ) -> Result<Option<u64>, Dead> {
        let t = en.node_type();
        // SAFETY: reached from the root inside the read section.
        let node = unsafe { en.node() };
        let header = node.header();
        let end = node.data_end(t, nmax);
        let visit = |i: usize| -> Result<Option<u64>, Dead> {
            let (lo, hi) = node.slot_range(i, end, nmin, nmax);
            if hi < min || lo > max {
                return Ok(None);
            }
            let slot = node.slot(t, i);
            if t.is_leaf() {
                if slot != 0 {
                    return Ok(None);
                }
                let (a, b) = (lo.max(min), hi.min(max));
                if range_size(a, b) < size {
                    return Ok(None);
                }
                return Ok(Some(if rev { b - (size - 1) } else { a }));
            }
            if t == NodeType::Arange64 && node.gap(i) < size {
                return Ok(None);
            }
            self.gap_search(Enode(slot), lo, hi, min, max, size, rev)
        };
        let mut found = None;
        if rev {
            for i in (0..=end).rev() {
                found = visit(i)?;
                if found.is_some() {
                    break;
                }
            }
        } else {
            for i in 0..=end {
                found = visit(i)?;
                if found.is_some() {
                    break;
                }
            }
        }
        if node.changed(header) {
            return Err(Dead);
        }
        Ok(found)
    }

    // ----- node supply -----

    fn free_node(&self, en: Enode) {
        // SAFETY: the node was unpublished by the caller (the writer) and
        // is marked dead here, before readers' grace period ends.
        let node = unsafe { en.node() };
        node.set_dead();
        hook::writer_step("set_dead");
        self.inc(MapleStat::NodesFreed, 1);
        let obj = NonNull::new(en.ptr().cast::<u8>()).expect("node pointer");
        // SAFETY: the node is an object of our cache, unreachable from the
        // tree now; readers that found it may use it until their
        // read-side sections end, which kfree_rcu waits for.
        unsafe { self.cache.kfree_rcu(obj) };
    }

    /// Frees a whole subtree (teardown, or a replaced root).
    fn free_subtree(&self, en: Enode, min: u64, max: u64) {
        let t = en.node_type();
        if !t.is_leaf() {
            // SAFETY: a node of this tree, still live (the writer holds the
            // lock or owns the tree).
            let node = unsafe { en.node() };
            let end = node.data_end(t, max);
            for i in 0..=end {
                let (lo, hi) = node.slot_range(i, end, min, max);
                self.free_subtree(Enode(node.slot(t, i)), lo, hi);
            }
        }
        self.free_node(en);
    }

    /// Frees every node (`mtree_destroy()`): the tree is empty afterwards.
    pub fn destroy(&self) {
        let _w = self.lock.lock();
        let en = Enode(self.root.swap(0, AcqRel));
        self.set_height(0);
        if en.0 != 0 {
            self.free_subtree(en, 0, u64::MAX);
        }
    }
}

impl<T: MapleEntry, P: Platform> Drop for MapleTree<'_, T, P> {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// Forward iterator of [`MapleTree::iter`].
pub struct Iter<'t, 'a, T: MapleEntry, P: Platform> {
    tree: &'t MapleTree<'a, T, P>,
    next: Option<u64>,
    end: u64,
}

impl<T: MapleEntry, P: Platform> Iterator for Iter<'_, '_, T, P> {
    type Item = (u64, u64, T);

    fn next(&mut self) -> Option<Self::Item> {
        let found = self.tree.find(self.next?, self.end);
        self.next = match found {
            Some((_, hi, _)) if hi < self.end => Some(hi + 1),
            _ => None,
        };
        found
    }
}

/// Backward iterator of [`MapleTree::iter_rev`].
pub struct IterRev<'t, 'a, T: MapleEntry, P: Platform> {
    tree: &'t MapleTree<'a, T, P>,
    next: Option<u64>,
    start: u64,
}

impl<T: MapleEntry, P: Platform> Iterator for IterRev<'_, '_, T, P> {
    type Item = (u64, u64, T);

    fn next(&mut self) -> Option<Self::Item> {
        let found = self.tree.find_prev(self.next?, self.start);
        self.next = match found {
            Some((lo, _, _)) if lo > self.start => Some(lo - 1),
            _ => None,
        };
        found
    }
}
