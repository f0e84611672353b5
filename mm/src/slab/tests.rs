//! Unit tests of SLUB on the simulated machine (stress tests: tests_stress).

use alloc::vec::Vec;

use super::*;
use crate::addr::{Order, Pfn};
use crate::sim::{self, SimPlatform, free_pages};

fn machine() -> PageAlloc<SimPlatform> {
    // Miri interprets every frame's set-up: a smaller machine there.
    let nr_pages = if cfg!(miri) { 1024 } else { 4096 };
    sim::machine(nr_pages, 1)
}

#[test]
fn slot_offset_test_agrees_with_the_remainder() {
    let max = Slab::bytes(Order::MAX) as u64;
    for size in (8..=max.min(1 << 20)).step_by(8) {
        let layout = Layout {
            object_size: size as usize,
            size: size as usize,
            size_recip: u64::MAX / size + 1,
            offset: 0,
            red_zone: None,
            order: Order::ZERO,
            objects: 1,
            min_order: Order::ZERO,
        };
        // Multiples near 0 and near the largest slab, and their neighbours.
        let last = (max - 1) / size;
        for k in (0..4).chain(last.saturating_sub(3)..=last) {
            for delta in [-9i64, -8, -1, 0, 1, 7, 8, 9] {
                let Some(off) = (k * size).checked_add_signed(delta) else {
                    continue;
                };
                if off < max {
                    assert_eq!(
                        layout.is_slot_offset(off),
                        off % size == 0,
                        "size {size} offset {off}"
                    );
                }
            }
        }
    }
}

#[test]
fn layout_and_order_follow_slub() {
    let pa = machine();
    let c = KmemCache::new(&pa, "test-64", 64, KmemCacheArgs::default()).unwrap();
    assert_eq!(
        (c.layout.size, c.layout.order.get(), c.layout.objects),
        (64, 0, 64)
    );
    // Without debugging the free pointer sits mid-object.
    assert_eq!(c.layout.offset, 32);
    let c = KmemCache::new(&pa, "test-700", 700, KmemCacheArgs::default()).unwrap();
    // 700 -> slot 704; order 1 wastes 8192 % 704 = 448 > 8192/16 = 512? no:
    // 448 <= 512, so order 1 holds 11 objects.
    assert_eq!(
        (c.layout.size, c.layout.order.get(), c.layout.objects),
        (704, 1, 11)
    );
    let dbg = KmemCacheArgs {
        flags: SlabFlags::RED_ZONE | SlabFlags::POISON,
        ..Default::default()
    };
    let c = KmemCache::new(&pa, "test-dbg", 24, dbg).unwrap();
    // object 24 | red zone 8 | free pointer 8
    assert_eq!(
        (c.layout.red_zone, c.layout.offset, c.layout.size),
        (Some(24), 32, 40)
    );
    assert!(KmemCache::new(&pa, "zero", 0, KmemCacheArgs::default()).is_err());
}

#[test]
fn alloc_free_paths_and_shrink_returns_every_page() {
    let pa = machine();
    let before = free_pages(&pa);
    let c = KmemCache::new(&pa, "test-128", 128, KmemCacheArgs::default()).unwrap();
    let objs: Vec<NonNull<u8>> = (0..100).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    // 32 objects per order-0 slab: 4 slabs, one new slab per 32.
    assert_eq!(c.stats().get(SlabStat::NewSlab), 4);
    assert_eq!(c.stats().get(SlabStat::AllocSlowpath), 4);
    assert_eq!(c.stats().get(SlabStat::AllocFastpath), 96);
    let mut sorted: Vec<usize> = objs.iter().map(|p| p.as_ptr() as usize).collect();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 100, "distinct objects");
    assert_eq!(c.info().active_objs, 100);
    for p in objs {
        // SAFETY: allocated above, freed once.
        unsafe { c.free(p) };
    }
    assert_eq!(c.info().active_objs, 0);
    // The CPU slab takes frees fast; the others go through the node.
    assert!(c.stats().get(SlabStat::FreeFastpath) > 0);
    assert!(c.stats().get(SlabStat::FreeSlowpath) > 0);
    c.shrink();
    assert_eq!(c.info().num_slabs, 0);
    drop(c);
    assert_eq!(free_pages(&pa), before);
}

#[test]
fn zeroed_objects_are_zero() {
    let pa = machine();
    let c = KmemCache::new(&pa, "test-256", 256, KmemCacheArgs::default()).unwrap();
    let p = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: our object, 256 bytes.
    unsafe { core::ptr::write_bytes(p.as_ptr(), 0x5a, 256) };
    // SAFETY: freed once.
    unsafe { c.free(p) };
    let q = c.alloc(Gfp::KERNEL | Gfp::ZERO).unwrap();
    assert_eq!(p, q, "LIFO: the object just freed comes back");
    assert!(
        // SAFETY: our object.
        unsafe { core::slice::from_raw_parts(q.as_ptr(), 256) }
            .iter()
            .all(|&b| b == 0)
    );
    // SAFETY: freed once.
    unsafe { c.free(q) };
}

#[test]
fn hardened_freelist_catches_an_immediate_double_free() {
    let pa = machine();
    // The objects the bug costs stay allocated: no leak check.
    pa.platform().0.allow_leaks();
    let c = KmemCache::new(&pa, "test-64", 64, KmemCacheArgs::default()).unwrap();
    let p = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: the second free is the bug under test; the cache refuses it.
    unsafe {
        c.free(p);
        c.free(p);
    }
    assert_eq!(c.stats().get(SlabStat::DoubleFree), 1);
    let a = c.alloc(Gfp::KERNEL).unwrap();
    let b = c.alloc(Gfp::KERNEL).unwrap();
    assert_ne!(a, b, "the freelist was not corrupted into a loop");
}

#[test]
fn foreign_pointers_are_refused() {
    let pa = machine();
    let a = KmemCache::new(&pa, "a", 64, KmemCacheArgs::default()).unwrap();
    let b = KmemCache::new(&pa, "b", 64, KmemCacheArgs::default()).unwrap();
    let p = a.alloc(Gfp::KERNEL).unwrap();
    let mut local = 0u64;
    // SAFETY: both frees are refused without touching the memory.
    unsafe {
        b.free(p);
        a.free(NonNull::new(p.as_ptr().add(8)).unwrap());
        a.free(NonNull::from(&mut local).cast());
    }
    assert_eq!(b.stats().get(SlabStat::BadFree), 1);
    assert_eq!(a.stats().get(SlabStat::BadFree), 2);
    // SAFETY: the real free.
    unsafe { a.free(p) };
    assert_eq!(a.info().active_objs, 0);
}

#[test]
fn a_corrupted_free_pointer_is_caught_not_followed() {
    let pa = machine();
    // The objects the bug costs stay allocated: no leak check.
    pa.platform().0.allow_leaks();
    let c = KmemCache::new(&pa, "test-64", 64, KmemCacheArgs::default()).unwrap();
    let p = c.alloc(Gfp::KERNEL).unwrap();
    let q = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: freed once each.
    unsafe {
        c.free(q);
        c.free(p);
    }
    // Use after free: overwrite p's free pointer (mid-object, offset 32).
    // SAFETY: the memory is the cache's, mapped; this is the bug under test.
    unsafe { (p.as_ptr().add(32) as *mut u64).write(0x4141_4141_4141_4141) };
    let first = c.alloc(Gfp::KERNEL).unwrap();
    assert_eq!(first, p);
    assert_eq!(c.stats().get(SlabStat::FreelistCorrupt), 1);
    // The cache goes on with fresh objects instead of following garbage.
    let next = c.alloc(Gfp::KERNEL).unwrap();
    assert!(
        c.is_object_of(
            Slab::containing(
                pa.memmap(),
                pa.platform().virt_to_phys(next.as_ptr()).unwrap().pfn()
            )
            .unwrap()
            .pfn,
            next.as_ptr() as u64
        )
    );
}

#[test]
fn an_interrupt_on_a_cpu_holding_its_slab_uses_the_node() {
    let pa = machine();
    let c = KmemCache::new(&pa, "test-64", 64, KmemCacheArgs::default()).unwrap();
    let warm = c.alloc(Gfp::KERNEL).unwrap();
    let held = c.cpu.lock(pa.platform());
    let p = sim::in_simulated_irq(|| c.alloc(Gfp::ATOMIC)).unwrap();
    assert_eq!(c.stats().get(SlabStat::AllocNoCpu), 1);
    // SAFETY: freed once; the CPU slab is busy, so this goes to the node.
    sim::in_simulated_irq(|| unsafe { c.free(p) });
    assert_eq!(c.stats().get(SlabStat::FreeSlowpath), 1);
    drop(held);
    // SAFETY: freed once.
    unsafe { c.free(warm) };
    assert_eq!(c.info().active_objs, 0);
}

#[test]
fn debug_caches_catch_overflow_use_after_free_and_double_free() {
    let pa = machine();
    let args = KmemCacheArgs {
        flags: SlabFlags::RED_ZONE | SlabFlags::POISON,
        ..Default::default()
    };
    let c = KmemCache::new(&pa, "test-dbg", 24, args).unwrap();
    let p = c.alloc(Gfp::KERNEL).unwrap();
    // Overflow into the red zone.
    // SAFETY: inside the slot; the bug under test.
    unsafe { p.as_ptr().add(24).write(0) };
    // SAFETY: freed once (the red zone report does not refuse it).
    unsafe { c.free(p) };
    assert_eq!(c.stats().get(SlabStat::RedzoneCorrupt), 1);
    // Double free: the red zone says "free".
    // SAFETY: refused by the cache.
    unsafe { c.free(p) };
    assert_eq!(c.stats().get(SlabStat::DoubleFree), 1);
    // Write after free, seen when the object is handed out again.
    // SAFETY: the bug under test, inside the object.
    unsafe { p.as_ptr().add(3).write(0x42) };
    let q = c.alloc(Gfp::KERNEL).unwrap();
    assert_eq!(q, p);
    assert_eq!(c.stats().get(SlabStat::PoisonCorrupt), 1);
    // SAFETY: freed once.
    unsafe { c.free(q) };
}

#[test]
fn bulk_alloc_is_all_or_nothing() {
    let pa = machine();
    let c = KmemCache::new(&pa, "test-512", 512, KmemCacheArgs::default()).unwrap();
    let mut objs = [core::ptr::null_mut(); 100];
    assert_eq!(c.alloc_bulk(Gfp::KERNEL, &mut objs), 100);
    assert_eq!(c.info().active_objs, 100);
    // SAFETY: allocated above, freed once.
    unsafe { c.free_bulk(&objs) };
    assert_eq!(c.info().active_objs, 0);
    // Larger than memory: nothing is kept.
    let mut huge = alloc::vec![core::ptr::null_mut(); 100_000];
    assert_eq!(c.alloc_bulk(Gfp::KERNEL | Gfp::NOWARN, &mut huge), 0);
    assert_eq!(c.info().active_objs, 0);
}

#[test]
fn kmalloc_classes_large_blocks_and_krealloc() {
    let pa = machine();
    let before = free_pages(&pa);
    let k = Kmalloc::new(&pa);
    for (size, class) in [
        (1, 8),
        (8, 8),
        (9, 16),
        (65, 96),
        (97, 128),
        (129, 192),
        (193, 256),
        (5000, 8192),
    ] {
        let p = k.kmalloc(size, Gfp::KERNEL).unwrap();
        assert_eq!(k.ksize(p), class, "size {size}");
        if class.is_power_of_two() {
            assert_eq!(
                p.as_ptr() as usize % class.min(4096),
                0,
                "size {size} alignment"
            );
        }
        // SAFETY: from kmalloc, freed once.
        unsafe { k.kfree(p) };
    }
    let big = k.kmalloc(20_000, Gfp::KERNEL).unwrap();
    assert_eq!(k.ksize(big), 32768);
    // Shrinking within the allocation keeps it where it is (as Linux).
    // SAFETY: from kmalloc.
    assert_eq!(unsafe { k.krealloc(big, 100, Gfp::KERNEL) }, Some(big));
    // SAFETY: from kmalloc, freed once.
    unsafe { k.kfree(big) };
    let small = k.kmalloc(100, Gfp::KERNEL).unwrap();
    // SAFETY: 100 bytes are ours.
    unsafe { core::ptr::write_bytes(small.as_ptr(), 7, 100) };
    // Growing past the class moves it, contents kept.
    // SAFETY: from kmalloc.
    let grown = unsafe { k.krealloc(small, 20_000, Gfp::KERNEL) }.unwrap();
    assert_eq!(k.ksize(grown), 32768);
    assert!(
        // SAFETY: the first 100 bytes were copied.
        unsafe { core::slice::from_raw_parts(grown.as_ptr(), 100) }
            .iter()
            .all(|&b| b == 7)
    );
    // SAFETY: from kmalloc, freed once.
    unsafe { k.kfree(grown) };
    let mut local = 0u8;
    // SAFETY: refused.
    unsafe { k.kfree(NonNull::from(&mut local)) };
    for c in k.caches() {
        c.shrink();
    }
    drop(k);
    assert_eq!(
        free_pages(&pa),
        before,
        "every slab and large block returned"
    );
}

#[test]
fn slabs_fall_back_to_the_minimum_order_when_memory_is_fragmented() {
    let pa = machine();
    let c = KmemCache::new(&pa, "test-2000", 2000, KmemCacheArgs::default()).unwrap();
    assert!(c.layout.order > Order::ZERO && c.layout.min_order == Order::ZERO);
    // Fragment memory: take every page, give back every other one.
    let mut pages = Vec::new();
    while let Ok(pfn) = pa.alloc_pages(Gfp::KERNEL | Gfp::MEMALLOC | Gfp::NOWARN, Order::ZERO) {
        pages.push(pfn);
    }
    let (keep, give): (Vec<Pfn>, Vec<Pfn>) = pages.iter().partition(|p| p.as_u64() % 2 == 0);
    for &pfn in &give {
        pa.free_pages(pfn, Order::ZERO).unwrap();
    }
    pa.drain_all_pages();
    let free_before = free_pages(&pa);
    let objs: Vec<NonNull<u8>> = (0..10).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    assert!(c.stats().get(SlabStat::OrderFallback) >= 1);
    // Order-0 slabs hold two 2000-byte objects each.
    assert_eq!(c.info().num_objs, 2 * c.info().num_slabs);
    // One frame each, not `pagesperslab`: what the cache took.
    assert_eq!(c.nr_pages(), c.info().num_slabs);
    assert_eq!(c.nr_pages(), free_before - free_pages(&pa));
    for p in objs {
        // SAFETY: freed once.
        unsafe { c.free(p) };
    }
    c.shrink();
    assert_eq!(c.info().num_slabs, 0);
    assert_eq!(c.nr_pages(), 0);
    for pfn in keep {
        pa.free_pages(pfn, Order::ZERO).unwrap();
    }
}
