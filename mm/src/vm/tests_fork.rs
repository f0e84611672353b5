//! fork and copy-on-write: small and large folios, reuse after the child
//! exits, owner slots, VM_DONTCOPY, both mapcount modes.

use core::sync::atomic::Ordering::SeqCst;

use super::tests::{TestMm, peek, poke, with_mm};
use super::*;
use crate::addr::Order;
use crate::errno::Errno;
use crate::folio::Folio;
use crate::sim::TlbFlush;

const RW: Prot = Prot::READ.union(Prot::WRITE);
const ANON: MapFlags = MapFlags::PRIVATE.union(MapFlags::ANONYMOUS);
const PG: u64 = PAGE_SIZE;
const BASE: u64 = 0x4000_0000;

fn pfn(mm: &TestMm<'_, '_>, addr: u64) -> crate::addr::Pfn {
    mm.page_table().get_pte(addr).unwrap().pfn()
}

fn ev(mm: &TestMm<'_, '_>, e: VmEvent) -> u64 {
    mm.vm.event(e)
}

#[test]
fn parent_and_child_write_their_own_copies() {
    with_mm(|mm| {
        mm.mmap(BASE, 4 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        for i in 0..4 {
            poke(mm, BASE + i * PG, 100 + i).unwrap();
        }
        let child = mm.fork().unwrap();
        assert_ne!(child.id(), mm.id());
        assert_eq!(child.status().vm_rss, 16);
        assert!(
            !mm.page_table().get_pte(BASE).unwrap().is_writable(),
            "write-protected"
        );
        assert_eq!(pfn(&child, BASE), pfn(mm, BASE), "shared until a write");
        assert!(Folio::of(mm.vm.pa.memmap(), pfn(mm, BASE)).maybe_mapped_shared());
        poke(mm, BASE, 7).unwrap();
        assert_eq!(ev(mm, VmEvent::CowCopy), 1);
        assert_ne!(pfn(&child, BASE), pfn(mm, BASE));
        assert_eq!(peek(&child, BASE), Ok(100), "the child keeps the old data");
        assert_eq!(peek(mm, BASE), Ok(7));
        // The child is now the page's only mapper: its write reuses it.
        let old = pfn(&child, BASE);
        poke(&child, BASE, 8).unwrap();
        assert_eq!(pfn(&child, BASE), old);
        assert_eq!(ev(mm, VmEvent::CowReuse), 1);
        assert_eq!(peek(&child, BASE + PG), Ok(101));
        child.validate().unwrap();
        mm.validate().unwrap();
        drop(child);
        // The child is gone: the parent's writes reuse every page.
        poke(mm, BASE + 2 * PG, 9).unwrap();
        assert_eq!(ev(mm, VmEvent::CowCopy), 1);
        assert_eq!(ev(mm, VmEvent::CowReuse), 2);
    });
}

#[test]
fn large_folio_is_reused_after_the_child_exits_and_copied_while_it_lives() {
    for no_page_mapcount in [false, true] {
        with_mm(|mm| {
            mm.vm.no_page_mapcount.store(no_page_mapcount, SeqCst);
            mm.vm.anon_orders.store(1 << 4 | 1, SeqCst);
            mm.mmap(BASE, 16 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
                .unwrap();
            poke(mm, BASE, 1).unwrap();
            assert_eq!(ev(mm, VmEvent::ThpFaultAlloc), 1);
            assert_eq!(
                mm.status().vm_rss,
                64,
                "one fault mapped the whole 64 KiB folio"
            );
            let folio = Folio::of(mm.vm.pa.memmap(), pfn(mm, BASE));
            assert_eq!(folio.nr_pages(), 16);
            assert_eq!(folio.owner_slots().slots[0], (mm.id(), 16));

            let child = mm.fork().unwrap();
            assert_eq!(folio.mapcount(), 32);
            assert_eq!(folio.owner_slots().slots[1], (child.id(), 16));
            assert!(folio.maybe_mapped_shared());
            // While the child maps it, a write copies the page.
            poke(mm, BASE + PG, 2).unwrap();
            assert_eq!(ev(mm, VmEvent::CowCopy), 1);
            drop(child);
            assert!(!folio.maybe_mapped_shared());
            // The child exited: the parent reuses the rest of the folio.
            let before = pfn(mm, BASE + 5 * PG);
            poke(mm, BASE + 5 * PG, 3).unwrap();
            assert_eq!(pfn(mm, BASE + 5 * PG), before, "reused, not copied");
            assert_eq!(ev(mm, VmEvent::CowReuseLarge), 1);
            assert_eq!(ev(mm, VmEvent::CowCopy), 1);
            assert_eq!(peek(mm, BASE), Ok(1));
            mm.validate().unwrap();
        });
    }
}

/// fork and munmap handle a large folio's PTEs in batches
/// (`folio_pte_batch()`): a batch ends where the next PTE maps another
/// folio (a page copied on write, the next folio) or the range ends
/// midway through a folio, and every batch updates the references, page
/// mapcounts and owner slots by its size, both mapcount modes.
#[test]
fn large_folio_batches_end_at_folio_and_range_boundaries() {
    for no_page_mapcount in [false, true] {
        with_mm(|mm| {
            mm.vm.no_page_mapcount.store(no_page_mapcount, SeqCst);
            mm.vm.anon_orders.store(1 << 4 | 1, SeqCst);
            mm.mmap(BASE, 32 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
                .unwrap();
            poke(mm, BASE, 1).unwrap();
            poke(mm, BASE + 16 * PG, 2).unwrap();
            let a = Folio::of(mm.vm.pa.memmap(), pfn(mm, BASE));
            let b = Folio::of(mm.vm.pa.memmap(), pfn(mm, BASE + 16 * PG));
            assert_eq!((a.nr_pages(), b.nr_pages()), (16, 16));
            let c1 = mm.fork().unwrap();
            // Page 5 of the parent becomes a small copy: the parent maps
            // A at 0..5 and 6..16, so a second fork copies three batches.
            poke(mm, BASE + 5 * PG, 3).unwrap();
            assert_ne!(pfn(mm, BASE + 5 * PG), a.head().add(5));
            let c2 = mm.fork().unwrap();
            assert_eq!(pfn(&c2, BASE + 5 * PG), pfn(mm, BASE + 5 * PG));
            assert_eq!(pfn(&c2, BASE + 6 * PG), a.head().add(6));
            assert_eq!(a.mapcount(), 15 + 16 + 15);
            assert_eq!(a.page(0).refcount() as i64, a.mapcount());
            assert_eq!(b.mapcount(), 48);
            assert_eq!(b.page(0).refcount(), 48);
            if !no_page_mapcount {
                assert_eq!(a.page(5).mapcount(), 1, "only the first child");
                assert_eq!(a.page(6).mapcount(), 3);
                assert_eq!(a.nr_pages_mapped(), 16);
            }
            assert_eq!(a.owner_slots().slots[0], (mm.id(), 15));
            assert_eq!(a.owner_slots().slots[1], (c1.id(), 16));
            // Unmap pages 3..20 of the parent: part of A's two batches,
            // the small page, the first 4 pages of B.
            mm.munmap(BASE + 3 * PG, 17 * PG).unwrap();
            assert_eq!(a.mapcount(), 46 - 12);
            assert_eq!(a.page(0).refcount(), 34);
            assert_eq!(a.owner_slots().slots[0], (mm.id(), 3));
            assert_eq!(b.mapcount(), 44);
            assert_eq!(b.page(0).refcount(), 44);
            if !no_page_mapcount {
                assert_eq!(a.page(2).mapcount(), 3);
                assert_eq!(a.page(3).mapcount(), 2);
                assert_eq!(b.page(3).mapcount(), 2);
                assert_eq!(b.page(4).mapcount(), 3);
            }
            assert_eq!(mm.status().vm_rss, 4 * 15);
            assert_eq!(peek(&c2, BASE + 5 * PG), Ok(3));
            c1.validate().unwrap();
            c2.validate().unwrap();
            drop(c1);
            drop(c2);
            assert_eq!(a.mapcount(), 3);
            assert_eq!(a.page(0).refcount(), 3);
            assert_eq!(b.page(0).refcount(), 12);
        });
    }
}

#[test]
fn large_folio_reuse_can_be_turned_off() {
    with_mm(|mm| {
        mm.vm.anon_orders.store(1 << 4 | 1, SeqCst);
        mm.vm.cow_reuse_large.store(false, SeqCst);
        mm.mmap(BASE, 16 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        poke(mm, BASE, 1).unwrap();
        drop(mm.fork().unwrap());
        poke(mm, BASE + 3 * PG, 2).unwrap();
        assert_eq!(ev(mm, VmEvent::CowCopy), 1);
        assert_eq!(ev(mm, VmEvent::CowReuseLarge), 0);
    });
}

#[test]
fn large_folios_fall_back_where_they_do_not_fit() {
    with_mm(|mm| {
        mm.vm.anon_orders.store(1 << 4 | 1, SeqCst);
        // 8 pages: a 16-page folio cannot fit.
        mm.mmap(BASE, 8 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        poke(mm, BASE, 1).unwrap();
        assert_eq!(ev(mm, VmEvent::ThpFaultAlloc), 0);
        assert_eq!(mm.status().vm_rss, 4);
        // A partial unmap of a large folio keeps the rest mapped.
        mm.mmap(BASE + 16 * PG, 16 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        poke(mm, BASE + 16 * PG, 1).unwrap();
        assert_eq!(mm.status().vm_rss, 68);
        mm.munmap(BASE + 16 * PG, 4 * PG).unwrap();
        assert_eq!(mm.status().vm_rss, 52);
        assert_eq!(peek(mm, BASE + 20 * PG), Ok(0));
    });
}

#[test]
fn dontfork_vmas_are_not_copied() {
    with_mm(|mm| {
        mm.mmap(BASE, 8 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        poke(mm, BASE, 1).unwrap();
        poke(mm, BASE + 4 * PG, 2).unwrap();
        mm.madvise(BASE + 4 * PG, 4 * PG, 10).unwrap();
        assert_eq!(mm.map_count(), 2, "DONTFORK split the VMA");
        let child = mm.fork().unwrap();
        assert_eq!(child.map_count(), 1);
        assert_eq!(peek(&child, BASE), Ok(1));
        assert_eq!(
            child.handle_fault(BASE + 4 * PG, FaultAccess::Read),
            Err(FaultError::Segv(SegvCode::MapErr))
        );
        drop(child);
        mm.madvise(BASE + 4 * PG, 4 * PG, 11).unwrap();
        assert_eq!(mm.map_count(), 1, "DOFORK merged the VMAs back");
        assert_eq!(peek(mm, BASE + 4 * PG), Ok(2));
    });
}

/// fork running out of memory at every point in turn (`ENOMEM` from the
/// child's page tables, one more frame free each time): the partial child
/// gives back every frame (`with_mm` checks) and its commit charge, the
/// parent keeps its data, and the parent's TLB is flushed once PTEs were
/// write-protected (the old code returned without the flush).
#[test]
fn fork_failing_midway_gives_everything_back() {
    with_mm(|mm| {
        // Three VMAs (different protections, so they do not merge), each
        // 4 MiB: one page in every 2 MiB, so one PTE table per page.
        let vmas = [
            (BASE, RW),
            (BASE + (4 << 20), Prot::READ),
            (BASE + (8 << 20), RW),
        ];
        for (i, &(start, prot)) in vmas.iter().enumerate() {
            mm.mmap(start, 4 << 20, RW, ANON | MapFlags::FIXED, -1, 0)
                .unwrap();
            for half in 0..2u64 {
                poke(mm, start + half * (2 << 20), 10 * i as u64 + half).unwrap();
            }
            mm.mprotect(start, 4 << 20, prot).unwrap();
        }
        let pa = mm.vm.pa;
        let tlb = &pa.platform().0;
        // Take every frame, then hand them back one at a time.
        let mut hog = Vec::new();
        while let Ok(pfn) = pa.alloc_pages(Gfp::KERNEL | Gfp::MEMALLOC | Gfp::NOWARN, Order::ZERO) {
            hog.push(pfn);
        }
        let pages: Vec<u64> = vmas
            .iter()
            .flat_map(|&(start, _)| [start, start + (2 << 20)])
            .collect();
        let writable = || {
            pages
                .iter()
                .filter(|&&at| mm.page_table().get_pte(at).unwrap().is_writable())
                .count()
        };
        let (mut failures, mut midway) = (0, 0);
        let child = loop {
            let flushes = tlb.nr_tlb_flushes();
            let writable_before = writable();
            match mm.fork() {
                Ok(child) => break child,
                Err(e) => assert_eq!(e, Errno::ENOMEM),
            }
            failures += 1;
            assert_eq!(
                mm.vm.committed_pages(),
                super::tests::accounted_pages(mm),
                "the failed child's commit charge is left (failure {failures})"
            );
            let full_flush = TlbFlush {
                root: mm.page_table().root(),
                range: None,
            };
            // PTEs write-protected by the failed copy: flushed.
            if writable() != writable_before {
                midway += 1;
                assert!(
                    tlb.tlb_flushes()[flushes..].contains(&full_flush),
                    "no flush of the parent's TLB after failure {failures}"
                );
            }
            let pfn = hog.pop().expect("fork fails with every frame free");
            pa.free_pages(pfn, Order::ZERO).unwrap();
            // The failed child's tables and tree nodes are freed after a
            // grace period, and frames count for the watermarks only off
            // the pcp lists.
            mm.vm.node_cache.flush_rcu_sheaf();
            mm.vm.rcu.rcu_barrier();
            mm.vm.node_cache.shrink();
            pa.drain_all_pages();
        };
        assert!(
            midway > 0,
            "no failure after a PTE was copied ({failures} failures)"
        );
        for (i, &(start, _)) in vmas.iter().enumerate() {
            for half in 0..2u64 {
                let at = start + half * (2 << 20);
                assert_eq!(peek(mm, at), Ok(10 * i as u64 + half));
                assert_eq!(peek(&child, at), Ok(10 * i as u64 + half));
            }
        }
        drop(child);
        for pfn in hog {
            pa.free_pages(pfn, Order::ZERO).unwrap();
        }
    });
}
