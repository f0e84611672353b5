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
//! Process context, may sleep (faults allocate). Other threads of the
//! process may `munmap`, `mprotect` or `MADV_DONTNEED` the page at any
//! time, so the lookup of a page and the copy to or from it run with
//! preemption disabled ([`with_user_page`]): on one CPU nothing else runs
//! in between, so the page found is still mapped (and not freed: a zap
//! frees pages only after its TLB flush, in the zapping thread) while the
//! bytes move. A page that is gone or read-only is faulted in with
//! preemption on and the lookup retried; a page the fault cannot provide
//! is `-EFAULT`. With SMP this is not enough: another CPU can zap the page
//! between lookup and copy. The lookup would then have to take a reference
//! on the folio (Linux's `get_user_pages`) or the copy run on the user
//! address under STAC/CLAC with an exception-table fix-up (Linux's
//! `copy_from_user`), with the TLB shootdown of the zap waiting for it.

use mm::PAGE_SIZE;
use mm::errno::Errno;
use mm::pgtable::{PteFlags, TASK_SIZE};
use mm::platform::Platform;
use mm::vm::FaultAccess;

use crate::process::KMm;

/// Attempts at resolving one page before giving up (a fault that keeps
/// not sticking is a bug, reported as EFAULT).
const MAX_TRIES: usize = 4;

/// The direct-map address of the user page holding `addr` if a present
/// user PTE maps it (writable, for `write`), without faulting; preemption
/// must be off for the result to stay valid (module docs).
fn lookup_page(mm: &KMm, addr: u64, write: bool) -> Option<*mut u8> {
    let page = addr & !(PAGE_SIZE - 1);
    let pte = mm.page_table().get_pte(page)?;
    let f = pte.flags();
    let ok =
        f.contains(PteFlags::PRESENT | PteFlags::USER) && (!write || f.contains(PteFlags::WRITE));
    ok.then(|| {
        let platform = mm.page_table().page_alloc().platform();
        platform.phys_to_virt(pte.pfn().phys_addr())
    })
}

/// Runs `f` on the bytes of the user page holding `addr`, from `addr` to
/// the page's end, with preemption disabled (module docs), faulting the
/// page in for `write` first if needed; returns what `f` returns.
fn with_user_page<R>(
    mm: &KMm,
    addr: u64,
    write: bool,
    f: impl FnOnce(&mut [u8]) -> R,
) -> Result<R, Errno> {
    if addr >= TASK_SIZE {
        return Err(Errno::EFAULT);
    }
    let page = addr & !(PAGE_SIZE - 1);
    let mut f = Some(f);
    for _ in 0..MAX_TRIES {
        {
            let _nopreempt = crate::sched::PreemptGuard::new();
            if let Some(va) = lookup_page(mm, addr, write) {
                let bytes = direct_map_page(va, (addr - page) as usize);
                let f = f.take().expect("called once");
                return Ok(f(bytes));
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
fn direct_map_page<'a>(va: *mut u8, off: usize) -> &'a mut [u8] {
    debug_assert!(off < PAGE_SIZE as usize && (va as u64).is_multiple_of(PAGE_SIZE));
    // SAFETY: 1. `va` is the direct-map address of a frame a user PTE of the
    // current process maps, so it is RAM, mapped, page-aligned and
    // PAGE_SIZE long. 2. The frame stays mapped (and so allocated) while
    // the caller copies: preemption is off from the lookup to the end of
    // the copy, so no other thread of the process can unmap it (module
    // docs); the slice does not outlive that section. 3. User threads may
    // write the page concurrently only while this CPU is in user mode, not
    // during the copy.
    unsafe { core::slice::from_raw_parts_mut(va.add(off), PAGE_SIZE as usize - off) }
}

/// Copies `dst.len()` bytes from user address `src`.
pub fn copy_from_user(mm: &KMm, dst: &mut [u8], src: u64) -> Result<(), Errno> {
    let mut done = 0;
    while done < dst.len() {
        let addr = src.checked_add(done as u64).ok_or(Errno::EFAULT)?;
        let rest = &mut dst[done..];
        done += with_user_page(mm, addr, false, |bytes| {
            let n = bytes.len().min(rest.len());
            rest[..n].copy_from_slice(&bytes[..n]);
            n
        })?;
    }
    Ok(())
}

/// Copies `src` to user address `dst`.
pub fn copy_to_user(mm: &KMm, dst: u64, src: &[u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < src.len() {
        let addr = dst.checked_add(done as u64).ok_or(Errno::EFAULT)?;
        let rest = &src[done..];
        done += with_user_page(mm, addr, true, |bytes| {
            let n = bytes.len().min(rest.len());
            bytes[..n].copy_from_slice(&rest[..n]);
            n
        })?;
    }
    Ok(())
}

/// Runs `f` on the aligned user `u32` at `addr` as an atomic, without
/// faulting (Linux's `pagefault_disable()` + futex atomics): `None` if no
/// present user PTE maps it (writable, for `write`); the caller faults it
/// in ([`fault_in_user`]) with its locks dropped and retries. Preemption
/// is off while `f` runs. `addr` must be 4-aligned and below `TASK_SIZE`.
pub fn with_user_u32_nofault<R>(
    mm: &KMm,
    addr: u64,
    write: bool,
    f: impl FnOnce(&core::sync::atomic::AtomicU32) -> R,
) -> Option<R> {
    debug_assert!(addr.is_multiple_of(4) && addr < TASK_SIZE);
    let _nopreempt = crate::sched::PreemptGuard::new();
    let va = lookup_page(mm, addr, write)?;
    let off = (addr & (PAGE_SIZE - 1)) as usize;
    // SAFETY: 1. `va + off` is inside a frame a present user PTE maps
    // (lookup_page), reached through the direct map, 4-aligned (`addr` is)
    // and 4 bytes long within the page. 2. The frame stays mapped while `f`
    // runs: preemption is off (module docs). 3. User code touches the word
    // only atomically or racily, as Linux's futex word: an AtomicU32 view
    // matches what the futex atomics do.
    let word = unsafe { &*(va.add(off) as *const core::sync::atomic::AtomicU32) };
    Some(f(word))
}

/// Faults in the user page at `addr` for `write` (`fault_in_user_writeable`);
/// `EFAULT` if it cannot be.
pub fn fault_in_user(mm: &KMm, addr: u64, write: bool) -> Result<(), Errno> {
    if addr >= TASK_SIZE {
        return Err(Errno::EFAULT);
    }
    let access = if write {
        FaultAccess::Write
    } else {
        FaultAccess::Read
    };
    mm.handle_fault(addr, access).map_err(|_| Errno::EFAULT)
}

/// Copies a NUL-terminated string of at most `max` bytes (NUL excluded)
/// from `src`; `ENAMETOOLONG` (36) if there is no NUL within them.
pub fn strncpy_from_user(mm: &KMm, src: u64, max: usize) -> Result<alloc::vec::Vec<u8>, Errno> {
    let mut out = alloc::vec::Vec::new();
    loop {
        let addr = src.checked_add(out.len() as u64).ok_or(Errno::EFAULT)?;
        let found = with_user_page(mm, addr, false, |bytes| {
            for &b in bytes.iter() {
                if b == 0 {
                    return Some(Ok(()));
                }
                if out.len() == max {
                    return Some(Err(Errno(36)));
                }
                out.push(b);
            }
            None
        })?;
        match found {
            Some(Ok(())) => return Ok(out),
            Some(Err(e)) => return Err(e),
            None => {}
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
