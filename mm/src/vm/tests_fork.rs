//! fork and copy-on-write: small and large folios, reuse after the child
//! exits, owner slots, VM_DONTCOPY, both mapcount modes.

use core::sync::atomic::Ordering::SeqCst;

use super::tests::{TestMm, peek, poke, with_mm};
use super::*;
use crate::folio::Folio;

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
