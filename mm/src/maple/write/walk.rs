//! The write walk and the store plan (`mas_wr_walk()`,
//! `mas_wr_store_type()`, `mas_prealloc_calc()`): the path to the leaf of
//! `index` (and of `last` for a spanning store), NULL ranges absorbed at
//! both ends, the store type, and how many nodes the store can need.
//! Runs under the writer lock; nothing changes here.

use core::sync::atomic::Ordering::*;

use super::super::node::{Enode, NodeType};
use super::super::{MapleEntry, MapleTree, MtFlags};
use super::{Level, Path, Plan, StoreType, WriteLocked};
use crate::platform::Platform;

impl<T: MapleEntry, P: Platform> MapleTree<'_, T, P> {
    /// The slot containing `index` under the writer lock: `(first, last,
    /// raw entry)`.
    pub(in crate::maple) fn walk_locked(&self, index: u64) -> (u64, u64, usize) {
        match self.walk_raw(index) {
            Ok(r) => r,
            Err(_) => unreachable!("maple: the writer met a dead node"),
        }
    }

    /// The write walk: the path from the root to the leaf of `index`,
    /// into `p`, whose old levels are overwritten up to the new height
    /// (no path's worth of copying: a path is 1.2 KiB).
    pub(in crate::maple) fn write_path_into(&self, w: &WriteLocked, index: u64, p: &mut Path) {
        p.height = 0;
        let mut en = Enode(self.root.load(Relaxed));
        let (mut min, mut max) = (0, u64::MAX);
        loop {
            let t = en.node_type();
            let node = en.node_locked(w);
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
                return;
            }
            let (lo, hi) = node.slot_range(offset, end, min, max);
            (en, min, max) = (Enode(node.slot(t, offset)), lo, hi);
        }
    }

    /// Moves `path` at depth `d` to the next (`right`) or previous node at
    /// that depth: up to the deepest ancestor that has one more child
    /// that way, across, then down its nearest edge.
    pub(super) fn step_path(&self, w: &WriteLocked, path: &mut Path, d: usize, right: bool) {
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
            let pnode = parent.node.node_locked(w);
            let (min, max) = pnode.slot_range(parent.offset, parent.end, parent.min, parent.max);
            let en = Enode(pnode.slot(pt, parent.offset));
            let end = en.node_locked(w).data_end(en.node_type(), max);
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
    pub(super) fn plan(&self, w: &WriteLocked, index: u64, last: u64, raw: usize) -> Plan {
        let mut plan = Plan::new(index, last, raw);
        self.plan_into(w, &mut plan);
        plan
    }

    /// [`MapleTree::plan`] into a plan made by the caller with
    /// `plan.asked` set and the rest as `plan` sets it (2.5 KiB not
    /// returned by value, a copy for the callers that keep it on the
    /// stack).
    pub(super) fn plan_into(&self, w: &WriteLocked, plan: &mut Plan) {
        let (mut index, mut last, raw) = plan.asked;
        if self.is_empty() {
            if raw != 0 {
                plan.kind = StoreType::NewRoot;
                (plan.request, plan.request_full) = (1, 1);
            }
            return;
        }
        // The paths are walked into the plan itself.
        self.write_path_into(w, index, &mut plan.lp);
        let lp = &mut plan.lp;
        if raw == 0 {
            // mas_wr_extend_null(): absorb the NULL range at `index` or just
            // before it. It is in this leaf: a leaf other than the
            // rightmost never ends with NULL.
            let leaf = lp.leaf_mut();
            let node = leaf.node.node_locked(w);
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
        if last > lp.leaf().max {
            self.write_path_into(w, last, &mut plan.rp);
        } else {
            let h = lp.height;
            plan.rp.lv[..h].copy_from_slice(&lp.lv[..h]);
            plan.rp.height = h;
        }
        let (lp, rp) = (&plan.lp, &mut plan.rp);
        if raw == 0 {
            // The same at `last`, within its leaf...
            let leaf = *rp.leaf();
            let node = leaf.node.node_locked(w);
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
                self.write_path_into(w, last + 1, rp);
                let next = *rp.leaf();
                let nnode = next.node.node_locked(w);
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
            return;
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
            self.classify(w, &leaf, index, last, h == 1)
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
    }

    /// Store type of a write within one leaf (`mas_wr_store_type()`).
    pub(super) fn classify(
        &self,
        w: &WriteLocked,
        leaf: &Level,
        index: u64,
        last: u64,
        is_root: bool,
    ) -> StoreType {
        let node = leaf.node.node_locked(w);
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
}
