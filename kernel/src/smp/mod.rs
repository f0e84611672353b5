//! Symmetric multiprocessing: finding the CPUs and starting the
//! application processors (Linux's `arch/x86/kernel/acpi/boot.c` and
//! `arch/x86/kernel/smpboot.c`).
//!
//! - [`acpi`]: the ACPI MADT through the `acpi` crate: the processors'
//!   APIC ids, the I/O APICs, the ISA interrupt overrides.
//! - [`trampoline`]: the real-mode page an AP starts in, and its way into
//!   long mode.
//! - [`ipi`]: function calls on other CPUs (`smp_call_function_many`,
//!   `on_each_cpu`) and the reschedule IPI.
//!
//! # Bring-up order
//!
//! 1. [`discover`] (boot CPU, before `memory::init`): reads the MADT,
//!    numbers the CPUs (boot CPU 0, then MADT order), records each one's
//!    APIC id in its per-CPU record and sets `nr_cpu_ids`
//!    (`percpu::set_nr_possible`), so that mm sizes its per-CPU arrays for
//!    every CPU that may come online.
//! 2. [`report`] (after the log level is set): one line per CPU found,
//!    one per I/O APIC and interrupt override, and Linux's
//!    `smpboot: Allowing N CPUs` summary.
//! 3. [`boot_aps`] (boot CPU, the last step of `kernel::init`: the
//!    scheduler, RCU and the process layer are up): for each AP in turn
//!    (Linux's `do_boot_cpu`), its idle task `swapper/N` (whose stack the
//!    AP starts on) and four IST stacks (guarded kernel stacks), the
//!    trampoline patched with them, then INIT, 10 ms, STARTUP, 200 us,
//!    STARTUP (`wakeup_secondary_cpu_via_init`); then up to a second for
//!    the AP to mark itself online. One line per CPU that came online.
//! 4. [`ap_start`], on the AP (`start_secondary`): the boot PGD in CR3;
//!    CR0, CR4 and EFER as the boot CPU has them; GS base at its per-CPU
//!    record; its own GDT and TSS with its IST stacks; the shared IDT; the
//!    `SYSCALL` MSRs and SSE; its local APIC (the boot CPU's x2APIC or
//!    xAPIC mode) with the periodic timer at the boot CPU's calibrated
//!    period; its idle task as `current`; online; interrupts on.
//!
//! # What an AP does, and does not do yet
//!
//! At the end of its bring-up an AP comes online for RCU, becomes
//! *active* (Linux's `cpu_active_mask`: the scheduler places tasks on it)
//! and *online*, and enters its idle loop; the boot CPU then starts its
//! `rcuc/N` thread, bound to it. From then on it is a CPU like the boot
//! CPU: its tick runs the tick hooks and `scheduler_tick`, wakeups and new
//! tasks are placed on it (`sched::core`: an idle allowed CPU first), its
//! idle loop pulls queued tasks from the busiest CPU, it takes reschedule
//! IPIs (which preempt, and from user mode run the return-to-user loop),
//! function-call IPIs, TLB shootdowns (`arch::tlb`, for every address
//! space it loaded) and kernel-stack purges (`sched::stack`). Before it is
//! active its tick is only counted (`time`'s `parked_tick`).
//!
//! It does not receive device interrupts (the I/O APIC is not programmed;
//! the serial console is polled), and there is no periodic load balancing
//! between busy CPUs yet (only the idle pull).

pub mod acpi;
pub mod ipi;
pub mod ktests;
pub mod trampoline;

use core::sync::atomic::{AtomicU64, Ordering};

use bootloader_api::BootInfo;
use bootloader_api::info::MemoryRegionKind;
use spin::Once;
use x86_64::registers::control::{Cr0, Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::Msr;
use x86_64::structures::paging::PhysFrame;

use crate::arch::{entry, fpu, gdt, idt};
use crate::percpu::{self, MAX_CPUS};
use crate::sched::{self, stack::KernelStack};
use crate::time::{self, apic};

static TOPOLOGY: Once<acpi::Topology> = Once::new();

/// The CPUs and interrupt controllers [`discover`] found; panics before it.
pub fn topology() -> &'static acpi::Topology {
    TOPOLOGY.get().expect("smp::discover has not run")
}

/// Reads the MADT and fixes `nr_cpu_ids`; see the module docs. Once, on
/// the boot CPU, after `percpu::init_boot_cpu` and before `memory::init`.
pub fn discover(boot_info: &BootInfo) -> &'static acpi::Topology {
    let topo = TOPOLOGY.call_once(|| acpi::discover(boot_info));
    for (cpu, desc) in topo.cpus().iter().enumerate() {
        percpu::per_cpu(cpu as u32).set_apic_id(desc.apic_id);
    }
    percpu::set_nr_possible(topo.nr_cpus);
    topo
}

/// Logs what [`discover`] found, in the manner of Linux's boot log.
pub fn report() {
    let topo = topology();
    if !topo.from_madt {
        log::warn!("smp: no ACPI MADT found, assuming a uniprocessor");
    }
    for (cpu, desc) in topo.cpus().iter().enumerate() {
        log::info!(
            "smp: CPU#{cpu}: APIC id {:#x}, ACPI id {:#x} (MADT {}){}",
            desc.apic_id,
            desc.acpi_id,
            if desc.x2apic_entry {
                "Local x2APIC"
            } else {
                "Local APIC"
            },
            if cpu == 0 { ", boot CPU" } else { "" },
        );
    }
    for (i, io) in topo.io_apics().iter().enumerate() {
        log::info!(
            "IOAPIC[{i}]: apic_id {}, version {}, address {:#x}, GSI {}-{}",
            io.id,
            io.version,
            io.address,
            io.gsi_base,
            io.gsi_base + io.nr_gsis - 1,
        );
    }
    for ovr in topo.overrides() {
        log::info!(
            "ACPI: INT_SRC_OVR (bus 0 bus_irq {} global_irq {} {} {})",
            ovr.bus_irq,
            ovr.gsi,
            ["dfl", "high", "res", "low"][usize::from(ovr.flags & 3)],
            ["dfl", "edge", "res", "level"][usize::from((ovr.flags >> 2) & 3)],
        );
    }
    if topo.nr_ignored > 0 {
        log::warn!(
            "smp: {} CPUs beyond NR_CPUS ({}) ignored",
            topo.nr_ignored,
            percpu::MAX_CPUS
        );
    }
    log::info!(
        "smpboot: Allowing {} CPUs, {} hotplug CPUs; local APICs at {:#x}{}",
        topo.nr_cpus,
        topo.nr_disabled,
        topo.lapic_address,
        if topo.has_8259 {
            ", dual 8259 present (masked)"
        } else {
            ""
        },
    );
}

/// `IA32_EFER`.
const IA32_EFER: u32 = 0xc000_0080;
/// How long the boot CPU waits for an AP to come online (Linux waits 10 s;
/// a started AP here takes well under a millisecond, even under TCG).
const AP_ONLINE_TIMEOUT_NS: u64 = 1_000_000_000;

/// The boot CPU's CR0, CR4 and EFER, which every AP copies.
static BSP_CR0: AtomicU64 = AtomicU64::new(0);
static BSP_CR4: AtomicU64 = AtomicU64::new(0);
static BSP_EFER: AtomicU64 = AtomicU64::new(0);
/// Each AP's IST stack tops, written by the boot CPU before it starts the
/// AP (the INIT/SIPI sequence orders them before the AP's reads).
static AP_IST_TOPS: [[AtomicU64; gdt::NR_IST_STACKS]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; gdt::NR_IST_STACKS] }; MAX_CPUS];

/// What each AP saw of itself once up (Linux's `smp_callin`): bit 63 set,
/// then its per-CPU id (through GS) in bits 32..63 and its local APIC's id
/// register in bits 0..32. Written once by the AP.
static CALLIN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// What AP `cpu` reported of itself: (its per-CPU id read through its own
/// GS base, its local APIC id read from its own APIC), or `None` if it
/// never came up.
pub fn callin(cpu: u32) -> Option<(u32, u32)> {
    let v = CALLIN.get(cpu as usize)?.load(Ordering::Acquire);
    (v >> 63 != 0).then_some((((v >> 32) & 0x7fff_ffff) as u32, v as u32))
}

/// Busy-waits `ns` nanoseconds on the TSC clock.
fn udelay_ns(ns: u64) {
    let end = time::now_ns() + ns;
    while time::now_ns() < end {
        core::hint::spin_loop();
    }
}

/// The lowest [`trampoline::NR_PAGES`] pages of usable RAM below 1 MiB
/// (page 0 aside: the real-mode interrupt table), if the firmware left
/// any.
fn find_trampoline_pages() -> Option<u64> {
    let need = trampoline::NR_PAGES * 4096;
    crate::memory::layout()
        .regions
        .iter()
        .filter(|r| r.kind == MemoryRegionKind::Usable)
        .filter_map(|r| {
            let start = r.start.max(0x1000).next_multiple_of(4096);
            let end = r.end.min(1 << 20);
            (start + need <= end).then_some(start)
        })
        .min()
}

/// Starts every AP of the MADT; see the module docs. Once, on the boot
/// CPU, at the end of `kernel::init`. Returns the number of CPUs online.
pub fn boot_aps() -> usize {
    ipi::init();
    let topo = topology();
    if topo.nr_cpus == 1 {
        return 1;
    }
    if Cr4::read().contains(Cr4Flags::L5_PAGING) {
        log::warn!("smpboot: 5-level paging: the trampoline builds 4 levels; APs not started");
        return 1;
    }
    let Some(pa) = find_trampoline_pages() else {
        log::warn!("smpboot: no usable RAM below 1 MiB for the trampoline; APs not started");
        return 1;
    };
    let phys_offset = crate::memory::page_alloc().platform().phys_offset();
    let tramp = trampoline::Trampoline::new(pa, phys_offset);
    tramp.install(entry::kernel_pgd(), ap_start as *const () as u64);
    BSP_CR0.store(Cr0::read_raw(), Ordering::Relaxed);
    BSP_CR4.store(Cr4::read_raw(), Ordering::Relaxed);
    // SAFETY: EFER exists on every x86_64 CPU; reading it has no effect.
    BSP_EFER.store(unsafe { Msr::new(IA32_EFER).read() }, Ordering::Relaxed);
    log::info!(
        "smp: Bringing up secondary CPUs ... (trampoline at {pa:#x}, {:?})",
        apic::mode().expect("time::init ran")
    );
    for cpu in 1..topo.nr_cpus as u32 {
        if let Err(why) = boot_one(&tramp, cpu) {
            log::error!("smpboot: CPU#{cpu}: {why}; not starting the CPUs after it");
            break;
        }
        crate::rcu::start_cpu(cpu);
        let rec = percpu::per_cpu(cpu);
        log::info!(
            "smpboot: CPU#{cpu} (APIC id {:#x}) online: {:?}, idle task swapper/{cpu}, active",
            rec.apic_id(),
            apic::mode().expect("time::init ran"),
        );
    }
    let online = percpu::nr_online_cpus();
    log::info!("smp: Brought up 1 node, {online} CPUs");
    online
}

/// Starts AP `cpu` through the trampoline (Linux's `do_boot_cpu`) and
/// waits for it to come online.
fn boot_one(tramp: &trampoline::Trampoline, cpu: u32) -> Result<(), &'static str> {
    let stack_top = sched::init_idle_ap(cpu).map_err(|_| "no memory for its idle task")?;
    for slot in &AP_IST_TOPS[cpu as usize] {
        let stack = KernelStack::new().map_err(|_| "no memory for its IST stacks")?;
        slot.store(stack.top(), Ordering::Relaxed);
        // The AP's TSS uses it for good (gdt I1).
        core::mem::forget(stack);
    }
    tramp.prepare(stack_top, u64::from(cpu));
    let apic_id = percpu::per_cpu(cpu).apic_id();
    x86_64::instructions::interrupts::without_interrupts(|| {
        // Clear stale errors, then INIT (assert; the xAPIC also wants the
        // level de-assert, which the x2APIC does not have).
        apic::write(apic::reg::ESR, 0);
        apic::send_ipi(
            apic_id,
            apic::ICR_DM_INIT | apic::ICR_LEVEL_TRIGGER | apic::ICR_LEVEL_ASSERT,
        );
        if apic::mode() == Some(apic::ApicMode::XApic) {
            apic::send_ipi(apic_id, apic::ICR_DM_INIT | apic::ICR_LEVEL_TRIGGER);
        }
    });
    udelay_ns(10_000_000);
    for _ in 0..2 {
        x86_64::instructions::interrupts::without_interrupts(|| {
            apic::write(apic::reg::ESR, 0);
            apic::send_ipi(
                apic_id,
                apic::ICR_DM_STARTUP | u32::from(tramp.sipi_vector()),
            );
        });
        udelay_ns(200_000);
        if percpu::per_cpu(cpu).is_online() {
            return Ok(());
        }
    }
    let deadline = time::now_ns() + AP_ONLINE_TIMEOUT_NS;
    while !percpu::per_cpu(cpu).is_online() {
        if time::now_ns() > deadline {
            return Err("not responding to INIT-SIPI-SIPI");
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// Where an AP arrives from the trampoline, on its idle task's stack, with
/// interrupts off; see the module docs (Linux's `start_secondary`).
extern "C" fn ap_start(cpu: u64) -> ! {
    let cpu = cpu as u32;
    let pgd = PhysFrame::containing_address(x86_64::PhysAddr::new(entry::kernel_pgd()));
    // SAFETY: 1. The boot PGD maps the kernel half exactly as the
    // trampoline's PML4 does (its entries are copies), so this code, its
    // stack and its data stay mapped. 2. CR0, CR4 and EFER take the boot
    // CPU's values, which this CPU supports (same CPUID on every vCPU; no
    // 5-level paging, checked in `boot_aps`). 3. Nothing here touches
    // per-CPU data until `percpu::init_ap` has set the GS base.
    unsafe {
        Cr3::write(pgd, Cr3Flags::empty());
        Cr0::write_raw(BSP_CR0.load(Ordering::Relaxed));
        Cr4::write_raw(BSP_CR4.load(Ordering::Relaxed));
        Msr::new(IA32_EFER).write(BSP_EFER.load(Ordering::Relaxed));
    }
    percpu::init_ap(cpu);
    let ist: [u64; gdt::NR_IST_STACKS] =
        core::array::from_fn(|i| AP_IST_TOPS[cpu as usize][i].load(Ordering::Relaxed));
    gdt::init_ap(&ist);
    idt::load_ap();
    entry::syscall_msrs();
    fpu::init();
    apic::init_ap();
    time::init_ap_timer();
    sched::ap_enter_idle_task();
    CALLIN[cpu as usize].store(
        1 << 63 | u64::from(percpu::cpu_id()) << 32 | u64::from(apic::id()),
        Ordering::Release,
    );
    // RCU waits for this CPU's quiescent states before it may run a task
    // (`sched_cpu_activate` after `rcutree_online_cpu`); active before
    // online, so that the boot CPU, which waits for online, finds it
    // active; no task runs here before the idle loop below, which comes
    // after online (so TLB shootdowns reach it before it loads an mm).
    crate::rcu::cpu_online();
    percpu::set_active();
    percpu::set_online();
    sched::idle_loop()
}
