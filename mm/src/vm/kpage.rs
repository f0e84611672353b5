//! `/proc/kpagecount` and `/proc/kpageflags` (Linux's `fs/proc/page.c`):
//! one 64-bit word per physical frame, indexed by PFN.
//!
//! - kpagecount: how often the page is mapped into user page tables
//!   (`folio_precise_page_mapcount()`), or, without per-page mapcounts
//!   (Linux 6.15's `CONFIG_NO_PAGE_MAPCOUNT`), its folio's average
//!   mapcount ([`Folio::average_page_mapcount`]: at least 1 while any
//!   page of the folio is mapped). 0 for frames that are no user folio
//!   (free, slab, page tables, reserved, the zero page).
//! - kpageflags: the `KPF_*` bits of `include/uapi/linux/kernel-page-flags.h`
//!   this kernel has a meaning for: `NOPAGE` past the memmap, `BUDDY` on
//!   the head of a free block, `SLAB`, `PGTABLE`, `RESERVED`,
//!   `ZERO_PAGE`; for user folios `MMAP` (mapped), `ANON` or shmem,
//!   `SWAPBACKED` and `UPTODATE` (both always, as Linux's anonymous and
//!   shmem folios), `DIRTY` (`PG_dirty`), `COMPOUND_HEAD`/`COMPOUND_TAIL`
//!   and `THP` (a large anonymous folio, any mTHP size). There are no
//!   LRU lists, page locks, writeback or swap yet: those bits stay 0.
//!
//! # Context
//!
//! Reads the memmap without locks, as Linux reads a page snapshot: a
//! frame changing owner meanwhile gives a stale but harmless answer.
#![forbid(unsafe_code)]

use super::Vm;
use crate::addr::{Order, Pfn};
use crate::folio::{Folio, MapcountMode};
use crate::memmap::{PageFlags, PageState};
use crate::platform::Platform;

pub const KPF_LOCKED: u32 = 0;
pub const KPF_REFERENCED: u32 = 2;
pub const KPF_UPTODATE: u32 = 3;
pub const KPF_DIRTY: u32 = 4;
pub const KPF_LRU: u32 = 5;
pub const KPF_SLAB: u32 = 7;
pub const KPF_BUDDY: u32 = 10;
pub const KPF_MMAP: u32 = 11;
pub const KPF_ANON: u32 = 12;
pub const KPF_SWAPBACKED: u32 = 14;
pub const KPF_COMPOUND_HEAD: u32 = 15;
pub const KPF_COMPOUND_TAIL: u32 = 16;
pub const KPF_NOPAGE: u32 = 20;
pub const KPF_THP: u32 = 22;
pub const KPF_ZERO_PAGE: u32 = 24;
pub const KPF_PGTABLE: u32 = 26;
pub const KPF_RESERVED: u32 = 32;

/// What a frame is, as far as these files care.
enum Kind<'m> {
    /// No frame record (`pfn_to_online_page()` is NULL).
    NoPage,
    /// The shared zero page.
    Zero,
    /// A user folio (anonymous or shmem) and the page's index in it.
    User(Folio<'m>, usize),
    /// Anything else, with the flags of its head frame and whether it is
    /// the head of a free block or a tail of a compound one.
    Other {
        head_flags: PageFlags,
        buddy: bool,
        tail: bool,
        head_order: Order,
    },
}

impl<P: Platform> Vm<'_, P> {
    /// Frames the two files cover (`max_pfn`): the memmap's length.
    pub fn kpage_max_pfn(&self) -> u64 {
        self.pa.memmap().len() as u64
    }

    fn kpage_kind(&self, pfn: Pfn) -> Kind<'_> {
        let memmap = self.pa.memmap();
        let Some(page) = memmap.get(pfn) else {
            return Kind::NoPage;
        };
        if pfn == self.zero_page {
            return Kind::Zero;
        }
        let flags = page.flags();
        let tail = flags.contains(PageFlags::TAIL);
        let head_pfn = if tail { Pfn::new(page.private()) } else { pfn };
        let head = memmap.page(head_pfn);
        let head_flags = head.flags();
        let kernel =
            PageFlags::RESERVED | PageFlags::SLAB | PageFlags::LARGE_KMALLOC | PageFlags::PGTABLE;
        if head.state() == PageState::Allocated && !head_flags.intersects(kernel) {
            let folio = Folio::of(memmap, pfn);
            if folio.is_shmem() || folio.anon_vma().is_some() {
                let idx = folio.page_idx(pfn);
                return Kind::User(folio, idx);
            }
        }
        Kind::Other {
            head_flags,
            buddy: page.state() == PageState::Buddy,
            tail,
            head_order: head.order(),
        }
    }

    /// The `/proc/kpagecount` word of `pfn` (`kpagecount_read()`).
    pub fn kpagecount(&self, pfn: Pfn) -> u64 {
        match self.kpage_kind(pfn) {
            Kind::User(folio, idx) => match self.mapcount_mode() {
                MapcountMode::PerPage => folio.precise_page_mapcount(idx).max(0) as u64,
                MapcountMode::NoPageMapcount => folio.average_page_mapcount().max(0) as u64,
            },
            _ => 0,
        }
    }

    /// The `/proc/kpageflags` word of `pfn` (`stable_page_flags()`).
    pub fn kpageflags(&self, pfn: Pfn) -> u64 {
        let bit = |b: u32| 1u64 << b;
        match self.kpage_kind(pfn) {
            Kind::NoPage => bit(KPF_NOPAGE),
            Kind::Zero => bit(KPF_ZERO_PAGE),
            Kind::User(folio, idx) => {
                let mut u = bit(KPF_UPTODATE) | bit(KPF_SWAPBACKED);
                if folio.mapcount() > 0 {
                    u |= bit(KPF_MMAP);
                }
                if !folio.is_shmem() {
                    u |= bit(KPF_ANON);
                }
                if folio.is_dirty() {
                    u |= bit(KPF_DIRTY);
                }
                if folio.is_large() {
                    u |= if idx == 0 {
                        bit(KPF_COMPOUND_HEAD)
                    } else {
                        bit(KPF_COMPOUND_TAIL)
                    };
                    // Large rmappable folios: any anonymous mTHP size.
                    if !folio.is_shmem() {
                        u |= bit(KPF_THP);
                    }
                }
                u
            }
            Kind::Other {
                head_flags,
                buddy,
                tail,
                head_order,
            } => {
                let mut u = 0;
                if buddy {
                    u |= bit(KPF_BUDDY);
                }
                if head_flags.contains(PageFlags::SLAB) {
                    u |= bit(KPF_SLAB);
                }
                if head_flags.contains(PageFlags::PGTABLE) {
                    u |= bit(KPF_PGTABLE);
                }
                if head_flags.contains(PageFlags::RESERVED) {
                    u |= bit(KPF_RESERVED);
                }
                // Compound kernel blocks (slabs, large kmalloc) carry
                // head and tail marks too.
                if tail {
                    u |= bit(KPF_COMPOUND_TAIL);
                } else if !buddy
                    && head_order > Order::ZERO
                    && head_flags.intersects(PageFlags::SLAB | PageFlags::LARGE_KMALLOC)
                {
                    u |= bit(KPF_COMPOUND_HEAD);
                }
                u
            }
        }
    }
}
