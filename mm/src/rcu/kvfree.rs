//! `kvfree_rcu`: batched freeing after a grace period.
//!
//! Instead of one callback per object, each CPU collects objects into a
//! page-sized block of records (Linux's `kvfree_rcu_bulk_data`, about 500
//! pointers per page there, 255 here with a drop function per record); a
//! block is handed to `call_rcu` as one callback when it fills, when the
//! tick finds it older than the drain delay (Linux's `kfree_rcu_monitor`),
//! or on [`Rcu::kvfree_rcu_barrier`]. One grace period then frees the whole
//! batch.
//!
//! When no memory is to be had for a new block (an exiting process freeing
//! its VMAs while memory is exhausted), a caller that may sleep waits for a
//! grace period itself and frees the object at once, as Linux's
//! `kvfree_call_rcu` does for headless objects (`synchronize_rcu()` then
//! `kvfree()`); a caller that may not has nowhere to go and the allocation
//! failure is fatal, as before. (`Platform::may_sleep` sees preemption and
//! interrupts, not the `spin` locks a caller may hold, which do not
//! disable preemption here: such a caller sleeps with its lock held, which
//! only delays whoever spins on it.)

use alloc::boxed::Box;
use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::sync::atomic::Ordering;

use super::{Rcu, RcuHead, RcuStat};
use crate::addr::CpuId;
use crate::platform::{IrqGuard, Platform};

/// How long a partly filled batch waits before the tick submits it
/// (Linux's `KFREE_DRAIN_JIFFIES`, 5 seconds).
pub(super) const KFREE_DRAIN_NS: u64 = 5_000_000_000;

/// Records per block: the block is one 4 KiB page.
pub(super) const RECORDS: usize = (4096 - 32) / 24;

/// An object to free: its pointer, a context, and the function that frees it.
#[derive(Clone, Copy)]
struct Record {
    ptr: *mut u8,
    ctx: *const (),
    free_fn: unsafe fn(*const (), *mut u8),
}

/// A batch of objects waiting for one grace period. `head` comes first so
/// that the callback can find the block from its head.
#[repr(C)]
struct KvfreeBlock {
    head: RcuHead,
    len: usize,
    records: [MaybeUninit<Record>; RECORDS],
}

const _: () = assert!(core::mem::size_of::<KvfreeBlock>() <= 4096);

/// One CPU's batch in progress.
pub(super) struct KvfreeCpu {
    block: Option<Box<KvfreeBlock>>,
    /// When the first record of the current block was added.
    first_ns: u64,
}

// SAFETY: the records are owned boxed objects that are `Send` (kvfree_rcu's
// bound) or raw frees whose callers vouched for them (kvfree_rcu_raw); the
// block is only touched under its CPU's lock.
unsafe impl Send for KvfreeCpu {}

impl KvfreeCpu {
    pub(super) const fn new() -> Self {
        Self {
            block: None,
            first_ns: 0,
        }
    }
}

/// A new empty block, or `None` if memory is short (or a test says so).
fn try_new_block() -> Option<Box<KvfreeBlock>> {
    #[cfg(test)]
    if FAIL_BLOCKS.with(|n| n.replace(n.get().saturating_sub(1))) > 0 {
        return None;
    }
    let layout = Layout::new::<KvfreeBlock>();
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc::alloc::alloc(layout) }.cast::<KvfreeBlock>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is a fresh allocation of KvfreeBlock's layout; writing a
    // whole value initialises it, and Box then owns it with that layout.
    unsafe {
        p.write(KvfreeBlock {
            head: RcuHead::new(),
            len: 0,
            records: [MaybeUninit::uninit(); RECORDS],
        });
        Some(Box::from_raw(p))
    }
}

#[cfg(test)]
std::thread_local! {
    /// Test hook: how many of this thread's next block allocations fail.
    pub(super) static FAIL_BLOCKS: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

/// Drops a `Box<T>` from its raw pointer.
///
/// # Safety
///
/// `p` came from `Box::<T>::into_raw` and is dropped once.
unsafe fn drop_box<T>(_ctx: *const (), p: *mut u8) {
    // SAFETY: the function's contract.
    drop(unsafe { Box::from_raw(p.cast::<T>()) });
}

/// The callback of a submitted block: drop every record, free the block.
///
/// # Safety
///
/// `head` is the head of a `KvfreeBlock` leaked by `submit`.
unsafe fn kvfree_block_cb(head: *mut RcuHead) {
    // SAFETY: `head` is the first field of a repr(C) KvfreeBlock that
    // `submit` leaked with Box::into_raw; we take it back once.
    let block = unsafe { Box::from_raw(head.cast::<KvfreeBlock>()) };
    for rec in &block.records[..block.len] {
        // SAFETY: the first `len` records were written by `kvfree_rcu`, each
        // a boxed object dropped exactly here, after the grace period.
        unsafe {
            let rec = rec.assume_init();
            (rec.free_fn)(rec.ctx, rec.ptr);
        }
    }
}

impl<P: Platform> Rcu<P> {
    /// Frees `obj` after a grace period, batched (`kvfree_rcu`). Any
    /// context; readers that found `obj` before it was unpublished may keep
    /// using it until they leave their read-side section.
    pub fn kvfree_rcu<T: Send + 'static>(&self, obj: Box<T>) {
        let rec = Record {
            ptr: Box::into_raw(obj).cast::<u8>(),
            ctx: core::ptr::null(),
            free_fn: drop_box::<T>,
        };
        self.kvfree_record(rec);
    }

    /// Calls `free_fn(ctx, ptr)` after a grace period, batched like
    /// [`Rcu::kvfree_rcu`] (the slab allocator's fallback when it has no
    /// sheaf for `kfree_rcu`).
    ///
    /// # Safety
    ///
    /// `free_fn(ctx, ptr)` is sound to call once after the grace period,
    /// from the RCU callback thread or, when no batch block can be had and
    /// the caller may sleep, from the caller itself (module docs); `ctx`
    /// stays valid until then.
    pub unsafe fn kvfree_rcu_raw(
        &self,
        ptr: *mut u8,
        ctx: *const (),
        free_fn: unsafe fn(*const (), *mut u8),
    ) {
        self.kvfree_record(Record { ptr, ctx, free_fn });
    }

    fn kvfree_record(&self, rec: Record) {
        self.stats.inc(RcuStat::KvfreeObjects);
        let full = {
            // Interrupts off before choosing this CPU's batch.
            let irq = IrqGuard::new(&self.platform);
            let mut cpu = self.this_cpu().kvfree.lock_irqs_off(&irq);
            if cpu.block.is_none() {
                let Some(block) = try_new_block() else {
                    drop(cpu);
                    drop(irq);
                    return self.kvfree_sync(rec);
                };
                cpu.block = Some(block);
                cpu.first_ns = self.platform.now_ns();
            }
            let block = cpu.block.as_mut().expect("just set");
            block.records[block.len].write(rec);
            block.len += 1;
            if block.len == RECORDS {
                cpu.block.take()
            } else {
                None
            }
        };
        if let Some(block) = full {
            self.submit(block);
        }
    }

    /// No block to be had: wait for a grace period and free `rec` now, if
    /// the caller may sleep (outside read-side sections too); else the
    /// allocation failure is fatal (`handle_alloc_error`).
    #[cold]
    fn kvfree_sync(&self, rec: Record) {
        let nesting = self.this_cpu().nesting.load(Ordering::Relaxed);
        if !self.platform.may_sleep() || nesting != 0 {
            alloc::alloc::handle_alloc_error(Layout::new::<KvfreeBlock>());
        }
        self.stats.inc(RcuStat::KvfreeSync);
        self.synchronize_rcu();
        // SAFETY: a grace period has passed since the object was handed
        // over (unpublished before the call): no reader still sees it, and
        // the record is freed once, here (kvfree_rcu_raw's contract).
        unsafe { (rec.free_fn)(rec.ctx, rec.ptr) };
    }

    /// Hands one block to `call_rcu`.
    fn submit(&self, block: Box<KvfreeBlock>) {
        self.stats.inc(RcuStat::KvfreeBatches);
        let head = Box::into_raw(block).cast::<RcuHead>();
        // SAFETY: the block is leaked here and reclaimed only by
        // kvfree_block_cb, so the head stays valid and unmoved until then.
        unsafe { self.call_rcu(head, kvfree_block_cb) };
    }

    /// Submits `cpu`'s batch if it waited at least `min_age_ns`.
    fn flush_kvfree(&self, cpu: CpuId, min_age_ns: u64) {
        let block = {
            let mut k = self.cpus[cpu.index()].kvfree.lock_irqsave(&self.platform);
            let old = self.platform.now_ns().saturating_sub(k.first_ns) >= min_age_ns;
            if old { k.block.take() } else { None }
        };
        if let Some(block) = block {
            self.submit(block);
        }
    }

    /// The tick's part (`kfree_rcu_monitor`): submit this CPU's batch once
    /// it is older than the drain delay.
    pub(super) fn kvfree_monitor(&self, cpu: CpuId) {
        let drain = self
            .kvfree_drain_ns
            .load(core::sync::atomic::Ordering::Relaxed);
        self.flush_kvfree(cpu, drain);
    }

    /// Submits every CPU's pending batch and waits until everything handed
    /// to kvfree_rcu before the call has been freed (`kvfree_rcu_barrier`).
    pub fn kvfree_rcu_barrier(&self) {
        for cpu in 0..self.cpus.len() {
            self.flush_kvfree(CpuId::new(cpu as u32), 0);
        }
        self.rcu_barrier();
    }
}
