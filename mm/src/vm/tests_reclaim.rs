//! Empty PTE-table reclaim on MADV_DONTNEED (Linux 6.14): which zaps
//! free tables and by which path, VmPTE, the switch, and the race with
//! faults and lockless walkers.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::vec::Vec;

use super::tests::{TestMm, peek, poke, with_mm, with_mm_on};
use super::*;
use crate::addr::CpuId;
use crate::pgtable::{Entry, Level, PMD_SIZE, PtStat, TABLE_POISON};
use crate::rand::XorShift64;

const RW: Prot = Prot::READ.union(Prot::WRITE);
const ANON: MapFlags = MapFlags::PRIVATE.union(MapFlags::ANONYMOUS);
const PG: u64 = PAGE_SIZE;
const DONTNEED: i64 = 4;
/// A 2 MiB-aligned place for the tests' mappings.
const BASE: u64 = 0x4000_0000;

fn map(mm: &TestMm<'_, '_>, len: u64) {
    let flags = ANON | MapFlags::FIXED | MapFlags::NORESERVE;
    assert_eq!(mm.mmap(BASE, len, RW, flags, -1, 0), Ok(BASE));
}

fn stat(mm: &TestMm<'_, '_>, s: PtStat) -> u64 {
    mm.page_table().stat(s)
}

#[test]
fn dontneed_of_whole_tables_frees_them_on_the_fast_path() {
    with_mm(|mm| {
        map(mm, 4 * PMD_SIZE);
        for i in 0..4 * PMD_SIZE / PG / 16 {
            poke(mm, BASE + i * 16 * PG, i).unwrap();
        }
        // 4 PTE tables, a PMD and a PUD table.
        assert_eq!(mm.status().vm_pte, 24);
        mm.madvise(BASE, 4 * PMD_SIZE, DONTNEED).unwrap();
        assert_eq!(stat(mm, PtStat::PtReclaimFast), 4);
        assert_eq!(mm.status().vm_pte, 8, "the PTE tables are gone");
        assert_eq!(mm.status().vm_rss, 0);
        assert!(mm.page_table().pte_offset_map_lock(BASE).is_none());
        // Touching again installs a fresh, zeroed table.
        assert_eq!(peek(mm, BASE + 16 * PG), Ok(0));
        poke(mm, BASE, 9).unwrap();
        assert_eq!(mm.status().vm_pte, 12);
    });
}

#[test]
fn partial_dontneed_keeps_the_table() {
    with_mm(|mm| {
        map(mm, PMD_SIZE);
        for i in 0..8 {
            poke(mm, BASE + i * PG, i).unwrap();
        }
        let before = mm.status().vm_pte;
        // Half the table: the other half is empty too, but a zap that does
        // not cover the whole table never frees it.
        mm.madvise(BASE, PMD_SIZE / 2, DONTNEED).unwrap();
        assert_eq!(mm.status().vm_pte, before);
        assert_eq!(
            stat(mm, PtStat::PtReclaimFast) + stat(mm, PtStat::PtReclaimSlow),
            0
        );
        assert_eq!(mm.status().vm_rss, 0);
    });
}

#[test]
fn a_flush_midway_sends_reclaim_to_the_slow_path() {
    with_mm(|mm| {
        // As if the gather were nearly full already.
        mm.page_table().set_gather_limit(300);
        map(mm, PMD_SIZE);
        for i in 0..PMD_SIZE / PG {
            poke(mm, BASE + i * PG, i).unwrap();
        }
        assert_eq!(mm.status().vm_rss, 2048);
        mm.madvise(BASE, PMD_SIZE, DONTNEED).unwrap();
        // 512 pages overflow the gather: the PTE lock was dropped for the
        // flush, so only a rescan under both locks may free the table.
        assert_eq!(stat(mm, PtStat::PtReclaimFast), 0);
        assert_eq!(stat(mm, PtStat::PtReclaimSlow), 1);
        assert_eq!(mm.status().vm_pte, 8);
        assert_eq!(mm.status().vm_rss, 0);
    });
}

#[test]
fn the_switch_turns_reclaim_off() {
    with_mm(|mm| {
        mm.vm.pt_reclaim.store(false, SeqCst);
        map(mm, 2 * PMD_SIZE);
        poke(mm, BASE, 1).unwrap();
        poke(mm, BASE + PMD_SIZE, 1).unwrap();
        let before = mm.status().vm_pte;
        mm.madvise(BASE, 2 * PMD_SIZE, DONTNEED).unwrap();
        assert_eq!(mm.status().vm_pte, before);
        // munmap frees its tables whatever the switch says.
        mm.munmap(BASE, 2 * PMD_SIZE).unwrap();
        assert_eq!(mm.status().vm_pte, 0);
    });
}

#[test]
fn a_busy_pmd_lock_sends_reclaim_to_the_slow_path() {
    with_mm_on(2, 8192, |mm| {
        map(mm, PMD_SIZE);
        poke(mm, BASE, 1).unwrap();
        let held = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                crate::sim::set_cpu(1);
                let pmd = mm.page_table().slot(BASE, Level::Pmd).unwrap();
                let guard = mm.page_table().pmd_lock(pmd);
                held.store(true, SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(50));
                drop(guard);
                mm.vm.rcu.cpu_offline(CpuId::new(1));
            });
            while !held.load(SeqCst) {
                std::thread::yield_now();
            }
            mm.madvise(BASE, PMD_SIZE, DONTNEED).unwrap();
        });
        assert_eq!(stat(mm, PtStat::PtReclaimFast), 0);
        assert_eq!(stat(mm, PtStat::PtReclaimSlow), 1);
        assert_eq!(mm.status().vm_pte, 8);
    });
}

/// Linux's headline scenario, scaled down: touch each 2 MiB of a large
/// MAP_NORESERVE mapping, then MADV_DONTNEED it. With reclaim, VmPTE
/// stays at the upper tables; without, one table per chunk remains.
#[test]
fn headline_loop_small_scale_vmpte_stays_flat_with_reclaim() {
    for reclaim in [true, false] {
        let vm_pte = with_mm(|mm| {
            mm.vm.pt_reclaim.store(reclaim, SeqCst);
            let chunks = 32;
            map(mm, chunks * PMD_SIZE);
            for c in 0..chunks {
                let chunk = BASE + c * PMD_SIZE;
                for p in (0..PMD_SIZE).step_by(64 * PG as usize) {
                    poke(mm, chunk + p, c).unwrap();
                }
                mm.madvise(chunk, PMD_SIZE, DONTNEED).unwrap();
            }
            assert_eq!(mm.status().vm_rss, 0);
            mm.status().vm_pte
        });
        if reclaim {
            assert_eq!(vm_pte, 8, "only the PMD and PUD tables remain");
        } else {
            assert_eq!(vm_pte, 8 + 32 * 4, "one PTE table per chunk remains");
        }
    }
}

/// One CPU touches and MADV_DONTNEEDs 2 MiB chunks while others fault
/// and write under the PTE lock and a lockless walker reads PTEs under
/// RCU: no walker ever sees a freed (poisoned) table, a value written is
/// read back until its chunk is zapped, and every frame comes back.
#[test]
fn dontneed_races_with_faults_and_lockless_walkers() {
    const CHUNKS: u64 = 4;
    const ROUNDS: u64 = 200;
    with_mm_on(4, 16384, |mm| {
        // Full tables overflow the gather: flushes midway, slow paths.
        mm.page_table().set_gather_limit(256);
        map(mm, CHUNKS * PMD_SIZE);
        // Even: stable; odd: a DONTNEED of the chunk is in progress.
        let gens: Vec<AtomicU64> = (0..CHUNKS).map(|_| AtomicU64::new(0)).collect();
        let stop = AtomicBool::new(false);
        let checked = AtomicU64::new(0);
        let tick = || {
            if mm.vm.rcu.sched_clock_irq() {
                mm.vm.rcu.rcu_core();
            }
        };
        std::thread::scope(|s| {
            for cpu in 1..3u32 {
                let (gens, stop, checked) = (&gens, &stop, &checked);
                s.spawn(move || {
                    crate::sim::set_cpu(cpu);
                    let mut rng = XorShift64::new(cpu as u64);
                    while !stop.load(SeqCst) {
                        let page = rng.below((CHUNKS * PMD_SIZE / PG) as usize) as u64;
                        let addr = BASE + page * PG;
                        let chunk = (page * PG / PMD_SIZE) as usize;
                        let value = (cpu as u64) << 32 | rng.below(1 << 30) as u64 | 1;
                        let g1 = gens[chunk].load(SeqCst);
                        if mm.handle_fault(addr, FaultAccess::Write).is_err() {
                            panic!("fault failed at {addr:#x}");
                        }
                        if let Some(ptl) = mm.page_table().pte_offset_map_lock(addr) {
                            let e = ptl.get(addr);
                            assert_ne!(e.0, TABLE_POISON, "locked a freed table");
                            if e.is_writable() {
                                // A frame mapped by a PTE we hold locked:
                                // not freed meanwhile.
                                let pa = crate::addr::PhysAddr::new(
                                    e.pfn().phys_addr().as_u64() + cpu as u64 * 64,
                                );
                                let word = mm.vm.pa.platform().0.ram_word(pa);
                                word.store(value, SeqCst);
                                drop(ptl);
                                std::thread::yield_now();
                                if let Some(ptl) = mm.page_table().pte_offset_map_lock(addr) {
                                    let e2 = ptl.get(addr);
                                    let g2 = gens[chunk].load(SeqCst);
                                    if g1 == g2 && g1 % 2 == 0 {
                                        // No zap of this chunk since: the
                                        // same page, our value in it.
                                        assert_eq!(e2, e, "PTE lost at {addr:#x}");
                                        // The PTE lock is held again on the same PTE: the
                                        // frame is still mapped, not freed.
                                        let got = word.load(SeqCst);
                                        assert_eq!(got, value, "value lost at {addr:#x}");
                                        checked.fetch_add(1, SeqCst);
                                    }
                                }
                            }
                        }
                        tick();
                    }
                    mm.vm.rcu.cpu_offline(CpuId::new(cpu));
                });
            }
            {
                let stop = &stop;
                s.spawn(move || {
                    crate::sim::set_cpu(3);
                    let pa_pages = mm.vm.pa.memmap().len() as u64;
                    while !stop.load(SeqCst) {
                        {
                            let _rcu = mm.vm.rcu.read_lock();
                            for c in 0..CHUNKS {
                                for p in (0..PMD_SIZE).step_by(PG as usize * 8) {
                                    let Some(slot) =
                                        mm.page_table().slot(BASE + c * PMD_SIZE + p, Level::Pte)
                                    else {
                                        continue;
                                    };
                                    let e = Entry(slot.load(SeqCst));
                                    assert_ne!(
                                        e.0, TABLE_POISON,
                                        "lockless walker read a freed table"
                                    );
                                    assert!(
                                        e.is_none() || e.pfn().as_u64() < pa_pages,
                                        "garbage PTE {e:?}"
                                    );
                                }
                            }
                        }
                        tick();
                        std::thread::yield_now();
                    }
                    mm.vm.rcu.cpu_offline(CpuId::new(3));
                });
            }
            struct StopOnDrop<'a>(&'a AtomicBool);
            impl Drop for StopOnDrop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, SeqCst);
                }
            }
            let _stop = StopOnDrop(&stop);
            // At least ROUNDS rounds, and on until the walkers have checked
            // enough values (they may be starved on a busy host).
            let mut round = 0;
            while round < ROUNDS || checked.load(SeqCst) < 200 && round < 20 * ROUNDS {
                let c = round % CHUNKS;
                let chunk = BASE + c * PMD_SIZE;
                // Every fifth round fills the whole table: the zap then
                // drops its lock for a flush midway and must take the slow
                // path, racing with the faulting CPUs.
                let step = if round % 5 == 0 { 1 } else { 32 };
                for p in (0..PMD_SIZE).step_by((step * PG) as usize) {
                    poke(mm, chunk + p, round).unwrap();
                }
                gens[c as usize].fetch_add(1, SeqCst);
                mm.madvise(chunk, PMD_SIZE, DONTNEED).unwrap();
                gens[c as usize].fetch_add(1, SeqCst);
                tick();
                round += 1;
            }
        });
        let reclaimed = stat(mm, PtStat::PtReclaimFast) + stat(mm, PtStat::PtReclaimSlow);
        assert!(reclaimed > 0, "no table was reclaimed");
        assert!(checked.load(SeqCst) > 0, "no value was checked");
        std::println!(
            "race: {reclaimed} tables reclaimed ({} fast, {} slow, {} slow-path refusals), {} values checked, {} map-lock retries",
            stat(mm, PtStat::PtReclaimFast),
            stat(mm, PtStat::PtReclaimSlow),
            stat(mm, PtStat::PtReclaimSlowFail),
            checked.load(SeqCst),
            stat(mm, PtStat::MapLockRetry)
        );
    });
}
