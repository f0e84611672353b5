//! Shared anonymous memory (`MAP_SHARED | MAP_ANONYMOUS`, a shmem object):
//! sharing across fork both ways, pages touched before and after fork,
//! MADV_DONTNEED keeping the data, splits, merges and mremap keeping the
//! object and its offsets, SIGBUS past the object, and the last unmap
//! freeing the object's frames (every test ends with `with_mm`'s leak
//! check).

use super::tests::{TestMm, peek, poke, with_mm};
use super::*;
use crate::errno::Errno;
use crate::folio::{Folio, folio_put};
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

// Shmem files (memfd): size, read/write, truncation through mappings,
// private copies, seals.

const PRIVATE: MapFlags = MapFlags::PRIVATE;
const FILE_SHARED: MapFlags = MapFlags::SHARED;

fn new_file(mm: &TestMm<'_, '_>, seals: u32) -> ShmemRef {
    ShmemRef::new_file(mm.vm, "/memfd:t (deleted)".into(), seals).unwrap()
}

#[test]
fn file_write_read_and_holes() {
    with_mm(|mm| {
        let f = new_file(mm, 0);
        assert_eq!(f.size(), 0);
        assert_eq!(f.write_at(mm.vm, 10, b"abc"), Ok(3));
        assert_eq!(f.size(), 13);
        assert_eq!(
            f.write_at(mm.vm, 3 * PG - 1, b"xy"),
            Ok(2),
            "straddles two pages"
        );
        assert_eq!(f.size(), 3 * PG + 1);
        assert_eq!(f.nr_pages(), 3, "page 1 is a hole");
        assert_eq!(mm.vm.nr_shmem_pages(), 3);
        let mut buf = [9u8; 16];
        assert_eq!(f.read_at(mm.vm, 8, &mut buf), 16);
        assert_eq!(&buf[..7], b"\0\0abc\0\0");
        let mut hole = [9u8; 8];
        assert_eq!(f.read_at(mm.vm, PG + 5, &mut hole), 8);
        assert_eq!(hole, [0; 8], "a hole reads zeros");
        assert_eq!(f.nr_pages(), 3, "reading a hole allocates nothing");
        assert_eq!(f.read_at(mm.vm, 3 * PG - 1, &mut buf), 2, "up to the size");
        assert_eq!(&buf[..2], b"xy");
        assert_eq!(f.read_at(mm.vm, 4 * PG, &mut buf), 0, "past the end");
        f.put(mm.vm);
        assert_eq!(
            mm.vm.nr_shmem_pages(),
            0,
            "the last reference frees the pages"
        );
    });
}

#[test]
fn file_truncate_unmaps_and_zeroes_the_tail() {
    with_mm(|mm| {
        let f = new_file(mm, 0);
        f.truncate(mm.vm, 4 * PG, |_| panic!("a grow unmaps nothing"))
            .unwrap();
        let a = mm
            .mmap_file(BASE, 4 * PG, RW, FILE_SHARED, (f, true), 0)
            .unwrap();
        let p = mm
            .mmap_file(BASE + 8 * PG, 4 * PG, RW, PRIVATE, (f, true), 0)
            .unwrap();
        for i in 0..4 {
            poke(mm, a + i * PG, 100 + i).unwrap();
        }
        assert_eq!(f.writable_maps(), 1, "the shared writable VMA only");
        // The private mapping reads the file's pages, then copies one.
        assert_eq!(peek(mm, p + 2 * PG), Ok(102));
        assert_eq!(
            pfn(mm, p + 2 * PG),
            pfn(mm, a + 2 * PG),
            "read: the page-cache page"
        );
        assert!(!mm.page_table().get_pte(p + 2 * PG).unwrap().is_writable());
        poke(mm, p + PG, 7).unwrap();
        assert_ne!(pfn(mm, p + PG), pfn(mm, a + PG), "write: a private copy");
        assert_eq!(peek(mm, a + PG), Ok(101), "the file is unchanged");
        assert!(!Folio::of(mm.vm.pa.memmap(), pfn(mm, p + PG)).is_shmem());
        assert_eq!(mm.status().rss_anon, 4);
        mm.validate().unwrap();
        let mut firsts = alloc::vec::Vec::new();
        f.truncate(mm.vm, PG + 8, |first| {
            firsts.push(first);
            mm.unmap_mapping_range(f, first);
        })
        .unwrap();
        assert_eq!(
            firsts,
            [2, 2],
            "unmapped before and after removing the pages"
        );
        assert_eq!(f.nr_pages(), 2);
        assert_eq!(f.size_pages(), 2);
        for addr in [a + 2 * PG, a + 3 * PG, p + 2 * PG] {
            assert!(mm.page_table().get_pte(addr).is_none_or(|e| e.is_none()));
            assert_eq!(peek(mm, addr), Err(FaultError::Sigbus));
        }
        assert_eq!(peek(mm, a), Ok(100), "pages before the end stay");
        assert_eq!(
            peek(mm, p + PG),
            Ok(7),
            "a private copy before the end stays"
        );
        let mut tail = [9u8; 16];
        f.read_at(mm.vm, PG, &mut tail[..8]);
        assert_eq!(
            &tail[..8],
            &101u64.to_le_bytes(),
            "the kept head of the last page"
        );
        assert_eq!(peek(mm, a + PG + 8), Ok(0), "its tail is zeroed");
        mm.validate().unwrap();
        // Growing again gives fresh zero pages.
        f.truncate(mm.vm, 4 * PG, |_| unreachable!()).unwrap();
        assert_eq!(peek(mm, a + 3 * PG), Ok(0));
        mm.munmap(a, 4 * PG).unwrap();
        mm.munmap(p, 4 * PG).unwrap();
        assert_eq!(f.writable_maps(), 0);
        assert_eq!(f.refs(), 1, "the file's own");
        f.put(mm.vm);
        assert_eq!(mm.vm.nr_shmem_pages(), 0);
    });
}

#[test]
fn file_seals() {
    with_mm(|mm| {
        use crate::shmem::*;
        let f = new_file(mm, 0);
        assert_eq!(f.write_at(mm.vm, 0, b"0123456789"), Ok(10));
        let a = mm
            .mmap_file(BASE, PG, RW, FILE_SHARED, (f, true), 0)
            .unwrap();
        assert_eq!(f.add_seals(F_SEAL_WRITE, false), Err(Errno::EBUSY));
        assert_eq!(f.add_seals(0x100, false), Err(Errno::EINVAL));
        mm.munmap(a, PG).unwrap();
        // Not VM_MAYWRITE (the caller's choice for a sealed or read-only
        // file): does not count.
        let r = mm
            .mmap_file(BASE, PG, Prot::READ, FILE_SHARED, (f, false), 0)
            .unwrap();
        assert_eq!(f.writable_maps(), 0);
        assert_eq!(mm.mprotect(r, PG, RW), Err(Errno::EACCES));
        assert_eq!(f.add_seals(F_SEAL_WRITE | F_SEAL_SHRINK, false), Ok(()));
        assert_eq!(f.write_at(mm.vm, 0, b"x"), Err(Errno::EPERM));
        assert_eq!(f.truncate(mm.vm, 5, |_| {}), Err(Errno::EPERM));
        assert_eq!(f.truncate(mm.vm, 20, |_| {}), Ok(()));
        assert_eq!(f.add_seals(F_SEAL_GROW | F_SEAL_SEAL, false), Ok(()));
        assert_eq!(f.truncate(mm.vm, 30, |_| {}), Err(Errno::EPERM));
        assert_eq!(f.fallocate(mm.vm, 0, PG, true), Err(Errno::EPERM));
        assert_eq!(f.add_seals(F_SEAL_FUTURE_WRITE, false), Err(Errno::EPERM));
        assert_eq!(
            f.seals(),
            F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL
        );
        mm.munmap(r, PG).unwrap();
        f.put(mm.vm);

        // F_SEAL_GROW alone: a write inside the size goes, one past it
        // is refused from its first chunk that would grow the file.
        let g = new_file(mm, 0);
        g.write_at(mm.vm, 0, &[1; 100]).unwrap();
        g.add_seals(F_SEAL_GROW, false).unwrap();
        assert_eq!(g.write_at(mm.vm, 90, &[2; 10]), Ok(10));
        assert_eq!(g.write_at(mm.vm, 95, &[2; 10]), Err(Errno::EPERM));
        g.put(mm.vm);
        // F_SEAL_EXEC on an executable file brings the write seals.
        let x = new_file(mm, 0);
        x.add_seals(F_SEAL_EXEC, true).unwrap();
        assert_eq!(
            x.seals(),
            F_SEAL_EXEC | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE
        );
        x.put(mm.vm);
    });
}

#[test]
fn file_fallocate_and_fork_of_a_private_mapping() {
    with_mm(|mm| {
        let f = new_file(mm, 0);
        f.fallocate(mm.vm, 0, 2 * PG, false).unwrap();
        assert_eq!((f.size(), f.nr_pages()), (2 * PG, 2));
        f.fallocate(mm.vm, 3 * PG, PG, true).unwrap();
        assert_eq!((f.size(), f.nr_pages()), (2 * PG, 3), "KEEP_SIZE");
        f.write_at(mm.vm, 0, &5u64.to_le_bytes()).unwrap();
        let p = mm
            .mmap_file(BASE, 2 * PG, RW, PRIVATE, (f, true), 0)
            .unwrap();
        assert_eq!(peek(mm, p), Ok(5));
        poke(mm, p + PG, 6).unwrap();
        let child = mm.fork().unwrap();
        assert_eq!(peek(&child, p), Ok(5), "the page-cache page, shared");
        assert_eq!(peek(&child, p + PG), Ok(6), "the parent's private copy");
        poke(&child, p, 8).unwrap();
        assert_eq!(peek(mm, p), Ok(5), "the child's write is its own copy");
        child.validate().unwrap();
        mm.validate().unwrap();
        drop(child);
        f.put(mm.vm);
        assert_eq!(mm.vm.nr_shmem_pages(), 3, "the mapping keeps the file");
        mm.munmap(p, 2 * PG).unwrap();
        assert_eq!(mm.vm.nr_shmem_pages(), 0);
    });
}

#[test]
fn msync_walks_the_range_with_linux_errnos() {
    use super::msync::{MS_ASYNC, MS_INVALIDATE, MS_SYNC};
    with_mm(|mm| {
        let f = new_file(mm, 0);
        f.truncate(mm.vm, 8 * PG, |_| {}).unwrap();
        let a = mm
            .mmap_file(BASE, 2 * PG, RW, FILE_SHARED, (f, true), 0)
            .unwrap();
        // A hole at [BASE + 2 pages, BASE + 3 pages), then an anonymous page.
        mm.mmap(
            BASE + 3 * PG,
            PG,
            RW,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED,
            -1,
            0,
        )
        .unwrap();
        assert_eq!(mm.msync(a, 2 * PG, MS_SYNC), Ok(()));
        assert_eq!(mm.msync(a, 1, MS_ASYNC), Ok(()), "the length rounds up");
        assert_eq!(mm.msync(a, 0, MS_SYNC), Ok(()));
        assert_eq!(mm.msync(a + 1, PG, MS_SYNC), Err(Errno::EINVAL));
        assert_eq!(mm.msync(a, PG, MS_SYNC | MS_ASYNC), Err(Errno::EINVAL));
        assert_eq!(mm.msync(a, PG, 8), Err(Errno::EINVAL));
        assert_eq!(mm.msync(a, 4 * PG, MS_ASYNC), Err(Errno::ENOMEM), "a hole");
        assert_eq!(
            mm.msync(a, 4 * PG, MS_SYNC),
            Err(Errno::ENOMEM),
            "after the walk"
        );
        assert_eq!(
            mm.msync(a, 5 * PG, MS_INVALIDATE),
            Err(Errno::ENOMEM),
            "tail"
        );
        assert_eq!(mm.msync(BASE + 3 * PG, PG, MS_INVALIDATE), Ok(()));
        assert_eq!(mm.msync(!(PG - 1), 2 * PG, MS_SYNC), Err(Errno::ENOMEM));
        mm.munmap(a, 4 * PG).unwrap();
        f.put(mm.vm);
    });
}

#[test]
fn punch_hole_frees_whole_pages_zeroes_partial_ones_keeps_private_copies() {
    with_mm(|mm| {
        let f = new_file(mm, 0);
        f.write_at(mm.vm, 0, &[0xaa; 4 * PG as usize]).unwrap();
        let a = mm
            .mmap_file(BASE, 4 * PG, RW, FILE_SHARED, (f, true), 0)
            .unwrap();
        let p = mm
            .mmap_file(BASE + 8 * PG, 4 * PG, RW, PRIVATE, (f, true), 0)
            .unwrap();
        assert_eq!(peek(mm, a + PG), Ok(u64::from_ne_bytes([0xaa; 8])));
        poke(mm, p + 2 * PG, 7).unwrap(); // a private copy of page 2
        assert_eq!(peek(mm, p + PG), Ok(u64::from_ne_bytes([0xaa; 8])));
        // The hole: the last 8 bytes of page 0, pages 1 and 2, the first
        // 16 bytes of page 3.
        let mut unmapped = alloc::vec::Vec::new();
        f.punch_hole(mm.vm, PG - 8, 2 * PG + 24, |first, end| {
            unmapped.push((first, end));
            mm.unmap_mapping_pages(f, first, end, false);
        })
        .unwrap();
        assert_eq!(unmapped, [(1, 3), (1, 3)]);
        assert_eq!(f.size(), 4 * PG, "the size stays");
        assert_eq!((f.find(1), f.find(2)), (None, None));
        assert_eq!(f.nr_pages(), 2);
        assert!(mm.page_table().get_pte(a + PG).is_none_or(|e| e.is_none()));
        assert!(mm.page_table().get_pte(p + PG).is_none_or(|e| e.is_none()));
        assert_eq!(peek(mm, p + 2 * PG), Ok(7), "the private copy stays");
        assert_eq!(peek(mm, a + PG), Ok(0), "a hole reads zeros");
        assert_eq!(peek(mm, a + PG - 8), Ok(0), "the partial head page zeroed");
        assert_eq!(peek(mm, a + PG - 16), Ok(u64::from_ne_bytes([0xaa; 8])));
        assert_eq!(peek(mm, a + 3 * PG + 8), Ok(0));
        assert_eq!(peek(mm, a + 3 * PG + 16), Ok(u64::from_ne_bytes([0xaa; 8])));
        // Inside one page: only zeroing.
        f.punch_hole(mm.vm, 3 * PG + 100, 8, |_, _| panic!("no whole page"))
            .unwrap();
        let mut b = [1u8; 8];
        f.read_at(mm.vm, 3 * PG + 100, &mut b);
        assert_eq!(b, [0; 8]);
        mm.validate().unwrap();
        f.add_seals(crate::shmem::F_SEAL_WRITE, false).unwrap_err();
        mm.munmap(a, 4 * PG).unwrap();
        f.add_seals(crate::shmem::F_SEAL_WRITE, false).unwrap();
        assert_eq!(f.punch_hole(mm.vm, 0, PG, |_, _| {}), Err(Errno::EPERM));
        mm.munmap(p, 4 * PG).unwrap();
        f.put(mm.vm);
        assert_eq!(mm.vm.nr_shmem_pages(), 0);
    });
}

#[test]
fn seek_data_and_hole_by_page() {
    with_mm(|mm| {
        let f = new_file(mm, 0);
        assert_eq!(
            f.seek_hole_data(mm.vm, 0, false),
            Err(Errno::ENXIO),
            "empty"
        );
        f.write_at(mm.vm, 2 * PG + 5, b"x").unwrap(); // page 2 only
        f.truncate(mm.vm, 5 * PG, |_| {}).unwrap();
        assert_eq!(f.seek_hole_data(mm.vm, 0, false), Ok(2 * PG));
        assert_eq!(f.seek_hole_data(mm.vm, 2 * PG + 9, false), Ok(2 * PG + 9));
        assert_eq!(f.seek_hole_data(mm.vm, 3 * PG, false), Err(Errno::ENXIO));
        assert_eq!(f.seek_hole_data(mm.vm, 0, true), Ok(0));
        assert_eq!(f.seek_hole_data(mm.vm, 2 * PG, true), Ok(3 * PG));
        assert_eq!(f.seek_hole_data(mm.vm, 5 * PG, true), Err(Errno::ENXIO));
        // fallocated pages stay holes until written or faulted.
        f.fallocate(mm.vm, 3 * PG, 2 * PG, true).unwrap();
        assert_eq!(f.seek_hole_data(mm.vm, 3 * PG, false), Err(Errno::ENXIO));
        assert_eq!(f.seek_hole_data(mm.vm, 2 * PG, true), Ok(3 * PG));
        let pfn = f.get_folio(mm.vm, 4).unwrap();
        folio_put(mm.vm.pa, pfn);
        assert_eq!(f.seek_hole_data(mm.vm, 3 * PG, false), Ok(4 * PG));
        f.write_at(mm.vm, 3 * PG, b"y").unwrap();
        assert_eq!(
            f.seek_hole_data(mm.vm, 2 * PG, true),
            Ok(5 * PG),
            "the size ends data"
        );
        f.put(mm.vm);
    });
}

#[test]
fn file_mapped_counts_pages_mapped_at_least_once() {
    with_mm(|mm| {
        let a = map_shared(mm, 4);
        poke(mm, a, 1).unwrap();
        assert_eq!(peek(mm, a + PG), Ok(0));
        assert_eq!(
            mm.vm.nr_file_mapped(),
            2,
            "a read fault maps a shmem page too"
        );
        let child = mm.fork().unwrap();
        assert_eq!(peek(&child, a), Ok(1));
        assert_eq!(mm.vm.nr_file_mapped(), 2, "a second mapping of a page");
        poke(&child, a + 2 * PG, 3).unwrap();
        assert_eq!(mm.vm.nr_file_mapped(), 3);
        drop(child);
        assert_eq!(mm.vm.nr_file_mapped(), 2, "the page only the child mapped");
        mm.madvise(a, PG, 4).unwrap(); // MADV_DONTNEED
        assert_eq!(mm.vm.nr_file_mapped(), 1);
        // A private mapping of a file: the page-cache page is mapped until
        // a write replaces it with an anonymous copy.
        let f = new_file(mm, 0);
        f.write_at(mm.vm, 0, &[7; 2 * PG as usize]).unwrap();
        let p = mm
            .mmap_file(BASE + 8 * PG, 2 * PG, RW, PRIVATE, (f, true), 0)
            .unwrap();
        assert_eq!(peek(mm, p), Ok(0x0707_0707_0707_0707));
        assert_eq!(peek(mm, p + PG), Ok(0x0707_0707_0707_0707));
        assert_eq!(mm.vm.nr_file_mapped(), 3);
        poke(mm, p, 9).unwrap();
        assert_eq!(mm.vm.nr_file_mapped(), 2, "the CoW unmapped the file page");
        f.put(mm.vm);
        mm.munmap(p, 2 * PG).unwrap();
        mm.munmap(a, 4 * PG).unwrap();
        assert_eq!(mm.vm.nr_file_mapped(), 0);
    });
}

#[test]
fn i_mmap_follows_the_vmas_of_the_object() {
    with_mm(|mm| {
        let f = new_file(mm, 0);
        f.truncate(mm.vm, 8 * PG, |_| {}).unwrap();
        let a = mm
            .mmap_file(BASE, 8 * PG, RW, FILE_SHARED, (f, true), 0)
            .unwrap();
        let entry = |m: &TestMm<'_, '_>, start, pgoff, last| crate::shmem::IMmapEntry {
            mm: m.id(),
            start,
            pgoff,
            last,
        };
        assert_eq!(f.i_mmap_query(0, u64::MAX), [entry(mm, a, 0, 7)]);
        // A split (mprotect of the middle) leaves three entries.
        mm.mprotect(a + 2 * PG, 2 * PG, Prot::READ).unwrap();
        assert_eq!(
            f.i_mmap_query(0, u64::MAX),
            [
                entry(mm, a, 0, 1),
                entry(mm, a + 2 * PG, 2, 3),
                entry(mm, a + 4 * PG, 4, 7)
            ]
        );
        assert_eq!(f.i_mmap_query(3, 4).len(), 2, "by page offset");
        assert_eq!(f.i_mmap_query(8, 100), []);
        // A private mapping of pages 6-7 elsewhere, and a child.
        let p = mm
            .mmap_file(BASE + 0x10_0000, 2 * PG, RW, PRIVATE, (f, true), 6 * PG)
            .unwrap();
        let child = mm.fork().unwrap();
        assert_eq!(f.i_mmap_query(0, u64::MAX).len(), 8);
        assert_eq!(f.i_mmap_mms(6, 7), [mm.id(), child.id()]);
        assert_eq!(f.i_mmap_query(6, 6).len(), 4, "two VMAs in each");
        // Truncation unmaps through it: the child's pages past 5 go too.
        poke(&child, a + 6 * PG, 1).unwrap();
        poke(mm, p, 2).unwrap(); // a private copy: truncation takes it
        f.truncate(mm.vm, 5 * PG, |first| {
            for m in [mm, &child] {
                m.unmap_mapping_range(f, first);
            }
        })
        .unwrap();
        assert!(
            child
                .page_table()
                .get_pte(a + 6 * PG)
                .is_none_or(|e| e.is_none())
        );
        assert!(mm.page_table().get_pte(p).is_none_or(|e| e.is_none()));
        assert_eq!(peek(&child, a + 6 * PG), Err(FaultError::Sigbus));
        child.validate().unwrap();
        drop(child);
        assert_eq!(f.i_mmap_mms(0, 8), [mm.id()]);
        mm.munmap(a, 8 * PG).unwrap();
        mm.munmap(p, 2 * PG).unwrap();
        assert_eq!(f.i_mmap_query(0, u64::MAX), []);
        f.put(mm.vm);
    });
}
