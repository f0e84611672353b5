//! Signal delivery on x86_64 (Linux's `arch/x86/kernel/signal.c`,
//! `signal_64.c` and the exit half of `kernel/entry/common.c`): the loop
//! every return to user mode runs, the `rt_sigframe` a handler runs on,
//! `rt_sigreturn`, and the restart rules of interrupted system calls.
//!
//! # The return to user mode ([`exit_to_user_mode`])
//!
//! Every entry from ring 3 (`SYSCALL`, an exception, an interrupt) ends
//! here with the user registers in a [`PtRegs`] on the kernel stack:
//! reschedule if asked; then, while the task's pending flag is set, act on
//! one signal ([`signal::get_signal`]): die of it, stop, or rewrite `regs` so that
//! the return enters the handler on a new frame. A fatal signal (SIGKILL,
//! a default action, `exit_group` of a dying process) ends the process
//! here, the one place the kernel leaves user mode for good on a signal.
//!
//! # The frame ([`setup_rt_frame`])
//!
//! ```text
//!   user stack (or the alternate stack with SA_ONSTACK)
//!   old rsp - 128              red zone skipped
//!   fpstate (64-aligned)       512-byte FXSAVE image; sigcontext.fpstate
//!   ...                        padding
//!   rt_sigframe:  +0   pretcode (sa_restorer)   <- rsp at handler entry,
//!                 +8   ucontext (304 bytes):       16n + 8 as after a call
//!                        uc_flags, uc_link, uc_stack (24),
//!                        uc_mcontext = sigcontext (256), uc_sigmask (8)
//!                 +312 siginfo (128 bytes)
//! ```
//!
//! The handler starts with `rdi` = the signal, `rsi` = &siginfo, `rdx` =
//! &ucontext, `rax` = 0, DF/TF/RF clear and the FPU in its initial state;
//! its `ret` pops `pretcode`, whose `rt_sigreturn` finds the frame at
//! `rsp - 8` ([`sys_rt_sigreturn`]) and restores every register, the FPU
//! and the mask.
//!
//! # Restarts
//!
//! A system call interrupted by a signal returns one of the `ERESTART*`
//! codes (`process::signal`); with a handler: `ERESTARTNOHAND` and
//! `ERESTART_RESTARTBLOCK` give `EINTR`, `ERESTARTSYS` gives `EINTR` or,
//! with `SA_RESTART`, restarts like `ERESTARTNOINTR`: `rax` = the call's
//! number and `rip` back over the 2-byte `syscall`. Without a handler
//! (the signal was ignored, or stopped and continued), every code
//! restarts, `ERESTART_RESTARTBLOCK` through `restart_syscall`.
#![forbid(unsafe_code)]

use alloc::sync::Arc;

use mm::errno::Errno;

use super::entry::{PtRegs, USER_CS, USER_SS};
use super::fpu::FxArea;
use crate::percpu;
use crate::process::signal::{
    self, ERESTART_RESTARTBLOCK, ERESTARTNOHAND, ERESTARTNOINTR, ERESTARTSYS, GetSignal, KSignal,
    SA_NODEFER, SA_ONSTACK, SA_RESTART, SIGSEGV, SS_AUTODISARM, SigInfo,
};
use crate::process::thread::{self, Thread};
use crate::process::{self, ExitStatus, Process};
use crate::sched;
use crate::uaccess::{copy_from_user, copy_to_user, le64};

/// `orig_rax` of a frame that is not a system call's.
pub const NO_SYSCALL: u64 = u64::MAX;

/// `restart_syscall`'s number.
const NR_RESTART_SYSCALL: u64 = 219;

/// `sizeof(struct rt_sigframe)` and the offsets in it.
const FRAME_BYTES: u64 = 8 + UC_BYTES + 128;
const UC_BYTES: u64 = 304;
const UC_OFF: u64 = 8;
const INFO_OFF: u64 = UC_OFF + UC_BYTES;
/// Offsets in the ucontext.
const UC_STACK: usize = 16;
const UC_MCONTEXT: usize = 40;
const UC_SIGMASK: usize = 296;
/// `uc_flags`: `UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS` (no XSAVE
/// state, so no `UC_FP_XSTATE`).
const UC_FLAGS: u64 = 0x2 | 0x4;

/// The RFLAGS bits `rt_sigreturn` takes from the frame (Linux's
/// `FIX_EFLAGS`: AC, OF, DF, TF, SF, ZF, AF, PF, CF, RF).
const FIX_EFLAGS: u64 =
    0x4_0000 | 0x800 | 0x400 | 0x100 | 0x80 | 0x40 | 0x10 | 0x4 | 0x1 | 0x1_0000;
/// TF, DF and RF: cleared on the way into a handler.
const HANDLER_CLEARS: u64 = 0x100 | 0x400 | 0x1_0000;

/// The last fault of a thread, as the sigcontext reports it (Linux's
/// `thread.trap_nr`, `error_code`, `cr2`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    pub trapno: u64,
    pub error_code: u64,
    pub cr2: u64,
}

/// Whether `addr` is a canonical lower-half address that `SYSRET` may
/// return to (Linux's check against `TASK_SIZE_MAX`, which also avoids
/// the Intel `SYSRET` erratum at the top of the lower half).
pub fn sysret_rip_ok(rip: u64) -> bool {
    rip < 0x7fff_ffff_f000
}

/// Whether `regs` can leave through `SYSRET` (`rcx` = RIP, `r11` =
/// RFLAGS, a lower-half RIP, neither RF nor TF set) rather than `IRETQ`
/// (Linux's `do_syscall_64` return-path choice).
pub fn can_sysret(regs: &PtRegs) -> bool {
    regs.rcx == regs.rip
        && regs.r11 == regs.rflags
        && sysret_rip_ok(regs.rip)
        && regs.rflags & (0x1_0000 | 0x100) == 0
        && regs.cs == USER_CS
        && regs.ss == USER_SS
}

/// The loop run on every return to user mode; see the module docs.
/// Called with interrupts off; returns with interrupts off.
pub fn exit_to_user_mode(regs: &mut PtRegs) {
    loop {
        let resched = percpu::need_resched();
        let sigpending = sched::with_current(|t| t.sigpending());
        if !resched && !sigpending {
            break;
        }
        x86_64::instructions::interrupts::enable();
        if resched {
            sched::schedule();
        }
        if sigpending {
            match thread::current_thread() {
                Some(t) => do_signal(t, regs),
                None => sched::with_current(|t| t.set_sigpending(false)),
            }
        }
        x86_64::instructions::interrupts::disable();
    }
    // A handler or sigreturn may have asked for a RIP that IRETQ cannot
    // take (non-canonical): the process dies of SIGSEGV, as when Linux's
    // IRET faults.
    if !is_canonical(regs.rip) {
        x86_64::instructions::interrupts::enable();
        if let Some(p) = process::current() {
            p.set_fatal_signal(SIGSEGV);
        }
        drop_and_exit(SIGSEGV);
    }
}

fn is_canonical(addr: u64) -> bool {
    let top = addr >> 47;
    top == 0 || top == 0x1_ffff
}

/// Ends the process, every thread of it, with `sig` (nothing may be live
/// on the stack).
fn drop_and_exit(sig: u32) -> ! {
    thread::do_group_exit(ExitStatus::Signaled(sig))
}

/// Acts on the pending signals (Linux's `arch_do_signal_or_restart`). A
/// thread told to exit (another thread's `exit_group` or `execve`) ends
/// here, alone.
fn do_signal(t: Arc<Thread>, regs: &mut PtRegs) {
    loop {
        if t.is_killed() {
            drop(t);
            process::do_exit(ExitStatus::Signaled(signal::SIGKILL));
        }
        match signal::get_signal(&t) {
            GetSignal::Fatal(sig) => {
                drop(t);
                drop_and_exit(sig);
            }
            GetSignal::Stop(sig) => {
                let notify = signal::take_stop_notify(&t.process);
                signal::do_signal_stop(&t, sig, notify);
                continue;
            }
            GetSignal::Handler(ksig) => {
                handle_signal(&t, ksig, regs);
                return;
            }
            GetSignal::None => break,
        }
    }
    // No handler ran: restart the interrupted call.
    if regs.orig_rax != NO_SYSCALL {
        let err = Errno(-(regs.rax as i64) as i32);
        if err == ERESTARTNOHAND || err == ERESTARTSYS || err == ERESTARTNOINTR {
            regs.rax = regs.orig_rax;
            regs.rip = regs.rip.wrapping_sub(2);
        } else if err == ERESTART_RESTARTBLOCK {
            regs.rax = NR_RESTART_SYSCALL;
            regs.rip = regs.rip.wrapping_sub(2);
        }
    }
    // sigsuspend's saved mask goes back now that no handler will.
    let saved = t.sig.lock().saved_mask.take();
    if let Some(mask) = saved {
        signal::set_blocked(&t, mask);
    }
}

/// Runs `ksig`'s handler on the return (Linux's `handle_signal`).
fn handle_signal(t: &Arc<Thread>, ksig: KSignal, regs: &mut PtRegs) {
    if regs.orig_rax != NO_SYSCALL {
        let err = Errno(-(regs.rax as i64) as i32);
        if err == ERESTART_RESTARTBLOCK || err == ERESTARTNOHAND {
            regs.rax = (-(crate::syscall::EINTR.0 as i64)) as u64;
        } else if err == ERESTARTSYS {
            if ksig.action.flags & SA_RESTART == 0 {
                regs.rax = (-(crate::syscall::EINTR.0 as i64)) as u64;
            } else {
                regs.rax = regs.orig_rax;
                regs.rip = regs.rip.wrapping_sub(2);
            }
        } else if err == ERESTARTNOINTR {
            regs.rax = regs.orig_rax;
            regs.rip = regs.rip.wrapping_sub(2);
        }
    }
    // The mask the handler's sigreturn restores: sigsuspend's saved one
    // if it is waiting, else the current one.
    let (oldmask, altstack, trap) = {
        let mut ts = t.sig.lock();
        let old = ts.saved_mask.take().unwrap_or(ts.blocked);
        (old, ts.altstack, ts.trap)
    };
    match setup_rt_frame(&t.process, &ksig, regs, oldmask, altstack, trap) {
        Ok(()) => {
            // signal_delivered: block the handler's mask (and the signal
            // unless SA_NODEFER); SS_AUTODISARM drops the altstack.
            let mut add = ksig.action.mask;
            if ksig.action.flags & SA_NODEFER == 0 {
                add |= signal::sigmask(ksig.info.signo);
            }
            let blocked = signal::blocked(t) | add;
            signal::set_blocked(t, blocked);
            if altstack.flags & SS_AUTODISARM != 0 {
                t.sig.lock().altstack = signal::AltStack::NONE;
            }
            // The handler starts with a clean FPU (fpu__clear_user_states).
            FxArea::INIT.load();
        }
        Err(_) => {
            // The frame could not be written: force_sigsegv.
            if ksig.info.signo == SIGSEGV {
                signal::set_action(&t.process, SIGSEGV, Some(signal::SigAction::default()));
            }
            signal::force_sig(t, SigInfo::kernel(SIGSEGV));
        }
    }
}

/// Writes the frame and points `regs` at the handler (Linux's
/// `x64_setup_rt_frame`).
fn setup_rt_frame(
    p: &Process,
    ksig: &KSignal,
    regs: &mut PtRegs,
    oldmask: u64,
    altstack: signal::AltStack,
    trap: TrapInfo,
) -> Result<(), Errno> {
    let mm = p.mm().ok_or(Errno::EFAULT)?;
    // get_sigframe: skip the red zone; switch to the altstack if asked
    // and not on it already.
    let mut sp = regs.rsp.wrapping_sub(128);
    if ksig.action.flags & SA_ONSTACK != 0
        && altstack.size != 0
        && altstack.flags & signal::SS_DISABLE == 0
        && !altstack.on_stack(regs.rsp)
    {
        sp = altstack.sp.wrapping_add(altstack.size);
    }
    let fpstate = (sp.wrapping_sub(512)) & !63;
    let frame = ((fpstate.wrapping_sub(FRAME_BYTES)) & !15).wrapping_sub(8);
    // Overflowing the altstack (Linux's check): a SIGSEGV instead.
    if altstack.on_stack(regs.rsp) && !altstack.on_stack(frame) {
        return Err(Errno::EFAULT);
    }
    let fx = FxArea::capture();
    copy_to_user(&mm, fpstate, &fx.0)?;

    let mut f = [0u8; FRAME_BYTES as usize];
    put(&mut f, 0, ksig.action.restorer);
    let uc = UC_OFF as usize;
    put(&mut f, uc, UC_FLAGS);
    put(&mut f, uc + 8, 0);
    put(&mut f, uc + UC_STACK, altstack.sp);
    put(
        &mut f,
        uc + UC_STACK + 8,
        u64::from(altstack.ss_flags(regs.rsp)),
    );
    put(&mut f, uc + UC_STACK + 16, altstack.size);
    let mc = uc + UC_MCONTEXT;
    for (i, v) in [
        regs.r8,
        regs.r9,
        regs.r10,
        regs.r11,
        regs.r12,
        regs.r13,
        regs.r14,
        regs.r15,
        regs.rdi,
        regs.rsi,
        regs.rbp,
        regs.rbx,
        regs.rdx,
        regs.rax,
        regs.rcx,
        regs.rsp,
        regs.rip,
        regs.rflags,
    ]
    .into_iter()
    .enumerate()
    {
        put(&mut f, mc + i * 8, v);
    }
    // cs, gs, fs, ss (16 bits each).
    put(&mut f, mc + 144, USER_CS | (USER_SS << 48));
    put(&mut f, mc + 152, trap.error_code);
    put(&mut f, mc + 160, trap.trapno);
    put(&mut f, mc + 168, oldmask);
    put(&mut f, mc + 176, trap.cr2);
    put(&mut f, mc + 184, fpstate);
    put(&mut f, uc + UC_SIGMASK, oldmask);
    f[INFO_OFF as usize..].copy_from_slice(&ksig.info.to_bytes());
    copy_to_user(&mm, frame, &f)?;

    regs.rdi = u64::from(ksig.info.signo);
    regs.rsi = frame + INFO_OFF;
    regs.rdx = frame + UC_OFF;
    regs.rax = 0;
    regs.rsp = frame;
    regs.rip = ksig.action.handler;
    regs.rflags &= !HANDLER_CLEARS;
    regs.cs = USER_CS;
    regs.ss = USER_SS;
    Ok(())
}

fn put(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// `rt_sigreturn()`: restores what the frame at `rsp - 8` holds (Linux's
/// `restore_sigcontext`): every general register, RIP, the RFLAGS bits
/// user mode may set, the FPU state, the blocked mask, the alternate
/// stack. Returns the restored `rax`; a bad frame kills with SIGSEGV.
pub fn sys_rt_sigreturn(t: &Arc<Thread>, regs: &mut PtRegs) -> u64 {
    match restore_frame(t, regs) {
        Ok(()) => regs.rax,
        Err(_) => {
            signal::force_sig(t, SigInfo::kernel(SIGSEGV));
            regs.rax
        }
    }
}

fn restore_frame(t: &Thread, regs: &mut PtRegs) -> Result<(), Errno> {
    let mm = t.process.mm().ok_or(Errno::EFAULT)?;
    let frame = regs.rsp.wrapping_sub(8);
    let mut uc = [0u8; UC_BYTES as usize];
    copy_from_user(&mm, &mut uc, frame + UC_OFF)?;
    let mc = UC_MCONTEXT;
    let g = |i: usize| le64(&uc, mc + i * 8);
    let fpstate = le64(&uc, mc + 184);
    // The FPU image first: nothing changes if it is unreadable.
    let fx = if fpstate != 0 {
        let mut fx = alloc::boxed::Box::new(FxArea([0; 512]));
        copy_from_user(&mm, &mut fx.0, fpstate)?;
        fx.sanitize();
        Some(fx)
    } else {
        None
    };
    let mask = le64(&uc, UC_SIGMASK);
    signal::set_blocked(t, mask);
    regs.r8 = g(0);
    regs.r9 = g(1);
    regs.r10 = g(2);
    regs.r11 = g(3);
    regs.r12 = g(4);
    regs.r13 = g(5);
    regs.r14 = g(6);
    regs.r15 = g(7);
    regs.rdi = g(8);
    regs.rsi = g(9);
    regs.rbp = g(10);
    regs.rbx = g(11);
    regs.rdx = g(12);
    regs.rax = g(13);
    regs.rcx = g(14);
    regs.rsp = g(15);
    regs.rip = g(16);
    regs.rflags = (regs.rflags & !FIX_EFLAGS) | (g(17) & FIX_EFLAGS);
    regs.cs = USER_CS;
    regs.ss = USER_SS;
    // No restart after a sigreturn.
    regs.orig_rax = NO_SYSCALL;
    match fx {
        Some(fx) => fx.load(),
        None => FxArea::INIT.load(),
    }
    // restore_altstack: only EFAULT matters; changing it while on it is
    // refused quietly.
    let ss_sp = le64(&uc, UC_STACK);
    let ss_flags = le64(&uc, UC_STACK + 8) as u32;
    let ss_size = le64(&uc, UC_STACK + 16);
    let _ = crate::syscall::set_altstack(t, regs.rsp, ss_sp, ss_flags, ss_size);
    t.sig.lock().restart = None;
    Ok(())
}
