//! Ring 3: the CPU features that guard the kernel from user mode, the
//! `SYSCALL`/`SYSRET` entry (Linux's `arch/x86/entry/entry_64.S`), the first
//! entry into user mode, and the per-task switch of CR3 and kernel stack.
//!
//! # Entry
//!
//! `SYSCALL` loads RIP from `LSTAR`, CS/SS from `STAR`, saves the user RIP
//! in `rcx` and RFLAGS in `r11`, and clears the RFLAGS bits in `FMASK`
//! (IF among them: entry starts with interrupts off). [`syscall_entry`]
//! saves the user `rsp` in a per-CPU scratch word, switches to the running
//! task's kernel stack (`percpu::top_of_stack`, kept equal to the TSS's
//! `RSP0` by [`switch_mm`]) and pushes a [`PtRegs`] frame, exactly Linux's
//! `struct pt_regs`:
//!
//! ```text
//!   top of kernel stack
//!   ss=0x1b  rsp  rflags(r11)  cs=0x23  rip(rcx)      (an iret frame)
//!   orig_rax
//!   rdi rsi rdx rcx rax r8 r9 r10 r11 rbx rbp r12 r13 r14 r15   <- PtRegs
//! ```
//!
//! then calls `crate::syscall::do_syscall_64(&mut PtRegs)`, which enables
//! interrupts while it works, runs the return-to-user loop (signals:
//! `arch::signal::exit_to_user_mode`) and disables them before it
//! returns. The return path restores every register, the user `rax` as
//! the dispatcher left it, and leaves with `SYSRETQ` (`rcx` = RIP, `r11`
//! = RFLAGS) when the frame allows it (`arch::signal::can_sysret`), else
//! with `IRETQ` ([`return_to_user_iret`]: after a signal frame was set up
//! or a sigreturn restored `rcx` and `r11`).
//!
//! # GS
//!
//! The kernel's per-CPU base stays in `GS_BASE` in user mode too: there is
//! no `swapgs` yet, since no syscall lets a program set its own GS base
//! (`arch_prctl` comes later) and the per-CPU record is a supervisor page,
//! so a `gs:` access from ring 3 faults. Interrupt and exception handlers
//! therefore find the per-CPU data whatever mode they interrupted.
//!
//! # Protections
//!
//! [`init`] sets EFER.NXE (no-execute PTE bit) and EFER.SCE (`SYSCALL`),
//! CR4.SMEP (the kernel never executes a user page) and CR4.SMAP (the kernel
//! never touches a user page by its user address) where the CPU has them.
//! The kernel touches user memory by its user address in one place, the
//! `rep movs` of [`super::uaccess`], inside a `stac`/`clac` window.
//!
//! # Invariants
//!
//! - E1: while a task runs, CR3 holds its PGD (the boot PGD for kernel
//!   threads), `RSP0` and `percpu::top_of_stack` its kernel stack top; both
//!   are set by [`switch_mm`] with interrupts off.
//! - E2: a task in user mode has nothing live on its kernel stack below
//!   the frame [`run_user`] saved: entries from ring 3 start there (the
//!   task's user-entry stack top), and [`exit_to_kernel`] returns to it.

use core::arch::naked_asm;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::control::{Cr3, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

use super::gdt;
use crate::percpu::PerCpu;

/// The user code and data selectors (GDT entries 4 and 3, RPL 3).
pub const USER_CS: u64 = 0x23;
pub const USER_SS: u64 = 0x1b;

/// The registers of a user context on its kernel stack (`struct pt_regs`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PtRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// The syscall number as it came in (`rax` gets the result).
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(core::mem::size_of::<PtRegs>() == 21 * 8);

/// Physical address of the boot PGD: the kernel threads' CR3, and the
/// source of every process PGD's kernel half. Written once by [`init`].
static KERNEL_PGD: AtomicU64 = AtomicU64::new(0);

/// The boot PGD's physical address.
pub fn kernel_pgd() -> u64 {
    KERNEL_PGD.load(Ordering::Relaxed)
}

/// Which protections [`init`] could turn on.
#[derive(Clone, Copy, Debug)]
pub struct Protections {
    pub smep: bool,
    pub smap: bool,
}

/// Enables NX, SMEP and SMAP (where present) and the `SYSCALL` MSRs. Call
/// once on the boot CPU after [`gdt::init`].
pub fn init() -> Protections {
    KERNEL_PGD.store(Cr3::read().0.start_address().as_u64(), Ordering::Relaxed);
    // CPUID leaf 7, subleaf 0: EBX bit 7 SMEP, bit 20 SMAP.
    let ebx = core::arch::x86_64::__cpuid_count(7, 0).ebx;
    let prot = Protections {
        smep: ebx & (1 << 7) != 0,
        smap: ebx & (1 << 20) != 0,
    };
    // SAFETY: 1. NXE and SCE only add features (the bootloader already set
    // NXE). 2. SMEP/SMAP are set only when CPUID reports them; the kernel
    // never executes user pages and touches user addresses only inside
    // uaccess's stac/clac window (module docs). 3. The STAR selectors name
    // this GDT's segments (gdt module table), LSTAR the entry below, FMASK
    // clears IF/TF/DF/AC/NT/IOPL as Linux does, so entry starts with
    // interrupts off.
    unsafe {
        Efer::update(|f| *f |= EferFlags::NO_EXECUTE_ENABLE | EferFlags::SYSTEM_CALL_EXTENSIONS);
        Cr4::update(|f| {
            if prot.smep {
                *f |= Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION;
            }
            if prot.smap {
                *f |= Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION;
            }
        });
    }
    super::uaccess::set_smap(prot.smap);
    syscall_msrs();
    prot
}

/// Sets this CPU's `SYSCALL` MSRs: `STAR` selectors, `LSTAR` entry,
/// `FMASK`. [`init`] on the boot CPU; `smp` on each AP (whose CR0, CR4 and
/// EFER are copies of the boot CPU's).
pub fn syscall_msrs() {
    let sel = gdt::selectors().expect("gdt::init runs first");
    Star::write(
        sel.user_code,
        sel.user_data,
        sel.kernel_code,
        sel.kernel_data,
    )
    .expect("GDT layout fits SYSCALL/SYSRET");
    LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::ALIGNMENT_CHECK
            | RFlags::NESTED_TASK
            | RFlags::IOPL_LOW
            | RFlags::IOPL_HIGH,
    );
}

/// Loads `pgd` (0: the boot PGD) into CR3 if it is not there, and makes
/// `stack_top` the kernel stack for entries from user mode (E1). Interrupts
/// off.
pub fn switch_mm(pgd: u64, stack_top: Option<u64>) {
    debug_assert!(!x86_64::instructions::interrupts::are_enabled());
    let pgd = if pgd == 0 { kernel_pgd() } else { pgd };
    if pgd != 0 && Cr3::read().0.start_address().as_u64() != pgd {
        let (_, flags) = Cr3::read();
        // SAFETY: `pgd` is the boot PGD or a process PGD whose kernel half
        // is the boot PGD's (process I1), so the running kernel code, its
        // stack and data stay mapped across the switch.
        unsafe { Cr3::write(PhysFrame::containing_address(PhysAddr::new(pgd)), flags) };
    }
    if let Some(top) = stack_top {
        gdt::set_kernel_stack(top);
        crate::percpu::this_cpu()
            .top_of_stack
            .store(top, Ordering::Relaxed);
    }
}

/// Loads `base` into the `FS_BASE` MSR (the user's thread pointer; the
/// kernel does not use FS). The caller checked that `base` is canonical.
pub fn load_fs_base(base: u64) {
    x86_64::registers::model_specific::FsBase::write(VirtAddr::new_truncate(base));
}

/// Runs the current task in user mode from `rip` with stack `rsp` (all
/// other registers zero, interrupts on) until [`exit_to_kernel`] ends it;
/// returns the value passed there (`start_thread` + the return to user,
/// and the way back at exit). The caller's frames stay intact: entries from
/// user mode start below this function's frame, whose address becomes the
/// task's user-entry stack top (E2).
///
/// # Safety
///
/// CR3 holds the current task's process PGD, `rip` and `rsp` are below
/// `TASK_SIZE` (a bad address only faults in user mode), no lock is held
/// and preemption is enabled.
#[unsafe(naked)]
pub unsafe extern "sysv64" fn run_user(rip: u64, rsp: u64) -> u64 {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "sub rsp, 8",
        "mov r12, rdi",
        "mov r13, rsi",
        "mov rdi, rsp",
        "call {prepare}",
        "cli",
        "push {ss}",
        "push r13",
        "push 0x202",
        "push {cs}",
        "push r12",
        "xor eax, eax",
        "xor ebx, ebx",
        "xor ecx, ecx",
        "xor edx, edx",
        "xor esi, esi",
        "xor edi, edi",
        "xor ebp, ebp",
        "xor r8d, r8d",
        "xor r9d, r9d",
        "xor r10d, r10d",
        "xor r11d, r11d",
        "xor r12d, r12d",
        "xor r13d, r13d",
        "xor r14d, r14d",
        "xor r15d, r15d",
        "iretq",
        prepare = sym run_user_prepare,
        ss = const USER_SS,
        cs = const USER_CS,
    )
}

/// Like [`run_user`], but enters user mode with every register taken from
/// `regs` (a fork child's copy of its parent's syscall frame: Linux's
/// `ret_from_fork` to user mode). The user RFLAGS keep only the arithmetic
/// flags and DF; IF is set; CS and SS are the user selectors whatever
/// `regs` says. Returns as [`run_user`] does.
///
/// # Safety
///
/// As [`run_user`], for `regs.rip` and `regs.rsp`; `regs` points at a
/// frame that stays valid until this function has entered user mode.
#[unsafe(naked)]
pub unsafe extern "sysv64" fn run_user_regs(regs: *const PtRegs) -> u64 {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "sub rsp, 8",
        "mov r12, rdi",
        "mov rdi, rsp",
        "call {prepare}",
        "cli",
        "push {ss}",
        "push qword ptr [r12 + {rsp}]",
        "mov rax, [r12 + {rflags}]",
        "and rax, {flags_mask}",
        "or rax, 0x202",
        "push rax",
        "push {cs}",
        "push qword ptr [r12 + {rip}]",
        "mov r15, [r12 + {r15}]",
        "mov r14, [r12 + {r14}]",
        "mov r13, [r12 + {r13}]",
        "mov rbp, [r12 + {rbp}]",
        "mov rbx, [r12 + {rbx}]",
        "mov r11, [r12 + {r11}]",
        "mov r10, [r12 + {r10}]",
        "mov r9, [r12 + {r9}]",
        "mov r8, [r12 + {r8}]",
        "mov rax, [r12 + {rax}]",
        "mov rcx, [r12 + {rcx}]",
        "mov rdx, [r12 + {rdx}]",
        "mov rsi, [r12 + {rsi}]",
        "mov rdi, [r12 + {rdi}]",
        "mov r12, [r12 + {r12}]",
        "iretq",
        prepare = sym run_user_prepare,
        ss = const USER_SS,
        cs = const USER_CS,
        // CF, PF, AF, ZF, SF, DF, OF.
        flags_mask = const 0xcd5,
        rsp = const offset_of!(PtRegs, rsp),
        rflags = const offset_of!(PtRegs, rflags),
        rip = const offset_of!(PtRegs, rip),
        r15 = const offset_of!(PtRegs, r15),
        r14 = const offset_of!(PtRegs, r14),
        r13 = const offset_of!(PtRegs, r13),
        r12 = const offset_of!(PtRegs, r12),
        rbp = const offset_of!(PtRegs, rbp),
        rbx = const offset_of!(PtRegs, rbx),
        r11 = const offset_of!(PtRegs, r11),
        r10 = const offset_of!(PtRegs, r10),
        r9 = const offset_of!(PtRegs, r9),
        r8 = const offset_of!(PtRegs, r8),
        rax = const offset_of!(PtRegs, rax),
        rcx = const offset_of!(PtRegs, rcx),
        rdx = const offset_of!(PtRegs, rdx),
        rsi = const offset_of!(PtRegs, rsi),
        rdi = const offset_of!(PtRegs, rdi),
    )
}

/// Makes `resume_sp` (16-aligned, [`run_user`]'s saved frame) the task's
/// user-entry stack top, now and at every later switch to it (E1).
extern "sysv64" fn run_user_prepare(resume_sp: u64) {
    debug_assert!(resume_sp.is_multiple_of(16));
    x86_64::instructions::interrupts::disable();
    crate::sched::set_user_entry_top(resume_sp);
}

/// Leaves user mode for good: unwinds the kernel stack to the frame
/// [`run_user`] saved and returns `value` from it. Called from a syscall
/// or a user trap of the task; what the abandoned frames own leaks, so
/// callers drop their values first.
pub fn exit_to_kernel(value: u64) -> ! {
    x86_64::instructions::interrupts::disable();
    let top = crate::sched::with_current(|t| t.user_entry_top());
    assert!(top != 0, "BUG: exit_to_kernel outside run_user");
    // SAFETY: `top` is the frame run_user saved on this task's stack
    // (run_user_prepare), above every frame of the current syscall or
    // trap (E2); popping it resumes run_user's caller with the callee-saved
    // registers it had, as a normal return with rax = value.
    unsafe {
        core::arch::asm!(
            "mov rsp, {top}",
            "add rsp, 8",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbx",
            "pop rbp",
            "ret",
            top = in(reg) top,
            in("rax") value,
            options(noreturn),
        )
    }
}

/// The `SYSCALL` entry point (`entry_SYSCALL_64`); see the module docs.
#[unsafe(naked)]
unsafe extern "C" fn syscall_entry() {
    naked_asm!(
        "mov gs:[{usp}], rsp",
        "mov rsp, gs:[{tos}]",
        "push {ss}",
        "push qword ptr gs:[{usp}]",
        "push r11",
        "push {cs}",
        "push rcx",
        "push rax",
        "push rdi",
        "push rsi",
        "push rdx",
        "push rcx",
        "push rax",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        // rbp = 0 ends kernel backtraces at the entry frame.
        "xor ebp, ebp",
        "mov rdi, rsp",
        // 21 words pushed from a 16-aligned top: realign for the call.
        "sub rsp, 8",
        "call {dispatch}",
        "add rsp, 8",
        // al = 0: the frame cannot leave through SYSRET (a signal handler
        // or sigreturn rewrote it): restore everything and IRETQ.
        "test al, al",
        "jz {iret}",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rax",
        "pop rcx",
        "pop rdx",
        "pop rsi",
        "pop rdi",
        "add rsp, 8",
        "pop rcx",
        "add rsp, 8",
        "pop r11",
        "pop rsp",
        "sysretq",
        usp = const offset_of!(PerCpu, user_sp_scratch),
        tos = const offset_of!(PerCpu, top_of_stack),
        ss = const USER_SS,
        cs = const USER_CS,
        dispatch = sym crate::syscall::do_syscall_64,
        iret = sym return_to_user_iret,
    )
}

/// Leaves for user mode with every register of the [`PtRegs`] at `rsp`
/// (Linux's `swapgs_restore_regs_and_return_to_usermode`): the IRETQ
/// return of exceptions and interrupts from ring 3, and of system calls
/// whose frame `SYSRET` cannot restore. Jumped to with interrupts off and
/// `rsp` at the frame's `r15`; the frame's CS and SS are the user's.
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn return_to_user_iret() {
    naked_asm!(
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rax",
        "pop rcx",
        "pop rdx",
        "pop rsi",
        "pop rdi",
        // orig_rax (or the error code).
        "add rsp, 8",
        "iretq",
    )
}
