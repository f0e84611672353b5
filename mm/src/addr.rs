//! Address and frame-number newtypes.
//!
//! Physical addresses, page frame numbers and CPU ids are distinct types so
//! that a pfn is never used where a byte address is meant. Conversions are
//! named methods (`pa.pfn()`, `pfn.phys_addr()`), never `From<u64>`.
#![forbid(unsafe_code)]

use core::fmt;

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
    pub const fn is_aligned(self, order: u32) -> bool {
        self.0 & ((1 << order) - 1) == 0
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
