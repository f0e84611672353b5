//! Memory locking (`mm/mlock.c`): `mlock`, `mlock2`, `munlock`,
//! `mlockall` and `munlockall` set and clear `VM_LOCKED` (with
//! `VM_LOCKONFAULT` for `MLOCK_ONFAULT` / `MCL_ONFAULT`) on ranges of VMAs,
//! split and merged by `vma.rs`'s `modify_flags` as Linux's
//! `mlock_fixup()` does, and fault the pages in (`__mm_populate()`)
//! unless on-fault. `MCL_FUTURE` puts the lock flags into the address
//! space's default flags (`mm->def_flags`), which every later `mmap` and
//! `brk` mapping takes (and populates).
//!
//! `VmLck` (`locked_vm`) is the pages of the `VM_LOCKED` VMAs, counted in
//! `Mm::account` with the other per-kind sizes. Nothing reclaims memory
//! yet, so a locked page behaves as any present page afterwards; the
//! unevictable LRU and mlock's folio bit come with reclaim (issue 24).
//! The caller runs as root (`CAP_IPC_LOCK`): `RLIMIT_MEMLOCK` does not
//! apply, as on Linux for a privileged process.
//!
//! # Deviations
//!
//! - Linux's populate uses `FOLL_FORCE` and so faults in `PROT_NONE`
//!   parts of a locked range (mapping nothing the process can touch);
//!   here they are skipped.
//! - A fork child's copies of locked VMAs lose the lock (as Linux's
//!   `dup_mmap()`) and are then merged with compatible neighbours, which
//!   Linux leaves apart: this kernel keeps invariant I2 (no two adjacent
//!   compatible VMAs) everywhere, so such a child can show fewer lines
//!   in `/proc/PID/maps` than on Linux.
#![forbid(unsafe_code)]

use super::vma::VmFlags;
use super::{FaultAccess, FaultError, Mm};
use crate::addr::PAGE_SIZE;
use crate::errno::{Errno, Result};
use crate::platform::Platform;

/// `mlock2()` flag: lock pages as they are faulted in, not now.
pub const MLOCK_ONFAULT: u64 = 0x01;
/// `mlockall()` flags.
pub const MCL_CURRENT: u64 = 1;
pub const MCL_FUTURE: u64 = 2;
pub const MCL_ONFAULT: u64 = 4;

/// The flags mlock sets and clears (`VM_LOCKED_MASK`).
pub const VM_LOCKED_MASK: VmFlags = VmFlags::LOCKED.union(VmFlags::LOCKONFAULT);

impl<P: Platform> Mm<'_, '_, P> {
    /// `mlock2(start, len, flags)`; `mlock()` is `flags` 0.
    pub fn mlock(&self, start: u64, len: u64, flags: u64) -> Result<()> {
        if flags & !MLOCK_ONFAULT != 0 {
            return Err(Errno::EINVAL);
        }
        let mut lock = VmFlags::LOCKED;
        if flags & MLOCK_ONFAULT != 0 {
            lock |= VmFlags::LOCKONFAULT;
        }
        let (start, end) = lock_range(start, len)?;
        if start == end {
            return Ok(());
        }
        self.apply_vma_lock_flags(start, end, lock)?;
        if lock.contains(VmFlags::LOCKONFAULT) {
            return Ok(());
        }
        // __mlock_posix_error_return(): what the populate ran into.
        self.populate_locked(start, end).map_err(|e| match e {
            FaultError::Oom => Errno::EAGAIN,
            _ => Errno::ENOMEM,
        })
    }

    /// `munlock(start, len)`.
    pub fn munlock(&self, start: u64, len: u64) -> Result<()> {
        let (start, end) = lock_range(start, len)?;
        if start == end {
            return Ok(());
        }
        self.apply_vma_lock_flags(start, end, VmFlags::empty())
    }

    /// `mlockall(flags)`.
    pub fn mlockall(&self, flags: u64) -> Result<()> {
        if flags == 0
            || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0
            || flags == MCL_ONFAULT
        {
            return Err(Errno::EINVAL);
        }
        let mut lock = VmFlags::LOCKED;
        if flags & MCL_ONFAULT != 0 {
            lock |= VmFlags::LOCKONFAULT;
        }
        self.apply_mlockall_flags(flags, lock)?;
        if flags & MCL_CURRENT != 0 && flags & MCL_ONFAULT == 0 {
            // mm_populate(0, TASK_SIZE): errors are ignored.
            let mut at = 0;
            while let Some(v) = self.find_vma(at) {
                let _ = self.populate_locked(v.start, v.end);
                at = v.end;
            }
        }
        Ok(())
    }

    /// `munlockall()`.
    pub fn munlockall(&self) -> Result<()> {
        self.apply_mlockall_flags(0, VmFlags::empty())
    }

    /// `apply_vma_lock_flags()`: `[start, end)` must be mapped without
    /// holes (`ENOMEM`, the VMAs before a hole keep their new flags, as
    /// Linux's). Special and droppable VMAs keep their flags (`mlock_fixup()`).
    fn apply_vma_lock_flags(&self, start: u64, end: u64, lock: VmFlags) -> Result<()> {
        let mut l = self.mmap_lock.write(self.platform());
        if self.vma_lookup(start).is_none() {
            return Err(Errno::ENOMEM);
        }
        let mut at = start;
        for &(_, v) in self.vmas_in_small(start, end).iter() {
            if v.start > at {
                return Err(Errno::ENOMEM);
            }
            let (s, e) = (at.max(v.start), end.min(v.end));
            if !v.flags.intersects(VmFlags::SPECIAL | VmFlags::DROPPABLE) {
                self.modify_flags(&mut l, s, e, (v.flags - VM_LOCKED_MASK) | lock)?;
            }
            at = e;
        }
        if at < end {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }

    /// `apply_mlockall_flags()`: the default flags, and with `MCL_CURRENT`
    /// (or for `munlockall`, `flags` 0) every VMA's lock flags.
    fn apply_mlockall_flags(&self, flags: u64, lock: VmFlags) -> Result<()> {
        let mut l = self.mmap_lock.write(self.platform());
        l.def_flags -= VM_LOCKED_MASK;
        if flags & MCL_FUTURE != 0 {
            l.def_flags |= lock;
            if flags & MCL_CURRENT == 0 {
                return Ok(());
            }
        }
        let to_add = if flags & MCL_CURRENT != 0 {
            lock
        } else {
            VmFlags::empty()
        };
        let mut at = 0;
        while let Some(v) = self.find_vma(at) {
            if !v.flags.intersects(VmFlags::SPECIAL | VmFlags::DROPPABLE) {
                // Linux ignores mlock_fixup()'s errors here too.
                let _ =
                    self.modify_flags(&mut l, v.start, v.end, (v.flags - VM_LOCKED_MASK) | to_add);
            }
            at = v.end;
        }
        Ok(())
    }

    /// Faults in the locked pages of `[start, end)` (`__mm_populate()`
    /// with `populate_vma_page_range()`'s choice of access): a write fault
    /// where a private mapping is writable (breaking CoW now), a read
    /// fault elsewhere; on-fault VMAs and those without access are
    /// skipped (module Deviations). The first failure ends it.
    fn populate_locked(&self, start: u64, end: u64) -> core::result::Result<(), FaultError> {
        let mut a = start;
        while a < end {
            let Some(v) = self.find_vma(a).filter(|v| v.start < end) else {
                break;
            };
            let stop = v.end.min(end);
            a = a.max(v.start);
            let skip = v.flags.intersects(VmFlags::LOCKONFAULT | VmFlags::SPECIAL)
                || !v.flags.intersects(VmFlags::ACCESS);
            if !skip {
                let access = if v.flags & (VmFlags::WRITE | VmFlags::SHARED) == VmFlags::WRITE {
                    FaultAccess::Write
                } else {
                    FaultAccess::Read
                };
                while a < stop {
                    self.handle_fault(a, access)?;
                    a += PAGE_SIZE;
                }
            }
            a = stop;
        }
        Ok(())
    }
}

/// The page range of `mlock(start, len)` (`do_mlock()` and
/// `apply_vma_lock_flags()`): `start` rounded down, the length rounded
/// up over it with Linux's wrapping `PAGE_ALIGN`; `EINVAL` if the end
/// wraps.
fn lock_range(start: u64, len: u64) -> Result<(u64, u64)> {
    let off = start & (PAGE_SIZE - 1);
    let len = len.wrapping_add(off).wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    let start = start - off;
    let end = start.wrapping_add(len);
    if end < start {
        return Err(Errno::EINVAL);
    }
    Ok((start, end))
}
