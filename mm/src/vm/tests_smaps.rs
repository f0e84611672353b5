//! smaps accounting (`smaps.rs`): private, CoW-shared, shmem and zero
//! pages, the fixed-point Pss of a page mapped three times, and a 64 KiB
//! folio half copied away after fork in both mapcount modes (the
//! difference Linux 6.15 documents for `CONFIG_NO_PAGE_MAPCOUNT`); the
//! pagemap bits of the same kinds of pages.

use core::sync::atomic::Ordering::SeqCst;

use super::tests::{TestMm, peek, poke, with_mm};
use super::*;

const RW: Prot = Prot::READ.union(Prot::WRITE);
const ANON: MapFlags = MapFlags::PRIVATE.union(MapFlags::ANONYMOUS);
const SHARED: MapFlags = MapFlags::SHARED.union(MapFlags::ANONYMOUS);
const PG: u64 = PAGE_SIZE;
const KB: u64 = 1024;
const BASE: u64 = 0x4000_0000;

/// The stats of the VMA containing `addr`.
fn stats_at(mm: &TestMm<'_, '_>, addr: u64) -> MemSizeStats {
    mm.smaps()
        .into_iter()
        .find(|(v, _)| v.contains(addr))
        .map(|(_, m)| m)
        .expect("a VMA there")
}

/// Pss in whole bytes (what smaps prints, before the kB shift).
fn pss(m: &MemSizeStats) -> u64 {
    m.pss >> PSS_SHIFT
}

#[test]
fn private_pages_count_whole_and_the_zero_page_not_at_all() {
    with_mm(|mm| {
        mm.mmap(BASE, 8 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        for i in 0..4 {
            poke(mm, BASE + i * PG, i).unwrap();
        }
        // Read faults map the zero page: resident in no sense smaps counts.
        for i in 4..8 {
            assert_eq!(peek(mm, BASE + i * PG), Ok(0));
        }
        let m = stats_at(mm, BASE);
        assert_eq!(m.resident, 16 * KB);
        assert_eq!(pss(&m), 16 * KB);
        assert_eq!(m.pss_anon, m.pss);
        assert_eq!((m.pss_shmem, m.pss_file), (0, 0));
        assert_eq!(m.pss_dirty, m.pss);
        assert_eq!(m.private_dirty, 16 * KB);
        assert_eq!(m.shared_dirty + m.shared_clean + m.private_clean, 0);
        assert_eq!(m.anonymous, 16 * KB);
        assert_eq!(m.referenced, 16 * KB);
        assert_eq!(m.pss_locked, 0);
    });
}

#[test]
fn pages_shared_by_fork_split_their_pss_until_copied() {
    with_mm(|mm| {
        mm.mmap(BASE, 4 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        for i in 0..4 {
            poke(mm, BASE + i * PG, i).unwrap();
        }
        let child = mm.fork().unwrap();
        // The child's write copies page 0: each side owns its page 0.
        poke(&child, BASE, 9).unwrap();
        for side in [mm, &child] {
            let m = stats_at(side, BASE);
            assert_eq!(m.resident, 16 * KB);
            assert_eq!(pss(&m), 4 * KB + 3 * 2 * KB);
            assert_eq!(m.private_dirty, 4 * KB, "page 0, mapped once");
            assert_eq!(m.shared_dirty, 12 * KB, "pages 1..3, mapped twice");
            assert_eq!(m.anonymous, 16 * KB);
        }
        // A third mapper forked from the parent: pages 1..3 are a third
        // each, page 0 (the parent's own) a half. Fixed point keeps the
        // thirds before the final shift, as Linux does: 3 x (2^24 / 3)
        // truncated is 2^24 - 1.
        let third = mm.fork().unwrap();
        let m = stats_at(&third, BASE);
        let page = PG << PSS_SHIFT;
        assert_eq!(m.pss, page / 2 + 3 * (page / 3));
        assert_eq!(pss(&m), 2 * KB + PG - 1, "three thirds, truncated");
        assert_eq!(m.shared_dirty, 16 * KB);
        drop(third);
        drop(child);
        // Alone again: the shared pages are private (mapcount 1).
        let m = stats_at(mm, BASE);
        assert_eq!(
            (pss(&m), m.private_dirty, m.shared_dirty),
            (16 * KB, 16 * KB, 0)
        );
    });
}

/// A 64 KiB folio mapped by parent and child, then half copied away by
/// the child's writes: with per-page mapcounts the parent's pages 0..7
/// are shared (mapcount 2) and 8..15 its own, Pss 48 KiB; without them
/// every page counts the folio's average of 2 and the folio is maybe
/// shared, Pss 32 KiB, all shared. After the child exits both agree:
/// 64 KiB private.
#[test]
fn large_folio_half_copied_after_fork_in_both_mapcount_modes() {
    for no_page_mapcount in [false, true] {
        with_mm(|mm| {
            mm.vm.no_page_mapcount.store(no_page_mapcount, SeqCst);
            mm.vm.anon_orders.store(1 << 4 | 1, SeqCst);
            mm.mmap(BASE, 16 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
                .unwrap();
            poke(mm, BASE, 1).unwrap();
            let m = stats_at(mm, BASE);
            assert_eq!((m.resident, pss(&m)), (64 * KB, 64 * KB));
            assert_eq!(m.private_dirty, 64 * KB, "refcount 16 but mapcount 1");
            let child = mm.fork().unwrap();
            for i in 8..16 {
                poke(&child, BASE + i * PG, i).unwrap();
            }
            let parent = stats_at(mm, BASE);
            let kid = stats_at(&child, BASE);
            assert_eq!((parent.resident, kid.resident), (64 * KB, 64 * KB));
            if no_page_mapcount {
                // 24 PTE mappings over 16 pages: (24 + 8) >> 4 = 2.
                assert_eq!(pss(&parent), 32 * KB);
                assert_eq!((parent.shared_dirty, parent.private_dirty), (64 * KB, 0));
            } else {
                assert_eq!(pss(&parent), 48 * KB);
                assert_eq!(
                    (parent.shared_dirty, parent.private_dirty),
                    (32 * KB, 32 * KB)
                );
            }
            // The child maps pages 0..7 of the folio (shared either way:
            // mapcount 2, or an average of 2) and 8 copies of its own.
            assert_eq!(pss(&kid), 8 * 2 * KB + 8 * 4 * KB);
            assert_eq!((kid.shared_dirty, kid.private_dirty), (32 * KB, 32 * KB));
            drop(child);
            let m = stats_at(mm, BASE);
            assert_eq!((pss(&m), m.private_dirty), (64 * KB, 64 * KB));
        });
    }
}

#[test]
fn shmem_pages_are_shared_where_mapped_twice_and_dirty_by_their_folio() {
    with_mm(|mm| {
        mm.mmap(BASE, 4 * PG, RW, SHARED | MapFlags::FIXED, -1, 0)
            .unwrap();
        // Pages 0..2 written (the fault dirties the folio), page 3 read.
        for i in 0..3 {
            poke(mm, BASE + i * PG, i).unwrap();
        }
        assert_eq!(peek(mm, BASE + 3 * PG), Ok(0));
        let m = stats_at(mm, BASE);
        assert_eq!(m.resident, 16 * KB);
        assert_eq!(m.anonymous, 0);
        assert_eq!(pss(&m), 16 * KB);
        assert_eq!(m.pss_shmem, m.pss);
        assert_eq!(m.pss_anon, 0);
        // The object's reference makes the count 2: the mapcount decides.
        assert_eq!((m.private_dirty, m.private_clean), (12 * KB, 4 * KB));
        let child = mm.fork().unwrap();
        // The child reads pages 0 and 3: clean PTEs, but page 0's folio
        // is dirty.
        peek(&child, BASE).unwrap();
        peek(&child, BASE + 3 * PG).unwrap();
        let kid = stats_at(&child, BASE);
        assert_eq!(kid.resident, 8 * KB);
        assert_eq!(pss(&kid), 4 * KB);
        assert_eq!((kid.shared_dirty, kid.shared_clean), (4 * KB, 4 * KB));
        assert_eq!(kid.pss_dirty >> PSS_SHIFT, 2 * KB);
        let m = stats_at(mm, BASE);
        assert_eq!(pss(&m), 2 * 2 * KB + 2 * 4 * KB);
        assert_eq!((m.shared_dirty, m.shared_clean), (4 * KB, 4 * KB));
        assert_eq!((m.private_dirty, m.private_clean), (8 * KB, 0));
        drop(child);
        // The rollup sums the VMAs and spans them.
        mm.mmap(BASE + 16 * PG, 2 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        poke(mm, BASE + 16 * PG, 1).unwrap();
        let (lo, hi, sum) = mm.smaps_rollup();
        assert_eq!((lo, hi), (BASE, BASE + 18 * PG));
        assert_eq!(sum.resident, 20 * KB);
        assert_eq!(sum.pss_anon >> PSS_SHIFT, 4 * KB);
        assert_eq!(sum.pss_shmem >> PSS_SHIFT, 16 * KB);
    });
}

#[test]
fn a_zapped_dirty_shmem_pte_leaves_its_folio_dirty() {
    with_mm(|mm| {
        mm.mmap(BASE, PG, RW, SHARED | MapFlags::FIXED, -1, 0)
            .unwrap();
        // A read fault maps it writable and clean; a write through it
        // (the CPU's dirty bit, set by hand here) dirties only the PTE.
        peek(mm, BASE).unwrap();
        let slot = mm
            .page_table()
            .slot(BASE, crate::pgtable::Level::Pte)
            .unwrap();
        slot.fetch_or(crate::pgtable::PteFlags::DIRTY.bits(), SeqCst);
        assert_eq!(stats_at(mm, BASE).private_dirty, 4 * KB);
        let obj = mm.vma_lookup(BASE).unwrap().shmem.unwrap();
        let pfn = obj.find(0).unwrap();
        let folio = crate::folio::Folio::of(mm.vm.pa.memmap(), pfn);
        assert!(!folio.is_dirty());
        mm.madvise(BASE, PG, 4).unwrap(); // MADV_DONTNEED
        assert!(folio.is_dirty(), "zap_present_folio_ptes() kept it");
        // Mapped again by a read: a clean PTE of a dirty folio.
        peek(mm, BASE).unwrap();
        assert_eq!(stats_at(mm, BASE).private_dirty, 4 * KB);
    });
}

#[test]
fn thp_eligible_needs_an_enabled_order_that_fits_aligned() {
    with_mm(|mm| {
        let v = |start: u64, pages: u64| Vma {
            start,
            end: start + pages * PG,
            flags: VmFlags::READ | VmFlags::WRITE,
            ..Vma::EMPTY
        };
        assert!(!mm.thp_eligible(&v(BASE, 64)), "order 0 only");
        mm.vm.anon_orders.store(1 << 4 | 1, SeqCst);
        assert!(mm.thp_eligible(&v(BASE, 16)));
        assert!(!mm.thp_eligible(&v(BASE, 15)));
        assert!(
            !mm.thp_eligible(&v(BASE + PG, 16)),
            "no aligned 64 KiB inside"
        );
        assert!(mm.thp_eligible(&v(BASE + PG, 31)));
        mm.vm.anon_orders.store(0b11, SeqCst);
        assert!(
            !mm.thp_eligible(&v(BASE, 64)),
            "order 1 is no anonymous size"
        );
    });
}

/// pagemap (`pagemap.rs`): holes 0, the zero page present but not
/// exclusive, PM_FILE for shmem, PM_MMAP_EXCLUSIVE by the page's own
/// mapcount or, without per-page mapcounts, by the folio's owner
/// slots.
#[test]
fn pagemap_bits_follow_the_6_15_rules_in_both_modes() {
    for no_page_mapcount in [false, true] {
        with_mm(|mm| {
            mm.vm.no_page_mapcount.store(no_page_mapcount, SeqCst);
            mm.vm.anon_orders.store(1 << 4 | 1, SeqCst);
            mm.mmap(BASE, 16 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
                .unwrap();
            mm.mmap(BASE + 32 * PG, 2 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
                .unwrap();
            mm.mmap(BASE + 48 * PG, PG, RW, SHARED | MapFlags::FIXED, -1, 0)
                .unwrap();
            poke(mm, BASE, 1).unwrap();
            assert_eq!(peek(mm, BASE + 32 * PG), Ok(0));
            poke(mm, BASE + 48 * PG, 1).unwrap();
            let child = mm.fork().unwrap();
            for i in 8..16 {
                poke(&child, BASE + i * PG, i).unwrap();
            }
            let mut pm = Vec::new();
            mm.pagemap(BASE, BASE + 50 * PG, true, &mut pm);
            assert_eq!(pm.len(), 50);
            // New VMAs are soft-dirty as a whole, holes not; the rest of
            // soft-dirty is tests_memapi's.
            let in_vma = |i: usize| i < 16 || (32..34).contains(&i) || i == 48;
            for (i, e) in pm.iter_mut().enumerate() {
                assert_eq!(*e & PM_SOFT_DIRTY != 0, in_vma(i), "page {i}");
                *e &= !PM_SOFT_DIRTY;
            }
            let pte = |a: u64| mm.page_table().get_pte(a).unwrap();
            for i in 0..16 {
                let e = pm[i as usize];
                assert_eq!(e & PM_PFRAME_MASK, pte(BASE + i * PG).pfn().as_u64());
                assert_eq!(e & (PM_PRESENT | PM_FILE | PM_SOFT_DIRTY), PM_PRESENT);
                // Pages 8..15 are the parent's alone once the child copied
                // them: exclusive per page, not by the folio's slots.
                let exclusive = i >= 8 && !no_page_mapcount;
                assert_eq!(e & PM_MMAP_EXCLUSIVE != 0, exclusive, "page {i}");
            }
            assert_eq!(pm[16..32], [0; 16], "a hole");
            assert_eq!(pm[32], PM_PRESENT | mm.vm.zero_page().as_u64(), "zero page");
            assert_eq!(pm[33], 0, "no PTE yet");
            assert_eq!(
                pm[48] & !PM_PFRAME_MASK,
                PM_PRESENT | PM_FILE | PM_MMAP_EXCLUSIVE
            );
            assert_eq!(pm[49], 0);
            let mut kid = Vec::new();
            child.pagemap(BASE + 8 * PG, BASE + 9 * PG, false, &mut kid);
            assert_eq!(
                kid,
                [PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY],
                "a copy, no PFN shown"
            );
            // vma_needs_copy(): a VMA that only mapped the zero page has
            // no anon_vma, and the child gets no PTEs for it.
            kid.clear();
            child.pagemap(BASE + 32 * PG, BASE + 33 * PG, true, &mut kid);
            assert_eq!(kid, [PM_SOFT_DIRTY], "not copied: a fault fills it again");
            assert_eq!(peek(&child, BASE + 32 * PG), Ok(0));
            drop(child);
            pm.clear();
            mm.pagemap(BASE, BASE + PG, false, &mut pm);
            assert_eq!(
                pm,
                [PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY],
                "alone again"
            );
        });
    }
}

/// kpagecount and kpageflags (`kpage.rs`): user folios by their
/// mapcounts (precise per page, or the folio's average without per-page
/// mapcounts), the zero page, shmem, page tables, frames past the memmap.
#[test]
fn kpage_words_follow_fs_proc_page_c_in_both_modes() {
    for no_page_mapcount in [false, true] {
        with_mm(|mm| {
            let vm = mm.vm;
            vm.no_page_mapcount.store(no_page_mapcount, SeqCst);
            vm.anon_orders.store(1 << 4 | 1, SeqCst);
            mm.mmap(BASE, 16 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
                .unwrap();
            mm.mmap(BASE + 32 * PG, PG, RW, ANON | MapFlags::FIXED, -1, 0)
                .unwrap();
            mm.mmap(BASE + 48 * PG, PG, RW, SHARED | MapFlags::FIXED, -1, 0)
                .unwrap();
            poke(mm, BASE, 1).unwrap();
            assert_eq!(peek(mm, BASE + 32 * PG), Ok(0));
            poke(mm, BASE + 48 * PG, 1).unwrap();
            let child = mm.fork().unwrap();
            for i in 8..16 {
                poke(&child, BASE + i * PG, i).unwrap();
            }
            let pfn = |a: u64| mm.page_table().get_pte(a).unwrap().pfn();
            let bit = |b: u32| 1u64 << b;
            let anon = bit(KPF_MMAP) | bit(KPF_ANON) | bit(KPF_SWAPBACKED) | bit(KPF_UPTODATE);
            for i in 0..16 {
                let p = pfn(BASE + i * PG);
                let want = match (no_page_mapcount, i < 8) {
                    // 24 PTE mappings over 16 pages: (24 + 8) >> 4.
                    (true, _) => 2,
                    (false, true) => 2,
                    (false, false) => 1,
                };
                assert_eq!(vm.kpagecount(p), want, "page {i}");
                let compound = if i == 0 {
                    bit(KPF_COMPOUND_HEAD)
                } else {
                    bit(KPF_COMPOUND_TAIL)
                };
                assert_eq!(vm.kpageflags(p), anon | compound | bit(KPF_THP));
            }
            let copy = child.page_table().get_pte(BASE + 8 * PG).unwrap().pfn();
            assert_eq!((vm.kpagecount(copy), vm.kpageflags(copy)), (1, anon));
            let zero = pfn(BASE + 32 * PG);
            assert_eq!(
                (vm.kpagecount(zero), vm.kpageflags(zero)),
                (0, bit(KPF_ZERO_PAGE))
            );
            let shm = pfn(BASE + 48 * PG);
            assert_eq!(vm.kpagecount(shm), 1, "the child never touched it");
            assert_eq!(
                vm.kpageflags(shm),
                bit(KPF_MMAP) | bit(KPF_SWAPBACKED) | bit(KPF_UPTODATE) | bit(KPF_DIRTY)
            );
            // The PTE table mapping BASE.
            let table = crate::pgtable::Entry(
                mm.page_table()
                    .slot(BASE, crate::pgtable::Level::Pmd)
                    .unwrap()
                    .load(SeqCst),
            )
            .pfn();
            assert_eq!(
                (vm.kpagecount(table), vm.kpageflags(table)),
                (0, bit(KPF_PGTABLE))
            );
            let past = crate::addr::Pfn::new(vm.kpage_max_pfn());
            assert_eq!(
                (vm.kpagecount(past), vm.kpageflags(past)),
                (0, bit(KPF_NOPAGE))
            );
            drop(child);
            assert_eq!(vm.kpagecount(pfn(BASE + 8 * PG)), 1, "alone again");
        });
    }
}
