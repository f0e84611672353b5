//! The smaller memory APIs: memory-deny-write-execute (`map_deny_write_exec`
//! in mmap and mprotect, inheritance over fork), `MAP_DROPPABLE` and
//! `MADV_WIPEONFORK` / `MADV_KEEPONFORK`.

use super::tests::{peek, poke, with_mm};
use super::*;
use crate::errno::Errno;
use crate::sim;

const R: Prot = Prot::READ;
const RW: Prot = Prot::READ.union(Prot::WRITE);
const RX: Prot = Prot::READ.union(Prot::EXEC);
const RWX: Prot = RW.union(Prot::EXEC);
const ANON: MapFlags = MapFlags::PRIVATE.union(MapFlags::ANONYMOUS);
const PG: u64 = PAGE_SIZE;

#[test]
fn mdwe_rule_is_linuxs_map_deny_write_exec() {
    let on = MmFlags::HAS_MDWE;
    let (x, w, rx, rwx) = (
        VmFlags::EXEC,
        VmFlags::WRITE,
        VmFlags::READ | VmFlags::EXEC,
        VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC,
    );
    assert!(!map_deny_write_exec(MmFlags::empty(), w, rwx), "off");
    assert!(!map_deny_write_exec(on, rx, rx), "exec kept");
    assert!(!map_deny_write_exec(on, rwx, w), "exec dropped");
    assert!(map_deny_write_exec(on, rwx, rwx), "write+exec");
    assert!(map_deny_write_exec(on, w, x), "exec gained");
    assert!(map_deny_write_exec(on, VmFlags::READ, rx), "exec gained");
}

#[test]
fn mdwe_refuses_exec_gain_in_mmap_and_mprotect() {
    with_mm(|mm| {
        // Before MDWE anything goes.
        let a = mm.mmap(0, PG, RWX, ANON, -1, 0).unwrap();
        mm.set_mm_flags(MmFlags::HAS_MDWE);
        assert_eq!(mm.mmap(0, PG, RWX, ANON, -1, 0), Err(Errno::EACCES));
        assert_eq!(
            mm.mmap(0, PG, Prot::WRITE | Prot::EXEC, ANON, -1, 0),
            Err(Errno::EACCES)
        );
        // Executable from the start and never writable: allowed.
        let x = mm.mmap(0, PG, RX, ANON, -1, 0).unwrap();
        assert_eq!(mm.mprotect(x, PG, RX), Ok(()));
        assert_eq!(mm.mprotect(x, PG, RWX), Err(Errno::EACCES));
        // Dropping exec is fine; getting it back is not.
        assert_eq!(mm.mprotect(x, PG, R), Ok(()));
        assert_eq!(mm.mprotect(x, PG, RX), Err(Errno::EACCES));
        let d = mm.mmap(0, 2 * PG, RW, ANON, -1, 0).unwrap();
        assert_eq!(mm.mprotect(d, PG, RX), Err(Errno::EACCES));
        assert_eq!(
            mm.vma_lookup(d).unwrap().flags & VmFlags::ACCESS,
            VmFlags::READ | VmFlags::WRITE
        );
        // The RWX mapping from before keeps working: exec kept, write dropped.
        assert_eq!(mm.mprotect(a, PG, RX), Ok(()));
        assert_eq!(mm.mprotect(a, PG, RWX), Err(Errno::EACCES));
        // A refused mmap left nothing behind.
        assert_eq!(mm.map_count(), 3);
    });
}

#[test]
fn mdwe_passes_to_a_fork_child_unless_no_inherit() {
    with_mm(|mm| {
        let c0 = mm.fork().unwrap();
        assert_eq!(c0.mm_flags(), MmFlags::empty());
        mm.set_mm_flags(MmFlags::HAS_MDWE);
        let c1 = mm.fork().unwrap();
        assert_eq!(c1.mm_flags(), MmFlags::HAS_MDWE);
        assert_eq!(c1.mmap(0, PG, RWX, ANON, -1, 0), Err(Errno::EACCES));
        mm.set_mm_flags(MmFlags::HAS_MDWE_NO_INHERIT);
        let c2 = mm.fork().unwrap();
        assert_eq!(c2.mm_flags(), MmFlags::empty());
        assert!(c2.mmap(0, PG, RWX, ANON, -1, 0).is_ok());
        assert_eq!(
            (MmFlags::HAS_MDWE | MmFlags::HAS_MDWE_NO_INHERIT).init(),
            MmFlags::empty()
        );
        assert_eq!(MmFlags::HAS_MDWE.init(), MmFlags::HAS_MDWE);
    });
}

const DROP: MapFlags = MapFlags::DROPPABLE.union(MapFlags::ANONYMOUS);

#[test]
fn map_droppable_is_a_mapping_type_of_anonymous_memory() {
    with_mm(|mm| {
        let a = mm.mmap(0, 4 * PG, RW, DROP, -1, 0).unwrap();
        let f = mm.vma_lookup(a).unwrap().flags;
        let want =
            VmFlags::DROPPABLE | VmFlags::WIPEONFORK | VmFlags::DONTDUMP | VmFlags::NORESERVE;
        assert!(f.contains(want), "{f:?}");
        assert!(!f.contains(VmFlags::ACCOUNT), "nothing reserved");
        assert_eq!(mm.vm.committed_pages(), 0);
        // A type of its own: with PRIVATE or SHARED the type field is invalid.
        for bad in [
            DROP | MapFlags::PRIVATE,
            DROP | MapFlags::SHARED,
            DROP | MapFlags::LOCKED,
            DROP | MapFlags::GROWSDOWN,
            DROP | MapFlags::HUGETLB,
            MapFlags::from_bits_retain(0x04) | MapFlags::ANONYMOUS,
            MapFlags::from_bits_retain(0x0f) | MapFlags::ANONYMOUS,
        ] {
            assert_eq!(
                mm.mmap(0, PG, RW, bad, -1, 0),
                Err(Errno::EINVAL),
                "{bad:?}"
            );
        }
        // Not mergeable with ordinary private memory next to it.
        mm.mmap(a + 4 * PG, PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        assert_eq!(mm.vma_lookup(a).unwrap().end, a + 4 * PG);
        poke(mm, a, 7).unwrap();
        assert_eq!(peek(mm, a), Ok(7));
    });
}

#[test]
fn wipeonfork_and_droppable_memory_reach_the_child_empty() {
    with_mm(|mm| {
        let d = mm.mmap(0, 2 * PG, RW, DROP, -1, 0).unwrap();
        let w = mm.mmap(0, 2 * PG, RW, ANON, -1, 0).unwrap();
        let k = mm.mmap(0, PG, RW, ANON, -1, 0).unwrap();
        for a in [d, d + PG, w, w + PG, k] {
            poke(mm, a, 0x5a).unwrap();
        }
        mm.madvise(w, PG, 18).unwrap(); // MADV_WIPEONFORK on the first page
        let child = mm.fork().unwrap();
        // Wiped: no PTE, zeros on a read; the other page of w and k copied.
        let unmapped = |a| {
            child
                .page_table()
                .get_pte(a)
                .is_none_or(|e| !e.is_present())
        };
        assert!(unmapped(d) && unmapped(d + PG) && unmapped(w));
        assert_eq!(child.status().rss_anon, 2 * PG / 1024);
        assert_eq!(peek(&child, d), Ok(0));
        assert_eq!(peek(&child, w), Ok(0));
        assert_eq!(peek(&child, w + PG), Ok(0x5a));
        assert_eq!(peek(&child, k), Ok(0x5a));
        // The child's VMAs keep the flag: a grandchild is wiped too.
        assert!(
            child
                .vma_lookup(w)
                .unwrap()
                .flags
                .contains(VmFlags::WIPEONFORK)
        );
        poke(&child, w, 1).unwrap();
        let grandchild = child.fork().unwrap();
        assert_eq!(peek(&grandchild, w), Ok(0));
        // The parent kept its data.
        assert_eq!(peek(mm, d + PG), Ok(0x5a));
        assert_eq!(peek(mm, w), Ok(0x5a));
        // KEEPONFORK undoes it, but not on droppable memory.
        mm.madvise(w, PG, 19).unwrap();
        assert!(
            !mm.vma_lookup(w)
                .unwrap()
                .flags
                .contains(VmFlags::WIPEONFORK)
        );
        assert_eq!(mm.madvise(d, PG, 19), Err(Errno::EINVAL));
        // MADV_DODUMP cannot undo a droppable mapping's DONTDUMP.
        assert_eq!(mm.madvise(d, PG, 17), Err(Errno::EINVAL));
        mm.madvise(k, PG, 16).unwrap();
        assert!(mm.vma_lookup(k).unwrap().flags.contains(VmFlags::DONTDUMP));
        mm.madvise(k, PG, 17).unwrap();
        assert!(!mm.vma_lookup(k).unwrap().flags.contains(VmFlags::DONTDUMP));
        // WIPEONFORK is for private anonymous memory only.
        let s = mm
            .mmap(0, PG, RW, MapFlags::SHARED | MapFlags::ANONYMOUS, -1, 0)
            .unwrap();
        assert_eq!(mm.madvise(s, PG, 18), Err(Errno::EINVAL));
    });
}

#[test]
fn a_droppable_fault_that_cannot_allocate_is_retried_not_fatal() {
    with_mm(|mm| {
        let d = mm.mmap(0, PG, RW, DROP, -1, 0).unwrap();
        let a = mm.mmap(0, PG, RW, ANON, -1, 0).unwrap();
        // The next allocation (a page table or the page) fails.
        sim::set_fail_nth(1);
        assert_eq!(mm.handle_fault(a, FaultAccess::Write), Err(FaultError::Oom));
        sim::set_fail_nth(1);
        assert_eq!(mm.handle_fault(d, FaultAccess::Write), Ok(()));
        sim::set_fail_nth(0);
        assert!(
            mm.page_table().get_pte(d).is_none_or(|e| !e.is_present()),
            "nothing mapped: the access faults again"
        );
        // The retry finds memory.
        assert_eq!(mm.handle_fault(d, FaultAccess::Write), Ok(()));
        assert!(mm.page_table().get_pte(d).unwrap().is_writable());
    });
}

#[test]
fn oom_reap_frees_private_pages_and_keeps_shared_ones_and_the_vmas() {
    with_mm(|mm| {
        let a = mm.mmap(0, 8 * PG, RW, ANON, -1, 0).unwrap();
        let s = mm
            .mmap(0, 2 * PG, RW, MapFlags::SHARED | MapFlags::ANONYMOUS, -1, 0)
            .unwrap();
        for i in 0..8 {
            poke(mm, a + i * PG, i + 1).unwrap();
        }
        poke(mm, s, 9).unwrap();
        let free = |mm: &super::tests::TestMm<'_, '_>| {
            mm.vm.pa.drain_all_pages();
            mm.vm.pa.nr_free_pages()
        };
        let before = free(mm);
        let vmas = mm.map_count();
        assert_eq!(mm.oom_reap(), 8);
        assert!(free(mm) >= before + 8, "the frames are back at once");
        assert_eq!(mm.status().rss_anon, 0);
        assert_eq!(mm.status().rss_shmem, PG / 1024);
        assert_eq!(mm.map_count(), vmas);
        assert_eq!(peek(mm, s), Ok(9), "shared memory kept");
        assert_eq!(peek(mm, a), Ok(0), "private memory gone");
        // A second reap finds nothing more.
        assert_eq!(mm.oom_reap(), 0);
    });
}

/// The word at `addr` of frame `pfn`, in simulated RAM.
fn frame_word(mm: &super::tests::TestMm<'_, '_>, pfn: crate::addr::Pfn, addr: u64) -> u64 {
    let pa = crate::addr::PhysAddr::new(pfn.phys_addr().as_u64() + addr % PG);
    mm.vm
        .pa
        .platform()
        .0
        .ram_word(pa)
        .load(core::sync::atomic::Ordering::SeqCst)
}

fn frame_poke(mm: &super::tests::TestMm<'_, '_>, pfn: crate::addr::Pfn, addr: u64, v: u64) {
    let pa = crate::addr::PhysAddr::new(pfn.phys_addr().as_u64() + addr % PG);
    mm.vm
        .pa
        .platform()
        .0
        .ram_word(pa)
        .store(v, core::sync::atomic::Ordering::SeqCst);
}

#[test]
fn a_forced_write_breaks_cow_of_read_only_memory_and_leaves_it_read_only() {
    with_mm(|mm| {
        let a = mm.mmap(0, 2 * PG, RW, ANON, -1, 0).unwrap();
        poke(mm, a, 1).unwrap();
        let child = mm.fork().unwrap();
        mm.mprotect(a, 2 * PG, R).unwrap();
        assert_eq!(
            mm.handle_fault(a, FaultAccess::Write),
            Err(FaultError::Segv(SegvCode::AccErr)),
            "an ordinary write is refused"
        );
        mm.access_remote_page(a, true, |pfn| frame_poke(mm, pfn.unwrap(), a, 0xbb))
            .unwrap();
        let e = mm.page_table().get_pte(a).unwrap();
        assert!(e.is_present() && !e.is_writable(), "still read-only");
        assert_eq!(peek(mm, a), Ok(0xbb));
        assert_eq!(peek(&child, a), Ok(1), "the child's copy is untouched");
        // A never-touched page: a new page, read-only, holding the write.
        mm.access_remote_page(a + PG, true, |pfn| frame_poke(mm, pfn.unwrap(), a, 7))
            .unwrap();
        assert_eq!(peek(mm, a + PG), Ok(7));
        assert!(!mm.page_table().get_pte(a + PG).unwrap().is_writable());
        // Reads see the data; the forced read takes no write fault.
        let got = mm.access_remote_page(a, false, |pfn| frame_word(mm, pfn.unwrap(), a));
        assert_eq!(got, Ok(0xbb));
        // Shared memory without VM_WRITE, a hole: refused.
        let s = mm
            .mmap(0, PG, R, MapFlags::SHARED | MapFlags::ANONYMOUS, -1, 0)
            .unwrap();
        assert_eq!(mm.access_remote_page(s, true, |_| ()), Err(Errno::EFAULT));
        assert_eq!(mm.access_remote_page(s, false, |_| ()), Ok(()));
        assert_eq!(
            mm.access_remote_page(0x1000, false, |_| ()),
            Err(Errno::EFAULT)
        );
    });
}

#[test]
fn a_forced_read_of_prot_none_memory_sees_its_page_or_zeros() {
    with_mm(|mm| {
        let a = mm.mmap(0, 2 * PG, RW, ANON, -1, 0).unwrap();
        poke(mm, a, 0x42).unwrap();
        mm.mprotect(a, 2 * PG, Prot::empty()).unwrap();
        let got = mm.access_remote_page(a, false, |pfn| pfn.map(|p| frame_word(mm, p, a)));
        assert_eq!(got, Ok(Some(0x42)));
        assert_eq!(mm.access_remote_page(a + PG, false, |pfn| pfn), Ok(None));
        assert!(
            mm.page_table()
                .get_pte(a + PG)
                .is_none_or(|e| !e.is_present()),
            "nothing faulted in"
        );
        assert_eq!(mm.access_remote_page(a, true, |_| ()), Err(Errno::EFAULT));
    });
}

/// The soft-dirty bits of pagemap for `n` pages at `a`, as a bit string.
fn soft_dirty_bits(mm: &super::tests::TestMm<'_, '_>, a: u64, n: u64) -> alloc::string::String {
    let mut pm = alloc::vec::Vec::new();
    mm.pagemap(a, a + n * PG, false, &mut pm);
    pm.iter()
        .map(|e| if e & PM_SOFT_DIRTY != 0 { '1' } else { '0' })
        .collect()
}

#[test]
fn clear_refs_4_write_protects_and_the_next_write_marks_the_page() {
    with_mm(|mm| {
        let a = mm.mmap(0, 4 * PG, RW, ANON, -1, 0).unwrap();
        // New memory is soft-dirty as a whole, touched or not.
        assert!(mm.vma_lookup(a).unwrap().flags.contains(VmFlags::SOFTDIRTY));
        assert_eq!(soft_dirty_bits(mm, a, 4), "1111");
        for i in 0..3 {
            poke(mm, a + i * PG, i + 1).unwrap();
        }
        mm.clear_refs(ClearRefs::SoftDirty);
        assert!(!mm.vma_lookup(a).unwrap().flags.contains(VmFlags::SOFTDIRTY));
        assert_eq!(soft_dirty_bits(mm, a, 4), "0000");
        // The pages were write-protected, their data kept, no copy made.
        let pte = mm.page_table().get_pte(a).unwrap();
        assert!(!pte.is_writable());
        let pfn = pte.pfn();
        assert_eq!(peek(mm, a + PG).unwrap(), 2);
        assert_eq!(soft_dirty_bits(mm, a, 4), "0000", "a read marks nothing");
        poke(mm, a + PG, 7).unwrap();
        poke(mm, a + 3 * PG, 8).unwrap();
        assert_eq!(soft_dirty_bits(mm, a, 4), "0101");
        // wp_page_reuse(): the written page stayed where it was.
        assert_eq!(mm.page_table().get_pte(a).unwrap().pfn(), pfn);
        assert_eq!(peek(mm, a).unwrap(), 1);
        // mprotect keeps the PTE bits; a new mapping next to the cleared
        // one merges with it and the merged VMA is soft-dirty (VM_STICKY).
        mm.mprotect(a, 4 * PG, R).unwrap();
        mm.mprotect(a, 4 * PG, RW).unwrap();
        assert_eq!(soft_dirty_bits(mm, a, 4), "0101");
        mm.clear_refs(ClearRefs::SoftDirty);
        let b = mm
            .mmap(a + 4 * PG, PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        assert_eq!(b, a + 4 * PG);
        assert_eq!(mm.vma_lookup(a).unwrap().end, b + PG, "merged");
        assert_eq!(soft_dirty_bits(mm, a, 5), "11111");
        // mremap marks the PTEs it moves; the moved VMA keeps its flags.
        mm.clear_refs(ClearRefs::SoftDirty);
        // (Read-only: a new RW neighbour would merge into `a`, whose
        // merged VMA would then be soft-dirty as a whole.)
        let to = mm.mmap(0, 16 * PG, R, ANON, -1, 0).unwrap();
        mm.munmap(to, 16 * PG).unwrap();
        let n = mm
            .mremap(
                a,
                5 * PG,
                5 * PG,
                MremapFlags::MAYMOVE | MremapFlags::FIXED,
                to,
            )
            .unwrap();
        assert_eq!(n, to);
        assert_eq!(soft_dirty_bits(mm, to, 5), "11110", "the 4 mapped pages");
        assert_eq!(peek(mm, to + PG).unwrap(), 7);
    });
}

#[test]
fn clear_refs_4_makes_shared_memory_fault_on_its_next_write() {
    with_mm(|mm| {
        let shared = MapFlags::SHARED | MapFlags::ANONYMOUS;
        let a = mm.mmap(0, 2 * PG, RW, shared, -1, 0).unwrap();
        poke(mm, a, 1).unwrap();
        mm.clear_refs(ClearRefs::SoftDirty);
        assert_eq!(soft_dirty_bits(mm, a, 2), "00");
        // A read fault maps the page read-only now (vma_wants_writenotify).
        assert_eq!(peek(mm, a + PG).unwrap(), 0);
        assert!(!mm.page_table().get_pte(a + PG).unwrap().is_writable());
        poke(mm, a + PG, 2).unwrap();
        assert_eq!(soft_dirty_bits(mm, a, 2), "01");
        poke(mm, a, 3).unwrap();
        assert_eq!(soft_dirty_bits(mm, a, 2), "11");
    });
}

#[test]
fn clear_refs_1_clears_accessed_bits_and_5_resets_the_peak_rss() {
    with_mm(|mm| {
        let a = mm.mmap(0, 8 * PG, RW, ANON, -1, 0).unwrap();
        for i in 0..8 {
            poke(mm, a + i * PG, i).unwrap();
        }
        let accessed = |mm: &super::tests::TestMm<'_, '_>| {
            (0..8)
                .filter(|i| {
                    let e = mm.page_table().get_pte(a + i * PG).unwrap();
                    e.flags().contains(crate::pgtable::PteFlags::ACCESSED)
                })
                .count()
        };
        assert_eq!(accessed(mm), 8);
        mm.clear_refs(ClearRefs::Mapped);
        assert_eq!(accessed(mm), 8, "3 leaves anonymous memory alone");
        mm.clear_refs(ClearRefs::Anon);
        assert_eq!(accessed(mm), 0);
        let st = mm.status();
        assert_eq!(st.vm_hwm, st.vm_rss);
        let before = st.vm_rss;
        let peak_vm = st.vm_size;
        mm.munmap(a, 6 * PG).unwrap();
        let st = mm.status();
        assert_eq!(st.vm_rss, before - 24);
        assert_eq!(st.vm_hwm, before, "the peak outlives the unmap");
        assert_eq!(st.vm_peak, peak_vm);
        assert_eq!(st.vm_size, peak_vm - 24);
        mm.clear_refs(ClearRefs::MmHiwaterRss);
        assert_eq!(mm.status().vm_hwm, before - 24);
    });
}

#[test]
fn clear_refs_parses_as_kstrtoint() {
    assert_eq!(ClearRefs::parse(b"4\n"), Ok(ClearRefs::SoftDirty));
    assert_eq!(ClearRefs::parse(b"  +5  "), Ok(ClearRefs::MmHiwaterRss));
    assert_eq!(ClearRefs::parse(b"0"), Err(Errno::EINVAL));
    assert_eq!(ClearRefs::parse(b"6"), Err(Errno::EINVAL));
    assert_eq!(ClearRefs::parse(b"-1"), Err(Errno::EINVAL));
    assert_eq!(ClearRefs::parse(b""), Err(Errno::EINVAL));
    assert_eq!(ClearRefs::parse(b"4 4"), Err(Errno::EINVAL));
    assert_eq!(ClearRefs::parse(b"0x4"), Err(Errno::EINVAL));
    assert_eq!(ClearRefs::parse(b"99999999999"), Err(Errno::ERANGE));
    // Only the first 12 bytes count.
    assert_eq!(ClearRefs::parse(b"000000000001xyz"), Ok(ClearRefs::All));
}
