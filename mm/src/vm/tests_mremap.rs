//! Tests of mremap (`mremap.rs`): every path of `do_mremap()` with its
//! errno rules, data kept across grows and moves, the accounting
//! invariants I1-I3 and the counters of the paths taken.

use super::*;
use crate::addr::PAGE_SIZE;
use crate::errno::Errno;
use crate::pgtable::{PMD_SIZE, TASK_SIZE};
use crate::vm::tests::{accounted_pages, peek, poke, with_mm, with_tuned_mm};
use crate::vm::{FaultAccess, FaultError, Prot, SegvCode};

const PG: u64 = PAGE_SIZE;
const RW: Prot = Prot::READ.union(Prot::WRITE);
const ANON: MapFlags = MapFlags::PRIVATE.union(MapFlags::ANONYMOUS);
const FIXED: MapFlags = ANON.union(MapFlags::FIXED);
const MAYMOVE: MremapFlags = MremapFlags::MAYMOVE;
const TO: MremapFlags = MremapFlags::MAYMOVE.union(MremapFlags::FIXED);
const DONTUNMAP: MremapFlags = MremapFlags::MAYMOVE.union(MremapFlags::DONTUNMAP);

type TestMm<'v, 'a> = Mm<'v, 'a, crate::sim::SimPlatform>;

fn ranges(mm: &TestMm<'_, '_>) -> alloc::vec::Vec<(u64, u64)> {
    mm.vmas().iter().map(|v| (v.start, v.end)).collect()
}

fn flags_at(mm: &TestMm<'_, '_>, addr: u64) -> VmFlags {
    mm.vma_lookup(addr).expect("a VMA").flags
}

/// Writes `tag + i` into page `i` of `[a, a + n pages)`.
fn fill(mm: &TestMm<'_, '_>, a: u64, n: u64, tag: u64) {
    for i in 0..n {
        poke(mm, a + i * PG + 8, tag + i).unwrap();
    }
}

fn check(mm: &TestMm<'_, '_>, a: u64, n: u64, tag: u64) {
    for i in 0..n {
        assert_eq!(peek(mm, a + i * PG + 8), Ok(tag + i), "page {i} at {a:#x}");
    }
}

fn mapped(mm: &TestMm<'_, '_>, a: u64) -> bool {
    mm.handle_fault(a, FaultAccess::Read) != Err(FaultError::Segv(SegvCode::MapErr))
}

#[test]
fn same_size_in_place_is_a_no_op_and_shrink_unmaps_the_tail() {
    with_mm(|mm| {
        let a = mm.mmap(0, 8 * PG, RW, ANON, -1, 0).unwrap();
        fill(mm, a, 8, 100);
        assert_eq!(mm.mremap(a, 8 * PG, 8 * PG, MremapFlags::empty(), 0), Ok(a));
        assert_eq!(mm.mremap_stat(MremapStat::NoResize), 1);
        assert_eq!(
            mm.mremap(a, 8 * PG, 3 * PG - 100, MremapFlags::empty(), 0),
            Ok(a)
        );
        assert_eq!(mm.mremap_stat(MremapStat::Shrink), 1);
        assert_eq!(ranges(mm), [(a, a + 3 * PG)]);
        check(mm, a, 3, 100);
        assert_eq!(mm.status().vm_rss, 12);
        assert_eq!(mm.vm.committed_pages(), 3);
        // A shrink may cross VMA boundaries in the part it unmaps.
        let b = 0x4000_0000;
        mm.mmap(b, 4 * PG, RW, FIXED, -1, 0).unwrap();
        mm.mmap(b + 4 * PG, 4 * PG, Prot::READ, FIXED, -1, 0)
            .unwrap();
        assert_eq!(mm.mremap(b, 8 * PG, PG, MremapFlags::empty(), 0), Ok(b));
        assert_eq!(ranges(mm)[0], (b, b + PG));
        assert_eq!(mm.map_count(), 2);
    });
}

#[test]
fn grow_in_place_takes_the_gap_and_merges_with_the_next_vma() {
    with_mm(|mm| {
        let b = 0x4000_0000;
        mm.mmap(b, 4 * PG, RW, FIXED, -1, 0).unwrap();
        mm.mmap(b + 8 * PG, 4 * PG, RW, FIXED, -1, 0).unwrap();
        fill(mm, b, 4, 10);
        // The next VMA is not faulted yet: no anon_vma of its own, so it
        // can merge with the grown one (two faulted VMAs with different
        // anon_vmas would stay apart, as in Linux).
        assert_eq!(mm.mremap(b, 4 * PG, 8 * PG, MremapFlags::empty(), 0), Ok(b));
        assert_eq!(mm.mremap_stat(MremapStat::ExpandInPlace), 1);
        assert_eq!(ranges(mm), [(b, b + 12 * PG)], "merged with the next VMA");
        fill(mm, b + 8 * PG, 4, 20);
        assert_eq!(mm.vm.committed_pages(), 12);
        check(mm, b, 4, 10);
        check(mm, b + 8 * PG, 4, 20);
        assert_eq!(peek(mm, b + 5 * PG), Ok(0));
        // No room after it, no MAYMOVE: ENOMEM, nothing changed.
        mm.mmap(b + 12 * PG, PG, Prot::READ, FIXED, -1, 0).unwrap();
        assert_eq!(
            mm.mremap(b, 12 * PG, 13 * PG, MremapFlags::empty(), 0),
            Err(Errno::ENOMEM)
        );
        // Growing a range that ends before the VMA's end must move.
        assert_eq!(
            mm.mremap(b, 2 * PG, 3 * PG, MremapFlags::empty(), 0),
            Err(Errno::ENOMEM)
        );
        assert_eq!(mm.map_count(), 2);
        assert_eq!(mm.vm.committed_pages(), accounted_pages(mm));
    });
}

#[test]
fn maymove_moves_the_ptes_not_the_pages_and_unmaps_the_old_range() {
    with_mm(|mm| {
        let b = 0x4000_0000;
        mm.mmap(b, 16 * PG, RW, FIXED, -1, 0).unwrap();
        mm.mmap(b + 16 * PG, PG, Prot::READ, FIXED, -1, 0).unwrap();
        fill(mm, b, 12, 1000);
        assert_eq!(peek(mm, b + 13 * PG), Ok(0)); // a zero-page PTE
        let pfn = mm.page_table().get_pte(b + 3 * PG).unwrap().pfn();
        let flushes = mm.vm.pa.platform().0.tlb_flushes().len();
        let n = mm.mremap(b, 16 * PG, 32 * PG, MAYMOVE, 0).unwrap();
        assert_ne!(n, b);
        assert_eq!(mm.mremap_stat(MremapStat::Move), 1);
        assert_eq!(mm.mremap_stat(MremapStat::PtesMoved), 13);
        assert!(!mapped(mm, b));
        assert_eq!(mm.vma_lookup(n).unwrap().end, n + 32 * PG);
        // The same frame, now at the new address: moved, not copied.
        let e = mm.page_table().get_pte(n + 3 * PG).unwrap();
        assert_eq!(e.pfn(), pfn);
        assert!(e.is_writable());
        assert_eq!(mm.vm.pa.memmap().page(pfn).mapcount(), 1);
        assert_eq!(mm.status().vm_rss, 48);
        check(mm, n, 12, 1000);
        assert_eq!(peek(mm, n + 20 * PG), Ok(0));
        // The old translations were flushed.
        let log = mm.vm.pa.platform().0.tlb_flushes();
        assert!(log[flushes..].iter().any(|f| match f.range {
            None => true,
            Some((s, e)) => s <= b + 3 * PG && b + 3 * PG < e,
        }));
        assert_eq!(mm.vm.committed_pages(), 32);
        assert_eq!(mm.vm.committed_pages(), accounted_pages(mm));
    });
}

#[test]
fn fixed_unmaps_the_destination_and_can_shrink_on_the_way() {
    with_mm(|mm| {
        let (a, d) = (0x4000_0000, 0x5000_0000);
        mm.mmap(a, 8 * PG, RW, FIXED, -1, 0).unwrap();
        mm.mmap(d, 8 * PG, RW, FIXED, -1, 0).unwrap();
        fill(mm, a, 8, 1);
        fill(mm, d, 8, 500);
        assert_eq!(mm.mremap(a, 4 * PG, 4 * PG, TO, d + 2 * PG), Ok(d + 2 * PG));
        // A faulted VMA keeps its page offset when it moves
        // (copy_vma()), so it does not merge with what is left of the
        // destination, whose offsets differ.
        assert_eq!(
            ranges(mm),
            [
                (a + 4 * PG, a + 8 * PG),
                (d, d + 2 * PG),
                (d + 2 * PG, d + 6 * PG),
                (d + 6 * PG, d + 8 * PG)
            ],
        );
        assert_eq!(mm.vma_lookup(d + 2 * PG).unwrap().pgoff, a / PG);
        check(mm, d + 2 * PG, 4, 1);
        assert_eq!(peek(mm, d + PG + 8), Ok(501));
        assert_eq!(peek(mm, d + 6 * PG + 8), Ok(506));
        assert_eq!(mm.status().vm_rss, 12 * 4);
        // Shrink and move: [a + 4, a + 8) → 2 pages at 0x6000_0000.
        let t = 0x6000_0000;
        assert_eq!(mm.mremap(a + 4 * PG, 4 * PG, 2 * PG, TO, t), Ok(t));
        assert!(!mapped(mm, a + 4 * PG));
        check(mm, t, 2, 5);
        assert_eq!(mm.vma_lookup(t).unwrap().end, t + 2 * PG);
        assert_eq!(mm.vm.committed_pages(), 10);
        assert_eq!(mm.vm.committed_pages(), accounted_pages(mm));
    });
}

#[test]
fn a_move_next_to_its_own_vma_merges_back_into_it() {
    with_mm(|mm| {
        let s = 0x4000_0000;
        mm.mmap(s, 8 * PG, RW, FIXED, -1, 0).unwrap();
        // Not faulted: the moved head takes the offset of its new place
        // and joins the rest (copy_vma() for a VMA without anon_vma).
        assert_eq!(mm.mremap(s, 2 * PG, 2 * PG, TO, s + 8 * PG), Ok(s + 8 * PG));
        assert_eq!(ranges(mm), [(s + 2 * PG, s + 10 * PG)]);
        assert!(flags_at(mm, s + 2 * PG).contains(VmFlags::ACCOUNT));
        fill(mm, s + 2 * PG, 8, 40);
        // Faulted now: a moved piece keeps its offset and stays apart
        // from the pieces around its new place.
        mm.munmap(s + 5 * PG, 2 * PG).unwrap();
        assert_eq!(
            mm.mremap(s + 2 * PG, 2 * PG, 2 * PG, TO, s + 5 * PG),
            Ok(s + 5 * PG)
        );
        assert_eq!(
            ranges(mm),
            [
                (s + 4 * PG, s + 5 * PG),
                (s + 5 * PG, s + 7 * PG),
                (s + 7 * PG, s + 10 * PG)
            ]
        );
        check(mm, s + 5 * PG, 2, 40);
        assert_eq!(mm.vm.committed_pages(), 6);
    });
}

#[test]
fn ptes_move_across_table_boundaries_and_within_one_table() {
    with_mm(|mm| {
        // 8 pages straddling a 2 MiB boundary, to an address with a
        // different offset in its table, then within one table.
        let a = 0x4000_0000 + PMD_SIZE - 3 * PG;
        mm.mmap(a, 8 * PG, RW, FIXED, -1, 0).unwrap();
        fill(mm, a, 8, 70);
        let t = 0x6000_0000 + PMD_SIZE - 5 * PG;
        assert_eq!(mm.mremap(a, 8 * PG, 8 * PG, TO, t), Ok(t));
        check(mm, t, 8, 70);
        let u = 0x6000_0000 + PMD_SIZE + 64 * PG;
        assert_eq!(mm.mremap(t + 5 * PG, 3 * PG, 3 * PG, TO, u), Ok(u));
        check(mm, u, 3, 75);
        check(mm, t, 5, 70);
        assert_eq!(mm.status().vm_rss, 32);
    });
}

#[test]
fn dontunmap_leaves_the_old_vma_empty_and_both_charged() {
    with_mm(|mm| {
        let a = mm.mmap(0, 4 * PG, RW, ANON, -1, 0).unwrap();
        fill(mm, a, 4, 9);
        let n = mm.mremap(a, 4 * PG, 4 * PG, DONTUNMAP, 0).unwrap();
        assert_ne!(n, a);
        assert_eq!(mm.mremap_stat(MremapStat::DontUnmap), 1);
        check(mm, n, 4, 9);
        assert!(mm.vma_lookup(a).is_some(), "the old VMA stays");
        assert_eq!(peek(mm, a + 8), Ok(0), "emptied: fresh zero memory");
        assert_eq!(mm.status().vm_rss, 16);
        assert!(flags_at(mm, a).contains(VmFlags::ACCOUNT));
        assert_eq!(mm.vm.committed_pages(), 8);
        // Locked: the old VMA is not locked any more. (Moved away
        // from it: an unfaulted anonymous VMA would merge with a new
        // VMA next to it, and the merged VMA lose VM_LOCKED, as in
        // Linux.)
        let l = mm
            .mmap(0, 2 * PG, RW, ANON | MapFlags::LOCKED, -1, 0)
            .unwrap();
        let to = DONTUNMAP | MremapFlags::FIXED;
        let m = mm.mremap(l, 2 * PG, 2 * PG, to, 0x5000_0000).unwrap();
        assert_eq!(m, 0x5000_0000);
        assert_eq!(mm.status().vm_rss, 24, "the locked pages moved");
        assert!(!flags_at(mm, l).contains(VmFlags::LOCKED));
        assert!(flags_at(mm, m).contains(VmFlags::LOCKED));
        assert_eq!(mm.vm.committed_pages(), accounted_pages(mm));
    });
}

#[test]
fn growing_a_locked_mapping_populates_the_new_part() {
    with_mm(|mm| {
        let b = 0x4000_0000;
        mm.mmap(b, 2 * PG, RW, FIXED | MapFlags::LOCKED, -1, 0)
            .unwrap();
        assert_eq!(mm.status().vm_rss, 8);
        assert_eq!(mm.mremap(b, 2 * PG, 4 * PG, MremapFlags::empty(), 0), Ok(b));
        assert_eq!(mm.status().vm_rss, 16);
        mm.mmap(b + 4 * PG, PG, Prot::READ, FIXED, -1, 0).unwrap();
        let n = mm.mremap(b, 4 * PG, 6 * PG, MAYMOVE, 0).unwrap();
        assert_ne!(n, b);
        assert_eq!(mm.status().vm_rss, 24);
    });
}

/// The 6.15 fix "mm/mremap: correctly handle partial mremap() of VMA
/// starting at 0": moving the middle of an accountable VMA that starts
/// at address 0 leaves `VM_ACCOUNT` on both pieces.
#[test]
fn partial_move_of_a_vma_at_address_zero_keeps_account_on_both_pieces() {
    with_tuned_mm(
        |vm| vm.mmap_min_addr = 0,
        |mm| {
            assert_eq!(mm.mmap(0, 8 * PG, RW, FIXED, -1, 0), Ok(0));
            fill(mm, 0, 8, 300);
            assert!(flags_at(mm, 0).contains(VmFlags::ACCOUNT));
            // Growing a range that ends before the VMA's end: moved.
            let n = mm.mremap(2 * PG, 2 * PG, 3 * PG, MAYMOVE, 0).unwrap();
            assert_ne!(n, 2 * PG);
            let v = mm.vmas();
            assert_eq!(v.len(), 3);
            assert_eq!((v[0].start, v[0].end), (0, 2 * PG));
            for w in &v {
                assert!(w.flags.contains(VmFlags::ACCOUNT), "{w:?} lost VM_ACCOUNT");
            }
            assert_eq!(mm.vm.committed_pages(), 9, "8 pages and the growth");
            assert_eq!(mm.vm.committed_pages(), accounted_pages(mm));
            check(mm, 0, 2, 300);
            check(mm, n, 2, 302);
            assert_eq!(peek(mm, n + 2 * PG), Ok(0));
            check(mm, 4 * PG, 4, 304);
            // Unmapping everything gives the whole charge back.
            mm.munmap(0, 8 * PG).unwrap();
            mm.munmap(n, 3 * PG).unwrap();
            assert_eq!(mm.vm.committed_pages(), 0);
        },
    );
}

#[test]
fn bad_arguments_get_linux_errnos() {
    with_tuned_mm(
        |vm| vm.max_map_count = 8,
        |mm| {
            let b = 0x4000_0000;
            mm.mmap(b, 4 * PG, RW, FIXED, -1, 0).unwrap();
            mm.mmap(b + 4 * PG, 4 * PG, Prot::READ, FIXED, -1, 0)
                .unwrap();
            let r = |a, o, n, f, t| mm.mremap(a, o, n, f, t);
            let bad = MremapFlags::from_bits_retain(8);
            // EINVAL
            assert_eq!(r(b, PG, PG, bad, 0), Err(Errno::EINVAL));
            assert_eq!(r(b + 1, PG, PG, MAYMOVE, 0), Err(Errno::EINVAL));
            assert_eq!(r(b, PG, 0, MAYMOVE, 0), Err(Errno::EINVAL));
            assert_eq!(r(b, PG, u64::MAX, MAYMOVE, 0), Err(Errno::EINVAL));
            assert_eq!(r(b, PG, TASK_SIZE + PG, MAYMOVE, 0), Err(Errno::EINVAL));
            assert_eq!(r(b, PG, PG, MAYMOVE, TASK_SIZE), Err(Errno::EINVAL));
            let fixed_only = MremapFlags::FIXED;
            assert_eq!(r(b, PG, PG, fixed_only, 0x5000_0000), Err(Errno::EINVAL));
            let dontunmap_only = MremapFlags::DONTUNMAP;
            assert_eq!(r(b, PG, PG, dontunmap_only, 0), Err(Errno::EINVAL));
            assert_eq!(r(b, PG, PG, TO, 0x5000_0001), Err(Errno::EINVAL));
            assert_eq!(
                r(b, 2 * PG, 2 * PG, TO, b + PG),
                Err(Errno::EINVAL),
                "overlap"
            );
            assert_eq!(r(b, PG, 2 * PG, DONTUNMAP, 0), Err(Errno::EINVAL));
            assert_eq!(r(b, 0, PG, MAYMOVE, 0), Err(Errno::EINVAL), "old_len 0");
            // EFAULT
            assert_eq!(r(0x7000_0000, PG, PG, MAYMOVE, 0), Err(Errno::EFAULT));
            assert_eq!(
                r(b + 2 * PG, 4 * PG, 8 * PG, MAYMOVE, 0),
                Err(Errno::EFAULT)
            );
            assert_eq!(r(b, 8 * PG, 8 * PG, TO, 0x5000_0000), Err(Errno::EFAULT));
            // ENOMEM: no room and no MAYMOVE.
            assert_eq!(
                r(b, 4 * PG, 5 * PG, MremapFlags::empty(), 0),
                Err(Errno::ENOMEM)
            );
            // EPERM: below mmap_min_addr.
            assert_eq!(r(b, PG, PG, TO, PG), Err(Errno::EPERM));
            // ENOMEM: too close to the map count limit for a move.
            for i in 0..3 {
                mm.mmap(0x5000_0000 + 2 * i * PG, PG, RW, FIXED, -1, 0)
                    .unwrap();
            }
            assert_eq!(mm.map_count(), 5);
            assert_eq!(r(b, PG, PG, TO, 0x6000_0000), Err(Errno::ENOMEM));
            assert_eq!(r(b, 4 * PG, 8 * PG, MAYMOVE, 0), Err(Errno::ENOMEM));
            assert_eq!(ranges(mm)[..2], [(b, b + 4 * PG), (b + 4 * PG, b + 8 * PG)]);
            assert_eq!(mm.vm.committed_pages(), accounted_pages(mm));
        },
    );
}
