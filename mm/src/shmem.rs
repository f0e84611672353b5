//! Shared memory objects (`mm/shmem.c`): the object behind a
//! `MAP_SHARED | MAP_ANONYMOUS` mapping (`shmem_zero_setup()`), a
//! reference-counted in-memory "file" whose pages every mapping of it
//! maps, in the parent and in the children forked after.
//!
//! A [`ShmemInode`] holds its folios in an [`XArray`] by page offset (its
//! page cache, Linux's `mapping->i_pages`). A folio in it is a shmem folio
//! ([`Folio::set_shmem`]: `folio->mapping` is the object, `folio->index`
//! the page offset) and holds one reference from the index; every PTE
//! mapping it holds one more reference and one mapcount, as Linux's file
//! folios (`folio_add_file_rmap_ptes()`); there is no anon_vma and no CoW.
//! A VMA names its object with a [`ShmemRef`] (`vma->vm_file`), which
//! holds one object reference per VMA in a tree (taken and dropped with
//! the VMA's accounting in `vm/mm.rs`), so splits, merges, mremap and fork
//! keep the count right without knowing of it. When the last reference
//! goes (the last mapping unmapped), the object is truncated
//! (`shmem_evict_inode()` → `truncate_inode_pages()`): each folio leaves
//! the index, loses its mapping and drops the index's reference; a folio
//! still mapped by a PTE that is about to be zapped is freed by that zap.
//!
//! Files, tmpfs, memfd and `ftruncate` are not here yet: an object's size
//! is fixed at creation, and a fault at or beyond it is `SIGBUS`
//! (`shmem_get_folio_gfp()`'s `-EINVAL` past `i_size`), which is what a
//! mapping grown by mremap past its object sees on Linux too.
//!
//! # Invariants
//!
//! - S1: `refs` is the number of [`ShmemRef`]s that own a reference: one
//!   per VMA in some address space's tree, plus the creator's until it
//!   drops it. The object is freed (through RCU) when it reaches 0, and
//!   not touched after.
//! - S2: every value in `pages` is the pfn of an order-0 shmem folio whose
//!   mapping is this object and whose index is its key; the folio holds
//!   one reference for the index. `Vm`'s `nr_shmem` counts these pages
//!   over all objects (`/proc/meminfo` `Shmem:`).
//! - S3: no index at or beyond `size_pages` is in `pages`.
//!
//! # Locking
//!
//! `pages` is under its own spinlock (`xa_lock`): taken under the mmap
//! lock (read: a fault; write: the last unmap), never together with a PTE
//! lock (a fault finds or inserts the folio first, then takes the PTE
//! lock to map it). Lookups take the lock; Linux's RCU lookup
//! (`filemap_get_entry()`) is a later step. `refs` is atomic.
//!
//! # Context
//!
//! A [`ShmemRef`] read from a VMA may be dereferenced only while that
//! VMA is in its tree and the tree cannot change: the caller holds the
//! mmap lock (read or write). A lockless VMA reader (under RCU only) may
//! compare references but not follow them.
#![deny(unsafe_op_in_unsafe_fn)]

use alloc::boxed::Box;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::*};

use crate::addr::Pfn;
use crate::folio::{Folio, folio_put, folio_ref_add};
use crate::gfp::Gfp;
use crate::platform::Platform;
use crate::vm::{Vm, VmEvent};
use crate::xarray::XArray;

/// A shared memory object (`struct shmem_inode_info` and its inode).
pub struct ShmemInode {
    /// Inode number shown in `/proc/PID/maps` (`get_next_ino()`).
    ino: u64,
    /// Size in pages (`i_size`); fixed at creation for now (S3).
    size_pages: u64,
    /// Owned references (S1). Atomic: taken and dropped under different
    /// address spaces' mmap locks.
    refs: AtomicU64,
    /// The folios by page offset (S2). Write and read: holds this lock.
    pages: spin::Mutex<XArray>,
}

/// Why [`ShmemRef::get_folio`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShmemFaultError {
    /// The offset is at or beyond the object's size (`VM_FAULT_SIGBUS`).
    Beyond,
    /// No memory for the folio or the index (`VM_FAULT_OOM`).
    NoMem,
}

/// A counted reference to a [`ShmemInode`], as a VMA holds it
/// (`vma->vm_file`). `Copy` so that VMAs stay plain values: who owns a
/// count is the protocol of S1 (a VMA in a tree owns one), not the type.
/// Equality is identity (the merge rule compares objects).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShmemRef(NonNull<ShmemInode>);

// SAFETY: the object is shared by design: its fields are atomics and a
// spinlock, and it is freed only when the last owner drops it (S1).
unsafe impl Send for ShmemRef {}
// SAFETY: as for Send: every access through `&ShmemInode` is atomic or
// under `pages`' lock.
unsafe impl Sync for ShmemRef {}

impl core::fmt::Debug for ShmemRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "shmem@{:p}", self.0.as_ptr())
    }
}

impl ShmemRef {
    /// A new zero-filled object of `size_pages` pages for a shared
    /// anonymous mapping (`shmem_zero_setup()`), with one reference owned
    /// by the caller. `None` without memory.
    pub fn zero_setup<P: Platform>(vm: &Vm<'_, P>, size_pages: u64) -> Option<ShmemRef> {
        let inode = Box::new(ShmemInode {
            ino: vm.next_ino(),
            size_pages,
            refs: AtomicU64::new(1),
            pages: spin::Mutex::new(XArray::new()),
        });
        Some(ShmemRef(NonNull::from(Box::leak(inode))))
    }

    fn inode(&self) -> &ShmemInode {
        // SAFETY: (1) the pointer came from `Box::leak` in `zero_setup`;
        // (2) the caller holds or borrows an owned reference (S1, the
        // module's Context rule: a VMA in a tree under the mmap lock), so
        // the object has not reached 0 references and is not freed.
        unsafe { self.0.as_ref() }
    }

    /// Inode number (`/proc/PID/maps`).
    pub fn ino(&self) -> u64 {
        self.inode().ino
    }

    /// Size in pages.
    pub fn size_pages(&self) -> u64 {
        self.inode().size_pages
    }

    /// Pages in the object (resident: no swap here).
    pub fn nr_pages(&self) -> usize {
        self.inode().pages.lock().len()
    }

    /// Owned references (for tests).
    pub fn refs(&self) -> u64 {
        self.inode().refs.load(Relaxed)
    }

    /// The object's address, the value a shmem folio's mapping holds.
    pub fn mapping(&self) -> u64 {
        self.0.as_ptr() as u64
    }

    /// Takes one more owned reference (`get_file()`).
    pub fn get(&self) {
        let old = self.inode().refs.fetch_add(1, Relaxed);
        debug_assert!(old > 0, "BUG: shmem reference taken on a dead object");
    }

    /// Drops an owned reference (`fput()`); the last one truncates the
    /// object (its folios drop the index's references: a folio no PTE
    /// maps is freed now) and frees it after a grace period.
    pub fn put<P: Platform>(self, vm: &Vm<'_, P>) {
        // Release pairs with the Acquire below: every use of the object
        // by other owners happens before its teardown.
        if self.inode().refs.fetch_sub(1, Release) != 1 {
            return;
        }
        core::sync::atomic::fence(Acquire);
        let pages = self.inode().pages.lock().take_all();
        for (_, pfn) in pages {
            let pfn = Pfn::new(pfn);
            // filemap_remove_folio(): the folio leaves the page cache.
            Folio::of(vm.pa.memmap(), pfn).clear_mapping();
            vm.shmem_pages_sub(1);
            folio_put(vm.pa, pfn);
        }
        // SAFETY: the last owned reference was ours (S1): nobody else can
        // reach the object, and the box came from `zero_setup`. Freed
        // after a grace period all the same, for readers that copied a
        // VMA under RCU and compare its reference.
        let inode = unsafe { Box::from_raw(self.0.as_ptr()) };
        vm.rcu.kvfree_rcu(inode);
    }

    /// The folio at page offset `pgoff`, allocated zeroed and added to the
    /// object if absent (`shmem_get_folio_gfp()` with `SGP_CACHE`), with
    /// one reference for the caller (the PTE it is about to install, or a
    /// [`folio_put`] if it does not). The caller holds an owned reference.
    pub fn get_folio<P: Platform>(
        &self,
        vm: &Vm<'_, P>,
        pgoff: u64,
    ) -> Result<Pfn, ShmemFaultError> {
        let inode = self.inode();
        if pgoff >= inode.size_pages {
            return Err(ShmemFaultError::Beyond);
        }
        if let Some(pfn) = Self::find_get(vm, &inode.pages.lock(), pgoff) {
            vm.count(VmEvent::ShmemFaultHit);
            return Ok(pfn);
        }
        // Allocate outside the lock, then insert unless another fault
        // inserted one meanwhile (`shmem_add_to_page_cache()`'s -EEXIST).
        let pfn = vm
            .pa
            .alloc_pages(Gfp::HIGHUSER_MOVABLE | Gfp::ZERO, 0)
            .map_err(|_| ShmemFaultError::NoMem)?;
        let folio = Folio::prep(vm.pa.memmap(), pfn);
        folio.set_shmem(self.mapping(), pgoff);
        let mut xa = inode.pages.lock();
        if let Some(found) = Self::find_get(vm, &xa, pgoff) {
            drop(xa);
            folio.clear_mapping();
            folio_put(vm.pa, pfn);
            vm.count(VmEvent::ShmemFaultHit);
            return Ok(found);
        }
        if xa.store(pgoff, pfn.as_u64()).is_err() {
            drop(xa);
            folio.clear_mapping();
            folio_put(vm.pa, pfn);
            return Err(ShmemFaultError::NoMem);
        }
        // The allocation's reference is the index's; one more for the caller.
        folio_ref_add(&folio, 1);
        drop(xa);
        vm.shmem_pages_add(1);
        vm.count(VmEvent::ShmemFaultAlloc);
        Ok(pfn)
    }

    /// The folio at `pgoff` with a reference taken, under the index lock.
    fn find_get<P: Platform>(vm: &Vm<'_, P>, xa: &XArray, pgoff: u64) -> Option<Pfn> {
        let pfn = Pfn::new(xa.load(pgoff)?);
        folio_ref_add(&Folio::of(vm.pa.memmap(), pfn), 1);
        Some(pfn)
    }

    /// The pfn at `pgoff`, if the object has a page there (for tests and
    /// `/proc`; no reference taken).
    pub fn find(&self, pgoff: u64) -> Option<Pfn> {
        self.inode().pages.lock().load(pgoff).map(Pfn::new)
    }
}
