//! The store types that change one leaf in place, without a new node
//! (`mas_wr_slot_store()`, `mas_wr_append()`, and the exact fit of
//! `mas_wr_store_entry()`). Only the tree's writer runs them.
//!
//! # Ordering
//!
//! Readers walk the leaf while it changes (see the `# Ordering` of
//! `maple/mod.rs`): each store leaves a view a reader may use. The slot
//! that gains range is stored before the pivot that gives it the range,
//! and every in-place store ends with
//! [`Node::end_in_place_store`](super::super::node::Node::end_in_place_store),
//! which readers check.

use super::super::hook;
use super::super::node::NodeType;
use super::super::{MapleEntry, MapleTree};
use super::{Big, Plan, WriteLocked};
use crate::platform::Platform;

impl<T: MapleEntry, P: Platform> MapleTree<'_, T, P> {
    /// Replaces the entry of a slot whose range is exactly the store's.
    pub(super) fn wr_exact_fit(&self, w: &WriteLocked, plan: &Plan) {
        let leaf = plan.lp.leaf();
        let node = leaf.node.node_locked(w);
        let old = node.slot(NodeType::Leaf64, leaf.offset);
        node.set_slot(NodeType::Leaf64, leaf.offset, plan.raw);
        hook::writer_step("exact_fit: slot");
        node.end_in_place_store();
        hook::writer_step("exact_fit: header");
        if (old == 0) != (plan.raw == 0) {
            self.propagate_gap(w, &plan.lp, plan.lp.height - 1, leaf.node);
        }
    }

    /// A store that shares a slot boundary with the old range: one slot
    /// and one pivot change (`mas_wr_slot_store()`).
    pub(super) fn wr_slot_store(&self, w: &WriteLocked, plan: &Plan) {
        let leaf = plan.lp.leaf();
        let node = leaf.node.node_locked(w);
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
        self.propagate_gap(w, &plan.lp, plan.lp.height - 1, leaf.node);
    }

    /// A store at the end of the last leaf of a tree without RCU readers:
    /// new slots after the used ones (`mas_wr_append()`).
    pub(super) fn wr_append(&self, w: &WriteLocked, plan: &Plan) {
        let leaf = *plan.lp.leaf();
        let mut big = Big::new();
        self.leaf_content(w, &leaf, &leaf, plan, &mut big);
        let node = leaf.node.node_locked(w);
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
        self.propagate_gap(w, &plan.lp, plan.lp.height - 1, leaf.node);
    }
}
