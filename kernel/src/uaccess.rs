//! Copying from and to user memory (`copy_from_user`, `copy_to_user`,
//! `strncpy_from_user`), Linux's contract: a bad user pointer returns
//! `-EFAULT`, never a kernel fault.
//!
//! Two paths, chosen per call by whether the address space is the one
//! loaded in CR3 on this CPU:
//!
//! - **The current address space** (every syscall's own buffers): the
//!   bytes move by their user address, with `rep movsq`/`rep movsb` inside a
//!   `stac`/`clac` window ([`crate::arch::uaccess`], Linux's
//!   `copy_user_generic`). A missing or read-only page faults in kernel
//!   mode; the `#PF` handler resolves it through the `Mm`'s fault path
//!   ([`resolve_fault`], counted in `min_flt` as Linux's
//!   `mm_account_fault` does) and the copy resumes, or, if it cannot be
//!   resolved, the copy stops at the exception-table fix-up and the call
//!   returns `EFAULT`. Nothing is looked up in software, and another CPU
//!   that unmaps the page meanwhile only makes the copy fault, as it would
//!   make a user-mode access fault: the TLB shootdown that precedes
//!   freeing the page reaches this CPU because the address space is
//!   loaded here.
//! - **Another address space** (exec building a new stack, fork writing
//!   the parent's TID, `/proc/PID/cmdline`): no user address of it is
//!   mapped here, so each page is resolved in that address space's page
//!   tables (`get_pte`), faulted in through its `Mm` when missing or
//!   read-only for a write, and reached through the direct map (Linux's
//!   `access_remote_vm()`: `get_user_pages_remote()` + `kmap`).
//!
//! # Context
//!
//! Process context, may sleep (faults allocate): no spinlock held, and
//! not the mmap lock of the address space for write.
//!
//! On the remote path the lookup of a page and the copy to or from it run
//! with interrupts off and this CPU's bit set in the address space's
//! `mm_cpumask` ([`with_user_page`]), as if it had the address space
//! loaded: the threads of that address space may run on other CPUs and
//! unmap the page meanwhile, but every unmap, `MADV_DONTNEED` or CoW
//! break clears the PTE, then flushes the TLBs of the CPUs in the mask by
//! an IPI that waits for each of them, and only then frees the page (and,
//! after an RCU grace period, the page tables): the IPI waits for this
//! copy to end, because interrupts are off. The bit is set with a locked
//! RMW before the PTE is read and the flusher's generation bump is one
//! between its PTE change and its read of the mask
//! (`mm::pgtable::TlbContext` T2), so either the flusher sees the bit or
//! this CPU sees the changed PTE. The bit is cleared after the copy (the
//! address space is not loaded here: Linux's lazy clearing would clear it
//! at the next flush anyway). Linux takes a folio reference instead
//! (`get_user_pages_remote()`); this keeps the path free of reference
//! counting at the price of one stale IPI for a concurrent flusher.
//! The futex word ([`with_user_u32_nofault`], of the current address
//! space in every syscall) is read with interrupts off, Linux's GUP-fast rule:
//! a CPU that zaps the page must flush this CPU's TLB by IPI before it
//! frees the page, and that IPI waits for interrupts to come back on.

use mm::PAGE_SIZE;
use mm::errno::Errno;
use mm::pgtable::{PteFlags, TASK_SIZE};
use mm::platform::Platform;
use mm::vm::FaultAccess;

use crate::arch::uaccess::copy_user;
use crate::process::KMm;

/// Attempts at resolving one page before giving up (a fault that keeps
/// not sticking is a bug, reported as EFAULT).
const MAX_TRIES: usize = 4;

/// The direct-map address of the user page holding `addr` if a present
/// user PTE maps it (writable, for `write`), without faulting; valid only
/// inside [`with_user_page`]'s section (module docs).
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
/// the page's end, with interrupts off and this CPU in `mm`'s
/// `mm_cpumask` (module docs), faulting the page in for `write` first if
/// needed; returns what `f` returns. `mm` is not loaded on this CPU.
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
        let irqs = crate::sync::irq_save();
        let ctx = mm.page_table().tlb_context();
        let cpu = crate::percpu::cpu_id();
        ctx.set_cpu(cpu);
        let done = lookup_page(mm, addr, write).map(|va| {
            let bytes = direct_map_page(va, (addr - page) as usize);
            f.take().expect("called once")(bytes)
        });
        ctx.clear_cpu(cpu);
        crate::sync::irq_restore(irqs);
        if let Some(r) = done {
            return Ok(r);
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
    // SAFETY: 1. `va` is the direct-map address of a frame a user PTE
    // maps, so it is RAM, mapped, page-aligned and PAGE_SIZE long. 2. The
    // frame stays allocated while the caller copies: in `with_user_page`
    // this CPU is in the address space's mm_cpumask with interrupts off
    // from the lookup to the end of the copy, so a zap's flush IPI, which
    // comes before the free, waits for the copy (module docs), or, in
    // `access_remote_vm`, the caller holds the lock of the PTE that maps
    // it, which every unmap and fork takes; the slice does not outlive
    // that section. 3. User threads may
    // write the page concurrently only while this CPU is in user mode, not
    // during the copy.
    unsafe { core::slice::from_raw_parts_mut(va.add(off), PAGE_SIZE as usize - off) }
}

/// Whether `mm`'s page tables are the ones in CR3 on this CPU (the
/// address space of the running task).
fn loaded(mm: &KMm) -> bool {
    let (frame, _) = x86_64::registers::control::Cr3::read_raw();
    frame.start_address().as_u64() == mm.page_table().root().as_u64()
}

/// Whether `[addr, addr + len)` is a user range (empty ranges are).
fn user_range(addr: u64, len: usize) -> Result<(), Errno> {
    match addr.checked_add(len as u64) {
        Some(end) if end <= TASK_SIZE => Ok(()),
        _ => Err(Errno::EFAULT),
    }
}

/// The loaded address space's path of [`copy_from_user`] and
/// [`copy_to_user`]: `len` bytes from `src` to `dst`, one of them the user
/// address `user`, by [`copy_user`]; `EFAULT` for a range that is not
/// user memory or a fault that could not be resolved.
///
/// # Safety
///
/// The kernel side (`dst` or `src`) is valid for `len` bytes, and the
/// address space in CR3 is the one `user` belongs to.
unsafe fn copy_loaded(dst: *mut u8, src: *const u8, len: usize, user: u64) -> Result<(), Errno> {
    user_range(user, len)?;
    // SAFETY: the kernel side is valid for `len` bytes (our contract); the
    // user range lies below TASK_SIZE (checked above) in the address space
    // loaded here; callers run in process context with interrupts on
    // (module Context).
    let left = unsafe { copy_user(dst, src, len) };
    if left == 0 {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

/// Copies `dst.len()` bytes from user address `src`.
pub fn copy_from_user(mm: &KMm, dst: &mut [u8], src: u64) -> Result<(), Errno> {
    if dst.is_empty() {
        return Ok(());
    }
    if loaded(mm) {
        // SAFETY: `dst` is a kernel buffer of `dst.len()` bytes, and
        // `mm`, which `src` belongs to, is loaded here.
        return unsafe { copy_loaded(dst.as_mut_ptr(), src as *const u8, dst.len(), src) };
    }
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
    if src.is_empty() {
        return Ok(());
    }
    if loaded(mm) {
        // SAFETY: `src` is a kernel buffer of `src.len()` bytes, and
        // `mm`, which `dst` belongs to, is loaded here.
        return unsafe { copy_loaded(dst as *mut u8, src.as_ptr(), src.len(), dst) };
    }
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

/// The user-access fault hook ([`crate::arch::uaccess`]): resolves a
/// fault at `addr` that a copy of the running process took in kernel
/// mode, through its `Mm` (Linux's `do_user_addr_fault()` for a kernel
/// access); true if the copy may retry. Counted in `min_flt`.
pub fn resolve_fault(addr: u64, write: bool) -> bool {
    let Some(me) = crate::process::thread::current_thread() else {
        return false;
    };
    let Some(mm) = me.process.mm() else {
        return false;
    };
    let access = if write {
        FaultAccess::Write
    } else {
        FaultAccess::Read
    };
    let ok = mm.handle_fault(addr, access).is_ok();
    if ok {
        me.process
            .min_flt
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }
    ok
}

/// Runs `f` on the aligned user `u32` at `addr` as an atomic, without
/// faulting (Linux's `pagefault_disable()` + futex atomics): `None` if no
/// present user PTE maps it (writable, for `write`); the caller faults it
/// in ([`fault_in_user`]) with its locks dropped and retries. Interrupts
/// are off while `f` runs. `addr` must be 4-aligned and below `TASK_SIZE`.
pub fn with_user_u32_nofault<R>(
    mm: &KMm,
    addr: u64,
    write: bool,
    f: impl FnOnce(&core::sync::atomic::AtomicU32) -> R,
) -> Option<R> {
    debug_assert!(addr.is_multiple_of(4) && addr < TASK_SIZE);
    x86_64::instructions::interrupts::without_interrupts(|| {
        let va = lookup_page(mm, addr, write)?;
        let off = (addr & (PAGE_SIZE - 1)) as usize;
        // SAFETY: 1. `va + off` is inside a frame a present user PTE maps
        // (lookup_page), reached through the direct map, 4-aligned (`addr`
        // is) and 4 bytes long within the page. 2. The frame stays mapped
        // while `f` runs: interrupts are off (module Context: nothing else
        // runs on this CPU, and a zap on another CPU waits for this one's
        // TLB-flush IPI before freeing the frame). 3. User code touches the
        // word only atomically or racily, as Linux's futex word: an
        // AtomicU32 view matches what the futex atomics do.
        let word = unsafe { &*(va.add(off) as *const core::sync::atomic::AtomicU32) };
        Some(f(word))
    })
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
    if loaded(mm) {
        // Chunks that never cross a page boundary: a string that ends
        // before an unmapped page is copied without touching that page.
        let mut chunk = [0u8; 256];
        loop {
            let addr = src.checked_add(out.len() as u64).ok_or(Errno::EFAULT)?;
            let to_page_end = (PAGE_SIZE - (addr & (PAGE_SIZE - 1))) as usize;
            let n = to_page_end.min(chunk.len()).min(max + 1 - out.len());
            copy_from_user(mm, &mut chunk[..n], addr)?;
            if let Some(nul) = chunk[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..nul]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..n]);
            if out.len() > max {
                return Err(Errno(36));
            }
        }
    }
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

/// Copies between `buf` and `mm`'s memory at `addr` as a debugger does
/// (`access_remote_vm()` with `FOLL_FORCE`, `/proc/PID/mem`): each page
/// reached by [`KMm::access_remote_page`] (a forced write to read-only
/// private memory breaks its copy-on-write and leaves it read-only) and
/// copied through the direct map under its PTE lock. Returns the bytes
/// copied before the first page that could not be reached.
pub fn access_remote_vm(mm: &KMm, addr: u64, buf: &mut [u8], write: bool) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let Some(at) = addr.checked_add(done as u64).filter(|&a| a < TASK_SIZE) else {
            break;
        };
        let off = (at % PAGE_SIZE) as usize;
        let n = (buf.len() - done).min(PAGE_SIZE as usize - off);
        let part = &mut buf[done..done + n];
        let platform = mm.page_table().page_alloc().platform();
        let r = mm.access_remote_page(at, write, |pfn| match pfn {
            Some(pfn) => {
                let va = platform.phys_to_virt(pfn.phys_addr());
                let bytes = &mut direct_map_page(va, off)[..n];
                if write {
                    bytes.copy_from_slice(part);
                } else {
                    part.copy_from_slice(bytes);
                }
            }
            // A never-touched page without access rights reads as zeros.
            None => part.fill(0),
        });
        if r.is_err() {
            break;
        }
        done += n;
    }
    done
}

/// The little-endian 64-bit word at byte `at` of `b` (a struct copied from
/// user memory); 0 past the end.
pub fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|w| w.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}
