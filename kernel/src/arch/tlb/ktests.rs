//! In-kernel tests of the TLB shootdown on a real AP (the ktest image
//! runs at `--smp 2`; at one CPU they return at once).
//!
//! The AP loads a test address space in an IPI-run function
//! ([`super::switch_mm_irqs_off`], as its context switch would) and
//! reads a user page through its own TLB; the boot CPU changes the PTE
//! (a CoW break, whose old page stays alive in a forked child), and the
//! AP must read the new page: under QEMU each vCPU has its own TLB, so
//! without the flush IPI it reads the old one. Then the generation skip
//! and the lazy clearing of the AP's bit once it left the address space.
//! Every test gives every frame back.
//!
//! Tasks run on both CPUs, so each test runs pinned to CPU 0
//! ([`PinCpu0`]) and keeps CPU 1 busy in one thread with preemption off
//! ([`HoldCpu`]): a context switch there would load another CR3 under the
//! address space the test loaded, and the next read would fault.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use mm::pgtable::TlbContext;
use mm::vm::{MapFlags, Mm, Prot};
use x86_64::registers::control::{Cr4, Cr4Flags};

use super::{FlushInfo, flush_tlb_func, is_loaded_on, nr_received, nr_skipped, nr_stale};
use crate::arch::entry::kernel_pgd;
use crate::ktest::{HoldCpu, PinCpu0};
use crate::percpu;
use crate::process::{KMm, settled_used_pages, vm};
use crate::smp::ipi;
use crate::uaccess::{copy_from_user, copy_to_user};

pub const KTESTS: &[crate::ktest::KTest] = crate::ktests![
    shootdown_reaches_the_ap_that_runs_the_mm,
    ap_flushed_past_a_generation_skips_it,
    ap_that_left_the_mm_clears_its_bit_and_gets_no_more_ipis,
];

const BASE: u64 = 0x6000_0000;
const MADV_DONTNEED: i64 = 4;
const OLD: u64 = 0xaaaa_aaaa_aaaa_aaaa;
const NEW: u64 = 0xbbbb_bbbb_bbbb_bbbb;

/// An address space with the kernel half, a private page at [`BASE`]
/// holding [`OLD`].
fn new_mm() -> Arc<KMm> {
    let mm = Arc::new(Mm::new(vm()).expect("mm"));
    mm.page_table()
        .clone_kernel_half(mm::PhysAddr::new(kernel_pgd()));
    let flags = MapFlags::PRIVATE
        .union(MapFlags::ANONYMOUS)
        .union(MapFlags::FIXED);
    mm.mmap(
        BASE,
        mm::PAGE_SIZE,
        Prot::READ.union(Prot::WRITE),
        flags,
        -1,
        0,
    )
    .expect("mmap");
    copy_to_user(&mm, BASE, &OLD.to_le_bytes()).expect("user word");
    mm
}

/// Runs `f` on CPU 1 in its IPI context and returns its result.
fn on_ap(f: impl Fn() -> u64 + Sync) -> u64 {
    let out = AtomicU64::new(0);
    let n = ipi::smp_call_function_many(1 << 1, &|| out.store(f(), Ordering::Relaxed));
    assert_eq!(n, 1, "CPU 1 ran the call");
    out.load(Ordering::Relaxed)
}

/// On CPU 1: loads `mm` (`None`: the boot PGD) as its context switch
/// would.
fn ap_load(mm: Option<&KMm>) {
    let (pgd, ctx) = match mm {
        Some(mm) => (
            mm.page_table().root().as_u64(),
            Some(mm.page_table().tlb_context()),
        ),
        None => (kernel_pgd(), None),
    };
    on_ap(|| {
        let ctx = ctx.map_or(core::ptr::null(), core::ptr::from_ref);
        // SAFETY: `pgd` is the boot PGD or `mm`'s, whose kernel half is
        // the boot PGD's (new_mm); the test loads the boot PGD on CPU 1
        // again before it drops `mm`, so the context outlives its load.
        unsafe { super::switch_mm_irqs_off(pgd, ctx) };
        0
    });
}

/// On CPU 1: the word at `addr` read through its TLB and CR3.
fn ap_read(addr: u64) -> u64 {
    on_ap(|| {
        let smap = Cr4::read().contains(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
        // SAFETY: 1. CPU 1 has the test address space loaded, which maps
        // `addr` (old or new page: both are live frames, the old one kept
        // by the forked child); 2. `stac`/`clac` (only with SMAP on) open
        // the user-access window around this one aligned read and close it
        // again, with interrupts off in the IPI handler.
        unsafe {
            if smap {
                core::arch::asm!("stac", options(nomem, nostack));
            }
            let v = core::ptr::read_volatile(addr as *const u64);
            if smap {
                core::arch::asm!("clac", options(nomem, nostack));
            }
            v
        }
    })
}

fn user_word(mm: &KMm, at: u64) -> u64 {
    let mut b = [0u8; 8];
    copy_from_user(mm, &mut b, at).expect("user word");
    u64::from_le_bytes(b)
}

fn ctx(mm: &KMm) -> &TlbContext {
    mm.page_table().tlb_context()
}

/// The AP has the address space loaded and a translation of the page
/// cached; the boot CPU breaks CoW on it; the AP reads the new page.
fn shootdown_reaches_the_ap_that_runs_the_mm() {
    if percpu::nr_online_cpus() < 2 {
        return;
    }
    let _pin = PinCpu0::pin();
    let before = settled_used_pages();
    let mm = new_mm();
    assert_eq!(ctx(&mm).cpumask(), 0, "never loaded");
    let hold = HoldCpu::new(1);
    ap_load(Some(&mm));
    assert!(ctx(&mm).has_cpu(1), "loading set the AP's bit");
    assert!(is_loaded_on(ctx(&mm), 1));
    assert!(!ctx(&mm).has_cpu(0), "the boot CPU never loaded it");
    assert_eq!(ap_read(BASE), OLD);

    // fork write-protects the parent's PTE and flushes: one IPI.
    let remote = super::NR_TLB_REMOTE_FLUSH.load(Ordering::Relaxed);
    let received = nr_received(1);
    let child = mm.fork().expect("fork");
    assert!(nr_received(1) > received, "fork's flush reached the AP");
    assert!(super::NR_TLB_REMOTE_FLUSH.load(Ordering::Relaxed) > remote);
    // The AP caches the read-only translation of the shared page.
    assert_eq!(ap_read(BASE), OLD);

    // The CoW break: a new page for the parent, the old kept by the child.
    let received = nr_received(1);
    copy_to_user(&mm, BASE, &NEW.to_le_bytes()).expect("user word");
    assert!(nr_received(1) > received, "the CoW flush reached the AP");
    assert_eq!(user_word(&child, BASE), OLD, "the child keeps the old page");
    assert_eq!(
        ap_read(BASE),
        NEW,
        "the AP read through a stale translation of the old page"
    );

    ap_load(None);
    drop(hold);
    drop(child);
    drop(mm);
    assert_eq!(settled_used_pages(), before, "frames leaked");
}

/// A request whose generation the AP has flushed past already (a later
/// full flush covered it) is skipped, not flushed again.
fn ap_flushed_past_a_generation_skips_it() {
    if percpu::nr_online_cpus() < 2 {
        return;
    }
    let _pin = PinCpu0::pin();
    let mm = new_mm();
    let hold = HoldCpu::new(1);
    ap_load(Some(&mm));
    let c = ctx(&mm);
    // An old request, then a full flush that the AP does.
    let old_gen = c.inc_tlb_gen();
    mm.page_table().flush_tlb(None);
    let skipped = nr_skipped(1);
    let info = FlushInfo {
        ctx: c,
        range: Some((BASE, BASE + mm::PAGE_SIZE)),
        new_gen: old_gen,
    };
    ipi::smp_call_function_many(1 << 1, &|| flush_tlb_func(&info, false));
    assert_eq!(nr_skipped(1), skipped + 1, "the AP skipped the old request");
    ap_load(None);
    drop(hold);
    drop(mm);
}

/// The AP moved to the boot PGD: its bit stays set until the next flush
/// finds it elsewhere and clears it (Linux's lazy `mm_cpumask`); later
/// flushes send no IPI.
fn ap_that_left_the_mm_clears_its_bit_and_gets_no_more_ipis() {
    if percpu::nr_online_cpus() < 2 {
        return;
    }
    let _pin = PinCpu0::pin();
    let before = settled_used_pages();
    let mm = new_mm();
    let hold = HoldCpu::new(1);
    ap_load(Some(&mm));
    assert_eq!(ap_read(BASE), OLD);
    ap_load(None);
    assert!(ctx(&mm).has_cpu(1), "the bit is cleared lazily");
    assert!(!is_loaded_on(ctx(&mm), 1));
    let stale = nr_stale(1);
    mm.madvise(BASE, mm::PAGE_SIZE, MADV_DONTNEED)
        .expect("madvise");
    assert_eq!(nr_stale(1), stale + 1, "the AP took one stale IPI");
    assert!(!ctx(&mm).has_cpu(1), "and cleared its bit");
    let remote = super::NR_TLB_REMOTE_FLUSH.load(Ordering::Relaxed);
    let received = nr_received(1);
    copy_to_user(&mm, BASE, &NEW.to_le_bytes()).expect("user word");
    mm.madvise(BASE, mm::PAGE_SIZE, MADV_DONTNEED)
        .expect("madvise");
    assert_eq!(super::NR_TLB_REMOTE_FLUSH.load(Ordering::Relaxed), remote);
    assert_eq!(nr_received(1), received, "no IPI to a CPU off the mask");
    drop(hold);
    drop(mm);
    assert_eq!(settled_used_pages(), before, "frames leaked");
}
