//! Reverse mapping of anonymous folios (`mm/rmap.c`): anon_vmas, their
//! inheritance across fork, and the walk from a folio to every PTE that
//! maps it (for shmem folios too, through the VMAs that map their object).
//!
//! An anon_vma is a small integer here. Each one has a parent (the anon_vma
//! of the VMA it was forked from) and so a root; the anon_vmas of one root
//! form a family, and the registry keeps, per family, the MM ids of the
//! address spaces that have a VMA in it. A VMA is chained to anon_vma `X` (Linux's
//! `anon_vma_chain`) when `X` is its own anon_vma or an ancestor of it: a
//! child's VMA sees the folios of its parent's. A folio records the
//! anon_vma and the linear page index (`vm_pgoff` units) of the VMA that
//! created it, so the walk computes, in every chained VMA, the address
//! where the folio would be mapped and checks that PTE.
//!
//! As Linux, a VMA gets its anon_vma lazily, at its first anonymous page
//! (`anon_vma_prepare()`): until then it merges with any compatible
//! neighbour. Since our VMAs are immutable, the assignment stores a copy
//! of the VMA carrying the new anon_vma, an exact fit in the maple tree
//! (no allocation), and frees the old copy after a grace period.
//!
//! Simplifications, documented: Linux reaches the VMAs from the anon_vma
//! (its interval tree of `anon_vma_chain`s); we keep MM ids per family and
//! the walk is given the live address spaces (the kernel's process list),
//! then visits every VMA of the members among them. An anon_vma family
//! lives until the last address space of the family is gone (Linux
//! refcounts each anon_vma).
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::vma::{AnonVmaId, VmFlags, Vma};
use super::{Mm, Vm};
use crate::folio::Folio;
use crate::platform::Platform;

/// The anon_vma registry of a machine.
#[derive(Debug, Default)]
pub(super) struct AnonVmas {
    next: AnonVmaId,
    /// Each anon_vma's parent (`None` for a root).
    parent: BTreeMap<AnonVmaId, Option<AnonVmaId>>,
    /// Per family root: the MM ids of the address spaces with a VMA in it.
    members: BTreeMap<AnonVmaId, Vec<u32>>,
}

impl AnonVmas {
    /// No anon_vma is left (every address space exited).
    #[cfg(any(test, feature = "std"))]
    pub(super) fn is_empty(&self) -> bool {
        self.parent.is_empty() && self.members.is_empty()
    }

    fn root(&self, mut av: AnonVmaId) -> AnonVmaId {
        while let Some(Some(p)) = self.parent.get(&av) {
            av = *p;
        }
        av
    }

    /// A new anon_vma, child of `parent` if given.
    fn alloc(&mut self, parent: Option<AnonVmaId>) -> AnonVmaId {
        self.next += 1;
        self.parent.insert(self.next, parent);
        self.next
    }

    fn join(&mut self, av: AnonVmaId, mm: u32) {
        let list = self.members.entry(self.root(av)).or_default();
        if !list.contains(&mm) {
            list.push(mm);
        }
    }

    /// Whether a VMA whose anon_vma is `own` is chained to `av`.
    fn chained(&self, own: AnonVmaId, av: AnonVmaId) -> bool {
        let mut x = Some(own);
        while let Some(a) = x {
            if a == av {
                return true;
            }
            x = self.parent.get(&a).copied().flatten();
        }
        false
    }
}

/// Whether `a` and `b` (directly above it) could share an anon_vma
/// (`anon_vma_compatible()`): adjacent, same flags but for the access
/// rights and soft-dirty, contiguous page offsets.
fn anon_vma_compatible(a: &Vma, b: &Vma) -> bool {
    let ignore = VmFlags::ACCESS | VmFlags::SOFTDIRTY;
    a.end == b.start && (a.flags - ignore) == (b.flags - ignore) && b.pgoff == a.pgoff + a.pages()
}

/// One PTE found by an rmap walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RmapHit {
    pub mm_id: u32,
    pub addr: u64,
    /// Page of the folio mapped there.
    pub page: usize,
}

impl<'v, 'a, P: Platform> Mm<'v, 'a, P> {
    /// The anon_vma of `vma` (the VMA at `addr`, as the caller looked it
    /// up), assigned now if it has none (`anon_vma_prepare()`). The caller
    /// holds the mmap lock (read). Returns 0 (no anon_vma) when
    /// `Vm::anon_vmas_on` is off; `None` if no VMA is there.
    pub(super) fn anon_vma_prepare(&self, vma: &Vma, addr: u64) -> Option<AnonVmaId> {
        // Fast path, without the registry lock: a VMA keeps its anon_vma
        // once it has one, and only writers (excluded by the mmap lock)
        // replace it by another VMA.
        if let Some(av) = vma.anon_vma {
            return Some(av);
        }
        let mut reg = self.vm.anon_vmas.lock();
        let p = self.vmas.load(addr)?;
        let v = self.read(p);
        if !self
            .vm
            .anon_vmas_on
            .load(core::sync::atomic::Ordering::Relaxed)
        {
            return Some(0);
        }
        if let Some(av) = v.anon_vma {
            return Some(av);
        }
        // find_mergeable_anon_vma(): share an adjacent neighbour's, so that
        // the two can still merge later.
        let reuse = [
            self.prev_vma_entry(v.start).map(|(_, p)| (p, v)),
            self.find_vma_entry(v.end).map(|(_, n)| (v, n)),
        ]
        .into_iter()
        .flatten()
        .find(|(a, b)| anon_vma_compatible(a, b) && (a.anon_vma.is_some() || b.anon_vma.is_some()))
        .and_then(|(a, b)| a.anon_vma.or(b.anon_vma));
        let av = match reuse {
            Some(av) => av,
            None => {
                let av = reg.alloc(None);
                reg.join(av, self.id());
                av
            }
        };
        self.swap_vma_exact(
            p,
            Vma {
                anon_vma: Some(av),
                ..v
            },
        );
        Some(av)
    }

    /// The child's anon_vma for a VMA forked from one with `parent`
    /// (`anon_vma_fork()`): a new anon_vma under the parent's, in its
    /// family, which `child` joins.
    pub(super) fn anon_vma_fork(
        &self,
        parent: Option<AnonVmaId>,
        child: &Mm<'_, '_, P>,
    ) -> Option<AnonVmaId> {
        let parent = parent?;
        let mut reg = self.vm.anon_vmas.lock();
        let av = reg.alloc(Some(parent));
        reg.join(av, child.id());
        Some(av)
    }

    /// Leaves every anon_vma family (at exit); a family with no address
    /// space left is forgotten.
    pub(super) fn anon_vma_exit(&self) {
        let me = self.id();
        let mut reg = self.vm.anon_vmas.lock();
        let mut gone = Vec::new();
        for (root, list) in reg.members.iter_mut() {
            list.retain(|&m| m != me);
            if list.is_empty() {
                gone.push(*root);
            }
        }
        for root in gone {
            reg.members.remove(&root);
            let family: Vec<AnonVmaId> = reg
                .parent
                .keys()
                .copied()
                .filter(|&a| reg.root(a) == root)
                .collect();
            for a in family {
                reg.parent.remove(&a);
            }
        }
    }
}

impl<'a, P: Platform> Vm<'a, P> {
    /// Every PTE that maps a page of the anonymous `folio`
    /// (`rmap_walk_anon()`), sorted, looking in those of `mms` (the live
    /// address spaces the caller knows: the kernel's processes) that
    /// belong to the folio's anon_vma family.
    ///
    /// A shmem folio is looked up instead in every VMA of `mms` that maps
    /// its object over its index (`rmap_walk_file()`; Linux asks the
    /// object's `i_mmap`, reached from `folio->mapping` under the folio
    /// lock: without a folio lock to keep the object alive, this walk
    /// stays on the caller's address spaces; truncation and hole punching
    /// use `i_mmap`).
    pub fn rmap_walk(&self, folio: &Folio<'_>, mms: &[&Mm<'_, 'a, P>]) -> Vec<RmapHit> {
        let mut hits = Vec::new();
        if let Some(mapping) = folio.mapping() {
            for mm in mms {
                for (_, v) in mm.vmas_in(0, u64::MAX) {
                    if v.shmem.is_some_and(|o| o.mapping() == mapping) {
                        mm.rmap_one(folio, &v, &mut hits);
                    }
                }
            }
            hits.sort();
            return hits;
        }
        let Some(av) = folio.anon_vma() else {
            return hits;
        };
        let reg = self.anon_vmas.lock();
        let Some(members) = reg.members.get(&reg.root(av)) else {
            return hits;
        };
        for mm in mms.iter().filter(|m| members.contains(&m.id())) {
            for (_, v) in mm.vmas_in(0, u64::MAX) {
                if v.anon_vma.is_some_and(|own| reg.chained(own, av)) {
                    mm.rmap_one(folio, &v, &mut hits);
                }
            }
        }
        hits.sort();
        hits
    }
}

impl<P: Platform> Mm<'_, '_, P> {
    /// The PTEs of `v` that map pages of `folio` at their linear index
    /// (`vma_address()` and `page_vma_mapped_walk()`), added to `hits`.
    fn rmap_one(&self, folio: &Folio<'_>, v: &Vma, hits: &mut Vec<RmapHit>) {
        for i in 0..folio.nr_pages() {
            let index = folio.index() + i as u64;
            if index < v.pgoff || index >= v.pgoff + v.pages() {
                continue;
            }
            let addr = v.start + ((index - v.pgoff) << crate::addr::PAGE_SHIFT);
            let Some(ptl) = self.pt.pte_offset_map_lock(addr) else {
                continue;
            };
            let e = ptl.get(addr);
            if e.is_present() && e.pfn() == folio.head().add(i as u64) {
                hits.push(RmapHit {
                    mm_id: self.id(),
                    addr,
                    page: i,
                });
            }
        }
    }
}
