//! Host tests of address spaces: the syscalls' semantics and errno rules,
//! faults, merging and splitting, and frame accounting.

use alloc::vec::Vec;
use core::sync::atomic::Ordering::SeqCst;

use super::*;
use crate::errno::Errno;
use crate::pgtable::{PteFlags, TASK_SIZE};
use crate::sim::{self, SimPlatform};

pub(super) type TestMm<'v, 'a> = Mm<'v, 'a, SimPlatform>;

const RW: Prot = Prot::READ.union(Prot::WRITE);
const ANON: MapFlags = MapFlags::PRIVATE.union(MapFlags::ANONYMOUS);
const PG: u64 = PAGE_SIZE;

/// Runs `f` on a fresh address space, then tears it down and checks that
/// every frame came back to the page allocator.
pub(crate) fn with_mm<R>(f: impl FnOnce(&TestMm<'_, '_>) -> R) -> R {
    with_tuned_mm(|_| {}, f)
}

/// [`with_mm`] with the shared state's tunables (`mmap_min_addr`,
/// `max_map_count`) set by `tune` first. Also checks that the address
/// space's commit charge is returned when it is torn down.
pub(crate) fn with_tuned_mm<R>(
    tune: impl FnOnce(&mut Vm<'_, SimPlatform>),
    f: impl FnOnce(&TestMm<'_, '_>) -> R,
) -> R {
    // Miri interprets every frame's set-up: a smaller machine there.
    with_machine(1, if cfg!(miri) { 1024 } else { 8192 }, tune, f)
}

/// [`with_mm`] on a machine of `cpus` CPUs and `pages` frames; threads
/// standing for CPUs other than 0 must be offline (`Rcu::cpu_offline`)
/// when `f` returns.
pub(crate) fn with_mm_on<R>(cpus: usize, pages: usize, f: impl FnOnce(&TestMm<'_, '_>) -> R) -> R {
    with_machine(cpus, pages, |_| {}, f)
}

fn with_machine<R>(
    cpus: usize,
    pages: usize,
    tune: impl FnOnce(&mut Vm<'_, SimPlatform>),
    f: impl FnOnce(&TestMm<'_, '_>) -> R,
) -> R {
    with_vm(cpus, pages, |vm, settle| {
        tune(vm);
        let before = settle();
        let r = {
            let mm = Mm::new(vm).unwrap();
            let r = f(&mm);
            if let Err(e) = mm.validate() {
                panic!("invalid address space at the end: {e}");
            }
            assert_eq!(
                vm.committed_pages(),
                accounted_pages(&mm),
                "commit charge differs from the VM_ACCOUNT mappings"
            );
            r
        };
        assert_eq!(vm.committed_pages(), 0, "commit charge left after exit");
        assert_eq!(vm.nr_file_mapped(), 0, "NR_FILE_MAPPED left after exit");
        assert_eq!(settle(), before, "frames leaked by the address space");
        r
    })
}

/// Runs `f` with the shared state of a fresh machine of `cpus` CPUs and
/// `pages` frames, and a function that lets RCU, the node cache and the
/// per-CPU lists settle and returns the free frames.
fn with_vm<R>(
    cpus: usize,
    pages: usize,
    f: impl FnOnce(&mut Vm<'_, SimPlatform>, &dyn Fn() -> u64) -> R,
) -> R {
    sim::set_cpu(0);
    let pa = sim::machine(pages, cpus);
    let rcu = crate::rcu::Rcu::new(pa.platform().clone());
    let cache = crate::maple::node_cache(&pa, &rcu).unwrap();
    let mut vm = Vm::new(&pa, &rcu, &cache).unwrap();
    // kvfree_rcu_barrier, not just rcu_barrier: retired VMAs wait in
    // kvfree_rcu batches, which rcu_barrier does not flush (as in Linux);
    // without it they leaked when the machine was dropped (Miri's leak
    // check reported them).
    let settle = || {
        cache.flush_rcu_sheaf();
        rcu.kvfree_rcu_barrier();
        cache.shrink();
        pa.drain_all_pages();
        pa.nr_free_pages()
    };
    f(&mut vm, &settle)
}

/// Pages of the address space's `VM_ACCOUNT` mappings: what it should
/// have committed.
pub(crate) fn accounted_pages(mm: &TestMm<'_, '_>) -> u64 {
    mm.vmas()
        .iter()
        .filter(|v| v.flags.contains(VmFlags::ACCOUNT))
        .map(|v| v.pages())
        .sum()
}

/// Reads a user word the way the CPU would: fault first if needed.
pub(crate) fn peek(mm: &TestMm<'_, '_>, addr: u64) -> Result<u64, FaultError> {
    let pte = mm
        .page_table()
        .get_pte(addr)
        .filter(|e| e.flags().contains(PteFlags::PRESENT));
    if pte.is_none() {
        mm.handle_fault(addr, FaultAccess::Read)?;
    }
    let e = mm.page_table().get_pte(addr).unwrap();
    Ok(user_word(mm, e, addr).load(SeqCst))
}

/// The word at `addr` in the frame `e` maps, in simulated RAM.
pub(crate) fn user_word<'m>(
    mm: &'m TestMm<'_, '_>,
    e: crate::pgtable::Entry,
    addr: u64,
) -> &'m core::sync::atomic::AtomicU64 {
    let pa = crate::addr::PhysAddr::new(e.pfn().phys_addr().as_u64() + addr % PG);
    mm.vm.pa.platform().0.ram_word(pa)
}

/// Writes a user word the way the CPU would.
pub(crate) fn poke(mm: &TestMm<'_, '_>, addr: u64, val: u64) -> Result<(), FaultError> {
    let pte = mm.page_table().get_pte(addr);
    if !pte.is_some_and(|e| e.flags().contains(PteFlags::PRESENT | PteFlags::WRITE)) {
        mm.handle_fault(addr, FaultAccess::Write)?;
    }
    let e = mm.page_table().get_pte(addr).unwrap();
    assert!(e.is_writable());
    user_word(mm, e, addr).store(val, SeqCst);
    Ok(())
}

fn ranges(mm: &TestMm<'_, '_>) -> Vec<(u64, u64)> {
    mm.vmas().iter().map(|v| (v.start, v.end)).collect()
}

#[test]
fn first_touch_reads_zero_page_then_write_gets_a_private_page() {
    with_mm(|mm| {
        let a = mm.mmap(0, 4 * PG, RW, ANON, -1, 0).unwrap();
        assert_eq!(a % PG, 0);
        assert_eq!(mm.status().vm_size, 16);
        assert_eq!(mm.status().vm_data, 16);
        assert_eq!(peek(mm, a).unwrap(), 0);
        let zero = mm.page_table().get_pte(a).unwrap();
        assert_eq!(zero.pfn(), mm.vm.zero_page());
        assert!(!zero.is_writable());
        assert_eq!(mm.status().vm_rss, 0, "the zero page is not RSS");
        poke(mm, a + 8, 0xfeed).unwrap();
        assert_ne!(mm.page_table().get_pte(a).unwrap().pfn(), mm.vm.zero_page());
        assert_eq!(peek(mm, a + 8).unwrap(), 0xfeed);
        assert_eq!(peek(mm, a).unwrap(), 0);
        poke(mm, a + 3 * PG, 1).unwrap();
        assert_eq!(mm.status().vm_rss, 8);
        assert!(mm.status().vm_pte >= 12);
        mm.validate().unwrap();
        mm.munmap(a, 4 * PG).unwrap();
        assert_eq!(mm.status().vm_rss, 0);
        assert_eq!(mm.status().vm_size, 0);
        assert_eq!(
            mm.status().vm_pte,
            0,
            "the gap spans every table: all freed"
        );
    });
}

#[test]
fn faults_outside_vmas_or_against_permissions_are_segv() {
    with_mm(|mm| {
        assert_eq!(
            mm.handle_fault(0x40_0000, FaultAccess::Read),
            Err(FaultError::Segv(SegvCode::MapErr))
        );
        let a = mm.mmap(0, PG, Prot::READ, ANON, -1, 0).unwrap();
        assert_eq!(peek(mm, a), Ok(0));
        assert_eq!(poke(mm, a, 1), Err(FaultError::Segv(SegvCode::AccErr)));
        assert_eq!(
            mm.handle_fault(a, FaultAccess::Exec),
            Err(FaultError::Segv(SegvCode::AccErr))
        );
        let n = mm.mmap(0, PG, Prot::empty(), ANON, -1, 0).unwrap();
        assert_eq!(peek(mm, n), Err(FaultError::Segv(SegvCode::AccErr)));
    });
}

#[test]
fn adjacent_compatible_mappings_merge_and_munmap_splits() {
    with_mm(|mm| {
        let base = 0x1000_0000;
        let fixed = ANON | MapFlags::FIXED;
        mm.mmap(base, 4 * PG, RW, fixed, -1, 0).unwrap();
        mm.mmap(base + 4 * PG, 4 * PG, RW, fixed, -1, 0).unwrap();
        assert_eq!(ranges(mm), [(base, base + 8 * PG)]);
        mm.mmap(base + 8 * PG, 4 * PG, Prot::READ, fixed, -1, 0)
            .unwrap();
        assert_eq!(mm.map_count(), 2, "different protection: no merge");
        poke(mm, base + 2 * PG, 7).unwrap();
        poke(mm, base + 5 * PG, 8).unwrap();
        mm.munmap(base + 3 * PG, 2 * PG).unwrap();
        assert_eq!(
            ranges(mm),
            [
                (base, base + 3 * PG),
                (base + 5 * PG, base + 8 * PG),
                (base + 8 * PG, base + 12 * PG)
            ]
        );
        assert_eq!(peek(mm, base + 2 * PG), Ok(7));
        assert_eq!(peek(mm, base + 5 * PG), Ok(8));
        assert_eq!(
            mm.handle_fault(base + 3 * PG, FaultAccess::Read),
            Err(FaultError::Segv(SegvCode::MapErr))
        );
        // Unmapping nothing succeeds.
        mm.munmap(0x7000_0000, PG).unwrap();
        // Mapping the hole again with the same protection merges all.
        mm.mmap(base + 3 * PG, 2 * PG, RW, fixed, -1, 0).unwrap();
        assert_eq!(
            ranges(mm),
            [(base, base + 8 * PG), (base + 8 * PG, base + 12 * PG)]
        );
    });
}

#[test]
fn map_fixed_replaces_and_noreplace_refuses_an_occupied_range() {
    with_mm(|mm| {
        let base = 0x2000_0000;
        mm.mmap(base, 4 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        poke(mm, base + PG, 5).unwrap();
        assert_eq!(
            mm.mmap(
                base + 2 * PG,
                4 * PG,
                RW,
                ANON | MapFlags::FIXED_NOREPLACE,
                -1,
                0
            ),
            Err(Errno::EEXIST)
        );
        assert_eq!(
            mm.mmap(
                base + 4 * PG,
                4 * PG,
                RW,
                ANON | MapFlags::FIXED_NOREPLACE,
                -1,
                0
            ),
            Ok(base + 4 * PG)
        );
        // MAP_FIXED over the written page: new zero-filled memory.
        mm.mmap(base, 2 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        assert_eq!(peek(mm, base + PG), Ok(0));
        assert_eq!(mm.status().vm_rss, 0);
    });
}

#[test]
fn top_down_placement_honours_hints_and_stack_guard_gaps() {
    with_mm(|mm| {
        let a = mm.mmap(0, PG, RW, ANON, -1, 0).unwrap();
        let b = mm.mmap(0, PG, RW, ANON, -1, 0).unwrap();
        assert!(b < a, "top-down: the second mapping goes below the first");
        assert!(a < TASK_SIZE - (128 << 20) + PG);
        let hint = 0x5000_0000;
        assert_eq!(mm.mmap(hint, PG, RW, ANON, -1, 0), Ok(hint));
        // An occupied hint is ignored, not an error.
        let c = mm.mmap(hint, PG, RW, ANON, -1, 0).unwrap();
        assert_ne!(c, hint);
        // A stack keeps STACK_GUARD_GAP free below it.
        let stack = 0x6000_0000;
        mm.mmap(
            stack,
            16 * PG,
            RW,
            ANON | MapFlags::FIXED | MapFlags::GROWSDOWN,
            -1,
            0,
        )
        .unwrap();
        assert_eq!(mm.status().vm_stk, 64);
        let d = mm.mmap(stack - PG, PG, RW, ANON, -1, 0).unwrap();
        assert_ne!(d, stack - PG, "the hint intrudes on the guard gap");
    });
}

#[test]
fn a_fault_below_a_stack_grows_it_within_the_guard_gap_and_rlimit() {
    with_mm(|mm| {
        let top = 0x7000_0000;
        let stack = top - 4 * PG;
        let flags = ANON | MapFlags::FIXED | MapFlags::GROWSDOWN;
        mm.mmap(stack, 4 * PG, RW, flags, -1, 0).unwrap();
        // A fault 64 KiB below the stack's start grows it to there.
        let below = stack - 16 * PG + 8;
        assert_eq!(mm.handle_fault(below, FaultAccess::Write), Ok(()));
        let v = mm.vma_lookup(below).expect("the stack covers the address");
        assert_eq!((v.start, v.end), (stack - 16 * PG, top));
        assert_eq!(mm.status().vm_stk, 20 * 4);
        assert_eq!(mm.map_count(), 1);
        assert_eq!(mm.vm.event(VmEvent::StackGrow), 1);
        poke(mm, below, 7).unwrap();
        // Not past RLIMIT_STACK (8 MiB).
        let far = top - STACK_RLIMIT - PG;
        assert_eq!(
            mm.handle_fault(far, FaultAccess::Write),
            Err(FaultError::Segv(SegvCode::MapErr))
        );
        // Not within stack_guard_gap of the mapping below.
        let low = v.start - STACK_GUARD_GAP - 4 * PG;
        mm.mmap(low, PG, RW, ANON | MapFlags::FIXED, -1, 0).unwrap();
        assert_eq!(
            mm.handle_fault(low + PG + 3 * PG, FaultAccess::Read),
            Err(FaultError::Segv(SegvCode::MapErr))
        );
        // A plain mapping does not grow.
        assert_eq!(
            mm.handle_fault(low - PG, FaultAccess::Read),
            Err(FaultError::Segv(SegvCode::MapErr))
        );
        mm.validate().unwrap();
    });
}

#[test]
fn mprotect_splits_then_merges_back_and_drops_write_permission() {
    with_mm(|mm| {
        let base = 0x3000_0000;
        mm.mmap(base, 8 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        for i in 0..8 {
            poke(mm, base + i * PG, i).unwrap();
        }
        mm.mprotect(base + 2 * PG, 2 * PG, Prot::READ).unwrap();
        assert_eq!(mm.map_count(), 3);
        assert!(
            !mm.page_table()
                .get_pte(base + 2 * PG)
                .unwrap()
                .is_writable()
        );
        assert_eq!(
            poke(mm, base + 2 * PG, 9),
            Err(FaultError::Segv(SegvCode::AccErr))
        );
        assert_eq!(peek(mm, base + 3 * PG), Ok(3));
        let flushes = mm.vm.pa.platform().0.nr_tlb_flushes();
        mm.mprotect(base + 2 * PG, 2 * PG, RW).unwrap();
        assert_eq!(mm.map_count(), 1, "merged back");
        assert_eq!(
            mm.vm.pa.platform().0.nr_tlb_flushes(),
            flushes,
            "adding rights needs no flush"
        );
        // The page is ours alone: the write fault reuses it.
        let pfn = mm.page_table().get_pte(base + 2 * PG).unwrap().pfn();
        poke(mm, base + 2 * PG, 20).unwrap();
        assert_eq!(mm.page_table().get_pte(base + 2 * PG).unwrap().pfn(), pfn);
        // PROT_NONE keeps the pages, inaccessible; restoring brings them back.
        mm.mprotect(base, 8 * PG, Prot::empty()).unwrap();
        assert_eq!(
            peek(mm, base + 5 * PG),
            Err(FaultError::Segv(SegvCode::AccErr))
        );
        assert_eq!(mm.status().vm_rss, 32);
        mm.mprotect(base, 8 * PG, Prot::READ).unwrap();
        assert_eq!(peek(mm, base + 5 * PG), Ok(5));
        mm.validate().unwrap();
    });
}

#[test]
fn mprotect_stops_at_a_hole_with_enomem_after_changing_what_came_before() {
    with_mm(|mm| {
        let base = 0x3000_0000;
        mm.mmap(base, 2 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        mm.mmap(base + 3 * PG, 2 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        assert_eq!(mm.mprotect(base, 5 * PG, Prot::READ), Err(Errno::ENOMEM));
        let v = mm.vmas();
        assert!(!v[0].flags.contains(VmFlags::WRITE));
        assert!(v[1].flags.contains(VmFlags::WRITE));
        assert_eq!(mm.mprotect(base - PG, PG, Prot::READ), Err(Errno::ENOMEM));
    });
}

#[test]
fn madvise_dontneed_frees_pages_and_later_reads_see_zeroes() {
    with_mm(|mm| {
        let a = mm.mmap(0, 16 * PG, RW, ANON, -1, 0).unwrap();
        for i in 0..16 {
            poke(mm, a + i * PG, 100 + i).unwrap();
        }
        assert_eq!(mm.status().vm_rss, 64);
        mm.madvise(a + 4 * PG, 4 * PG, 4).unwrap();
        assert_eq!(mm.status().vm_rss, 48);
        assert_eq!(peek(mm, a + 5 * PG), Ok(0));
        assert_eq!(peek(mm, a + 9 * PG), Ok(109));
        assert_eq!(mm.map_count(), 1, "DONTNEED does not split");
        // Advice on a range with a hole: applied, then ENOMEM.
        assert_eq!(mm.madvise(a + 8 * PG, 32 * PG, 4), Err(Errno::ENOMEM));
        assert_eq!(peek(mm, a + 9 * PG), Ok(0));
        mm.madvise(a, 16 * PG, 2).unwrap();
        assert!(mm.vmas()[0].flags.contains(VmFlags::SEQ_READ));
        mm.madvise(a, 16 * PG, 0).unwrap();
        assert!(!mm.vmas()[0].flags.contains(VmFlags::SEQ_READ));
        mm.madvise(a, 16 * PG, 3).unwrap();
        mm.madvise(a, 16 * PG, 8).unwrap();
        assert_eq!(mm.madvise(a, PG, 99), Err(Errno::EINVAL));
        assert_eq!(mm.madvise(a + 1, PG, 4), Err(Errno::EINVAL));
        assert_eq!(mm.madvise(a, 0, 4), Ok(()));
    });
}

#[test]
fn brk_grows_and_shrinks_the_heap() {
    with_mm(|mm| {
        let start = 0x60_0000;
        mm.set_brk_start(start);
        assert_eq!(mm.brk(0), start, "a query returns the current break");
        assert_eq!(mm.brk(start + 10_000), start + 10_000);
        poke(mm, start + 8192, 3).unwrap();
        assert_eq!(mm.status().vm_data, 12);
        assert_eq!(mm.brk(start + 40_000), start + 40_000);
        assert_eq!(mm.map_count(), 1, "growth merges into the heap VMA");
        assert_eq!(mm.brk(start + 100), start + 100);
        assert_eq!(
            mm.handle_fault(start + 8192, FaultAccess::Read),
            Err(FaultError::Segv(SegvCode::MapErr))
        );
        assert_eq!(mm.brk(start - PG), start + 100, "below the start: refused");
        // Growing into a mapping is refused.
        mm.mmap(start + 16 * PG, PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        assert_eq!(mm.brk(start + 20 * PG), start + 100);
    });
}

#[test]
fn bad_arguments_get_linux_errnos() {
    with_mm(|mm| {
        let e = |r: Result<u64, Errno>| r.unwrap_err();
        assert_eq!(e(mm.mmap(0, 0, RW, ANON, -1, 0)), Errno::EINVAL);
        assert_eq!(e(mm.mmap(0, PG, RW, ANON, -1, 1)), Errno::EINVAL);
        assert_eq!(
            e(mm.mmap(0, PG, RW, MapFlags::ANONYMOUS, -1, 0)),
            Errno::EINVAL
        );
        assert_eq!(
            e(mm.mmap(0x1001, PG, RW, ANON | MapFlags::FIXED, -1, 0)),
            Errno::EINVAL
        );
        assert_eq!(e(mm.mmap(0, u64::MAX - 10, RW, ANON, -1, 0)), Errno::ENOMEM);
        assert_eq!(e(mm.mmap(0, 1 << 48, RW, ANON, -1, 0)), Errno::ENOMEM);
        assert_eq!(
            e(mm.mmap(TASK_SIZE - PG, 2 * PG, RW, ANON | MapFlags::FIXED, -1, 0)),
            Errno::ENOMEM
        );
        assert_eq!(
            e(mm.mmap(0, PG, RW, MapFlags::PRIVATE, -1, 0)),
            Errno::EBADF
        );
        assert_eq!(
            e(mm.mmap(0, PG, RW, MapFlags::PRIVATE, 3, 0)),
            Errno::ENODEV
        );
        assert_eq!(
            e(mm.mmap(
                0,
                PG,
                RW,
                MapFlags::SHARED_VALIDATE
                    | MapFlags::ANONYMOUS
                    | MapFlags::from_bits_retain(1 << 40),
                -1,
                0
            )),
            Errno::EOPNOTSUPP
        );
        // A huge page-aligned offset is fine: pgoff + pages cannot wrap
        // with 64-bit offsets, so EOVERFLOW is unreachable here.
        assert!(mm.mmap(0, PG, RW, ANON, -1, !(PG - 1)).is_ok());
        assert_eq!(
            e(mm.mmap(0x1000, PG, RW, ANON | MapFlags::FIXED, -1, 0)),
            Errno::EPERM
        );
        assert_eq!(mm.munmap(0x1001, PG), Err(Errno::EINVAL));
        assert_eq!(mm.munmap(0x1000, 0), Err(Errno::EINVAL));
        assert_eq!(mm.munmap(TASK_SIZE, PG), Err(Errno::EINVAL));
        assert_eq!(mm.munmap(0x1000, u64::MAX), Err(Errno::EINVAL));
        assert_eq!(mm.mprotect(0x1001, PG, RW), Err(Errno::EINVAL));
        assert_eq!(
            mm.mprotect(0x1000, PG, Prot::from_bits_retain(0x8)),
            Err(Errno::EINVAL)
        );
        assert_eq!(mm.mprotect(0x1000, PG, RW), Err(Errno::ENOMEM));
        assert_eq!(mm.mprotect(0x1000, 0, RW), Ok(()));
        let a = mm.mmap(0, PG, RW, ANON, -1, 0).unwrap();
        assert_eq!(
            mm.mprotect(a, PG, Prot::READ | Prot::GROWSDOWN),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            mm.mprotect(a, PG, Prot::READ | Prot::GROWSUP),
            Err(Errno::EINVAL)
        );
        assert_eq!(mm.map_count(), 1);
    });
}

#[test]
fn map_populate_faults_everything_in() {
    with_mm(|mm| {
        let a = mm
            .mmap(0, 8 * PG, RW, ANON | MapFlags::POPULATE, -1, 0)
            .unwrap();
        assert_eq!(mm.status().vm_rss, 32);
        let r = mm
            .mmap(0, 8 * PG, Prot::READ, ANON | MapFlags::POPULATE, -1, 0)
            .unwrap();
        assert_eq!(
            mm.status().vm_rss,
            32,
            "read-only populate maps the zero page"
        );
        assert_eq!(
            mm.page_table().get_pte(r + PG).unwrap().pfn(),
            mm.vm.zero_page()
        );
        mm.munmap(a, 8 * PG).unwrap();
    });
}

#[test]
fn mm_ids_are_small_unique_and_reused() {
    with_vm(1, 2048, |vm, settle| {
        let a = Mm::new(vm).unwrap();
        let b = Mm::new(vm).unwrap();
        assert_eq!((a.id(), b.id()), (1, 2));
        let many: Vec<_> = (0..70).map(|_| Mm::new(vm).unwrap()).collect();
        assert_eq!(many.last().unwrap().id(), 72);
        drop(a);
        assert_eq!(Mm::new(vm).unwrap().id(), 1, "the lowest free id is reused");
        drop(many);
        drop(b);
        settle();
    });
}

#[test]
fn private_writable_memory_is_committed_until_unmapped() {
    with_mm(|mm| {
        let vm = mm.vm;
        let a = mm.mmap(0, 8 * PG, RW, ANON, -1, 0).unwrap();
        assert_eq!(vm.committed_pages(), 8);
        mm.mmap(0, 8 * PG, Prot::READ, ANON, -1, 0).unwrap();
        mm.mmap(0, 8 * PG, RW, ANON | MapFlags::NORESERVE, -1, 0)
            .unwrap();
        mm.mmap(0, 8 * PG, RW, MapFlags::SHARED | MapFlags::ANONYMOUS, -1, 0)
            .unwrap();
        assert_eq!(
            vm.committed_pages(),
            8,
            "read-only, NORESERVE, shared: not charged"
        );
        // Splitting and merging do not change the charge.
        mm.mprotect(a + 2 * PG, 2 * PG, Prot::READ).unwrap();
        assert_eq!(vm.committed_pages(), 8);
        mm.mprotect(a + 2 * PG, 2 * PG, RW).unwrap();
        assert_eq!(
            vm.committed_pages(),
            8,
            "it kept VM_ACCOUNT while read-only"
        );
        mm.munmap(a + 3 * PG, 2 * PG).unwrap();
        assert_eq!(vm.committed_pages(), 6);
        // Read-only memory made writable is charged then.
        let r = mm.mmap(0, 4 * PG, Prot::READ, ANON, -1, 0).unwrap();
        mm.mprotect(r, 2 * PG, RW).unwrap();
        assert_eq!(vm.committed_pages(), 8);
        mm.set_brk_start(0x60_0000);
        mm.brk(0x60_0000 + 3 * PG);
        assert_eq!(vm.committed_pages(), 11);
        mm.brk(0x60_0000 + PG);
        assert_eq!(vm.committed_pages(), 9);
        assert_eq!(vm.committed_pages(), accounted_pages(mm));
    });
}

#[test]
fn mlock_splits_populates_counts_and_is_not_inherited() {
    with_mm(|mm| {
        let base = 0x3000_0000;
        mm.mmap(base, 8 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        // Never touched: no anon_vma, so the pieces can merge again.
        mm.mlock(base + 2 * PG + 1, PG, 0).unwrap();
        assert_eq!(mm.map_count(), 3, "pages 2-3 locked");
        assert_eq!(mm.status().vm_lck, 8, "VmLck in kB");
        for page in [2, 3] {
            assert!(
                mm.page_table()
                    .get_pte(base + page * PG)
                    .is_some_and(|e| e.is_present()),
                "mlock populated page {page}"
            );
        }
        assert!(
            !mm.page_table()
                .get_pte(base)
                .is_some_and(|e| e.is_present())
        );
        // A fork child inherits no lock, and its pieces merge (I2).
        let child = mm.fork().unwrap();
        assert_eq!(child.status().vm_lck, 0);
        child.validate().unwrap();
        drop(child);
        assert_eq!(mm.mlock(base, 8 * PG, 2), Err(Errno::EINVAL), "bad flags");
        assert_eq!(
            mm.mlock(base + 8 * PG, PG, 0),
            Err(Errno::ENOMEM),
            "unmapped"
        );
        mm.munlock(base, 8 * PG).unwrap();
        assert_eq!(mm.status().vm_lck, 0);
        // MCL_FUTURE: later mappings are locked and populated.
        mm.mlockall(MCL_FUTURE).unwrap();
        let b = mm.mmap(0, 2 * PG, RW, ANON, -1, 0).unwrap();
        assert_eq!(mm.status().vm_lck, 8);
        assert!(
            mm.page_table()
                .get_pte(b + PG)
                .is_some_and(|e| e.is_present())
        );
        mm.munlockall().unwrap();
        assert_eq!(mm.status().vm_lck, 0);
        mm.munmap(b, 2 * PG).unwrap();
        mm.munmap(base, 8 * PG).unwrap();
    });
}

#[test]
fn sealed_mappings_refuse_changes_and_stay_mapped() {
    with_mm(|mm| {
        let base = 0x3000_0000;
        mm.mmap(base, 8 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        poke(mm, base, 5).unwrap();
        assert_eq!(mm.mseal(base + 2 * PG, 2 * PG, 1), Err(Errno::EINVAL));
        assert_eq!(mm.mseal(base + 6 * PG, 4 * PG, 0), Err(Errno::ENOMEM));
        assert_eq!(mm.map_count(), 1, "a refused mseal changes nothing");
        mm.mseal(base + 2 * PG, 2 * PG, 0).unwrap();
        assert_eq!(mm.map_count(), 3);
        assert_eq!(mm.munmap(base, 8 * PG), Err(Errno::EPERM));
        assert_eq!(peek(mm, base), Ok(5), "nothing was unmapped");
        assert_eq!(
            mm.mprotect(base + 2 * PG, PG, Prot::READ),
            Err(Errno::EPERM)
        );
        assert_eq!(
            mm.mmap(base + 3 * PG, PG, RW, ANON | MapFlags::FIXED, -1, 0),
            Err(Errno::EPERM)
        );
        // Writable private memory may still be discarded.
        mm.madvise(base + 2 * PG, PG, 4).unwrap();
        mm.validate().unwrap();
        // The parts around the seal still go.
        mm.munmap(base, 2 * PG).unwrap();
        mm.munmap(base + 4 * PG, 4 * PG).unwrap();
        assert_eq!(mm.map_count(), 1);
    });
}
