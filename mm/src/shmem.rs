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
//! folios (`folio_add_file_rmap_ptes()`); the folio has no anon_vma (a
//! private mapping's write copies it into an anonymous one, below).
//! A VMA names its object with a [`ShmemRef`] (`vma->vm_file`), which
//! holds one object reference per VMA in a tree (taken and dropped with
//! the VMA's accounting in `vm/mm.rs`), so splits, merges, mremap and fork
//! keep the count right without knowing of it. When the last reference
//! goes (the last mapping unmapped), the object is truncated
//! (`shmem_evict_inode()` → `truncate_inode_pages()`): each folio leaves
//! the index, loses its mapping and drops the index's reference; a folio
//! still mapped by a PTE that is about to be zapped is freed by that zap.
//!
//! A memfd (`memfd_create()`, the kernel's `syscall/memfd.rs`) is the
//! same object made by [`ShmemRef::new_file`], empty, named, and held by
//! its open file's reference besides its mappings'. Its size changes:
//! [`ShmemRef::write_at`] allocates the pages it writes and moves the
//! size past them (`shmem_write_begin()`/`_end()`), [`ShmemRef::read_at`]
//! reads holes as zeros without allocating, [`ShmemRef::fallocate`]
//! allocates a range, and [`ShmemRef::truncate`] (`shmem_setattr()`)
//! grows or shrinks it: a shrink stores the size first (faults past it
//! are `SIGBUS` from then on, `shmem_get_folio_gfp()`'s `-EINVAL`),
//! unmaps the pages past it from every mapping through a callback (the
//! caller visits the address spaces [`ShmemRef::i_mmap_mms`] names:
//! Linux's `unmap_mapping_range()` over `i_mmap`), removes those folios
//! (`truncate_inode_pages()`), zeroes the tail of a partial last page,
//! and unmaps again for a fault that raced. A fault rechecks under the
//! PTE lock that its folio is still in the object (`finish_fault()`'s
//! `folio->mapping` check), so nothing past the size stays mapped.
//!
//! A VMA of the object is shared (`VM_SHARED`: writes reach the object)
//! or private (a `MAP_PRIVATE` mapping of a memfd): a private VMA maps
//! the object's folios read-only and a write copies the page into an
//! anonymous folio (`do_cow_fault()`, `wp_page_copy()`), as Linux.
//!
//! Seals (`mm/memfd.c`): [`ShmemRef::add_seals`] with `F_SEAL_SEAL`,
//! `F_SEAL_SHRINK`, `F_SEAL_GROW`, `F_SEAL_WRITE` (refused with `EBUSY`
//! while a shared mapping may write: `i_mmap_writable`),
//! `F_SEAL_FUTURE_WRITE` and `F_SEAL_EXEC`; the object enforces them in
//! writes, truncation and fallocate, the caller of `mmap` in
//! `memfd_check_seals_mmap()`'s way (no `VM_MAYWRITE`).
//!
//! A tmpfs file (the kernel's `tmpfs.rs`, at `/tmp` and `/dev/shm`) is
//! the same object again, held by its directory entry and its open
//! files; its name in `/proc/PID/maps` follows renames and unlinks
//! ([`ShmemRef::set_name`]).
//!
//! [`ShmemRef::punch_hole`] frees a range's whole pages (unmapping them
//! but for private copies) and zeroes its partial ones.
//!
//! The object's `i_mmap` (Linux's `mapping->i_mmap`) records every VMA
//! that maps it: address space, start and page-offset range, added and
//! removed with the VMA's reference in `vm/mm.rs`. Truncation and hole
//! punching ask it which address spaces map a range
//! ([`ShmemRef::i_mmap_mms`]) and which of their VMAs
//! ([`ShmemRef::i_mmap_query`], `vma_interval_tree_foreach()`), instead
//! of walking every process and every VMA. It is an ordered map by first
//! page offset whose query filters the entries starting before the
//! range's end, not Linux's augmented interval tree (which also prunes
//! by the largest last offset below a node): the same answers, linear in
//! the object's mappings rather than logarithmic.
//!
//! Not here yet: large folios, swap.
//!
//! # Invariants
//!
//! - S1: `refs` is the number of [`ShmemRef`]s that own a reference: one
//!   per VMA in some address space's tree, plus the creator's until it
//!   drops it (an open memfd's). The object is freed (through RCU) when
//!   it reaches 0, and not touched after.
//! - S2: every value in `pages` is the pfn of an order-0 shmem folio whose
//!   mapping is this object and whose index is its key; the folio holds
//!   one reference for the index. `Vm`'s `nr_shmem` counts these pages
//!   over all objects (`/proc/meminfo` `Shmem:`).
//! - S3: no index at or beyond `size` rounded up to pages is in `pages`
//!   once a truncation returns (a write or fallocate inserts only below
//!   the size it then stores, under the index lock; `KEEP_SIZE` is the
//!   exception Linux has too: pages past the size, counted in
//!   `st_blocks`, removed by the next shrink).
//! - S4: `seals` only gains bits, and none once `F_SEAL_SEAL` is in it.
//! - S5: `writable_maps` is the number of VMAs in trees that map the
//!   object `VM_SHARED | VM_MAYWRITE`; `F_SEAL_WRITE` is added only while
//!   it is 0, and after that no such VMA is made (the caller maps
//!   without `VM_MAYWRITE`).
//! - S6: `i_mmap` holds exactly one entry per VMA in some address
//!   space's tree that names this object: that address space's id, the
//!   VMA's start, and its first and last page offsets.

//! # Locking
//!
//! `pages` is under its own spinlock (`xa_lock`): taken under the mmap
//! lock (read: a fault; write: the last unmap), never together with a PTE
//! lock (a fault finds or inserts the folio first, then takes the PTE
//! lock to map it). Lookups take the lock; Linux's RCU lookup
//! (`filemap_get_entry()`) is a later step. `refs` is atomic. `size`,
//! `seals` and `writable_maps` change under `pages`' lock too (a
//! truncation's size against a fault's check; a seal against a mapping
//! being counted), which the VMA store takes under the mmap write lock;
//! file reads and writes take it without the mmap lock, and a
//! truncation's unmap callback takes mmap locks (read) with it dropped.
//! `i_mmap` is under its own spinlock (`i_mmap_rwsem`), taken alone:
//! an address space's entries change only under its mmap write lock
//! (with its VMA tree), so one that holds its mmap lock reads its own
//! entries stable; entries of others are a snapshot.
//!
//! # Context
//!
//! A [`ShmemRef`] read from a VMA may be dereferenced only while that
//! VMA is in its tree and the tree cannot change: the caller holds the
//! mmap lock (read or write). A lockless VMA reader (under RCU only) may
//! compare references but not follow them.
#![deny(unsafe_op_in_unsafe_fn)]

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use crate::addr::{Order, PAGE_SHIFT, PAGE_SIZE, Pfn};
use crate::errno::Errno;
use crate::folio::{Folio, folio_put, folio_ref_add};
use crate::gfp::Gfp;
use crate::platform::Platform;
use crate::vm::{Vm, VmEvent};
use crate::xarray::XArray;

/// A shared memory object (`struct shmem_inode_info` and its inode).
pub struct ShmemInode {
    /// Inode number shown in `/proc/PID/maps` (`get_next_ino()`).
    ino: u64,
    /// Size in bytes (`i_size`, S3). Written under `pages`' lock (so a
    /// fault's check and a truncation's removal are ordered); read
    /// without it where a stale value is harmless (`fstat`).
    size: AtomicU64,
    /// Owned references (S1). Atomic: taken and dropped under different
    /// address spaces' mmap locks.
    refs: AtomicU64,
    /// The folios by page offset (S2). Write and read: holds this lock.
    pages: spin::Mutex<XArray>,
    /// `F_SEAL_*` bits (`info->seals`, S4).
    seals: AtomicU32,
    /// VMAs in some tree that are `VM_SHARED | VM_MAYWRITE`
    /// (`mapping->i_mmap_writable`, S5).
    writable_maps: AtomicU64,
    /// The name `/proc/PID/maps` shows: empty for a shared anonymous
    /// mapping (`/dev/zero (deleted)`), `/memfd:NAME (deleted)` for a
    /// memfd, a tmpfs file's path (which rename and unlink change).
    name: spin::Mutex<String>,
    /// The VMAs mapping the object (`mapping->i_mmap`, S6): key (first
    /// page offset, address space id, VMA start, last page offset),
    /// value how many VMAs have that key (two, briefly, while a split
    /// stores a piece before it retires the VMA it came from). Write: a
    /// VMA enters or leaves a tree. Read: holds the lock.
    i_mmap: spin::Mutex<BTreeMap<(u64, u32, u64, u64), u32>>,
}

/// One VMA in an object's `i_mmap` (S6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IMmapEntry {
    /// The address space's id ([`crate::vm::Mm::id`]).
    pub mm: u32,
    /// The VMA's start address.
    pub start: u64,
    /// The first page offset the VMA maps (`vm_pgoff`).
    pub pgoff: u64,
    /// The last page offset it maps (`vma_last_pgoff()`).
    pub last: u64,
}

/// `F_SEAL_SEAL`: no more seals may be added.
pub const F_SEAL_SEAL: u32 = 0x1;
/// `F_SEAL_SHRINK`: the size may not decrease.
pub const F_SEAL_SHRINK: u32 = 0x2;
/// `F_SEAL_GROW`: the size may not increase.
pub const F_SEAL_GROW: u32 = 0x4;
/// `F_SEAL_WRITE`: the contents may not change (no writes, no writable
/// shared mappings).
pub const F_SEAL_WRITE: u32 = 0x8;
/// `F_SEAL_FUTURE_WRITE`: as `F_SEAL_WRITE`, but existing writable
/// mappings keep writing.
pub const F_SEAL_FUTURE_WRITE: u32 = 0x10;
/// `F_SEAL_EXEC`: the mode's execute bits may not change.
pub const F_SEAL_EXEC: u32 = 0x20;
/// Every seal (`F_ALL_SEALS` of `mm/memfd.c`).
pub const F_ALL_SEALS: u32 =
    F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC;

/// The largest size of a file (`MAX_LFS_FILESIZE` on 64-bit).
pub const MAX_LFS_FILESIZE: u64 = i64::MAX as u64;

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
        Self::new_object(vm, size_pages << PAGE_SHIFT, String::new(), 0)
    }

    /// A new empty file (`shmem_file_setup()`, as `memfd_create()` calls
    /// it) named `name` in `/proc/PID/maps`, with `seals` set (a memfd
    /// without `MFD_ALLOW_SEALING` starts with [`F_SEAL_SEAL`]), and one
    /// reference owned by the caller (its open file).
    pub fn new_file<P: Platform>(vm: &Vm<'_, P>, name: String, seals: u32) -> Option<ShmemRef> {
        Self::new_object(vm, 0, name, seals)
    }

    fn new_object<P: Platform>(
        vm: &Vm<'_, P>,
        size: u64,
        name: String,
        seals: u32,
    ) -> Option<ShmemRef> {
        let inode = Box::new(ShmemInode {
            ino: vm.next_ino(),
            size: AtomicU64::new(size),
            refs: AtomicU64::new(1),
            pages: spin::Mutex::new(XArray::new()),
            seals: AtomicU32::new(seals),
            writable_maps: AtomicU64::new(0),
            name: spin::Mutex::new(name),
            i_mmap: spin::Mutex::new(BTreeMap::new()),
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

    /// Size in pages (the last one possibly partial).
    pub fn size_pages(&self) -> u64 {
        self.size().div_ceil(PAGE_SIZE)
    }

    /// Size in bytes (`i_size_read()`).
    pub fn size(&self) -> u64 {
        self.inode().size.load(Acquire)
    }

    /// The name `/proc/PID/maps` shows (`/dev/zero (deleted)` for a shared
    /// anonymous mapping).
    pub fn name(&self) -> String {
        match self.inode().name.lock().as_str() {
            "" => String::from("/dev/zero (deleted)"),
            n => String::from(n),
        }
    }

    /// Renames the object for `/proc/PID/maps` (a tmpfs rename or unlink).
    pub fn set_name(&self, name: String) {
        *self.inode().name.lock() = name;
    }

    /// The seals (`F_GET_SEALS`).
    pub fn seals(&self) -> u32 {
        self.inode().seals.load(Acquire)
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
    /// The folio is uptodate afterwards (a fallocated one was zeroed at
    /// allocation, which is what `shmem_get_folio_gfp()` does to it).
    pub fn get_folio<P: Platform>(
        &self,
        vm: &Vm<'_, P>,
        pgoff: u64,
    ) -> Result<Pfn, ShmemFaultError> {
        let inode = self.inode();
        let found = {
            let xa = inode.pages.lock();
            if pgoff >= self.size_pages() {
                return Err(ShmemFaultError::Beyond);
            }
            Self::find_get(vm, &xa, pgoff)
        };
        let pfn = match found {
            Some(pfn) => {
                vm.count(VmEvent::ShmemFaultHit);
                pfn
            }
            None => self.grab_folio(vm, pgoff, true)?,
        };
        Folio::of(vm.pa.memmap(), pfn).mark_uptodate();
        Ok(pfn)
    }

    /// The folio at `pgoff`, found or allocated zeroed and inserted, with
    /// a reference for the caller; with `in_size`, only below the size
    /// (checked again under the index lock, against a truncation).
    fn grab_folio<P: Platform>(
        &self,
        vm: &Vm<'_, P>,
        pgoff: u64,
        in_size: bool,
    ) -> Result<Pfn, ShmemFaultError> {
        let inode = self.inode();
        if let Some(pfn) = Self::find_get(vm, &inode.pages.lock(), pgoff) {
            return Ok(pfn);
        }
        // Allocate outside the lock, then insert unless another fault
        // inserted one meanwhile (`shmem_add_to_page_cache()`'s -EEXIST).
        let pfn = vm
            .pa
            .alloc_pages(Gfp::HIGHUSER_MOVABLE | Gfp::ZERO, Order::ZERO)
            .map_err(|_| ShmemFaultError::NoMem)?;
        let folio = Folio::prep(vm.pa.memmap(), pfn);
        folio.set_shmem(self.mapping(), pgoff);
        let mut xa = inode.pages.lock();
        if in_size && pgoff >= self.size_pages() {
            drop(xa);
            folio.clear_mapping();
            folio_put(vm.pa, pfn);
            return Err(ShmemFaultError::Beyond);
        }
        if let Some(found) = Self::find_get(vm, &xa, pgoff) {
            drop(xa);
            folio.clear_mapping();
            folio_put(vm.pa, pfn);
            if in_size {
                vm.count(VmEvent::ShmemFaultHit);
            }
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
        if in_size {
            vm.count(VmEvent::ShmemFaultAlloc);
        }
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

    /// Copies the file's bytes from `off` into `buf` (`shmem_file_read_iter()`):
    /// up to the size; a hole reads as zeros (`ZERO_PAGE` without
    /// allocating). Returns how many bytes.
    pub fn read_at<P: Platform>(&self, vm: &Vm<'_, P>, off: u64, buf: &mut [u8]) -> usize {
        let size = self.size();
        let Some(avail) = size.checked_sub(off) else {
            return 0;
        };
        let n = (buf.len() as u64).min(avail) as usize;
        let mut done = 0;
        while done < n {
            let pos = off + done as u64;
            let in_page = (pos & (PAGE_SIZE - 1)) as usize;
            let len = (n - done).min(PAGE_SIZE as usize - in_page);
            let dst = &mut buf[done..done + len];
            let found = Self::find_get(vm, &self.inode().pages.lock(), pos >> PAGE_SHIFT);
            match found {
                Some(pfn) => {
                    vm.pa.memcpy_from_page(pfn, in_page, dst);
                    folio_put(vm.pa, pfn);
                }
                None => dst.fill(0),
            }
            done += len;
        }
        n
    }

    /// Writes `data` at `off` (`shmem_file_write_iter()` through
    /// `generic_perform_write()`), page by page: each chunk finds or
    /// allocates its folio (`shmem_write_begin()`), copies, and moves the
    /// size past it (`shmem_write_end()`). Seals as Linux checks them per
    /// chunk: `F_SEAL_WRITE` or `F_SEAL_FUTURE_WRITE` refuse any write,
    /// `F_SEAL_GROW` a chunk that would end past the size; `EFBIG` from
    /// [`MAX_LFS_FILESIZE`]. A failure after some bytes returns their count.
    pub fn write_at<P: Platform>(
        &self,
        vm: &Vm<'_, P>,
        off: u64,
        data: &[u8],
    ) -> Result<usize, Errno> {
        if off >= MAX_LFS_FILESIZE && !data.is_empty() {
            return Err(Errno::EFBIG);
        }
        let n = (data.len() as u64).min(MAX_LFS_FILESIZE - off) as usize;
        let mut done = 0;
        while done < n {
            let pos = off + done as u64;
            let in_page = (pos & (PAGE_SIZE - 1)) as usize;
            let len = (n - done).min(PAGE_SIZE as usize - in_page);
            let seals = self.seals();
            let refused = seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0
                || (seals & F_SEAL_GROW != 0 && pos + len as u64 > self.size());
            if refused {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Errno::EPERM)
                };
            }
            let pfn = match self.grab_folio(vm, pos >> PAGE_SHIFT, false) {
                Ok(pfn) => pfn,
                Err(_) if done > 0 => return Ok(done),
                Err(_) => return Err(Errno::ENOMEM),
            };
            vm.pa.memcpy_to_page(pfn, in_page, &data[done..done + len]);
            // shmem_write_end(): the rest of a fresh page is zero already.
            Folio::of(vm.pa.memmap(), pfn).mark_uptodate();
            folio_put(vm.pa, pfn);
            let end = pos + len as u64;
            let xa = self.inode().pages.lock();
            if end > self.size() {
                self.inode().size.store(end, Release);
            }
            drop(xa);
            done += len;
        }
        Ok(n)
    }

    /// Allocates the pages of `[off, off + len)` (`shmem_fallocate()` mode
    /// 0): the size grows to `off + len` unless `keep_size`
    /// (`FALLOC_FL_KEEP_SIZE`). `F_SEAL_GROW` refuses a range past the
    /// size either way (`EPERM`).
    pub fn fallocate<P: Platform>(
        &self,
        vm: &Vm<'_, P>,
        off: u64,
        len: u64,
        keep_size: bool,
    ) -> Result<(), Errno> {
        let end = off
            .checked_add(len)
            .filter(|&e| e <= MAX_LFS_FILESIZE)
            .ok_or(Errno::EFBIG)?;
        if self.seals() & F_SEAL_GROW != 0 && end > self.size() {
            return Err(Errno::EPERM);
        }
        for pgoff in off >> PAGE_SHIFT..end.div_ceil(PAGE_SIZE) {
            let pfn = self
                .grab_folio(vm, pgoff, false)
                .map_err(|_| Errno::ENOMEM)?;
            folio_put(vm.pa, pfn);
        }
        if !keep_size {
            let _xa = self.inode().pages.lock();
            if end > self.size() {
                self.inode().size.store(end, Release);
            }
        }
        Ok(())
    }

    /// Frees the pages of `[off, off + len)` and zeroes the partial ones
    /// at its ends (`shmem_fallocate()` with `FALLOC_FL_PUNCH_HOLE`); the
    /// size stays. `EPERM` against `F_SEAL_WRITE` / `F_SEAL_FUTURE_WRITE`.
    /// `unmap(first, end)` zaps the mappings of the whole pages
    /// `[first, end)`, keeping private copies (`unmap_mapping_range()`
    /// without `even_cows`), before and after the pages go, as in
    /// [`Self::truncate`].
    pub fn punch_hole<P: Platform>(
        &self,
        vm: &Vm<'_, P>,
        off: u64,
        len: u64,
        mut unmap: impl FnMut(u64, u64),
    ) -> Result<(), Errno> {
        if self.seals() & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0 {
            return Err(Errno::EPERM);
        }
        let end = off.saturating_add(len).min(MAX_LFS_FILESIZE);
        let (first, last) = (off.div_ceil(PAGE_SIZE), end >> PAGE_SHIFT);
        if first < last {
            unmap(first, last);
        }
        let mut gone = alloc::vec::Vec::new();
        let mut partial = alloc::vec::Vec::new();
        {
            let mut xa = self.inode().pages.lock();
            let mut idx = alloc::vec::Vec::new();
            xa.for_each(|i, _| {
                if i >= first && i < last {
                    idx.push(i);
                }
            });
            gone.extend(idx.into_iter().filter_map(|i| xa.erase(i)));
            // The partial pages at either end: zero their part of the hole.
            for i in [off >> PAGE_SHIFT, end >> PAGE_SHIFT] {
                if (i < first || i >= last)
                    && i << PAGE_SHIFT < end
                    && !partial.iter().any(|&(j, _)| j == i)
                    && let Some(pfn) = Self::find_get(vm, &xa, i)
                {
                    partial.push((i, pfn));
                }
            }
        }
        for pfn in gone {
            let pfn = Pfn::new(pfn);
            Folio::of(vm.pa.memmap(), pfn).clear_mapping();
            vm.shmem_pages_sub(1);
            folio_put(vm.pa, pfn);
        }
        for (i, pfn) in partial {
            let page = i << PAGE_SHIFT;
            let from = off.max(page) - page;
            let to = end.min(page + PAGE_SIZE) - page;
            vm.pa.zero_page_range(pfn, from as usize, to as usize);
            folio_put(vm.pa, pfn);
        }
        if first < last {
            unmap(first, last);
        }
        Ok(())
    }

    /// Changes the size (`shmem_setattr()` for `ftruncate()`): `EPERM`
    /// against `F_SEAL_SHRINK` / `F_SEAL_GROW`. A shrink then truncates
    /// (`truncate_pagecache()`): `unmap(first)` is called to zap every
    /// PTE mapping pages at or after page offset `first` in every address
    /// space (Linux's `unmap_mapping_range()` over `i_mmap`; the caller
    /// finds the address spaces from [`Self::i_mmap_mms`]), the folios
    /// past the size leave the
    /// object, the tail of a last partial page is zeroed, and `unmap`
    /// runs again for a page a racing fault mapped in between (as Linux
    /// unmaps twice). Faults past the new size are `SIGBUS` from the
    /// moment the size is stored.
    pub fn truncate<P: Platform>(
        &self,
        vm: &Vm<'_, P>,
        new_size: u64,
        mut unmap: impl FnMut(u64),
    ) -> Result<(), Errno> {
        if new_size > MAX_LFS_FILESIZE {
            return Err(Errno::EFBIG);
        }
        let inode = self.inode();
        let xa = inode.pages.lock();
        let old = self.size();
        let seals = self.seals();
        if (new_size < old && seals & F_SEAL_SHRINK != 0)
            || (new_size > old && seals & F_SEAL_GROW != 0)
        {
            return Err(Errno::EPERM);
        }
        inode.size.store(new_size, Release);
        drop(xa);
        if new_size >= old {
            return Ok(());
        }
        let first = new_size.div_ceil(PAGE_SIZE);
        unmap(first);
        let mut gone = alloc::vec::Vec::new();
        let mut xa = inode.pages.lock();
        xa.for_each(|i, _| {
            if i >= first {
                gone.push(i);
            }
        });
        let gone: alloc::vec::Vec<u64> = gone.into_iter().filter_map(|i| xa.erase(i)).collect();
        // The partial last page keeps its head; its tail reads as zeros.
        let partial = (new_size & (PAGE_SIZE - 1) != 0)
            .then(|| Self::find_get(vm, &xa, new_size >> PAGE_SHIFT))
            .flatten();
        drop(xa);
        for pfn in gone {
            let pfn = Pfn::new(pfn);
            Folio::of(vm.pa.memmap(), pfn).clear_mapping();
            vm.shmem_pages_sub(1);
            folio_put(vm.pa, pfn);
        }
        if let Some(pfn) = partial {
            vm.pa
                .zero_page_tail(pfn, (new_size & (PAGE_SIZE - 1)) as usize);
            folio_put(vm.pa, pfn);
        }
        unmap(first);
        Ok(())
    }

    /// `lseek(SEEK_DATA)` (`hole == false`) or `lseek(SEEK_HOLE)` from
    /// `off` (`shmem_file_llseek()` → `mapping_seek_hole_data()`), by
    /// pages: data is an uptodate folio (written or faulted); a hole is
    /// a missing page or one only fallocated (`folio_seek_hole_data()`
    /// without `is_partially_uptodate`). `ENXIO` at or past the size, and
    /// for `SEEK_DATA` with no data after `off`; `SEEK_HOLE` finds the
    /// size at the latest. Reads the index under its lock only: the
    /// answer may be stale once returned, as Linux's under `inode_lock`
    /// is for mappings that fault.
    pub fn seek_hole_data<P: Platform>(
        &self,
        vm: &Vm<'_, P>,
        off: u64,
        hole: bool,
    ) -> Result<u64, Errno> {
        let xa = self.inode().pages.lock();
        let size = self.size();
        if off >= size {
            return Err(Errno::ENXIO);
        }
        let is_data = |i: u64| {
            xa.load(i)
                .is_some_and(|pfn| Folio::of(vm.pa.memmap(), Pfn::new(pfn)).is_uptodate())
        };
        let mut i = off >> PAGE_SHIFT;
        let end = size.div_ceil(PAGE_SIZE);
        while i < end && is_data(i) == hole {
            i += 1;
        }
        match (i < end, hole) {
            (true, _) => Ok(off.max(i << PAGE_SHIFT)),
            (false, true) => Ok(size),
            (false, false) => Err(Errno::ENXIO),
        }
    }

    /// Records a VMA of address space `mm` at `start` mapping `pages`
    /// pages from page offset `pgoff` (`vma_interval_tree_insert()`, as
    /// `vma_link_file()` does when the VMA enters its tree).
    pub(crate) fn i_mmap_insert(&self, mm: u32, start: u64, pgoff: u64, pages: u64) {
        let key = (pgoff, mm, start, pgoff + pages - 1);
        *self.inode().i_mmap.lock().entry(key).or_insert(0) += 1;
    }

    /// Forgets a VMA [`Self::i_mmap_insert`] recorded
    /// (`vma_interval_tree_remove()`, from `remove_vma()`'s unlink).
    pub(crate) fn i_mmap_remove(&self, mm: u32, start: u64, pgoff: u64, pages: u64) {
        let key = (pgoff, mm, start, pgoff + pages - 1);
        let mut i_mmap = self.inode().i_mmap.lock();
        match i_mmap.get_mut(&key) {
            Some(1) => {
                i_mmap.remove(&key);
            }
            Some(n) => *n -= 1,
            None => debug_assert!(false, "BUG: a VMA missing from i_mmap"),
        }
    }

    /// The VMAs that map any page offset of `[first, last]`
    /// (`vma_interval_tree_foreach()`), by first page offset.
    pub fn i_mmap_query(&self, first: u64, last: u64) -> Vec<IMmapEntry> {
        self.inode()
            .i_mmap
            .lock()
            .range(..=(last, u32::MAX, u64::MAX, u64::MAX))
            .filter(|&(k, _)| k.3 >= first)
            .flat_map(|(&(pgoff, mm, start, last), &n)| {
                core::iter::repeat_n(
                    IMmapEntry {
                        mm,
                        start,
                        pgoff,
                        last,
                    },
                    n as usize,
                )
            })
            .collect()
    }

    /// The ids of the address spaces with a VMA over any page offset of
    /// `[first, end)`, sorted, each once: the ones a truncation or hole
    /// punch must unmap from (`unmap_mapping_range()`'s walk).
    pub fn i_mmap_mms(&self, first: u64, end: u64) -> Vec<u32> {
        if first >= end {
            return Vec::new();
        }
        let mut ids: Vec<u32> = self
            .i_mmap_query(first, end - 1)
            .into_iter()
            .map(|e| e.mm)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Adds seals (`memfd_add_seals()`): `EINVAL` for unknown bits,
    /// `EPERM` once `F_SEAL_SEAL` is set, `EBUSY` for `F_SEAL_WRITE`
    /// while a writable shared mapping exists (`mapping_deny_writable()`).
    /// `F_SEAL_EXEC` on an executable file brings the write seals along
    /// (Linux 6.3). The caller checked that the file is open for writing.
    pub fn add_seals(&self, seals: u32, executable: bool) -> Result<(), Errno> {
        if seals & !F_ALL_SEALS != 0 {
            return Err(Errno::EINVAL);
        }
        let inode = self.inode();
        // The index lock orders this against mappings being counted.
        let _xa = inode.pages.lock();
        let old = inode.seals.load(Acquire);
        if old & F_SEAL_SEAL != 0 {
            return Err(Errno::EPERM);
        }
        let mut seals = seals;
        if seals & F_SEAL_EXEC != 0 && executable {
            seals |= F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;
        }
        if seals & F_SEAL_WRITE != 0
            && old & F_SEAL_WRITE == 0
            && inode.writable_maps.load(Acquire) > 0
        {
            return Err(Errno::EBUSY);
        }
        inode.seals.store(old | seals, Release);
        Ok(())
    }

    /// A VMA mapping the object shared and `VM_MAYWRITE` entered
    /// (`+1`) or left (`-1`) a tree (`mapping_map_writable()` /
    /// `mapping_unmap_writable()`, S5).
    pub(crate) fn account_writable(&self, sign: i64) {
        let inode = self.inode();
        let _xa = inode.pages.lock();
        if sign > 0 {
            inode.writable_maps.fetch_add(1, Relaxed);
        } else {
            let old = inode.writable_maps.fetch_sub(1, Relaxed);
            debug_assert!(old > 0, "BUG: shmem writable mapping count underflow");
        }
    }

    /// Writable shared mappings (for tests).
    pub fn writable_maps(&self) -> u64 {
        self.inode().writable_maps.load(Relaxed)
    }

    /// Whether `pfn` is still the object's folio at `pgoff` (a fault
    /// rechecks it under the PTE lock against a racing truncation).
    pub fn still_has(&self, pfn: Pfn, vm_memmap: &crate::memmap::MemMap, pgoff: u64) -> bool {
        let f = Folio::of(vm_memmap, pfn);
        f.mapping() == Some(self.mapping()) && f.index() == pgoff
    }
}
