//! The context switch (Linux's `__switch_to_asm`) and a new thread's first
//! frame.
//!
//! `switch_to(prev_sp, next_sp)` pushes the callee-saved registers on the
//! current stack, stores `rsp` to `*prev_sp`, loads `next_sp` and pops the
//! same registers from there: everything else the System V ABI lets a call
//! clobber, so the compiler has saved what it needs around the call. A
//! switched-out stack therefore ends in this frame (lowest address first):
//!
//! ```text
//!   saved_sp -> r15 r14 r13 r12 rbx rbp | return address | caller's frame ...
//! ```
//!
//! A new thread's stack is made to look switched out ([`initial_frame`]):
//! zeroed registers (`rbp = 0` ends backtraces, backtrace I1) and
//! [`kthread_trampoline`] as return address, two zero words above it, so
//! that the trampoline's `call` leaves the stack 16-byte aligned as the ABI
//! wants at a call:
//!
//! ```text
//!   top - 72: r15=0 r14=0 r13=0 r12=0 rbx=0 rbp=0   (saved_sp points here)
//!   top - 24: kthread_trampoline                    (popped by `ret`)
//!   top - 16: 0, 0                                  (rsp at the `call`)
//! ```
//!
//! # Context
//!
//! `switch_to` runs with interrupts off and the runqueue lock held (handed
//! to the next task, which releases it). The kernel is built without SSE
//! (soft-float target), so there is no FPU state to switch; RFLAGS.IF is
//! restored by each task from its own saved state.

use core::arch::naked_asm;

/// Bytes [`initial_frame`] uses below a new stack's top.
pub const INITIAL_FRAME_BYTES: u64 = 72;

/// Saves the callee-saved registers and `rsp` to `*prev_sp`, then resumes
/// the task whose saved stack pointer is `next_sp`. Returns when some later
/// switch resumes the caller.
///
/// # Safety
///
/// 1. `prev_sp` is valid for a write of the current task's saved stack
///    pointer and stays so until the task is resumed.
/// 2. `next_sp` is a stack pointer saved by `switch_to` (or made by
///    [`initial_frame`]) of a task that is not running anywhere, on a
///    stack that is mapped and stays so while it runs.
/// 3. Interrupts are off (a half-switched CPU must not take an interrupt).
#[unsafe(naked)]
pub unsafe extern "sysv64" fn switch_to(prev_sp: *mut u64, next_sp: u64) {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

/// Where a new thread starts: `rbp` is 0 (the popped frame), the stack is
/// aligned for a call; calls `super::core::kthread_entry`, which never
/// returns.
#[unsafe(naked)]
unsafe extern "sysv64" fn kthread_trampoline() -> ! {
    naked_asm!("call {entry}", "ud2", entry = sym super::core::kthread_entry)
}

/// Writes a new thread's first frame below `top` and returns the stack
/// pointer to store as its saved `rsp`.
///
/// # Safety
///
/// `[top - INITIAL_FRAME_BYTES, top)` is mapped, writable memory owned by
/// the new thread's stack and used by nothing else; `top` is 16-aligned.
pub unsafe fn initial_frame(top: u64) -> u64 {
    debug_assert!(top.is_multiple_of(16));
    let sp = top - INITIAL_FRAME_BYTES;
    let words: [u64; 9] = [
        0,
        0,
        0,
        0,
        0,
        0,
        kthread_trampoline as *const () as u64,
        0,
        0,
    ];
    // SAFETY: by the contract, the 72 bytes below top are this stack's, and
    // sp is 8-aligned.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), sp as *mut u64, words.len()) };
    sp
}
