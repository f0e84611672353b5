//! The ELF64 loader for static executables (Linux's `fs/binfmt_elf.c`,
//! `load_elf_binary()` without an interpreter) and the initial user stack
//! (`create_elf_tables()`).
//!
//! Each `PT_LOAD` segment becomes a private anonymous mapping at its
//! address (`MAP_FIXED`), mapped writable while the file bytes are copied
//! in (the tail up to `p_memsz`, the bss, stays zero), then given its own
//! permissions with `mprotect`. Segments must not share pages (the user
//! programs are linked with `-z separate-loadable-segments`). The program
//! break starts at the page after the highest segment.
//!
//! The stack is a `MAP_GROWSDOWN` mapping of [`STACK_BYTES`] ending at
//! [`STACK_TOP`], laid out as Linux does (lowest address first):
//!
//! ```text
//!   sp -> argc
//!         argv[0] .. argv[argc-1], NULL
//!         envp: NULL
//!         auxv: (AT_PHDR, ..) (AT_PHENT, 56) (AT_PHNUM, n) (AT_PAGESZ, 4096)
//!               (AT_ENTRY, e_entry) (AT_RANDOM, ptr) (AT_EXECFN, ptr) (AT_NULL, 0)
//!         padding
//!         argument strings, the execfn string
//!         16 random bytes                       (AT_RANDOM points here)
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
use crate::uaccess::copy_to_user;

/// `ENOEXEC`: not an executable we can run.
pub const ENOEXEC: Errno = Errno(8);

/// Top of the user stack (Linux's `STACK_TOP`, without randomization).
pub const STACK_TOP: u64 = TASK_SIZE;
/// Initial size of the stack mapping; it grows down on faults below it.
pub const STACK_BYTES: u64 = 128 * 1024;

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const PHDR_BYTES: u64 = 56;

const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_ENTRY: u64 = 9;
const AT_RANDOM: u64 = 25;
const AT_EXECFN: u64 = 31;

/// Where a loaded program starts.
#[derive(Clone, Copy, Debug)]
pub struct Image {
    pub entry: u64,
    pub sp: u64,
    /// Where the program break starts (`mm->start_brk`).
    pub start_brk: u64,
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

fn u16_at(b: &[u8], off: usize) -> Result<u16, Errno> {
    let s = b.get(off..off + 2).ok_or(ENOEXEC)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, Errno> {
    let s = b.get(off..off + 4).ok_or(ENOEXEC)?;
    Ok(u32::from_le_bytes(s.try_into().map_err(|_| ENOEXEC)?))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, Errno> {
    let s = b.get(off..off + 8).ok_or(ENOEXEC)?;
    Ok(u64::from_le_bytes(s.try_into().map_err(|_| ENOEXEC)?))
}

fn page_up(x: u64) -> Option<u64> {
    Some(x.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1))
}

/// Loads the static ELF64 x86_64 executable `elf` into the empty `mm` and
/// builds its stack with `argv`; `ENOEXEC` for anything else.
pub fn load(mm: &KMm, elf: &[u8], argv: &[String]) -> Result<Image, Errno> {
    if elf.get(0..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err(ENOEXEC);
    }
    // ET_EXEC, EM_X86_64.
    if u16_at(elf, 16)? != 2 || u16_at(elf, 18)? != 62 {
        return Err(ENOEXEC);
    }
    let entry = u64_at(elf, 24)?;
    let phoff = u64_at(elf, 32)?;
    let phentsize = u16_at(elf, 54)? as u64;
    let phnum = u16_at(elf, 56)? as u64;
    if phentsize != PHDR_BYTES || phnum == 0 || phnum > 64 {
        return Err(ENOEXEC);
    }
    let mut phdrs = Vec::new();
    for i in 0..phnum {
        let o = usize::try_from(phoff + i * PHDR_BYTES).map_err(|_| ENOEXEC)?;
        phdrs.push(Phdr {
            ty: u32_at(elf, o)?,
            flags: u32_at(elf, o + 4)?,
            offset: u64_at(elf, o + 8)?,
            vaddr: u64_at(elf, o + 16)?,
            filesz: u64_at(elf, o + 32)?,
            memsz: u64_at(elf, o + 40)?,
        });
    }
    let mut prev_end = 0;
    let mut phdr_va = 0;
    for ph in phdrs.iter().filter(|p| p.ty == PT_LOAD && p.memsz > 0) {
        let file_end = ph.offset.checked_add(ph.filesz).ok_or(ENOEXEC)?;
        let mem_end = ph.vaddr.checked_add(ph.memsz).ok_or(ENOEXEC)?;
        if ph.filesz > ph.memsz || file_end > elf.len() as u64 || mem_end > TASK_SIZE {
            return Err(ENOEXEC);
        }
        let start = ph.vaddr & !(PAGE_SIZE - 1);
        let end = page_up(mem_end).ok_or(ENOEXEC)?;
        if start < prev_end {
            // Segments sharing a page: not supported (see module docs).
            return Err(ENOEXEC);
        }
        prev_end = end;
        let flags = MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED;
        mm.mmap(start, end - start, Prot::READ | Prot::WRITE, flags, -1, 0)?;
        copy_to_user(mm, ph.vaddr, &elf[ph.offset as usize..file_end as usize])?;
        let mut prot = Prot::empty();
        for (pf, p) in [(PF_R, Prot::READ), (PF_W, Prot::WRITE), (PF_X, Prot::EXEC)] {
            if ph.flags & pf != 0 {
                prot |= p;
            }
        }
        mm.mprotect(start, end - start, prot)?;
        if (ph.offset..file_end).contains(&phoff) {
            phdr_va = ph.vaddr + (phoff - ph.offset);
        }
    }
    if prev_end == 0 || entry >= TASK_SIZE {
        return Err(ENOEXEC);
    }
    mm.set_brk_start(prev_end);

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
    let sp = build_stack(
        mm,
        argv,
        &[
            (AT_PHDR, phdr_va),
            (AT_PHENT, PHDR_BYTES),
            (AT_PHNUM, phnum),
            (AT_PAGESZ, PAGE_SIZE),
            (AT_ENTRY, entry),
        ],
    )?;
    Ok(Image {
        entry,
        sp,
        start_brk: prev_end,
    })
}

/// Writes the initial stack (module picture) below [`STACK_TOP`] and
/// returns the entry `sp`.
fn build_stack(mm: &KMm, argv: &[String], aux: &[(u64, u64)]) -> Result<u64, Errno> {
    let mut sp = STACK_TOP;
    // AT_RANDOM: 16 bytes from the TSC through xorshift (no entropy pool yet).
    sp -= 16;
    let random_at = sp;
    let mut rng = mm::rand::XorShift64::new(crate::time::now_ns() | 1);
    let mut random = [0u8; 16];
    random[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    random[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    copy_to_user(mm, random_at, &random)?;
    // Strings: argv, then execfn (argv[0] again, as the kernel keeps it).
    let mut argv_ptrs = Vec::new();
    for s in argv.iter().chain(argv.first()) {
        sp -= s.len() as u64 + 1;
        let mut bytes = Vec::from(s.as_bytes());
        bytes.push(0);
        copy_to_user(mm, sp, &bytes)?;
        argv_ptrs.push(sp);
    }
    let execfn = argv_ptrs.pop().unwrap_or(0);
    sp &= !15;
    let mut words: Vec<u64> = Vec::new();
    words.push(argv_ptrs.len() as u64);
    words.extend_from_slice(&argv_ptrs);
    words.push(0); // argv NULL
    words.push(0); // envp NULL
    for &(t, v) in aux {
        words.extend_from_slice(&[t, v]);
    }
    words.extend_from_slice(&[AT_RANDOM, random_at, AT_EXECFN, execfn, AT_NULL, 0]);
    if words.len() % 2 == 1 {
        sp -= 8;
    }
    sp -= words.len() as u64 * 8;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    copy_to_user(mm, sp, &bytes)?;
    debug_assert!(sp.is_multiple_of(16));
    Ok(sp)
}
