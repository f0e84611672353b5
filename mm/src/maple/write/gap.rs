//! Gap tracking for allocation-range trees (`mas_update_gap()`): the
//! largest NULL range below each slot of an `Arange64` node, kept up to
//! date after every store.

use super::super::hook;
use super::super::node::{Enode, NodeType, range_size};
use super::super::{MapleEntry, MapleTree};
use super::{Path, WriteLocked};
use crate::platform::Platform;

impl<T: MapleEntry, P: Platform> MapleTree<'_, T, P> {
    /// Largest gap in the subtree of `en` covering `[min, max]`.
    pub(in crate::maple) fn node_gap(&self, w: &WriteLocked, en: Enode, min: u64, max: u64) -> u64 {
        let t = en.node_type();
        let node = en.node_locked(w);
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
    pub(super) fn propagate_gap(&self, w: &WriteLocked, path: &Path, d: usize, child: Enode) {
        if self.internal_type() != NodeType::Arange64 {
            return;
        }
        let (mut child, mut cmin, mut cmax) = (child, path.lv[d].min, path.lv[d].max);
        for k in (0..d).rev() {
            let g = self.node_gap(w, child, cmin, cmax);
            let parent = path.lv[k];
            let pnode = parent.node.node_locked(w);
            if pnode.gap(parent.offset) == g {
                return;
            }
            pnode.set_gap(parent.offset, g);
            hook::writer_step("gap");
            (child, cmin, cmax) = (parent.node, parent.min, parent.max);
        }
    }
}

pub(super) fn leaf_gap(slot: usize, lo: u64, hi: u64) -> u64 {
    if slot == 0 { range_size(lo, hi) } else { 0 }
}
