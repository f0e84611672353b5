//! Whole-tree consistency check (`mt_validate()`), for tests and debugging.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::Ordering::*;

use super::node::{Enode, NodeType, range_size};
use super::{MapleEntry, MapleTree};
use crate::platform::Platform;

/// What a validation walk carries from leaf to leaf.
struct Walk {
    leaf_depth: Option<usize>,
    /// The previous leaf slot was NULL (no two NULLs may be adjacent).
    prev_null: bool,
    entries: usize,
    nodes: usize,
}

impl<T: MapleEntry, P: Platform> MapleTree<'_, T, P> {
    /// Checks every invariant; returns the number of entries and nodes,
    /// or a description of the first violation. Takes the writer lock.
    ///
    /// Checked: pivots strictly increasing within the node's range, the
    /// last used slot's pivot equal to the maximum, unused pivots zero;
    /// every non-root node at least minimally filled and an internal root
    /// with two children; all leaves at depth height − 1; node types;
    /// recorded gaps equal to the real largest gaps; no two adjacent NULL
    /// ranges, and no NULL at the end of a leaf other than the rightmost;
    /// no dead node reachable.
    pub fn validate(&self) -> Result<(usize, usize), String> {
        let _w = self.lock.lock();
        let en = Enode(self.root.load(Acquire));
        if en.0 == 0 {
            return match self.height() {
                0 => Ok((0, 0)),
                h => Err(format!("empty tree with height {h}")),
            };
        }
        let mut w = Walk {
            leaf_depth: None,
            prev_null: false,
            entries: 0,
            nodes: 0,
        };
        self.validate_node(en, 0, 0, u64::MAX, &mut w)?;
        let depth = w.leaf_depth.expect("a leaf was seen");
        if depth + 1 != self.height() {
            return Err(format!(
                "leaves at depth {depth} but height {}",
                self.height()
            ));
        }
        Ok((w.entries, w.nodes))
    }

    /// Validates the subtree of `en` covering `[min, max]` at `depth`;
    /// returns its largest gap.
    fn validate_node(
        &self,
        en: Enode,
        depth: usize,
        min: u64,
        max: u64,
        w: &mut Walk,
    ) -> Result<u64, String> {
        let t = en.node_type();
        // SAFETY: reachable from the root under the writer lock: live.
        let node = unsafe { en.node() };
        let at = || {
            format!(
                "node {:#x} ({t:?}, depth {depth}, [{min:#x}, {max:#x}])",
                en.0
            )
        };
        w.nodes += 1;
        if node.is_dead() {
            return Err(format!("{}: dead node reachable", at()));
        }
        if !t.is_leaf() && t != self.internal_type() {
            return Err(format!("{}: wrong internal type", at()));
        }
        let end = node.data_end(t, max);
        if end >= t.slots() {
            return Err(format!("{}: end {end} out of range", at()));
        }
        if depth > 0 && end + 1 < t.min_count() {
            return Err(format!("{}: deficient, {} slots", at(), end + 1));
        }
        if depth == 0 && !t.is_leaf() && end == 0 {
            return Err(format!("{}: internal root with one child", at()));
        }
        let mut prev = None;
        for i in 0..end {
            let p = node.pivot(i);
            if p < min || p >= max || prev.is_some_and(|q| p <= q) {
                return Err(format!("{}: pivot[{i}] = {p:#x} out of order", at()));
            }
            prev = Some(p);
        }
        if end < t.pivots() && node.pivot(end) != max {
            return Err(format!("{}: pivot[end={end}] is not the maximum", at()));
        }
        for i in end + 1..t.pivots() {
            if node.pivot(i) != 0 {
                return Err(format!("{}: unused pivot[{i}] set", at()));
            }
        }
        let mut gap = 0;
        if t.is_leaf() {
            match w.leaf_depth {
                None => w.leaf_depth = Some(depth),
                Some(d) if d != depth => {
                    return Err(format!("{}: leaf at depth {depth}, others at {d}", at()));
                }
                _ => {}
            }
            for i in 0..=end {
                let (lo, hi) = node.slot_range(i, end, min, max);
                let null = node.slot(t, i) == 0;
                if null && w.prev_null {
                    return Err(format!("{}: adjacent NULL ranges at slot {i}", at()));
                }
                if null {
                    gap = gap.max(range_size(lo, hi));
                } else {
                    w.entries += 1;
                }
                w.prev_null = null;
            }
            if w.prev_null && max != u64::MAX {
                return Err(format!("{}: leaf ends with NULL", at()));
            }
            return Ok(gap);
        }
        for i in 0..=end {
            let (lo, hi) = node.slot_range(i, end, min, max);
            let child = Enode(node.slot(t, i));
            if child.0 == 0 {
                return Err(format!("{}: NULL child in slot {i}", at()));
            }
            let g = self.validate_node(child, depth + 1, lo, hi, w)?;
            if t == NodeType::Arange64 && node.gap(i) != g {
                return Err(format!(
                    "{}: gap[{i}] = {:#x}, real gap {g:#x}",
                    at(),
                    node.gap(i)
                ));
            }
            gap = gap.max(g);
        }
        Ok(gap)
    }
}
