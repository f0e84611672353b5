//! Memory sealing (`mm/mseal.c`, Linux 6.10): `mseal(start, len, 0)` sets
//! `VM_SEALED` on every VMA of a fully mapped range (split at its ends
//! and merged by `vma.rs`'s `modify_flags`). A sealed VMA cannot be
//! unmapped, moved, shrunk, grown, mapped over or have its protection
//! changed (`EPERM`), and discarding advice (`MADV_DONTNEED`, `FREE`,
//! `DONTFORK`) is refused on sealed private memory that is not writable
//! (its contents could otherwise be reset to zeroes). The seal survives
//! fork and ends with the address space (exec). The checks sit where
//! Linux 6.15+ keeps them: `do_munmap` (munmap, brk, mremap's
//! destination) before anything is unmapped, `mmap` before a `MAP_FIXED`
//! store, per VMA in `mprotect` and `madvise`, the source VMA in
//! `mremap`.
#![forbid(unsafe_code)]

use super::Mm;
use super::madvise::Advice;
use super::vma::{VmFlags, Vma};
use crate::addr::PAGE_SIZE;
use crate::errno::{Errno, Result};
use crate::platform::Platform;

impl<P: Platform> Mm<'_, '_, P> {
    /// `mseal(start, len, flags)` (`do_mseal()`).
    pub fn mseal(&self, start: u64, len: u64, flags: u64) -> Result<()> {
        if flags != 0 || start & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        // PAGE_ALIGN, with a small negative length rounded up to zero
        // refused.
        let aligned = len.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        if len != 0 && aligned == 0 {
            return Err(Errno::EINVAL);
        }
        let end = start.wrapping_add(aligned);
        if end < start {
            return Err(Errno::EINVAL);
        }
        if end == start {
            return Ok(());
        }
        let mut l = self.mmap_lock.write(self.platform());
        // range_contains_unmapped(): holes anywhere refuse the whole call.
        let vmas = self.vmas_in_small(start, end);
        let mut at = start;
        for &(_, v) in vmas.iter() {
            if v.start > at {
                return Err(Errno::ENOMEM);
            }
            at = v.end;
        }
        if at < end {
            return Err(Errno::ENOMEM);
        }
        for &(_, v) in vmas.iter() {
            if !v.flags.contains(VmFlags::SEALED) {
                let (s, e) = (start.max(v.start), end.min(v.end));
                self.modify_flags(&mut l, s, e, v.flags | VmFlags::SEALED)?;
            }
        }
        Ok(())
    }

    /// Whether a VMA overlapping `[start, end)` is sealed
    /// (`vma_is_sealed()` over a range).
    pub(super) fn range_sealed(&self, start: u64, end: u64) -> bool {
        self.vmas_in_small(start, end)
            .iter()
            .any(|(_, v)| v.flags.contains(VmFlags::SEALED))
    }
}

/// Whether `advice` may be applied to `v` (`can_madvise_modify()`): the
/// discarding kinds are refused on a sealed private VMA that is not
/// writable.
pub(super) fn madvise_allowed(v: &Vma, advice: Advice) -> bool {
    let discard = matches!(advice, Advice::DontNeed | Advice::Free | Advice::DontFork);
    let ro_anon = v.shmem.is_none()
        && !v.flags.contains(VmFlags::SHARED)
        && !v.flags.contains(VmFlags::WRITE);
    !(discard && ro_anon && v.flags.contains(VmFlags::SEALED))
}
