//! madvise (`mm/madvise.c`): advice on a range of VMAs. The hints and
//! `MADV_DONTFORK`/`MADV_DOFORK`, `MADV_DONTDUMP`/`MADV_DODUMP` and
//! `MADV_WIPEONFORK`/`MADV_KEEPONFORK` change VMA flags through `vma.rs`'s
//! `modify_flags` (splits at the ends, merges afterwards);
//! `MADV_DONTNEED` zaps the range's pages (and reclaims the PTE tables it
//! empties, `zap.rs` and `pgtable/pt_reclaim.rs`); `MADV_FREE` and `MADV_WILLNEED` have nothing to act
//! on without reclaim, swap or a page cache.
//!
//! # Context
//!
//! Flag changes take the mmap lock for write; the zapping advice takes it
//! for read, as Linux's `madvise_need_mmap_write()` decides.
#![forbid(unsafe_code)]

use super::Mm;
use super::mmap::page_align;
use super::vma::VmFlags;
use super::zap::ZapDetails;
use crate::addr::PAGE_SIZE;
use crate::errno::{Errno, Result};
use crate::pgtable::MmuGather;
use crate::platform::Platform;

/// `MADV_*` values accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    Normal,
    Random,
    Sequential,
    WillNeed,
    DontNeed,
    Free,
    /// `MADV_DONTFORK` / `MADV_DOFORK`: set or clear `VM_DONTCOPY`.
    DontFork,
    DoFork,
    /// `MADV_DONTDUMP` / `MADV_DODUMP`: set or clear `VM_DONTDUMP`.
    DontDump,
    DoDump,
    /// `MADV_WIPEONFORK` / `MADV_KEEPONFORK`: set or clear
    /// `VM_WIPEONFORK` (private anonymous memory only; a droppable
    /// mapping keeps it).
    WipeOnFork,
    KeepOnFork,
}

impl Advice {
    /// The advice for a `madvise()` argument; `None` (EINVAL) if unknown.
    pub fn from_raw(advice: i64) -> Option<Advice> {
        Some(match advice {
            0 => Advice::Normal,
            1 => Advice::Random,
            2 => Advice::Sequential,
            3 => Advice::WillNeed,
            4 => Advice::DontNeed,
            8 => Advice::Free,
            10 => Advice::DontFork,
            11 => Advice::DoFork,
            16 => Advice::DontDump,
            17 => Advice::DoDump,
            18 => Advice::WipeOnFork,
            19 => Advice::KeepOnFork,
            _ => return None,
        })
    }
}

impl<P: Platform> Mm<'_, '_, P> {
    /// `madvise()`: applies the advice to the mapped parts of the range;
    /// `ENOMEM` afterwards if part of it was unmapped.
    pub fn madvise(&self, start: u64, len: u64, advice: i64) -> Result<()> {
        let advice = Advice::from_raw(advice).ok_or(Errno::EINVAL)?;
        if start & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_align(len).ok_or(Errno::EINVAL)?;
        let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
        if len == 0 {
            return Ok(());
        }
        let mut unmapped = false;
        match advice {
            Advice::Normal
            | Advice::Random
            | Advice::Sequential
            | Advice::DontFork
            | Advice::DoFork
            | Advice::DontDump
            | Advice::DoDump
            | Advice::WipeOnFork
            | Advice::KeepOnFork => {
                let mut l = self.mmap_lock.write(self.platform());
                let mut at = start;
                for (_, v) in self.vmas_in(start, end) {
                    if !super::mseal::madvise_allowed(&v, advice) {
                        return Err(Errno::EPERM);
                    }
                    unmapped |= v.start > at;
                    let (s, e) = (at.max(v.start), end.min(v.end));
                    let nf = match advice {
                        Advice::DontFork => v.flags | VmFlags::DONTCOPY,
                        Advice::DoFork => v.flags - VmFlags::DONTCOPY,
                        Advice::DontDump => v.flags | VmFlags::DONTDUMP,
                        Advice::DoDump => {
                            if v.flags.intersects(VmFlags::SPECIAL | VmFlags::DROPPABLE) {
                                return Err(Errno::EINVAL);
                            }
                            v.flags - VmFlags::DONTDUMP
                        }
                        Advice::WipeOnFork => {
                            // Anonymous memory only (no file, not shared).
                            if v.shmem.is_some() || v.flags.contains(VmFlags::SHARED) {
                                return Err(Errno::EINVAL);
                            }
                            v.flags | VmFlags::WIPEONFORK
                        }
                        Advice::KeepOnFork => {
                            if v.flags.contains(VmFlags::DROPPABLE) {
                                return Err(Errno::EINVAL);
                            }
                            v.flags - VmFlags::WIPEONFORK
                        }
                        _ => {
                            let mut nf = v.flags - (VmFlags::SEQ_READ | VmFlags::RAND_READ);
                            match advice {
                                Advice::Random => nf |= VmFlags::RAND_READ,
                                Advice::Sequential => nf |= VmFlags::SEQ_READ,
                                _ => {}
                            }
                            nf
                        }
                    };
                    self.modify_flags(&mut l, s, e, nf)?;
                    at = e;
                }
                unmapped |= at < end;
            }
            Advice::WillNeed | Advice::DontNeed | Advice::Free => {
                let _l = self.mmap_lock.read(self.platform());
                let mut at = start;
                let vmas = self.vmas_in(start, end);
                for (_, v) in &vmas {
                    if !super::mseal::madvise_allowed(v, advice) {
                        return Err(Errno::EPERM);
                    }
                    if advice == Advice::DontNeed
                        && v.flags.intersects(VmFlags::LOCKED | VmFlags::PFNMAP)
                    {
                        return Err(Errno::EINVAL);
                    }
                    if advice == Advice::Free
                        && v.flags.intersects(VmFlags::SHARED | VmFlags::PFNMAP)
                    {
                        return Err(Errno::EINVAL);
                    }
                }
                let mut tlb = MmuGather::new(&self.pt, false);
                for (_, v) in vmas {
                    unmapped |= v.start > at;
                    let (s, e) = (at.max(v.start), end.min(v.end));
                    if advice == Advice::DontNeed {
                        self.zap_range(&mut tlb, s, e, ZapDetails { reclaim_pt: true });
                    }
                    // WILLNEED: no swap or page cache to read ahead.
                    // FREE: the pages become reclaimable without a write;
                    // with no reclaim yet they simply stay, which is what
                    // a reader sees before reclaim on Linux too.
                    at = e;
                }
                tlb.finish();
                unmapped |= at < end;
            }
        }
        if unmapped {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }
}
