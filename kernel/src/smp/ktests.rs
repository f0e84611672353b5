//! In-kernel tests of the AP bring-up. The ktest image runs at `--smp 2`
//! (`tests/tests/ktest.rs`), so these see a real AP; at one CPU they check
//! that nothing but the boot CPU is counted.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::ktest::PinCpu0;
use crate::percpu;
use crate::smp::ipi;
use crate::smp::{callin, topology};
use crate::time::now_ns;

pub const KTESTS: &[crate::ktest::KTest] = crate::ktests![
    every_cpu_of_the_madt_is_online,
    each_ap_has_its_own_percpu_record_and_apic,
    ap_timers_tick,
    aps_are_active_and_grace_periods_end,
    call_function_runs_on_every_other_cpu_in_hardirq,
    on_each_cpu_runs_everywhere_and_calls_are_never_lost,
    reschedule_ipi_reaches_each_ap,
];

/// Every enabled processor of the MADT came online; `nr_cpu_ids` is their
/// count, and their APIC ids are distinct.
fn every_cpu_of_the_madt_is_online() {
    let topo = topology();
    assert!(topo.from_madt, "QEMU provides an MADT");
    assert_eq!(percpu::nr_possible_cpus(), topo.nr_cpus);
    assert_eq!(percpu::nr_online_cpus(), topo.nr_cpus);
    for (cpu, desc) in topo.cpus().iter().enumerate() {
        let rec = percpu::per_cpu(cpu as u32);
        assert!(rec.is_online(), "CPU#{cpu} is not online");
        assert_eq!(rec.apic_id(), desc.apic_id);
        for other in &topo.cpus()[cpu + 1..] {
            assert_ne!(desc.apic_id, other.apic_id, "two CPUs share an APIC id");
        }
    }
    assert_eq!(
        percpu::this_cpu().apic_id(),
        crate::time::apic::id(),
        "the boot CPU is CPU 0 and its MADT APIC id is its own"
    );
}

/// Each AP, on itself, read its own CPU number through its GS base and its
/// own APIC id: the per-CPU area and the local APIC are per CPU.
fn each_ap_has_its_own_percpu_record_and_apic() {
    let topo = topology();
    assert_eq!(callin(0), None, "the boot CPU is not started by smp");
    for cpu in 1..topo.nr_cpus as u32 {
        let (seen_cpu, seen_apic) = callin(cpu).expect("every AP called in");
        assert_eq!(seen_cpu, cpu, "CPU#{cpu}'s GS base names another record");
        assert_eq!(seen_apic, topo.cpus()[cpu as usize].apic_id);
    }
}

/// Every AP takes its local timer interrupt: its tick count
/// grows at HZ.
fn ap_timers_tick() {
    let n = percpu::nr_online_cpus() as u32;
    let before: alloc::vec::Vec<u64> = (0..n)
        .map(|c| percpu::per_cpu(c).nr_ticks.load(Ordering::Relaxed))
        .collect();
    // 10 ticks at HZ=250.
    crate::sched::sleep_ms(40);
    for cpu in 1..n {
        let mut now = percpu::per_cpu(cpu).nr_ticks.load(Ordering::Relaxed);
        let deadline = now_ns() + 1_000_000_000;
        while now < before[cpu as usize] + 3 && now_ns() < deadline {
            crate::sched::sleep_ms(4);
            now = percpu::per_cpu(cpu).nr_ticks.load(Ordering::Relaxed);
        }
        assert!(
            now >= before[cpu as usize] + 3,
            "CPU#{cpu}'s timer did not tick: {} -> {now}",
            before[cpu as usize]
        );
    }
}

/// Every online CPU is active (runs tasks), and a grace period, which now
/// waits for each of them, still ends promptly.
fn aps_are_active_and_grace_periods_end() {
    for cpu in 0..percpu::nr_online_cpus() as u32 {
        assert!(percpu::per_cpu(cpu).is_active(), "CPU#{cpu} is not active");
    }
    let start = now_ns();
    crate::rcu::rcu().synchronize_rcu();
    assert!(
        now_ns() - start < 1_000_000_000,
        "a grace period took over a second"
    );
}

/// `smp_call_function_many` runs the function once on each other online
/// CPU, in its hard-IRQ context with interrupts off, and returns after.
fn call_function_runs_on_every_other_cpu_in_hardirq() {
    let _pin = PinCpu0::pin();
    let n = percpu::nr_online_cpus();
    let ran: [AtomicU32; percpu::MAX_CPUS] = [const { AtomicU32::new(0) }; percpu::MAX_CPUS];
    let bad_context = AtomicU32::new(0);
    let before: alloc::vec::Vec<u64> = (0..n as u32).map(ipi::nr_call_ipis).collect();
    let done = ipi::smp_call_function_many(u64::MAX, &|| {
        ran[percpu::cpu_id() as usize].fetch_add(1, Ordering::Relaxed);
        if percpu::hardirq_count() == 0 || x86_64::instructions::interrupts::are_enabled() {
            bad_context.fetch_add(1, Ordering::Relaxed);
        }
    });
    assert_eq!(done, n - 1, "one call per other CPU");
    assert_eq!(ran[0].load(Ordering::Relaxed), 0, "not on the caller");
    for cpu in 1..n {
        assert_eq!(ran[cpu].load(Ordering::Relaxed), 1, "CPU#{cpu} ran it once");
        assert!(
            ipi::nr_call_ipis(cpu as u32) > before[cpu],
            "CPU#{cpu} took an IPI"
        );
    }
    assert_eq!(bad_context.load(Ordering::Relaxed), 0, "not in hard IRQ");
    // A mask without the APs reaches nobody.
    assert_eq!(ipi::smp_call_function_many(1, &|| unreachable!()), 0);
}

/// `on_each_cpu` includes the caller; a thousand waited calls in a row all
/// arrive (no IPI lost while a target is still in its handler).
fn on_each_cpu_runs_everywhere_and_calls_are_never_lost() {
    let n = percpu::nr_online_cpus();
    let sum = AtomicU64::new(0);
    for i in 0..1000u64 {
        let ran = ipi::on_each_cpu(&|| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(ran, n);
    }
    assert_eq!(sum.load(Ordering::Relaxed), n as u64 * 999 * 1000 / 2);
}

/// A reschedule IPI reaches each AP (its count grows).
fn reschedule_ipi_reaches_each_ap() {
    let _pin = PinCpu0::pin();
    for cpu in 1..percpu::nr_online_cpus() as u32 {
        let before = ipi::nr_resched_ipis(cpu);
        ipi::smp_send_reschedule(cpu);
        let deadline = now_ns() + 1_000_000_000;
        while ipi::nr_resched_ipis(cpu) == before {
            assert!(now_ns() < deadline, "CPU#{cpu} took no reschedule IPI");
            core::hint::spin_loop();
        }
    }
}
