//! The ELF64 loader for static executables (Linux's `fs/binfmt_elf.c`,
//! `load_elf_binary()` without an interpreter) and the initial user stack
//! (`create_elf_tables()`).
//!
//! Both kinds of static executable load: `ET_EXEC` at its link addresses
//! (`gcc -static`, `musl-gcc -static`) and `ET_DYN` without `PT_INTERP`,
//! a static PIE (Rust's `x86_64-unknown-linux-musl`, `-static-pie`), at a
//! base the top-down allocator picks for the whole span, as Linux does
//! with no interpreter; a program that asks for an interpreter
//! (dynamically linked) gets `ENOEXEC`. Each `PT_LOAD` segment becomes a
//! private anonymous mapping, filled from the file while writable (the
//! rest up to `p_memsz`, the bss, stays zero), then given its own
//! permissions. Where two segments share a page (the linker may let the
//! data segment start in the page where read-only data ends) that page
//! gets both segments' bytes and the union of their permissions. The
//! program break starts at the page after the highest segment (no
//! randomization).
//!
//! The stack is a `MAP_GROWSDOWN` mapping of [`STACK_BYTES`] ending at
//! [`STACK_TOP`], laid out as Linux does (lowest address first):
//!
//! ```text
//!   sp -> argc
//!         argv[0] .. argv[argc-1], NULL
//!         envp[0] .. envp[n-1], NULL
//!         auxv: (AT_SYSINFO_EHDR is absent: no vDSO) (AT_MINSIGSTKSZ 1040)
//!               (AT_HWCAP ..) (AT_PAGESZ ..)
//!               (AT_CLKTCK 100) (AT_PHDR ..) (AT_PHENT 56) (AT_PHNUM ..)
//!               (AT_BASE 0) (AT_FLAGS 0) (AT_ENTRY ..) (AT_UID ..) .. (AT_SECURE 0)
//!               (AT_RANDOM ptr) (AT_HWCAP2 0) (AT_EXECFN ptr) (AT_PLATFORM ptr) (AT_NULL)
//!         padding
//!         argument and environment strings, the execfn string (the
//!         file name as execve got it)
//!         "x86_64", 16 random bytes             (AT_PLATFORM, AT_RANDOM)
//!   STACK_TOP
//! ```
//!
//! `sp` is 16-byte aligned at entry, as the System V ABI requires.
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;

use mm::PAGE_SIZE;
use mm::errno::Errno;
use mm::pgtable::TASK_SIZE;
use mm::vm::{MapFlags, Prot};

use super::KMm;
use crate::initramfs::FileData;
use crate::uaccess::copy_to_user;

/// `ENOEXEC`: not an executable we can run.
pub const ENOEXEC: Errno = Errno(8);

/// Top of the user stack (Linux's `STACK_TOP`, without randomization).
pub const STACK_TOP: u64 = TASK_SIZE;
/// Initial size of the stack mapping; it grows down on faults below it.
pub const STACK_BYTES: u64 = 128 * 1024;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const PHDR_BYTES: u64 = 56;

const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_BASE: u64 = 7;
const AT_FLAGS: u64 = 8;
const AT_ENTRY: u64 = 9;
const AT_UID: u64 = 11;
const AT_EUID: u64 = 12;
const AT_GID: u64 = 13;
const AT_EGID: u64 = 14;
const AT_PLATFORM: u64 = 15;
const AT_HWCAP: u64 = 16;
const AT_CLKTCK: u64 = 17;
const AT_SECURE: u64 = 23;
const AT_RANDOM: u64 = 25;
const AT_HWCAP2: u64 = 26;
const AT_EXECFN: u64 = 31;
const AT_MINSIGSTKSZ: u64 = 51;

/// `AT_MINSIGSTKSZ`: the largest signal frame this kernel builds, as
/// Linux's `get_sigframe_size()` computes it (`init_sigframe_size()` in
/// `arch/x86/kernel/signal.c`) for a kernel without IA32 emulation whose
/// FPU state is FXSAVE's (no XSAVE: CPUID's OSXSAVE is clear):
/// `sizeof(struct rt_sigframe)` (440: the return address, the 304-byte
/// ucontext, the 128-byte siginfo) + `MAX_FRAME_PADDING` (15) + the
/// 512-byte FXSAVE area + `MAX_XSAVE_PADDING` (63), rounded up to 16.
pub const MINSIGSTKSZ_BYTES: u64 = (440 + 15 + 512 + 63u64).next_multiple_of(16);

/// Most bytes of ELF file we accept (Linux has no such limit; ours keeps a
/// corrupt size from asking for absurd mappings).
const MAX_ELF_BYTES: usize = 1 << 30;

/// Where a loaded program starts.
#[derive(Clone, Copy, Debug)]
pub struct Image {
    pub entry: u64,
    pub sp: u64,
    /// Where the program break starts (`mm->start_brk`).
    pub start_brk: u64,
    /// The argument strings `[arg_start, arg_end)` and the environment
    /// strings `[env_start, env_end)` on the new stack (`mm->arg_start`
    /// and the rest: `/proc/PID/cmdline` and `environ` read them).
    pub args: [u64; 4],
}

/// One program header.
#[derive(Clone, Copy, Debug)]
struct Phdr {
    ty: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

/// Reads `N` bytes at `off` of the file.
fn bytes_at<const N: usize>(f: &FileData, off: u64) -> Result<[u8; N], Errno> {
    let mut b = [0u8; N];
    let off = usize::try_from(off).map_err(|_| ENOEXEC)?;
    if f.read_at(off, &mut b) != N {
        return Err(ENOEXEC);
    }
    Ok(b)
}

fn u16_at(f: &FileData, off: u64) -> Result<u16, Errno> {
    bytes_at::<2>(f, off).map(u16::from_le_bytes)
}

fn u32_at(f: &FileData, off: u64) -> Result<u32, Errno> {
    bytes_at::<4>(f, off).map(u32::from_le_bytes)
}

fn u64_at(f: &FileData, off: u64) -> Result<u64, Errno> {
    bytes_at::<8>(f, off).map(u64::from_le_bytes)
}

fn page_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

fn page_up(x: u64) -> Option<u64> {
    Some(x.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1))
}

fn prot_of(flags: u32) -> Prot {
    let mut prot = Prot::empty();
    for (pf, p) in [(PF_R, Prot::READ), (PF_W, Prot::WRITE), (PF_X, Prot::EXEC)] {
        if flags & pf != 0 {
            prot |= p;
        }
    }
    prot
}

/// The program headers of `elf` after the ELF header checks.
fn program_headers(elf: &FileData) -> Result<(u16, u64, u64, Vec<Phdr>), Errno> {
    let ident = bytes_at::<6>(elf, 0)?;
    if &ident[..4] != b"\x7fELF" || ident[4] != 2 || ident[5] != 1 || elf.len() > MAX_ELF_BYTES {
        return Err(ENOEXEC);
    }
    let ty = u16_at(elf, 16)?;
    if (ty != ET_EXEC && ty != ET_DYN) || u16_at(elf, 18)? != 62 {
        return Err(ENOEXEC);
    }
    let entry = u64_at(elf, 24)?;
    let phoff = u64_at(elf, 32)?;
    let phentsize = u64::from(u16_at(elf, 54)?);
    let phnum = u64::from(u16_at(elf, 56)?);
    if phentsize != PHDR_BYTES || phnum == 0 || phnum > 64 {
        return Err(ENOEXEC);
    }
    let mut phdrs = Vec::new();
    for i in 0..phnum {
        let o = phoff.checked_add(i * PHDR_BYTES).ok_or(ENOEXEC)?;
        phdrs.push(Phdr {
            ty: u32_at(elf, o)?,
            flags: u32_at(elf, o + 4)?,
            offset: u64_at(elf, o + 8)?,
            vaddr: u64_at(elf, o + 16)?,
            filesz: u64_at(elf, o + 32)?,
            memsz: u64_at(elf, o + 40)?,
        });
    }
    Ok((ty, entry, phoff, phdrs))
}

/// Copies `len` bytes at file offset `off` to user address `dst`.
fn copy_segment(mm: &KMm, elf: &FileData, off: u64, dst: u64, len: u64) -> Result<(), Errno> {
    let mut buf = alloc::vec![0u8; PAGE_SIZE as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(PAGE_SIZE) as usize;
        if elf.read_at((off + done) as usize, &mut buf[..n]) != n {
            return Err(ENOEXEC);
        }
        copy_to_user(mm, dst + done, &buf[..n])?;
        done += n as u64;
    }
    Ok(())
}

/// Loads the static ELF64 x86_64 executable `elf` into the empty `mm` and
/// builds its stack with `argv`, `envp` and `execfn` (the file name as
/// execve got it: `AT_EXECFN`); `ENOEXEC` for anything else.
pub fn load(
    mm: &KMm,
    elf: &FileData,
    execfn: &str,
    argv: &[String],
    envp: &[String],
) -> Result<Image, Errno> {
    let (ty, entry, phoff, phdrs) = program_headers(elf)?;
    if phdrs.iter().any(|p| p.ty == PT_INTERP) {
        log::warn!("execve: a dynamically linked program (PT_INTERP): not supported");
        return Err(ENOEXEC);
    }
    let loads: Vec<&Phdr> = phdrs
        .iter()
        .filter(|p| p.ty == PT_LOAD && p.memsz > 0)
        .collect();
    let mut lo = u64::MAX;
    let mut hi = 0;
    for ph in &loads {
        let file_end = ph.offset.checked_add(ph.filesz).ok_or(ENOEXEC)?;
        let mem_end = ph.vaddr.checked_add(ph.memsz).ok_or(ENOEXEC)?;
        if ph.filesz > ph.memsz || file_end > elf.len() as u64 || ph.vaddr < hi {
            // Segments must come in address order, as the ELF spec says.
            return Err(ENOEXEC);
        }
        lo = lo.min(page_down(ph.vaddr));
        hi = page_up(mem_end).ok_or(ENOEXEC)?;
    }
    if loads.is_empty() || hi > TASK_SIZE {
        return Err(ENOEXEC);
    }
    // Where the image goes: its link address (ET_EXEC), or wherever the
    // top-down allocator puts its whole span (a static PIE).
    let bias = if ty == ET_DYN {
        let flags = MapFlags::PRIVATE | MapFlags::ANONYMOUS;
        let base = mm.mmap(0, hi - lo, Prot::empty(), flags, -1, 0)?;
        // Only the place was wanted: the segments are mapped below, and
        // the gaps between them stay unmapped, as on Linux.
        mm.munmap(base, hi - lo)?;
        base - lo
    } else {
        0
    };
    // Each segment's pages, placed: [start, end).
    let pages: Vec<(u64, u64)> = loads
        .iter()
        .map(|ph| {
            (
                page_down(ph.vaddr) + bias,
                page_up(ph.vaddr + ph.memsz).unwrap_or(0) + bias,
            )
        })
        .collect();
    // Pass 1: map every segment writable (a page shared by two is mapped
    // once) and copy the file bytes in.
    let mut mapped_to = 0;
    for (ph, &(start, end)) in loads.iter().zip(&pages) {
        let start = start.max(mapped_to);
        if start < end {
            let flags = MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED;
            mm.mmap(start, end - start, Prot::READ | Prot::WRITE, flags, -1, 0)?;
            mapped_to = end;
        }
        copy_segment(mm, elf, ph.offset, ph.vaddr + bias, ph.filesz)?;
    }
    // Pass 2: each segment's permissions; a page shared with the segment
    // before gets the union.
    for (i, (ph, &(start, end))) in loads.iter().zip(&pages).enumerate() {
        mm.mprotect(start, end - start, prot_of(ph.flags))?;
        if i > 0 && pages[i - 1].1 - PAGE_SIZE == start {
            mm.mprotect(start, PAGE_SIZE, prot_of(ph.flags | loads[i - 1].flags))?;
        }
    }
    let entry = entry
        .checked_add(bias)
        .filter(|e| *e < TASK_SIZE)
        .ok_or(ENOEXEC)?;
    // AT_PHDR: PT_PHDR if there, else the loaded bytes that hold the headers.
    let phdr_va = match phdrs.iter().find(|p| p.ty == PT_PHDR) {
        Some(p) => p.vaddr + bias,
        None => loads
            .iter()
            .find(|p| (p.offset..p.offset + p.filesz).contains(&phoff))
            .map_or(0, |p| p.vaddr + (phoff - p.offset) + bias),
    };
    let brk = hi + bias;
    mm.set_brk_start(brk);

    let stack_flags =
        MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED | MapFlags::GROWSDOWN;
    mm.mmap(
        STACK_TOP - STACK_BYTES,
        STACK_BYTES,
        Prot::READ | Prot::WRITE,
        stack_flags,
        -1,
        0,
    )?;
    // CPUID leaf 1 EDX: the feature bits Linux reports as AT_HWCAP.
    let hwcap = u64::from(core::arch::x86_64::__cpuid(1).edx);
    let (sp, args) = build_stack(
        mm,
        execfn,
        argv,
        envp,
        &[
            (AT_MINSIGSTKSZ, MINSIGSTKSZ_BYTES),
            (AT_HWCAP, hwcap),
            (AT_PAGESZ, PAGE_SIZE),
            (AT_CLKTCK, 100),
            (AT_PHDR, phdr_va),
            (AT_PHENT, PHDR_BYTES),
            (AT_PHNUM, phdrs.len() as u64),
            (AT_BASE, 0),
            (AT_FLAGS, 0),
            (AT_ENTRY, entry),
            (AT_UID, 0),
            (AT_EUID, 0),
            (AT_GID, 0),
            (AT_EGID, 0),
            (AT_SECURE, 0),
        ],
    )?;
    Ok(Image {
        entry,
        sp,
        start_brk: brk,
        args,
    })
}

/// Copies `s` and a NUL below `sp`; returns the new `sp` (its address).
fn push_str(mm: &KMm, sp: &mut u64, s: &[u8]) -> Result<u64, Errno> {
    *sp -= s.len() as u64 + 1;
    let mut bytes = Vec::from(s);
    bytes.push(0);
    copy_to_user(mm, *sp, &bytes)?;
    Ok(*sp)
}

/// Writes the initial stack (module picture) below [`STACK_TOP`] and
/// returns the entry `sp` and [`Image::args`]: the argument strings lie
/// just below the environment's, which end at the file name's.
fn build_stack(
    mm: &KMm,
    execfn: &str,
    argv: &[String],
    envp: &[String],
    aux: &[(u64, u64)],
) -> Result<(u64, [u64; 4]), Errno> {
    let mut sp = STACK_TOP;
    // AT_RANDOM: 16 bytes from the kernel's generator.
    sp -= 16;
    let random_at = sp;
    let mut random = [0u8; 16];
    crate::random::fill(&mut random);
    copy_to_user(mm, random_at, &random)?;
    let platform = push_str(mm, &mut sp, b"x86_64")?;
    // Strings: execfn (the file name, `bprm->filename`), then the
    // environment, then the arguments.
    let execfn = push_str(mm, &mut sp, execfn.as_bytes())?;
    let mut env_ptrs = Vec::new();
    for s in envp.iter().rev() {
        env_ptrs.push(push_str(mm, &mut sp, s.as_bytes())?);
    }
    env_ptrs.reverse();
    let mut argv_ptrs = Vec::new();
    for s in argv.iter().rev() {
        argv_ptrs.push(push_str(mm, &mut sp, s.as_bytes())?);
    }
    argv_ptrs.reverse();
    let env_start = env_ptrs.first().copied().unwrap_or(execfn);
    let arg_start = argv_ptrs.first().copied().unwrap_or(env_start);
    let args = [arg_start, env_start, env_start, execfn];
    sp &= !15;
    let mut words: Vec<u64> = Vec::new();
    words.push(argv_ptrs.len() as u64);
    words.extend_from_slice(&argv_ptrs);
    words.push(0); // argv NULL
    words.extend_from_slice(&env_ptrs);
    words.push(0); // envp NULL
    for &(t, v) in aux {
        words.extend_from_slice(&[t, v]);
    }
    words.extend_from_slice(&[
        AT_RANDOM,
        random_at,
        AT_HWCAP2,
        0,
        AT_EXECFN,
        execfn,
        AT_PLATFORM,
        platform,
        AT_NULL,
        0,
    ]);
    if words.len() % 2 == 1 {
        sp -= 8;
    }
    sp -= words.len() as u64 * 8;
    if sp < STACK_TOP - STACK_BYTES {
        // Linux: E2BIG when the arguments do not fit the stack limit.
        return Err(Errno(7));
    }
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    copy_to_user(mm, sp, &bytes)?;
    debug_assert!(sp.is_multiple_of(16));
    Ok((sp, args))
}
