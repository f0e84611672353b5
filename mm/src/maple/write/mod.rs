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
//! A node store (the store stays within one leaf whose new content fits
//! and is not deficient) writes the new leaf straight from the old one
//! and swaps it in ([`MaWriter::node_store`], `mas_wr_node_store()`).
//! The stores that may change more than one node (split, rebalance,
//! spanning store) share one loop ([`MaWriter::rebuild`]): at each level, starting
//! at the leaves, the new content of the span of nodes between the left
//! and the right path (a "big node") is cut into one to three new nodes;
//! a deficient content first pulls in a neighbouring node (the next one,
//! else the previous one, a cousin if the siblings are covered too), as
//! Linux's rebalance does. The parent level's content is then its left
//! part, the new nodes and its right part, and the loop climbs until a
//! level where the span is one node whose replacement fits: that node is
//! swapped in with one pointer store (or a new root is published).
//!
//! Files, by step and store type: `walk.rs` (the write walk, the plan and
//! the store type), `prealloc.rs` (the nodes set aside before a store),
//! `in_place.rs` (exact fit, slot store, append), `rebuild.rs` (new root,
//! node store, split, rebalance, spanning store, and freeing what they
//! replaced), `gap.rs` (the gaps of allocation-range trees); this file
//! has the shared types and [`MaWriter`], whose `execute` dispatches on
//! the store type.
//!
//! # Invariants
//!
//! - P1: in a plan, the leaf level of the left path has `offset` at the
//!   slot that contains `index` (after the NULL extension moved `index`
//!   to the start of an absorbed NULL range, the offset moved with it);
//!   the node store writes from there and finds the slot of `last` by
//!   scanning the same leaf's pivots.
//! - S1: the node supply holds nothing outside a preallocation
//!   (`prealloc.rs`): `destroy` with nothing pending has nothing to give
//!   back.
//! - The tree does not change between a plan and its execution: both run
//!   under one hold of the writer lock (`# Locking` in `maple/mod.rs`).
//!
//! # Ordering
//!
//! What readers may see is the protocol of the module's `# Ordering`
//! (mod.rs): a rebuilt node is complete before the one pointer store
//! that publishes it, and the nodes it replaces are marked dead after
//! that store and before `kfree_rcu`; the in-place store types (exact
//! fit, slot store, append) store the slot that gains range before the
//! pivot that gives it the range, and end with
//! [`Node::end_in_place_store`](super::node::Node::end_in_place_store),
//! which readers check.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::node::{Enode, MAPLE_HEIGHT_MAX, Node, range_size};
use super::{MapleEntry, MapleError, MapleStat, MapleTree};
use crate::gfp::Gfp;
use crate::platform::Platform;

mod gap;
mod in_place;
mod prealloc;
mod rebuild;
mod walk;

use prealloc::Supply;

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

impl Plan {
    /// A store of `raw` over `[index, last]`, not planned yet.
    fn new(index: u64, last: u64, raw: usize) -> Plan {
        let empty_path = || Path {
            lv: [EMPTY_LEVEL; MAPLE_HEIGHT_MAX],
            height: 0,
        };
        Plan {
            asked: (index, last, raw),
            index,
            last,
            raw,
            kind: StoreType::None,
            lp: empty_path(),
            rp: empty_path(),
            request: 0,
            request_full: 0,
        }
    }

    /// Makes a used plan that of a new store of `raw` over `[index,
    /// last]`, not planned yet: the paths are emptied by their heights,
    /// their levels left as they are (a walk overwrites every level it
    /// reaches, and none is read above a path's height).
    fn reset(&mut self, index: u64, last: u64, raw: usize) {
        self.asked = (index, last, raw);
        (self.index, self.last, self.raw) = (index, last, raw);
        self.kind = StoreType::None;
        self.lp.height = 0;
        self.rp.height = 0;
        (self.request, self.request_full) = (0, 0);
    }
}

/// The writer's scratch space, kept under the tree lock between stores
/// (see `MapleTree::lock`).
pub(super) struct Scratch {
    plan: Plan,
    big: Big,
}

impl Scratch {
    /// A scratch space on the heap, or `None` when there is no memory
    /// (the store then plans on the stack).
    fn try_new() -> Option<Vec<Scratch>> {
        let mut v = Vec::new();
        v.try_reserve_exact(1).ok()?;
        v.push(Scratch {
            plan: Plan::new(0, 0, 0),
            big: Big::new(),
        });
        Some(v)
    }
}

/// Proof that the tree's writer lock is held: only [`MaWriter::new`]
/// makes one, right after taking the lock, and keeps it in the writer,
/// so a `&WriteLocked` cannot outlive the lock guard. Neither `Clone`
/// nor `Copy`.
pub(in crate::maple) struct WriteLocked(());

impl Enode {
    /// The node, for the writer (`mte_to_node()` under the tree lock).
    ///
    /// Soundness rests on two rules of the write path, which is the only
    /// code that calls this (it is private to `maple`):
    ///
    /// - W1: every `Enode` the write path holds was read from the tree
    ///   (its root or a slot of a node so read) while the writer lock was
    ///   held, or was built by this writer from its preallocated nodes.
    /// - W2: only the writer frees nodes, and only through `kfree_rcu`
    ///   after unlinking them ([`MapleTree::free_node`]); a node it frees
    ///   is not read after the free is queued.
    ///
    /// So while the lock is held (proved by `locked`, which cannot
    /// outlive it) the node is live.
    #[inline]
    pub(in crate::maple) fn node_locked(self, locked: &WriteLocked) -> &Node {
        let _ = locked;
        // SAFETY: W1 and W2 above: the node was reachable from the tree
        // (or built here) under the writer lock, which `locked` proves is
        // still held, and nodes are freed only by the lock holder, after
        // a grace period, once unlinked; so its memory is valid for reads.
        unsafe { self.node() }
    }
}

/// The writer: holds the tree's lock and the nodes preallocated for the
/// next store (Linux's `ma_state` in a write).
pub struct MaWriter<'t, 'a, T: MapleEntry, P: Platform> {
    pub(super) tree: &'t MapleTree<'a, T, P>,
    /// The lock guard, over the scratch space.
    guard: spin::MutexGuard<'t, Vec<Scratch>>,
    /// The proof the write path passes down to read nodes.
    locked: WriteLocked,
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
            guard: tree.lock.lock(),
            locked: WriteLocked(()),
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
        // `preallocate` + `store_prealloc` without parking the plan (2.5
        // KiB: two paths of MAPLE_HEIGHT_MAX levels) in a box in between:
        // one plan, executed in place, in the tree's scratch space (taken
        // out of the guard for the store: a move of the pointer), else
        // on the stack.
        if index > last {
            return Err(MapleError::Inval);
        }
        let raw = entry.map_or(0, T::into_raw);
        let scratch = core::mem::take(&mut *self.guard);
        let mut scratch = if scratch.is_empty() {
            match Scratch::try_new() {
                Some(s) => s,
                None => {
                    let mut plan = Plan::new(index, last, raw);
                    let mut big = Big::new();
                    return self.store_planned(&mut plan, &mut big, gfp);
                }
            }
        } else {
            scratch
        };
        let Scratch { plan, big } = &mut scratch[0];
        plan.reset(index, last, raw);
        big.len = 0;
        let r = self.store_planned(plan, big, gfp);
        *self.guard = scratch;
        r
    }

    /// Plans the store `plan.asked`, allocates its nodes and executes it;
    /// `big` is the scratch big node, empty.
    fn store_planned(
        &mut self,
        plan: &mut Plan,
        big: &mut Big,
        gfp: Gfp,
    ) -> Result<(), MapleError> {
        self.destroy();
        self.tree.plan_into(&self.locked, plan);
        self.supply.alloc(self.tree, plan.request, gfp)?;
        self.count_request(plan);
        if let Some(s) = plan.kind.stat() {
            self.tree.inc(s, 1);
        }
        self.execute(plan, big);
        self.destroy();
        Ok(())
    }

    fn count_request(&self, plan: &Plan) {
        self.tree
            .inc(MapleStat::NodesRequested, plan.request as u64);
        self.tree.inc(
            MapleStat::NodesRequestedFullHeight,
            plan.request_full as u64,
        );
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
        let plan = self
            .tree
            .plan(&self.locked, index, last, entry.map_or(0, T::into_raw));
        self.supply.alloc(self.tree, plan.request, gfp)?;
        self.count_request(&plan);
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
        let mut plan = match self.planned.take() {
            Some(p) if p.asked == (index, last, raw) => p,
            _ => Box::new(self.tree.plan(&self.locked, index, last, raw)),
        };
        if let Some(s) = plan.kind.stat() {
            self.tree.inc(s, 1);
        }
        self.execute(&mut plan, &mut Big::new());
        self.destroy();
    }

    /// Gives back nodes preallocated and not used (`mas_destroy()`).
    pub fn destroy(&mut self) {
        self.prealloc = None;
        self.planned = None;
        let unused = self.supply.release(self.tree);
        if unused != 0 {
            self.tree.inc(MapleStat::NodesUnused, unused as u64);
        }
    }

    /// Nodes requested by the last preallocation and used by its store.
    pub fn nodes_requested_used(&self) -> (usize, usize) {
        (self.supply.requested, self.supply.used)
    }

    /// Carries out `plan`; its paths are used up (rebuilt in place).
    /// `big` is an empty big node to build in.
    fn execute(&mut self, plan: &mut Plan, big: &mut Big) {
        let tree = self.tree;
        match plan.kind {
            StoreType::None => {}
            StoreType::NewRoot => self.new_root(plan),
            StoreType::ExactFit => tree.wr_exact_fit(&self.locked, plan),
            StoreType::SlotStore => tree.wr_slot_store(&self.locked, plan),
            StoreType::Append => tree.wr_append(&self.locked, plan),
            StoreType::NodeStore => self.node_store(plan),
            StoreType::Split | StoreType::Rebalance | StoreType::Spanning => {
                tree.leaf_content(&self.locked, plan.lp.leaf(), plan.rp.leaf(), plan, big);
                self.rebuild(&mut plan.lp, &mut plan.rp, big);
            }
        }
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
