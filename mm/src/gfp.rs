//! GFP flags: how an allocation may be satisfied (Linux's `gfp_t`).
//!
//! The zone modifiers pick the highest zone an allocation may use, the
//! mobility bits pick its migratetype, and the reclaim and reserve bits pick
//! which watermark it must respect (`gfp_to_alloc_flags()`).
#![forbid(unsafe_code)]

bitflags::bitflags! {
    /// Allocation flags, named after Linux's `__GFP_*` bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Gfp: u32 {
        /// Must come from ZONE_DMA (below 16 MiB).
        const DMA = 1 << 0;
        /// Must come from ZONE_DMA32 or below (below 4 GiB).
        const DMA32 = 1 << 1;
        /// The page can be migrated or reclaimed: MIGRATE_MOVABLE.
        const MOVABLE = 1 << 2;
        /// Reclaimable kernel memory (slab caches with a shrinker).
        const RECLAIMABLE = 1 << 3;
        /// High priority: may dip below the min watermark by half.
        const HIGH = 1 << 4;
        /// May start physical I/O.
        const IO = 1 << 5;
        /// May call into filesystems.
        const FS = 1 << 6;
        /// May sleep to reclaim memory itself.
        const DIRECT_RECLAIM = 1 << 7;
        /// May wake kswapd.
        const KSWAPD_RECLAIM = 1 << 8;
        /// Return zeroed memory.
        const ZERO = 1 << 9;
        /// Do not warn when the allocation fails.
        const NOWARN = 1 << 10;
        /// Ignore the watermarks entirely (memory-reclaim paths only).
        const MEMALLOC = 1 << 11;
        /// Never use the emergency reserves, even when MEMALLOC would.
        const NOMEMALLOC = 1 << 12;

        /// Both reclaim bits.
        const RECLAIM = Self::DIRECT_RECLAIM.bits() | Self::KSWAPD_RECLAIM.bits();
        /// Ordinary kernel allocations: may sleep and reclaim.
        const KERNEL = Self::RECLAIM.bits() | Self::IO.bits() | Self::FS.bits();
        /// Cannot sleep; high priority, may use part of the reserves.
        const ATOMIC = Self::HIGH.bits() | Self::KSWAPD_RECLAIM.bits();
        /// Cannot sleep; no access to reserves.
        const NOWAIT = Self::KSWAPD_RECLAIM.bits() | Self::NOWARN.bits();
        /// User pages the kernel needs to touch.
        const USER = Self::KERNEL.bits();
        /// User pages that may live anywhere and be moved.
        const HIGHUSER_MOVABLE = Self::USER.bits() | Self::MOVABLE.bits();
    }
}

impl Gfp {
    /// Whether the caller may sleep (direct reclaim allowed).
    pub fn allows_blocking(self) -> bool {
        self.contains(Gfp::DIRECT_RECLAIM)
    }
}
