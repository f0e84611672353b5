//! The user's x87/SSE register state (Linux's `arch/x86/kernel/fpu/`, in
//! its simplest form: `FXSAVE` areas, switched eagerly).
//!
//! The kernel itself is built soft-float (the `x86_64-unknown-none`
//! target): it never touches the x87, MMX or SSE registers, so they hold
//! the running task's user state at all times. Each task has a 512-byte
//! `FXSAVE` area; the context switch saves the outgoing task's registers
//! into its area and loads the incoming task's ([`FpuState::switch`]).
//! `fork` gives the child a copy of the parent's live registers and
//! `execve` the initial state ([`FxArea::INIT`]: all registers zero, x87
//! control word 0x37f, MXCSR 0x1f80: every exception masked, as Linux's
//! `fpstate_init_fxstate`). AVX state is not kept: CR4.OSXSAVE stays
//! clear, so CPUID tells programs that the OS does not support it.

use core::cell::UnsafeCell;

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// An `FXSAVE`/`FXRSTOR` image (64-bit format).
#[derive(Clone)]
#[repr(C, align(16))]
pub struct FxArea(pub [u8; 512]);

impl FxArea {
    /// The state a new program starts with.
    pub const INIT: FxArea = {
        let mut a = [0u8; 512];
        // FCW at offset 0: 0x037f (all x87 exceptions masked, 64-bit precision).
        a[0] = 0x7f;
        a[1] = 0x03;
        // MXCSR at offset 24: 0x1f80 (all SSE exceptions masked, round to nearest).
        a[24] = 0x80;
        a[25] = 0x1f;
        FxArea(a)
    };

    /// The CPU's current registers, in a box (a fork copies them into
    /// its child's first-run closure: kept off the kernel stack).
    pub fn capture() -> alloc::boxed::Box<FxArea> {
        let mut a = alloc::boxed::Box::new(FxArea([0; 512]));
        a.save();
        a
    }

    /// Stores the CPU's current registers here.
    pub fn save(&mut self) {
        // SAFETY: FXSAVE64 writes 512 bytes at a 16-byte-aligned address
        // (FxArea's alignment) that we own mutably; OSFXSR is set at boot
        // ([`init`]) so the instruction is enabled.
        unsafe {
            core::arch::asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack));
        }
    }

    /// Clears what `FXRSTOR` would refuse in an image user mode wrote (a
    /// signal frame): the MXCSR bits the CPU does not support (Linux's
    /// `mxcsr_feature_mask`).
    pub fn sanitize(&mut self) {
        let mxcsr = u32::from_le_bytes([self.0[24], self.0[25], self.0[26], self.0[27]]);
        let clean = mxcsr & mxcsr_mask();
        self.0[24..28].copy_from_slice(&clean.to_le_bytes());
    }

    /// Makes this the CPU's current registers (the running task's state).
    pub fn load(&self) {
        // SAFETY: FXRSTOR64 reads 512 bytes at a 16-byte-aligned address we
        // borrow. A reserved MXCSR bit would raise #GP: every area comes from
        // INIT or from FXSAVE, which never sets one.
        unsafe {
            core::arch::asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack, readonly));
        }
    }
}

/// A task's saved registers, used only by the context switch.
#[repr(transparent)]
pub struct FpuState(UnsafeCell<FxArea>);

// SAFETY: the area is read and written only by `switch`, on the CPU that
// switches away from or to the task, with interrupts off and the runqueue
// lock held: never by two CPUs at once, and never while the task runs.
unsafe impl Sync for FpuState {}

impl FpuState {
    pub const fn new() -> Self {
        FpuState(UnsafeCell::new(FxArea::INIT))
    }

    /// Saves the CPU's registers into `prev`'s area and loads `next`'s.
    ///
    /// # Safety
    ///
    /// Called by the context switch with interrupts off, `prev` the task
    /// that ran until now on this CPU and `next` the one about to run, not
    /// running anywhere (see the `Sync` argument).
    pub unsafe fn switch(prev: &FpuState, next: &FpuState) {
        // SAFETY: by the contract, no one else accesses either area now;
        // the pointers are to 16-byte-aligned 512-byte areas.
        unsafe {
            core::arch::asm!(
                "fxsave64 [{prev}]",
                "fxrstor64 [{next}]",
                prev = in(reg) prev.0.get(),
                next = in(reg) next.0.get(),
                options(nostack)
            );
        }
    }
}

impl Default for FpuState {
    fn default() -> Self {
        Self::new()
    }
}

/// The MXCSR bits this CPU supports (`FXSAVE`'s MXCSR_MASK, 0xffbf if
/// it reports none), read once by [`init`].
static MXCSR_MASK: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0xffbf);

fn mxcsr_mask() -> u32 {
    MXCSR_MASK.load(core::sync::atomic::Ordering::Relaxed)
}

/// Enables SSE for user mode on this CPU: CR0.EM clear, CR0.MP set,
/// CR0.TS clear (no lazy switching), CR4.OSFXSR and CR4.OSXMMEXCPT set;
/// then loads the initial state.
pub fn init() {
    // SAFETY: these bits only enable the x87/SSE instructions and their
    // exceptions (#XM is unmasked nowhere: MXCSR masks every exception);
    // the kernel uses none of these registers (soft-float target).
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            f.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|f| {
            f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
        });
    }
    FxArea::INIT.load();
    let mut probe = FxArea([0; 512]);
    probe.save();
    let mask = u32::from_le_bytes([probe.0[28], probe.0[29], probe.0[30], probe.0[31]]);
    if mask != 0 {
        MXCSR_MASK.store(mask, core::sync::atomic::Ordering::Relaxed);
    }
}
