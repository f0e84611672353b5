//! The IDT: a handler for every CPU exception, and the place where device
//! interrupt handlers get registered.
//!
//! Every exception vector (0-31, minus the reserved ones) has a gate. `#BP`
//! prints a note and resumes. Every other exception is fatal for now: its
//! handler prints a report on the emergency console (name and vector, the
//! error code decoded where the CPU pushes one, RIP, CS, RFLAGS, RSP, SS, CR2
//! for `#PF`, CR3, a backtrace of the interrupted code) and then ends through
//! `panic::fatal` and its hook. (`#DB`, `#OF` and NMI are resumable in
//! principle; nothing raises them yet.)
//!
//! Vectors 32-255 start empty; later code fills them with
//! [`set_interrupt_handler`], before or after [`init`].
//!
//! # Stacks
//!
//! `#DF`, NMI and `#MC` switch to their own IST stack ([`super::gdt`]): they
//! can strike when the current stack is unusable. `#PF` does not by default
//! ([`PAGE_FAULT_USES_IST`]), as in Linux: an IST gate restarts at the top of
//! its stack on every entry, so a page fault taken inside the page-fault
//! handler, or two tasks both sleeping in it, would overwrite the first one's
//! frame. A page fault that cannot push its frame (a kernel stack overflow)
//! becomes a double fault, which is on the IST.
//!
//! # Fault-report hook
//!
//! The kernel above `arch` knows things a report should say (which thread
//! ran, whether CR2 is a stack's guard page); it installs a
//! [`FaultReportHook`] with [`set_fault_report_hook`], which every fatal
//! report calls after the registers, with CR2 for `#PF` and `#DF` (a `#DF`
//! raised while delivering a `#PF`, such as a kernel stack overflow, leaves
//! the faulting address in CR2).
//!
//! # User mode
//!
//! An exception raised in ring 3 is the process's business, not a kernel
//! bug. The vectors user mode can raise have naked entry stubs
//! (`user_entry!`) that test the interrupted CS: from ring 0 they jump to
//! the `x86-interrupt` handler below with the CPU's frame untouched; from
//! ring 3 they push a whole [`PtRegs`] (Linux's `pt_regs`, the error
//! code in `orig_rax`), hand it to the installed [`UserTrapHook`]
//! ([`set_user_trap_hook`]; the process layer's), which resolves a page
//! fault through the process's `Mm` or sends the exception's signal, run
//! the return-to-user loop (`arch::signal::exit_to_user_mode`: signal
//! delivery may rewrite any register) and leave with IRETQ. Device
//! interrupts that user mode can take (the tick) have the same kind of
//! stub (`user_irq_entry!`, [`set_interrupt_entry`]). `int3` and `into`
//! gates have DPL 3, so user mode may raise them (SIGTRAP, SIGSEGV).
//!
//! # Locking
//!
//! The table lives in a static behind a spinlock, taken only with
//! interrupts off, by [`init`] and [`set_interrupt_handler`]. The CPU reads
//! the table without the lock, so a gate must not be raised until it is set.

use core::arch::naked_asm;
use core::sync::atomic::{AtomicPtr, Ordering};

use x86_64::instructions::interrupts::without_interrupts;
use x86_64::registers::control::{Cr2, Cr3};
use x86_64::registers::rflags::RFlags;
use x86_64::structures::idt::{
    DescriptorTable, HandlerFunc, InterruptDescriptorTable, InterruptStackFrame,
    PageFaultErrorCode, SelectorErrorCode,
};
use x86_64::{PrivilegeLevel, VirtAddr};

use spin::Mutex;

use super::backtrace;
use super::entry::PtRegs;
use super::gdt;
use crate::panic::{self, OneLine, emergency_println};

/// Whether `#PF` switches to its IST stack; see the module docs for why not.
pub const PAGE_FAULT_USES_IST: bool = false;

/// What a fatal report hands to the [`FaultReportHook`].
#[derive(Debug, Clone, Copy)]
pub struct FaultInfo {
    /// The exception vector.
    pub vector: u8,
    /// CR2, for `#PF` and `#DF`.
    pub cr2: Option<u64>,
    /// RIP of the interrupted context.
    pub rip: u64,
    /// RSP of the interrupted context.
    pub rsp: u64,
}

/// Adds to a fatal exception report: prints its own lines (emergency
/// console) and may write a short phrase for the one-line summary. Runs
/// inside the report, interrupts off: it must take no lock and allocate
/// nothing.
pub type FaultReportHook = fn(info: &FaultInfo, summary: &mut dyn core::fmt::Write);

/// The installed hook, type-erased; null means none. Release by
/// [`set_fault_report_hook`], Acquire by the report.
static FAULT_REPORT_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs `hook` into every later fatal exception report.
pub fn set_fault_report_hook(hook: FaultReportHook) {
    FAULT_REPORT_HOOK.store(hook as *mut (), Ordering::Release);
}

/// An exception from user mode: see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct UserTrap {
    pub vector: u8,
    /// The CPU's error code (0 when it pushes none).
    pub error_code: u64,
    /// CR2 for `#PF`, else 0.
    pub cr2: u64,
    pub rip: u64,
    pub rsp: u64,
}

/// Handles a [`UserTrap`] with the user registers: resolves a page fault
/// or sends the exception's signal (the return to user mode then delivers
/// it). Runs on the task's kernel stack with interrupts off; may enable
/// them, returns with them off.
pub type UserTrapHook = fn(&mut PtRegs, &UserTrap);

/// The installed user-trap hook, type-erased; null means none. Release by
/// [`set_user_trap_hook`], Acquire by the handlers.
static USER_TRAP_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the handler of exceptions raised in user mode.
pub fn set_user_trap_hook(hook: UserTrapHook) {
    USER_TRAP_HOOK.store(hook as *mut (), Ordering::Release);
}

/// The Rust half of every user-mode exception entry (`user_entry!`):
/// `regs` is the interrupted user context, its `orig_rax` the CPU's error
/// code (`u64::MAX` for vectors without one). Hands the exception to the
/// hook, then runs the return-to-user loop; the stub leaves with IRETQ.
extern "C" fn user_exception(regs: *mut PtRegs, vector: u64) {
    // SAFETY: the entry stub passes the PtRegs frame it pushed on this
    // task's kernel stack, which nothing else references until it pops it.
    let regs = unsafe { &mut *regs };
    let has_code = matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30);
    let error_code = if has_code { regs.orig_rax } else { 0 };
    regs.orig_rax = super::signal::NO_SYSCALL;
    let cr2 = if vector == 14 { Cr2::read_raw() } else { 0 };
    let trap = UserTrap {
        vector: vector as u8,
        error_code,
        cr2,
        rip: regs.rip,
        rsp: regs.rsp,
    };
    let hook = USER_TRAP_HOOK.load(Ordering::Acquire);
    if hook.is_null() {
        panic!("BUG: user-mode exception {trap:?} without a user-trap hook");
    }
    // SAFETY: the only non-null values stored in USER_TRAP_HOOK are
    // `UserTrapHook`s cast by set_user_trap_hook; on x86_64 function and
    // data pointers have the same size and representation.
    let hook = unsafe { core::mem::transmute::<*mut (), UserTrapHook>(hook) };
    hook(regs, &trap);
    x86_64::instructions::interrupts::disable();
    super::signal::exit_to_user_mode(regs);
}

/// The Rust half of a device interrupt taken in user mode
/// (`user_irq_entry!`): runs the handler's body, then the return-to-user
/// loop (where a preempted task reschedules and signals are delivered).
extern "C" fn user_interrupt(regs: *mut PtRegs, body: extern "C" fn()) {
    // SAFETY: as for `user_exception`.
    let regs = unsafe { &mut *regs };
    body();
    x86_64::instructions::interrupts::disable();
    super::signal::exit_to_user_mode(regs);
}

/// The general registers, pushed in [`PtRegs`] order (after `orig_rax`),
/// then `rbp` = 0 (backtraces end here) and `rdi` = the frame.
macro_rules! push_regs {
    () => {
        "push rdi\npush rsi\npush rdx\npush rcx\npush rax\npush r8\npush r9\npush r10\n\
         push r11\npush rbx\npush rbp\npush r12\npush r13\npush r14\npush r15\n\
         xor ebp, ebp\nmov rdi, rsp"
    };
}

/// Defines the gate entry of an exception vector: from ring 0 it jumps to
/// the `x86-interrupt` handler `$kernel` (the frame untouched); from ring
/// 3 it pushes a [`PtRegs`] (the CPU's error code, or -1, in `orig_rax`),
/// calls [`user_exception`] and leaves through
/// `entry::return_to_user_iret`.
macro_rules! user_entry {
    ($stub:ident, $kernel:ident, $vector:literal) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $stub() {
            naked_asm!(
                "test byte ptr [rsp + 8], 3",
                "jz {kernel}",
                "push -1",
                push_regs!(),
                "mov esi, {vector}",
                "jmp {common}",
                kernel = sym $kernel,
                vector = const $vector,
                common = sym user_exception_common,
            )
        }
    };
    ($stub:ident, $kernel:ident, $vector:literal, error_code) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $stub() {
            naked_asm!(
                "test byte ptr [rsp + 16], 3",
                "jz {kernel}",
                push_regs!(),
                "mov esi, {vector}",
                "jmp {common}",
                kernel = sym $kernel,
                vector = const $vector,
                common = sym user_exception_common,
            )
        }
    };
}

/// The shared tail of `user_entry!`: `rdi` = the frame, `esi` = the
/// vector. 21 words sit on the 16-aligned entry stack top: realign for
/// the call.
#[unsafe(naked)]
unsafe extern "C" fn user_exception_common() {
    naked_asm!(
        "sub rsp, 8",
        "call {handler}",
        "add rsp, 8",
        "jmp {iret}",
        handler = sym user_exception,
        iret = sym super::entry::return_to_user_iret,
    )
}

/// Defines the gate entry of a device interrupt: from ring 0 the
/// `x86-interrupt` handler `$kernel`; from ring 3 a [`PtRegs`] frame,
/// `$body` (an `extern "C" fn()` doing the handler's work) through
/// `user_interrupt`, then the IRETQ return. Install it with
/// [`set_interrupt_entry`].
#[macro_export]
macro_rules! user_irq_entry {
    ($stub:ident, $kernel:path, $body:path) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $stub() {
            core::arch::naked_asm!(
                "test byte ptr [rsp + 8], 3",
                "jz {kernel}",
                "push -1",
                "push rdi\npush rsi\npush rdx\npush rcx\npush rax\npush r8\npush r9\n\
                 push r10\npush r11\npush rbx\npush rbp\npush r12\npush r13\npush r14\n\
                 push r15\nxor ebp, ebp\nmov rdi, rsp",
                "lea rsi, [rip + {body}]",
                "jmp {common}",
                kernel = sym $kernel,
                body = sym $body,
                common = sym $crate::arch::idt::user_interrupt_common,
            )
        }
    };
}

/// The shared tail of `user_irq_entry!`: `rdi` = the frame, `rsi` = the
/// body.
///
/// # Safety
///
/// Only jumped to by a `user_irq_entry!` stub, with the frame it pushed.
#[unsafe(naked)]
pub unsafe extern "C" fn user_interrupt_common() {
    naked_asm!(
        "sub rsp, 8",
        "call {handler}",
        "add rsp, 8",
        "jmp {iret}",
        handler = sym user_interrupt,
        iret = sym super::entry::return_to_user_iret,
    )
}

user_entry!(divide_error_entry, divide_error, 0);
user_entry!(debug_entry, debug, 1);
user_entry!(breakpoint_entry, breakpoint, 3);
user_entry!(overflow_entry, overflow, 4);
user_entry!(bound_range_entry, bound_range_exceeded, 5);
user_entry!(invalid_opcode_entry, invalid_opcode, 6);
user_entry!(device_not_available_entry, device_not_available, 7);
user_entry!(invalid_tss_entry, invalid_tss, 10, error_code);
user_entry!(
    segment_not_present_entry,
    segment_not_present,
    11,
    error_code
);
user_entry!(stack_segment_entry, stack_segment_fault, 12, error_code);
user_entry!(
    general_protection_entry,
    general_protection_fault,
    13,
    error_code
);
user_entry!(page_fault_entry, page_fault, 14, error_code);
user_entry!(x87_floating_point_entry, x87_floating_point, 16);
user_entry!(alignment_check_entry, alignment_check, 17, error_code);
user_entry!(simd_floating_point_entry, simd_floating_point, 19);

/// The IDT. The CPU holds its address from [`init`] on: it must never move.
static IDT: Mutex<InterruptDescriptorTable> = Mutex::new(InterruptDescriptorTable::new());

/// Fills the exception gates and loads the IDT. Call once, after
/// [`gdt::init`], whose TSS provides the IST stacks.
pub fn init() {
    without_interrupts(|| {
        let mut idt = IDT.lock();
        set_exception_gates(&mut idt);
        // SAFETY: the table is in a static, so it never moves nor is dropped
        // while loaded; it changes only under the lock, one gate at a time
        // with interrupts off, and gates are set before they can be raised.
        unsafe { idt.load_unsafe() };
    });
}

/// Loads the IDT [`init`] filled into this AP's IDTR: every CPU shares the
/// one table (its gates name IST slots, which each CPU's own TSS fills).
/// Call once per AP, after its `gdt::init_ap`.
pub fn load_ap() {
    without_interrupts(|| {
        let idt = IDT.lock();
        // SAFETY: as in `init`: the table is a static that never moves and
        // stays loaded for good; gates change only under the lock.
        unsafe { idt.load_unsafe() };
    });
}

/// Installs the naked entry `stub` (made by `user_irq_entry!`) as the
/// gate of device-interrupt `vector` (32..=255).
pub fn set_interrupt_entry(vector: u8, stub: unsafe extern "C" fn()) {
    assert!(vector >= 32, "vector {vector} is a CPU exception");
    without_interrupts(|| {
        // SAFETY: `stub` comes from user_irq_entry!, a valid interrupt
        // entry without an error code (see there).
        unsafe {
            IDT.lock()[vector].set_handler_addr(VirtAddr::new(stub as usize as u64));
        }
    });
}

/// Installs `handler` as the gate of device-interrupt or IPI `vector`
/// (32..=255). The vector must not be raised before this returns.
pub fn set_interrupt_handler(vector: u8, handler: HandlerFunc) {
    assert!(vector >= 32, "vector {vector} is a CPU exception");
    without_interrupts(|| {
        IDT.lock()[vector].set_handler_fn(handler);
    });
}

fn set_exception_gates(idt: &mut InterruptDescriptorTable) {
    idt.virtualization.set_handler_fn(virtualization);
    idt.cp_protection_exception
        .set_handler_fn(control_protection);
    idt.hv_injection_exception.set_handler_fn(hv_injection);
    idt.vmm_communication_exception
        .set_handler_fn(vmm_communication);
    idt.security_exception.set_handler_fn(security_exception);
    // The vectors user mode can raise: entries that build a PtRegs from
    // ring 3 (signals need the whole user context) and jump to the
    // x86-interrupt handler from ring 0.
    let addr = |f: unsafe extern "C" fn()| VirtAddr::new(f as usize as u64);
    // SAFETY: each stub is a naked entry that keeps the CPU's frame as an
    // x86-interrupt handler expects it (ring 0: it jumps to one without
    // touching the stack) or returns with IRETQ after restoring every
    // register it pushed (ring 3), so it is a valid gate of its vector,
    // with or without an error code as declared in `user_entry!`. int3
    // and into are allowed from ring 3 (DPL 3), as on Linux.
    unsafe {
        idt.divide_error.set_handler_addr(addr(divide_error_entry));
        idt.debug.set_handler_addr(addr(debug_entry));
        idt.breakpoint
            .set_handler_addr(addr(breakpoint_entry))
            .set_privilege_level(PrivilegeLevel::Ring3);
        idt.overflow
            .set_handler_addr(addr(overflow_entry))
            .set_privilege_level(PrivilegeLevel::Ring3);
        idt.bound_range_exceeded
            .set_handler_addr(addr(bound_range_entry));
        idt.invalid_opcode
            .set_handler_addr(addr(invalid_opcode_entry));
        idt.device_not_available
            .set_handler_addr(addr(device_not_available_entry));
        idt.invalid_tss.set_handler_addr(addr(invalid_tss_entry));
        idt.segment_not_present
            .set_handler_addr(addr(segment_not_present_entry));
        idt.stack_segment_fault
            .set_handler_addr(addr(stack_segment_entry));
        idt.general_protection_fault
            .set_handler_addr(addr(general_protection_entry));
        idt.x87_floating_point
            .set_handler_addr(addr(x87_floating_point_entry));
        idt.alignment_check
            .set_handler_addr(addr(alignment_check_entry));
        idt.simd_floating_point
            .set_handler_addr(addr(simd_floating_point_entry));
    }
    // SAFETY: as above, for the page-fault stub.
    let page_fault_gate = unsafe { idt.page_fault.set_handler_addr(addr(page_fault_entry)) };
    // SAFETY: each index names an IST slot that gdt::init filled with a stack
    // of its own, used by no other gate and by no code (gdt I1).
    unsafe {
        idt.double_fault
            .set_handler_fn(double_fault)
            .set_stack_index(gdt::DOUBLE_FAULT_IST);
        idt.non_maskable_interrupt
            .set_handler_fn(non_maskable_interrupt)
            .set_stack_index(gdt::NMI_IST);
        idt.machine_check
            .set_handler_fn(machine_check)
            .set_stack_index(gdt::MACHINE_CHECK_IST);
        if PAGE_FAULT_USES_IST {
            page_fault_gate.set_stack_index(gdt::PAGE_FAULT_IST);
        }
    }
}

/// What the CPU pushed as error code, by the kind of exception.
#[derive(Clone, Copy)]
enum ErrorCode {
    None,
    Plain(u64),
    Selector(u64),
    PageFault(PageFaultErrorCode),
}

/// The frame record (`rbp`) of the context an exception interrupted: the one
/// the handler's prologue pushed. Must be expanded inside the handler itself.
macro_rules! interrupted_rbp {
    () => {{
        let rbp = backtrace::frame_pointer() as *const u64;
        // SAFETY: rbp is this handler's own frame record (frame pointers are
        // forced on), whose first word is the rbp its prologue pushed, that is
        // the interrupted context's; the CPU does not change rbp on entry.
        unsafe { rbp.read() }
    }};
}

/// Defines an `extern "x86-interrupt"` handler that reports a fatal exception.
macro_rules! fatal_handler {
    ($fn:ident, $vector:literal, $name:literal) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame) {
            fatal_exception($vector, $name, &frame, ErrorCode::None, interrupted_rbp!())
        }
    };
    ($fn:ident, $vector:literal, $name:literal, diverging) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame) -> ! {
            fatal_exception($vector, $name, &frame, ErrorCode::None, interrupted_rbp!())
        }
    };
    ($fn:ident, $vector:literal, $name:literal, $kind:ident) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame, code: u64) {
            fatal_exception(
                $vector,
                $name,
                &frame,
                ErrorCode::$kind(code),
                interrupted_rbp!(),
            )
        }
    };
    ($fn:ident, $vector:literal, $name:literal, $kind:ident, diverging) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame, code: u64) -> ! {
            fatal_exception(
                $vector,
                $name,
                &frame,
                ErrorCode::$kind(code),
                interrupted_rbp!(),
            )
        }
    };
}

fatal_handler!(divide_error, 0, "#DE divide error");
fatal_handler!(debug, 1, "#DB debug");
fatal_handler!(non_maskable_interrupt, 2, "NMI non-maskable interrupt");
fatal_handler!(overflow, 4, "#OF overflow");
fatal_handler!(bound_range_exceeded, 5, "#BR bound range exceeded");
fatal_handler!(invalid_opcode, 6, "#UD invalid opcode");
fatal_handler!(device_not_available, 7, "#NM device not available");
fatal_handler!(double_fault, 8, "#DF double fault", Plain, diverging);
fatal_handler!(invalid_tss, 10, "#TS invalid TSS", Selector);
fatal_handler!(segment_not_present, 11, "#NP segment not present", Selector);
fatal_handler!(stack_segment_fault, 12, "#SS stack-segment fault", Selector);
fatal_handler!(
    general_protection_fault,
    13,
    "#GP general protection",
    Selector
);
fatal_handler!(x87_floating_point, 16, "#MF x87 floating point");
fatal_handler!(alignment_check, 17, "#AC alignment check", Plain);
fatal_handler!(machine_check, 18, "#MC machine check", diverging);
fatal_handler!(simd_floating_point, 19, "#XM SIMD floating point");
fatal_handler!(virtualization, 20, "#VE virtualization");
fatal_handler!(control_protection, 21, "#CP control protection", Plain);
fatal_handler!(hv_injection, 28, "#HV hypervisor injection");
fatal_handler!(vmm_communication, 29, "#VC VMM communication", Plain);
fatal_handler!(security_exception, 30, "#SX security exception", Plain);

/// A `#PF` in kernel mode: a user-access instruction's fault is resolved
/// or fixed up ([`super::uaccess`]); any other is fatal.
extern "x86-interrupt" fn page_fault(mut frame: InterruptStackFrame, code: PageFaultErrorCode) {
    let cr2 = Cr2::read_raw();
    if let Some(fixup) = super::uaccess::fixup(frame.instruction_pointer.as_u64()) {
        // A not-present or write-protection fault on a user address may be
        // resolved (demand paging, CoW); a read of a present page or a
        // reserved-bit fault cannot be, and is EFAULT at once.
        let resolvable = cr2 < mm::pgtable::TASK_SIZE
            && !code.contains(PageFaultErrorCode::MALFORMED_TABLE)
            && (code.contains(PageFaultErrorCode::CAUSED_BY_WRITE)
                || !code.contains(PageFaultErrorCode::PROTECTION_VIOLATION));
        if resolvable {
            let write = code.contains(PageFaultErrorCode::CAUSED_BY_WRITE);
            // The copy ran with interrupts on (uaccess Context): so does
            // its fault, which may sleep.
            let irqs = frame.cpu_flags.contains(RFlags::INTERRUPT_FLAG);
            if irqs {
                x86_64::instructions::interrupts::enable();
            }
            let retry = super::uaccess::resolve(cr2, write);
            x86_64::instructions::interrupts::disable();
            if retry {
                return;
            }
        }
        // SAFETY: the frame is this exception's own, on this stack; the new
        // RIP is the fix-up of the instruction that faulted (same code
        // segment, same stack), and clearing AC ends the copy's SMAP
        // window (uaccess invariant U2).
        unsafe {
            frame.as_mut().update(|f| {
                f.instruction_pointer = VirtAddr::new(fixup);
                f.cpu_flags.remove(RFlags::ALIGNMENT_CHECK);
            });
        }
        return;
    }
    fatal_exception(
        14,
        "#PF page fault",
        &frame,
        ErrorCode::PageFault(code),
        interrupted_rbp!(),
    )
}

/// `#BP` (`int3`) is a trap: note it and resume after the instruction.
extern "x86-interrupt" fn breakpoint(frame: InterruptStackFrame) {
    emergency_println!(
        "#BP breakpoint at RIP {:#x}; resuming",
        frame.instruction_pointer.as_u64()
    );
}

/// Reports a fatal exception (see the module docs) and ends the kernel.
#[cold]
fn fatal_exception(
    vector: u8,
    name: &str,
    frame: &InterruptStackFrame,
    code: ErrorCode,
    interrupted_rbp: u64,
) -> ! {
    if !panic::begin_fatal() {
        panic::fatal_recursive(name);
    }
    let rip = frame.instruction_pointer.as_u64();
    let rsp = frame.stack_pointer.as_u64();
    emergency_println!("\n!!! CPU EXCEPTION {name} (vector {vector})");
    match code {
        ErrorCode::None => {}
        ErrorCode::Plain(code) => emergency_println!("    error code {code:#x}"),
        ErrorCode::Selector(0) => emergency_println!("    error code 0x0 (no selector)"),
        ErrorCode::Selector(code) => {
            let sel = SelectorErrorCode::new_truncate(code);
            let table = match sel.descriptor_table() {
                DescriptorTable::Gdt => "GDT",
                DescriptorTable::Idt => "IDT",
                DescriptorTable::Ldt => "LDT",
            };
            let ext = if sel.external() {
                ", external event"
            } else {
                ""
            };
            emergency_println!(
                "    error code {code:#x} (selector: {table} index {}{ext})",
                sel.index()
            );
        }
        ErrorCode::PageFault(code) => {
            let mut flags = OneLine::<96>::new();
            describe_page_fault(code, &mut flags);
            emergency_println!("    error code {:#x} ({})", code.bits(), flags.as_str());
            emergency_println!("    CR2    {:#018x}  (faulting address)", Cr2::read_raw());
        }
    }
    emergency_println!(
        "    RIP    {rip:#018x}  CS {:#06x}  RFLAGS {:#x}",
        frame.code_segment.0,
        frame.cpu_flags.bits()
    );
    emergency_println!("    RSP    {rsp:#018x}  SS {:#06x}", frame.stack_segment.0);
    let (cr3_frame, cr3_low) = Cr3::read_raw();
    emergency_println!(
        "    CR3    {:#018x}",
        cr3_frame.start_address().as_u64() | u64::from(cr3_low)
    );
    let cr2 = matches!(vector, 8 | 14).then(Cr2::read_raw);
    if let (8, Some(cr2)) = (vector, cr2) {
        emergency_println!("    CR2    {cr2:#018x}  (last page-fault address)");
    }
    let mut extra = OneLine::<112>::new();
    let hook = FAULT_REPORT_HOOK.load(Ordering::Acquire);
    if !hook.is_null() {
        // SAFETY: the only non-null values ever stored in FAULT_REPORT_HOOK
        // are `FaultReportHook`s cast by set_fault_report_hook, and on x86_64
        // function and data pointers have the same size and representation.
        let hook = unsafe { core::mem::transmute::<*mut (), FaultReportHook>(hook) };
        let info = FaultInfo {
            vector,
            cr2,
            rip,
            rsp,
        };
        hook(&info, &mut extra);
    }
    if frame.code_segment.rpl() == PrivilegeLevel::Ring0 {
        // SAFETY: the exception came from ring 0, so rsp is the interrupted
        // kernel stack pointer and interrupted_rbp its frame record (or 0).
        unsafe { backtrace::print(Some(rip), interrupted_rbp, rsp) };
    } else {
        emergency_println!("    (from user mode: no kernel backtrace)");
    }

    let mut summary = OneLine::<256>::new();
    summary.push_str(name);
    let _ = core::fmt::write(&mut summary, format_args!(" at RIP {rip:#x}"));
    if let Some(cr2) = cr2 {
        let _ = core::fmt::write(&mut summary, format_args!(", CR2 {cr2:#x}"));
    }
    if !extra.as_str().is_empty() {
        summary.push_str(": ");
        summary.push_str(extra.as_str());
    }
    panic::fatal(summary.as_str())
}

/// Spells out a page-fault error code: "not-present read kernel", ...
fn describe_page_fault(code: PageFaultErrorCode, out: &mut OneLine<96>) {
    let has = |flag| code.contains(flag);
    out.push_str(if has(PageFaultErrorCode::PROTECTION_VIOLATION) {
        "P=1 protection"
    } else {
        "P=0 not-present"
    });
    out.push_str(if has(PageFaultErrorCode::CAUSED_BY_WRITE) {
        ", W=1 write"
    } else {
        ", W=0 read"
    });
    out.push_str(if has(PageFaultErrorCode::USER_MODE) {
        ", U=1 user"
    } else {
        ", U=0 kernel"
    });
    for (flag, text) in [
        (
            PageFaultErrorCode::MALFORMED_TABLE,
            ", RSVD=1 reserved bit set",
        ),
        (
            PageFaultErrorCode::INSTRUCTION_FETCH,
            ", I=1 instruction fetch",
        ),
        (PageFaultErrorCode::PROTECTION_KEY, ", PK=1 protection key"),
        (PageFaultErrorCode::SHADOW_STACK, ", SS=1 shadow stack"),
    ] {
        if has(flag) {
            out.push_str(text);
        }
    }
}
