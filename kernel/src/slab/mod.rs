//! The kernel's SLUB: the kmalloc caches over the page allocator, made the
//! global allocator at boot, and a `/proc/slabinfo`-style table. SLUB
//! itself (caches, sheaves, barn) is `mm::slab`; this module only sets it
//! up for the kernel.

pub mod ktests;

use alloc::boxed::Box;
use core::fmt;

use mm::slab::{Kmalloc, SlabInfo};
use spin::Once;

use crate::heap;
use crate::memory;
use crate::platform::KernelPlatform;

static KMALLOC: Once<&'static Kmalloc<'static, KernelPlatform>> = Once::new();

/// The kmalloc caches; panics before [`init`].
pub fn kmalloc() -> &'static Kmalloc<'static, KernelPlatform> {
    KMALLOC.get().expect("slab::init has not run")
}

/// Creates the kmalloc caches (from the early heap) and switches the
/// global allocator to them. Call once after `memory::init`.
pub fn init() {
    let k: &'static Kmalloc<'static, KernelPlatform> =
        Box::leak(Kmalloc::new(memory::page_alloc()));
    KMALLOC.call_once(|| k);
    heap::switch_to_kmalloc(k);
}

/// One `/proc/slabinfo` line.
struct Line<'a>(&'a str, SlabInfo);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = self.1;
        write!(
            f,
            "{:<17} {:>6} {:>6} {:>6} {:>4} {:>4} : tunables    0    0    0 : slabdata {:>6} {:>6}      0",
            self.0,
            i.active_objs,
            i.num_objs,
            i.objsize,
            i.objperslab,
            i.pagesperslab,
            i.num_slabs,
            i.num_slabs
        )
    }
}

/// `/proc/slabinfo` (version 2.1 layout) of the kmalloc caches.
pub struct SlabinfoTable;

impl fmt::Display for SlabinfoTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "slabinfo - version: 2.1")?;
        writeln!(
            f,
            "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>"
        )?;
        for (name, info) in kmalloc().slabinfo() {
            writeln!(f, "{}", Line(name, info))?;
        }
        Ok(())
    }
}
