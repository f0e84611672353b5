//! In-kernel tests of the AP bring-up. The ktest image runs at `--smp 2`
//! (`tests/tests/ktest.rs`), so these see a real AP; at one CPU they check
//! that nothing but the boot CPU is counted.

use core::sync::atomic::Ordering;

use crate::percpu;
use crate::smp::{callin, topology};
use crate::time::now_ns;

pub const KTESTS: &[crate::ktest::KTest] = crate::ktests![
    every_cpu_of_the_madt_is_online,
    each_ap_has_its_own_percpu_record_and_apic,
    ap_timers_tick_while_parked,
    aps_are_not_active_and_rcu_does_not_wait_for_them,
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

/// Every AP takes its local timer interrupt while parked: its tick count
/// grows at HZ.
fn ap_timers_tick_while_parked() {
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

/// APs are online but parked: the scheduler runs tasks only on the boot
/// CPU, and a grace period ends without them.
fn aps_are_not_active_and_rcu_does_not_wait_for_them() {
    assert!(percpu::per_cpu(0).is_active());
    for cpu in 1..percpu::nr_online_cpus() as u32 {
        assert!(!percpu::per_cpu(cpu).is_active(), "CPU#{cpu} is active");
    }
    let start = now_ns();
    crate::rcu::rcu().synchronize_rcu();
    assert!(
        now_ns() - start < 1_000_000_000,
        "a grace period took over a second"
    );
}
