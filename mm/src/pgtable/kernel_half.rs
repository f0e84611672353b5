//! The kernel half of a process's PGD (Linux's `pgd_alloc()` ->
//! `pgd_ctor()` -> `clone_pgd_range()`).
//!
//! PGD entries `USER_PGD_ENTRIES..PTRS_PER_TABLE` map the kernel: its image,
//! the direct map, kernel stacks. Every address space shares them: a new
//! PGD gets a copy of the reference PGD's kernel entries, which point at the
//! same PUD tables, so later kernel mappings below an existing PGD entry are
//! seen by every address space at once.
//!
//! # Invariants
//!
//! - K1: the reference PGD has every kernel entry it will ever need before
//!   the first copy (the kernel preallocates them), so copies never go
//!   stale (Linux's `sync_global_pgds()` is not needed).
//! - K2: kernel entries are never freed through an address space: teardown
//!   (`free_pgd_range`) stops at `TASK_SIZE`, below them.
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::{Acquire, Release};

use super::{Level, PageTable, USER_PGD_ENTRIES};
use crate::addr::PhysAddr;
use crate::platform::Platform;

impl<P: Platform> PageTable<'_, P> {
    /// Copies the kernel half (entries 256..512) of the PGD at `reference`
    /// (a live PGD, e.g. the boot CPU's CR3) into this address space's PGD.
    /// Call before the address space is first loaded.
    pub fn clone_kernel_half(&self, reference: PhysAddr) {
        let ours = self.table(self.pgd);
        let theirs = self.table(reference.pfn());
        for i in USER_PGD_ENTRIES..ours.len() {
            ours[i].store(theirs[i].load(Acquire), Release);
        }
        debug_assert_eq!(Level::Pgd.index(0xffff_8000_0000_0000), USER_PGD_ENTRIES);
    }
}
