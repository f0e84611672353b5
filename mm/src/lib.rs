//! `mm`: a Linux-faithful memory-management subsystem, host-testable.
#![no_std]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod addr;
pub mod errno;
pub mod folio;
pub mod gfp;
pub mod maple;
pub mod memmap;
pub mod page_alloc;
pub mod pgtable;
pub mod platform;
pub mod rand;
pub mod rcu;
pub mod rwsem;
pub mod shmem;
#[cfg(any(test, feature = "std"))]
pub mod sim;
pub mod slab;
pub mod stack_vec;
pub mod stats;
pub mod sync;
pub mod vm;
pub mod xarray;

pub use addr::{CpuId, Order, PAGE_SHIFT, PAGE_SIZE, Pfn, PhysAddr};
pub use gfp::Gfp;
pub use platform::Platform;
