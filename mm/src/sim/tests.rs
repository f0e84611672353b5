//! Tests of the simulated machine's instruments: each one catches what
//! it is for (and would miss it without the instrument).

use alloc::vec::Vec;

use super::*;
use crate::addr::Order;
use crate::page_alloc::AllocError;
use crate::pgtable::{MmuGather, PageTable, PteFlags, TASK_SIZE};
use crate::rcu::Rcu;
use crate::slab::{KmemCache, KmemCacheArgs};

fn pa() -> PageAlloc<SimPlatform> {
    set_cpu(0);
    machine(1024, 1)
}

#[test]
#[should_panic(expected = "leak check: 1 block(s), 4 frame(s)")]
fn a_block_left_allocated_is_a_leak_at_teardown() {
    let pa = pa();
    let kept = pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap();
    pa.platform().0.keep_allocated(kept);
    let freed = pa.alloc_pages(Gfp::KERNEL, Order::new(1)).unwrap();
    pa.free_pages(freed, Order::new(1)).unwrap();
    let leaked = pa.alloc_pages(Gfp::KERNEL, Order::new(2)).unwrap();
    assert_eq!(
        pa.platform().0.page_owner(leaked).map(|l| l.file()),
        Some(file!()),
        "the owner is the caller of alloc_pages"
    );
    // Dropping `pa` reports `leaked` (kept and freed blocks are fine).
}

#[test]
fn the_leak_report_names_the_call_site() {
    let r = std::panic::catch_unwind(|| {
        let pa = pa();
        pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap();
    });
    let msg = r.expect_err("leak reported");
    let msg = msg.downcast_ref::<String>().expect("formatted message");
    assert!(msg.contains(&alloc::format!("{}:", file!())), "{msg}");
}

#[test]
#[should_panic(expected = "kmem_cache_destroy leaky: 1 object(s)")]
fn a_cache_dropped_with_objects_is_a_leak() {
    let pa = pa();
    let c = KmemCache::new(&pa, "leaky", 64, KmemCacheArgs::default()).unwrap();
    let _obj = c.alloc(Gfp::KERNEL).unwrap();
    drop(c);
}

#[test]
fn freed_frames_are_poisoned() {
    let pa = pa();
    let pfn = pa
        .alloc_pages(Gfp::KERNEL | Gfp::ZERO, Order::new(1))
        .unwrap();
    pa.free_pages(pfn, Order::new(1)).unwrap();
    // SAFETY: the block is free and no one allocates meanwhile.
    let bytes = unsafe { pa.platform().0.block_bytes(pfn, Order::new(1)) };
    assert!(bytes.iter().all(|&b| b == PAGE_POISON));
}

#[test]
#[should_panic(expected = "written after it was freed")]
fn a_write_after_free_is_caught_at_the_next_allocation() {
    let pa = pa();
    let pfn = pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap();
    let va = pa.platform().phys_to_virt(pfn.phys_addr());
    pa.free_pages(pfn, Order::ZERO).unwrap();
    // SAFETY: the bug under test: a write to a freed frame of simulated
    // RAM (in bounds; nothing else runs).
    unsafe { va.add(100).write(1) };
    // The per-CPU list hands the same frame out again.
    let again = pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap();
    assert_eq!(again, pfn);
}

#[test]
#[should_panic(expected = "still map it")]
fn freeing_a_mapped_frame_is_caught() {
    let pa = pa();
    let rcu = Rcu::new(pa.platform().clone());
    let pt = PageTable::new(&pa, &rcu, 1).unwrap();
    let pfn = pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap();
    let addr = 0x40_0000;
    let mut ptl = pt.pte_alloc_map_lock(addr).unwrap();
    ptl.set(addr, Entry::new(pfn, PteFlags::PRESENT | PteFlags::USER));
    drop(ptl);
    assert_eq!(pa.platform().0.pte_mappings(pfn), 1);
    // The bug under test: the frame goes while the PTE still maps it
    // (its mapcount was never raised, so free_pages' own check passes).
    let _ = pa.free_pages(pfn, Order::ZERO);
}

#[test]
fn the_page_table_check_counts_set_and_clear() {
    let pa = pa();
    let rcu = Rcu::new(pa.platform().clone());
    let pt = PageTable::new(&pa, &rcu, 1).unwrap();
    let pfn = pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap();
    let m = &pa.platform().0;
    let e = Entry::new(pfn, PteFlags::PRESENT | PteFlags::USER);
    {
        let mut ptl = pt.pte_alloc_map_lock(0x40_0000).unwrap();
        ptl.set(0x40_0000, e);
        ptl.set(0x40_1000, e);
        let mut lazy = ptl.lazy_mmu();
        lazy.set(0x40_2000, e);
        lazy.get_and_clear(0x40_0000);
    }
    assert_eq!(m.pte_mappings(pfn), 2);
    {
        let mut ptl = pt.pte_offset_map_lock(0x40_0000).unwrap();
        ptl.get_and_clear(0x40_1000);
        ptl.set(0x40_2000, Entry::NONE);
    }
    assert_eq!(m.pte_mappings(pfn), 0);
    pa.free_pages(pfn, Order::ZERO).unwrap();
    let mut tlb = MmuGather::new(&pt, true);
    pt.free_pgd_range(&mut tlb, 0, TASK_SIZE, 0, 0);
    tlb.finish();
    drop(pt);
    rcu.rcu_barrier();
}

#[test]
fn fail_nth_fails_exactly_the_nth_allocation() {
    let pa = pa();
    let c = KmemCache::new(&pa, "nth", 64, KmemCacheArgs::default()).unwrap();
    let mut pages = Vec::new();
    // A first object brings in a slab: later ones need no page. (Nested
    // allocations count, as in Linux: a slab allocation that needs a new
    // slab is two points.)
    let mut objs = Vec::from([c.alloc(Gfp::KERNEL).unwrap()]);
    set_fail_nth(4);
    pages.push(pa.alloc_pages(Gfp::KERNEL, Order::ZERO).expect("1st"));
    objs.push(c.alloc(Gfp::NOWAIT).expect("2nd"));
    pages.push(pa.alloc_pages(Gfp::NOWAIT, Order::new(3)).expect("3rd"));
    assert_eq!(fail_nth(), 1);
    assert!(c.alloc(Gfp::KERNEL).is_none(), "the 4th fails");
    assert_eq!(fail_nth(), 0, "fired");
    objs.push(c.alloc(Gfp::KERNEL).expect("disarmed after firing"));
    set_fail_nth(1);
    assert_eq!(
        pa.alloc_pages(Gfp::KERNEL, Order::ZERO),
        Err(AllocError::NoMemory)
    );
    // Interrupt context is not injected (Linux: in_task() only).
    set_fail_nth(1);
    assert!(
        in_simulated_irq(|| pa.alloc_pages(Gfp::ATOMIC, Order::ZERO)).is_ok_and(|p| {
            pages.push(p);
            true
        })
    );
    assert_eq!(fail_nth(), 1);
    set_fail_nth(0);
    let ((), n) = count_fail_points(|| {
        pages.push(pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap());
        objs.push(c.alloc(Gfp::KERNEL).unwrap());
    });
    assert_eq!(n, 2);
    for p in objs {
        // SAFETY: allocated above, freed once.
        unsafe { c.free(p) };
    }
    drop(c);
    for (p, o) in pages.into_iter().zip([0, 3, 0, 0].map(Order::new)) {
        pa.free_pages(p, o).unwrap();
    }
}
