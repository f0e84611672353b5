//! `kmalloc`: general-purpose allocation from size-class caches.
//!
//! Sizes up to [`KMALLOC_MAX_CACHE_SIZE`] (8 KiB, two pages) come from one
//! of the [`KMALLOC_SIZES`] caches, the smallest that fits (with Linux's odd
//! classes 96 and 192); larger requests go straight to the page allocator
//! as one block, its head frame marked `LARGE_KMALLOC` so that `kfree` can
//! tell (`___kmalloc_large_node`). Objects of power-of-two classes are
//! aligned to their size (up to a page), as Linux guarantees since 5.4.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::panic::Location;
use core::ptr::NonNull;

use super::{KmemCache, KmemCacheArgs, SlabInfo, freelist::Slab};
use crate::addr::{Order, PAGE_SIZE, Pfn};
use crate::gfp::Gfp;
use crate::memmap::PageFlags;
use crate::page_alloc::PageAlloc;
use crate::platform::Platform;

/// The kmalloc size classes on x86_64.
pub const KMALLOC_SIZES: [usize; 13] = [
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];
/// Largest size served by a cache; above it kmalloc uses whole pages.
pub const KMALLOC_MAX_CACHE_SIZE: usize = 8192;

const NAMES: [&str; 13] = [
    "kmalloc-8",
    "kmalloc-16",
    "kmalloc-32",
    "kmalloc-64",
    "kmalloc-96",
    "kmalloc-128",
    "kmalloc-192",
    "kmalloc-256",
    "kmalloc-512",
    "kmalloc-1k",
    "kmalloc-2k",
    "kmalloc-4k",
    "kmalloc-8k",
];

/// The kmalloc caches of one machine.
pub struct Kmalloc<'a, P: Platform> {
    pa: &'a PageAlloc<P>,
    /// Boxed: slabs point back at their cache, so caches never move.
    #[allow(clippy::vec_box)]
    caches: Vec<Box<KmemCache<'a, P>>>,
}

impl<'a, P: Platform> Kmalloc<'a, P> {
    /// Creates the size-class caches (`create_kmalloc_caches`).
    pub fn new(pa: &'a PageAlloc<P>) -> Box<Self> {
        let caches = KMALLOC_SIZES
            .iter()
            .zip(NAMES)
            .map(|(&size, name)| {
                let align = if size.is_power_of_two() {
                    size.min(PAGE_SIZE as usize)
                } else {
                    8
                };
                let args = KmemCacheArgs {
                    align,
                    ..Default::default()
                };
                KmemCache::new(pa, name, size, args).expect("kmalloc cache parameters are valid")
            })
            .collect();
        Box::new(Self { pa, caches })
    }

    /// The size-class caches, smallest first.
    pub fn caches(&self) -> impl Iterator<Item = &KmemCache<'a, P>> {
        self.caches.iter().map(|c| &**c)
    }

    /// The cache for `size` bytes, if a cache serves it (`kmalloc_slab`).
    fn cache_for(&self, size: usize) -> Option<&KmemCache<'a, P>> {
        let i = KMALLOC_SIZES.iter().position(|&s| s >= size)?;
        Some(&self.caches[i])
    }

    /// Allocates at least `size` bytes (`kmalloc`). `size` 0 gets the
    /// smallest object (Linux returns ZERO_SIZE_PTR; a real pointer keeps
    /// Rust callers simple).
    pub fn kmalloc(&self, size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        match self.cache_for(size.max(1)) {
            Some(cache) => cache.alloc(gfp),
            None => self.kmalloc_large(size, gfp),
        }
    }

    fn kmalloc_large(&self, size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        let order = Order::for_bytes(size as u64)?;
        let pfn = self.pa.alloc_pages(gfp, order).ok()?;
        let map = self.pa.memmap();
        map.page(pfn).set_flags(PageFlags::LARGE_KMALLOC);
        for i in 1..order.nr_pages() {
            let tail = map.page(pfn.add(i));
            tail.set_flags(PageFlags::TAIL);
            tail.set_private(pfn.as_u64());
        }
        NonNull::new(self.pa.platform().phys_to_virt(pfn.phys_addr()))
    }

    /// What `ptr` is: a slab object of one of our caches, or a large block.
    fn classify(&self, ptr: *const u8) -> Option<Owner<'_, 'a, P>> {
        let pa = self.pa.platform().virt_to_phys(ptr)?;
        let map = self.pa.memmap();
        let page = map.get(pa.pfn())?;
        let head = if page.flags().contains(PageFlags::TAIL) {
            Pfn::new(page.private())
        } else {
            pa.pfn()
        };
        let head_page = map.get(head)?;
        if head_page.flags().contains(PageFlags::LARGE_KMALLOC) {
            return (pa.as_u64() == head.phys_addr().as_u64())
                .then_some(Owner::Large(head, head_page.order()));
        }
        let slab = Slab::containing(map, pa.pfn())?;
        self.caches
            .iter()
            .find(|c| c.id() == slab.cache())
            .map(|c| Owner::Cache(c))
    }

    /// Usable size of an allocation (`ksize`); 0 for a foreign pointer.
    pub fn ksize(&self, ptr: NonNull<u8>) -> usize {
        match self.classify(ptr.as_ptr()) {
            Some(Owner::Cache(c)) => c.object_size(),
            Some(Owner::Large(_, order)) => order.bytes() as usize,
            None => 0,
        }
    }

    /// Frees what kmalloc returned (`kfree`); anything else is reported.
    ///
    /// # Safety
    ///
    /// `ptr` came from this allocator and is not used afterwards.
    #[track_caller]
    pub unsafe fn kfree(&self, ptr: NonNull<u8>) {
        match self.classify(ptr.as_ptr()) {
            // SAFETY: forwarded from the caller.
            Some(Owner::Cache(c)) => unsafe { c.free(ptr) },
            Some(Owner::Large(pfn, order)) => {
                let map = self.pa.memmap();
                map.page(pfn).set_flags(PageFlags::empty());
                for i in 1..order.nr_pages() {
                    map.page(pfn.add(i)).set_flags(PageFlags::empty());
                }
                let _ = self.pa.free_pages(pfn, order);
            }
            None => log::error!(
                "BUG: kfree of {:p}, which kmalloc did not return, from {}; ignored",
                ptr.as_ptr(),
                Location::caller()
            ),
        }
    }

    /// Resizes an allocation, moving it if it must (`krealloc`). On
    /// failure the old allocation is untouched and `None` is returned.
    ///
    /// # Safety
    ///
    /// As [`Kmalloc::kfree`] for `ptr`.
    pub unsafe fn krealloc(
        &self,
        ptr: NonNull<u8>,
        new_size: usize,
        gfp: Gfp,
    ) -> Option<NonNull<u8>> {
        let old = self.ksize(ptr);
        if old >= new_size.max(1) && old > 0 {
            return Some(ptr);
        }
        let new = self.kmalloc(new_size, gfp)?;
        // SAFETY: both blocks are ours, distinct, and at least old.min(new)
        // bytes long.
        unsafe {
            core::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old.min(new_size));
            self.kfree(ptr);
        }
        Some(new)
    }

    /// `/proc/slabinfo` lines of the kmalloc caches.
    pub fn slabinfo(&self) -> impl Iterator<Item = (&'static str, SlabInfo)> + '_ {
        self.caches.iter().map(|c| (c.name(), c.info()))
    }
}

enum Owner<'k, 'a, P: Platform> {
    Cache(&'k KmemCache<'a, P>),
    Large(Pfn, Order),
}
