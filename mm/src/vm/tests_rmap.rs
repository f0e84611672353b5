//! rmap walks: exactly the PTEs that map a folio, after fork (three
//! generations, CoW in each), partial munmap and remapping.

use alloc::vec::Vec;
use core::sync::atomic::Ordering::SeqCst;

use super::tests::{TestMm, peek, poke, with_mm};
use super::*;
use crate::folio::Folio;

const RW: Prot = Prot::READ.union(Prot::WRITE);
const ANON: MapFlags = MapFlags::PRIVATE.union(MapFlags::ANONYMOUS);
const PG: u64 = PAGE_SIZE;
const BASE: u64 = 0x4000_0000;

/// The PTEs mapping pages of `folio`, found by brute force: every present
/// PTE of every address space.
fn scan(folio: &Folio<'_>, mms: &[&TestMm<'_, '_>]) -> Vec<RmapHit> {
    let mut hits = Vec::new();
    for mm in mms {
        for v in mm.vmas() {
            let mut a = v.start;
            while a < v.end {
                if let Some(e) = mm.page_table().get_pte(a)
                    && e.is_present()
                    && e.pfn().as_u64() >= folio.head().as_u64()
                    && e.pfn().as_u64() < folio.head().as_u64() + folio.nr_pages() as u64
                {
                    hits.push(RmapHit {
                        mm_id: mm.id(),
                        addr: a,
                        page: folio.page_idx(e.pfn()),
                    });
                }
                a += PG;
            }
        }
    }
    hits.sort();
    hits
}

fn folio_at<'m>(mm: &'m TestMm<'_, '_>, addr: u64) -> Folio<'m> {
    Folio::of(
        mm.vm.pa.memmap(),
        mm.page_table().get_pte(addr).unwrap().pfn(),
    )
}

#[test]
fn walks_find_every_mapping_across_three_generations_of_fork() {
    with_mm(|mm| {
        mm.vm.anon_orders.store(1 << 2 | 1, SeqCst);
        mm.mmap(BASE, 16 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        for i in 0..16 {
            poke(mm, BASE + i * PG, i).unwrap();
        }
        assert!(
            mm.vmas()[0].anon_vma.is_some(),
            "assigned at the first fault"
        );
        let child = mm.fork().unwrap();
        poke(&child, BASE + PG, 100).unwrap(); // CoW in the child
        let grandchild = child.fork().unwrap();
        poke(&grandchild, BASE + 2 * PG, 200).unwrap();
        poke(mm, BASE + 3 * PG, 300).unwrap(); // CoW in the parent
        let all = [mm, &child, &grandchild];
        // Every folio any of them maps: the walk equals the brute force.
        let mut checked = 0;
        for m in all {
            for i in 0..16 {
                let f = folio_at(m, BASE + i * PG);
                let walk = mm.vm.rmap_walk(&f, &all);
                assert_eq!(
                    walk,
                    scan(&f, &all),
                    "folio at {:#x} of mm {}",
                    BASE + i * PG,
                    m.id()
                );
                assert!(!walk.is_empty());
                checked += 1;
            }
        }
        assert_eq!(checked, 48);
        // The original folio of page 0 is mapped by all three.
        let f0 = folio_at(mm, BASE);
        let ids: Vec<u32> = mm.vm.rmap_walk(&f0, &all).iter().map(|h| h.mm_id).collect();
        assert!(
            ids.contains(&mm.id()) && ids.contains(&child.id()) && ids.contains(&grandchild.id())
        );
        // A page the grandchild copied is its own: the walk finds only it.
        let g2 = folio_at(&grandchild, BASE + 2 * PG);
        let walk = mm.vm.rmap_walk(&g2, &all);
        assert_eq!(walk.len(), 1);
        assert_eq!(walk[0].mm_id, grandchild.id());
        assert_eq!(peek(&grandchild, BASE + PG), Ok(100));
    });
}

#[test]
fn walks_follow_partial_munmap() {
    with_mm(|mm| {
        mm.vm.anon_orders.store(1 << 2 | 1, SeqCst);
        mm.mmap(BASE, 8 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
            .unwrap();
        poke(mm, BASE, 1).unwrap();
        let child = mm.fork().unwrap();
        let f = folio_at(mm, BASE);
        assert_eq!(f.nr_pages(), 4);
        let all = [mm, &child];
        assert_eq!(mm.vm.rmap_walk(&f, &all).len(), 8);
        // The child unmaps two pages of the folio; the parent's mprotect
        // splits its VMA: the walk still matches the scan.
        child.munmap(BASE + PG, 2 * PG).unwrap();
        mm.mprotect(BASE + 2 * PG, 2 * PG, Prot::READ).unwrap();
        let walk = mm.vm.rmap_walk(&f, &all);
        assert_eq!(walk.len(), 6);
        assert_eq!(walk, scan(&f, &all));
    });
}
