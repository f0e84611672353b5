//! Per-CPU data, reached through the GS base (Linux's `this_cpu_*` on x86_64).
//!
//! Every CPU owns one [`PerCpu`] record of the static array [`PER_CPU`]; the
//! CPU's `IA32_GS_BASE` MSR holds the record's address, so a field of "this
//! CPU" is one `gs:`-relative instruction away, as in Linux:
//!
//! ```text
//!   gs:[0]   this             address of the record itself (this_cpu_ptr)
//!   gs:[8]   cpu              CPU number, 0..MAX_CPUS
//!   gs:[12]  preempt_count    preempt_disable() nesting
//!   gs:[16]  hardirq_count    hard-IRQ nesting (irq_enter/irq_exit)
//!   gs:[20]  need_resched     1: schedule at the next preemption point
//!   gs:[24]  current          the running task (*const sched::Task)
//!   ...      counters
//! ```
//!
//! A read-modify-write such as `add dword ptr gs:[12], 1` is one instruction:
//! an interrupt cannot split it and the task cannot migrate halfway, which is
//! why `preempt_count` lives here and is not reached through a pointer.
//!
//! The per-CPU address stays in `IA32_GS_BASE` in user mode too: the
//! entry paths do not `swapgs`, and `arch_prctl(ARCH_SET_GS)` is refused,
//! so no program can set its own GS base. Entry paths that let programs
//! have one must `swapgs` on the way in and out. Nothing may load the GS
//! *selector*, which would clear the base.
//!
//! # Invariants
//!
//! - C1: after [`init_boot_cpu`] (an AP: [`init_ap`]), GS base of every
//!   running CPU points at its own record and never changes.
//! - C2: `this_cpu_*` accessors run only after C1 holds; before, GS base is 0
//!   and a `gs:` access faults loudly (address below 4 KiB, unmapped).
//! - C3: the local CPU changes its fields only with single `gs:` instructions
//!   (atomic with respect to its interrupts); other CPUs only read them, or
//!   write `need_resched` (a plain store, later followed by a resched IPI).
//!
//! # CPU counts
//!
//! [`MAX_CPUS`] records exist (Linux's `NR_CPUS`, x86_64's default 64).
//! [`nr_possible_cpus`] is Linux's `nr_cpu_ids`: the enabled processors
//! of the ACPI MADT (`smp::acpi`), fixed at boot by [`set_nr_possible`]
//! before `memory::init` sizes mm's per-CPU arrays with it; every CPU id
//! is below it. [`nr_online_cpus`] counts CPUs that run kernel code (the
//! boot CPU, plus each AP `smp` has started).
//!
//! # Context
//!
//! Any context, including NMI and exception handlers (no locks). A value read
//! with preemption enabled may be stale the moment it is read (the task may
//! migrate), except `current`, which is the same on every CPU.

use core::arch::asm;
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use x86_64::VirtAddr;
use x86_64::registers::model_specific::{GsBase, KernelGsBase};

use crate::sched::Task;

/// How many per-CPU records exist: the most CPUs the kernel supports.
pub const MAX_CPUS: usize = 64;

/// One CPU's record. Fields are atomics so that other CPUs may read them
/// (C3); the owning CPU accesses them through `gs:` (see the module docs).
#[repr(C, align(64))]
pub struct PerCpu {
    /// The record's own address, so `gs:[0]` yields a pointer to it. Write:
    /// once, by the CPU's bring-up, before its GS base is set.
    this: AtomicPtr<PerCpu>,
    /// This CPU's number. Constant.
    cpu: AtomicU32,
    /// `preempt_disable` nesting of the running task (0: preemptible).
    /// Write: the local CPU, `gs:` add/sub only. Always 1 across a context
    /// switch (the switching `schedule()` holds it), so it needs no saving.
    preempt_count: AtomicU32,
    /// Hard-IRQ nesting: [`irq_enter`] adds one, [`irq_exit`] removes it.
    /// Write: the local CPU, `gs:` add/sub only.
    hardirq_count: AtomicU32,
    /// 0 or 1: the scheduler asked for a reschedule at the next preemption
    /// point. Write: the local CPU (set/clear), or a remote CPU's wakeup (set).
    need_resched: AtomicU32,
    /// The task running on this CPU (`Arc::as_ptr` of the runqueue's current).
    /// Write: the local CPU, inside `schedule()` with interrupts off, or at
    /// scheduler bring-up. Null before the scheduler runs.
    current: AtomicPtr<Task>,
    /// Local timer interrupts taken on this CPU. Write: the tick handler.
    pub nr_ticks: AtomicU64,
    /// Whether this CPU runs kernel code. Write: its bring-up.
    online: AtomicBool,
    /// Top of the running task's kernel stack (Linux's
    /// `cpu_current_top_of_stack`): where `SYSCALL` entry switches to.
    /// Write: the local CPU, in the context switch (interrupts off).
    pub(crate) top_of_stack: AtomicU64,
    /// The user `rsp` saved by `SYSCALL` entry before it switches stacks
    /// (Linux's `cpu_tss_rw.sp2` scratch). Write: entry code, interrupts off.
    pub(crate) user_sp_scratch: AtomicU64,
    /// The CPU's local APIC id (from the MADT). Write: `smp`, before the
    /// CPU is started.
    apic_id: AtomicU32,
    /// Whether the scheduler runs tasks here (Linux's `cpu_active_mask`):
    /// the boot CPU from the start, an AP at the end of its bring-up
    /// (`smp`). Write: bring-up.
    active: AtomicBool,
}

impl PerCpu {
    const fn new(cpu: u32) -> Self {
        Self {
            this: AtomicPtr::new(core::ptr::null_mut()),
            cpu: AtomicU32::new(cpu),
            preempt_count: AtomicU32::new(0),
            hardirq_count: AtomicU32::new(0),
            need_resched: AtomicU32::new(0),
            current: AtomicPtr::new(core::ptr::null_mut()),
            nr_ticks: AtomicU64::new(0),
            online: AtomicBool::new(false),
            top_of_stack: AtomicU64::new(0),
            user_sp_scratch: AtomicU64::new(0),
            apic_id: AtomicU32::new(0),
            active: AtomicBool::new(false),
        }
    }

    /// This record's CPU number.
    pub fn cpu(&self) -> u32 {
        self.cpu.load(Ordering::Relaxed)
    }

    /// The record's preempt count (racy when read from another CPU).
    pub fn preempt_count(&self) -> u32 {
        self.preempt_count.load(Ordering::Relaxed)
    }

    /// Asks this CPU to reschedule at its next preemption point. From another
    /// CPU this also needs a resched IPI (`smp::ipi::resched_cpu` sends both); on the local
    /// CPU the next tick, `preempt_enable` or interrupt return sees it.
    pub fn set_need_resched(&self) {
        self.need_resched.store(1, Ordering::Release);
    }

    /// Whether this CPU runs kernel code.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    /// Whether the scheduler runs tasks on this CPU (see `active`).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// This CPU's local APIC id.
    pub fn apic_id(&self) -> u32 {
        self.apic_id.load(Ordering::Relaxed)
    }

    /// Records this CPU's local APIC id (`smp`, at discovery).
    pub(crate) fn set_apic_id(&self, id: u32) {
        self.apic_id.store(id, Ordering::Relaxed);
    }
}

/// Builds the array with each record's CPU number.
const fn per_cpu_array() -> [PerCpu; MAX_CPUS] {
    let mut a = [const { PerCpu::new(0) }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        a[i] = PerCpu::new(i as u32);
        i += 1;
    }
    a
}

/// The per-CPU records, indexed by CPU number.
static PER_CPU: [PerCpu; MAX_CPUS] = per_cpu_array();

/// Linux's `nr_cpu_ids`; see the module docs.
static NR_POSSIBLE: AtomicU32 = AtomicU32::new(1);
/// CPUs marked online.
static NR_ONLINE: AtomicU32 = AtomicU32::new(0);
/// Linux's `cpu_active_mask`: bit N set once CPU N runs tasks.
static ACTIVE_MASK: AtomicU64 = AtomicU64::new(0);

const _: () = {
    assert!(offset_of!(PerCpu, this) == 0);
    assert!(offset_of!(PerCpu, cpu) == 8);
    assert!(offset_of!(PerCpu, preempt_count) == 12);
    assert!(offset_of!(PerCpu, hardirq_count) == 16);
    assert!(offset_of!(PerCpu, need_resched) == 20);
    assert!(offset_of!(PerCpu, current) == 24);
};

/// Points the boot CPU's GS base at record 0 and marks it online. Call once,
/// first thing at boot (C1, C2).
pub fn init_boot_cpu() {
    let rec = &PER_CPU[0];
    rec.this
        .store(core::ptr::from_ref(rec).cast_mut(), Ordering::Relaxed);
    GsBase::write(VirtAddr::from_ptr(rec));
    KernelGsBase::write(VirtAddr::zero());
    rec.online.store(true, Ordering::Release);
    rec.active.store(true, Ordering::Release);
    ACTIVE_MASK.store(1, Ordering::Release);
    NR_ONLINE.store(1, Ordering::Release);
    debug_assert_eq!(this_cpu_ptr(), core::ptr::from_ref(rec));
}

/// Points this AP's GS base at record `cpu` (C1, C2): first thing in the
/// AP's bring-up, before any `this_cpu_*` access. Not yet online.
pub fn init_ap(cpu: u32) {
    let rec = &PER_CPU[cpu as usize];
    rec.this
        .store(core::ptr::from_ref(rec).cast_mut(), Ordering::Relaxed);
    GsBase::write(VirtAddr::from_ptr(rec));
    KernelGsBase::write(VirtAddr::zero());
    debug_assert_eq!(cpu_id(), cpu);
}

/// Marks this CPU online (it runs kernel code and takes interrupts): the
/// last step of an AP's bring-up, which the boot CPU waits for.
pub fn set_online() {
    let rec = this_cpu();
    if !rec.online.swap(true, Ordering::AcqRel) {
        NR_ONLINE.fetch_add(1, Ordering::AcqRel);
    }
}

/// Marks this online CPU active: the scheduler places tasks on it from
/// now on (the last step of an AP's bring-up, `smp`).
pub fn set_active() {
    let rec = this_cpu();
    rec.active.store(true, Ordering::Release);
    ACTIVE_MASK.fetch_or(1 << rec.cpu(), Ordering::AcqRel);
}

/// The CPUs the scheduler runs tasks on (Linux's `cpu_active_mask`; bit
/// N: CPU N).
pub fn cpu_active_mask() -> u64 {
    ACTIVE_MASK.load(Ordering::Acquire)
}

/// The record of CPU `cpu`.
pub fn per_cpu(cpu: u32) -> &'static PerCpu {
    &PER_CPU[cpu as usize]
}

/// Sets `nr_cpu_ids` to `n` (1..=[`MAX_CPUS`]): once, at boot, before
/// `memory::init` (mm sizes its per-CPU arrays with it).
pub fn set_nr_possible(n: usize) {
    assert!((1..=MAX_CPUS).contains(&n), "nr_cpu_ids {n} out of range");
    NR_POSSIBLE.store(n as u32, Ordering::Relaxed);
}

/// Linux's `nr_cpu_ids`: every CPU id is below it (module docs).
pub fn nr_possible_cpus() -> usize {
    NR_POSSIBLE.load(Ordering::Relaxed) as usize
}

/// CPUs running kernel code now.
pub fn nr_online_cpus() -> usize {
    NR_ONLINE.load(Ordering::Acquire) as usize
}

/// Reads the 32-bit field at `gs:[$off]`.
macro_rules! gs_read_u32 {
    ($off:expr) => {{
        let v: u32;
        // SAFETY: GS base points at this CPU's record (C1, C2) and the offset
        // is that of a 32-bit atomic field of it: the load reads only it.
        unsafe {
            asm!("mov {0:e}, dword ptr gs:[{off}]", out(reg) v, off = const $off,
                 options(nostack, preserves_flags, readonly))
        };
        v
    }};
}

/// Stores a 32-bit value into the field at `gs:[$off]`.
macro_rules! gs_write_u32 {
    ($off:expr, $v:expr) => {{
        let v: u32 = $v;
        // SAFETY: as for gs_read_u32; the field is an atomic owned by this
        // CPU's record, and a plain aligned store is how the local CPU
        // writes it (C3).
        unsafe {
            asm!("mov dword ptr gs:[{off}], {0:e}", in(reg) v, off = const $off,
                 options(nostack, preserves_flags))
        };
    }};
}

/// This CPU's record, as a pointer (Linux's `this_cpu_ptr`).
#[inline]
pub fn this_cpu_ptr() -> *const PerCpu {
    let p: *const PerCpu;
    // SAFETY: gs:[0] is the `this` field of this CPU's record (C1, C2).
    unsafe {
        asm!("mov {}, qword ptr gs:[0]", out(reg) p, options(nostack, preserves_flags, readonly))
    };
    p
}

/// This CPU's record. Stable only while preemption or interrupts are off.
#[inline]
pub fn this_cpu() -> &'static PerCpu {
    // SAFETY: the pointer is the address of an element of the static PER_CPU
    // array (C1), valid for 'static.
    unsafe { &*this_cpu_ptr() }
}

/// The CPU this code runs on (`smp_processor_id`); stable only while
/// preemption or interrupts are off.
#[inline]
pub fn cpu_id() -> u32 {
    gs_read_u32!(offset_of!(PerCpu, cpu))
}

/// This CPU's preempt count.
#[inline]
pub fn preempt_count() -> u32 {
    gs_read_u32!(offset_of!(PerCpu, preempt_count))
}

/// Adds one to this CPU's preempt count (one instruction, C3). Also a
/// compiler barrier, like Linux's `preempt_disable`.
#[inline]
pub fn preempt_count_inc() {
    // SAFETY: as for gs_read_u32; a single `add` to this CPU's own field.
    unsafe {
        asm!("add dword ptr gs:[{off}], 1", off = const offset_of!(PerCpu, preempt_count),
             options(nostack))
    };
}

/// Subtracts one from this CPU's preempt count and returns whether it
/// reached 0 (one instruction, C3). Also a compiler barrier.
#[inline]
pub fn preempt_count_dec_and_test() -> bool {
    let zero: u8;
    // SAFETY: as for preempt_count_inc.
    unsafe {
        asm!("sub dword ptr gs:[{off}], 1", "setz {z}", z = out(reg_byte) zero,
             off = const offset_of!(PerCpu, preempt_count), options(nostack))
    };
    zero != 0
}

/// This CPU's hard-IRQ nesting depth.
#[inline]
pub fn hardirq_count() -> u32 {
    gs_read_u32!(offset_of!(PerCpu, hardirq_count))
}

/// Enters hard-IRQ context (Linux's `irq_enter`): call first in a device
/// interrupt handler, with interrupts off.
#[inline]
pub fn irq_enter() {
    // SAFETY: as for preempt_count_inc, on the hardirq field.
    unsafe {
        asm!("add dword ptr gs:[{off}], 1", off = const offset_of!(PerCpu, hardirq_count),
             options(nostack))
    };
}

/// Leaves hard-IRQ context (Linux's `irq_exit`), pairing with [`irq_enter`].
#[inline]
pub fn irq_exit() {
    debug_assert!(hardirq_count() > 0, "irq_exit without irq_enter");
    // SAFETY: as for preempt_count_inc, on the hardirq field.
    unsafe {
        asm!("sub dword ptr gs:[{off}], 1", off = const offset_of!(PerCpu, hardirq_count),
             options(nostack))
    };
}

/// Whether this CPU has a reschedule pending.
#[inline]
pub fn need_resched() -> bool {
    gs_read_u32!(offset_of!(PerCpu, need_resched)) != 0
}

/// Requests a reschedule of this CPU at its next preemption point.
#[inline]
pub fn set_need_resched() {
    gs_write_u32!(offset_of!(PerCpu, need_resched), 1);
}

/// Clears this CPU's reschedule request (the scheduler, under its lock).
#[inline]
pub fn clear_need_resched() {
    gs_write_u32!(offset_of!(PerCpu, need_resched), 0);
}

/// The task running on this CPU, null before the scheduler runs.
#[inline]
pub fn current_ptr() -> *const Task {
    let p: *const Task;
    // SAFETY: as for gs_read_u32, on the 64-bit `current` field.
    unsafe {
        asm!("mov {}, qword ptr gs:[{off}]", out(reg) p, off = const offset_of!(PerCpu, current),
             options(nostack, preserves_flags, readonly))
    };
    p
}

/// Sets this CPU's running task. For the scheduler only, with interrupts off.
#[inline]
pub(crate) fn set_current_ptr(task: *const Task) {
    // SAFETY: as for gs_write_u32, on the 64-bit `current` field.
    unsafe {
        asm!("mov qword ptr gs:[{off}], {}", in(reg) task, off = const offset_of!(PerCpu, current),
             options(nostack, preserves_flags))
    };
}
