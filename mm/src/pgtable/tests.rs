//! Host tests of the page tables, mmu_gather, lazy MMU mode and ptdump.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use super::*;
use crate::addr::{CpuId, Order};
use crate::sim::{self, SimPlatform, free_pages};

fn machine(cpus: usize) -> (PageAlloc<SimPlatform>, Rcu<SimPlatform>) {
    sim::set_cpu(0);
    // Miri interprets every frame's set-up: a smaller machine there.
    let nr_pages = if cfg!(miri) { 512 } else { 4096 };
    let pa = sim::machine(nr_pages, cpus);
    let rcu = Rcu::new(pa.platform().clone());
    (pa, rcu)
}

/// A PTE for a frame that is not refcounted (tests map arbitrary frames).
fn special(pfn: u64, flags: PteFlags) -> Entry {
    Entry::new(
        Pfn::new(pfn),
        flags | PteFlags::PRESENT | PteFlags::USER | PteFlags::SPECIAL,
    )
}

/// Clears every PTE in `[start, end)` and frees all tables.
fn teardown(pt: &PageTable<'_, SimPlatform>, start: u64, end: u64) {
    let mut addr = start;
    while addr < end {
        if let Some(mut ptl) = pt.pte_offset_map_lock(addr) {
            let stop = addr_end(addr, end, PMD_SIZE);
            while addr < stop {
                ptl.get_and_clear(addr);
                addr += PAGE_SIZE;
            }
        } else {
            addr = addr_end(addr, end, PMD_SIZE);
        }
    }
    let mut tlb = MmuGather::new(pt, true);
    pt.free_pgd_range(&mut tlb, 0, TASK_SIZE, 0, 0);
    tlb.finish();
}

#[test]
fn first_pte_allocates_pud_pmd_and_pte_tables() {
    let (pa, rcu) = machine(1);
    let before = free_pages(&pa);
    {
        let pt = PageTable::new(&pa, &rcu, 7).unwrap();
        assert_eq!(pt.pgtables_bytes(), 0);
        assert!(pt.pte_offset_map_lock(0x40_0000).is_none());
        assert_eq!(pt.get_pte(0x40_0000), None);
        let mut ptl = pt.pte_alloc_map_lock(0x40_0000).unwrap();
        assert_eq!(pt.ptdesc(ptl.table_pfn()).owner(), 7);
        assert_eq!(pt.ptdesc(ptl.table_pfn()).level(), Level::Pte as u64);
        ptl.set(0x40_1000, special(100, PteFlags::WRITE));
        drop(ptl);
        assert_eq!(pt.pgtables_bytes(), 3 * PAGE_SIZE);
        assert_eq!(pt.get_pte(0x40_1000), Some(special(100, PteFlags::WRITE)));
        assert_eq!(pt.get_pte(0x40_2000), Some(Entry::NONE));
        // Same 2 MiB: no new table; the next 2 MiB: one more PTE table.
        drop(pt.pte_alloc_map_lock(0x5f_f000).unwrap());
        assert_eq!(pt.pgtables_bytes(), 3 * PAGE_SIZE);
        drop(pt.pte_alloc_map_lock(0x60_0000).unwrap());
        assert_eq!(pt.pgtables_bytes(), 4 * PAGE_SIZE);
        // Another GiB: PMD and PTE tables.
        drop(pt.pte_alloc_map_lock(0x4000_0000).unwrap());
        assert_eq!(pt.pgtables_bytes(), 6 * PAGE_SIZE);
        teardown(&pt, 0, 0x4020_0000);
        assert_eq!(pt.pgtables_bytes(), 0);
        rcu.rcu_barrier();
    }
    assert_eq!(free_pages(&pa), before, "every table frame came back");
}

#[test]
fn free_pgd_range_keeps_tables_outside_floor_and_ceiling() {
    let (pa, rcu) = machine(1);
    let pt = PageTable::new(&pa, &rcu, 1).unwrap();
    for addr in [0x40_0000, 0x60_0000, 0x80_0000] {
        pt.pte_alloc_map_lock(addr)
            .unwrap()
            .set(addr, special(50, PteFlags::empty()));
    }
    assert_eq!(pt.pgtables_bytes(), 5 * PAGE_SIZE);
    // Unmapping [0x40_0000, 0x60_0000) with a VMA above from 0x60_0000 and
    // one below ending at 0x40_0000: only the first PTE table goes.
    pt.pte_offset_map_lock(0x40_0000)
        .unwrap()
        .get_and_clear(0x40_0000);
    let mut tlb = MmuGather::new(&pt, false);
    pt.free_pgd_range(&mut tlb, 0x40_0000, 0x60_0000, 0x40_0000, 0x60_0000);
    tlb.finish();
    assert_eq!(pt.pgtables_bytes(), 4 * PAGE_SIZE);
    assert!(pt.pte_offset_map_lock(0x40_0000).is_none());
    assert!(pt.pte_offset_map_lock(0x60_0000).is_some());
    // A ceiling inside the next table's region keeps it.
    pt.pte_offset_map_lock(0x60_0000)
        .unwrap()
        .get_and_clear(0x60_0000);
    let mut tlb = MmuGather::new(&pt, false);
    pt.free_pgd_range(&mut tlb, 0x60_0000, 0x60_1000, 0x60_0000, 0x70_0000);
    tlb.finish();
    assert!(pt.pte_offset_map_lock(0x60_0000).is_some());
    teardown(&pt, 0, 0x100_0000);
    assert_eq!(pt.pgtables_bytes(), 0);
    rcu.rcu_barrier();
}

#[test]
fn gathered_pages_and_tables_are_freed_only_after_the_flush_and_a_grace_period() {
    let (pa, rcu) = machine(2);
    let pt = PageTable::new(&pa, &rcu, 1).unwrap();
    let page = pa.alloc_pages(Gfp::KERNEL, Order::ZERO).unwrap();
    let mut ptl = pt.pte_alloc_map_lock(0x1000).unwrap();
    ptl.set(0x1000, Entry::new(page, PteFlags::PRESENT | PteFlags::USER));
    let table = ptl.table_pfn();
    drop(ptl);
    let flushes = pa.platform().0.nr_tlb_flushes();
    let free_before = free_pages(&pa);

    let mut tlb = MmuGather::new(&pt, false);
    let old = pt
        .pte_offset_map_lock(0x1000)
        .unwrap()
        .get_and_clear(0x1000);
    assert!(!tlb.remove_page(old.pfn(), 0x1000));
    pt.free_pgd_range(&mut tlb, 0, PMD_SIZE, 0, 0);
    // The gather took one page for its table batch
    // (`__get_free_page()` in `tlb_remove_table()`).
    assert_eq!(
        free_pages(&pa),
        free_before - 1,
        "nothing freed before the flush; one page holds the table batch"
    );
    assert_eq!(pa.platform().0.nr_tlb_flushes(), flushes);
    tlb.finish();
    let log = pa.platform().0.tlb_flushes();
    let last = log.last().unwrap();
    assert_eq!(last.root, pt.root());
    let (s, e) = last.range.expect("a small range is flushed by range");
    assert!(s <= 0x1000 && e >= 0x2000);
    // The page is free now; the tables wait for CPU 1's quiescent state,
    // which never comes while it stays online and silent.
    assert_eq!(free_pages(&pa), free_before);
    for _ in 0..10 {
        if rcu.sched_clock_irq() {
            rcu.rcu_core();
        }
    }
    assert_eq!(
        pa.memmap().page(table).flags() & PageFlags::PGTABLE,
        PageFlags::PGTABLE
    );
    rcu.cpu_offline(CpuId::new(1));
    rcu.rcu_barrier();
    assert_eq!(
        free_pages(&pa),
        free_before + 4,
        "page + PTE, PMD, PUD tables (and the batch page back)"
    );
    assert_eq!(pt.pgtables_bytes(), 0);
}

#[test]
fn lazy_mmu_updates_apply_at_flush_or_leave() {
    let (pa, rcu) = machine(1);
    let pt = PageTable::new(&pa, &rcu, 1).unwrap();
    let mut ptl = pt.pte_alloc_map_lock(0).unwrap();
    {
        let mut lazy = ptl.lazy_mmu();
        lazy.set(0x1000, special(9, PteFlags::empty()));
        assert_eq!(lazy.get(0x1000), Entry::NONE, "queued, not yet applied");
        lazy.flush();
        assert_eq!(lazy.get(0x1000), special(9, PteFlags::empty()));
        lazy.set(0x2000, special(10, PteFlags::empty()));
        assert_eq!(lazy.get_and_clear(0x1000), special(9, PteFlags::empty()));
        for i in 0..40u64 {
            lazy.set(0x10_0000 + i * PAGE_SIZE, special(11, PteFlags::empty()));
        }
    }
    assert_eq!(ptl.get(0x1000), Entry::NONE);
    assert_eq!(ptl.get(0x2000), special(10, PteFlags::empty()));
    assert_eq!(
        ptl.get(0x10_0000 + 39 * PAGE_SIZE),
        special(11, PteFlags::empty())
    );
    assert!(pt.stat(PtStat::LazyFlushes) >= 3);
    // A second region after the first ended is fine.
    drop(ptl.lazy_mmu());
    drop(ptl);
    teardown(&pt, 0, PMD_SIZE);
    rcu.rcu_barrier();
}

#[test]
#[should_panic(expected = "lazy MMU mode regions must not nest")]
fn nested_lazy_mmu_regions_are_a_bug() {
    let (pa, rcu) = machine(1);
    let pt = PageTable::new(&pa, &rcu, 1).unwrap();
    let mut a = pt.pte_alloc_map_lock(0).unwrap();
    let mut b = pt.pte_alloc_map_lock(PMD_SIZE).unwrap();
    let _outer = a.lazy_mmu();
    let _inner = b.lazy_mmu();
}

#[test]
#[should_panic(expected = "lazy MMU mode entered from interrupt context")]
fn lazy_mmu_from_interrupt_context_is_a_bug() {
    let (pa, rcu) = machine(1);
    let pt = PageTable::new(&pa, &rcu, 1).unwrap();
    let mut a = pt.pte_alloc_map_lock(0).unwrap();
    sim::in_simulated_irq(|| drop(a.lazy_mmu()));
}

#[test]
fn ptdump_merges_runs_and_wx_check_finds_writable_executable_pages() {
    let (pa, rcu) = machine(1);
    let pt = PageTable::new(&pa, &rcu, 1).unwrap();
    {
        let mut ptl = pt.pte_alloc_map_lock(0x40_0000).unwrap();
        for i in 0..4 {
            ptl.set(0x40_0000 + i * PAGE_SIZE, special(20, PteFlags::NX));
        }
        ptl.set(0x40_4000, special(21, PteFlags::WRITE | PteFlags::NX));
        ptl.set(0x40_5000, special(22, PteFlags::empty()));
    }
    assert!(pt.check_wx().passed());
    let dump = pt.dump();
    assert_eq!(dump.ranges.len(), 3);
    assert_eq!(
        (dump.ranges[0].start, dump.ranges[0].end),
        (0x40_0000, 0x40_4000)
    );
    let text = alloc::format!("{dump}");
    assert!(
        text.contains("0x0000000000400000-0x0000000000404000        16K USR ro NX pte"),
        "{text}"
    );
    pt.pte_offset_map_lock(0x40_0000)
        .unwrap()
        .set(0x40_7000, special(23, PteFlags::WRITE));
    let wx = pt.check_wx();
    assert_eq!(wx.ranges.len(), 1);
    assert_eq!(wx.ranges[0].start, 0x40_7000);
    assert!(alloc::format!("{wx}").contains("1 W+X pages found"));
    teardown(&pt, 0x40_0000, 0x60_0000);
    rcu.rcu_barrier();
}

/// A PTE table is unlinked and RCU-freed while another CPU keeps locking
/// it through `pte_alloc_map_lock()`: every lock it gets is on a linked
/// table, its writes are seen until the table goes, and no frame leaks.
/// The reclaimer runs a fixed number of rounds, each after the locker made
/// progress, so that both sides' counts are exact whatever the host's
/// scheduling (the test asserts safety and counts, never timing).
#[test]
fn map_lock_never_returns_an_unlinked_table() {
    let (pa, rcu) = machine(2);
    let before = free_pages(&pa);
    let stop = AtomicBool::new(false);
    let locked = AtomicU64::new(0);
    let reclaimed = AtomicU64::new(0);
    {
        let pt = PageTable::new(&pa, &rcu, 1).unwrap();
        let addr = 0x20_0000u64;
        std::thread::scope(|s| {
            let locker = s.spawn(|| {
                sim::set_cpu(1);
                let mut n = 0u64;
                while !stop.load(SeqCst) {
                    let mut ptl = pt.pte_alloc_map_lock(addr).unwrap();
                    let pmd = Entry(pt.slot(addr, Level::Pmd).unwrap().load(SeqCst));
                    assert_eq!(pmd.pfn(), ptl.table_pfn(), "locked table is not linked");
                    n += 1;
                    ptl.set(addr, special(n, PteFlags::empty()));
                    assert_eq!(ptl.get(addr), special(n, PteFlags::empty()));
                    drop(ptl);
                    locked.fetch_add(1, SeqCst);
                    if rcu.sched_clock_irq() {
                        rcu.rcu_core();
                    }
                }
                rcu.cpu_offline(CpuId::new(1));
            });
            // The "reclaimer": PMD lock, then the PTE lock; clear the PMD;
            // free the table through the gather.
            struct StopOnDrop<'a>(&'a AtomicBool);
            impl Drop for StopOnDrop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, SeqCst);
                }
            }
            let _stop = StopOnDrop(&stop);
            for _ in 0..500 {
                // Take turns in progress, not in time: wait until the
                // locker has linked a table again (only the locker links,
                // only this side unlinks). Then every round finds a table
                // to reclaim while the locker keeps racing with it.
                let pmd = loop {
                    match pt.slot(addr, Level::Pmd) {
                        Some(pmd) if pmd.load(SeqCst) != 0 => break pmd,
                        _ => {}
                    }
                    // A failed locker ends the test (its panic reports).
                    if locker.is_finished() {
                        return;
                    }
                    if rcu.sched_clock_irq() {
                        rcu.rcu_core();
                    }
                    std::thread::yield_now();
                };
                let guard = pt.pmd_lock(pmd);
                if let Some(mut ptl) = pt.pte_offset_map_lock(addr) {
                    let table = ptl.table_pfn();
                    ptl.get_and_clear(addr);
                    pmd.store(0, SeqCst);
                    drop(ptl);
                    drop(guard);
                    let mut tlb = MmuGather::new(&pt, false);
                    pt.queue_table_free(&mut tlb, table, addr);
                    tlb.finish();
                    reclaimed.fetch_add(1, SeqCst);
                } else {
                    drop(guard);
                }
                if rcu.sched_clock_irq() {
                    rcu.rcu_core();
                }
                std::thread::yield_now();
            }
        });
        // Only the reclaimer unlinks, and it waited for a linked table
        // before each round: every round reclaimed one, and each table
        // was linked by a lock that the locker then counted.
        assert_eq!(reclaimed.load(SeqCst), 500);
        assert!(locked.load(SeqCst) >= 500);
        teardown(&pt, 0, PMD_SIZE * 2);
        rcu.rcu_barrier();
    }
    assert_eq!(free_pages(&pa), before);
}

#[test]
fn without_a_batch_page_a_table_is_freed_alone_after_flush_and_grace_period() {
    let (pa, rcu) = machine(1);
    let pt = PageTable::new(&pa, &rcu, 1).unwrap();
    pt.pte_alloc_map_lock(0x1000)
        .unwrap()
        .set(0x1000, special(50, PteFlags::empty()));
    pt.pte_offset_map_lock(0x1000)
        .unwrap()
        .get_and_clear(0x1000);
    let table = pt.pte_offset_map_lock(0x1000).unwrap().table_pfn();
    // Use up every page a GFP_NOWAIT allocation could get.
    let mut held = Vec::new();
    for gfp in [Gfp::KERNEL, Gfp::NOWAIT] {
        while let Ok(pfn) = pa.alloc_pages(gfp, Order::ZERO) {
            held.push(pfn);
        }
    }
    let flushes = pa.platform().0.nr_tlb_flushes();
    let mut tlb = MmuGather::new(&pt, false);
    pt.free_pgd_range(&mut tlb, 0, PMD_SIZE, 0, 0);
    // The PTE table went alone: flushed and freed inside remove_table.
    assert!(pt.stat(PtStat::TableBatchNoMem) >= 1);
    assert!(pa.platform().0.nr_tlb_flushes() > flushes);
    assert_eq!(
        pa.memmap().page(table).flags() & PageFlags::PGTABLE,
        PageFlags::empty()
    );
    tlb.finish();
    for pfn in held {
        pa.free_pages(pfn, Order::ZERO).unwrap();
    }
    rcu.rcu_barrier();
    assert_eq!(pt.pgtables_bytes(), 0);
}

#[test]
fn slow_path_reclaim_without_a_batch_page_waits_outside_rcu() {
    let (pa, rcu) = machine(1);
    let pt = PageTable::new(&pa, &rcu, 1).unwrap();
    pt.pte_alloc_map_lock(0x1000)
        .unwrap()
        .set(0x1000, special(50, PteFlags::empty()));
    pt.pte_offset_map_lock(0x1000)
        .unwrap()
        .get_and_clear(0x1000);
    let table = pt.pte_offset_map_lock(0x1000).unwrap().table_pfn();
    let mut held = Vec::new();
    for gfp in [Gfp::KERNEL, Gfp::NOWAIT] {
        while let Ok(pfn) = pa.alloc_pages(gfp, Order::ZERO) {
            held.push(pfn);
        }
    }
    let mut tlb = MmuGather::new(&pt, false);
    assert!(pt.try_free_pte_table(&mut tlb, 0x1000));
    assert_eq!(pt.stat(PtStat::TableBatchNoMem), 1);
    // The in-place grace period was a real one, not refused as a sleep
    // inside a read-side section.
    assert_eq!(rcu.stats().get(crate::rcu::RcuStat::BlockedInReader), 0);
    assert_eq!(
        pa.memmap().page(table).flags() & PageFlags::PGTABLE,
        PageFlags::empty()
    );
    tlb.finish();
    for pfn in held {
        pa.free_pages(pfn, Order::ZERO).unwrap();
    }
    teardown(&pt, 0, PMD_SIZE);
    rcu.rcu_barrier();
}

/// A gather of folio runs (`__tlb_remove_folio_pages()`) counts pages,
/// not entries, against its limit, and drops each run's references
/// together after the flush.
#[test]
fn folio_runs_count_pages_against_the_gather_limit() {
    let (pa, rcu) = machine(1);
    let pt = PageTable::new(&pa, &rcu, 1).unwrap();
    pt.set_gather_limit(20);
    let before = free_pages(&pa);
    let pfn = pa.alloc_pages(Gfp::KERNEL, Order::new(4)).unwrap();
    let folio = crate::folio::Folio::prep(pa.memmap(), pfn);
    // 20 mappings: the folio's 16 pages, 4 of them twice.
    crate::folio::folio_ref_add(&folio, 19);
    let mut tlb = MmuGather::new(&pt, false);
    assert!(!tlb.remove_folio_pages(pfn, 12, 0x10000), "12 pages");
    assert!(!tlb.remove_folio_pages(pfn.add(12), 4, 0x1c000), "16");
    assert!(tlb.remove_folio_pages(pfn, 4, 0x40000), "20: full");
    assert_eq!(
        folio.page(0).refcount(),
        20,
        "nothing dropped before the flush"
    );
    assert_eq!(free_pages(&pa), before - 16);
    tlb.finish();
    assert_eq!(free_pages(&pa), before, "three puts freed the folio");
}
