//! The userland library: raw Linux x86_64 syscalls, typed wrappers that
//! return `Result<_, Errno>`, `print!`/`println!` to stdout, the program
//! entry (`_start`: argc, argv, envp, auxv as the kernel laid them out) and
//! a panic handler that prints and exits 101.
//!
//! Everything here is written against the Linux syscall ABI only (number in
//! `rax`; arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`; `rcx` and
//! `r11` clobbered; `-4095..0` is `-errno`), so a program built with it runs
//! unchanged on Linux.
#![no_std]

pub mod fmt;
pub mod sys;

pub use sys::*;

/// Defines the program's `main`, called by `_start` with the arguments
/// (`fn(args: &Args) -> i32`); its return value is the exit status.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "Rust" fn __user_main(args: &$crate::Args) -> i32 {
            $main(args)
        }
    };
}

unsafe extern "Rust" {
    /// The program's main, defined by [`entry!`].
    safe fn __user_main(args: &Args) -> i32;
}

/// What `_start` found on the initial stack.
pub struct Args {
    pub argc: usize,
    /// `argv[0..argc]`, NUL-terminated strings.
    pub argv: *const *const u8,
    /// `envp`, NULL-terminated.
    pub envp: *const *const u8,
    /// The auxiliary vector: (type, value) pairs up to `AT_NULL`.
    pub auxv: *const [u64; 2],
}

impl Args {
    /// Argument `i` as bytes (without the NUL).
    pub fn arg(&self, i: usize) -> Option<&[u8]> {
        if i >= self.argc {
            return None;
        }
        // SAFETY: the kernel laid out argc valid pointers to NUL-terminated
        // strings on the stack, which lives as long as the program.
        unsafe { Some(cstr(*self.argv.add(i))) }
    }

    /// The value of auxiliary vector entry `ty` (`AT_*`).
    pub fn auxv(&self, ty: u64) -> Option<u64> {
        let mut p = self.auxv;
        loop {
            // SAFETY: the vector ends with an AT_NULL entry (kernel ABI).
            let [t, v] = unsafe { *p };
            if t == AT_NULL {
                return None;
            }
            if t == ty {
                return Some(v);
            }
            // SAFETY: not past AT_NULL yet.
            p = unsafe { p.add(1) };
        }
    }
}

/// The bytes of a NUL-terminated string.
///
/// # Safety
///
/// `p` points to a NUL-terminated string that lives for `'a`.
unsafe fn cstr<'a>(p: *const u8) -> &'a [u8] {
    let mut n = 0;
    // SAFETY: by the contract, every byte up to the NUL is readable.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: the loop above read every byte up to the NUL: `n` bytes are readable for `'a`.
    unsafe { core::slice::from_raw_parts(p, n) }
}

/// The ELF entry point: `rsp` points at argc (System V ABI, figure 3.9).
#[unsafe(no_mangle)]
#[unsafe(naked)]
unsafe extern "C" fn _start() -> ! {
    core::arch::naked_asm!(
        "mov rdi, rsp",
        "xor ebp, ebp",
        "and rsp, -16",
        "call {start}",
        "ud2",
        start = sym start_rust,
    )
}

/// Reads argc/argv/envp/auxv from the initial stack, runs main, exits.
extern "C" fn start_rust(sp: *const u64) -> ! {
    // SAFETY: the kernel's initial stack: argc, argc argv pointers, NULL,
    // envp pointers, NULL, then auxv pairs (System V ABI).
    let args = unsafe {
        let argc = *sp as usize;
        let argv = sp.add(1) as *const *const u8;
        let envp = argv.add(argc + 1);
        let mut e = envp;
        while !(*e).is_null() {
            e = e.add(1);
        }
        Args {
            argc,
            argv,
            envp,
            auxv: e.add(1) as *const [u64; 2],
        }
    };
    exit_group(__user_main(&args))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("init: panic: {info}");
    exit_group(101)
}
