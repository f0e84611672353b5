//! In-kernel SLUB tests: real memory, the real tick, kmalloc as the
//! global allocator.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use mm::Gfp;

use mm::slab::{Kmalloc, KmemCache, KmemCacheArgs, SlabStat};

use super::kmalloc;
use crate::ktest::KTest;
use crate::platform::KernelPlatform;
use crate::{memory, rcu, sched, time};

pub const KTESTS: &[KTest] = crate::ktests![
    the_kernel_heap_is_kmalloc,
    cache_alloc_free_and_shrink_restore_the_page_allocator,
    threads_share_a_cache_under_preemption,
    interrupts_allocate_from_a_sheaf_cache_the_cpu_is_using,
    kfree_rcu_through_sheaves_under_the_real_tick,
    shrinking_every_kmalloc_cache_returns_empty_slabs,
];

/// `kmem_cache_shrink` on the caches the kernel itself allocates from
/// (it used to hang: shrink allocated, from kmalloc, under the list lock of
/// the cache being shrunk).
fn shrinking_every_kmalloc_cache_returns_empty_slabs() {
    let k = kmalloc();
    // Empty slabs to give back: allocate a spread of sizes, free it all.
    let blocks: Vec<Vec<u8>> = (0..2000).map(|i| alloc::vec![0u8; 8 << (i % 11)]).collect();
    drop(blocks);
    let slabs = |k: &Kmalloc<'static, KernelPlatform>| -> u64 {
        k.caches().map(|c| c.info().num_slabs).sum()
    };
    let before = slabs(k);
    for c in k.caches() {
        c.shrink();
    }
    let after = slabs(k);
    assert!(
        after < before,
        "shrink gave nothing back ({before} slabs before, {after} after)"
    );
}

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

/// Counted as `process::settled_used_pages` counts (kmalloc's own slabs
/// left out): this task may run on either CPU meanwhile, and a kmalloc
/// slab the other CPU caches is not the test cache's.
fn cache_alloc_free_and_shrink_restore_the_page_allocator() {
    let pa = memory::page_alloc();
    let before = crate::process::settled_used_pages();
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
    assert_eq!(
        crate::process::settled_used_pages(),
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

type Cache = KmemCache<'static, KernelPlatform>;

/// A sheaf cache shared by the test thread and a tick hook.
static SHEAF_CACHE: spin::Once<Box<Cache>> = spin::Once::new();
static IRQ_ON: AtomicBool = AtomicBool::new(false);
static IRQ_ALLOCS: AtomicU64 = AtomicU64::new(0);

fn sheaf_cache() -> &'static Cache {
    SHEAF_CACHE.call_once(|| {
        let args = KmemCacheArgs {
            sheaf_capacity: 16,
            ..Default::default()
        };
        KmemCache::new(memory::page_alloc(), "ktest-sheaf-64", 64, args)
            .unwrap()
            .with_rcu(rcu::rcu())
    })
}

/// In hard IRQ: allocate and free one object of the cache the interrupted
/// thread may be using (its sheaf lock possibly held).
fn irq_alloc_hook() {
    if !IRQ_ON.load(SeqCst) {
        return;
    }
    let cache = sheaf_cache();
    let p = cache.alloc(Gfp::ATOMIC).expect("atomic allocation in IRQ");
    // SAFETY: our object, written and freed once.
    unsafe {
        (p.as_ptr() as *mut u64).write(0x1234);
        cache.free(p);
    }
    IRQ_ALLOCS.fetch_add(1, SeqCst);
}

const TAG: u64 = 0x7a67_7a67_7a67_7a67;

/// Ticks arrive while this thread allocates and frees through the sheaves,
/// so some land while it holds the sheaf lock: those must take the slab
/// path (trylock fails), never deadlock or corrupt the sheaves.
fn interrupts_allocate_from_a_sheaf_cache_the_cpu_is_using() {
    let cache = sheaf_cache();
    time::register_tick_hook(irq_alloc_hook).expect("a free tick hook slot");
    let slab_path_before =
        cache.stats().get(SlabStat::AllocFastpath) + cache.stats().get(SlabStat::AllocSlowpath);
    IRQ_ON.store(true, SeqCst);
    // 60 ticks taken on this CPU (counted, not timed: under a loaded host
    // QEMU may deliver a vCPU's timer interrupts late), or 10 s.
    let ticks = || {
        crate::percpu::this_cpu()
            .nr_ticks
            .load(core::sync::atomic::Ordering::Relaxed)
    };
    let end_tick = ticks() + 60;
    let deadline = time::now_ns() + 10_000_000_000;
    let mut held: Vec<NonNull<u8>> = Vec::new();
    let mut i = 0u64;
    while ticks() < end_tick && time::now_ns() < deadline {
        i += 1;
        if i.is_multiple_of(4) {
            if let Some(p) = held.pop() {
                // SAFETY: ours; check it was not handed to the IRQ meanwhile.
                let tag = unsafe { (p.as_ptr() as *const u64).read() };
                assert_eq!(
                    tag,
                    p.as_ptr() as u64 ^ TAG,
                    "object shared with an interrupt"
                );
                // SAFETY: freed once.
                unsafe { cache.free(p) };
            }
        } else {
            let p = cache.alloc(Gfp::KERNEL).unwrap();
            // SAFETY: our object.
            unsafe { (p.as_ptr() as *mut u64).write(p.as_ptr() as u64 ^ TAG) };
            held.push(p);
            if held.len() > 64 {
                for p in held.drain(..) {
                    // SAFETY: freed once.
                    unsafe { cache.free(p) };
                }
            }
        }
    }
    IRQ_ON.store(false, SeqCst);
    for p in held {
        // SAFETY: freed once.
        unsafe { cache.free(p) };
    }
    let irqs = IRQ_ALLOCS.load(SeqCst);
    let slab_path = cache.stats().get(SlabStat::AllocFastpath)
        + cache.stats().get(SlabStat::AllocSlowpath)
        - slab_path_before;
    log::info!(
        "{irqs} IRQ allocations; {} sheaf allocations; {slab_path} went to the slab path",
        cache.stats().get(SlabStat::AllocPcs)
    );
    assert!(irqs >= 30, "the tick hook ran {irqs} times");
    assert!(cache.stats().get(SlabStat::AllocPcs) > 0);
    assert_eq!(cache.info().active_objs, 0);
}

/// kfree_rcu through the rcu_free sheaf, with the real tick driving the
/// grace periods: objects come back only after readers are done.
fn kfree_rcu_through_sheaves_under_the_real_tick() {
    let cache = sheaf_cache();
    let objs: Vec<NonNull<u8>> = (0..64).map(|_| cache.alloc(Gfp::KERNEL).unwrap()).collect();
    let addrs: Vec<usize> = objs.iter().map(|p| p.as_ptr() as usize).collect();
    {
        let _reader = rcu::read_lock();
        for p in objs {
            // SAFETY: freed once, after a grace period.
            unsafe { cache.kfree_rcu(p) };
        }
        let fresh: Vec<NonNull<u8>> = (0..64).map(|_| cache.alloc(Gfp::ATOMIC).unwrap()).collect();
        assert!(
            fresh
                .iter()
                .all(|p| !addrs.contains(&(p.as_ptr() as usize))),
            "reused inside a reader"
        );
        for p in fresh {
            // SAFETY: freed once.
            unsafe { cache.free(p) };
        }
    }
    cache.flush_all_rcu_sheaves();
    rcu::rcu().rcu_barrier();
    assert!(cache.stats().get(SlabStat::FreeRcuSheaf) >= 64);
    assert_eq!(cache.info().active_objs, 0);
}
