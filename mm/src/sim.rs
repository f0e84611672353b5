//! The simulated machine: a [`Platform`] for host tests and benchmarks.
//!
//! Physical memory is a zeroed heap buffer (the OS gives untouched pages
//! lazily, so a large simulated RAM costs only what is used); "CPUs" are
//! host threads that declare which CPU they are with [`set_cpu`];
//! interrupt masking is a per-thread nesting counter, checked for balance.
//!
//! # The machine is an instrument
//!
//! It implements the debug hooks of [`Platform`], which the kernel leaves
//! empty, as Linux's debug options and its user-space test shims do:
//!
//! - **TLB flush log** ([`SimMachine::tlb_flushes`]): every flush asked
//!   for, in order.
//! - **Page owners and the leak check** (`page_owner`, and the shim slab's
//!   `nr_allocated` of Linux's maple-tree tests): each allocated block
//!   records the `alloc_pages` call site (and, with `MM_PAGE_OWNER=1` in
//!   the environment, a backtrace). When the page allocator is dropped, the end of every
//!   test, every block still allocated is a panic that lists the blocks,
//!   their memmap flags and their call sites, unless the test kept it on
//!   purpose ([`SimMachine::keep_allocated`], [`SimMachine::allow_leaks`]).
//!   A slab cache dropped with objects allocated is a panic too
//!   (`kmem_cache_destroy`'s "Slab cache still has objects").
//! - **Page poisoning** (`page_poison`): a freed block is filled with
//!   [`PAGE_POISON`]; when one of its frames is allocated again, a byte
//!   that changed is a write after free, a panic naming the frame and the
//!   offset. (Slab objects are poisoned by the slab's own
//!   `SlabFlags::POISON`.)
//! - **Page-table check** (`CONFIG_PAGE_TABLE_CHECK`): every leaf PTE
//!   write is reported, each frame counts the present PTEs that map it,
//!   and freeing a frame that a PTE still maps is a panic.
//! - **Fault injection** ([`set_fail_nth`], Linux's
//!   `/proc/self/fail-nth` over `fail_page_alloc` and `failslab`): the
//!   Nth page or slab allocation of the calling thread fails, whatever its
//!   GFP flags (`MM_FAIL_VERBOSE=1` prints where, as Linux's `verbose`).
//!
//! The fixtures [`page_alloc`] and [`machine`] (the usual one, shared by
//! the unit tests of every subsystem) build a page allocator on a fresh
//! machine; dropping it runs the leak check. Tests see RAM as a CPU would
//! through [`SimMachine::ram_word`], [`SimMachine::frame_bytes`] and
//! [`SimMachine::fill_frames`], without `unsafe` of their own. Benchmarks use
//! [`bench_page_alloc`], with the instruments off (PTE writes stay swaps:
//! [`Platform::PAGE_TABLE_CHECK`] is a constant of the platform).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::cell::Cell;
use core::fmt::Write as _;
use core::ops::Range;
use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed,
};

use crate::addr::{CpuId, Order, PAGE_SIZE, Pfn, PhysAddr};
use crate::gfp::Gfp;
use crate::memmap::{MemMap, PageState};
use crate::page_alloc::{PageAlloc, ZoneLayout};
use crate::pgtable::Entry;
use crate::platform::{IrqState, Platform};

/// The byte freed frames are filled with (Linux's `PAGE_POISON`).
pub const PAGE_POISON: u8 = 0xaa;

/// A poisoned frame, to compare with (one `memcmp`, fast even in the
/// unoptimized test build).
static POISONED_PAGE: [u8; PAGE_SIZE as usize] = [PAGE_POISON; PAGE_SIZE as usize];

std::thread_local! {
    static CPU: Cell<u32> = const { Cell::new(0) };
    static IRQ_OFF: Cell<u32> = const { Cell::new(0) };
    static PREEMPT_OFF: Cell<u32> = const { Cell::new(0) };
    static IN_IRQ: Cell<bool> = const { Cell::new(false) };
    /// Fault-injection countdown of this thread (`current->fail_nth`):
    /// 0 is disarmed.
    static FAIL_NTH: Cell<u32> = const { Cell::new(0) };
}

/// Arms fault injection for the calling thread, as writing `n` to
/// `/proc/self/fail-nth` does: the `n`th page or slab allocation from now
/// on fails (1: the very next one), whatever its GFP flags; 0 disarms.
/// Allocations in simulated interrupt context are not counted (Linux
/// injects only `in_task()`).
pub fn set_fail_nth(n: u32) {
    FAIL_NTH.with(|c| c.set(n));
}

/// Reads the countdown back, as reading `/proc/self/fail-nth` does: the
/// allocations left before the failure; 0 once the failure was injected
/// (or when disarmed).
pub fn fail_nth() -> u32 {
    FAIL_NTH.with(Cell::get)
}

/// Runs `f` counting its fault-injection points (allocations that
/// [`set_fail_nth`] could fail) without failing any; returns `f`'s result
/// and the count.
pub fn count_fail_points<R>(f: impl FnOnce() -> R) -> (R, u32) {
    set_fail_nth(u32::MAX);
    let r = f();
    let n = u32::MAX - fail_nth();
    set_fail_nth(0);
    (r, n)
}

/// `should_fail_ex()` for fail-nth: counts one point, true at the last.
fn should_fail() -> bool {
    if IN_IRQ.with(Cell::get) {
        return false;
    }
    let fail = FAIL_NTH.with(|c| match c.get() {
        0 => false,
        n => {
            c.set(n - 1);
            n == 1
        }
    });
    if fail && std::env::var_os("MM_FAIL_VERBOSE").is_some_and(|v| v == "1") {
        // Linux's fault_attr `verbose`: say where the failure was injected.
        std::eprintln!(
            "FAULT_INJECTION: forcing a failure.\n{}",
            std::backtrace::Backtrace::force_capture()
        );
    }
    fail
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
    /// Per frame: the `alloc_pages` call site of the block it heads, as a
    /// `&'static Location` address (0: none). Written at allocation,
    /// cleared at free, by the owner of the block.
    owner: Box<[AtomicUsize]>,
    /// Per frame: [`FRAME_POISONED`], [`FRAME_KEPT`].
    frame_flags: Box<[AtomicU8]>,
    /// Per frame: present leaf PTEs that map it (the page-table check).
    pte_refs: Box<[AtomicU32]>,
    /// Backtraces of allocations, by head pfn, with `MM_PAGE_OWNER=1`.
    backtraces: std::sync::Mutex<std::collections::BTreeMap<u64, std::backtrace::Backtrace>>,
    /// The leak check is off for this machine ([`SimMachine::allow_leaks`]).
    leaks_allowed: AtomicBool,
    /// Owners, poison, the page-table check and the leak check are on
    /// (the default; benchmarks turn them off).
    instrumented: AtomicBool,
}

/// The frame was poisoned when freed and is checked when allocated.
const FRAME_POISONED: u8 = 1;
/// The block this frame heads is leaked on purpose.
const FRAME_KEPT: u8 = 2;

/// Whether allocations record a backtrace: `MM_PAGE_OWNER=1` in the
/// environment (read once). Costly, so off by default.
fn owner_backtraces() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("MM_PAGE_OWNER").is_some_and(|v| v == "1"))
}

/// A zeroed slice of `n` atomics from the zeroing allocator, so that the
/// OS hands out its pages only when they are touched.
fn zeroed_atomics<T: Default>(n: usize) -> Box<[T]> {
    let b = Box::<[T]>::new_zeroed_slice(n);
    // SAFETY: only instantiated with atomic integers (below), for which
    // all-zero bytes are a valid value (zero).
    unsafe { b.assume_init() }
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
// SAFETY: `&SimMachine` gives only the RAM pointer (used through raw
// pointers whose users synchronise), atomics and Mutex-guarded logs.
unsafe impl Sync for SimMachine {}

impl SimMachine {
    /// A machine with `nr_pages` frames of zeroed RAM and `nr_cpus` CPUs.
    pub fn new(nr_pages: usize, nr_cpus: usize) -> Arc<Self> {
        let bytes = nr_pages.max(1) * PAGE_SIZE as usize;
        // SAFETY: the layout has a non-zero size.
        let memory = unsafe { std::alloc::alloc_zeroed(Self::layout(bytes)) };
        let memory = NonNull::new(memory).expect("simulated RAM allocation failed");
        let frames = nr_pages.max(1);
        Arc::new(Self {
            boot: std::time::Instant::now(),
            memory,
            bytes,
            nr_cpus,
            tlb: std::sync::Mutex::new(Vec::new()),
            owner: zeroed_atomics(frames),
            frame_flags: zeroed_atomics(frames),
            pte_refs: zeroed_atomics(frames),
            backtraces: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            leaks_allowed: AtomicBool::new(false),
            instrumented: AtomicBool::new(true),
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

    /// Exempts the allocated block headed by `pfn` from the leak check:
    /// the test leaves it allocated on purpose. Freeing it clears this.
    pub fn keep_allocated(&self, pfn: Pfn) {
        self.frame_flags[pfn.as_u64() as usize].fetch_or(FRAME_KEPT, Relaxed);
    }

    /// Turns page owners, poisoning, the page-table check and the leak
    /// checks off (or back on, on a machine with nothing allocated): for
    /// benchmarks, which measure the allocators, not the instrument.
    /// Fault injection stays (it costs a thread-local read).
    pub fn set_instrumented(&self, on: bool) {
        self.instrumented.store(on, Relaxed);
    }

    #[inline]
    fn instrumented(&self) -> bool {
        self.instrumented.load(Relaxed)
    }

    /// Turns the leak checks off for this machine: for tests that leave
    /// memory allocated on purpose (exhaustion, bad-free reports).
    pub fn allow_leaks(&self) {
        self.leaks_allowed.store(true, Relaxed);
    }

    /// Forgets what the instrument recorded (owners, poison marks, PTE
    /// counts, backtraces, the TLB log, `allow_leaks`), as for a new
    /// machine: for a harness that reuses one machine for many runs and
    /// zeroes its RAM between them (the fuzzer). Call it only when no
    /// page allocator of the machine is alive.
    pub fn reset_instrument(&self) {
        for o in self.owner.iter() {
            o.store(0, Relaxed);
        }
        for f in self.frame_flags.iter() {
            f.store(0, Relaxed);
        }
        for r in self.pte_refs.iter() {
            r.store(0, Relaxed);
        }
        self.backtraces.lock().unwrap().clear();
        self.tlb.lock().unwrap().clear();
        self.leaks_allowed.store(false, Relaxed);
    }

    /// The word of simulated RAM at `pa`, as a test reads or writes it
    /// the way a CPU would through a mapping. Atomic: tests touch words
    /// that the code under test may also access. `pa` must be 8-byte
    /// aligned and inside RAM (asserted).
    pub fn ram_word(&self, pa: PhysAddr) -> &AtomicU64 {
        let offset = pa.as_u64() as usize;
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= self.bytes,
            "{pa:?} is not an aligned word of simulated RAM"
        );
        let va = self.memory.as_ptr().wrapping_add(offset).cast::<u64>();
        assert!(va.is_aligned(), "simulated RAM is not 8-byte aligned");
        // SAFETY: 1. `va` is inside the RAM buffer (asserted), which lives
        // as long as `self`, and 8-byte aligned (asserted). 2. No Rust
        // reference to RAM exists besides these atomics: the code under
        // test reaches it only through raw pointers from `phys_to_virt`,
        // as a kernel reaches RAM through the direct map.
        unsafe { AtomicU64::from_ptr(va) }
    }

    /// A copy of the `nr_pages` frames from `pfn` (a test's view of
    /// memory contents).
    pub fn frame_bytes(&self, pfn: Pfn, nr_pages: usize) -> Vec<u8> {
        let (offset, len) = self.frame_range(pfn, nr_pages);
        let mut out = alloc::vec![0u8; len];
        // SAFETY: `frame_range` checked that the range lies inside the RAM
        // buffer; `out` is a separate allocation of `len` bytes.
        unsafe {
            core::ptr::copy_nonoverlapping(self.memory.as_ptr().add(offset), out.as_mut_ptr(), len)
        };
        out
    }

    /// Fills the `nr_pages` frames from `pfn` with `byte` (a test's
    /// stand-in for a program writing them).
    pub fn fill_frames(&self, pfn: Pfn, nr_pages: usize, byte: u8) {
        let (offset, len) = self.frame_range(pfn, nr_pages);
        // SAFETY: `frame_range` checked that the range lies inside the RAM
        // buffer, which no Rust reference points into.
        unsafe { core::ptr::write_bytes(self.memory.as_ptr().add(offset), byte, len) };
    }

    /// Byte offset and length of `nr_pages` frames from `pfn`, checked to
    /// lie inside RAM.
    fn frame_range(&self, pfn: Pfn, nr_pages: usize) -> (usize, usize) {
        let offset = pfn.phys_addr().as_u64() as usize;
        let len = nr_pages * PAGE_SIZE as usize;
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.bytes),
            "frames {pfn:?}+{nr_pages} are outside simulated RAM"
        );
        (offset, len)
    }

    /// Present PTEs that map frame `pfn` (the page-table check's count).
    pub fn pte_mappings(&self, pfn: Pfn) -> u32 {
        self.pte_refs[pfn.as_u64() as usize].load(Relaxed)
    }

    /// The `alloc_pages` call site of the allocated block headed by `pfn`.
    pub fn page_owner(&self, pfn: Pfn) -> Option<&'static Location<'static>> {
        let p = self.owner.get(pfn.as_u64() as usize)?.load(Relaxed);
        // SAFETY: non-zero values are addresses of `&'static Location`s
        // stored by `post_alloc_hook`.
        (p != 0).then(|| unsafe { &*(p as *const Location<'static>) })
    }

    /// The frames of the block at `pfn`, as a byte slice of simulated RAM.
    ///
    /// # Safety
    ///
    /// No one writes the block while the slice lives: it is free (being
    /// freed or allocated by the caller).
    unsafe fn block_bytes(&self, pfn: Pfn, order: Order) -> &[u8] {
        let len = order.bytes() as usize;
        let off = pfn.phys_addr().as_u64() as usize;
        assert!(
            off + len <= self.bytes,
            "block pfn {pfn} order {order} outside RAM"
        );
        // SAFETY: inside the RAM buffer (checked); the caller guarantees
        // that no one writes it meanwhile.
        unsafe { core::slice::from_raw_parts(self.memory.as_ptr().add(off), len) }
    }

    /// `kernel_poison_pages()` and `page_table_check_free()`.
    fn poison_block(&self, pfn: Pfn, order: Order) {
        let head = pfn.as_u64() as usize;
        for i in head..head + order.nr_pages() as usize {
            let maps = self.pte_refs[i].load(Relaxed);
            if maps != 0 {
                panic!(
                    "BUG: page table check: pfn {i:#x} freed (block pfn {pfn} order {order}, \
                     allocated at {}) while {maps} PTE(s) still map it",
                    self.owner_text(pfn)
                );
            }
        }
        let len = order.bytes() as usize;
        // SAFETY: the block is being freed: its last reference is gone and
        // it is on no free list yet, so no one else accesses it; it lies
        // inside RAM (`phys_to_virt` asserts its start, the memmap its end).
        unsafe {
            core::ptr::write_bytes(
                self.memory.as_ptr().add(head * PAGE_SIZE as usize),
                PAGE_POISON,
                len,
            )
        };
        self.owner[head].store(0, Relaxed);
        for f in &self.frame_flags[head..head + order.nr_pages() as usize] {
            f.store(FRAME_POISONED, Relaxed);
        }
    }

    /// `check_poison_mem()` on allocation, then `set_page_owner()`.
    fn unpoison_block(&self, pfn: Pfn, order: Order, caller: &'static Location<'static>) {
        let head = pfn.as_u64() as usize;
        for i in 0..order.nr_pages() as usize {
            if self.frame_flags[head + i].swap(0, Relaxed) & FRAME_POISONED == 0 {
                continue;
            }
            let frame = Pfn::new((head + i) as u64);
            // SAFETY: the block was just taken off the free lists for the
            // caller, who has not seen it yet.
            let bytes = unsafe { self.block_bytes(frame, Order::ZERO) };
            if bytes == POISONED_PAGE.as_slice() {
                continue;
            }
            if let Some(at) = bytes.iter().position(|&b| b != PAGE_POISON) {
                panic!(
                    "BUG: pagealloc: memory corruption: pfn {frame} byte {at:#x} is {:#04x}, \
                     not the poison {PAGE_POISON:#04x}: written after it was freed \
                     (now allocated at {caller})",
                    bytes[at]
                );
            }
        }
        self.owner[head].store(caller as *const Location<'static> as usize, Relaxed);
        if owner_backtraces() {
            let bt = std::backtrace::Backtrace::force_capture();
            self.backtraces.lock().unwrap().insert(head as u64, bt);
        }
    }

    fn owner_text(&self, pfn: Pfn) -> String {
        let mut s = match self.page_owner(pfn) {
            Some(l) => alloc::format!("{l}"),
            None => String::from("(unknown)"),
        };
        if let Some(bt) = self.backtraces.lock().unwrap().get(&pfn.as_u64()) {
            let _ = write!(s, "\n{bt}");
        }
        s
    }

    /// `page_table_check_pte_set()` / `_clear()`.
    fn pte_changed(&self, old: u64, new: u64) {
        let (old, new) = (Entry(old), Entry(new));
        if old.is_present()
            && let Some(c) = self.pte_refs.get(old.pfn().as_u64() as usize)
        {
            let was = c.fetch_sub(1, Relaxed);
            assert!(
                was > 0,
                "BUG: page table check: PTE of pfn {} cleared but never counted",
                old.pfn()
            );
        }
        if new.is_present()
            && let Some(c) = self.pte_refs.get(new.pfn().as_u64() as usize)
        {
            c.fetch_add(1, Relaxed);
        }
    }

    /// The leak check: every block still allocated, not kept on purpose.
    fn check_leaks(&self, memmap: &MemMap) {
        if self.leaks_allowed.load(Relaxed) || std::thread::panicking() {
            return;
        }
        let mut report = String::new();
        let (mut blocks, mut frames) = (0, 0);
        for (i, page) in memmap.as_slice().iter().enumerate() {
            if page.state() != PageState::Allocated
                || self
                    .frame_flags
                    .get(i)
                    .is_some_and(|f| f.load(Relaxed) & FRAME_KEPT != 0)
            {
                continue;
            }
            blocks += 1;
            frames += page.order().nr_pages();
            if blocks <= 16 {
                let pfn = Pfn::new(i as u64);
                let _ = writeln!(
                    report,
                    "  pfn {pfn} order {} refcount {} mapcount {} flags {:?}: allocated at {}",
                    page.order(),
                    page.refcount(),
                    page.mapcount(),
                    page.flags(),
                    self.owner_text(pfn)
                );
            }
        }
        if blocks > 0 {
            panic!(
                "leak check: {blocks} block(s), {frames} frame(s), still allocated when the \
                 page allocator was torn down:\n{report}"
            );
        }
    }

    /// `kmem_cache_destroy` found objects still allocated.
    fn slab_leak(&self, cache: &str, objects: u64) {
        if self.leaks_allowed.load(Relaxed) || std::thread::panicking() {
            return;
        }
        panic!("leak check: kmem_cache_destroy {cache}: {objects} object(s) still allocated");
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
    fn flush_tlb(
        &self,
        root: PhysAddr,
        _ctx: &crate::pgtable::TlbContext,
        range: Option<(u64, u64)>,
    ) {
        self.0.tlb.lock().unwrap().push(TlbFlush { root, range });
    }

    fn should_fail_alloc_page(&self, _gfp: Gfp, _order: Order) -> bool {
        should_fail()
    }

    fn should_failslab(&self, _gfp: Gfp) -> bool {
        should_fail()
    }

    fn post_alloc_hook(&self, pfn: Pfn, order: Order, caller: &'static Location<'static>) {
        if self.0.instrumented() {
            self.0.unpoison_block(pfn, order, caller);
        }
    }

    fn free_pages_prepare(&self, pfn: Pfn, order: Order) {
        if self.0.instrumented() {
            self.0.poison_block(pfn, order);
        }
    }

    const PAGE_TABLE_CHECK: bool = true;

    fn page_table_check_set(&self, old: u64, new: u64) {
        if self.0.instrumented() {
            self.0.pte_changed(old, new);
        }
    }

    fn page_alloc_teardown(&self, memmap: &MemMap) {
        if self.0.instrumented() {
            self.0.check_leaks(memmap);
        }
    }

    fn slab_leak(&self, cache: &str, objects: u64) {
        if self.0.instrumented() {
            self.0.slab_leak(cache, objects);
        }
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

/// The usual test machine: a page allocator over `nr_pages` frames of a
/// fresh simulated machine with `nr_cpus` CPUs, the first 16 frames
/// reserved, x86_64 zones. Dropping it runs the leak check.
pub fn machine(nr_pages: usize, nr_cpus: usize) -> PageAlloc<SimPlatform> {
    page_alloc(
        nr_pages,
        nr_cpus,
        Pfn::new(0)..Pfn::new(16),
        ZoneLayout::X86_64,
    )
}

/// Free frames once every CPU's lists are drained back to the zones: the
/// figure a test compares before and after.
pub fn free_pages(pa: &PageAlloc<SimPlatform>) -> u64 {
    pa.drain_all_pages();
    pa.nr_free_pages()
}

/// [`page_alloc`] for benchmarks: the instruments off
/// ([`SimMachine::set_instrumented`]), so that the figures are the
/// allocators' own.
pub fn bench_page_alloc(
    nr_pages: usize,
    nr_cpus: usize,
    reserved: Range<Pfn>,
    layout: ZoneLayout,
) -> PageAlloc<SimPlatform> {
    let pa = page_alloc(nr_pages, nr_cpus, reserved, layout);
    pa.platform().0.set_instrumented(false);
    pa
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

#[cfg(test)]
mod tests;
