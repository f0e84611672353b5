//! In-kernel tests of address spaces on the kernel's real `Vm` (its page
//! allocator, slab node cache and RCU, with the real tick and scheduler):
//!
//! - MADV_DONTNEED reclaims the PTE tables it empties while a kernel thread
//!   keeps faulting in the same range and locking its tables: faults always
//!   complete, a locked table is never a freed (poisoned) one, VmPTE drops,
//!   and every frame comes back.
//! - fork, copy-on-write and rmap walks: the parent's write copies a shared
//!   page, the rmap walk finds exactly the mappings of each folio, and the
//!   parent reuses its pages once the child is gone.
//!
//! The address spaces here are never loaded in CR3: faults are resolved by
//! calling the fault path, as the page-fault handler does.
#![forbid(unsafe_code)]

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use mm::PAGE_SIZE;
use mm::folio::Folio;
use mm::pgtable::{PMD_SIZE, PtStat, TABLE_POISON};
use mm::rand::XorShift64;
use mm::vm::{FaultAccess, MapFlags, Mm, Prot, VmEvent};

use crate::ktest::KTest;
use crate::process::{self, KMm};
use crate::sched;

pub const KTESTS: &[KTest] = crate::ktests![
    dontneed_reclaims_tables_while_a_thread_faults,
    fork_cow_and_rmap_walks,
];

const RW: Prot = Prot::READ.union(Prot::WRITE);
const FIXED: MapFlags = MapFlags::PRIVATE
    .union(MapFlags::ANONYMOUS)
    .union(MapFlags::FIXED);
const BASE: u64 = 0x4000_0000;
const CHUNKS: u64 = 4;

fn dontneed_reclaims_tables_while_a_thread_faults() {
    let before = process::settled_used_pages();
    {
        let mm: Arc<KMm> = Arc::new(Mm::new(process::vm()).expect("mm"));
        mm.mmap(BASE, CHUNKS * PMD_SIZE, RW, FIXED, -1, 0)
            .expect("mmap");
        let stop = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(AtomicU64::new(0));
        let walker = {
            let (mm, stop, faults) = (mm.clone(), stop.clone(), faults.clone());
            sched::spawn("vm-faulter", move || {
                let mut rng = XorShift64::new(7);
                while !stop.load(SeqCst) {
                    let page = rng.below((CHUNKS * PMD_SIZE / PAGE_SIZE) as usize) as u64;
                    let addr = BASE + page * PAGE_SIZE;
                    mm.handle_fault(addr, FaultAccess::Write)
                        .expect("a fault in the mapping completes");
                    if let Some(ptl) = mm.page_table().pte_offset_map_lock(addr) {
                        assert_ne!(ptl.get(addr).0, TABLE_POISON, "locked a freed PTE table");
                    }
                    faults.fetch_add(1, SeqCst);
                    if page.is_multiple_of(16) {
                        sched::yield_now();
                    }
                }
            })
        };
        for round in 0..40 {
            let chunk = BASE + (round % CHUNKS) * PMD_SIZE;
            for p in (0..PMD_SIZE).step_by(16 * PAGE_SIZE as usize) {
                mm.handle_fault(chunk + p, FaultAccess::Write)
                    .expect("touch");
            }
            mm.madvise(chunk, PMD_SIZE, 4).expect("MADV_DONTNEED");
            sched::yield_now();
        }
        stop.store(true, SeqCst);
        assert!(walker.join().is_some(), "the faulting thread exited early");
        let pt = mm.page_table();
        let reclaimed = pt.stat(PtStat::PtReclaimFast) + pt.stat(PtStat::PtReclaimSlow);
        assert!(reclaimed > 0, "no table was reclaimed");
        assert!(faults.load(SeqCst) > 0, "the faulting thread never ran");
        // Everything dropped: only the PMD and PUD tables remain.
        mm.madvise(BASE, CHUNKS * PMD_SIZE, 4)
            .expect("MADV_DONTNEED");
        assert_eq!(mm.status().vm_rss, 0);
        assert_eq!(mm.status().vm_pte, 8);
        log::info!(
            "pt_reclaim in the kernel: {reclaimed} tables reclaimed ({} slow path, {} refused), {} faults by the other thread, {} map-lock retries",
            pt.stat(PtStat::PtReclaimSlow),
            pt.stat(PtStat::PtReclaimSlowFail),
            faults.load(SeqCst),
            pt.stat(PtStat::MapLockRetry)
        );
    }
    assert_eq!(process::settled_used_pages(), before, "frames leaked");
}

fn fork_cow_and_rmap_walks() {
    let vm = process::vm();
    let before = process::settled_used_pages();
    let (copies, reuses) = (vm.event(VmEvent::CowCopy), vm.event(VmEvent::CowReuse));
    {
        let mm = Mm::new(vm).expect("mm");
        mm.mmap(BASE, 16 * PAGE_SIZE, RW, FIXED, -1, 0)
            .expect("mmap");
        for p in 0..16 {
            mm.handle_fault(BASE + p * PAGE_SIZE, FaultAccess::Write)
                .expect("touch");
        }
        let pfn = |m: &KMm, a: u64| m.page_table().get_pte(a).expect("mapped").pfn();
        let child = mm.fork().expect("fork");
        assert!(!mm.page_table().get_pte(BASE).expect("pte").is_writable());
        assert_eq!(pfn(&child, BASE), pfn(&mm, BASE));
        mm.handle_fault(BASE, FaultAccess::Write).expect("CoW");
        assert_ne!(pfn(&child, BASE), pfn(&mm, BASE), "the parent got a copy");
        assert_eq!(vm.event(VmEvent::CowCopy) - copies, 1);
        let all = [&mm, &child];
        let shared = Folio::of(vm.pa.memmap(), pfn(&mm, BASE + PAGE_SIZE));
        let ids: Vec<u32> = vm
            .rmap_walk(&shared, &all)
            .iter()
            .map(|h| h.mm_id)
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&mm.id()) && ids.contains(&child.id()));
        let own = Folio::of(vm.pa.memmap(), pfn(&child, BASE));
        let hits = vm.rmap_walk(&own, &all);
        assert_eq!(hits.len(), 1);
        assert_eq!((hits[0].mm_id, hits[0].addr), (child.id(), BASE));
        drop(child);
        let before_write = pfn(&mm, BASE + 2 * PAGE_SIZE);
        mm.handle_fault(BASE + 2 * PAGE_SIZE, FaultAccess::Write)
            .expect("reuse");
        assert_eq!(
            pfn(&mm, BASE + 2 * PAGE_SIZE),
            before_write,
            "reused in place"
        );
        assert_eq!(vm.event(VmEvent::CowReuse) - reuses, 1);
        mm.validate().expect("valid address space");
    }
    assert_eq!(process::settled_used_pages(), before, "frames leaked");
}
