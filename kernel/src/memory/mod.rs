//! Boot-time memory bring-up: from the bootloader's memory map to a running
//! page allocator.
//!
//! 1. Read the bootloader's memory map; usable RAM below 1 MiB stays out
//!    (BIOS data, and later the real-mode trampoline), as on Linux.
//! 2. Carve the early heap and the memmap (one 64-byte [`mm::memmap::Page`]
//!    per frame up to the highest usable frame) from the top of the largest
//!    usable region, above the DMA zone.
//! 3. Build the zones and free every other usable frame into them.
//!
//! Frames holding the kernel image, the bootloader's page tables and boot
//! info are not "usable" in the bootloader's map, so they are never freed;
//! nor are the carved regions.

use alloc::vec::Vec;
use core::ops::Range;

use bootloader_api::BootInfo;
use bootloader_api::info::{MemoryRegion, MemoryRegionKind};
use mm::memmap::MemMap;
use mm::page_alloc::{PageAlloc, ZoneLayout};
use mm::{PAGE_SIZE, Pfn, PhysAddr};
use spin::Once;

use crate::heap;

/// The kernel's `Platform` lives in [`crate::platform`]; re-exported here,
/// where the page allocator is built with it.
pub use crate::platform::KernelPlatform;

pub mod ktests;

static PAGE_ALLOC: Once<PageAlloc<KernelPlatform>> = Once::new();
static LAYOUT: Once<MemoryLayout> = Once::new();

/// What [`init`] found and carved; panics if called before it.
pub fn layout() -> &'static MemoryLayout {
    LAYOUT.get().expect("memory::init has not run")
}

/// The page allocator; panics if called before [`init`].
pub fn page_alloc() -> &'static PageAlloc<KernelPlatform> {
    PAGE_ALLOC.get().expect("memory::init has not run")
}

/// Frames below this stay out of the allocator.
const LOW_RESERVED: u64 = 1 << 20;

/// What [`init`] carved and found, for the boot banner.
pub struct MemoryLayout {
    /// The bootloader's map, as it was handed over.
    pub regions: &'static [MemoryRegion],
    /// Physical range of the early heap.
    pub heap: Range<PhysAddr>,
    /// Physical range of the memmap.
    pub memmap: Range<PhysAddr>,
    /// Physical range of the kernel image.
    pub kernel: Range<PhysAddr>,
    /// One past the highest usable frame.
    pub max_pfn: Pfn,
}

/// Brings up the early heap and the page allocator from the boot info.
pub fn init(boot_info: &'static BootInfo) -> &'static MemoryLayout {
    let phys_offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("the bootloader maps physical memory (BOOT_CONFIG asks it to)");
    let regions: &'static [MemoryRegion] = &boot_info.memory_regions;
    let usable = || {
        regions
            .iter()
            .filter(|r| r.kind == MemoryRegionKind::Usable)
            .map(|r| {
                let start = r.start.max(LOW_RESERVED).next_multiple_of(PAGE_SIZE);
                start..(r.end & !(PAGE_SIZE - 1)).max(start)
            })
            .filter(|r| !r.is_empty())
    };
    let max_pfn = PhysAddr::new(usable().map(|r| r.end).max().expect("no usable RAM")).pfn();

    // Carve from the top of the largest usable region.
    let largest = usable()
        .max_by_key(|r| r.end - r.start)
        .expect("no usable RAM");
    let memmap_bytes = MemMap::bytes_for(max_pfn.as_usize()) as u64;
    let memmap_start = (largest.end - memmap_bytes) & !(PAGE_SIZE - 1);
    let heap_start = (memmap_start - heap::EARLY_HEAP_BYTES as u64) & !(PAGE_SIZE - 1);
    assert!(
        heap_start >= largest.start,
        "largest usable region too small for memmap + heap"
    );
    let carved = heap_start..largest.end;

    // SAFETY: 1. The range lies in usable RAM (the largest usable region),
    // which the bootloader maps at `phys_offset`. 2. It is carved out: it is
    // excluded from the free ranges below, so nothing else uses it, ever.
    // 3. init runs once (PAGE_ALLOC.call_once below would not, and the
    // caller runs init once at boot).
    unsafe {
        heap::init(
            (phys_offset + heap_start) as *mut u8,
            heap::EARLY_HEAP_BYTES,
        )
    };
    // SAFETY: 1. Page-aligned (so 64-byte aligned) and `memmap_bytes` long,
    // inside the carved range. 2. Only the memmap uses it from now on.
    let memmap =
        unsafe { MemMap::init_at((phys_offset + memmap_start) as *mut u8, max_pfn.as_usize()) };

    // The heap works from here on.
    let free: Vec<Range<Pfn>> = usable()
        .flat_map(|r| subtract(r, &carved))
        .map(|r| PhysAddr::new(r.start).pfn()..PhysAddr::new(r.end).pfn())
        .collect();
    PAGE_ALLOC.call_once(|| {
        PageAlloc::new(
            KernelPlatform::new(phys_offset),
            memmap,
            ZoneLayout::X86_64,
            &free,
        )
    });
    LAYOUT.call_once(|| MemoryLayout {
        kernel: PhysAddr::new(boot_info.kernel_addr)
            ..PhysAddr::new(boot_info.kernel_addr + boot_info.kernel_len),
        regions,
        heap: PhysAddr::new(heap_start)..PhysAddr::new(memmap_start),
        memmap: PhysAddr::new(memmap_start)..PhysAddr::new(memmap_start + memmap_bytes),
        max_pfn,
    })
}

/// `r` minus `hole`: zero, one or two ranges.
fn subtract(r: Range<u64>, hole: &Range<u64>) -> impl Iterator<Item = Range<u64>> {
    let below = r.start..r.end.min(hole.start);
    let above = r.start.max(hole.end)..r.end;
    [below, above].into_iter().filter(|x| !x.is_empty())
}
