//! The writer: store classification, node preallocation and the store
//! types (`mas_wr_store_type()`, `mas_prealloc_calc()`,
//! `mas_wr_store_entry()`).
//!
//! Every store is planned first: NULL stores absorb neighbouring NULL
//! ranges (two NULL ranges are never adjacent, not even across leaves),
//! the write walk records the path to the leaf of `index` and, when the
//! store crosses that leaf, the path to the leaf of `last` (a spanning
//! store), and the store is classified. The plan says how many nodes the
//! store can need; they are allocated before anything changes, so that
//! executing the plan cannot fail.
//!
//! Stores that rebuild nodes (node store, split, rebalance, spanning
//! store) share one loop ([`MaWriter::rebuild`]): at each level, starting
//! at the leaves, the new content of the span of nodes between the left
//! and the right path (a "big node") is cut into one to three new nodes;
//! a deficient content first pulls in a neighbouring node (the next one,
//! else the previous one, a cousin if the siblings are covered too), as
//! Linux's rebalance does. The parent level's content is then its left
//! part, the new nodes and its right part, and the loop climbs until a
//! level where the span is one node whose replacement fits: that node is
//! swapped in with one pointer store (or a new root is published).
//!
//! # Ordering
//!
//! What readers may see is the protocol of the module's `# Ordering`
//! (mod.rs): a rebuilt node is complete before the one pointer store
//! that publishes it, and the nodes it replaces are marked dead after
//! that store and before `kfree_rcu`; the in-place store types (exact
//! fit, slot store, append) store the slot that gains range before the
//! pivot that gives it the range, and end with
//! [`Node::end_in_place_store`], which readers check.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::*;

use super::hook;
use super::node::{Enode, MAPLE_HEIGHT_MAX, Node, NodeType, range_size};
use super::{MapleEntry, MapleError, MapleStat, MapleTree, MtFlags};
use crate::gfp::Gfp;
use crate::platform::Platform;
use crate::slab::Sheaf;

/// Store types (`enum store_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreType {
    /// Nothing to do (a NULL store into an empty tree).
    None,
    /// The range equals one slot's: swap the slot pointer.
    ExactFit,
    /// Non-RCU trees: the write adds slots at the end of the leaf, in place.
    Append,
    /// Same slot count, two adjacent slots: move their boundary in place.
    SlotStore,
    /// The leaf is rewritten as a new node.
    NodeStore,
    /// The leaf overflows: split, possibly up to a new root.
    Split,
    /// The leaf would be deficient: merge with a neighbour.
    Rebalance,
    /// The range crosses the leaf's end.
    Spanning,
    /// A new root (empty tree, or a store over every index).
    NewRoot,
}

impl StoreType {
    fn stat(self) -> Option<MapleStat> {
        Some(match self {
            StoreType::None => return None,
            StoreType::ExactFit => MapleStat::StoreExactFit,
            StoreType::Append => MapleStat::StoreAppend,
            StoreType::SlotStore => MapleStat::StoreSlotStore,
            StoreType::NodeStore => MapleStat::StoreNodeStore,
            StoreType::Split => MapleStat::StoreSplit,
            StoreType::Rebalance => MapleStat::StoreRebalance,
            StoreType::Spanning => MapleStat::StoreSpanning,
            StoreType::NewRoot => MapleStat::StoreNewRoot,
        })
    }
}

/// One node of a write path.
#[derive(Clone, Copy, Debug)]
pub(super) struct Level {
    pub node: Enode,
    pub min: u64,
    pub max: u64,
    /// Slot of interest (the child on the path, or the leaf slot).
    pub offset: usize,
    /// Last used slot.
    pub end: usize,
}

const EMPTY_LEVEL: Level = Level {
    node: Enode(0),
    min: 0,
    max: 0,
    offset: 0,
    end: 0,
};

/// Root-to-leaf path; the leaf is at `lv[height - 1]`.
#[derive(Clone)]
pub(super) struct Path {
    pub lv: [Level; MAPLE_HEIGHT_MAX],
    pub height: usize,
}

impl Path {
    pub(super) fn leaf(&self) -> &Level {
        &self.lv[self.height - 1]
    }

    fn leaf_mut(&mut self) -> &mut Level {
        &mut self.lv[self.height - 1]
    }
}

/// A slot's worth of new content: an entry (leaves) or a child node, the
/// last index it covers and the largest gap in it.
#[derive(Clone, Copy, Debug, Default)]
struct Item {
    slot: usize,
    piv: u64,
    gap: u64,
}

/// Content of one level being rebuilt (`struct maple_big_node`). The
/// worst case is a spanning store in range_64 nodes: 16 + 3 + 16.
const BIG_SLOTS: usize = 40;

struct Big {
    items: [Item; BIG_SLOTS],
    len: usize,
}

impl Big {
    fn new() -> Big {
        Big {
            items: [Item::default(); BIG_SLOTS],
            len: 0,
        }
    }

    fn push(&mut self, it: Item) {
        self.items[self.len] = it;
        self.len += 1;
    }

    fn as_slice(&self) -> &[Item] {
        &self.items[..self.len]
    }

    /// Puts `other` in front.
    fn prepend(&mut self, other: &Big) {
        self.items.copy_within(0..self.len, other.len);
        self.items[..other.len].copy_from_slice(other.as_slice());
        self.len += other.len;
    }
}

/// A planned store.
struct Plan {
    /// What was asked: `(index, last, raw)` before NULL extension.
    asked: (u64, u64, usize),
    index: u64,
    last: u64,
    raw: usize,
    kind: StoreType,
    lp: Path,
    rp: Path,
    /// Nodes the store may need, and what the full-height worst case
    /// would have asked for.
    request: usize,
    request_full: usize,
}

/// Nodes set aside for one store.
#[derive(Default)]
struct Supply {
    /// One node, the common case (Linux's `mas->alloc`).
    single: Option<NonNull<u8>>,
    /// More: a prefilled sheaf of the node cache (`mas->sheaf`).
    sheaf: Option<Box<Sheaf>>,
    /// Fallback when the cache has no sheaves.
    list: Vec<NonNull<u8>>,
    requested: usize,
    used: usize,
    /// A preallocation not yet given back.
    pending: bool,
}

/// The writer: holds the tree's lock and the nodes preallocated for the
/// next store (Linux's `ma_state` in a write).
pub struct MaWriter<'t, 'a, T: MapleEntry, P: Platform> {
    pub(super) tree: &'t MapleTree<'a, T, P>,
    _guard: spin::MutexGuard<'t, ()>,
    supply: Supply,
    /// Range of the pending preallocation.
    prealloc: Option<(u64, u64)>,
    /// Its plan: the tree cannot change before the store (we hold the
    /// lock), so the store reuses the walk (as `ma_state` carries it).
    planned: Option<Box<Plan>>,
}

impl<'t, 'a, T: MapleEntry, P: Platform> MaWriter<'t, 'a, T, P> {
    pub(super) fn new(tree: &'t MapleTree<'a, T, P>) -> Self {
        MaWriter {
            tree,
            _guard: tree.lock.lock(),
            supply: Supply::default(),
            prealloc: None,
            planned: None,
        }
    }

    /// Stores `entry` over `[index, last]`, overwriting whatever overlaps
    /// (`mtree_store_range()`); `None` erases. Nodes are allocated with
    /// `gfp` first; on failure nothing changed.
    pub fn store_range(
        &mut self,
        index: u64,
        last: u64,
        entry: Option<T>,
        gfp: Gfp,
    ) -> Result<(), MapleError> {
        self.preallocate(index, last, entry, gfp)?;
        self.store_prealloc(index, last, entry);
        Ok(())
    }

    /// Erases the range containing `index` (`mtree_erase()`); returns
    /// its entry.
    pub fn erase(&mut self, index: u64, gfp: Gfp) -> Result<Option<T>, MapleError> {
        let (lo, hi, raw) = self.tree.walk_locked(index);
        if raw == 0 {
            return Ok(None);
        }
        self.store_range(lo, hi, None, gfp)?;
        // SAFETY: a non-zero leaf slot.
        Ok(Some(unsafe { T::from_raw(raw) }))
    }

    /// Allocates every node a store of `entry` over `[index, last]` can
    /// need (`mas_preallocate()`), so that [`MaWriter::store_prealloc`]
    /// of the same range cannot fail.
    pub fn preallocate(
        &mut self,
        index: u64,
        last: u64,
        entry: Option<T>,
        gfp: Gfp,
    ) -> Result<StoreType, MapleError> {
        if index > last {
            return Err(MapleError::Inval);
        }
        self.destroy();
        let plan = self.tree.plan(index, last, entry.map_or(0, T::into_raw));
        self.supply.alloc(self.tree, plan.request, gfp)?;
        self.tree
            .inc(MapleStat::NodesRequested, plan.request as u64);
        self.tree.inc(
            MapleStat::NodesRequestedFullHeight,
            plan.request_full as u64,
        );
        self.prealloc = Some((index, last));
        let kind = plan.kind;
        self.planned = Some(Box::new(plan));
        Ok(kind)
    }

    /// Stores with the preallocated nodes (`mas_store_prealloc()`), then
    /// gives back the unused ones.
    pub fn store_prealloc(&mut self, index: u64, last: u64, entry: Option<T>) {
        assert_eq!(
            self.prealloc.take(),
            Some((index, last)),
            "maple: store_prealloc without a matching preallocate"
        );
        let raw = entry.map_or(0, T::into_raw);
        let plan = match self.planned.take() {
            Some(p) if p.asked == (index, last, raw) => *p,
            _ => self.tree.plan(index, last, raw),
        };
        if let Some(s) = plan.kind.stat() {
            self.tree.inc(s, 1);
        }
        self.execute(plan);
        self.destroy();
    }

    /// Gives back nodes preallocated and not used (`mas_destroy()`).
    pub fn destroy(&mut self) {
        self.prealloc = None;
        self.planned = None;
        let unused = self.supply.release(self.tree);
        self.tree.inc(MapleStat::NodesUnused, unused as u64);
    }

    /// Nodes requested by the last preallocation and used by its store.
    pub fn nodes_requested_used(&self) -> (usize, usize) {
        (self.supply.requested, self.supply.used)
    }

    fn pop_node(&mut self) -> &'t Node {
        let p = match self.supply.pop(self.tree) {
            Some(p) => p,
            None => {
                self.tree.inc(MapleStat::PreallocMiss, 1);
                self.tree
                    .cache
                    .alloc(Gfp::NOWAIT)
                    .expect("maple: store ran out of preallocated nodes and memory")
            }
        };
        self.supply.used += 1;
        self.tree.inc(MapleStat::NodesUsed, 1);
        // SAFETY: a fresh object of the node cache: 256 bytes, 256-byte
        // aligned, ours until published; it lives as long as the tree.
        let node = unsafe { &*p.as_ptr().cast::<Node>() };
        node.clear();
        node
    }

    fn execute(&mut self, plan: Plan) {
        let tree = self.tree;
        match plan.kind {
            StoreType::None => {}
            StoreType::NewRoot => self.new_root(&plan),
            StoreType::ExactFit => {
                let leaf = plan.lp.leaf();
                // SAFETY: a live node of the tree; we hold the lock.
                let node = unsafe { leaf.node.node() };
                let old = node.slot(NodeType::Leaf64, leaf.offset);
                node.set_slot(NodeType::Leaf64, leaf.offset, plan.raw);
                hook::writer_step("exact_fit: slot");
                node.end_in_place_store();
                hook::writer_step("exact_fit: header");
                if (old == 0) != (plan.raw == 0) {
                    tree.propagate_gap(&plan.lp, plan.lp.height - 1, leaf.node);
                }
            }
            StoreType::SlotStore => {
                let leaf = plan.lp.leaf();
                // SAFETY: the leaf of the walk just made, live in the tree; the
                // writer holds the lock.
                let node = unsafe { leaf.node.node() };
                let o = leaf.offset;
                let (lo, _) = node.slot_range(o, leaf.end, leaf.min, leaf.max);
                // Each write leaves a valid view: first the slot that gets
                // the entry shows it over part of its new range, then the
                // pivot moves the boundary.
                if plan.index == lo {
                    node.set_slot(NodeType::Leaf64, o, plan.raw);
                    hook::writer_step("slot_store: slot");
                    node.set_pivot(o, plan.last);
                    hook::writer_step("slot_store: pivot");
                } else {
                    node.set_slot(NodeType::Leaf64, o + 1, plan.raw);
                    hook::writer_step("slot_store: next slot");
                    node.set_pivot(o, plan.index - 1);
                    hook::writer_step("slot_store: pivot");
                }
                node.end_in_place_store();
                hook::writer_step("slot_store: header");
                tree.propagate_gap(&plan.lp, plan.lp.height - 1, leaf.node);
            }
            StoreType::Append => {
                let leaf = *plan.lp.leaf();
                let mut big = Big::new();
                tree.leaf_content(&leaf, &leaf, plan.index, plan.last, plan.raw, &mut big);
                // SAFETY: the leaf of the walk just made, live in the tree; the
                // writer holds the lock.
                let node = unsafe { leaf.node.node() };
                let t = NodeType::Leaf64;
                let end = big.len - 1;
                for (i, it) in big.as_slice().iter().enumerate().skip(leaf.offset) {
                    node.set_slot(t, i, it.slot);
                    if i < t.pivots() {
                        node.set_pivot(i, it.piv);
                    }
                }
                if end < t.pivots() {
                    node.set_meta_end(t, end);
                }
                node.end_in_place_store();
                tree.propagate_gap(&plan.lp, plan.lp.height - 1, leaf.node);
            }
            StoreType::NodeStore
            | StoreType::Split
            | StoreType::Rebalance
            | StoreType::Spanning => {
                let mut lp = plan.lp.clone();
                let mut rp = plan.rp.clone();
                let mut big = Big::new();
                tree.leaf_content(
                    lp.leaf(),
                    rp.leaf(),
                    plan.index,
                    plan.last,
                    plan.raw,
                    &mut big,
                );
                self.rebuild(&mut lp, &mut rp, big);
            }
        }
    }

    /// Replaces the whole tree by one leaf holding `[index, last]`.
    fn new_root(&mut self, plan: &Plan) {
        let tree = self.tree;
        let old = Enode(tree.root.load(Relaxed));
        if plan.raw == 0 && plan.index == 0 && plan.last == u64::MAX {
            tree.root.store(0, Release);
            tree.set_height(0);
            hook::writer_step("new_root: empty");
        } else {
            let mut big = Big::new();
            if plan.index > 0 {
                big.push(leaf_item(0, plan.index - 1, 0));
            }
            big.push(leaf_item(plan.index, plan.last, plan.raw));
            if plan.last < u64::MAX {
                big.push(leaf_item(plan.last + 1, u64::MAX, 0));
            }
            let (en, _) = self.build(NodeType::Leaf64, big.as_slice(), 0, u64::MAX);
            tree.root.store(en.0, Release);
            tree.set_height(1);
            hook::writer_step("new_root: root");
        }
        if old.0 != 0 {
            tree.free_subtree(old, 0, u64::MAX);
        }
    }

    /// Writes a new node of type `t` holding `items`, covering
    /// `[min, max]`; returns it and its largest gap.
    fn build(&mut self, t: NodeType, items: &[Item], min: u64, max: u64) -> (Enode, u64) {
        debug_assert!(!items.is_empty() && items.len() <= t.slots());
        debug_assert_eq!(items[items.len() - 1].piv, max);
        debug_assert!(items[0].piv >= min);
        let node = self.pop_node();
        let mut gap = 0;
        for (i, it) in items.iter().enumerate() {
            node.set_slot(t, i, it.slot);
            if i < t.pivots() {
                node.set_pivot(i, it.piv);
            }
            if t == NodeType::Arange64 {
                node.set_gap(i, it.gap);
            }
            gap = gap.max(it.gap);
        }
        if t == NodeType::Arange64 || items.len() < t.slots() {
            node.set_meta_end(t, items.len() - 1);
        }
        if self.tree.internal_type() == NodeType::Range64 && !t.is_leaf() {
            // Plain range trees do not track gaps.
            gap = 0;
        }
        (Enode::new(node, t), gap)
    }

    /// The rebuild loop shared by node store, split, rebalance and
    /// spanning store (see the module comment). `big` is the new content
    /// of the leaves from `lp`'s to `rp`'s.
    fn rebuild(&mut self, lp: &mut Path, rp: &mut Path, mut big: Big) {
        let tree = self.tree;
        let leaf_depth = lp.height - 1;
        let internal = tree.internal_type();
        let mut d = leaf_depth;
        loop {
            let t = if d == leaf_depth {
                NodeType::Leaf64
            } else {
                internal
            };
            if d > 0 && big.len < t.min_count() && !self.pull_neighbour(lp, rp, d, &mut big) {
                // This level is rebuilt whole: its content is the new root.
                self.publish_root(t, &big, leaf_depth - d + 1);
                tree.free_replaced(lp, rp, 0);
                return;
            }
            let (parts, k) = split(big.as_slice(), t);
            if d == 0 {
                if k == 1 {
                    self.publish_root(t, &big, leaf_depth + 1);
                } else {
                    let mut top = Big::new();
                    self.build_parts(t, &big, &parts[..k], 0, &mut top);
                    self.publish_root(internal, &top, leaf_depth + 2);
                }
                tree.free_replaced(lp, rp, 0);
                return;
            }
            if k == 1 && lp.lv[d].node == rp.lv[d].node {
                let (en, _) = self.build(t, big.as_slice(), lp.lv[d].min, rp.lv[d].max);
                let parent = lp.lv[d - 1];
                // SAFETY: a live node of the tree; we hold the lock.
                let pnode = unsafe { parent.node.node() };
                pnode.set_slot(parent.node.node_type(), parent.offset, en.0);
                hook::writer_step("replace: parent slot");
                tree.propagate_gap(lp, d, en);
                tree.free_replaced(lp, rp, d);
                return;
            }
            let mut up = Big::new();
            let (l, r) = (lp.lv[d - 1], rp.lv[d - 1]);
            tree.push_items(&mut up, &l, 0, l.offset);
            self.build_parts(t, &big, &parts[..k], lp.lv[d].min, &mut up);
            tree.push_items(&mut up, &r, r.offset + 1, r.end + 1);
            big = up;
            d -= 1;
        }
    }

    /// Builds one node per part of `big`, pushing an item for each onto
    /// `up`; the first covers from `min`.
    fn build_parts(
        &mut self,
        t: NodeType,
        big: &Big,
        parts: &[(usize, usize)],
        mut min: u64,
        up: &mut Big,
    ) {
        for &(a, b) in parts {
            let items = &big.as_slice()[a..b];
            let max = items[items.len() - 1].piv;
            let (en, gap) = self.build(t, items, min, max);
            up.push(Item {
                slot: en.0,
                piv: max,
                gap,
            });
            min = max.wrapping_add(1);
        }
    }

    /// Publishes `big` (the whole content of one level) as the tree:
    /// empty, a lone child, or a new root node. `height` is the tree's
    /// height with a root node holding `big`.
    fn publish_root(&mut self, t: NodeType, big: &Big, height: usize) {
        let tree = self.tree;
        let items = big.as_slice();
        let (root, h) = if t.is_leaf() && items.len() == 1 && items[0].slot == 0 {
            (0, 0)
        } else if !t.is_leaf() && items.len() == 1 {
            (items[0].slot, height - 1)
        } else {
            (self.build(t, items, 0, u64::MAX).0.0, height)
        };
        tree.root.store(root, Release);
        tree.set_height(h);
        hook::writer_step("publish_root: root");
    }

    /// Extends the span at depth `d` by the next node (preferred, as
    /// `mas_rebalance()`) or the previous one, siblings before cousins,
    /// adding its content to `big`. False when the span covers the level.
    fn pull_neighbour(&mut self, lp: &mut Path, rp: &mut Path, d: usize, big: &mut Big) -> bool {
        let tree = self.tree;
        let right_sibling = rp.lv[d - 1].offset < rp.lv[d - 1].end;
        let left_sibling = lp.lv[d - 1].offset > 0;
        let right = if right_sibling {
            true
        } else if left_sibling {
            false
        } else if (0..d).any(|e| rp.lv[e].offset < rp.lv[e].end) {
            true
        } else if (0..d).any(|e| lp.lv[e].offset > 0) {
            false
        } else {
            return false;
        };
        if right {
            tree.step_path(rp, d, true);
            let lv = rp.lv[d];
            tree.push_items(big, &lv, 0, lv.end + 1);
        } else {
            tree.step_path(lp, d, false);
            let lv = lp.lv[d];
            let mut left = Big::new();
            tree.push_items(&mut left, &lv, 0, lv.end + 1);
            big.prepend(&left);
        }
        true
    }
}

impl<T: MapleEntry, P: Platform> Drop for MaWriter<'_, '_, T, P> {
    fn drop(&mut self) {
        self.destroy();
    }
}

fn leaf_item(lo: u64, hi: u64, raw: usize) -> Item {
    Item {
        slot: raw,
        piv: hi,
        gap: if raw == 0 { range_size(lo, hi) } else { 0 },
    }
}

/// Cuts `items` into 1..=3 nodes of type `t`: one if they fit, else as
/// evenly as possible. A leaf other than the last never ends with a NULL
/// range (`mab_no_null_split()`): such a cut moves one slot left, and
/// leaves are filled to one slot less than full to leave room for that.
fn split(items: &[Item], t: NodeType) -> ([(usize, usize); 3], usize) {
    let n = items.len();
    let mut parts = [(0, 0); 3];
    if n <= t.slots() {
        parts[0] = (0, n);
        return (parts, 1);
    }
    let per = if t.is_leaf() {
        t.slots() - 1
    } else {
        t.slots()
    };
    let k = n.div_ceil(per);
    assert!(k <= 3, "maple: {n} slots to split");
    let mut start = 0;
    for (i, part) in parts.iter_mut().enumerate().take(k) {
        let mut cut = if i + 1 == k { n } else { n * (i + 1) / k };
        if t.is_leaf() && cut < n && items[cut - 1].slot == 0 {
            cut -= 1;
        }
        *part = (start, cut);
        start = cut;
    }
    (parts, k)
}

impl<T: MapleEntry, P: Platform> MapleTree<'_, T, P> {
    /// The slot containing `index` under the writer lock: `(first, last,
    /// raw entry)`.
    pub(super) fn walk_locked(&self, index: u64) -> (u64, u64, usize) {
        match self.walk_raw(index) {
            Ok(r) => r,
            Err(_) => unreachable!("maple: the writer met a dead node"),
        }
    }

    /// The write walk: the path from the root to the leaf of `index`.
    pub(super) fn write_path(&self, index: u64) -> Path {
        let mut p = Path {
            lv: [EMPTY_LEVEL; MAPLE_HEIGHT_MAX],
            height: 0,
        };
        let mut en = Enode(self.root.load(Relaxed));
        let (mut min, mut max) = (0, u64::MAX);
        loop {
            let t = en.node_type();
            // SAFETY: a live node; the writer holds the lock.
            let node = unsafe { en.node() };
            let end = node.data_end(t, max);
            let mut offset = 0;
            while offset < end && node.pivot(offset) < index {
                offset += 1;
            }
            p.lv[p.height] = Level {
                node: en,
                min,
                max,
                offset,
                end,
            };
            p.height += 1;
            if t.is_leaf() {
                return p;
            }
            let (lo, hi) = node.slot_range(offset, end, min, max);
            (en, min, max) = (Enode(node.slot(t, offset)), lo, hi);
        }
    }

    /// Moves `path` at depth `d` to the next (`right`) or previous node at
    /// that depth: up to the deepest ancestor that has one more child
    /// that way, across, then down its nearest edge.
    fn step_path(&self, path: &mut Path, d: usize, right: bool) {
        let e = (0..d)
            .rev()
            .find(|&e| {
                if right {
                    path.lv[e].offset < path.lv[e].end
                } else {
                    path.lv[e].offset > 0
                }
            })
            .expect("maple: no neighbour at this depth");
        if right {
            path.lv[e].offset += 1;
        } else {
            path.lv[e].offset -= 1;
        }
        for k in e + 1..=d {
            let parent = path.lv[k - 1];
            let pt = parent.node.node_type();
            // SAFETY: a live node; the writer holds the lock.
            let pnode = unsafe { parent.node.node() };
            let (min, max) = pnode.slot_range(parent.offset, parent.end, parent.min, parent.max);
            let en = Enode(pnode.slot(pt, parent.offset));
            // SAFETY: the child named by a live parent's slot is live; the writer holds the lock.
            let end = unsafe { en.node() }.data_end(en.node_type(), max);
            path.lv[k] = Level {
                node: en,
                min,
                max,
                offset: if right { 0 } else { end },
                end,
            };
        }
    }

    /// Plans a store of `raw` over `[index, last]`.
    fn plan(&self, mut index: u64, mut last: u64, raw: usize) -> Plan {
        let empty_path = || Path {
            lv: [EMPTY_LEVEL; MAPLE_HEIGHT_MAX],
            height: 0,
        };
        let mut plan = Plan {
            asked: (index, last, raw),
            index,
            last,
            raw,
            kind: StoreType::None,
            lp: empty_path(),
            rp: empty_path(),
            request: 0,
            request_full: 0,
        };
        if self.is_empty() {
            if raw != 0 {
                plan.kind = StoreType::NewRoot;
                (plan.request, plan.request_full) = (1, 1);
            }
            return plan;
        }
        let mut lp = self.write_path(index);
        if raw == 0 {
            // mas_wr_extend_null(): absorb the NULL range at `index` or just
            // before it. It is in this leaf: a leaf other than the
            // rightmost never ends with NULL.
            let leaf = lp.leaf_mut();
            // SAFETY: a live node; the writer holds the lock.
            let node = unsafe { leaf.node.node() };
            let (lo, _) = node.slot_range(leaf.offset, leaf.end, leaf.min, leaf.max);
            if node.slot(NodeType::Leaf64, leaf.offset) == 0 {
                index = lo;
            } else if index == lo
                && leaf.offset > 0
                && node.slot(NodeType::Leaf64, leaf.offset - 1) == 0
            {
                leaf.offset -= 1;
                index = node.slot_range(leaf.offset, leaf.end, leaf.min, leaf.max).0;
            }
        }
        let mut rp = if last > lp.leaf().max {
            self.write_path(last)
        } else {
            lp.clone()
        };
        if raw == 0 {
            // The same at `last`, within its leaf...
            let leaf = *rp.leaf();
            // SAFETY: the leaf of a walk made under the writer lock: live in the tree.
            let node = unsafe { leaf.node.node() };
            let mut o = 0;
            while o < leaf.end && node.pivot(o) < last {
                o += 1;
            }
            let (_, hi) = node.slot_range(o, leaf.end, leaf.min, leaf.max);
            if node.slot(NodeType::Leaf64, o) == 0 {
                last = hi;
            } else if last == hi && o < leaf.end && node.slot(NodeType::Leaf64, o + 1) == 0 {
                last = node.slot_range(o + 1, leaf.end, leaf.min, leaf.max).1;
            }
            // ...and a NULL store reaching the end of a leaf other than the
            // rightmost takes in the next leaf (mas_is_span_wr()), absorbing
            // a NULL range at its start.
            if last == leaf.max && last != u64::MAX {
                rp = self.write_path(last + 1);
                let next = *rp.leaf();
                // SAFETY: the leaf of a walk made under the writer lock: live in the tree.
                let nnode = unsafe { next.node.node() };
                if nnode.slot(NodeType::Leaf64, 0) == 0 {
                    last = nnode.slot_range(0, next.end, next.min, next.max).1;
                }
            }
        }
        plan.index = index;
        plan.last = last;
        if index == 0 && last == u64::MAX {
            plan.kind = StoreType::NewRoot;
            (plan.request, plan.request_full) = (1, 1);
            return plan;
        }
        let leaf = *lp.leaf();
        let h = lp.height;
        // Vacant and sufficient heights from the nodes above the point
        // where the paths part (mas_wr_walk()).
        let (mut vacant, mut sufficient) = (0, 0);
        for d in 0..h - 1 {
            if lp.lv[d + 1].node != rp.lv[d + 1].node {
                break;
            }
            let lv = &lp.lv[d];
            let t = lv.node.node_type();
            if lv.end < t.slots() - 1 {
                vacant = d + 1;
            }
            if d == 0 {
                if lv.end > 2 {
                    sufficient = 1;
                }
            } else if lv.end > t.min_slots() + 1 {
                sufficient = d + 1;
            }
        }
        let spanning = lp.leaf().node != rp.leaf().node;
        plan.kind = if spanning {
            StoreType::Spanning
        } else {
            self.classify(&leaf, index, last, h == 1)
        };
        let delta = h - vacant;
        let (req, full) = match plan.kind {
            StoreType::Spanning if sufficient < vacant => ((h - sufficient) * 3 + 1, 3 * h + 1),
            StoreType::Spanning => (delta * 3 + 1, 3 * h + 1),
            StoreType::Split => (delta * 2 + 1, 2 * h + 1),
            StoreType::Rebalance if sufficient < vacant => ((h - sufficient) * 2 + 1, 2 * h + 1),
            StoreType::Rebalance => (delta * 2 + 1, 2 * h + 1),
            StoreType::NodeStore => (1, 1),
            StoreType::NewRoot => (1, 1),
            _ => (0, 0),
        };
        plan.request = req;
        plan.request_full = full;
        plan.lp = lp;
        plan.rp = rp;
        plan
    }

    /// Store type of a write within one leaf (`mas_wr_store_type()`).
    fn classify(&self, leaf: &Level, index: u64, last: u64, is_root: bool) -> StoreType {
        // SAFETY: a live node; the writer holds the lock.
        let node = unsafe { leaf.node.node() };
        let o = leaf.offset;
        let (r_min, r_max) = node.slot_range(o, leaf.end, leaf.min, leaf.max);
        if r_min == index && r_max == last {
            return StoreType::ExactFit;
        }
        let mut offset_end = o;
        while offset_end < leaf.end && node.pivot(offset_end) < last {
            offset_end += 1;
        }
        let (_, end_piv) = node.slot_range(offset_end, leaf.end, leaf.min, leaf.max);
        // mas_wr_new_end(), as a slot count.
        let count = o
            + usize::from(index > r_min)
            + 1
            + usize::from(last < end_piv)
            + (leaf.end - offset_end);
        let t = NodeType::Leaf64;
        if count < t.min_count() {
            return if is_root {
                StoreType::NodeStore
            } else {
                StoreType::Rebalance
            };
        }
        if count > t.slots() {
            return StoreType::Split;
        }
        let rcu = self.flags().contains(MtFlags::USE_RCU);
        if !rcu && o == leaf.end && count > leaf.end + 1 {
            return StoreType::Append;
        }
        if count == leaf.end + 1 && offset_end == o + 1 && (index == r_min || last == end_piv) {
            return StoreType::SlotStore;
        }
        StoreType::NodeStore
    }

    /// The new content of the leaves from `l`'s to `r`'s: what lies before
    /// `index` in `l`, the new range, what lies after `last` in `r`.
    fn leaf_content(&self, l: &Level, r: &Level, index: u64, last: u64, raw: usize, big: &mut Big) {
        // SAFETY: live nodes; the writer holds the lock.
        let (ln, rn) = unsafe { (l.node.node(), r.node.node()) };
        let t = NodeType::Leaf64;
        for i in 0..=l.end {
            let (lo, hi) = ln.slot_range(i, l.end, l.min, l.max);
            if lo >= index {
                break;
            }
            big.push(leaf_item(lo, hi.min(index - 1), ln.slot(t, i)));
        }
        big.push(leaf_item(index, last, raw));
        for i in 0..=r.end {
            let (lo, hi) = rn.slot_range(i, r.end, r.min, r.max);
            if hi <= last {
                continue;
            }
            big.push(leaf_item(lo.max(last + 1), hi, rn.slot(t, i)));
        }
    }

    /// Pushes slots `from..to` of the node at `lv` as items.
    fn push_items(&self, big: &mut Big, lv: &Level, from: usize, to: usize) {
        let t = lv.node.node_type();
        // SAFETY: a live node; the writer holds the lock.
        let node = unsafe { lv.node.node() };
        for i in from..to {
            let (lo, hi) = node.slot_range(i, lv.end, lv.min, lv.max);
            let slot = node.slot(t, i);
            let gap = match t {
                NodeType::Leaf64 => leaf_gap(slot, lo, hi),
                NodeType::Arange64 => node.gap(i),
                NodeType::Range64 => 0,
            };
            big.push(Item { slot, piv: hi, gap });
        }
    }

    /// Largest gap in the subtree of `en` covering `[min, max]`.
    pub(super) fn node_gap(&self, en: Enode, min: u64, max: u64) -> u64 {
        let t = en.node_type();
        // SAFETY: a live node; the writer holds the lock.
        let node = unsafe { en.node() };
        let end = node.data_end(t, max);
        (0..=end)
            .map(|i| match t {
                NodeType::Leaf64 => {
                    let (lo, hi) = node.slot_range(i, end, min, max);
                    leaf_gap(node.slot(t, i), lo, hi)
                }
                NodeType::Arange64 => node.gap(i),
                NodeType::Range64 => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// The child at depth `d` on `path` is now `child`: update the gaps
    /// recorded above it, stopping where nothing changes
    /// (`mas_update_gap()`).
    fn propagate_gap(&self, path: &Path, d: usize, child: Enode) {
        if self.internal_type() != NodeType::Arange64 {
            return;
        }
        let (mut child, mut cmin, mut cmax) = (child, path.lv[d].min, path.lv[d].max);
        for k in (0..d).rev() {
            let g = self.node_gap(child, cmin, cmax);
            let parent = path.lv[k];
            // SAFETY: a live node; the writer holds the lock.
            let pnode = unsafe { parent.node.node() };
            if pnode.gap(parent.offset) == g {
                return;
            }
            pnode.set_gap(parent.offset, g);
            hook::writer_step("gap");
            (child, cmin, cmax) = (parent.node, parent.min, parent.max);
        }
    }

    /// Frees the nodes a rebuild replaced: from depth `top` down, every
    /// node whose range lies within the span `[lp.min, rp.max]` of its
    /// depth (`mas_mat_destroy()`). Nodes outside it were kept.
    fn free_replaced(&self, lp: &Path, rp: &Path, top: usize) {
        let lv = lp.lv[top];
        self.free_within(lp, rp, top, lv.node, lv.min, lv.max);
    }

    fn free_within(&self, lp: &Path, rp: &Path, k: usize, en: Enode, min: u64, max: u64) {
        let t = en.node_type();
        if !t.is_leaf() {
            // SAFETY: an old node, unpublished but not yet freed.
            let node = unsafe { en.node() };
            let end = node.data_end(t, max);
            let (smin, smax) = (lp.lv[k + 1].min, rp.lv[k + 1].max);
            for i in 0..=end {
                let (lo, hi) = node.slot_range(i, end, min, max);
                if lo >= smin && hi <= smax {
                    self.free_within(lp, rp, k + 1, Enode(node.slot(t, i)), lo, hi);
                }
            }
        }
        self.free_node(en);
    }
}

fn leaf_gap(slot: usize, lo: u64, hi: u64) -> u64 {
    if slot == 0 { range_size(lo, hi) } else { 0 }
}

impl Supply {
    fn alloc<T: MapleEntry, P: Platform>(
        &mut self,
        tree: &MapleTree<'_, T, P>,
        n: usize,
        gfp: Gfp,
    ) -> Result<(), MapleError> {
        self.requested = n;
        self.used = 0;
        self.pending = true;
        match n {
            0 => {}
            1 => self.single = Some(tree.cache.alloc(gfp).ok_or(MapleError::NoMem)?),
            _ => match tree.cache.prefill_sheaf(gfp, n) {
                Some(s) => self.sheaf = Some(s),
                // Out of memory: no second try one by one.
                None if tree.cache.has_sheaves() => {
                    self.release(tree);
                    return Err(MapleError::NoMem);
                }
                None => {
                    // A cache without sheaves (debug caches): one by one.
                    self.list.try_reserve(n).map_err(|_| MapleError::NoMem)?;
                    while self.list.len() < n {
                        let Some(p) = tree.cache.alloc(gfp) else {
                            self.release(tree);
                            return Err(MapleError::NoMem);
                        };
                        self.list.push(p);
                    }
                }
            },
        }
        Ok(())
    }

    fn pop<T: MapleEntry, P: Platform>(
        &mut self,
        tree: &MapleTree<'_, T, P>,
    ) -> Option<NonNull<u8>> {
        if let Some(p) = self.single.take() {
            return Some(p);
        }
        if let Some(s) = self.sheaf.as_mut() {
            return tree.cache.alloc_from_sheaf(s, Gfp::NOWAIT);
        }
        self.list.pop()
    }

    /// Gives back what is left; returns how many of the requested nodes
    /// went unused.
    fn release<T: MapleEntry, P: Platform>(&mut self, tree: &MapleTree<'_, T, P>) -> usize {
        if let Some(p) = self.single.take() {
            // SAFETY: never handed out: ours to free.
            unsafe { tree.cache.free(p) };
        }
        if let Some(s) = self.sheaf.take() {
            // The sheaf may hold more than was asked for: it was filled to
            // its capacity. What it holds goes back to the cache.
            tree.cache.return_sheaf(Gfp::NOWAIT, s);
        }
        for p in self.list.drain(..) {
            // SAFETY: a preallocated node never handed out: ours to free.
            unsafe { tree.cache.free(p) };
        }
        if !core::mem::take(&mut self.pending) {
            return 0;
        }
        self.requested.saturating_sub(self.used)
    }
}
