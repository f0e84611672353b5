//! Copying from and to user memory (`copy_from_user`, `copy_to_user`,
//! `strncpy_from_user`), Linux's contract: a bad user pointer returns
//! `-EFAULT`, never a kernel fault.
//!
//! The kernel never dereferences a user address: each page is resolved in
//! the process's page tables (`get_pte`), faulted in through the `Mm`'s
//! fault path when it is missing or read-only for a write (exactly what the
//! MMU would have asked for), and reached through the direct map — the way
//! Linux's `get_user_pages()` + `kmap` work. So SMAP can stay on with no
//! `stac`/`clac` window, and no exception-table fixup is needed.
//!
//! # Context
//!
//! Process context, may sleep (faults allocate). The page found stays
//! mapped during the copy because only the process's own thread changes its
//! address space (process P3).

use mm::PAGE_SIZE;
use mm::errno::Errno;
use mm::pgtable::{PteFlags, TASK_SIZE};
use mm::platform::Platform;
use mm::vm::FaultAccess;

use crate::process::KMm;

/// Attempts at resolving one page before giving up (a fault that keeps
/// not sticking is a bug, reported as EFAULT).
const MAX_TRIES: usize = 4;

/// The direct-map bytes of the user page holding `addr`, from `addr` to the
/// page's end, faulting it in for `write` if needed.
fn user_page(mm: &KMm, addr: u64, write: bool) -> Result<&'static mut [u8], Errno> {
    if addr >= TASK_SIZE {
        return Err(Errno::EFAULT);
    }
    let page = addr & !(PAGE_SIZE - 1);
    for _ in 0..MAX_TRIES {
        if let Some(pte) = mm.page_table().get_pte(page) {
            let f = pte.flags();
            let ok = f.contains(PteFlags::PRESENT | PteFlags::USER)
                && (!write || f.contains(PteFlags::WRITE));
            if ok {
                let platform = mm.page_table().page_alloc().platform();
                let va = platform.phys_to_virt(pte.pfn().phys_addr());
                let off = (addr - page) as usize;
                return Ok(direct_map_page(va, off));
            }
        }
        let access = if write {
            FaultAccess::Write
        } else {
            FaultAccess::Read
        };
        mm.handle_fault(addr, access).map_err(|_| Errno::EFAULT)?;
    }
    Err(Errno::EFAULT)
}

/// The bytes `[off, PAGE_SIZE)` of the direct-map page at `va`: the one
/// place this module touches memory by pointer.
fn direct_map_page(va: *mut u8, off: usize) -> &'static mut [u8] {
    debug_assert!(off < PAGE_SIZE as usize && (va as u64).is_multiple_of(PAGE_SIZE));
    // SAFETY: 1. `va` is the direct-map address of a frame a user PTE of the
    // current process maps, so it is RAM, mapped, page-aligned and
    // PAGE_SIZE long. 2. The frame stays mapped (and so allocated) while
    // the syscall copies (P3); the returned slice does not outlive the
    // copy in the callers above. 3. The user may access the page
    // concurrently only from its own thread, which is in this syscall.
    unsafe { core::slice::from_raw_parts_mut(va.add(off), PAGE_SIZE as usize - off) }
}

/// Copies `dst.len()` bytes from user address `src`.
pub fn copy_from_user(mm: &KMm, dst: &mut [u8], src: u64) -> Result<(), Errno> {
    let mut done = 0;
    while done < dst.len() {
        let addr = src.checked_add(done as u64).ok_or(Errno::EFAULT)?;
        let bytes = user_page(mm, addr, false)?;
        let n = bytes.len().min(dst.len() - done);
        dst[done..done + n].copy_from_slice(&bytes[..n]);
        done += n;
    }
    Ok(())
}

/// Copies `src` to user address `dst`.
pub fn copy_to_user(mm: &KMm, dst: u64, src: &[u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < src.len() {
        let addr = dst.checked_add(done as u64).ok_or(Errno::EFAULT)?;
        let bytes = user_page(mm, addr, true)?;
        let n = bytes.len().min(src.len() - done);
        bytes[..n].copy_from_slice(&src[done..done + n]);
        done += n;
    }
    Ok(())
}

/// Copies a NUL-terminated string of at most `max` bytes (NUL excluded)
/// from `src`; `ENAMETOOLONG` (36) if there is no NUL within them.
pub fn strncpy_from_user(mm: &KMm, src: u64, max: usize) -> Result<alloc::vec::Vec<u8>, Errno> {
    let mut out = alloc::vec::Vec::new();
    loop {
        let addr = src.checked_add(out.len() as u64).ok_or(Errno::EFAULT)?;
        let bytes = user_page(mm, addr, false)?;
        for &b in bytes.iter() {
            if b == 0 {
                return Ok(out);
            }
            if out.len() == max {
                return Err(Errno(36));
            }
            out.push(b);
        }
    }
}

/// The little-endian 64-bit word at byte `at` of `b` (a struct copied from
/// user memory); 0 past the end.
pub fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|w| w.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}
