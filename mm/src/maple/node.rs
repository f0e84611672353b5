//! Maple tree nodes: 256 bytes, 256-byte aligned, with the node type kept
//! in the low bits of every pointer to a node (an "encoded node", Linux's
//! `struct maple_enode`).
//!
//! Layout of the 31 data words after the header word, by type:
//!
//! ```text
//! leaf_64, range_64:  pivot[0..15]  slot[0..16]            (meta in slot[15] when not full)
//! arange_64:          pivot[0..9]   slot[0..10]  gap[0..10]  meta  (unused)
//! ```
//!
//! Slot `i` covers from `pivot[i - 1] + 1` (the node's minimum for slot 0)
//! to `pivot[i]`; the last used slot (`end`) extends to the node's maximum,
//! which is also stored as `pivot[end]` when there is such a pivot. Unused
//! pivots are zero. Readers find `end` as Linux's `ma_data_end()` does:
//! from the metadata of an arange node; for the others from `pivot[14]`
//! (zero: the node is not full and `end` is in the metadata kept in the
//! last slot; equal to the maximum: `end` is 14; otherwise 15).
//!
//! Every word is an atomic: RCU readers walk nodes while the writer fills
//! new ones and, for the in-place store types, updates live ones. Published
//! content is read with acquire loads, so that a node is seen complete once
//! the pointer to it is. The header word (before the 31 data words) holds
//! the dead bit and the count of in-place stores, which readers load
//! before and after reading a node (the protocol: `# Ordering` in
//! mod.rs).

use core::sync::atomic::{AtomicU64, Ordering::*};

/// Bytes in a node (and its alignment).
pub const NODE_SIZE: usize = 256;
/// Slots of a leaf_64 or range_64 node (15 pivots).
pub const RANGE64_SLOTS: usize = 16;
/// Slots of an arange_64 node (9 pivots, 10 gaps).
pub const ARANGE64_SLOTS: usize = 10;
/// Deepest tree supported (`MAPLE_HEIGHT_MAX`).
pub const MAPLE_HEIGHT_MAX: usize = 31;

const TYPE_SHIFT: usize = 3;
const TYPE_MASK: usize = 0x0f << TYPE_SHIFT;
/// Bit 0 of the header: the node is dead (Linux points the parent at the
/// node itself; we keep the walk path in the write state instead of
/// parent pointers, so the header only records death).
const DEAD: u64 = 1;
/// The bits above count the in-place stores made to the node
/// ([`Node::end_in_place_store`]).
const SEQ_ONE: u64 = 2;

/// Node types (`enum maple_type`; `maple_dense` is not used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum NodeType {
    /// Leaf: slots hold user entries.
    Leaf64 = 1,
    /// Internal node of a plain range tree.
    Range64 = 2,
    /// Internal node of an allocation-range tree, with per-slot gaps.
    Arange64 = 3,
}

impl NodeType {
    /// Slots (`mt_slots[]`).
    #[inline]
    pub const fn slots(self) -> usize {
        match self {
            NodeType::Arange64 => ARANGE64_SLOTS,
            _ => RANGE64_SLOTS,
        }
    }

    /// Stored pivots (`mt_pivots[]`).
    #[inline]
    pub const fn pivots(self) -> usize {
        self.slots() - 1
    }

    /// `mt_min_slots[]`: a node other than the root is deficient when its
    /// last used slot is below this, i.e. it holds fewer than this + 1
    /// slots.
    #[inline]
    pub const fn min_slots(self) -> usize {
        match self {
            NodeType::Arange64 => ARANGE64_SLOTS / 2 - 1,
            _ => RANGE64_SLOTS / 2 - 2,
        }
    }

    /// Fewest slots a non-root node may hold.
    #[inline]
    pub const fn min_count(self) -> usize {
        self.min_slots() + 1
    }

    #[inline]
    pub const fn is_leaf(self) -> bool {
        matches!(self, NodeType::Leaf64)
    }

    /// Index of the metadata word.
    #[inline]
    const fn meta_word(self) -> usize {
        match self {
            NodeType::Arange64 => 29,
            _ => 30,
        }
    }

    #[inline]
    fn from_bits(bits: usize) -> NodeType {
        match bits {
            1 => NodeType::Leaf64,
            2 => NodeType::Range64,
            3 => NodeType::Arange64,
            _ => panic!("maple: bad node type {bits} in an encoded node"),
        }
    }
}

/// One node. Word 0 is the header; words 1..32 hold the pivots, slots,
/// gaps and metadata of the node's type.
#[repr(C, align(256))]
pub struct Node {
    /// `DEAD` in bit 0, the count of in-place stores above it.
    /// Write: the writer (lock held), with Release: an in-place store
    /// bumps the count after its stores to the node; `set_dead` after
    /// the node was unpublished. Read: Acquire, by readers before and
    /// after they read the node (a change means: restart), pairing with
    /// both Release stores.
    header: AtomicU64,
    w: [AtomicU64; 31],
}

const _: () = assert!(core::mem::size_of::<Node>() == NODE_SIZE);

/// An encoded node pointer: the node's address with its type in bits 3–6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enode(pub usize);

impl Enode {
    #[inline]
    pub fn new(node: *const Node, t: NodeType) -> Enode {
        debug_assert!((node as usize).is_multiple_of(NODE_SIZE));
        Enode(node as usize | ((t as usize) << TYPE_SHIFT))
    }

    #[inline]
    pub fn node_type(self) -> NodeType {
        NodeType::from_bits((self.0 & TYPE_MASK) >> TYPE_SHIFT)
    }

    #[inline]
    pub fn ptr(self) -> *mut Node {
        (self.0 & !(NODE_SIZE - 1)) as *mut Node
    }

    /// The node.
    ///
    /// # Safety
    ///
    /// The node is live, or the caller is an RCU reader that found it
    /// inside its read-side section (freed nodes wait for a grace period).
    #[inline]
    pub unsafe fn node<'a>(self) -> &'a Node {
        // SAFETY: per the contract, the node's memory is valid for reads.
        unsafe { &*self.ptr() }
    }
}

impl Node {
    /// Clears every word of a node fresh from the cache.
    pub fn clear(&self) {
        self.header.store(0, Relaxed);
        for w in &self.w {
            w.store(0, Relaxed);
        }
    }

    /// The header word: a reader loads it before it reads the node and
    /// compares after ([`Node::changed`]).
    #[inline]
    pub fn header(&self) -> u64 {
        super::hook::reader_load();
        self.header.load(Acquire)
    }

    /// Whether the node died, or took a second in-place store, since the
    /// reader loaded `header` (`ma_dead_node()`, plus the count): what
    /// the reader read of it in between may combine two stores, or come
    /// from a node being freed. The node's loads before this one are
    /// Acquire loads: this load cannot pass them.
    #[inline]
    pub fn changed(&self, header: u64) -> bool {
        self.header() != header
    }

    #[inline]
    pub fn is_dead(&self) -> bool {
        self.header() & DEAD != 0
    }

    /// Marks an unpublished node dead (`mte_set_node_dead()`).
    #[inline]
    pub fn set_dead(&self) {
        let h = self.header.load(Relaxed);
        self.header.store(h | DEAD, Release);
    }

    /// Ends an in-place store to this (published) node: counts it, after
    /// the store's slot and pivot stores. A reader whose loads of the
    /// node span more than one in-place store sees the count change.
    #[inline]
    pub fn end_in_place_store(&self) {
        let h = self.header.load(Relaxed);
        self.header.store(h + SEQ_ONE, Release);
    }

    #[inline]
    pub fn pivot(&self, i: usize) -> u64 {
        super::hook::reader_load();
        self.w[i].load(Acquire)
    }

    #[inline]
    pub fn set_pivot(&self, i: usize, v: u64) {
        self.w[i].store(v, Release);
    }

    #[inline]
    pub fn slot(&self, t: NodeType, i: usize) -> usize {
        super::hook::reader_load();
        self.w[t.pivots() + i].load(Acquire) as usize
    }

    #[inline]
    pub fn set_slot(&self, t: NodeType, i: usize, v: usize) {
        self.w[t.pivots() + i].store(v as u64, Release);
    }

    /// Largest gap below slot `i` (arange_64 only).
    #[inline]
    pub fn gap(&self, i: usize) -> u64 {
        super::hook::reader_load();
        self.w[ARANGE64_SLOTS + NodeType::Arange64.pivots() + i].load(Relaxed)
    }

    #[inline]
    pub fn set_gap(&self, i: usize, v: u64) {
        self.w[ARANGE64_SLOTS + NodeType::Arange64.pivots() + i].store(v, Relaxed);
    }

    #[inline]
    pub fn set_meta_end(&self, t: NodeType, end: usize) {
        self.w[t.meta_word()].store(end as u64, Release);
    }

    /// The last used slot (`ma_data_end()`), given the node's maximum.
    #[inline]
    pub fn data_end(&self, t: NodeType, max: u64) -> usize {
        let meta = || {
            super::hook::reader_load();
            (self.w[t.meta_word()].load(Acquire) & 0xff) as usize
        };
        match t {
            NodeType::Arange64 => meta(),
            _ => match self.pivot(t.pivots() - 1) {
                0 => meta(),
                p if p == max => t.pivots() - 1,
                _ => t.pivots(),
            },
        }
    }

    /// The slot of `index` in a node spanning `[min, max]` whose last used
    /// slot is `end`, with the slot's range (`mtree_range_walk()`'s inner
    /// loop): `(offset, lo, hi)`. Each pivot is loaded once and the range
    /// is made of the loads that chose the slot, so it contains `index`
    /// even while a slot store moves a pivot of this node in place; the
    /// slot itself must be loaded after this returns.
    #[inline]
    pub fn find_slot(&self, index: u64, end: usize, min: u64, max: u64) -> (usize, u64, u64) {
        let mut lo = min;
        for offset in 0..end {
            let p = self.pivot(offset);
            if p >= index {
                return (offset, lo, p);
            }
            lo = p + 1;
        }
        (end, lo, max)
    }

    /// The range of slot `i` of a node spanning `[min, max]` whose last
    /// used slot is `end`. Two pivot loads: only for the writer, or for a
    /// reader that does not need the range to agree with an earlier load.
    #[inline]
    pub fn slot_range(&self, i: usize, end: usize, min: u64, max: u64) -> (u64, u64) {
        let lo = if i == 0 { min } else { self.pivot(i - 1) + 1 };
        let hi = if i < end { self.pivot(i) } else { max };
        (lo, hi)
    }
}

/// Size of the NULL range `[lo, hi]` (saturating: the whole index space
/// does not fit in a u64).
#[inline]
pub fn range_size(lo: u64, hi: u64) -> u64 {
    (hi - lo).saturating_add(1)
}
