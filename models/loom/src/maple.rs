//! Model 5: the maple tree's reader/writer publication protocol.
//!
//! Follows `mm/src/maple/` (`mod.rs`, `node.rs`, `write.rs`):
//! - node words are atomics: `Node::set_slot`/`set_pivot`/`set_dead`
//!   store `Release`, `slot`/`pivot`/`is_dead` load `Acquire`;
//!   `Node::clear` zeroes a node fresh from the cache with `Relaxed`
//!   stores;
//! - readers (`MapleTree::read`, `walk`, `walk_raw`): in an RCU read-side
//!   section, load the root (`Acquire`); at each level compute the node's
//!   `data_end`, choose the slot by its pivots, load the slot, check
//!   `is_dead` (restart from the root if dead), descend with the slot's
//!   range as the child's bounds;
//! - the in-place slot store (`MaWriter::execute`, `StoreType::SlotStore`):
//!   two adjacent slots of a live leaf exchange part of their ranges; the
//!   slot that receives the entry is stored first, the pivot that moves
//!   the boundary second, so that each single store leaves a valid view
//!   (then, in ce3706d, the header's count is bumped);
//! - node replacement (`MaWriter::build` then `new_root`/`publish_root`,
//!   or a parent's `set_slot` in `rebuild`): a node from the cache is
//!   cleared and filled, published with one `Release` store of the root
//!   (or of the parent slot), the old node is marked dead (`free_node`:
//!   `set_dead`) and freed by `kfree_rcu` after a grace period.
//!
//! The reader comes in three versions: `Reader::PreFix` follows `main`
//! (`walk` chooses the offset with one set of pivot loads and computes the
//! range with `slot_range`, which loads the pivots again, and `walk_raw`
//! a third time, so a pivot moved in between gives a range without the
//! index); `Reader::FindSlot` follows maple-race commit 3ba5a6f
//! (`Node::find_slot`: each pivot loaded once, the range made of the
//! loads that chose the slot); `Reader::Seq` follows maple-race commit
//! ce3706d: the node's header (dead bit and a count of in-place stores,
//! bumped with `Release` by `Node::end_in_place_store` after each
//! in-place store) is loaded before the node and compared after
//! (`Node::changed`), so that a reader never combines two in-place
//! stores.
//!
//! RCU is abstracted as in model 4 (a loom `RwLock`); a node's memory has
//! an `alive` flag in a loom `UnsafeCell` that the free writes and every
//! reader access reads.
//!
//! Nodes here have 3 slots and 2 pivots (Linux's `maple_leaf_64` and
//! `maple_range_64`: 16 and 15); trees have one or two levels (see
//! [`Store`] for the scenarios). Checked: every lookup returns a `(first, last, entry)` that the
//! tree showed for the index at some instant (before the store, between
//! its two steps, after it), and no reader touches a freed node.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::sync::{Arc, RwLock};

const SLOTS: usize = 3;
const PIVOTS: usize = SLOTS - 1;
const MAX: u64 = u64::MAX;
/// The header's dead bit; the bits above count in-place stores.
const DEAD: u64 = 1;
const SEQ_ONE: u64 = 2;
/// What a recycled node's words hold before `clear`.
const STALE: u64 = 0x6b6b_6b6b;

/// Entries (non-zero raw values).
const A: u64 = 0xA;
const B: u64 = 0xB;
const C: u64 = 0xC;
const D: u64 = 0xD;

/// Which reader walk the model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// `walk` + `slot_range` + `walk_raw` as on `main`: pivots loaded
    /// again for the range, the dead check after the slot.
    PreFix,
    /// maple-race 3ba5a6f: `find_slot`, each pivot loaded once; the dead
    /// check after the slot.
    FindSlot,
    /// maple-race ce3706d: `find_slot`, with the node's header loaded
    /// before the node and compared after (`Node::changed`): a dead node
    /// or a counted in-place store meanwhile restarts the walk.
    Seq,
    /// `Seq` with the node's pivot and slot loads `Relaxed` instead of
    /// `Acquire` (a broken variant: the second header load may then be
    /// satisfied before them).
    SeqRelaxedLoads,
}

/// How the writer deviates from the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    Faithful,
    /// The slot store moves the pivot before storing the slot.
    PivotBeforeSlot,
    /// `set_pivot` stores `Relaxed`.
    RelaxedPivot,
    /// The new root is published with a `Relaxed` store.
    RelaxedPublish,
    /// The replaced node is freed without waiting for a grace period.
    FreeWithoutGp,
    /// The reader does not check `is_dead` (a reader-side change, listed
    /// here to show what the check is for in this model).
    NoDeadCheck,
    /// In-place stores do not bump the header's count
    /// (`Node::end_in_place_store` left out).
    NoCountBump,
}

struct Node {
    /// `[pivot 0, pivot 1, slot 0, slot 1, slot 2]`, as `Node::w`.
    w: [AtomicU64; PIVOTS + SLOTS],
    /// `Node::header`: `DEAD` once replaced.
    header: AtomicU64,
    /// A leaf (`leaf_64`), else an internal `range_64` node (the code
    /// encodes the type in the node pointer).
    leaf: bool,
    /// The memory is a live node object (false once freed).
    alive: UnsafeCell<bool>,
}

/// A small tree: a pool of nodes, one of them the root.
pub struct Tree {
    /// The root: node index + 1.
    root: AtomicUsize,
    nodes: Vec<Node>,
    rcu: RwLock<()>,
    reader: Reader,
    writer: Writer,
}

/// A node's content: `(pivots, slots)`. In an internal node a slot holds
/// a child's index + 1 (the model's encoded node pointer).
type Content = ([u64; PIVOTS], [u64; SLOTS]);

/// `[A 0..=9] [NULL 10..=19] [B 20..=MAX]`.
const V0: Content = ([9, 19], [A, 0, B]);
/// A recycled node's words.
const RECYCLED: Content = ([STALE; PIVOTS], [STALE; SLOTS]);

impl Node {
    fn new(c: Content, leaf: bool, alive: bool) -> Node {
        let (p, s) = c;
        Node {
            w: [
                AtomicU64::new(p[0]),
                AtomicU64::new(p[1]),
                AtomicU64::new(s[0]),
                AtomicU64::new(s[1]),
                AtomicU64::new(s[2]),
            ],
            header: AtomicU64::new(0),
            leaf,
            alive: UnsafeCell::new(alive),
        }
    }

    fn touch(&self) {
        // SAFETY: reads the node memory's state; the free (the only write
        // while readers may hold the node) must be ordered after this read
        // by the grace period, which loom checks.
        let alive = self.alive.with(|a| unsafe { *a });
        assert!(alive, "use after free: a reader touched a freed node");
    }
    fn pivot(&self, i: usize, order: Ordering) -> u64 {
        self.touch();
        self.w[i].load(order)
    }

    fn set_pivot(&self, i: usize, v: u64, writer: Writer) {
        let order = if writer == Writer::RelaxedPivot {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        self.w[i].store(v, order);
    }

    fn slot(&self, i: usize, order: Ordering) -> u64 {
        self.touch();
        self.w[PIVOTS + i].load(order)
    }

    fn set_slot(&self, i: usize, v: u64) {
        self.w[PIVOTS + i].store(v, Ordering::Release);
    }

    /// `Node::header`.
    fn header(&self) -> u64 {
        self.touch();
        self.header.load(Ordering::Acquire)
    }

    fn is_dead(&self) -> bool {
        self.header() & DEAD != 0
    }

    /// `Node::set_dead`.
    fn set_dead(&self) {
        let h = self.header.load(Ordering::Relaxed);
        self.header.store(h | DEAD, Ordering::Release);
    }

    /// `Node::end_in_place_store`.
    fn end_in_place_store(&self) {
        let h = self.header.load(Ordering::Relaxed);
        self.header.store(h + SEQ_ONE, Ordering::Release);
    }

    /// `Node::data_end` for a leaf without metadata (full, or ending at
    /// `max`).
    fn data_end(&self, max: u64, order: Ordering) -> usize {
        match self.pivot(PIVOTS - 1, order) {
            p if p == max => PIVOTS - 1,
            _ => PIVOTS,
        }
    }

    /// `Node::find_slot` (maple-race).
    fn find_slot(
        &self,
        index: u64,
        end: usize,
        min: u64,
        max: u64,
        order: Ordering,
    ) -> (usize, u64, u64) {
        let mut lo = min;
        for offset in 0..end {
            let p = self.pivot(offset, order);
            if p >= index {
                return (offset, lo, p);
            }
            lo = p + 1;
        }
        (end, lo, max)
    }

    /// `Node::slot_range`.
    fn slot_range(&self, i: usize, end: usize, min: u64, max: u64) -> (u64, u64) {
        let lo = if i == 0 {
            min
        } else {
            self.pivot(i - 1, Ordering::Acquire) + 1
        };
        let hi = if i < end {
            self.pivot(i, Ordering::Acquire)
        } else {
            max
        };
        (lo, hi)
    }
}

/// The reader met a dead node.
struct Dead;

impl Tree {
    /// `nodes`: `(content, leaf, alive)`; node 0 is the root.
    fn new(nodes: &[(Content, bool, bool)], reader: Reader, writer: Writer) -> Tree {
        Tree {
            root: AtomicUsize::new(1),
            nodes: nodes
                .iter()
                .map(|&(c, leaf, alive)| Node::new(c, leaf, alive))
                .collect(),
            rcu: RwLock::new(()),
            reader,
            writer,
        }
    }

    /// The check after a node's loads: `true` means restart.
    fn restart(&self, node: &Node, header: u64) -> bool {
        match self.reader {
            Reader::Seq | Reader::SeqRelaxedLoads => node.header() != header,
            Reader::PreFix | Reader::FindSlot => {
                self.writer != Writer::NoDeadCheck && node.is_dead()
            }
        }
    }

    /// `walk` then `walk_raw`: `(first, last, entry)`.
    fn walk_raw(&self, index: u64) -> Result<(u64, u64, u64), Dead> {
        let order = if self.reader == Reader::SeqRelaxedLoads {
            Ordering::Relaxed
        } else {
            Ordering::Acquire
        };
        let seq = matches!(self.reader, Reader::Seq | Reader::SeqRelaxedLoads);
        let mut en = self.root.load(Ordering::Acquire);
        let (mut min, mut max) = (0, MAX);
        loop {
            let node = &self.nodes[en - 1];
            let header = if seq { node.header() } else { 0 };
            let end = node.data_end(max, order);
            let (offset, lo, hi) = match self.reader {
                Reader::PreFix => {
                    let mut offset = 0;
                    while offset < end && node.pivot(offset, order) < index {
                        offset += 1;
                    }
                    let (lo, hi) = node.slot_range(offset, end, min, max);
                    (offset, lo, hi)
                }
                _ => node.find_slot(index, end, min, max, order),
            };
            let slot = node.slot(offset, order);
            if self.restart(node, header) {
                return Err(Dead);
            }
            if !node.leaf {
                (en, min, max) = (slot as usize, lo, hi);
                continue;
            }
            // walk_raw, on the leaf slot the walk found.
            let (lo, hi) = match self.reader {
                Reader::PreFix => node.slot_range(offset, end, min, max),
                _ => (lo, hi),
            };
            let raw = node.slot(offset, order);
            if self.restart(node, header) {
                return Err(Dead);
            }
            return Ok((lo, hi, raw));
        }
    }

    /// `MapleTree::walk_range`: `read` restarts on a dead node.
    pub fn walk_range(&self, index: u64) -> (u64, u64, u64) {
        loop {
            let _rcu = self.rcu.read().unwrap();
            if let Ok(r) = self.walk_raw(index) {
                return r;
            }
        }
    }

    /// The in-place `SlotStore` of `entry` over `[index, last]` into leaf
    /// `leaf` (spanning from 0), whose write path found the range
    /// starting in slot `o`.
    fn slot_store(&self, leaf: usize, o: usize, index: u64, last: u64, entry: u64) {
        let node = &self.nodes[leaf];
        let lo = if o == 0 {
            0
        } else {
            node.pivot(o - 1, Ordering::Acquire) + 1
        };
        let (slot, pivot) = if index == lo {
            (o, last)
        } else {
            (o + 1, index - 1)
        };
        if self.writer == Writer::PivotBeforeSlot {
            node.set_pivot(o, pivot, self.writer);
            node.set_slot(slot, entry);
        } else {
            node.set_slot(slot, entry);
            node.set_pivot(o, pivot, self.writer);
        }
        if self.writer != Writer::NoCountBump {
            node.end_in_place_store();
        }
    }

    /// A node store: builds `content` in the spare node `new` (`pop_node`,
    /// `clear`, `build`), publishes it in place of node `old` as the root
    /// (`parent` `None`: `new_root`/`publish_root`) or in slot `offset` of
    /// node `parent` (`rebuild`'s `pnode.set_slot`), and frees the old
    /// node (`free_node`: `set_dead`, `kfree_rcu`).
    fn replace_node(
        &self,
        old: usize,
        new: usize,
        content: Content,
        parent: Option<(usize, usize)>,
    ) {
        let node = &self.nodes[new];
        // SAFETY: the spare node is not published: only the writer sees it.
        node.alive.with_mut(|a| unsafe { *a = true });
        node.header.store(0, Ordering::Relaxed);
        for w in &node.w {
            w.store(0, Ordering::Relaxed);
        }
        let (p, s) = content;
        for (i, &v) in s.iter().enumerate() {
            node.set_slot(i, v);
            if i < PIVOTS {
                node.set_pivot(i, p[i], self.writer);
            }
        }
        let order = if self.writer == Writer::RelaxedPublish {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        match parent {
            None => self.root.store(new + 1, order),
            Some((pn, offset)) => self.nodes[pn].w[PIVOTS + offset].store(new as u64 + 1, order),
        }
        // free_node
        let old_node = &self.nodes[old];
        old_node.set_dead();
        if self.writer != Writer::FreeWithoutGp {
            drop(self.rcu.write().unwrap());
        }
        for w in &old_node.w {
            w.store(STALE, Ordering::Relaxed);
        }
        // SAFETY: unpublished and past its grace period: no reader holds
        // it. Loom checks that every reader access happened before.
        old_node.alive.with_mut(|a| unsafe { *a = false });
    }
}

/// What a lookup of `index` returns in a leaf spanning `[min, max]` that
/// shows `c` (`data_end` as `Node::data_end` computes it).
fn lookup(c: Content, min: u64, max: u64, index: u64) -> (u64, u64, u64) {
    let (p, s) = c;
    let end = if p[PIVOTS - 1] == max {
        PIVOTS - 1
    } else {
        PIVOTS
    };
    let mut lo = min;
    for i in 0..=end {
        let hi = if i < end { p[i] } else { max };
        if index <= hi {
            return (lo, hi, s[i]);
        }
        lo = hi + 1;
    }
    unreachable!()
}

/// The scenarios: which store the writer makes and which index the
/// reader looks up (one on the moving boundary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// `C` over `[10, 24]`: starts at slot 1's first index, so slot 1
    /// gets `C` and pivot 1 moves 19 -> 24. The reader looks up 22.
    SlotStoreFront,
    /// `C` over `[5, 19]`: ends at slot 1's last index, so slot 1 gets
    /// `C` and pivot 0 moves 9 -> 4. The reader looks up 7.
    SlotStoreBack,
    /// `C` over `[10, 29]`: a new leaf `[A 0..=9] [C 10..=29] [B 30..]`
    /// replaces the root leaf. The reader looks up 25.
    NodeStore,
    /// Two slot stores in a row on one leaf (maple-race's
    /// `two_slot_stores_on_one_leaf`): `C` over `[5, 19]` moves pivot 0
    /// 9 -> 4, then `D` over `[5, 24]` moves pivot 1 19 -> 24. The reader
    /// looks up 22: pivot 0 loaded before both and pivot 1 after both
    /// gives `[10, 24] -> D`, bounds the tree never showed.
    TwoSlotStores,
    /// A two-level tree: the root `[leaf 0..=19] [leaf 20..=MAX]`, the
    /// second leaf `[B 20..=29] [NULL 30..=MAX]`. `C` over `[30, 39]`: a
    /// new leaf `[B 20..=29] [C 30..=39] [NULL 40..=MAX]` is published in
    /// the root's slot 1. The reader looks up 35.
    ParentSlot,
}

pub fn model(store: Store, reader: Reader, writer: Writer) {
    type Views = Vec<(Content, u64, u64)>;
    let (nodes, index, views): (Vec<(Content, bool, bool)>, u64, Views) = match store {
        Store::SlotStoreFront => (
            vec![(V0, true, true)],
            22,
            vec![
                (V0, 0, MAX),
                (([9, 19], [A, C, B]), 0, MAX),
                (([9, 24], [A, C, B]), 0, MAX),
            ],
        ),
        Store::SlotStoreBack => (
            vec![(V0, true, true)],
            7,
            vec![
                (V0, 0, MAX),
                (([9, 19], [A, C, B]), 0, MAX),
                (([4, 19], [A, C, B]), 0, MAX),
            ],
        ),
        Store::TwoSlotStores => (
            vec![(V0, true, true)],
            22,
            vec![
                (V0, 0, MAX),
                (([9, 19], [A, C, B]), 0, MAX),
                (([4, 19], [A, C, B]), 0, MAX),
                (([4, 19], [A, D, B]), 0, MAX),
                (([4, 24], [A, D, B]), 0, MAX),
            ],
        ),
        Store::NodeStore => (
            vec![(V0, true, true), (RECYCLED, true, false)],
            25,
            vec![(V0, 0, MAX), (([9, 29], [A, C, B]), 0, MAX)],
        ),
        Store::ParentSlot => (
            vec![
                (([19, MAX], [2, 3, 0]), false, true),
                (([9, 19], [A, 0, 0]), true, true),
                (([29, MAX], [B, 0, 0]), true, true),
                (RECYCLED, true, false),
            ],
            35,
            vec![
                (([29, MAX], [B, 0, 0]), 20, MAX),
                (([29, 39], [B, C, 0]), 20, MAX),
            ],
        ),
    };
    let tree = Arc::new(Tree::new(&nodes, reader, writer));
    let t = tree.clone();
    let lookup_thread = loom::thread::spawn(move || t.walk_range(index));
    let t = tree.clone();
    let writer_thread = loom::thread::spawn(move || match store {
        Store::SlotStoreFront => t.slot_store(0, 1, 10, 24, C),
        Store::SlotStoreBack => t.slot_store(0, 0, 5, 19, C),
        Store::TwoSlotStores => {
            t.slot_store(0, 0, 5, 19, C);
            t.slot_store(0, 1, 5, 24, D);
        }
        Store::NodeStore => t.replace_node(0, 1, ([9, 29], [A, C, B]), None),
        Store::ParentSlot => t.replace_node(2, 3, ([29, 39], [B, C, 0]), Some((0, 1))),
    });
    writer_thread.join().unwrap();
    let got = lookup_thread.join().unwrap();
    let mut valid: Vec<_> = views
        .iter()
        .map(|&(c, min, max)| lookup(c, min, max, index))
        .collect();
    valid.dedup();
    let show = |(lo, hi, e): (u64, u64, u64)| {
        let hi = if hi == MAX {
            "MAX".to_string()
        } else {
            hi.to_string()
        };
        format!("[{lo}, {hi}] -> {e:#x}")
    };
    assert!(
        valid.contains(&got),
        "torn read: lookup({index}) returned {}, the tree only ever showed {}",
        show(got),
        valid
            .iter()
            .map(|&v| show(v))
            .collect::<Vec<_>>()
            .join(" or ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PREEMPTIONS;

    const STORES: [Store; 5] = [
        Store::SlotStoreFront,
        Store::SlotStoreBack,
        Store::TwoSlotStores,
        Store::NodeStore,
        Store::ParentSlot,
    ];
    const SLOT_STORES: [Store; 2] = [Store::SlotStoreFront, Store::SlotStoreBack];
    const NODE_STORES: [Store; 2] = [Store::NodeStore, Store::ParentSlot];
    const BROKEN: &[&str] = &["torn read", "use after free", "Causality violation"];

    /// The protocol of maple-race ce3706d passes every scenario.
    #[test]
    fn maple_publication() {
        for store in STORES {
            crate::check(&format!("maple/{store:?}"), PREEMPTIONS, move || {
                model(store, Reader::Seq, Writer::Faithful)
            });
        }
    }

    /// 3ba5a6f's reader (pivots loaded once, dead check only) passes one
    /// store at a time ...
    #[test]
    fn maple_find_slot_reader_single_stores() {
        for store in [SLOT_STORES, NODE_STORES].concat() {
            crate::check(
                &format!("maple/{store:?}/find-slot-reader"),
                PREEMPTIONS,
                move || model(store, Reader::FindSlot, Writer::Faithful),
            );
        }
    }

    /// ... but combines two slot stores on one leaf.
    #[test]
    fn maple_find_slot_reader_two_stores_is_caught() {
        crate::expect_caught(
            "maple/TwoSlotStores/find-slot-reader",
            PREEMPTIONS,
            &["torn read"],
            || model(Store::TwoSlotStores, Reader::FindSlot, Writer::Faithful),
        );
    }

    /// main's reader (pivots loaded again for the range) tears on one
    /// slot store.
    #[test]
    fn maple_pre_fix_reader_is_caught() {
        for store in SLOT_STORES {
            crate::expect_caught(
                &format!("maple/{store:?}/pre-fix-reader"),
                PREEMPTIONS,
                &["torn read"],
                move || model(store, Reader::PreFix, Writer::Faithful),
            );
        }
    }

    #[test]
    fn maple_pre_fix_reader_is_fine_with_node_stores() {
        for store in NODE_STORES {
            crate::check(
                &format!("maple/{store:?}/pre-fix-reader"),
                PREEMPTIONS,
                move || model(store, Reader::PreFix, Writer::Faithful),
            );
        }
    }

    #[test]
    fn maple_relaxed_node_loads_are_caught() {
        crate::expect_caught(
            "maple/TwoSlotStores/seq-relaxed-loads",
            PREEMPTIONS,
            BROKEN,
            || {
                model(
                    Store::TwoSlotStores,
                    Reader::SeqRelaxedLoads,
                    Writer::Faithful,
                )
            },
        );
    }

    #[test]
    fn maple_no_count_bump_is_caught() {
        crate::expect_caught(
            "maple/TwoSlotStores/no-count-bump",
            PREEMPTIONS,
            &["torn read"],
            || model(Store::TwoSlotStores, Reader::Seq, Writer::NoCountBump),
        );
    }

    #[test]
    fn maple_pivot_before_slot_is_caught() {
        for store in SLOT_STORES {
            crate::expect_caught(
                &format!("maple/{store:?}/pivot-before-slot"),
                PREEMPTIONS,
                BROKEN,
                move || model(store, Reader::Seq, Writer::PivotBeforeSlot),
            );
        }
    }

    #[test]
    fn maple_relaxed_pivot_is_caught() {
        for store in SLOT_STORES {
            crate::expect_caught(
                &format!("maple/{store:?}/relaxed-pivot"),
                PREEMPTIONS,
                BROKEN,
                move || model(store, Reader::Seq, Writer::RelaxedPivot),
            );
        }
    }

    #[test]
    fn maple_relaxed_publish_is_caught() {
        for store in NODE_STORES {
            crate::expect_caught(
                &format!("maple/{store:?}/relaxed-publish"),
                PREEMPTIONS,
                BROKEN,
                move || model(store, Reader::Seq, Writer::RelaxedPublish),
            );
        }
    }

    #[test]
    fn maple_free_without_gp_is_caught() {
        for store in NODE_STORES {
            crate::expect_caught(
                &format!("maple/{store:?}/free-without-gp"),
                PREEMPTIONS,
                BROKEN,
                move || model(store, Reader::Seq, Writer::FreeWithoutGp),
            );
        }
    }

    /// Not a broken variant: without the dead check, a single lookup in
    /// this model still returns a view the tree showed (the old node is
    /// never changed after it is replaced). Kept so that the record says
    /// what the check is (not) needed for here.
    #[test]
    fn maple_without_dead_check_single_lookup() {
        for store in NODE_STORES {
            crate::check(
                &format!("maple/{store:?}/no-dead-check"),
                PREEMPTIONS,
                move || model(store, Reader::FindSlot, Writer::NoDeadCheck),
            );
        }
    }
}
