//! Random bytes for `getrandom` and `AT_RANDOM` (Linux's
//! `drivers/char/random.c`, in miniature): the CPU's `RDRAND` where CPUID
//! reports it (QEMU's `-cpu max` does), else a xorshift generator seeded
//! from the TSC at first use. Neither is a cryptographic pool; the kernel
//! is for studying memory management.

use core::sync::atomic::{AtomicU64, Ordering};

/// The fallback generator's state (0: not seeded yet).
static STATE: AtomicU64 = AtomicU64::new(0);

fn has_rdrand() -> bool {
    // CPUID leaf 1, ECX bit 30.
    core::arch::x86_64::__cpuid(1).ecx & (1 << 30) != 0
}

fn rdrand() -> Option<u64> {
    for _ in 0..10 {
        let (v, ok): (u64, u8);
        // SAFETY: RDRAND only writes its register and CF; the caller
        // checked CPUID that the instruction exists.
        unsafe {
            core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok,
                options(nomem, nostack));
        }
        if ok != 0 {
            return Some(v);
        }
    }
    None
}

fn next_fallback() -> u64 {
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = crate::time::now_ns() | 1;
    }
    // xorshift64.
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    x
}

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) {
    let hw = has_rdrand();
    for chunk in buf.chunks_mut(8) {
        let v = if hw { rdrand() } else { None }.unwrap_or_else(next_fallback);
        chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
    }
}
