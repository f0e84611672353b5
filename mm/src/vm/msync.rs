//! msync (`mm/msync.c`): write back the file pages of a range. Every file
//! here is shmem (no backing store: shmem's `fsync` is `noop_fsync`), so
//! there is nothing to write; what remains is Linux's walk of the range
//! and its errors, which programs see: `EINVAL` for unknown flags, an
//! unaligned start, or `MS_ASYNC` with `MS_SYNC`; `ENOMEM` for a hole in
//! the range (at once for `MS_ASYNC` alone, after the walk otherwise) or
//! a range that wraps; `EBUSY` for `MS_INVALIDATE` over a locked VMA.
//!
//! # Context
//!
//! Takes the mmap lock for read.
#![forbid(unsafe_code)]

use super::Mm;
use super::vma::VmFlags;
use crate::addr::PAGE_SIZE;
use crate::errno::{Errno, Result};
use crate::platform::Platform;

/// `MS_ASYNC`.
pub const MS_ASYNC: u64 = 1;
/// `MS_INVALIDATE`.
pub const MS_INVALIDATE: u64 = 2;
/// `MS_SYNC`.
pub const MS_SYNC: u64 = 4;

impl<P: Platform> Mm<'_, '_, P> {
    /// `msync(start, len, flags)` (`SYSCALL_DEFINE3(msync)`).
    pub fn msync(&self, start: u64, len: u64, flags: u64) -> Result<()> {
        if flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
            || start & (PAGE_SIZE - 1) != 0
            || (flags & MS_ASYNC != 0 && flags & MS_SYNC != 0)
        {
            return Err(Errno::EINVAL);
        }
        let len = len.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let end = start.wrapping_add(len);
        if end < start {
            return Err(Errno::ENOMEM);
        }
        if end == start {
            return Ok(());
        }
        let _l = self.mmap_lock.read(self.platform());
        let mut unmapped = false;
        let mut at = start;
        for (_, v) in self.vmas_in(start, end) {
            if at < v.start {
                // A hole: MS_ASYNC alone stops at once.
                if flags == MS_ASYNC {
                    return Err(Errno::ENOMEM);
                }
                unmapped = true;
            }
            if flags & MS_INVALIDATE != 0 && v.flags.contains(VmFlags::LOCKED) {
                return Err(Errno::EBUSY);
            }
            // A shared file VMA would be written back here (MS_SYNC):
            // shmem has nothing to write.
            at = v.end;
        }
        if at < end {
            // Nothing mapped at the end of the range.
            return Err(Errno::ENOMEM);
        }
        if unmapped { Err(Errno::ENOMEM) } else { Ok(()) }
    }
}
