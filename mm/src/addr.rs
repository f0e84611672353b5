//! Address and frame-number newtypes.
//!
//! Physical addresses, page frame numbers, block orders and CPU ids are
//! distinct types so that a pfn is never used where a byte address is
//! meant, nor a page count where an order is. Conversions are named methods
//! (`pa.pfn()`, `pfn.phys_addr()`, `order.nr_pages()`), never `From<u64>`.
#![forbid(unsafe_code)]

use core::fmt;

use crate::page_alloc::MAX_PAGE_ORDER;

/// log2 of the base page size.
pub const PAGE_SHIFT: u32 = 12;
/// The base page size: 4 KiB.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// A physical address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct PhysAddr(u64);

impl PhysAddr {
    /// The address `addr`.
    pub const fn new(addr: u64) -> Self {
        Self(addr)
    }

    /// The raw value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The frame that contains this address.
    pub const fn pfn(self) -> Pfn {
        Pfn(self.0 >> PAGE_SHIFT)
    }

    /// Whether the address is page aligned.
    pub const fn is_page_aligned(self) -> bool {
        self.0 & (PAGE_SIZE - 1) == 0
    }
}

impl fmt::Debug for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhysAddr({:#x})", self.0)
    }
}

/// A page frame number: physical address >> [`PAGE_SHIFT`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Pfn(u64);

impl Pfn {
    /// Frame number `pfn`.
    pub const fn new(pfn: u64) -> Self {
        Self(pfn)
    }

    /// The raw frame number.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The frame number as an index (into the memmap, a bitmap ...).
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }

    /// The physical address of the frame's first byte.
    pub const fn phys_addr(self) -> PhysAddr {
        PhysAddr(self.0 << PAGE_SHIFT)
    }

    /// The frame `n` frames further on.
    pub const fn add(self, n: u64) -> Self {
        Self(self.0 + n)
    }

    /// Whether the frame number is a multiple of 2^`order`.
    pub const fn is_aligned(self, order: Order) -> bool {
        self.0 & (order.nr_pages() - 1) == 0
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pfn {:#x}", self.0)
    }
}

impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// The order of a block of pages: 2^order contiguous frames, naturally
/// aligned, `0..=MAX_PAGE_ORDER` (Linux's `unsigned int order`, with the
/// range check done once, where the value is made).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Order(u8);

impl Order {
    /// A single page.
    pub const ZERO: Order = Order(0);
    /// The largest block the buddy allocator hands out (4 MiB).
    pub const MAX: Order = Order(MAX_PAGE_ORDER as u8);
    /// A block one PMD entry maps: 2 MiB (Linux's `HPAGE_PMD_ORDER`), the
    /// largest anonymous folio order.
    pub const PMD: Order = Order(9);

    /// Order `order`. Panics above [`MAX_PAGE_ORDER`]: for constants and
    /// values already checked; use [`Order::try_new`] for anything else.
    #[track_caller]
    pub const fn new(order: u32) -> Self {
        match Self::try_new(order) {
            Some(o) => o,
            None => panic!("page order above MAX_PAGE_ORDER"),
        }
    }

    /// An order read back from the memmap, where only checked values are
    /// stored.
    pub(crate) const fn from_stored(order: u8) -> Self {
        debug_assert!(order as u32 <= MAX_PAGE_ORDER);
        Order(order)
    }

    /// Order `order`, or `None` above [`MAX_PAGE_ORDER`].
    pub const fn try_new(order: u32) -> Option<Self> {
        if order <= MAX_PAGE_ORDER {
            Some(Order(order as u8))
        } else {
            None
        }
    }

    /// The smallest order whose block holds `bytes` (Linux's `get_order`;
    /// one page for 0), or `None` if no block is that large.
    pub const fn for_bytes(bytes: u64) -> Option<Self> {
        let pages = bytes.div_ceil(PAGE_SIZE);
        if pages > Order::MAX.nr_pages() {
            return None;
        }
        Self::try_new(pages.next_power_of_two().trailing_zeros())
    }

    /// The raw order, for shifts and indexing.
    pub const fn get(self) -> u32 {
        self.0 as u32
    }

    /// As an index into per-order arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Frames in a block of this order.
    pub const fn nr_pages(self) -> u64 {
        1 << self.0
    }

    /// Bytes in a block of this order.
    pub const fn bytes(self) -> u64 {
        PAGE_SIZE << self.0
    }

    /// The next order up, or `None` at [`Order::MAX`].
    pub const fn up(self) -> Option<Self> {
        Self::try_new(self.0 as u32 + 1)
    }

    /// The next order down, or `None` at [`Order::ZERO`].
    pub const fn down(self) -> Option<Self> {
        match self.0.checked_sub(1) {
            Some(o) => Some(Order(o)),
            None => None,
        }
    }

    /// Every order from `self` to [`Order::MAX`], ascending.
    pub fn up_to_max(self) -> impl DoubleEndedIterator<Item = Order> {
        (self.0..=MAX_PAGE_ORDER as u8).map(Order)
    }
}

impl fmt::Debug for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "order {}", self.0)
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A CPU number, `0..nr_cpus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct CpuId(u32);

impl CpuId {
    /// CPU number `id`.
    pub const fn new(id: u32) -> Self {
        Self(id)
    }

    /// As an index into per-CPU arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}
