//! One page of another address space, reached as `get_user_pages_remote()`
//! with `FOLL_FORCE` reaches it (`mm/gup.c`): what `/proc/PID/mem` and a
//! debugger's `access_remote_vm()` read and write.
//!
//! `check_vma_flags()` decides: a forced read needs `VM_MAYREAD` only
//! (a `PROT_NONE` page reads as what it holds, or zeros); a forced write
//! to memory without `VM_WRITE` is allowed only in a copy-on-write
//! mapping (private with `VM_MAYWRITE`) and breaks the sharing as a write
//! fault would, but leaves the PTE read-only (`maybe_mkwrite()`): the
//! write goes to the now exclusive anonymous page through the kernel, as
//! a debugger sets a breakpoint in read-only text. Shared memory without
//! `VM_WRITE` refuses (EFAULT).
//!
//! Not here: a forced write to memory without any access right
//! (`PROT_NONE`): Linux faults a page in behind a `PROT_NONE` PTE; this
//! kernel's fault path maps pages present, so it refuses (EFAULT).
//!
//! # Context
//!
//! Takes the address space's mmap lock for read, then the page's PTE lock,
//! under which the caller's closure runs: the page cannot be unmapped,
//! freed or shared by a fork while it is read or written.
#![forbid(unsafe_code)]

use super::{FaultError, Mm, VmFlags};
use crate::addr::{PAGE_SIZE, Pfn};
use crate::errno::{Errno, Result};
use crate::folio::Folio;
use crate::pgtable::PteFlags;
use crate::platform::Platform;

/// Attempts at a page whose PTE keeps changing before it is given up.
const MAX_TRIES: usize = 4;

impl<P: Platform> Mm<'_, '_, P> {
    /// Runs `f` on the frame holding `addr` under its PTE lock, after
    /// faulting it in for a forced read or write (module docs); `f` gets
    /// `None` for a read of a page never touched in memory without access
    /// rights (zeros, Linux's zero page). EFAULT where Linux's GUP refuses.
    pub fn access_remote_page<R>(
        &self,
        addr: u64,
        write: bool,
        f: impl FnOnce(Option<Pfn>) -> R,
    ) -> Result<R> {
        let _l = self.mmap_lock.read(self.platform());
        let vma = self.vma_lookup(addr).ok_or(Errno::EFAULT)?;
        let fl = vma.flags;
        if fl.intersects(VmFlags::IO | VmFlags::PFNMAP) {
            return Err(Errno::EFAULT);
        }
        let cow = fl & (VmFlags::SHARED | VmFlags::MAYWRITE) == VmFlags::MAYWRITE;
        let no_access = !fl.intersects(VmFlags::ACCESS);
        if write {
            if !fl.contains(VmFlags::WRITE) && (!cow || no_access) {
                return Err(Errno::EFAULT);
            }
        } else if !fl.contains(VmFlags::READ) && !fl.contains(VmFlags::MAYREAD) {
            return Err(Errno::EFAULT);
        }
        let page = addr & !(PAGE_SIZE - 1);
        if no_access {
            // A forced read of PROT_NONE memory: the page it holds (a
            // PROTNONE entry), or zeros; nothing is faulted in.
            let Some(ptl) = self.pt.pte_offset_map_lock(page) else {
                return Ok(f(None));
            };
            let e = ptl.get(page);
            let pfn = e
                .flags()
                .intersects(PteFlags::PRESENT | PteFlags::PROTNONE)
                .then(|| e.pfn());
            return Ok(f(pfn));
        }
        let mut f = Some(f);
        for _ in 0..MAX_TRIES {
            if let Some(ptl) = self.pt.pte_offset_map_lock(page) {
                let e = ptl.get(page);
                let ok = e.is_present()
                    && (!write
                        || e.is_writable()
                        || (!fl.contains(VmFlags::WRITE)
                            && !e.flags().contains(PteFlags::SPECIAL)
                            && Folio::of(self.vm.pa.memmap(), e.pfn()).wp_can_reuse()));
                if ok {
                    let f = f.take().expect("called once");
                    return Ok(f(Some(e.pfn())));
                }
            }
            // handle_pte_fault() with the lock held: the caller side of
            // handle_mm_fault(); a forced write breaks CoW without
            // making the PTE writable.
            match self.handle_pte_fault(&vma, page, write) {
                Ok(()) => {}
                Err(FaultError::Oom | FaultError::Sigbus | FaultError::Segv(_)) => {
                    return Err(Errno::EFAULT);
                }
            }
        }
        Err(Errno::EFAULT)
    }
}
