//! The simulated machine: a [`Platform`] for host tests and benchmarks.
//!
//! Physical memory is a zeroed heap buffer (the OS gives untouched pages
//! lazily, so a large simulated RAM costs only what is used); "CPUs" are
//! host threads that declare which CPU they are with [`set_cpu`];
//! interrupt masking is a per-thread nesting counter, checked for balance.
//!
//! The simulator is an instrument: later subsystems add an allocation
//! counter, poisoning on free, failure injection and a TLB flush log here.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::cell::Cell;
use core::ops::Range;
use core::ptr::NonNull;

use crate::addr::{CpuId, PAGE_SIZE, Pfn, PhysAddr};
use crate::memmap::MemMap;
use crate::page_alloc::{PageAlloc, ZoneLayout};
use crate::platform::{IrqState, Platform};

std::thread_local! {
    static CPU: Cell<u32> = const { Cell::new(0) };
    static IRQ_OFF: Cell<u32> = const { Cell::new(0) };
    static PREEMPT_OFF: Cell<u32> = const { Cell::new(0) };
    static IN_IRQ: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` as if in interrupt context on the calling thread's CPU.
pub fn in_simulated_irq<R>(f: impl FnOnce() -> R) -> R {
    let was = IN_IRQ.with(|c| c.replace(true));
    let r = f();
    IN_IRQ.with(|c| c.set(was));
    r
}

/// The calling thread's preemption-disable depth.
pub fn preempt_count() -> u32 {
    PREEMPT_OFF.with(Cell::get)
}

/// Declares that the calling thread is CPU `cpu` from now on.
pub fn set_cpu(cpu: u32) {
    CPU.with(|c| c.set(cpu));
}

/// Whether the calling thread is inside an `irq_save` section.
pub fn irqs_disabled() -> bool {
    IRQ_OFF.with(|c| c.get() > 0)
}

/// Simulated RAM plus the CPU count.
pub struct SimMachine {
    /// Boot time, for `now_ns`.
    boot: std::time::Instant,
    /// Start of the RAM buffer. It is only ever accessed through raw
    /// pointers handed out by `phys_to_virt`, like RAM through a direct map,
    /// so no Rust reference to it exists to be aliased.
    memory: NonNull<u8>,
    bytes: usize,
    nr_cpus: usize,
    /// The TLB, as a log of flushes (see [`SimMachine::tlb_flushes`]).
    tlb: std::sync::Mutex<Vec<TlbFlush>>,
}

/// One TLB flush the simulated machine was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbFlush {
    /// Top-level table of the address space.
    pub root: PhysAddr,
    /// `[start, end)`, or `None` for the whole address space.
    pub range: Option<(u64, u64)>,
}

// SAFETY: the machine owns its buffer; sharing it between threads shares
// only a pointer, and every access to the memory behind it goes through
// raw pointers whose users synchronise as they would on real RAM.
unsafe impl Send for SimMachine {}
// SAFETY: as above.
unsafe impl Sync for SimMachine {}

impl SimMachine {
    /// A machine with `nr_pages` frames of zeroed RAM and `nr_cpus` CPUs.
    pub fn new(nr_pages: usize, nr_cpus: usize) -> Arc<Self> {
        let bytes = nr_pages.max(1) * PAGE_SIZE as usize;
        // SAFETY: the layout has a non-zero size.
        let memory = unsafe { std::alloc::alloc_zeroed(Self::layout(bytes)) };
        let memory = NonNull::new(memory).expect("simulated RAM allocation failed");
        Arc::new(Self {
            boot: std::time::Instant::now(),
            memory,
            bytes,
            nr_cpus,
            tlb: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn layout(bytes: usize) -> Layout {
        Layout::from_size_align(bytes, PAGE_SIZE as usize).expect("simulated RAM size")
    }

    /// Frames of simulated RAM.
    pub fn nr_pages(&self) -> usize {
        self.bytes / PAGE_SIZE as usize
    }

    /// The TLB flushes requested so far, oldest first.
    pub fn tlb_flushes(&self) -> Vec<TlbFlush> {
        self.tlb.lock().unwrap().clone()
    }

    /// Number of TLB flushes requested so far.
    pub fn nr_tlb_flushes(&self) -> usize {
        self.tlb.lock().unwrap().len()
    }
}

impl Drop for SimMachine {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout, freed once.
        unsafe { std::alloc::dealloc(self.memory.as_ptr(), Self::layout(self.bytes)) };
    }
}

/// The [`Platform`] of a [`SimMachine`].
#[derive(Clone)]
pub struct SimPlatform(pub Arc<SimMachine>);

impl Platform for SimPlatform {
    #[inline]
    fn phys_to_virt(&self, pa: PhysAddr) -> *mut u8 {
        let offset = pa.as_u64() as usize;
        assert!(offset < self.0.bytes, "{pa:?} is outside simulated RAM");
        self.0.memory.as_ptr().wrapping_add(offset)
    }

    #[inline]
    fn virt_to_phys(&self, va: *const u8) -> Option<PhysAddr> {
        let offset = (va as usize).checked_sub(self.0.memory.as_ptr() as usize)?;
        (offset < self.0.bytes).then(|| PhysAddr::new(offset as u64))
    }

    #[inline]
    fn cpu_id(&self) -> CpuId {
        let cpu = CPU.with(Cell::get);
        assert!(
            (cpu as usize) < self.0.nr_cpus,
            "thread claims CPU {cpu} of {}",
            self.0.nr_cpus
        );
        CpuId::new(cpu)
    }

    #[inline]
    fn nr_cpus(&self) -> usize {
        self.0.nr_cpus
    }

    #[inline]
    fn irq_save(&self) -> IrqState {
        IRQ_OFF.with(|c| {
            let was = c.get();
            c.set(was + 1);
            IrqState(was == 0)
        })
    }

    #[inline]
    fn preempt_disable(&self) {
        PREEMPT_OFF.with(|c| c.set(c.get() + 1));
    }

    #[inline]
    fn preempt_enable(&self) {
        PREEMPT_OFF.with(|c| {
            assert!(c.get() > 0, "preempt_enable without preempt_disable");
            c.set(c.get() - 1);
        });
    }

    #[inline]
    fn in_interrupt(&self) -> bool {
        IN_IRQ.with(Cell::get)
    }

    fn may_sleep(&self) -> bool {
        preempt_count() == 0 && !irqs_disabled() && !self.in_interrupt()
    }

    fn now_ns(&self) -> u64 {
        self.0.boot.elapsed().as_nanos() as u64
    }

    /// Host threads "block" by yielding the host CPU for a moment.
    fn wait(&self, cond: &dyn Fn() -> bool) {
        assert_eq!(preempt_count(), 0, "wait() with preemption disabled");
        assert!(!self.in_interrupt(), "wait() in interrupt context");
        if !cond() {
            std::thread::yield_now();
        }
    }

    fn wake_waiters(&self) {}

    /// The simulated TLB holds nothing: a flush is recorded in the log.
    fn flush_tlb(&self, root: PhysAddr, range: Option<(u64, u64)>) {
        self.0.tlb.lock().unwrap().push(TlbFlush { root, range });
    }

    #[inline]
    fn irq_restore(&self, state: IrqState) {
        IRQ_OFF.with(|c| {
            let now = c.get();
            assert!(now > 0, "irq_restore without irq_save");
            assert_eq!(state.0, now == 1, "irq_save/irq_restore nest out of order");
            c.set(now - 1);
        });
    }
}

/// A page allocator over a fresh simulated machine of `nr_pages` frames,
/// with `reserved` frames at the bottom kept out (like firmware and the
/// kernel image) and zones laid out by `layout`.
pub fn page_alloc(
    nr_pages: usize,
    nr_cpus: usize,
    reserved: Range<Pfn>,
    layout: ZoneLayout,
) -> PageAlloc<SimPlatform> {
    let machine = SimMachine::new(nr_pages, nr_cpus);
    let memmap = MemMap::new_boxed(nr_pages);
    let end = Pfn::new(nr_pages as u64);
    let mut free: Vec<Range<Pfn>> = Vec::new();
    if reserved.start > Pfn::new(0) {
        free.push(Pfn::new(0)..reserved.start);
    }
    if reserved.end < end {
        free.push(reserved.end..end);
    }
    PageAlloc::new(SimPlatform(machine), memmap, layout, &free)
}
