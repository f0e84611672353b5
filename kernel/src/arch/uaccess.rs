//! The user-copy primitive and its exception-table entry (Linux's
//! `arch/x86/lib/copy_user_64.S` `rep_movs_alternative`, and
//! `arch/x86/mm/extable.c`).
//!
//! [`copy_user`] moves bytes between a kernel buffer and a user address of
//! the address space loaded in CR3 with `rep movsq` and `rep movsb`, inside a
//! `stac` / `clac` window when SMAP is on (the only code that touches a
//! user address by that address). A page fault on that instruction is not
//! a kernel bug: the `#PF` handler ([`super::idt`]) asks [`fixup`] whether
//! the faulting RIP is a user-access instruction, resolves the fault
//! through the installed [`UaccessFaultHook`] (the process's `Mm`, as a
//! fault from user mode would be) and resumes the copy where it stopped
//! (`rep movs` keeps its progress in RCX/RSI/RDI); if the fault cannot be
//! resolved it resumes at the fix-up instead, which returns the number of
//! bytes not copied, as Linux's `copy_{from,to}_user`.
//!
//! # Context
//!
//! Process context with interrupts on: the fault path may sleep (it
//! allocates and takes the mmap lock for read), so the caller must not
//! hold a spinlock or the mmap lock for write. The copy is preemptible; a
//! thread of the process that unmaps the page meanwhile makes it fault,
//! and the fault fail (EFAULT), exactly as for a user-mode access.
//!
//! # Invariants
//!
//! - U1: the fix-up table is the four `rep movs` instructions below, and
//!   nothing else: a `#PF` at any other kernel RIP stays fatal.
//! - U2: `AC` is set only between `stac` and `clac` of the SMAP variant,
//!   and the fix-up path clears it in the interrupted frame before
//!   resuming at the fix-up, so no kernel code after a copy runs with
//!   SMAP relaxed. (An interrupt taken inside the window runs with `AC`
//!   inherited, as an x86-interrupt gate leaves it; nothing in an
//!   interrupt handler touches user addresses.)

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

// rdi = destination, rsi = source, rdx = length; returns in rax the bytes
// not copied (0 on success). Quadwords first, then the tail bytes (Linux's
// `rep_movs_alternative` without its unrolled loop): TCG runs a `rep`
// string instruction one element at a time, so `movsq` moves eight times
// as fast as `movsb` under emulation. Each fix-up computes what was left:
// RCX quadwords plus the RDX tail bytes, or RCX bytes.
global_asm!(
    ".pushsection .text.uaccess, \"ax\"",
    ".global uaccess_copy_smap",
    "uaccess_copy_smap:",
    "stac",
    "mov rcx, rdx",
    "shr rcx, 3",
    "and edx, 7",
    ".global uaccess_copy_smap_q",
    "uaccess_copy_smap_q:",
    "rep movsq",
    "mov ecx, edx",
    ".global uaccess_copy_smap_b",
    "uaccess_copy_smap_b:",
    "rep movsb",
    "clac",
    "xor eax, eax",
    "ret",
    ".global uaccess_copy_plain",
    "uaccess_copy_plain:",
    "mov rcx, rdx",
    "shr rcx, 3",
    "and edx, 7",
    ".global uaccess_copy_plain_q",
    "uaccess_copy_plain_q:",
    "rep movsq",
    "mov ecx, edx",
    ".global uaccess_copy_plain_b",
    "uaccess_copy_plain_b:",
    "rep movsb",
    "xor eax, eax",
    "ret",
    ".global uaccess_fixup_q",
    "uaccess_fixup_q:",
    "lea rax, [rdx + rcx * 8]",
    "ret",
    ".global uaccess_fixup_b",
    "uaccess_fixup_b:",
    "mov rax, rcx",
    "ret",
    ".popsection",
);

unsafe extern "C" {
    fn uaccess_copy_smap(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn uaccess_copy_plain(dst: *mut u8, src: *const u8, len: usize) -> usize;
    static uaccess_copy_smap_q: u8;
    static uaccess_copy_smap_b: u8;
    static uaccess_copy_plain_q: u8;
    static uaccess_copy_plain_b: u8;
    static uaccess_fixup_q: u8;
    static uaccess_fixup_b: u8;
}

/// Whether CR4.SMAP is on (then `stac`/`clac` exist and are needed).
static SMAP: AtomicBool = AtomicBool::new(false);

/// Called by [`super::entry::init`] once it knows whether SMAP is on.
pub(super) fn set_smap(on: bool) {
    SMAP.store(on, Ordering::Relaxed);
}

/// Copies `len` bytes from `src` to `dst`, one of which is a user address
/// of the address space in CR3; returns the bytes not copied (0: all).
///
/// # Safety
///
/// The kernel side (`dst` or `src`) must be valid for `len` bytes; the
/// user side must lie below `TASK_SIZE` (the caller checks the range);
/// module Context holds.
pub unsafe fn copy_user(dst: *mut u8, src: *const u8, len: usize) -> usize {
    if SMAP.load(Ordering::Relaxed) {
        // SAFETY: the caller's contract; `stac`/`clac` exist since CR4.SMAP
        // is on, which needs the CPU feature.
        unsafe { uaccess_copy_smap(dst, src, len) }
    } else {
        // SAFETY: the caller's contract.
        unsafe { uaccess_copy_plain(dst, src, len) }
    }
}

/// The fix-up address for a fault at kernel `rip`, if `rip` is a
/// user-access instruction (invariant U1): Linux's `search_exception_tables`.
pub fn fixup(rip: u64) -> Option<u64> {
    let at = |s: &u8| core::ptr::from_ref(s) as u64;
    // SAFETY: only the labels' addresses are taken, never their contents:
    // they are code of the global_asm! above.
    let (sq, sb, pq, pb, fq, fb) = unsafe {
        (
            at(&uaccess_copy_smap_q),
            at(&uaccess_copy_smap_b),
            at(&uaccess_copy_plain_q),
            at(&uaccess_copy_plain_b),
            at(&uaccess_fixup_q),
            at(&uaccess_fixup_b),
        )
    };
    if rip == sq || rip == pq {
        Some(fq)
    } else if rip == sb || rip == pb {
        Some(fb)
    } else {
        None
    }
}

/// Resolves a page fault at user address `addr` taken by a user-access
/// instruction (`write`: the access was a write): true if the access can
/// be retried. Runs with interrupts on, may sleep.
pub type UaccessFaultHook = fn(addr: u64, write: bool) -> bool;

/// The installed hook, type-erased; null means none (every user-access
/// fault then fails with EFAULT).
static UACCESS_FAULT_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the resolver of user-access faults.
pub fn set_uaccess_fault_hook(hook: UaccessFaultHook) {
    UACCESS_FAULT_HOOK.store(hook as *mut (), Ordering::Release);
}

/// Runs the installed hook for a fault at `addr` (false without one).
pub(super) fn resolve(addr: u64, write: bool) -> bool {
    let hook = UACCESS_FAULT_HOOK.load(Ordering::Acquire);
    if hook.is_null() {
        return false;
    }
    // SAFETY: the only non-null values stored in UACCESS_FAULT_HOOK are
    // `UaccessFaultHook`s cast by set_uaccess_fault_hook; on x86_64
    // function and data pointers have the same size and representation.
    let hook = unsafe { core::mem::transmute::<*mut (), UaccessFaultHook>(hook) };
    hook(addr, write)
}
