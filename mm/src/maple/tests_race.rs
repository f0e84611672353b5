//! Deterministic replays of RCU reader/writer interleavings.
//!
//! The stress test (`tests_rcu.rs`) finds races by chance. Here a reader
//! thread and the writer thread hand one baton back and forth at the
//! tree's hook points ([`super::hook`]), so that one interleaving runs
//! exactly: the reader stops before its `j`-th load of a node word, the
//! writer makes its first `m` visible stores (of one store, or of a short
//! sequence of stores), the reader finishes its read, then the writer
//! finishes. Every `(j, m)` is replayed, for every read (walk, find,
//! find_prev, empty_area) at every index around the stores, on a fresh
//! tree of the same shape each time.
//!
//! What a read may see, as in the stress test: the tree goes through
//! the states `S0` (before the sequence) .. `Sn` (after store `n`). A walk
//! at `i` gives a range containing `i`, with the entry (or NULL) that
//! covered `i` in one of the states, over a range within the one it
//! covered there. A find or find_prev gives an entry over a range within
//! the one it covered in a state where it covered the range's point
//! nearest `i`, inside the window asked for; or nothing, when `i` was NULL
//! in one of the states. (Which entry comes first may mix states: while
//! a slot store is half done, the entry it writes shows over its old
//! range only, next to the old content. Linux's readers see the same.)
//! Gap searches may miss an area a store is making (`Busy`), but an area
//! they return is free in one of the states.
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::num::NonZeroUsize;
use std::sync::{Condvar, Mutex};

use super::hook::{set_reader_hook, set_writer_hook};
use super::tests::{Model, Tree, VMA};
use super::*;
use crate::Gfp;
use crate::addr::CpuId;
use crate::page_alloc::PageAlloc;
use crate::rcu::Rcu;
use crate::sim::{self, SimPlatform};

/// Whose turn it is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Turn {
    Reader,
    Writer,
}

/// The baton: exactly one of the two threads runs at any time.
struct Baton {
    turn: Mutex<Turn>,
    cv: Condvar,
}

impl Baton {
    fn new(first: Turn) -> Baton {
        Baton {
            turn: Mutex::new(first),
            cv: Condvar::new(),
        }
    }

    /// Gives the baton to `to` and waits until it comes back.
    fn hand(&self, to: Turn, me: Turn) {
        let mut t = self.turn.lock().unwrap();
        *t = to;
        self.cv.notify_all();
        while *t != me {
            t = self.cv.wait(t).unwrap();
        }
    }

    /// Gives the baton to `to` for good.
    fn give(&self, to: Turn) {
        *self.turn.lock().unwrap_or_else(|e| e.into_inner()) = to;
        self.cv.notify_all();
    }

    fn wait(&self, me: Turn) {
        let mut t = self.turn.lock().unwrap();
        while *t != me {
            t = self.cv.wait(t).unwrap();
        }
    }
}

/// Gives the baton away for good when dropped (also when its thread
/// panics, so that the other thread does not wait forever) and sets the
/// flag.
struct GiveOnDrop(Arc<Baton>, Turn, Arc<Mutex<bool>>);

impl Drop for GiveOnDrop {
    fn drop(&mut self) {
        *self.2.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0.give(self.1);
    }
}

/// A read of the tree.
#[derive(Clone, Copy, Debug)]
enum Read {
    Walk(u64),
    Find(u64, u64),
    FindPrev(u64, u64),
    EmptyArea(u64, u64, u64),
}

/// What a read returned: `(first, last, raw)` ranges, or an area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Range(u64, u64, usize),
    Nothing,
    Area(u64),
    Busy,
}

fn run_read(t: &Tree<'_>, r: Read) -> Answer {
    let some = |x: Option<(u64, u64, NonZeroUsize)>| match x {
        Some((lo, hi, e)) => Answer::Range(lo, hi, e.get()),
        None => Answer::Nothing,
    };
    match r {
        Read::Walk(i) => {
            let (lo, hi, e) = t.walk_range(i);
            Answer::Range(lo, hi, e.map_or(0, NonZeroUsize::get))
        }
        Read::Find(i, max) => some(t.find(i, max)),
        Read::FindPrev(i, min) => some(t.find_prev(i, min)),
        Read::EmptyArea(min, max, size) => match t.empty_area(min, max, size) {
            Ok(s) => Answer::Area(s),
            Err(e) => {
                assert_eq!(e, MapleError::Busy);
                Answer::Busy
            }
        },
    }
}

/// The range containing `i` in `m`, NULL ranges included.
fn range_at(m: &Model, i: u64) -> (u64, u64, usize) {
    if let Some(r) = m.load(i) {
        return r;
    }
    let lo = m.0.range(..i).next_back().map_or(0, |(_, (e, _))| e + 1);
    let hi = m.0.range(i..).next().map_or(u64::MAX, |(s, _)| s - 1);
    (lo, hi, 0)
}

/// Whether `got` is a correct answer of `r` in state `m`.
fn answer_in(m: &Model, r: Read, got: Answer) -> bool {
    let within = |i: u64, lo: u64, hi: u64, raw: usize| {
        let (a, b, x) = range_at(m, i);
        lo <= i && i <= hi && x == raw && a <= lo && hi <= b
    };
    match (r, got) {
        (Read::Walk(i), Answer::Range(lo, hi, raw)) => within(i, lo, hi, raw),
        (Read::Find(i, max), Answer::Range(lo, hi, raw)) => {
            raw != 0 && hi >= i && lo <= max && within(lo.max(i), lo, hi, raw)
        }
        (Read::FindPrev(i, min), Answer::Range(lo, hi, raw)) => {
            raw != 0 && lo <= i && hi >= min && within(hi.min(i), lo, hi, raw)
        }
        (Read::Find(i, _) | Read::FindPrev(i, _), Answer::Nothing) => range_at(m, i).2 == 0,
        (Read::EmptyArea(min, max, size), Answer::Area(s)) => {
            let (_, b, x) = range_at(m, s);
            s >= min && s + (size - 1) <= max && x == 0 && b >= s + (size - 1)
        }
        (Read::EmptyArea(..), Answer::Busy) => true,
        _ => false,
    }
}

/// A scenario: the tree's initial entries and a sequence of stores.
struct Scenario {
    name: &'static str,
    flags: MtFlags,
    initial: Vec<(u64, u64, usize)>,
    stores: Vec<(u64, u64, usize)>,
    /// Indices to read at.
    points: Vec<u64>,
}

impl Scenario {
    /// The states `S0..=Sn`.
    fn states(&self) -> Vec<Model> {
        let mut m = Model::default();
        for &(lo, hi, x) in &self.initial {
            m.store(lo, hi, x);
        }
        let mut v = alloc::vec![m.clone()];
        for &(lo, hi, x) in &self.stores {
            m.store(lo, hi, x);
            v.push(m.clone());
        }
        v
    }

    fn reads(&self) -> Vec<Read> {
        let mut v = Vec::new();
        for &i in &self.points {
            v.push(Read::Walk(i));
            v.push(Read::Find(i, i + 12));
            v.push(Read::FindPrev(i, i.saturating_sub(12)));
            v.push(Read::EmptyArea(i, i + 12, 2));
        }
        v
    }
}

fn store(t: &Tree<'_>, lo: u64, hi: u64, x: usize) {
    t.lock()
        .store_range(lo, hi, NonZeroUsize::new(x), Gfp::KERNEL)
        .unwrap();
}

/// Counts the reader's loads in `r` and the writer's steps of the whole
/// sequence, without stopping.
fn count_steps(t: &Tree<'_>, sc: &Scenario, r: Read) -> (usize, usize) {
    let loads = Arc::new(Mutex::new(0usize));
    let l = loads.clone();
    set_reader_hook(Some(alloc::boxed::Box::new(move || {
        *l.lock().unwrap() += 1;
    })));
    run_read(t, r);
    set_reader_hook(None);
    let steps = Arc::new(Mutex::new(0usize));
    let s = steps.clone();
    set_writer_hook(Some(alloc::boxed::Box::new(move |_| {
        *s.lock().unwrap() += 1;
    })));
    for &(lo, hi, x) in &sc.stores {
        store(t, lo, hi, x);
    }
    set_writer_hook(None);
    (*loads.lock().unwrap(), *steps.lock().unwrap())
}

/// Replays every interleaving of `sc` with each of its reads; returns
/// how many were run, panicking on the first wrong answer.
fn replay(sc: &Scenario) -> usize {
    sim::set_cpu(0);
    let pa: PageAlloc<SimPlatform> = sim::machine(1 << 12, 2);
    let rcu = Rcu::new(pa.platform().clone());
    // The reader's CPU holds up no grace period: they run only between
    // replays, when no reader is in a read-side section.
    rcu.cpu_offline(CpuId::new(1));
    let cache = node_cache(&pa, &rcu).unwrap();
    let states = sc.states();
    let fresh = || {
        let t = Tree::new(&cache, &rcu, sc.flags);
        for &(lo, hi, x) in &sc.initial {
            store(&t, lo, hi, x);
        }
        t
    };
    let mut runs = 0;
    for r in sc.reads() {
        let (nr_loads, nr_steps) = count_steps(&fresh(), sc, r);
        for j in 0..nr_loads {
            for m in 1..=nr_steps {
                let t = fresh();
                let got = race(&t, sc, r, j, m);
                let ok = states.iter().any(|s| answer_in(s, r, got));
                assert!(
                    ok,
                    "{}: {r:?} gave {got:x?} with the reader stopped before load {j} \
                     and the writer after step {m} of {nr_steps}; states:\n{}",
                    sc.name,
                    describe(&states, r)
                );
                drop(t);
                runs += 1;
            }
            cache.flush_rcu_sheaf();
            rcu.rcu_barrier();
        }
    }
    cache.flush_rcu_sheaf();
    rcu.rcu_barrier();
    assert_eq!(cache.info().active_objs, 0, "maple nodes leaked");
    runs
}

fn describe(states: &[Model], r: Read) -> String {
    let i = match r {
        Read::Walk(i) | Read::Find(i, _) | Read::FindPrev(i, _) | Read::EmptyArea(i, _, _) => i,
    };
    let mut s = String::new();
    for (k, m) in states.iter().enumerate() {
        let near: Vec<(u64, u64, usize)> =
            m.0.range(i.saturating_sub(24)..i + 24)
                .map(|(a, (b, x))| (*a, *b, *x))
                .collect();
        s += &format!("  S{k}: {near:x?}\n");
    }
    s
}

/// One interleaving: the reader stops before its load `j`, the writer
/// makes `m` steps, the reader finishes, the writer finishes.
fn race(t: &Tree<'_>, sc: &Scenario, r: Read, j: usize, m: usize) -> Answer {
    let baton = Arc::new(Baton::new(Turn::Reader));
    let reader_done = Arc::new(Mutex::new(false));
    std::thread::scope(|s| {
        let b = baton.clone();
        let done = reader_done.clone();
        let reader = s.spawn(move || {
            sim::set_cpu(1);
            let mut n = 0;
            let hb = b.clone();
            set_reader_hook(Some(alloc::boxed::Box::new(move || {
                if n == j {
                    hb.hand(Turn::Writer, Turn::Reader);
                }
                n += 1;
            })));
            let _give = GiveOnDrop(b, Turn::Writer, done);
            let got = run_read(t, r);
            set_reader_hook(None);
            got
        });
        baton.wait(Turn::Writer);
        let _give = GiveOnDrop(baton.clone(), Turn::Reader, Arc::new(Mutex::new(false)));
        let mut step = 0;
        let (b, done) = (baton.clone(), reader_done.clone());
        set_writer_hook(Some(alloc::boxed::Box::new(move |_| {
            step += 1;
            if step == m && !*done.lock().unwrap() {
                b.hand(Turn::Reader, Turn::Writer);
            }
        })));
        for &(lo, hi, x) in &sc.stores {
            store(t, lo, hi, x);
        }
        set_writer_hook(None);
        if !*reader_done.lock().unwrap() {
            baton.hand(Turn::Reader, Turn::Writer);
        }
        reader.join().unwrap()
    })
}

/// Entries `[10k, 10k + 5]` of value `k + 1` for k < n, NULL between:
/// `n = 12` makes two leaves under a root.
fn entries(n: u64) -> Vec<(u64, u64, usize)> {
    (0..n)
        .map(|k| (10 * k, 10 * k + 5, k as usize + 1))
        .collect()
}

/// A scenario on [`entries`]`(12)`, read at every index of `[lo, hi]`.
fn scenario(
    name: &'static str,
    flags: MtFlags,
    stores: &[(u64, u64, usize)],
    (lo, hi): (u64, u64),
) -> Scenario {
    Scenario {
        name,
        flags,
        initial: entries(12),
        stores: stores.to_vec(),
        points: (lo..=hi).collect(),
    }
}

/// A slot store that moves the boundary between an entry and the gap
/// after it (`index` is the entry's first index): the defect of issue
/// 16, where a reader loaded the pivot twice and reported a range
/// without its index.
#[test]
fn slot_store_over_an_entry_and_part_of_the_next_gap() {
    let sc = scenario("slot store [30, 37]", VMA, &[(30, 37, 0x100)], (29, 40));
    std::println!("{} interleavings", replay(&sc));
}

/// A slot store ending at the end of the next range, starting inside
/// the entry.
#[test]
fn slot_store_over_part_of_an_entry_and_the_next_gap() {
    let sc = scenario("slot store [33, 39]", VMA, &[(33, 39, 0x100)], (29, 40));
    std::println!("{} interleavings", replay(&sc));
}

/// Two slot stores in a row on one leaf, each moving a different pivot:
/// a reader that loads the two pivots bounding its slot on either side
/// of both must not combine them.
#[test]
fn two_slot_stores_on_one_leaf() {
    let sc = scenario(
        "slot stores [30, 37], [38, 42]",
        VMA,
        &[(30, 37, 0x100), (38, 42, 0x200)],
        (29, 46),
    );
    std::println!("{} interleavings", replay(&sc));
}

/// A slot store that moves the end of an entry down, then an exact fit
/// over what is left of it: a reader that loaded the entry's old bounds
/// before both must not return the new value over them.
#[test]
fn slot_store_then_exact_fit() {
    let sc = scenario(
        "slot store [33, 39], exact fit [30, 32]",
        VMA,
        &[(33, 39, 0x100), (30, 32, 0x200)],
        (29, 40),
    );
    std::println!("{} interleavings", replay(&sc));
}

/// Node stores (a new leaf swapped into its parent) and NULL stores,
/// without gap tracking.
#[test]
fn node_store_and_erase() {
    let sc = scenario(
        "node store [52, 53], erase [60, 65]",
        MtFlags::USE_RCU,
        &[(52, 53, 0x100), (60, 65, 0)],
        (49, 68),
    );
    std::println!("{} interleavings", replay(&sc));
}

/// A store across both leaves: a new root and leaves, the old ones
/// marked dead; read around both ends.
#[test]
fn spanning_store() {
    let mut sc = scenario("spanning store [34, 97]", VMA, &[(34, 97, 0x100)], (29, 38));
    sc.points.extend(94..=101);
    std::println!("{} interleavings", replay(&sc));
}
