//! Tests of the sheaf layer: per-CPU sheaves, the barn, prefilled sheaves
//! and kfree_rcu through rcu_free sheaves.

use alloc::vec::Vec;

use super::*;
use crate::addr::Pfn;
use crate::page_alloc::ZoneLayout;
use crate::sim::{self, SimMachine, SimPlatform, free_pages};

const CAP: u32 = 8;

fn machine() -> PageAlloc<SimPlatform> {
    sim::machine(4096, 1)
}

fn sheaf_cache<'a>(pa: &'a PageAlloc<SimPlatform>) -> Box<KmemCache<'a, SimPlatform>> {
    let args = KmemCacheArgs {
        sheaf_capacity: CAP,
        ..Default::default()
    };
    KmemCache::new(pa, "test-sheaf-64", 64, args).unwrap()
}

fn st(c: &KmemCache<'_, SimPlatform>, s: SlabStat) -> u64 {
    c.stats().get(s)
}

#[test]
fn warm_pairs_touch_only_the_cpu_sheaf() {
    let pa = machine();
    let c = sheaf_cache(&pa);
    let p = c.alloc(Gfp::KERNEL).unwrap();
    // SAFETY: freed once.
    unsafe { c.free(p) };
    let slab_allocs = st(&c, SlabStat::AllocFastpath) + st(&c, SlabStat::AllocSlowpath);
    for _ in 0..1000 {
        let p = c.alloc(Gfp::KERNEL).unwrap();
        // SAFETY: freed once.
        unsafe { c.free(p) };
    }
    assert_eq!(st(&c, SlabStat::AllocPcs), 1001);
    assert_eq!(st(&c, SlabStat::FreePcs), 1001);
    assert_eq!(
        st(&c, SlabStat::AllocFastpath) + st(&c, SlabStat::AllocSlowpath),
        slab_allocs
    );
    assert_eq!(c.info().active_objs, 0);
}

/// The sheaf fast path counts only `AllocPcs` / `FreePcs` (under its
/// lock); `Allocs` and `Frees` still read as every object once.
#[test]
fn allocs_and_frees_count_each_object_once_on_every_path() {
    let pa = machine();
    let c = sheaf_cache(&pa);
    // Through the main sheaf, refilled (slow path) three times.
    let mut objs: Vec<NonNull<u8>> = (0..20).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    // Through the slab path: an interrupt while the sheaves are held.
    let held = c.sheaves.as_ref().unwrap().pcs.lock(pa.platform());
    objs.push(sim::in_simulated_irq(|| c.alloc(Gfp::ATOMIC)).unwrap());
    drop(held);
    // From a prefilled sheaf.
    let mut sheaf = c.prefill_sheaf(Gfp::KERNEL, 2).unwrap();
    objs.push(c.alloc_from_sheaf(&mut sheaf, Gfp::KERNEL).unwrap());
    c.return_sheaf(Gfp::KERNEL, sheaf);
    assert_eq!(st(&c, SlabStat::AllocPcs), 20);
    assert_eq!(st(&c, SlabStat::Allocs), 22);
    assert_eq!(c.info().active_objs, 22);
    // One free through the slab path, the others into sheaves (full ones
    // go to the spare and the barn: the slow path counts them too).
    let p = objs.pop().unwrap();
    let held = c.sheaves.as_ref().unwrap().pcs.lock(pa.platform());
    // SAFETY: freed once.
    sim::in_simulated_irq(|| unsafe { c.free(p) });
    drop(held);
    for p in objs {
        // SAFETY: freed once.
        unsafe { c.free(p) };
    }
    assert_eq!(st(&c, SlabStat::FreePcs), 21);
    assert_eq!(st(&c, SlabStat::Frees), 22);
    assert_eq!(c.info().active_objs, 0);
}

#[test]
fn alloc_refills_then_frees_fill_spare_then_barn_up_to_its_limit() {
    let pa = machine();
    let before = free_pages(&pa);
    let c = sheaf_cache(&pa);
    // Allocating from nothing: each empty main is refilled from slabs.
    let objs: Vec<NonNull<u8>> = (0..200).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    assert_eq!(st(&c, SlabStat::AllocPcs), 200);
    assert!(st(&c, SlabStat::SheafRefill) >= 200);
    // Freeing 200: main fills, then the spare, then full sheaves go to the
    // barn until it holds MAX_FULL_SHEAVES, then sheaves are flushed.
    for p in objs {
        // SAFETY: freed once.
        unsafe { c.free(p) };
        let sh = c.sheaves.as_ref().unwrap();
        assert!(
            sh.barn.nr_full.load(Relaxed) <= MAX_FULL_SHEAVES,
            "barn over its limit"
        );
    }
    let sh = c.sheaves.as_ref().unwrap();
    assert_eq!(sh.barn.nr_full.load(Relaxed), MAX_FULL_SHEAVES);
    assert!(st(&c, SlabStat::BarnPut) >= MAX_FULL_SHEAVES as u64);
    assert!(st(&c, SlabStat::BarnPutFail) > 0);
    assert!(st(&c, SlabStat::SheafFlush) > 0);
    // Allocations now come back from the barn's full sheaves.
    let gets = st(&c, SlabStat::BarnGet);
    let again: Vec<NonNull<u8>> = (0..40).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    assert!(st(&c, SlabStat::BarnGet) > gets);
    for p in again {
        // SAFETY: freed once.
        unsafe { c.free(p) };
    }
    c.shrink();
    assert_eq!(c.info().num_slabs, 0);
    drop(c);
    assert_eq!(free_pages(&pa), before, "no slab leaked through sheaves");
}

#[test]
fn non_blocking_allocation_never_refills_and_uses_the_slab_path() {
    let pa = machine();
    let c = sheaf_cache(&pa);
    let p = c.alloc(Gfp::ATOMIC).unwrap();
    assert_eq!(st(&c, SlabStat::AllocPcs), 0);
    assert_eq!(st(&c, SlabStat::SheafRefill), 0);
    assert_eq!(st(&c, SlabStat::BarnGetFail), 1);
    // SAFETY: freed once (into the empty main sheaf).
    unsafe { c.free(p) };
    assert_eq!(st(&c, SlabStat::FreePcs), 1);
}

#[test]
fn an_interrupt_on_a_cpu_holding_its_sheaves_falls_back_to_slabs() {
    let pa = machine();
    let c = sheaf_cache(&pa);
    let warm = c.alloc(Gfp::KERNEL).unwrap();
    let held = c.sheaves.as_ref().unwrap().pcs.lock(pa.platform());
    let p = sim::in_simulated_irq(|| c.alloc(Gfp::ATOMIC)).unwrap();
    // SAFETY: freed once.
    sim::in_simulated_irq(|| unsafe { c.free(p) });
    assert_eq!(
        st(&c, SlabStat::AllocPcs),
        1,
        "only the warm-up went through the sheaf"
    );
    assert_eq!(st(&c, SlabStat::FreePcs), 0);
    drop(held);
    // SAFETY: freed once.
    unsafe { c.free(warm) };
    assert_eq!(c.info().active_objs, 0);
}

#[test]
fn prefilled_sheaves_guarantee_allocations() {
    let pa = machine();
    let before = free_pages(&pa);
    let c = sheaf_cache(&pa);
    let mut sheaf = c.prefill_sheaf(Gfp::KERNEL, 5).unwrap();
    assert_eq!(sheaf.capacity(), CAP as usize);
    assert!(sheaf.size() >= 5, "refilled to capacity, not just to 5");
    let n = sheaf.size();
    let objs: Vec<NonNull<u8>> = (0..n)
        .map(|_| c.alloc_from_sheaf(&mut sheaf, Gfp::ATOMIC).unwrap())
        .collect();
    assert!(
        c.alloc_from_sheaf(&mut sheaf, Gfp::ATOMIC).is_none(),
        "no fallback to the cache"
    );
    // Refill to more than the capacity: the sheaf is replaced by an oversize one.
    assert!(c.refill_prefilled_sheaf(Gfp::KERNEL, &mut sheaf, 20));
    assert_eq!((sheaf.capacity(), sheaf.size()), (20, 20));
    assert_eq!(st(&c, SlabStat::SheafPrefillOversize), 1);
    // Oversize sheaves are flushed and freed on return.
    c.return_sheaf(Gfp::KERNEL, sheaf);
    // An oversize prefill directly.
    let big = c.prefill_sheaf(Gfp::KERNEL, 100).unwrap();
    assert_eq!(big.size(), 100);
    c.return_sheaf(Gfp::KERNEL, big);
    // A standard one returned becomes the CPU's spare.
    let small = c.prefill_sheaf(Gfp::KERNEL, 1).unwrap();
    let fast = st(&c, SlabStat::SheafReturnFast);
    c.return_sheaf(Gfp::KERNEL, small);
    assert!(st(&c, SlabStat::SheafReturnFast) > fast || st(&c, SlabStat::SheafReturnSlow) > 0);
    assert!(c.prefill_sheaf(Gfp::KERNEL, 0).is_none());
    for p in objs {
        // SAFETY: freed once.
        unsafe { c.free(p) };
    }
    c.shrink();
    drop(c);
    assert_eq!(free_pages(&pa), before);
}

#[test]
fn kfree_rcu_objects_wait_for_a_grace_period_then_refill_the_barn() {
    let pa = machine();
    sim::set_cpu(0);
    let rcu = Rcu::new(SimPlatform(SimMachine::new(1, 2)));
    let c = sheaf_cache(&pa).with_rcu(&rcu);
    let objs: Vec<NonNull<u8>> = (0..CAP).map(|_| c.alloc(Gfp::KERNEL).unwrap()).collect();
    let addrs: Vec<usize> = objs.iter().map(|p| p.as_ptr() as usize).collect();
    {
        // A reader on this CPU: nothing freed may be handed out again.
        let _g = rcu.read_lock();
        for p in objs {
            // SAFETY: freed once, through RCU.
            unsafe { c.kfree_rcu(p) };
        }
        assert_eq!(st(&c, SlabStat::FreeRcuSheaf), CAP as u64);
        let fresh: Vec<NonNull<u8>> = (0..3 * CAP)
            .map(|_| c.alloc(Gfp::KERNEL).unwrap())
            .collect();
        assert!(
            fresh
                .iter()
                .all(|p| !addrs.contains(&(p.as_ptr() as usize))),
            "reused before the grace period"
        );
        for p in fresh {
            // SAFETY: freed once.
            unsafe { c.free(p) };
        }
    }
    // CPU 1 never runs in this test: take it out of grace periods.
    rcu.cpu_offline(crate::addr::CpuId::new(1));
    rcu.rcu_barrier();
    // The full rcu_free sheaf went to the barn as a full sheaf.
    assert!(st(&c, SlabStat::BarnPut) >= 1);
    assert_eq!(c.info().active_objs, 0);
    drop(c);
}

/// Small enough for Miri (`scripts/miri.sh`): objects through the main
/// sheaf, the spare, the barn and the slab freelists (refill and flush),
/// on a 64-frame machine, and every frame back after the cache goes.
#[test]
fn small_round_trip_through_sheaves_barn_and_freelists() {
    let pa = sim::page_alloc(64, 1, Pfn::new(0)..Pfn::new(1), ZoneLayout::X86_64);
    let before = free_pages(&pa);
    {
        let c = sheaf_cache(&pa);
        let mut objs = Vec::new();
        for round in 0..2u8 {
            for i in 0..3 * CAP as u8 {
                let p = c.alloc(Gfp::KERNEL).unwrap();
                // SAFETY: a live 64-byte object of ours.
                unsafe { p.as_ptr().write_bytes(round ^ i, 64) };
                objs.push((p, round ^ i));
            }
            for (p, v) in objs.drain(..) {
                // SAFETY: written above, still allocated.
                assert_eq!(unsafe { p.as_ptr().add(63).read() }, v);
                // SAFETY: freed once.
                unsafe { c.free(p) };
            }
        }
        assert!(st(&c, SlabStat::BarnPut) + st(&c, SlabStat::BarnGet) > 0);
        c.shrink();
    }
    assert_eq!(free_pages(&pa), before);
}
