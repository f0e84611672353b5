//! mprotect (`mm/mprotect.c`): attribute changes on a range of VMAs
//! (split at the ends and merged afterwards by `vma.rs`'s
//! `modify_flags`, Linux's `vma_modify_flags()`), and
//! `change_protection()` of the PTEs.
#![forbid(unsafe_code)]

use super::mm::map_deny_write_exec;
use super::mmap::{page_align, prot_to_vm};
use super::vma::{VmFlags, Vma};
use super::{Mm, Prot};
use crate::addr::PAGE_SIZE;
use crate::errno::{Errno, Result};
use crate::pgtable::{PMD_SIZE, PteFlags, addr_end};
use crate::platform::Platform;
use crate::stack_vec::StackVec;

impl<P: Platform> Mm<'_, '_, P> {
    /// `mprotect()` (`do_mprotect_pkey()`).
    pub fn mprotect(&self, start: u64, len: u64, prot: Prot) -> Result<()> {
        if start & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        if !Prot::all().contains(prot) || prot.contains(Prot::GROWSDOWN | Prot::GROWSUP) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        let len = page_align(len).ok_or(Errno::ENOMEM)?;
        let mut end = start.checked_add(len).ok_or(Errno::ENOMEM)?;
        let mut start = start;
        let access = prot_to_vm(prot);
        let mut l = self.mmap_lock.write(self.platform());
        let (first_p, first) = self.find_vma_entry(start).ok_or(Errno::ENOMEM)?;
        if prot.contains(Prot::GROWSUP) {
            return Err(Errno::EINVAL);
        }
        if prot.contains(Prot::GROWSDOWN) {
            if !first.flags.contains(VmFlags::GROWSDOWN) {
                return Err(Errno::EINVAL);
            }
            start = first.start;
        }
        if first.start > start {
            return Err(Errno::ENOMEM);
        }
        end = end.max(start);
        let mut at = start;
        // The VMAs of the range; the one already found when it covers
        // the range (the common case: no second lookup).
        let vmas = if first.end >= end {
            let mut one = StackVec::new((first_p, Vma::EMPTY));
            one.push((first_p, first));
            one
        } else {
            self.vmas_in_small(start, end)
        };
        for &(p, v) in vmas.iter() {
            if v.start > at {
                // A hole: the VMAs before it keep their new protection.
                return Err(Errno::ENOMEM);
            }
            if v.flags.contains(VmFlags::SEALED) {
                // mseal.rs: the VMAs before it keep their new protection.
                return Err(Errno::EPERM);
            }
            // The new rights must be allowed by VM_MAY* (bit << 4).
            let want = (v.flags - VmFlags::ACCESS) | access;
            if (want.bits() & !(want.bits() >> 4)) & VmFlags::ACCESS.bits() != 0 {
                return Err(Errno::EACCES);
            }
            if map_deny_write_exec(self.mm_flags(), v.flags, want) {
                return Err(Errno::EACCES);
            }
            let mut nf = want;
            if nf.accountable() {
                nf |= VmFlags::ACCOUNT;
            }
            let (s, e) = (at.max(v.start), end.min(v.end));
            self.modify_vma_flags(&mut l, (p, v), s, e, nf)?;
            if nf.contains(VmFlags::ACCOUNT) && !v.flags.contains(VmFlags::ACCOUNT) {
                // Private memory made writable is committed now.
                self.vm.vm_acct_memory((e - s) / PAGE_SIZE);
            }
            self.change_protection(s, e, nf);
            at = e;
        }
        if at < end {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }

    /// Rewrites the PTEs of `[start, end)` for flags `nf`
    /// (`change_protection()`): write permission is only ever removed here
    /// (a write fault grants it back), NX follows VM_EXEC, a VMA without
    /// access rights keeps its pages as PROT_NONE entries. One TLB flush
    /// for the range.
    fn change_protection(&self, start: u64, end: u64, nf: VmFlags) {
        let mut addr = start;
        let mut changed = false;
        while addr < end {
            let next = addr_end(addr, end, PMD_SIZE);
            let Some(mut ptl) = self.pt.pte_offset_map_lock(addr) else {
                addr = next;
                continue;
            };
            let mut lazy = ptl.lazy_mmu();
            while addr < next {
                let old = lazy.get(addr);
                if old.is_present() {
                    let keep = old.flags()
                        & (PteFlags::SPECIAL
                            | PteFlags::DIRTY
                            | PteFlags::SOFT_DIRTY
                            | PteFlags::WRITE);
                    let mut f = nf.pte_flags() | keep;
                    if !nf.contains(VmFlags::WRITE) {
                        f -= PteFlags::WRITE;
                    }
                    if !nf.intersects(VmFlags::ACCESS) {
                        f = (f - PteFlags::PRESENT) | PteFlags::PROTNONE;
                    }
                    let new = old.with_flags(f);
                    if new != old {
                        lazy.set(addr, new);
                        changed = true;
                    }
                }
                addr += PAGE_SIZE;
            }
        }
        if changed {
            self.pt.flush_tlb(Some((start, end)));
        }
    }
}
