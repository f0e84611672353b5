//! Folios: a head frame and its 2^order − 1 tail frames managed as one
//! unit, with Linux 6.15's mapcounts and MM-id owner slots
//! (`include/linux/mm_types.h: struct folio`, `include/linux/rmap.h`).
//!
//! A small (order-0) folio counts its page-table mappings in the head
//! frame's mapcount. A large folio keeps, in the `ext` words of its first
//! tail frame (`page[1]`):
//!
//! ```text
//!   ext[0]  _large_mapcount     all PTE/PMD mappings − 1 (−1: unmapped)
//!   ext[1]  _entire_mapcount (low 32, −1 based) | _nr_pages_mapped (high 32)
//!   ext[2]  _mm_ids: mm_id[0] (bits 0..31) | lock (bit 31)
//!           | mm_id[1] (bits 32..63) | maybe-shared (bit 63)
//!   ext[3]  _mm_id_mapcount[0] (low 32) | [1] (high 32), −1 based
//! ```
//!
//! The head frame's `ext` words hold the folio's mapping: `ext[0]` the
//! anon_vma of an anonymous folio, `ext[1]` the page index
//! (`folio->index`), `ext[2]` the shmem object of a shmem folio
//! (`folio->mapping`; [`PageFlags::SHMEM`] marks such folios).
//!
//! The owner slots remember up to two MMs mapping the folio, so that
//! [`Folio::maybe_mapped_shared`] answers "certainly one MM" without a
//! reverse-map walk: it has no false negatives; it may say "maybe shared"
//! when a third MM was involved (documented imprecision). Slot updates
//! happen under a bit spinlock in the `_mm_ids` word and end with a plain
//! store of that word (one atomic per update, as Linux's
//! `folio_lock_large_mapcount()` / `__bit_spin_unlock`). Callers hold the
//! page-table lock of the mapping they change.
//!
//! Per-page mapcounts of large folios are kept ([`MapcountMode::PerPage`],
//! Linux's default) or not ([`MapcountMode::NoPageMapcount`],
//! `CONFIG_NO_PAGE_MAPCOUNT`): then a folio counts as mapped when any page
//! is, and partial mapping is not tracked.

#[cfg(test)]
mod tests;

use core::sync::atomic::{AtomicU64, Ordering::*};

use crate::addr::{Order, Pfn};
use crate::memmap::{MemMap, Page, PageFlags};

/// No owner (`MM_ID_DUMMY`).
pub const MM_ID_DUMMY: u32 = 0;
/// Largest MM id (`MM_ID_MAX`: 31 bits).
pub const MM_ID_MAX: u32 = (1 << 31) - 1;
/// Lock bit of `_mm_ids` (`FOLIO_MM_IDS_LOCK_BITNUM`).
const LOCK_BIT: u32 = 31;
/// Maybe-mapped-shared bit of `_mm_ids` (`FOLIO_MM_IDS_SHARED_BITNUM`).
const SHARED: u64 = 1 << 63;
const ID_MASK: u64 = MM_ID_MAX as u64;

/// Whether large folios keep a mapcount per page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapcountMode {
    /// Linux's default: per-page mapcounts and `_nr_pages_mapped`.
    PerPage,
    /// `CONFIG_NO_PAGE_MAPCOUNT`: only the folio-wide counts.
    NoPageMapcount,
}

/// A view of a folio in the memmap.
#[derive(Clone, Copy)]
pub struct Folio<'a> {
    memmap: &'a MemMap,
    head: Pfn,
}

/// The owner-slot state of a large folio, decoded (for tests and
/// debugging).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerSlots {
    /// `(mm id, mappings)` per slot; id [`MM_ID_DUMMY`] and 0 when free.
    pub slots: [(u32, i64); 2],
    pub shared: bool,
}

impl<'a> Folio<'a> {
    /// The folio of `pfn` (a head, or a tail that names its head).
    #[inline]
    pub fn of(memmap: &'a MemMap, pfn: Pfn) -> Folio<'a> {
        let page = memmap.page(pfn);
        let head = if page.flags().contains(PageFlags::TAIL) {
            Pfn::new(page.private())
        } else {
            pfn
        };
        Folio { memmap, head }
    }

    #[inline]
    pub fn head(&self) -> Pfn {
        self.head
    }

    #[inline]
    pub fn order(&self) -> Order {
        self.page(0).order()
    }

    #[inline]
    pub fn nr_pages(&self) -> usize {
        self.order().nr_pages() as usize
    }

    #[inline]
    pub fn is_large(&self) -> bool {
        self.order() > Order::ZERO
    }

    /// Which page of the folio frame `pfn` is (`folio_page_idx()`).
    #[inline]
    pub fn page_idx(&self, pfn: Pfn) -> usize {
        debug_assert!(pfn.as_u64() >= self.head.as_u64());
        (pfn.as_u64() - self.head.as_u64()) as usize
    }

    /// Page `i` of the folio.
    #[inline]
    pub fn page(&self, i: usize) -> &'a Page {
        self.memmap.page(self.head.add(i as u64))
    }

    #[inline]
    fn word(&self, i: usize) -> &'a AtomicU64 {
        self.page(1).ext(i)
    }

    /// Sets up a block fresh from the page allocator as a folio: tails
    /// name their head, mapcounts unmapped, both slots free, not shared
    /// (compound-page preparation).
    pub fn prep(memmap: &'a MemMap, head: Pfn) -> Folio<'a> {
        let f = Folio { memmap, head };
        for i in 1..f.nr_pages() {
            let p = f.page(i);
            p.set_flags(p.flags() | PageFlags::TAIL);
            p.set_private(head.as_u64());
        }
        if f.is_large() {
            f.word(0).store(-1i64 as u64, Relaxed);
            f.word(1).store(0xffff_ffff, Relaxed);
            f.word(2).store(0, Relaxed);
            f.word(3).store(u64::MAX, Relaxed);
        }
        f
    }

    /// Records the anonymous mapping of the folio (`__folio_set_anon()`):
    /// its anon_vma and the linear page index of its first page, kept in
    /// the head frame's `ext[0]` and `ext[1]`.
    pub fn set_anon(&self, anon_vma: u64, index: u64) {
        self.page(0).ext(0).store(anon_vma, Relaxed);
        self.page(0).ext(1).store(index, Relaxed);
    }

    /// Makes a fresh folio a shmem folio of the object at `mapping`, at
    /// page offset `index` (`folio->mapping`, `folio->index`; Linux's
    /// `__folio_set_swapbacked()` with `shmem_add_to_page_cache()`): the
    /// head's `ext[2]` and `ext[1]`, and [`PageFlags::SHMEM`].
    pub fn set_shmem(&self, mapping: u64, index: u64) {
        let head = self.page(0);
        head.set_flags(head.flags() | PageFlags::SHMEM);
        head.ext(2).store(mapping, Relaxed);
        head.ext(1).store(index, Relaxed);
    }

    /// Whether this is a shmem folio (counted as `MM_SHMEMPAGES`), in an
    /// object or truncated from one while still mapped.
    pub fn is_shmem(&self) -> bool {
        self.page(0).flags().contains(PageFlags::SHMEM)
    }

    /// Whether the folio is dirty (`folio_test_dirty()`).
    pub fn is_dirty(&self) -> bool {
        self.page(0).flags().contains(PageFlags::DIRTY)
    }

    /// Marks the folio dirty (`folio_mark_dirty()`; shmem's
    /// `noop_dirty_folio` only sets the flag). Callers hold a reference.
    pub fn mark_dirty(&self) {
        if !self.is_dirty() {
            self.page(0).set_flags_atomic(PageFlags::DIRTY);
        }
    }

    /// Whether the folio's contents are valid (`folio_test_uptodate()`).
    pub fn is_uptodate(&self) -> bool {
        self.page(0).flags().contains(PageFlags::UPTODATE)
    }

    /// Marks the folio's contents valid (`folio_mark_uptodate()`);
    /// callers hold a reference.
    pub fn mark_uptodate(&self) {
        if !self.is_uptodate() {
            self.page(0).set_flags_atomic(PageFlags::UPTODATE);
        }
    }

    /// The object a shmem folio belongs to (`folio->mapping`); `None`
    /// for anonymous folios and after truncation.
    pub fn mapping(&self) -> Option<u64> {
        match self.page(0).ext(2).load(Relaxed) {
            0 => None,
            m => Some(m),
        }
    }

    /// The folio left its object (`filemap_remove_folio()` sets
    /// `folio->mapping = NULL`); it stays a shmem folio for its mappings.
    pub fn clear_mapping(&self) {
        self.page(0).ext(2).store(0, Relaxed);
    }

    /// The anon_vma of an anonymous folio (`folio_anon_vma()`).
    pub fn anon_vma(&self) -> Option<u64> {
        match self.page(0).ext(0).load(Relaxed) {
            0 => None,
            av => Some(av),
        }
    }

    /// Linear page index of the first page (`folio->index`).
    pub fn index(&self) -> u64 {
        self.page(0).ext(1).load(Relaxed)
    }

    /// Undoes [`Folio::prep`] before the block goes back to the page
    /// allocator; a folio still mapped or owned is reported.
    pub fn unprep(&self) -> Result<(), &'static str> {
        let head = self.page(0);
        head.ext(0).store(0, Relaxed);
        head.ext(1).store(0, Relaxed);
        head.ext(2).store(0, Relaxed);
        head.set_flags(head.flags() - PageFlags::SHMEM - PageFlags::DIRTY - PageFlags::UPTODATE);
        if self.is_large() {
            if self.large_mapcount() != 0 || self.entire_mapcount() != 0 {
                return Err("large folio freed while mapped");
            }
            if self.owner_slots().slots != [(MM_ID_DUMMY, 0); 2] || self.owner_slots().shared {
                return Err("large folio freed with owner slots in use");
            }
            for i in 0..4 {
                self.word(i).store(0, Relaxed);
            }
        }
        for i in 1..self.nr_pages() {
            let p = self.page(i);
            if p.mapcount() != 0 {
                return Err("tail page freed while mapped");
            }
            p.set_flags(p.flags() - PageFlags::TAIL);
            p.set_private(0);
        }
        Ok(())
    }

    /// All page-table mappings of the folio (`folio_mapcount()`).
    pub fn mapcount(&self) -> i64 {
        if !self.is_large() {
            return self.page(0).mapcount() as i64;
        }
        self.large_mapcount()
    }

    /// How often page `i` is mapped (`folio_precise_page_mapcount()`):
    /// its own PTE mappings plus the folio's PMD mappings. Exact only
    /// with per-page mapcounts ([`MapcountMode::PerPage`]); without them
    /// a large folio's pages keep no count.
    pub fn precise_page_mapcount(&self, i: usize) -> i64 {
        let own = self.page(i).mapcount() as i64;
        if self.is_large() {
            own + self.entire_mapcount()
        } else {
            own
        }
    }

    /// The average number of mappings per page (Linux 6.15's
    /// `folio_average_page_mapcount()`, what `/proc` shows without
    /// per-page mapcounts): the PTE mappings spread over the pages,
    /// rounded to the nearest integer but at least 1 while any page is
    /// mapped, plus the PMD mappings.
    pub fn average_page_mapcount(&self) -> i64 {
        if !self.is_large() {
            return self.page(0).mapcount() as i64;
        }
        let mapcount = self.large_mapcount();
        if mapcount <= 0 {
            return 0;
        }
        let entire = self.entire_mapcount();
        if mapcount <= entire {
            return entire;
        }
        let ptes = (mapcount - entire) as u64;
        let avg = ((ptes + self.nr_pages() as u64 / 2) >> self.order().get()) as i64;
        (avg + entire).max(1)
    }

    /// `_large_mapcount + 1`.
    pub fn large_mapcount(&self) -> i64 {
        self.word(0).load(Relaxed) as i64 + 1
    }

    /// PMD mappings (`_entire_mapcount + 1`).
    pub fn entire_mapcount(&self) -> i64 {
        (self.word(1).load(Relaxed) as u32 as i32) as i64 + 1
    }

    /// Pages mapped at least once (`_nr_pages_mapped`; kept only with
    /// per-page mapcounts).
    pub fn nr_pages_mapped(&self) -> u32 {
        (self.word(1).load(Relaxed) >> 32) as u32
    }

    fn add_nr_pages_mapped(&self, n: i32) {
        let w = self.word(1).load(Relaxed);
        let v = ((w >> 32) as i32 + n) as u32;
        self.word(1)
            .store((w & 0xffff_ffff) | (v as u64) << 32, Relaxed);
    }

    /// The owner slots, decoded.
    pub fn owner_slots(&self) -> OwnerSlots {
        let ids = self.word(2).load(Relaxed);
        let counts = self.word(3).load(Relaxed);
        OwnerSlots {
            slots: [
                ((ids & ID_MASK) as u32, (counts as u32 as i32) as i64 + 1),
                (
                    ((ids >> 32) & ID_MASK) as u32,
                    ((counts >> 32) as u32 as i32) as i64 + 1,
                ),
            ],
            shared: ids & SHARED != 0,
        }
    }

    /// `folio_maybe_mapped_shared()`: false means mapped by at most one
    /// MM, certainly.
    pub fn maybe_mapped_shared(&self) -> bool {
        if !self.is_large() {
            return self.page(0).mapcount() > 1;
        }
        // A single mapping is exclusive even if the bit is stale.
        if self.large_mapcount() <= 1 {
            return false;
        }
        self.word(2).load(Relaxed) & SHARED != 0
    }

    /// `wp_can_reuse_anon_folio()`'s test: may a write make a PTE of
    /// this anonymous folio writable in place, the folio certainly mapped
    /// by one MM only? A small folio when its one mapping is its one
    /// reference; a large one as [`Folio::wp_can_reuse_large`].
    pub fn wp_can_reuse(&self) -> bool {
        if self.is_large() {
            return self.wp_can_reuse_large();
        }
        self.page(0).mapcount() == 1 && self.page(0).refcount() == 1
    }

    /// `__wp_can_reuse_large_anon_folio()` (6.15): may a write fault make
    /// a PTE of this large folio writable instead of copying? Only when
    /// it has more than one mapping, is certainly mapped by one MM, and
    /// every reference is one of those mappings (no pins, nothing in
    /// flight); rechecked under the slot lock, which freezes the
    /// mapcount against new mappings.
    pub fn wp_can_reuse_large(&self) -> bool {
        let refs = || self.page(0).refcount() as i64;
        if self.large_mapcount() <= 1
            || self.word(2).load(Relaxed) & SHARED != 0
            || self.large_mapcount() != refs()
        {
            return false;
        }
        let mut ok = false;
        self.with_slots(|s| ok = !s.shared && s.total + 1 == refs());
        ok
    }

    /// Runs `f` on the decoded slot state under the `_mm_ids` bit lock and
    /// writes it back with the unlocking store.
    fn with_slots<R>(&self, f: impl FnOnce(&mut Slots) -> R) -> R {
        let ids_word = self.word(2);
        // folio_lock_large_mapcount(): the caller holds a page-table lock,
        // so preemption is already disabled.
        let mut ids = loop {
            let old = ids_word.fetch_or(1 << LOCK_BIT, Acquire);
            if old & (1 << LOCK_BIT) == 0 {
                break old;
            }
            while ids_word.load(Relaxed) & (1 << LOCK_BIT) != 0 {
                core::hint::spin_loop();
            }
        };
        let counts = self.word(3).load(Relaxed);
        let mut s = Slots {
            total: self.word(0).load(Relaxed) as i64,
            id: [(ids & ID_MASK) as u32, ((ids >> 32) & ID_MASK) as u32],
            count: [counts as u32 as i32, (counts >> 32) as u32 as i32],
            shared: ids & SHARED != 0,
        };
        let r = f(&mut s);
        self.word(0).store(s.total as u64, Relaxed);
        self.word(3).store(
            s.count[0] as u32 as u64 | (s.count[1] as u32 as u64) << 32,
            Relaxed,
        );
        ids = s.id[0] as u64 | (s.id[1] as u64) << 32;
        if s.shared {
            ids |= SHARED;
        }
        // __bit_spin_unlock(): every bit of the word changes only under the
        // lock, so a release store of the new value unlocks.
        ids_word.store(ids, Release);
        r
    }

    /// `folio_add_large_mapcount()`: `diff` new mappings by MM `me`.
    /// Returns whether the folio was unmapped before
    /// (`folio_add_return_large_mapcount()` returning `diff`).
    pub fn add_large_mapcount(&self, diff: i32, me: u32) -> bool {
        self.with_slots(|s| {
            let was_unmapped = s.total == -1;
            s.total += diff as i64;
            if s.id[0] == me {
                s.count[0] += diff;
            } else if s.id[1] == me {
                s.count[1] += diff;
            } else if s.id[0] == MM_ID_DUMMY {
                s.id[0] = me;
                s.count[0] = diff - 1;
                // Others may map it already.
                if s.total != (diff - 1) as i64 {
                    s.shared = true;
                }
            } else if s.id[1] == MM_ID_DUMMY {
                s.id[1] = me;
                s.count[1] = diff - 1;
                // Slot 0 certainly has mappings as well.
                s.shared = true;
            }
            // Else `me` is untracked: both slots belong to others, and the
            // shared bit is set already.
            was_unmapped
        })
    }

    /// `folio_sub_large_mapcount()`: `diff` mappings by MM `me` removed.
    /// Returns whether the folio is unmapped now
    /// (`folio_sub_return_large_mapcount()` returning 0).
    pub fn sub_large_mapcount(&self, diff: i32, me: u32) -> bool {
        self.with_slots(|s| {
            s.total -= diff as i64;
            let unmapped = s.total == -1;
            for i in 0..2 {
                if s.id[i] == me {
                    s.count[i] -= diff;
                    if s.count[i] >= 0 {
                        // `me` still maps it: cannot have become exclusive.
                        return unmapped;
                    }
                    // Underflow is legal (mappings added while untracked):
                    // free the slot.
                    s.count[i] = -1;
                    s.id[i] = MM_ID_DUMMY;
                    break;
                }
            }
            // One slot owning every mapping (or nothing mapped: both −1)
            // means exclusive.
            if s.count[0] as i64 == s.total || s.count[1] as i64 == s.total {
                s.shared = false;
            }
            unmapped
        })
    }

    /// `folio_set_large_mapcount()`: a new folio mapped `count` times by
    /// MM `me` alone.
    pub fn set_large_mapcount(&self, count: i32, me: u32) {
        self.with_slots(|s| {
            s.total = (count - 1) as i64;
            s.id[0] = me;
            s.count[0] = count - 1;
        });
    }

    /// `folio_add_new_anon_rmap()`: a brand-new folio mapped whole by PTEs
    /// of MM `me`.
    pub fn add_new_anon_rmap(&self, me: u32, mode: MapcountMode) {
        if !self.is_large() {
            self.page(0).mapcount_add(1);
            return;
        }
        let n = self.nr_pages();
        if mode == MapcountMode::PerPage {
            for i in 0..n {
                self.page(i).mapcount_add(1);
            }
            self.add_nr_pages_mapped(n as i32);
        }
        self.set_large_mapcount(n as i32, me);
    }

    /// `folio_add_anon_rmap_ptes()` / `folio_add_file_rmap_ptes()`: pages
    /// `first..first + nr` mapped once more by PTEs of MM `me`. Returns
    /// how many pages became mapped (`__folio_add_rmap()`'s `nr`, what
    /// `NR_ANON_MAPPED` / `NR_FILE_MAPPED` move by): per page, or the
    /// whole folio when it was unmapped without per-page mapcounts.
    pub fn add_rmap_ptes(&self, first: usize, nr: usize, me: u32, mode: MapcountMode) -> usize {
        assert!(
            first + nr <= self.nr_pages() && nr > 0,
            "rmap range outside the folio"
        );
        if !self.is_large() {
            return usize::from(self.page(0).mapcount_add(1) == 1);
        }
        let mut newly = 0;
        if mode == MapcountMode::PerPage {
            newly = (first..first + nr)
                .filter(|&i| self.page(i).mapcount_add(1) == 1)
                .count();
            self.add_nr_pages_mapped(newly as i32);
        }
        let was_unmapped = self.add_large_mapcount(nr as i32, me);
        match mode {
            MapcountMode::PerPage => newly,
            MapcountMode::NoPageMapcount if was_unmapped => self.nr_pages(),
            MapcountMode::NoPageMapcount => 0,
        }
    }

    /// `folio_remove_rmap_ptes()`: one PTE mapping of each page
    /// `first..first + nr` removed from MM `me`. Returns how many pages
    /// became unmapped (as [`Folio::add_rmap_ptes`]).
    pub fn remove_rmap_ptes(&self, first: usize, nr: usize, me: u32, mode: MapcountMode) -> usize {
        assert!(
            first + nr <= self.nr_pages() && nr > 0,
            "rmap range outside the folio"
        );
        if !self.is_large() {
            return usize::from(self.page(0).mapcount_add(-1) == 0);
        }
        let mut gone = 0;
        if mode == MapcountMode::PerPage {
            gone = (first..first + nr)
                .filter(|&i| self.page(i).mapcount_add(-1) == 0)
                .count();
            self.add_nr_pages_mapped(-(gone as i32));
        }
        let unmapped = self.sub_large_mapcount(nr as i32, me);
        match mode {
            MapcountMode::PerPage => gone,
            MapcountMode::NoPageMapcount if unmapped => self.nr_pages(),
            MapcountMode::NoPageMapcount => 0,
        }
    }
}

/// Drops a reference to the folio of `pfn` (`folio_put()`); the last one
/// undoes the folio and frees its block. Mapping code holds one reference
/// per PTE mapping.
pub fn folio_put<P: crate::platform::Platform>(pa: &crate::page_alloc::PageAlloc<P>, pfn: Pfn) {
    folio_put_refs(pa, pfn, 1);
}

/// Drops `nr` references to the folio of `pfn` at once (`folio_put_refs()`:
/// a batch of `nr` PTE mappings of one folio unmapped together).
pub fn folio_put_refs<P: crate::platform::Platform>(
    pa: &crate::page_alloc::PageAlloc<P>,
    pfn: Pfn,
    nr: u32,
) {
    let folio = Folio::of(pa.memmap(), pfn);
    let head = folio.page(0);
    let more = if nr == 1 {
        head.refcount_dec_not_one()
    } else {
        head.refcount_sub_not_last(nr as i32)
    };
    if more {
        return;
    }
    if let Err(why) = folio.unprep() {
        log::error!(
            "BUG: folio {:?} (order {}): {why}",
            folio.head(),
            folio.order()
        );
        return;
    }
    if let Err(bad) = pa.free_pages(folio.head(), folio.order()) {
        log::error!("BUG: freeing folio {:?}: {bad:?}", folio.head());
    }
}

/// Takes `n` references to the folio (`folio_ref_add()`).
pub fn folio_ref_add(folio: &Folio<'_>, n: i32) {
    folio.page(0).refcount_add(n);
}

/// The `_mm_ids`/mapcount state being updated under the lock, in Linux's
/// −1-based form.
struct Slots {
    total: i64,
    id: [u32; 2],
    count: [i32; 2],
    shared: bool,
}
