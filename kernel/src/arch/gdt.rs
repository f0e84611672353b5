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
//! The TSS's IST holds one statically allocated 16 KiB stack each for double
//! fault, NMI, machine check and page fault ([`DOUBLE_FAULT_IST`] ...); the
//! IDT ([`super::idt`]) decides which gates switch to them. A kernel stack
//! overflow thus ends in a double fault that still has a stack to report on.
//!
//! # Invariants
//!
//! - I1: the IST stacks are used only by the CPU, on the gates that name them;
//!   Rust code never creates a reference to them.
//! - I2: [`init`] runs once per boot: loading an already-busy TSS faults.
//! - I3: the TSS lives in a `static mut` that Rust code touches only in
//!   [`init`] (before it is loaded) and in [`set_kernel_stack`] (one field,
//!   by raw pointer, interrupts off); the CPU reads it on every ring 3 -> 0
//!   transition through an interrupt gate (`RSP0`) and on IST gates.
//!
//! One TSS serves one CPU; SMP bring-up will need a TSS (and IST stacks) per CPU.

use core::sync::atomic::{AtomicBool, Ordering};

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (0-based, as `set_stack_index` takes it) for `#DF`.
pub const DOUBLE_FAULT_IST: u16 = 0;
/// IST slot for NMI.
pub const NMI_IST: u16 = 1;
/// IST slot for `#MC`.
pub const MACHINE_CHECK_IST: u16 = 2;
/// IST slot for `#PF`.
pub const PAGE_FAULT_IST: u16 = 3;

/// Number of IST stacks in use; the TSS has room for 7.
const NR_IST_STACKS: usize = 4;

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

/// The TSS (I3). `RSP0` is the running task's kernel stack top: the stack
/// an interrupt or exception from user mode starts on.
static mut TSS: TaskStateSegment = TaskStateSegment::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();
static LOADED: AtomicBool = AtomicBool::new(false);

/// Loads the GDT, reloads CS/SS/DS/ES with its kernel segments and loads the
/// TSS. Call once, early, before [`super::idt::init`] (whose gates name IST
/// slots of this TSS).
pub fn init() {
    assert!(
        !LOADED.swap(true, Ordering::Relaxed),
        "gdt::init called twice"
    );
    let tss = &raw mut TSS;
    for (slot, top) in ist_stack_tops().enumerate() {
        // SAFETY: init runs once, before the TSS is loaded (I2, I3): nothing
        // else reads or writes it yet. The TSS is packed: assign in place,
        // never through a reference.
        unsafe { (*tss).interrupt_stack_table[slot] = top };
    }
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let sel = Selectors {
            kernel_code: gdt.append(Descriptor::kernel_code_segment()),
            kernel_data: gdt.append(Descriptor::kernel_data_segment()),
            user_data: gdt.append(Descriptor::user_data_segment()),
            user_code: gdt.append(Descriptor::user_code_segment()),
            // SAFETY: the TSS is a static: it lives and stays put for as
            // long as the GDT is loaded (forever).
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

/// Sets the TSS's `RSP0`: the kernel stack an interrupt or exception taken
/// in ring 3 switches to. Called by the context switch with interrupts off.
pub fn set_kernel_stack(top: u64) {
    debug_assert!(!x86_64::instructions::interrupts::are_enabled());
    // One CPU, interrupts off (I3): no other Rust code touches the TSS
    // meanwhile; the write is in place through a raw pointer (packed).
    let tss = &raw mut TSS;
    // SAFETY: interrupts are off on the only CPU that touches this TSS (I3), so nothing else reads
    // or writes it meanwhile.
    unsafe { (*tss).privilege_stack_table[0] = VirtAddr::new(top) };
}

/// The GDT's selectors, once [`init`] has run.
pub fn selectors() -> Option<&'static Selectors> {
    GDT.get().map(|(_, sel)| sel)
}

/// The top (initial `rsp`) of each IST stack.
fn ist_stack_tops() -> impl Iterator<Item = VirtAddr> {
    let base = (&raw mut IST_STACKS).cast::<IstStack>();
    (0..NR_IST_STACKS).map(move |i| {
        let top = base.wrapping_add(i + 1);
        VirtAddr::from_ptr(top)
    })
}
