//! In-kernel SLUB tests: real memory, the real tick, kmalloc as the
//! global allocator.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;

use mm::Gfp;
use mm::slab::{KmemCache, KmemCacheArgs, SlabStat};

use super::kmalloc;
use crate::ktest::KTest;
use crate::{memory, sched};

pub const KTESTS: &[KTest] = crate::ktests![
    the_kernel_heap_is_kmalloc,
    cache_alloc_free_and_shrink_restore_the_page_allocator,
    threads_share_a_cache_under_preemption,
];

fn the_kernel_heap_is_kmalloc() {
    let k = kmalloc();
    let before: u64 = k.caches().map(|c| c.stats().get(SlabStat::Allocs)).sum();
    let b = Box::new([7u64; 8]);
    let v: Vec<u32> = (0..1000).collect();
    let after: u64 = k.caches().map(|c| c.stats().get(SlabStat::Allocs)).sum();
    assert!(after >= before + 2, "Box and Vec did not come from kmalloc");
    assert_eq!(k.ksize(NonNull::from(&*b).cast()), 64);
    assert!(k.ksize(NonNull::new(v.as_ptr() as *mut u8).unwrap()) >= 4000);
}

fn cache_alloc_free_and_shrink_restore_the_page_allocator() {
    let pa = memory::page_alloc();
    pa.drain_all_pages();
    let before = pa.nr_free_pages();
    let cache = KmemCache::new(pa, "ktest-192", 192, KmemCacheArgs::default()).unwrap();
    let objs: Vec<NonNull<u8>> = (0..2000)
        .map(|_| cache.alloc(Gfp::KERNEL).unwrap())
        .collect();
    for (i, p) in objs.iter().enumerate() {
        // SAFETY: our 192-byte object.
        unsafe { core::ptr::write_bytes(p.as_ptr(), i as u8, 192) };
    }
    for (i, p) in objs.iter().enumerate() {
        // SAFETY: our object; the pattern written above.
        let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), 192) };
        assert!(
            bytes.iter().all(|&b| b == i as u8),
            "object {i} overwritten"
        );
    }
    assert_eq!(cache.info().active_objs, 2000);
    for p in objs {
        // SAFETY: freed once.
        unsafe { cache.free(p) };
    }
    cache.shrink();
    assert_eq!(cache.info().num_slabs, 0);
    drop(cache);
    pa.drain_all_pages();
    assert_eq!(
        pa.nr_free_pages(),
        before,
        "slabs returned to the buddy allocator"
    );
}

/// Threads allocate and free in one cache while the tick preempts them.
fn threads_share_a_cache_under_preemption() {
    static CACHE: spin::Once<Box<KmemCache<'static, crate::platform::KernelPlatform>>> =
        spin::Once::new();
    let cache = CACHE.call_once(|| {
        KmemCache::new(
            memory::page_alloc(),
            "ktest-48",
            48,
            KmemCacheArgs::default(),
        )
        .unwrap()
    });
    let worker = |id: u64| {
        let mut held: Vec<NonNull<u8>> = Vec::new();
        for round in 0..3000u64 {
            if round % 3 != 2 {
                let p = cache.alloc(Gfp::KERNEL).unwrap();
                // SAFETY: our 48-byte object.
                unsafe { (p.as_ptr() as *mut u64).write(id << 32 | round) };
                held.push(p);
            } else if let Some(p) = held.pop() {
                // SAFETY: written by us above.
                let v = unsafe { (p.as_ptr() as *const u64).read() };
                assert_eq!(v >> 32, id, "object owned by two threads");
                // SAFETY: freed once.
                unsafe { cache.free(p) };
            }
        }
        for p in held {
            // SAFETY: freed once.
            unsafe { cache.free(p) };
        }
    };
    let threads: Vec<_> = (1..=3)
        .map(|id| sched::spawn("slab-worker", move || worker(id)))
        .collect();
    for t in threads {
        t.join();
    }
    assert_eq!(cache.info().active_objs, 0);
    cache.shrink();
}
