//! A slab: the head frame's record in the memmap, overlaid with the slab
//! fields, and the free pointers kept inside free objects.
//!
//! ```text
//!   head Page:  flags SLAB | order | lru links (node partial list)
//!               private = &KmemCache      ext[0] = freelist (encoded)
//!               ext[1]  = counters: inuse (bits 0..32) | objects (32..48) | frozen (48)
//!   tail Pages: flags TAIL, private = head pfn
//!
//!   objects:  [obj 0 | red zone][obj 1 | red zone] ...   (slot = `size` bytes)
//!   a free object holds at `offset` the encoded pointer to the next free
//!   object (SLAB_FREELIST_HARDENED):  stored = next ^ random ^ swab(&slot)
//! ```
//!
//! # Invariants
//!
//! - S1: `inuse` counts objects not on the slab's own freelist; objects on a
//!   CPU's freelist count as in use (the CPU took them as a batch).
//! - S2: a frozen slab belongs to one CPU (its CPU slab) and is on no list;
//!   an unfrozen slab with free objects is on its node's partial list; a
//!   full unfrozen slab is on no list.
//! - S3: every decoded free pointer is null or the start of an object slot
//!   of the same slab; anything else is corruption and is reported.
//!
//! The slab fields of unfrozen slabs, and the freelist of frozen ones, are
//! written under the node's `list_lock`.

use core::sync::atomic::Ordering::Relaxed;

use crate::addr::{Order, Pfn};
use crate::memmap::{MemMap, Page, PageFlags};

const INUSE_MASK: u64 = 0xffff_ffff;
const OBJECTS_SHIFT: u32 = 32;
const FROZEN: u64 = 1 << 48;

/// The slab view of a head frame.
#[derive(Clone, Copy)]
pub(super) struct Slab<'a> {
    pub(super) pfn: Pfn,
    page: &'a Page,
}

impl<'a> Slab<'a> {
    /// The slab whose head is `pfn` (the frame must be a slab head).
    #[inline]
    pub(super) fn from_head(map: &'a MemMap, pfn: Pfn) -> Self {
        let page = map.page(pfn);
        debug_assert!(page.flags().contains(PageFlags::SLAB));
        Self { pfn, page }
    }

    /// The slab containing frame `pfn`, if it is part of one.
    #[inline]
    pub(super) fn containing(map: &'a MemMap, pfn: Pfn) -> Option<Self> {
        let page = map.get(pfn)?;
        let flags = page.flags();
        let head = if flags.contains(PageFlags::TAIL) {
            Pfn::new(page.private())
        } else {
            pfn
        };
        let head_page = map.get(head)?;
        head_page.flags().contains(PageFlags::SLAB).then_some(Self {
            pfn: head,
            page: head_page,
        })
    }

    /// Marks a freshly allocated block of 2^order frames as a slab of
    /// `cache` with `objects` objects, all free (`freelist` encoded).
    pub(super) fn init(
        map: &'a MemMap,
        pfn: Pfn,
        order: Order,
        cache: u64,
        objects: u32,
        freelist: u64,
    ) -> Self {
        let page = map.page(pfn);
        page.set_flags(PageFlags::SLAB);
        page.set_private(cache);
        page.ext(0).store(freelist, Relaxed);
        page.ext(1)
            .store(u64::from(objects) << OBJECTS_SHIFT, Relaxed);
        for i in 1..order.nr_pages() {
            let tail = map.page(pfn.add(i));
            tail.set_flags(PageFlags::TAIL);
            tail.set_private(pfn.as_u64());
        }
        Self { pfn, page }
    }

    /// Clears the slab marks before the frames go back to the page allocator.
    pub(super) fn clear(self, map: &MemMap, order: Order) {
        for i in 1..order.nr_pages() {
            let tail = map.page(self.pfn.add(i));
            tail.set_flags(PageFlags::empty());
            tail.set_private(0);
        }
        self.page.set_flags(PageFlags::empty());
        self.page.set_private(0);
        self.page.ext(0).store(0, Relaxed);
        self.page.ext(1).store(0, Relaxed);
    }

    /// The owning cache's address.
    #[inline]
    pub(super) fn cache(&self) -> u64 {
        self.page.private()
    }

    #[inline]
    pub(super) fn freelist(&self) -> u64 {
        self.page.ext(0).load(Relaxed)
    }

    #[inline]
    pub(super) fn set_freelist(&self, v: u64) {
        self.page.ext(0).store(v, Relaxed);
    }

    #[inline]
    pub(super) fn inuse(&self) -> u32 {
        (self.page.ext(1).load(Relaxed) & INUSE_MASK) as u32
    }

    #[inline]
    pub(super) fn objects(&self) -> u32 {
        ((self.page.ext(1).load(Relaxed) >> OBJECTS_SHIFT) & 0xffff) as u32
    }

    #[inline]
    pub(super) fn frozen(&self) -> bool {
        self.page.ext(1).load(Relaxed) & FROZEN != 0
    }

    #[inline]
    pub(super) fn set_counters(&self, inuse: u32, frozen: bool) {
        let v = u64::from(inuse)
            | (u64::from(self.objects()) << OBJECTS_SHIFT)
            | if frozen { FROZEN } else { 0 };
        self.page.ext(1).store(v, Relaxed);
    }

    /// Bytes the slab spans.
    pub(super) const fn bytes(order: Order) -> usize {
        order.bytes() as usize
    }
}

/// Linux's `swab()` of the slot address: spreads the address bits over the
/// whole word so that a partial overwrite of a free pointer decodes to
/// garbage instead of a plausible address.
#[inline]
pub(super) fn encode(next: u64, slot_addr: u64, random: u64) -> u64 {
    next ^ random ^ slot_addr.swap_bytes()
}

#[inline]
pub(super) fn decode(stored: u64, slot_addr: u64, random: u64) -> u64 {
    stored ^ random ^ slot_addr.swap_bytes()
}
