//! The stores that build new nodes: a new root, the node store (one
//! new leaf written from the old one), and the split, rebalance and
//! spanning store, which share one loop ([`MaWriter::rebuild`], see the
//! header of `write/mod.rs`); then the nodes they replaced are freed
//! through RCU.
//!
//! # Ordering
//!
//! A new node is complete before the one pointer store that publishes it
//! (a parent slot or the root); the nodes it replaces are marked dead
//! after that store and before `kfree_rcu`.

use core::sync::atomic::Ordering::*;

use super::super::hook;
use super::super::node::{Enode, NodeType};
use super::super::{MapleEntry, MapleTree};
use super::gap::leaf_gap;
use super::{Big, Item, Level, MaWriter, Path, Plan, WriteLocked, leaf_item};
use crate::platform::Platform;

impl<'t, 'a, T: MapleEntry, P: Platform> MaWriter<'t, 'a, T, P> {
    /// Replaces the whole tree by one leaf holding `[index, last]`.
    pub(super) fn new_root(&mut self, plan: &Plan) {
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

    /// A node store (`mas_wr_node_store()`): the store stays within one
    /// leaf, whose new content fits in one node and is not deficient
    /// (or the leaf is the root). The new leaf is written straight from
    /// the old one: its slots before the store, the part of the slot
    /// at `index` below it, the new range, the part of the slot at
    /// `last` above it, and its slots after the store. Then it replaces
    /// the old leaf with one pointer store, as the rebuild does for a
    /// node whose replacement fits, without the big node between.
    pub(super) fn node_store(&mut self, plan: &Plan) {
        let tree = self.tree;
        let leaf = *plan.lp.leaf();
        let new = self.pop_node();
        let old = leaf.node.node_locked(&self.locked);
        let t = NodeType::Leaf64;
        let (index, last, raw) = (plan.index, plan.last, plan.raw);
        let o = leaf.offset;
        // The slot of `index` is `o` (the plan's NULL extension moved
        // the offset with it); the slot of `last` is at or after it.
        let lo = if o == 0 {
            leaf.min
        } else {
            old.pivot(o - 1) + 1
        };
        let mut oe = o;
        let mut oe_hi = if o < leaf.end { old.pivot(o) } else { leaf.max };
        while oe_hi < last {
            oe += 1;
            oe_hi = if oe < leaf.end {
                old.pivot(oe)
            } else {
                leaf.max
            };
        }
        let mut n = 0;
        let mut put = |slot: usize, piv: u64| {
            new.set_slot(t, n, slot);
            if n < t.pivots() {
                new.set_pivot(n, piv);
            }
            n += 1;
        };
        for i in 0..o {
            put(old.slot(t, i), old.pivot(i));
        }
        if index > lo {
            put(old.slot(t, o), index - 1);
        }
        put(raw, last);
        if last < oe_hi {
            put(old.slot(t, oe), oe_hi);
        }
        for i in oe + 1..=leaf.end {
            let piv = if i < leaf.end { old.pivot(i) } else { leaf.max };
            put(old.slot(t, i), piv);
        }
        debug_assert!(n <= t.slots());
        if n < t.slots() {
            new.set_meta_end(t, n - 1);
        }
        let en = Enode::new(new, t);
        let d = plan.lp.height - 1;
        if d == 0 {
            tree.root.store(en.0, Release);
            hook::writer_step("node_store: root");
        } else {
            let parent = plan.lp.lv[d - 1];
            let pnode = parent.node.node_locked(&self.locked);
            pnode.set_slot(parent.node.node_type(), parent.offset, en.0);
            hook::writer_step("node_store: parent slot");
            tree.propagate_gap(&self.locked, &plan.lp, d, en);
        }
        tree.free_node(leaf.node);
    }

    /// Writes a new node of type `t` holding `items`, covering
    /// `[min, max]`; returns it and its largest gap.
    pub(super) fn build(
        &mut self,
        t: NodeType,
        items: &[Item],
        min: u64,
        max: u64,
    ) -> (Enode, u64) {
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
    pub(super) fn rebuild(&mut self, lp: &mut Path, rp: &mut Path, big: &mut Big) {
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
            if d > 0 && big.len < t.min_count() && !self.pull_neighbour(lp, rp, d, big) {
                // This level is rebuilt whole: its content is the new root.
                self.publish_root(t, big, leaf_depth - d + 1);
                tree.free_replaced(&self.locked, lp, rp, 0);
                return;
            }
            let (parts, k) = split(big.as_slice(), t);
            if d == 0 {
                if k == 1 {
                    self.publish_root(t, big, leaf_depth + 1);
                } else {
                    let mut top = Big::new();
                    self.build_parts(t, big, &parts[..k], 0, &mut top);
                    self.publish_root(internal, &top, leaf_depth + 2);
                }
                tree.free_replaced(&self.locked, lp, rp, 0);
                return;
            }
            if k == 1 && lp.lv[d].node == rp.lv[d].node {
                let (en, _) = self.build(t, big.as_slice(), lp.lv[d].min, rp.lv[d].max);
                let parent = lp.lv[d - 1];
                let pnode = parent.node.node_locked(&self.locked);
                pnode.set_slot(parent.node.node_type(), parent.offset, en.0);
                hook::writer_step("replace: parent slot");
                tree.propagate_gap(&self.locked, lp, d, en);
                tree.free_replaced(&self.locked, lp, rp, d);
                return;
            }
            let mut up = Big::new();
            let (l, r) = (lp.lv[d - 1], rp.lv[d - 1]);
            tree.push_items(&self.locked, &mut up, &l, 0, l.offset);
            self.build_parts(t, big, &parts[..k], lp.lv[d].min, &mut up);
            tree.push_items(&self.locked, &mut up, &r, r.offset + 1, r.end + 1);
            *big = up;
            d -= 1;
        }
    }

    /// Builds one node per part of `big`, pushing an item for each onto
    /// `up`; the first covers from `min`.
    pub(super) fn build_parts(
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
    pub(super) fn publish_root(&mut self, t: NodeType, big: &Big, height: usize) {
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
    pub(super) fn pull_neighbour(
        &mut self,
        lp: &mut Path,
        rp: &mut Path,
        d: usize,
        big: &mut Big,
    ) -> bool {
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
            tree.step_path(&self.locked, rp, d, true);
            let lv = rp.lv[d];
            tree.push_items(&self.locked, big, &lv, 0, lv.end + 1);
        } else {
            tree.step_path(&self.locked, lp, d, false);
            let lv = lp.lv[d];
            let mut left = Big::new();
            tree.push_items(&self.locked, &mut left, &lv, 0, lv.end + 1);
            big.prepend(&left);
        }
        true
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
    /// The new content of the leaves from `l`'s to `r`'s for `plan`: what lies before
    /// `index` in `l`, the new range, what lies after `last` in `r`.
    pub(super) fn leaf_content(
        &self,
        w: &WriteLocked,
        l: &Level,
        r: &Level,
        plan: &Plan,
        big: &mut Big,
    ) {
        let (index, last, raw) = (plan.index, plan.last, plan.raw);
        let (ln, rn) = (l.node.node_locked(w), r.node.node_locked(w));
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
    pub(super) fn push_items(
        &self,
        w: &WriteLocked,
        big: &mut Big,
        lv: &Level,
        from: usize,
        to: usize,
    ) {
        let t = lv.node.node_type();
        let node = lv.node.node_locked(w);
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

    /// Frees the nodes a rebuild replaced: from depth `top` down, every
    /// node whose range lies within the span `[lp.min, rp.max]` of its
    /// depth (`mas_mat_destroy()`). Nodes outside it were kept.
    pub(super) fn free_replaced(&self, w: &WriteLocked, lp: &Path, rp: &Path, top: usize) {
        let lv = lp.lv[top];
        self.free_within(w, lp, rp, top, lv.node, (lv.min, lv.max));
    }

    pub(super) fn free_within(
        &self,
        w: &WriteLocked,
        lp: &Path,
        rp: &Path,
        k: usize,
        en: Enode,
        (min, max): (u64, u64),
    ) {
        let t = en.node_type();
        if !t.is_leaf() {
            let node = en.node_locked(w);
            let end = node.data_end(t, max);
            let (smin, smax) = (lp.lv[k + 1].min, rp.lv[k + 1].max);
            for i in 0..=end {
                let (lo, hi) = node.slot_range(i, end, min, max);
                if lo >= smin && hi <= smax {
                    self.free_within(w, lp, rp, k + 1, Enode(node.slot(t, i)), (lo, hi));
                }
            }
        }
        self.free_node(en);
    }
}
