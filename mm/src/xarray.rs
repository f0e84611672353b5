//! A radix-tree index from page offsets to values (`lib/xarray.c`'s
//! role for the page cache): a shmem object keeps its folios here, by
//! page offset.
//!
//! Why a radix tree and not the maple tree: the page cache is dense and
//! looked up by single index (`filemap_get_entry()`), which a radix tree
//! answers with one slot read per level and no comparisons; the maple
//! tree is built for ranges (VMAs) and its nodes come from the machine's
//! slab cache and need the platform, while this index lives in objects
//! that outlive any one address space. Linux makes the same choice
//! (`struct address_space::i_pages` is an xarray).
//!
//! ```text
//!   root (shift 6)          64 slots, each covering 64 indices
//!    ├─ [0] ─ leaf (shift 0)  64 slots: values for indices 0..63
//!    ├─ [1] ─ leaf            indices 64..127
//!    └─ [2..63] empty
//! ```
//!
//! Every node has 64 slots; a node at `shift` s covers `64 << s` indices
//! and its slot `i` covers `[base + i << s, base + (i + 1) << s)`. The
//! tree grows a level on top when an index beyond the root's reach is
//! stored (`xas_expand()`), and frees a node that an erase leaves empty
//! (`xas_delete_node()`); it does not shrink its height again.
//!
//! # Invariants
//!
//! - X1: a leaf node (shift 0) holds only values or empty slots; an inner
//!   node only child nodes or empty slots.
//! - X2: every node's `count` is its non-empty slots, and only the root
//!   may have a count of 0 (an emptied non-root node is freed at once).
//! - X3: `len` is the number of values stored.
//!
//! # Locking
//!
//! None inside: the owner wraps the index in its lock (Linux's
//! `xa_lock`). Lookups under RCU without that lock are not done here yet.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::errno::{Errno, Result};

/// Slots per node (`XA_CHUNK_SIZE`).
const CHUNK_SHIFT: u32 = 6;
const CHUNK: usize = 1 << CHUNK_SHIFT;

enum Slot {
    Empty,
    Value(u64),
    Node(Box<Node>),
}

struct Node {
    /// Bits of the index below this node's slot number (0 for a leaf).
    shift: u32,
    /// Non-empty slots (X2).
    count: u32,
    slots: Box<[Slot]>,
}

impl Node {
    /// An empty node; `ENOMEM` when no memory is to be had.
    fn new(shift: u32) -> Result<Box<Node>> {
        let mut v = Vec::new();
        v.try_reserve_exact(CHUNK).map_err(|_| Errno::ENOMEM)?;
        v.resize_with(CHUNK, || Slot::Empty);
        Ok(Box::new(Node {
            shift,
            count: 0,
            slots: v.into_boxed_slice(),
        }))
    }

    fn offset(&self, index: u64) -> usize {
        ((index >> self.shift) as usize) & (CHUNK - 1)
    }

    /// Indices this node covers.
    fn span_shift(&self) -> u32 {
        self.shift + CHUNK_SHIFT
    }
}

/// An index of `u64` values by `u64` index.
#[derive(Default)]
pub struct XArray {
    root: Option<Box<Node>>,
    /// Values stored (X3).
    len: usize,
}

impl XArray {
    pub const fn new() -> Self {
        XArray { root: None, len: 0 }
    }

    /// Values stored.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value at `index` (`xa_load()`).
    pub fn load(&self, index: u64) -> Option<u64> {
        let mut node = self.root.as_deref()?;
        if node.span_shift() < 64 && index >> node.span_shift() != 0 {
            return None;
        }
        loop {
            match &node.slots[node.offset(index)] {
                Slot::Empty => return None,
                Slot::Value(v) => return Some(*v),
                Slot::Node(n) => node = n,
            }
        }
    }

    /// Stores `value` at `index` (`xa_store()`), returning what was there.
    /// `ENOMEM` if a node could not be allocated: then nothing changed
    /// but possibly the tree's height (an empty top level).
    pub fn store(&mut self, index: u64, value: u64) -> Result<Option<u64>> {
        // xas_expand(): grow until the root covers `index`.
        if self.root.is_none() {
            self.root = Some(Node::new(0)?);
        }
        loop {
            let root = self.root.as_ref().expect("a root");
            if root.span_shift() >= 64 || index >> root.span_shift() == 0 {
                break;
            }
            let mut top = Node::new(root.span_shift())?;
            let old = self.root.take().expect("a root");
            if old.count > 0 {
                top.slots[0] = Slot::Node(old);
                top.count = 1;
            }
            self.root = Some(top);
        }
        let mut node = self.root.as_deref_mut().expect("a root");
        while node.shift > 0 {
            let off = node.offset(index);
            if matches!(node.slots[off], Slot::Empty) {
                node.slots[off] = Slot::Node(Node::new(node.shift - CHUNK_SHIFT)?);
                node.count += 1;
            }
            node = match &mut node.slots[off] {
                Slot::Node(n) => n,
                _ => unreachable!("X1: inner nodes hold nodes"),
            };
        }
        let off = node.offset(index);
        let old = core::mem::replace(&mut node.slots[off], Slot::Value(value));
        match old {
            Slot::Value(v) => Ok(Some(v)),
            _ => {
                node.count += 1;
                self.len += 1;
                Ok(None)
            }
        }
    }

    /// Removes the value at `index` (`xa_erase()`), freeing nodes left
    /// empty (X2).
    pub fn erase(&mut self, index: u64) -> Option<u64> {
        let root = self.root.as_deref_mut()?;
        if root.span_shift() < 64 && index >> root.span_shift() != 0 {
            return None;
        }
        let v = Self::erase_in(root, index)?;
        self.len -= 1;
        Some(v)
    }

    /// Erases `index` below `node`; frees children left empty.
    fn erase_in(node: &mut Node, index: u64) -> Option<u64> {
        let off = node.offset(index);
        match &mut node.slots[off] {
            Slot::Empty => None,
            Slot::Value(v) => {
                let v = *v;
                node.slots[off] = Slot::Empty;
                node.count -= 1;
                Some(v)
            }
            Slot::Node(child) => {
                let v = Self::erase_in(child, index)?;
                if child.count == 0 {
                    node.slots[off] = Slot::Empty;
                    node.count -= 1;
                }
                Some(v)
            }
        }
    }

    /// Calls `f(index, value)` for every value in index order
    /// (`xa_for_each()`).
    pub fn for_each(&self, mut f: impl FnMut(u64, u64)) {
        if let Some(root) = self.root.as_deref() {
            Self::walk(root, 0, &mut f);
        }
    }

    fn walk(node: &Node, base: u64, f: &mut impl FnMut(u64, u64)) {
        for (i, s) in node.slots.iter().enumerate() {
            let at = base + ((i as u64) << node.shift);
            match s {
                Slot::Empty => {}
                Slot::Value(v) => f(at, *v),
                Slot::Node(n) => Self::walk(n, at, f),
            }
        }
    }

    /// Removes every value, returning them as `(index, value)` in index
    /// order, and frees every node (`xa_destroy()` after a walk).
    pub fn take_all(&mut self) -> Vec<(u64, u64)> {
        let mut out = Vec::with_capacity(self.len);
        self.for_each(|i, v| out.push((i, v)));
        self.root = None;
        self.len = 0;
        out
    }

    /// Nodes allocated (for tests: an emptied index holds at most its
    /// root path).
    pub fn nr_nodes(&self) -> usize {
        fn count(n: &Node) -> usize {
            1 + n
                .slots
                .iter()
                .map(|s| match s {
                    Slot::Node(c) => count(c),
                    _ => 0,
                })
                .sum::<usize>()
        }
        self.root.as_deref().map_or(0, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    #[test]
    fn store_load_erase() {
        let mut xa = XArray::new();
        assert_eq!(xa.load(0), None);
        assert_eq!(xa.store(5, 50), Ok(None));
        assert_eq!(xa.store(5, 51), Ok(Some(50)));
        assert_eq!(xa.store(1 << 30, 7), Ok(None));
        assert_eq!(xa.load(5), Some(51));
        assert_eq!(xa.load(1 << 30), Some(7));
        assert_eq!(xa.load(6), None);
        assert_eq!(xa.load(u64::MAX), None);
        assert_eq!(xa.len(), 2);
        assert_eq!(xa.erase(1 << 30), Some(7));
        assert_eq!(xa.erase(1 << 30), None);
        // Only the path to index 5 is left: one node per level.
        assert_eq!(xa.nr_nodes(), 6);
        assert_eq!(xa.take_all(), alloc::vec![(5, 51)]);
        assert!(xa.is_empty());
        assert_eq!(xa.nr_nodes(), 0);
    }

    #[test]
    fn top_index() {
        let mut xa = XArray::new();
        assert_eq!(xa.store(u64::MAX, 1), Ok(None));
        assert_eq!(xa.store(0, 2), Ok(None));
        assert_eq!(xa.load(u64::MAX), Some(1));
        assert_eq!(xa.take_all(), alloc::vec![(0, 2), (u64::MAX, 1)]);
    }

    proptest! {
        /// Against a BTreeMap: every load, store, erase and the walk.
        #[test]
        fn matches_btreemap(ops in proptest::collection::vec(
            (0u8..3, prop_oneof![0u64..200, 0u64..1 << 20, any::<u64>()], any::<u64>()), 1..200))
        {
            let mut xa = XArray::new();
            let mut model = BTreeMap::new();
            for (op, index, value) in ops {
                match op {
                    0 => prop_assert_eq!(xa.store(index, value).unwrap(), model.insert(index, value)),
                    1 => prop_assert_eq!(xa.erase(index), model.remove(&index)),
                    _ => prop_assert_eq!(xa.load(index), model.get(&index).copied()),
                }
                prop_assert_eq!(xa.len(), model.len());
            }
            let mut all = Vec::new();
            xa.for_each(|i, v| all.push((i, v)));
            prop_assert_eq!(all, model.into_iter().collect::<Vec<_>>());
        }
    }
}
