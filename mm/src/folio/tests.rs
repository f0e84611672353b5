//! The owner-slot state machine: Linux's examples, then random map/unmap
//! sequences by up to four MMs against an exact model.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::*;
use crate::addr::Order;
use crate::gfp::Gfp;
use crate::page_alloc::PageAlloc;
use crate::rand::XorShift64;
use crate::sim::{self, SimPlatform};

const A: u32 = 10;
const B: u32 = 20;
const C: u32 = 30;
const PER_PAGE: MapcountMode = MapcountMode::PerPage;

fn machine() -> PageAlloc<SimPlatform> {
    sim::set_cpu(0);
    // Miri interprets every frame's set-up: a smaller machine there.
    let nr_pages = if cfg!(miri) { 256 } else { 1024 };
    sim::machine(nr_pages, 1)
}

/// Runs `f` on a fresh folio of `order`, then checks it is back to its
/// initial state and frees it.
fn with_folio(order: u32, f: impl FnOnce(Folio<'_>)) {
    let order = Order::new(order);
    let pa = machine();
    let pfn = pa.alloc_pages(Gfp::KERNEL, order).unwrap();
    let folio = Folio::prep(pa.memmap(), pfn);
    f(folio);
    assert_eq!(folio.unprep(), Ok(()));
    pa.free_pages(pfn, order).unwrap();
}

fn slots(f: &Folio<'_>) -> [(u32, i64); 2] {
    f.owner_slots().slots
}

#[test]
fn tails_name_their_head() {
    with_folio(3, |f| {
        assert_eq!(f.nr_pages(), 8);
        let tail = Folio::of(f.memmap, f.head().add(5));
        assert_eq!(tail.head(), f.head());
        assert_eq!(f.mapcount(), 0);
        assert!(!f.maybe_mapped_shared());
    });
}

/// Commit example 1: A and B each map a page; A unmaps: mapped
/// exclusively (by B).
#[test]
fn two_mms_then_one_leaves_is_exclusive() {
    with_folio(2, |f| {
        f.add_rmap_ptes(0, 1, A, PER_PAGE);
        assert_eq!(slots(&f), [(A, 1), (0, 0)]);
        assert!(!f.maybe_mapped_shared());
        f.add_rmap_ptes(1, 1, B, PER_PAGE);
        assert_eq!(slots(&f), [(A, 1), (B, 1)]);
        assert!(f.maybe_mapped_shared());
        f.remove_rmap_ptes(0, 1, A, PER_PAGE);
        assert_eq!(slots(&f), [(0, 0), (B, 1)]);
        assert!(!f.owner_slots().shared);
        assert!(!f.maybe_mapped_shared());
        f.remove_rmap_ptes(1, 1, B, PER_PAGE);
    });
}

/// Commit example 2: three MMs; after A and B leave, only C maps it but
/// the answer stays "maybe shared" (the documented imprecision) — unless
/// one mapping is left.
#[test]
fn a_third_mm_leaves_the_folio_maybe_shared() {
    for c_pages in [2, 1] {
        with_folio(2, |f| {
            f.add_rmap_ptes(0, 1, A, PER_PAGE);
            f.add_rmap_ptes(1, 1, B, PER_PAGE);
            f.add_rmap_ptes(2, c_pages, C, PER_PAGE);
            assert_eq!(f.mapcount(), 2 + c_pages as i64);
            assert_eq!(slots(&f), [(A, 1), (B, 1)], "C is untracked");
            f.remove_rmap_ptes(0, 1, A, PER_PAGE);
            f.remove_rmap_ptes(1, 1, B, PER_PAGE);
            assert_eq!(slots(&f), [(0, 0), (0, 0)]);
            assert_eq!(f.maybe_mapped_shared(), c_pages == 2);
            f.remove_rmap_ptes(2, c_pages, C, PER_PAGE);
            assert!(!f.owner_slots().shared, "fully unmapped: the bit clears");
        });
    }
}

/// The underflow path of the reference notes.
#[test]
fn a_slot_count_may_underflow_and_the_slot_is_freed() {
    with_folio(2, |f| {
        f.add_rmap_ptes(0, 1, B, PER_PAGE);
        f.add_rmap_ptes(1, 1, C, PER_PAGE);
        f.add_rmap_ptes(2, 2, A, PER_PAGE);
        assert_eq!(f.mapcount(), 4);
        f.remove_rmap_ptes(0, 1, B, PER_PAGE);
        assert_eq!(slots(&f), [(0, 0), (C, 1)]);
        f.add_rmap_ptes(0, 1, A, PER_PAGE);
        assert_eq!(slots(&f), [(A, 1), (C, 1)]);
        assert!(f.owner_slots().shared);
        // A unmaps its three pages: its slot (one mapping) is freed at the
        // first, the other two leave while A is untracked.
        f.remove_rmap_ptes(0, 1, A, PER_PAGE);
        assert_eq!(slots(&f), [(0, 0), (C, 1)]);
        assert!(f.owner_slots().shared, "3 mappings, C's slot holds 1");
        f.remove_rmap_ptes(2, 2, A, PER_PAGE);
        assert_eq!(slots(&f), [(0, 0), (C, 1)]);
        assert!(!f.owner_slots().shared);
        assert!(!f.maybe_mapped_shared());
        f.remove_rmap_ptes(1, 1, C, PER_PAGE);
    });
}

#[test]
fn new_anon_folio_is_owned_by_its_mm_in_both_modes() {
    for mode in [MapcountMode::PerPage, MapcountMode::NoPageMapcount] {
        with_folio(4, |f| {
            f.add_new_anon_rmap(A, mode);
            assert_eq!(f.mapcount(), 16);
            assert_eq!(slots(&f), [(A, 16), (0, 0)]);
            let per_page = mode == MapcountMode::PerPage;
            assert_eq!(f.page(7).mapcount(), i32::from(per_page));
            assert_eq!(f.nr_pages_mapped(), if per_page { 16 } else { 0 });
            // Partial unmap: only per-page counts can tell.
            f.remove_rmap_ptes(0, 4, A, mode);
            assert_eq!(f.nr_pages_mapped(), if per_page { 12 } else { 0 });
            assert_eq!(f.mapcount(), 12);
            f.remove_rmap_ptes(4, 12, A, mode);
            assert_eq!(f.mapcount(), 0);
        });
    }
}

#[test]
fn small_folios_use_the_page_mapcount() {
    with_folio(0, |f| {
        f.add_new_anon_rmap(A, PER_PAGE);
        assert!(!f.maybe_mapped_shared());
        f.add_rmap_ptes(0, 1, B, PER_PAGE);
        assert!(f.maybe_mapped_shared());
        f.remove_rmap_ptes(0, 1, A, PER_PAGE);
        assert!(!f.maybe_mapped_shared());
        f.remove_rmap_ptes(0, 1, B, PER_PAGE);
    });
}

/// Random map/unmap of pages by up to four MMs on folios of orders 1..=4,
/// against the exact set of mappings: never a false negative; exact while
/// no third MM has mapped since the folio was last unmapped; consistent
/// counts; both slots free and the bit clear when unmapped.
#[test]
fn owner_slots_match_a_model_of_random_mappings() {
    let mut rng = XorShift64::new(0x5eed_f011);
    for round in 0..200 {
        let order = 1 + (round % 4) as u32;
        let mode = if round % 2 == 0 {
            MapcountMode::PerPage
        } else {
            MapcountMode::NoPageMapcount
        };
        with_folio(order, |f| {
            let n = f.nr_pages();
            // (mm, page) -> PTE mappings (an anonymous page is mapped at
            // most once per MM, but the state machine allows more).
            let mut model: BTreeMap<(u32, usize), u32> = BTreeMap::new();
            let mut third_seen = false;
            for step in 0..300 {
                let mm = [A, B, C, 40][rng.below(4)];
                let page = rng.below(n);
                let mapped = model.get(&(mm, page)).copied().unwrap_or(0);
                if rng.below(2) == 0 || mapped == 0 {
                    f.add_rmap_ptes(page, 1, mm, mode);
                    *model.entry((mm, page)).or_insert(0) += 1;
                } else {
                    f.remove_rmap_ptes(page, 1, mm, mode);
                    if mapped == 1 {
                        model.remove(&(mm, page));
                    } else {
                        model.insert((mm, page), mapped - 1);
                    }
                }
                let mut mms: Vec<u32> = model.keys().map(|&(m, _)| m).collect();
                mms.dedup();
                if mms.len() >= 3 {
                    third_seen = true;
                }
                let total: u32 = model.values().sum();
                assert_eq!(f.mapcount(), total as i64, "step {step}");
                let o = f.owner_slots();
                for (id, c) in o.slots {
                    assert!(c <= total as i64, "slot count above the total");
                    if id != MM_ID_DUMMY && c > 0 {
                        let real: u32 = model
                            .iter()
                            .filter(|((m, _), _)| *m == id)
                            .map(|(_, v)| v)
                            .sum();
                        assert!(c <= real as i64, "slot of {id} counts {c}, it maps {real}");
                    }
                }
                if mms.len() >= 2 {
                    assert!(
                        f.maybe_mapped_shared(),
                        "false negative at step {step}: {mms:?} map it"
                    );
                } else if !third_seen {
                    assert!(
                        !f.maybe_mapped_shared(),
                        "false positive with <= 2 MMs at step {step}"
                    );
                }
                if mode == MapcountMode::PerPage {
                    let pages: std::collections::BTreeSet<usize> =
                        model.keys().map(|&(_, p)| p).collect();
                    assert_eq!(f.nr_pages_mapped() as usize, pages.len());
                }
                if total == 0 {
                    assert_eq!(o.slots, [(MM_ID_DUMMY, 0); 2]);
                    assert!(!o.shared);
                    third_seen = false;
                }
            }
            for ((mm, page), k) in model {
                for _ in 0..k {
                    f.remove_rmap_ptes(page, 1, mm, mode);
                }
            }
        });
    }
}

/// `folio_put_refs()`: dropping a batch of references frees the folio
/// only with the last of them, and then as one block.
#[test]
fn put_refs_frees_with_the_last_batch() {
    let pa = machine();
    let free = || pa.nr_free_pages();
    let before = free();
    let pfn = pa.alloc_pages(Gfp::KERNEL, Order::new(4)).unwrap();
    let folio = Folio::prep(pa.memmap(), pfn);
    folio_ref_add(&folio, 31);
    assert_eq!(folio.page(0).refcount(), 32);
    folio_put_refs(&pa, pfn.add(3), 16);
    assert_eq!(folio.page(0).refcount(), 16);
    assert_eq!(free(), before - 16);
    folio_put_refs(&pa, pfn, 15);
    folio_put_refs(&pa, pfn.add(15), 1);
    assert_eq!(free(), before, "the last reference freed the block");
}
