//! Shared anonymous memory (`MAP_SHARED | MAP_ANONYMOUS`, a shmem object):
//! sharing across fork both ways, pages touched before and after fork,
//! MADV_DONTNEED keeping the data, splits, merges and mremap keeping the
//! object and its offsets, SIGBUS past the object, and the last unmap
//! freeing the object's frames (every test ends with `with_mm`'s leak
//! check).

use super::tests::{TestMm, peek, poke, with_mm};
use super::*;
use crate::folio::Folio;
use crate::shmem::ShmemRef;

const RW: Prot = Prot::READ.union(Prot::WRITE);
const SHARED: MapFlags = MapFlags::SHARED.union(MapFlags::ANONYMOUS);
const PG: u64 = PAGE_SIZE;
const BASE: u64 = 0x4000_0000;

fn pfn(mm: &TestMm<'_, '_>, addr: u64) -> crate::addr::Pfn {
    mm.page_table().get_pte(addr).unwrap().pfn()
}

fn object(mm: &TestMm<'_, '_>, addr: u64) -> ShmemRef {
    mm.vma_lookup(addr).unwrap().shmem.expect("a shmem VMA")
}

fn map_shared(mm: &TestMm<'_, '_>, pages: u64) -> u64 {
    mm.mmap(BASE, pages * PG, RW, SHARED | MapFlags::FIXED, -1, 0)
        .unwrap()
}

#[test]
fn shared_anonymous_mapping_is_a_shmem_object() {
    with_mm(|mm| {
        let a = map_shared(mm, 4);
        let v = mm.vma_lookup(a).unwrap();
        assert_eq!(v.pgoff, 0, "do_mmap() ignores the offset: object offset 0");
        assert!(v.anon_vma.is_none());
        let obj = v.shmem.unwrap();
        assert_eq!(obj.size_pages(), 4);
        assert_eq!(obj.refs(), 1, "the VMA's reference only");
        // A read fault allocates the object's page (no zero page) and maps
        // it writable but clean (no write notification for shmem).
        assert_eq!(peek(mm, a + PG), Ok(0));
        let e = mm.page_table().get_pte(a + PG).unwrap();
        assert!(e.is_writable() && !e.flags().contains(crate::pgtable::PteFlags::DIRTY));
        assert_ne!(e.pfn(), mm.vm.zero_page());
        assert_eq!(obj.find(1), Some(e.pfn()));
        let f = Folio::of(mm.vm.pa.memmap(), e.pfn());
        assert!(f.is_shmem() && f.anon_vma().is_none());
        assert_eq!(f.mapping(), Some(obj.mapping()));
        assert_eq!(f.index(), 1);
        assert_eq!(f.page(0).mapcount(), 1);
        assert_eq!(f.page(0).refcount(), 2, "the object's and the PTE's");
        assert_eq!(mm.vm.nr_shmem_pages(), 1);
        assert_eq!(mm.status().rss_shmem, 4);
        assert_eq!(mm.status().rss_anon, 0);
        assert_eq!(mm.vm.committed_pages(), 0, "shared: no VM_ACCOUNT");
        mm.validate().unwrap();
        mm.munmap(a, 4 * PG).unwrap();
        assert_eq!(mm.vm.nr_shmem_pages(), 0, "the last unmap truncated it");
    });
}

#[test]
fn fork_shares_pages_touched_before_and_after_both_ways() {
    with_mm(|mm| {
        let a = map_shared(mm, 4);
        poke(mm, a, 11).unwrap(); // before fork
        let child = mm.fork().unwrap();
        assert_eq!(object(&child, a), object(mm, a));
        assert_eq!(object(mm, a).refs(), 2);
        assert!(
            child.page_table().get_pte(a).is_none(),
            "fork copies no PTEs of a shared VMA"
        );
        assert_eq!(peek(&child, a), Ok(11), "parent -> child, page from before");
        assert_eq!(pfn(&child, a), pfn(mm, a));
        // Pages first touched after fork, by either side.
        poke(&child, a + PG, 22).unwrap();
        assert_eq!(peek(mm, a + PG), Ok(22), "child -> parent");
        poke(mm, a + 2 * PG, 33).unwrap();
        assert_eq!(peek(&child, a + 2 * PG), Ok(33), "parent -> child");
        // Writes to a page both map are seen at once: no CoW.
        poke(&child, a, 44).unwrap();
        assert_eq!(peek(mm, a), Ok(44));
        assert_eq!(mm.vm.event(VmEvent::CowCopy), 0);
        assert_eq!(pfn(&child, a), pfn(mm, a));
        let f = Folio::of(mm.vm.pa.memmap(), pfn(mm, a));
        assert_eq!(f.page(0).mapcount(), 2);
        assert_eq!(f.page(0).refcount(), 3);
        assert_eq!(mm.vm.nr_shmem_pages(), 3);
        child.validate().unwrap();
        mm.validate().unwrap();
        // The child exits: the data stays for the parent.
        drop(child);
        assert_eq!(object(mm, a).refs(), 1);
        assert_eq!(peek(mm, a + PG), Ok(22));
        assert_eq!(mm.vm.nr_shmem_pages(), 3);
    });
}

#[test]
fn parent_exit_leaves_the_object_to_the_child() {
    with_mm(|mm| {
        let child = {
            let parent = mm.fork().unwrap();
            let a = map_shared(&parent, 2);
            poke(&parent, a, 5).unwrap();
            let child = parent.fork().unwrap();
            drop(parent);
            child
        };
        assert_eq!(object(&child, BASE).refs(), 1);
        assert_eq!(peek(&child, BASE), Ok(5));
        assert_eq!(mm.vm.nr_shmem_pages(), 1);
        drop(child);
        assert_eq!(mm.vm.nr_shmem_pages(), 0);
    });
}

#[test]
fn dontneed_drops_the_mapping_but_keeps_the_data() {
    with_mm(|mm| {
        let a = map_shared(mm, 2);
        poke(mm, a, 7).unwrap();
        let page = pfn(mm, a);
        mm.madvise(a, 2 * PG, 4).unwrap(); // MADV_DONTNEED
        assert!(mm.page_table().get_pte(a).is_none_or(|e| e.is_none()));
        assert_eq!(mm.status().rss_shmem, 0);
        assert_eq!(mm.vm.nr_shmem_pages(), 1, "still in the object");
        assert_eq!(peek(mm, a), Ok(7), "re-read from the object");
        assert_eq!(pfn(mm, a), page);
        assert_eq!(mm.vm.event(VmEvent::ShmemFaultHit), 1);
        // MADV_FREE is for private anonymous memory only.
        assert_eq!(mm.madvise(a, PG, 8), Err(crate::errno::Errno::EINVAL));
    });
}

#[test]
fn splits_and_merges_keep_the_object_and_offsets() {
    with_mm(|mm| {
        let a = map_shared(mm, 4);
        for i in 0..4 {
            poke(mm, a + i * PG, 100 + i).unwrap();
        }
        let obj = object(mm, a);
        let child = mm.fork().unwrap();
        mm.mprotect(a + PG, 2 * PG, Prot::READ).unwrap();
        let vmas = mm.vmas();
        assert_eq!(vmas.len(), 3);
        for (v, pgoff) in vmas.iter().zip([0, 1, 3]) {
            assert_eq!(v.shmem, Some(obj));
            assert_eq!(v.pgoff, pgoff);
        }
        assert_eq!(obj.refs(), 4, "three VMAs here, one in the child");
        assert_eq!(poke(mm, a + PG, 0), Err(FaultError::Segv(SegvCode::AccErr)));
        // The child still writes the page; the parent reads it.
        poke(&child, a + PG, 55).unwrap();
        assert_eq!(peek(mm, a + PG), Ok(55));
        mm.mprotect(a + PG, 2 * PG, RW).unwrap();
        assert_eq!(mm.vmas().len(), 1, "same object, contiguous: merged");
        assert_eq!(mm.vmas()[0].pgoff, 0);
        assert_eq!(obj.refs(), 2);
        poke(mm, a + 2 * PG, 66).unwrap();
        assert_eq!(peek(&child, a + 2 * PG), Ok(66));
        // Unmapping the middle leaves two VMAs with offsets 0 and 3.
        mm.munmap(a + PG, 2 * PG).unwrap();
        let vmas = mm.vmas();
        assert_eq!((vmas[0].pgoff, vmas[1].pgoff), (0, 3));
        assert_eq!(peek(mm, a + 3 * PG), Ok(103));
        // Mapping the hole again makes a new object: nothing merges.
        mm.mmap(a + PG, 2 * PG, RW, SHARED | MapFlags::FIXED, -1, 0)
            .unwrap();
        assert_eq!(mm.vmas().len(), 3);
        assert_eq!(peek(mm, a + PG), Ok(0), "a new, zeroed object");
        assert_eq!(peek(&child, a + PG), Ok(55), "the old object's page");
        mm.validate().unwrap();
        child.validate().unwrap();
        drop(child);
    });
}

#[test]
fn two_shared_mappings_side_by_side_do_not_merge() {
    with_mm(|mm| {
        mm.mmap(BASE, PG, RW, SHARED | MapFlags::FIXED, -1, 0)
            .unwrap();
        mm.mmap(BASE + PG, PG, RW, SHARED | MapFlags::FIXED, -1, 0)
            .unwrap();
        assert_eq!(mm.vmas().len(), 2);
        poke(mm, BASE, 1).unwrap();
        poke(mm, BASE + PG, 2).unwrap();
        assert_eq!(mm.vm.nr_shmem_pages(), 2);
        // MAP_FIXED over one of them drops its object.
        mm.mmap(BASE, PG, RW, SHARED | MapFlags::FIXED, -1, 0)
            .unwrap();
        assert_eq!(mm.vm.nr_shmem_pages(), 1);
        assert_eq!(peek(mm, BASE), Ok(0));
    });
}

#[test]
fn mremap_moves_and_grows_keeping_the_object() {
    with_mm(|mm| {
        let a = map_shared(mm, 2);
        poke(mm, a, 9).unwrap();
        poke(mm, a + PG, 10).unwrap();
        let obj = object(mm, a);
        let child = mm.fork().unwrap();
        // Grow with a move: the pages keep their offsets in the object.
        let dst = BASE + 0x10_0000;
        let b = mm
            .mremap(
                a,
                2 * PG,
                4 * PG,
                MremapFlags::MAYMOVE | MremapFlags::FIXED,
                dst,
            )
            .unwrap();
        assert_eq!(b, dst);
        let v = mm.vma_lookup(b).unwrap();
        assert_eq!((v.shmem, v.pgoff, v.pages()), (Some(obj), 0, 4));
        assert_eq!(peek(mm, b + PG), Ok(10));
        poke(mm, b, 12).unwrap();
        assert_eq!(peek(&child, a), Ok(12), "still shared with the child");
        // Past the object's end: SIGBUS, as on Linux (the object keeps the
        // size it was created with).
        assert_eq!(peek(mm, b + 2 * PG), Err(FaultError::Sigbus));
        assert_eq!(poke(mm, b + 3 * PG, 1), Err(FaultError::Sigbus));
        assert_eq!(obj.refs(), 2);
        mm.validate().unwrap();
        drop(child);
        mm.munmap(b, 4 * PG).unwrap();
        assert_eq!(mm.vm.nr_shmem_pages(), 0);
    });
}

#[test]
fn mremap_dontunmap_keeps_both_ranges_on_the_object() {
    with_mm(|mm| {
        let a = map_shared(mm, 2);
        poke(mm, a, 3).unwrap();
        let b = mm
            .mremap(
                a,
                2 * PG,
                2 * PG,
                MremapFlags::MAYMOVE | MremapFlags::DONTUNMAP,
                0,
            )
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(peek(mm, b), Ok(3), "moved PTE");
        // The old range stays mapped to the object: it faults the page in.
        assert_eq!(peek(mm, a), Ok(3));
        assert_eq!(pfn(mm, a), pfn(mm, b));
        assert_eq!(object(mm, a).refs(), 2);
        mm.validate().unwrap();
    });
}

#[test]
fn shared_growsdown_is_refused() {
    with_mm(|mm| {
        assert_eq!(
            mm.mmap(0, PG, RW, SHARED | MapFlags::GROWSDOWN, -1, 0),
            Err(crate::errno::Errno::EINVAL)
        );
    });
}
