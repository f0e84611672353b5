//! The GDT, and the TSS whose interrupt stack table (IST) gives the worst
//! exceptions a known-good stack.
//!
//! Long mode ignores segment bases and limits, so the GDT only names privilege
//! levels, plus the TSS. Its layout is the one `SYSCALL`/`SYSRET` will need
//! (kernel data right after kernel code, user data right before user code):
//!
//! ```text
//!   index  selector  descriptor
//!   0      0x00      null
//!   1      0x08      kernel code  (CS in ring 0)
//!   2      0x10      kernel data  (SS/DS/ES in ring 0)
//!   3      0x1b      user data    (RPL 3)
//!   4      0x23      user code    (RPL 3)
//!   5-6    0x28      TSS          (a 16-byte system descriptor)
//! ```
//!
//! Every CPU has its own GDT and TSS ([`init`] for the boot CPU,
//! [`init_ap`] for the others), laid out alike, so the selectors are the
//! same on every CPU. A TSS's IST holds one 16 KiB stack each for double
//! fault, NMI, machine check and page fault ([`DOUBLE_FAULT_IST`] ...): the
//! boot CPU's are static, an AP's come from the page allocator (`smp`); the
//! IDT ([`super::idt`]), shared by all CPUs, decides which gates switch to
//! them. A kernel stack overflow thus ends in a double fault that still has
//! a stack to report on.
//!
//! # Invariants
//!
//! - I1: the IST stacks are used only by the CPU, on the gates that name them;
//!   Rust code never creates a reference to them.
//! - I2: each CPU's GDT and TSS are set up and loaded once, by that CPU
//!   ([`init`] or [`init_ap`]): loading an already-busy TSS faults.
//! - I3: the TSSs live in a `static mut` array; Rust code touches CPU `n`'s
//!   only on CPU `n`, in its init (before it is loaded) and in
//!   [`set_kernel_stack`] (one field, by raw pointer, interrupts off); the
//!   CPU reads it on every ring 3 -> 0 transition through an interrupt gate
//!   (`RSP0`) and on IST gates.

use core::sync::atomic::{AtomicBool, Ordering};

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

use crate::percpu::{self, MAX_CPUS};

/// IST slot (0-based, as `set_stack_index` takes it) for `#DF`.
pub const DOUBLE_FAULT_IST: u16 = 0;
/// IST slot for NMI.
pub const NMI_IST: u16 = 1;
/// IST slot for `#MC`.
pub const MACHINE_CHECK_IST: u16 = 2;
/// IST slot for `#PF`.
pub const PAGE_FAULT_IST: u16 = 3;

/// Number of IST stacks in use; the TSS has room for 7.
pub const NR_IST_STACKS: usize = 4;

/// Size of each IST stack.
pub const IST_STACK_BYTES: usize = 16 * 1024;

/// One IST stack. Aligned so its top is 16-byte aligned, as the ABI wants.
#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_BYTES]);

/// The IST stacks, in `.bss`: written only by the CPU (I1). No guard pages.
static mut IST_STACKS: [IstStack; NR_IST_STACKS] =
    [const { IstStack([0; IST_STACK_BYTES]) }; NR_IST_STACKS];

/// The selectors of the GDT's segments; see the module table.
#[derive(Debug, Clone, Copy)]
pub struct Selectors {
    pub kernel_code: SegmentSelector,
    pub kernel_data: SegmentSelector,
    pub user_data: SegmentSelector,
    pub user_code: SegmentSelector,
    pub tss: SegmentSelector,
}

/// The TSSs, by CPU (I3). `RSP0` is the running task's kernel stack top:
/// the stack an interrupt or exception from user mode starts on.
static mut TSS: [TaskStateSegment; MAX_CPUS] = [const { TaskStateSegment::new() }; MAX_CPUS];
/// The GDTs, by CPU.
static GDT: [Once<(GlobalDescriptorTable, Selectors)>; MAX_CPUS] =
    [const { Once::new() }; MAX_CPUS];
/// Whether CPU `n`'s GDT and TSS are loaded (I2).
static LOADED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Loads the boot CPU's GDT, reloads CS/SS/DS/ES with its kernel segments
/// and loads its TSS, whose IST stacks are static. Call once, early, before
/// [`super::idt::init`] (whose gates name IST slots of this TSS).
pub fn init() {
    let base = (&raw mut IST_STACKS).cast::<IstStack>();
    let tops: [u64; NR_IST_STACKS] =
        core::array::from_fn(|i| VirtAddr::from_ptr(base.wrapping_add(i + 1)).as_u64());
    load_for_cpu(0, &tops);
}

/// Loads this AP's own GDT and TSS with the IST stacks whose tops are
/// `ist_tops` (stacks the caller owns for good, I1). Called once by each
/// AP in its bring-up, after its GS base is set (`percpu::cpu_id` names
/// the CPU) and before the IDT is loaded.
pub fn init_ap(ist_tops: &[u64; NR_IST_STACKS]) {
    load_for_cpu(percpu::cpu_id() as usize, ist_tops);
}

/// Sets up and loads CPU `cpu`'s GDT and TSS (I2).
fn load_for_cpu(cpu: usize, ist_tops: &[u64; NR_IST_STACKS]) {
    assert!(
        !LOADED[cpu].swap(true, Ordering::Relaxed),
        "gdt::init for CPU {cpu} called twice"
    );
    // SAFETY: only the element of this CPU is addressed, by raw pointer.
    let tss = unsafe { (&raw mut TSS).cast::<TaskStateSegment>().add(cpu) };
    for (slot, top) in ist_tops.iter().enumerate() {
        // SAFETY: this runs once per CPU, on that CPU, before its TSS is
        // loaded (I2, I3): nothing else reads or writes it yet. The TSS is
        // packed: assign in place, never through a reference.
        unsafe { (*tss).interrupt_stack_table[slot] = VirtAddr::new(*top) };
    }
    let (gdt, sel) = GDT[cpu].call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let sel = Selectors {
            kernel_code: gdt.append(Descriptor::kernel_code_segment()),
            kernel_data: gdt.append(Descriptor::kernel_data_segment()),
            user_data: gdt.append(Descriptor::user_data_segment()),
            user_code: gdt.append(Descriptor::user_code_segment()),
            // SAFETY: the TSS is an element of a static array: it lives
            // and stays put for as long as the GDT is loaded (forever).
            tss: gdt.append(unsafe { Descriptor::tss_segment_unchecked(tss) }),
        };
        (gdt, sel)
    });
    gdt.load();
    // SAFETY: the GDT just loaded is 'static and holds these selectors' ring-0
    // code and data descriptors, and a TSS descriptor for a 'static TSS that
    // is not yet busy (I2); reloading the segment registers with them keeps
    // the running code's privilege level and address space.
    unsafe {
        CS::set_reg(sel.kernel_code);
        SS::set_reg(sel.kernel_data);
        DS::set_reg(sel.kernel_data);
        ES::set_reg(sel.kernel_data);
        load_tss(sel.tss);
    }
}

/// Sets this CPU's TSS `RSP0`: the kernel stack an interrupt or exception
/// taken in ring 3 switches to. Called by the context switch with
/// interrupts off.
pub fn set_kernel_stack(top: u64) {
    debug_assert!(!x86_64::instructions::interrupts::are_enabled());
    let cpu = percpu::cpu_id() as usize;
    // SAFETY: only this CPU's element is addressed, by raw pointer; with
    // interrupts off no other Rust code touches it meanwhile (I3), and the
    // write is in place (packed).
    unsafe {
        let tss = (&raw mut TSS).cast::<TaskStateSegment>().add(cpu);
        (*tss).privilege_stack_table[0] = VirtAddr::new(top);
    }
}

/// The GDT's selectors (the same on every CPU), once [`init`] has run.
pub fn selectors() -> Option<&'static Selectors> {
    GDT[0].get().map(|(_, sel)| sel)
}
