//! Kernel stacks: buddy frames mapped into a dedicated virtual region, each
//! with an unmapped guard gap below it (Linux's `CONFIG_VMAP_STACK`).
//!
//! The region starts at [`KSTACK_REGION_START`] (Linux's `VMALLOC_START`,
//! where vmap'ed stacks live) and is cut into [`NR_SLOTS`] slots of
//! [`SLOT_BYTES`]; a stack owns one slot:
//!
//! ```text
//!   slot base                        + GUARD_BYTES                + SLOT_BYTES
//!   | guard: never mapped (32 KiB)   | stack: 8 pages (32 KiB)    |
//!   |                                | bottom          top (rsp0) |
//!                                     <---- grows down -----------
//! ```
//!
//! A thread that runs off the bottom of its stack touches the guard: the
//! page fault cannot push its frame there either, so it becomes a double
//! fault, which runs on its own IST stack; the fault-report hook
//! ([`fault_report`]) then names the thread whose guard was hit. The gap is
//! a whole stack's size rather than one page, so even a large frame (past
//! the inline stack probes Rust emits for frames over a page) lands in it.
//!
//! The stack's 8 pages are one order-3 buddy block (`THREAD_SIZE_ORDER`),
//! mapped page by page; page-table pages for the region come from the buddy
//! allocator too and are kept for reuse (as Linux keeps vmalloc's): one PT
//! page per 32 slots, allocated when a slot of its 2 MiB is first used.
//! [`nr_pagetable_pages`] counts them, so that a frame-leak check can tell
//! them from leaked frames (`process::settled_used_pages`).
//!
//! # Invariants
//!
//! - K1: the region's PML4 entry is created by [`init`] and never changes, so
//!   every later address space that copies the kernel half shares it.
//! - K2: a slot is mapped iff it is allocated and not lazy (K4); its guard
//!   part is never mapped. Mapping and unmapping happen under `VMAP_LOCK`
//!   only.
//! - K3: `SLOT_OWNER[slot]` is null or points at the live `Task` owning the
//!   slot's stack; it is cleared (in `Drop`) before the task is freed.
//!
//! # Locking
//!
//! `VMAP_LOCK` (a `SpinLock`, so interrupts off) serialises the slot bitmap
//! and every change to the region's page tables, and is held around the
//! buddy calls too: no task is ever preempted while holding a per-CPU page
//! list of the page allocator here. Lock order: `VMAP_LOCK`, then the page
//! allocator's locks, then the heap.
//!
//! # TLB: lazy purge of freed stacks (Linux's vmap lazy purge)
//!
//! Every CPU that ran a task may cache the translations of its stack, and
//! the stack's PTEs are not global but shared by every address space (K1),
//! so a CR3 load on that CPU flushes them only if it happens. A freed
//! stack's frames and slot must not be reused until no CPU can still
//! translate through its old PTEs: otherwise a CPU that ran the old thread
//! writes a new thread's stack frames into the old block, now someone
//! else's (seen at `--smp 2` as a `#UD` in a freshly spawned thread).
//!
//! `Drop` unmaps at once (with a local `invlpg`), then puts the slot on the
//! *lazy* set; [`purge_lazy`] flushes every CPU's TLB for the whole set
//! with one function-call IPI (a full flush above [`FLUSH_CEILING`] pages,
//! as Linux's `flush_tlb_kernel_range`) and only then frees the blocks and
//! the slots, as `mm/vmalloc.c`'s `purge_vmap_area_lazy` does for vmalloc
//! areas. The IPI waits for the other CPUs, so it may only be sent where
//! that cannot deadlock: interrupts on (so no [`SpinLock`] is held, which
//! another CPU could be spinning on with interrupts off, unable to take
//! the IPI), preemption on and not in an interrupt ([`can_purge_now`]).
//! `Drop` in such a context (a `join` dropping the last reference) purges
//! at once; one in a context that cannot wait (a detached thread reaped in
//! `finish_task_switch`, interrupts off) leaves the slot lazy, and the next
//! [`KernelStack::new`] or `Drop` in a waitable context purges it, as does
//! every frame-balance check (`process::settled_used_pages`) and a `new`
//! that found no slot or no memory. While only one CPU is online there is
//! nobody to shoot down: the purge then runs in any context, so a
//! single-CPU kernel frees every stack at once, as before.
//!
//! # Invariants (TLB)
//!
//! - K4: a slot in `lazy` is unmapped, still marked used, and its block
//!   (`lazy_pfn`) still allocated: neither is reused before a purge has
//!   flushed every online CPU's TLB after the unmap.
//! - K5: one purge at a time (`PURGE_BUSY`, taken with preemption off): a
//!   purge that found the set empty ran after the previous one freed
//!   everything, so a check that purged sees every lazy frame back.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use mm::{Gfp, PAGE_SIZE, Pfn, Platform};
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr as X86PhysAddr, VirtAddr};

use super::task::Task;
use crate::arch::idt::FaultInfo;
use crate::memory;
use crate::panic::emergency_println;
use crate::sync::SpinLock;
use mm::Order;

/// Order of a stack's buddy block (Linux's `THREAD_SIZE_ORDER`).
pub const THREAD_SIZE_ORDER: Order = Order::new(3);
/// Bytes of one stack (Linux's `THREAD_SIZE`): 32 KiB.
pub const THREAD_SIZE: u64 = THREAD_SIZE_ORDER.bytes();
/// Bytes of the unmapped gap below each stack.
pub const GUARD_BYTES: u64 = THREAD_SIZE;
/// Bytes of virtual address space per slot.
pub const SLOT_BYTES: u64 = GUARD_BYTES + THREAD_SIZE;
/// Start of the kernel-stack region (Linux's `VMALLOC_START`), PML4 slot 402.
pub const KSTACK_REGION_START: u64 = 0xffff_c900_0000_0000;
/// Number of slots: at most this many threads exist at once.
pub const NR_SLOTS: usize = 1024;
/// End of the region (exclusive).
pub const KSTACK_REGION_END: u64 = KSTACK_REGION_START + NR_SLOTS as u64 * SLOT_BYTES;

const PAGES_PER_STACK: u64 = THREAD_SIZE_ORDER.nr_pages();

/// Above this many pages a purge flushes whole TLBs rather than page by
/// page (Linux's `tlb_single_page_flush_ceiling`).
pub const FLUSH_CEILING: u64 = 33;

const BITMAP_WORDS: usize = NR_SLOTS / 64;

/// The slots' state; see Locking and K4.
struct Slots {
    /// 1 = allocated (a live stack, or a lazy one awaiting its purge).
    used: [u64; BITMAP_WORDS],
    /// 1 = freed and unmapped, not yet purged (K4).
    lazy: [u64; BITMAP_WORDS],
    /// The block of each lazy slot.
    lazy_pfn: [u64; NR_SLOTS],
}

static VMAP_LOCK: SpinLock<Slots> = SpinLock::new(
    "kstack.vmap",
    Slots {
        used: [0; BITMAP_WORDS],
        lazy: [0; BITMAP_WORDS],
        lazy_pfn: [0; NR_SLOTS],
    },
);

/// K5: set while a purge runs. Acquire/Release order one purge's frees
/// before the next purge's look at the lazy set.
static PURGE_BUSY: AtomicBool = AtomicBool::new(false);

/// Purges so far that flushed something, and stacks they freed (for
/// tests and reports). Relaxed counters.
static NR_PURGES: AtomicU64 = AtomicU64::new(0);
static NR_PURGED: AtomicU64 = AtomicU64::new(0);

/// K3. Write: the scheduler (set when the task is made, Release) and
/// `KernelStack::drop` (clear). Read: the fault-report hook, racily.
static SLOT_OWNER: [AtomicPtr<Task>; NR_SLOTS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; NR_SLOTS];

/// Frames holding the region's page tables (the PDPT of [`init`] and every
/// PD and PT page [`BuddyFrames`] gave `map_to`), which are never freed.
/// Write: holds `VMAP_LOCK`. Read: Relaxed, racy unless `VMAP_LOCK` is held.
static NR_PAGETABLE_PAGES: AtomicU64 = AtomicU64::new(0);

/// Why a stack could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackError {
    /// Every slot is in use.
    NoSlot,
    /// The buddy allocator had no block (stack or page table).
    NoMemory,
}

/// One thread's stack: an allocated slot, mapped, over one buddy block.
/// Dropping it unmaps the pages and frees the block and the slot.
#[derive(Debug)]
pub struct KernelStack {
    slot: usize,
    pfn: Pfn,
}

/// The buddy allocator as a page-table frame source.
struct BuddyFrames;

// SAFETY: every frame returned is a fresh order-0 block from the buddy
// allocator, owned by nobody else until the page table that receives it is
// freed (never, K1/module docs).
unsafe impl FrameAllocator<Size4KiB> for BuddyFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let pfn = memory::page_alloc()
            .alloc_pages(Gfp::KERNEL, Order::ZERO)
            .ok()?;
        NR_PAGETABLE_PAGES.fetch_add(1, Ordering::Relaxed);
        Some(PhysFrame::containing_address(X86PhysAddr::new(
            pfn.phys_addr().as_u64(),
        )))
    }
}

/// Runs `f` on a mapper of the active page table. The caller holds
/// `VMAP_LOCK` (K2): it is the only code changing kernel mappings.
fn with_mapper<R>(f: impl FnOnce(&mut OffsetPageTable<'_>) -> R) -> R {
    let phys_offset = memory::page_alloc().platform().phys_offset();
    let (l4, _) = Cr3::read();
    let l4 = (phys_offset + l4.start_address().as_u64()) as *mut PageTable;
    // SAFETY: 1. Cr3 holds the physical address of the active PML4, which
    // the bootloader's direct map maps at phys_offset. 2. The caller holds
    // VMAP_LOCK, and no other kernel code creates references to the page
    // tables, so this `&mut` is the only one while `f` runs. 3. The offset is
    // the direct map's, as OffsetPageTable requires.
    let mut mapper = unsafe { OffsetPageTable::new(&mut *l4, VirtAddr::new(phys_offset)) };
    f(&mut mapper)
}

/// Claims the region: checks its PML4 entry is free (the bootloader keeps
/// its dynamic mappings in the lower half, `BOOT_CONFIG`) and installs a
/// zeroed PDPT there for good (K1). Call once, before the first stack.
pub fn init() {
    let _held = VMAP_LOCK.lock();
    let idx = VirtAddr::new(KSTACK_REGION_START).p4_index();
    let pa = memory::page_alloc()
        .alloc_pages(Gfp::KERNEL, Order::ZERO)
        .expect("a frame for the kernel-stack PDPT");
    NR_PAGETABLE_PAGES.fetch_add(1, Ordering::Relaxed);
    let platform = memory::page_alloc().platform();
    let table = platform.phys_to_virt(pa.phys_addr()).cast::<PageTable>();
    with_mapper(|mapper| {
        // SAFETY: `table` is a fresh, exclusively owned frame in the direct
        // map, page-aligned; writing a zeroed PageTable into it is in bounds.
        unsafe { table.write(PageTable::new()) };
        let l4 = mapper.level_4_table_mut();
        assert!(
            l4[idx].is_unused(),
            "PML4 entry {idx:?} for the kernel-stack region is already used"
        );
        l4[idx].set_addr(
            X86PhysAddr::new(pa.phys_addr().as_u64()),
            PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
        );
    });
}

impl KernelStack {
    /// Allocates a slot and a block and maps the stack.
    /// Lazily freed stacks are purged first when this context may wait
    /// (module docs, TLB), and again before giving up for want of a slot
    /// or memory.
    pub fn new() -> Result<Self, StackError> {
        if can_purge_now() {
            purge_lazy();
        }
        match Self::try_new() {
            Err(_) if can_purge_now() && nr_lazy() > 0 => {
                purge_lazy();
                Self::try_new()
            }
            r => r,
        }
    }

    fn try_new() -> Result<Self, StackError> {
        let mut slots = VMAP_LOCK.lock();
        let bitmap = &mut slots.used;
        let slot = (0..NR_SLOTS)
            .find(|&i| bitmap[i / 64] & (1 << (i % 64)) == 0)
            .ok_or(StackError::NoSlot)?;
        let pa = memory::page_alloc();
        let pfn = pa
            .alloc_pages(Gfp::KERNEL, THREAD_SIZE_ORDER)
            .map_err(|_| StackError::NoMemory)?;
        let stack = KernelStack { slot, pfn };
        let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
        let mapped = with_mapper(|mapper| {
            for i in 0..PAGES_PER_STACK {
                let page = Page::<Size4KiB>::containing_address(VirtAddr::new(
                    stack.bottom() + i * PAGE_SIZE,
                ));
                let frame = PhysFrame::containing_address(X86PhysAddr::new(
                    pfn.add(i).phys_addr().as_u64(),
                ));
                // SAFETY: 1. The page is in an allocated slot's stack part,
                // unmapped until now (K2), so nothing refers to it. 2. The
                // frame belongs to the block just allocated, used by nothing
                // else.
                match unsafe { mapper.map_to(page, frame, flags, &mut BuddyFrames) } {
                    Ok(flush) => flush.flush(),
                    Err(_) => return Err(i),
                }
            }
            Ok(())
        });
        if let Err(nr_mapped) = mapped {
            unmap_pages(stack.bottom(), nr_mapped);
            let _ = pa.free_pages(pfn, THREAD_SIZE_ORDER);
            core::mem::forget(stack);
            return Err(StackError::NoMemory);
        }
        bitmap[slot / 64] |= 1 << (slot % 64);
        Ok(stack)
    }

    /// The slot's base address (the start of its guard).
    fn slot_base(&self) -> u64 {
        KSTACK_REGION_START + self.slot as u64 * SLOT_BYTES
    }

    /// The lowest mapped byte of the stack.
    pub fn bottom(&self) -> u64 {
        self.slot_base() + GUARD_BYTES
    }

    /// One past the highest byte: the initial stack pointer, 16-byte aligned.
    pub fn top(&self) -> u64 {
        self.slot_base() + SLOT_BYTES
    }

    /// The unmapped guard range below the stack.
    pub fn guard(&self) -> core::ops::Range<u64> {
        self.slot_base()..self.bottom()
    }

    /// The slot index.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Records `task` as the owner of this stack, for fault reports (K3).
    pub(super) fn set_owner(&self, task: *const Task) {
        SLOT_OWNER[self.slot].store(task.cast_mut(), Ordering::Release);
    }
}

/// Unmaps the first `nr` pages from `bottom` (caller holds `VMAP_LOCK`).
fn unmap_pages(bottom: u64, nr: u64) {
    with_mapper(|mapper| {
        for i in 0..nr {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(bottom + i * PAGE_SIZE));
            match mapper.unmap(page) {
                Ok((_, flush)) => flush.flush(),
                Err(e) => panic!("BUG: kernel stack page {:#x} not mapped: {e:?}", bottom),
            }
        }
    });
}

impl Drop for KernelStack {
    /// Unmaps now; the block and slot are freed by a purge (K4, module
    /// docs), at once if this context may wait for the other CPUs.
    fn drop(&mut self) {
        SLOT_OWNER[self.slot].store(core::ptr::null_mut(), Ordering::Release);
        {
            let mut slots = VMAP_LOCK.lock();
            unmap_pages(self.bottom(), PAGES_PER_STACK);
            slots.lazy[self.slot / 64] |= 1 << (self.slot % 64);
            slots.lazy_pfn[self.slot] = self.pfn.as_u64();
        }
        if can_purge_now() {
            purge_lazy();
        }
    }
}

/// Whether this context may purge now: only this CPU is online (no TLB
/// but ours, flushed at unmap), or interrupts and preemption are on and
/// this is not an interrupt handler, so the purge's IPI wait cannot
/// deadlock (module docs, TLB).
pub fn can_purge_now() -> bool {
    crate::percpu::nr_online_cpus() <= 1
        || (x86_64::instructions::interrupts::are_enabled()
            && crate::percpu::preempt_count() == 0
            && crate::percpu::hardirq_count() == 0)
}

/// Whether `slot` is allocated (a live or a lazily freed stack).
pub fn is_slot_used(slot: usize) -> bool {
    VMAP_LOCK.lock().used[slot / 64] & (1 << (slot % 64)) != 0
}

/// Stacks freed but not yet purged (racy unless the caller purged and
/// nothing was freed since).
pub fn nr_lazy() -> usize {
    VMAP_LOCK
        .lock()
        .lazy
        .iter()
        .map(|w| w.count_ones() as usize)
        .sum()
}

/// `(purges that freed something, stacks they freed)` since boot.
pub fn purge_stats() -> (u64, u64) {
    (
        NR_PURGES.load(Ordering::Relaxed),
        NR_PURGED.load(Ordering::Relaxed),
    )
}

/// Flushes every online CPU's TLB entries for the lazily freed stacks with
/// one IPI, then frees their blocks and slots (`purge_vmap_area_lazy`).
/// The caller's context must satisfy [`can_purge_now`]. Returns with every
/// stack that was lazy on entry freed (K5), even one a concurrent purge on
/// another CPU took.
pub fn purge_lazy() {
    assert!(
        can_purge_now(),
        "BUG: kernel stack purge in a context that cannot wait for other CPUs"
    );
    let _pin = super::PreemptGuard::new();
    while PURGE_BUSY
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        // The other purger runs on another CPU (preemption is off around
        // a purge) and needs our CPU only for its IPI: interrupts are on.
        core::hint::spin_loop();
    }
    let batch = VMAP_LOCK.lock().lazy;
    let nr_stacks: u64 = batch.iter().map(|w| u64::from(w.count_ones())).sum();
    if nr_stacks > 0 {
        let flush = || flush_slots(&batch, nr_stacks * PAGES_PER_STACK);
        crate::smp::ipi::call_function_many_wait(u64::MAX, &flush);
        // This CPU too: the unmap flushed the CPU that dropped the stack,
        // which need not be this one.
        flush();
        let mut slots = VMAP_LOCK.lock();
        for slot in (0..NR_SLOTS).filter(|&i| batch[i / 64] & (1 << (i % 64)) != 0) {
            let pfn = Pfn::new(slots.lazy_pfn[slot]);
            if let Err(bad) = memory::page_alloc().free_pages(pfn, THREAD_SIZE_ORDER) {
                panic!("BUG: freeing kernel stack block: {bad:?}");
            }
            slots.lazy[slot / 64] &= !(1 << (slot % 64));
            slots.used[slot / 64] &= !(1 << (slot % 64));
        }
        NR_PURGES.fetch_add(1, Ordering::Relaxed);
        NR_PURGED.fetch_add(nr_stacks, Ordering::Relaxed);
    }
    PURGE_BUSY.store(false, Ordering::Release);
}

/// This CPU's part of a purge: `invlpg` every page of the slots in
/// `batch`, or one full flush above [`FLUSH_CEILING`] pages (the stack
/// PTEs are not global, so a CR3 reload drops them).
fn flush_slots(batch: &[u64; BITMAP_WORDS], nr_pages: u64) {
    if nr_pages > FLUSH_CEILING {
        x86_64::instructions::tlb::flush_all();
        return;
    }
    for slot in (0..NR_SLOTS).filter(|&i| batch[i / 64] & (1 << (i % 64)) != 0) {
        let bottom = KSTACK_REGION_START + slot as u64 * SLOT_BYTES + GUARD_BYTES;
        for i in 0..PAGES_PER_STACK {
            x86_64::instructions::tlb::flush(VirtAddr::new(bottom + i * PAGE_SIZE));
        }
    }
}

/// Stacks of live tasks now, lazily freed ones left out (racy; for tests
/// and reports).
pub fn nr_stacks_in_use() -> usize {
    let slots = VMAP_LOCK.lock();
    slots
        .used
        .iter()
        .zip(slots.lazy.iter())
        .map(|(u, l)| (u & !l).count_ones() as usize)
        .sum()
}

/// Frames the region's page tables hold now: they stay allocated for good
/// once a slot of theirs was used (module docs), like Linux's vmalloc page
/// tables, so leak checks leave them out.
pub fn nr_pagetable_pages() -> u64 {
    let _held = VMAP_LOCK.lock();
    NR_PAGETABLE_PAGES.load(Ordering::Relaxed)
}

/// Whether `va` is mapped in the active page table (for tests).
pub fn is_mapped(va: u64) -> bool {
    use x86_64::structures::paging::mapper::Translate;
    let _held = VMAP_LOCK.lock();
    with_mapper(|mapper| mapper.translate_addr(VirtAddr::new(va)).is_some())
}

/// Where `addr` falls in the region: `(slot, in_guard)`.
fn locate(addr: u64) -> Option<(usize, bool)> {
    if !(KSTACK_REGION_START..KSTACK_REGION_END).contains(&addr) {
        return None;
    }
    let off = addr - KSTACK_REGION_START;
    Some(((off / SLOT_BYTES) as usize, off % SLOT_BYTES < GUARD_BYTES))
}

/// The fault-report hook (`arch::idt::set_fault_report_hook`): names the
/// running thread, and says whether the faulting address (CR2) or the stack
/// pointer is in a stack's guard gap, as Linux's `handle_stack_overflow`:
/// `BUG: stack guard page was hit at ADDR (stack is LO..HI) of thread 'NAME'`.
///
/// Runs inside a fatal exception report: takes no lock and allocates
/// nothing; reads of another thread's record are racy (K3).
pub fn fault_report(info: &FaultInfo, summary: &mut dyn Write) {
    let current = crate::percpu::current_ptr();
    // SAFETY: a non-null `current` is the running task, alive while it runs
    // (the runqueue holds a reference); the report only reads it.
    if let Some(task) = unsafe { current.as_ref() } {
        emergency_println!(
            "    task   '{}' (tid {}) on CPU#{}",
            task.name(),
            task.tid(),
            crate::percpu::cpu_id()
        );
    }
    let candidates = [info.cr2, Some(info.rsp)];
    let Some((addr, slot)) = candidates
        .into_iter()
        .flatten()
        .find_map(|a| locate(a).filter(|&(_, guard)| guard).map(|(s, _)| (a, s)))
    else {
        return;
    };
    let lo = KSTACK_REGION_START + slot as u64 * SLOT_BYTES + GUARD_BYTES;
    let owner = SLOT_OWNER[slot].load(Ordering::Acquire);
    // SAFETY: a non-null owner is a live task (K3); a concurrent exit on
    // another CPU could free it meanwhile, a race a fatal report accepts.
    match unsafe { owner.as_ref() } {
        Some(task) => {
            emergency_println!(
                "BUG: stack guard page was hit at {addr:#x} (stack is {lo:#x}..{:#x}) of thread '{}' (tid {})",
                lo + THREAD_SIZE,
                task.name(),
                task.tid()
            );
            let _ = write!(
                summary,
                "kernel stack overflow: guard page of thread '{}' (tid {})",
                task.name(),
                task.tid()
            );
        }
        None => {
            emergency_println!(
                "BUG: stack guard page was hit at {addr:#x}, below the free kernel stack slot {slot}"
            );
            let _ = write!(summary, "stack guard page of free slot {slot}");
        }
    }
}
