//! The CPUs and interrupt controllers of the ACPI MADT, read with the
//! `acpi` crate of rust-osdev (Linux's `arch/x86/kernel/acpi/boot.c`:
//! `acpi_parse_lapic`, `acpi_parse_x2apic`, `acpi_parse_ioapic`,
//! `acpi_parse_int_src_ovr`).
//!
//! [`discover`] runs once on the boot CPU, before `memory::init`: it needs
//! no heap (the crate's allocation-free API: find the MADT, walk its
//! entries) and only the bootloader's direct map, which covers the first
//! 4 GiB of physical addresses, where firmware puts the ACPI tables and
//! the I/O APICs' registers. The boot CPU becomes CPU 0; the other enabled
//! processors follow in MADT order, as Linux numbers them. Disabled
//! entries (hot-pluggable CPUs) are counted, not used.
//!
//! Without an RSDP or a MADT the machine is taken to have one CPU (Linux's
//! "no MADT: assuming a uniprocessor").

use core::ptr::NonNull;

use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use bootloader_api::BootInfo;

use crate::percpu::MAX_CPUS;

/// The most I/O APICs recorded.
pub const MAX_IO_APICS: usize = 8;
/// The most interrupt source overrides recorded.
pub const MAX_OVERRIDES: usize = 16;

/// One processor of the MADT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu {
    /// Its local APIC id.
    pub apic_id: u32,
    /// Its ACPI processor UID (`acpi_id` in Linux's boot log).
    pub acpi_id: u32,
    /// Described by a Local x2APIC entry (type 9, 32-bit ids) rather than
    /// a Local APIC entry (type 0, 8-bit ids).
    pub x2apic_entry: bool,
}

/// One I/O APIC of the MADT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoApic {
    pub id: u8,
    /// Physical address of its register window.
    pub address: u32,
    /// The first global system interrupt (GSI) it serves.
    pub gsi_base: u32,
    /// How many GSIs it serves (its maximum redirection entry + 1, read
    /// from its version register).
    pub nr_gsis: u32,
    /// Its version register's version field.
    pub version: u8,
}

/// An ISA IRQ that is wired to another GSI, or with other polarity or
/// trigger mode than ISA's edge/high.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqOverride {
    pub bus_irq: u8,
    pub gsi: u32,
    /// MPS INTI flags: bits 0-1 polarity, 2-3 trigger mode (0: bus default).
    pub flags: u16,
}

/// What the MADT says, with the boot CPU first.
#[derive(Clone, Copy, Debug)]
pub struct Topology {
    /// Whether an MADT was found (otherwise: one CPU, nothing else known).
    pub from_madt: bool,
    /// Enabled processors, the boot CPU first; `cpus[..nr_cpus]` are valid.
    pub cpus: [Cpu; MAX_CPUS],
    pub nr_cpus: usize,
    /// Enabled processors beyond [`MAX_CPUS`], left out.
    pub nr_ignored: usize,
    /// Disabled (hot-pluggable) processor entries.
    pub nr_disabled: usize,
    /// Physical address of the local APICs' registers.
    pub lapic_address: u64,
    /// `PCAT_COMPAT`: dual 8259s are present too (and must be masked).
    pub has_8259: bool,
    pub io_apics: [IoApic; MAX_IO_APICS],
    pub nr_io_apics: usize,
    pub overrides: [IrqOverride; MAX_OVERRIDES],
    pub nr_overrides: usize,
}

impl Topology {
    /// The enabled CPUs, boot CPU first.
    pub fn cpus(&self) -> &[Cpu] {
        &self.cpus[..self.nr_cpus]
    }

    /// The I/O APICs.
    pub fn io_apics(&self) -> &[IoApic] {
        &self.io_apics[..self.nr_io_apics]
    }

    /// The interrupt source overrides.
    pub fn overrides(&self) -> &[IrqOverride] {
        &self.overrides[..self.nr_overrides]
    }

    /// A uniprocessor with the boot CPU's APIC id.
    fn uniprocessor(boot_apic_id: u32) -> Self {
        let mut cpus = [Cpu::default(); MAX_CPUS];
        cpus[0] = Cpu {
            apic_id: boot_apic_id,
            acpi_id: 0,
            x2apic_entry: false,
        };
        Self {
            from_madt: false,
            cpus,
            nr_cpus: 1,
            nr_ignored: 0,
            nr_disabled: 0,
            lapic_address: 0xfee0_0000,
            has_8259: true,
            io_apics: [IoApic::default(); MAX_IO_APICS],
            nr_io_apics: 0,
            overrides: [IrqOverride::default(); MAX_OVERRIDES],
            nr_overrides: 0,
        }
    }
}

/// The boot CPU's initial APIC id from CPUID (the local APIC is not set up
/// yet): leaf 0xb's 32-bit x2APIC id where that leaf exists, else leaf 1's
/// 8-bit id.
pub fn boot_cpu_apic_id() -> u32 {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    if __cpuid(0).eax >= 0xb {
        let leaf = __cpuid_count(0xb, 0);
        // EBX = 0 means the leaf is not really implemented.
        if leaf.ebx != 0 {
            return leaf.edx;
        }
    }
    __cpuid(1).ebx >> 24
}

/// Maps ACPI tables through the bootloader's direct map: "mapping" is
/// address arithmetic, unmapping nothing.
#[derive(Clone, Copy)]
struct DirectMap {
    phys_offset: u64,
}

impl AcpiHandler for DirectMap {
    unsafe fn map_physical_region<T>(&self, pa: usize, size: usize) -> PhysicalMapping<Self, T> {
        let va = (self.phys_offset + pa as u64) as *mut T;
        let va = NonNull::new(va).expect("the direct map is not at 0");
        // SAFETY: the direct map covers every physical address below 4 GiB
        // and all of RAM (module docs), where the firmware's tables are;
        // the crate asks only for the tables' own ranges.
        unsafe { PhysicalMapping::new(pa, va, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// Reads the MADT of the firmware whose RSDP the bootloader found. Runs
/// once, on the boot CPU, before the heap exists.
pub fn discover(boot_info: &BootInfo) -> Topology {
    let boot_apic_id = boot_cpu_apic_id();
    let (Some(rsdp), Some(phys_offset)) = (
        boot_info.rsdp_addr.into_option(),
        boot_info.physical_memory_offset.into_option(),
    ) else {
        return Topology::uniprocessor(boot_apic_id);
    };
    let handler = DirectMap { phys_offset };
    // SAFETY: the address is the RSDP the bootloader found (BIOS scan or
    // the UEFI configuration table); the crate checks its signature and
    // checksum before using it.
    let Ok(tables) = (unsafe { AcpiTables::from_rsdp(handler, rsdp as usize) }) else {
        return Topology::uniprocessor(boot_apic_id);
    };
    let Ok(madt) = tables.find_table::<Madt>() else {
        return Topology::uniprocessor(boot_apic_id);
    };
    let mut topo = Topology::uniprocessor(boot_apic_id);
    topo.from_madt = true;
    topo.lapic_address = u64::from(madt.get().local_apic_address);
    topo.has_8259 = madt.get().supports_8259();
    let mut saw_boot = false;
    let mut add_cpu = |topo: &mut Topology, cpu: Cpu, enabled: bool| {
        if !enabled {
            topo.nr_disabled += 1;
        } else if cpu.apic_id == boot_apic_id && !saw_boot {
            saw_boot = true;
            topo.cpus[0] = cpu;
        } else if topo.nr_cpus < MAX_CPUS {
            topo.cpus[topo.nr_cpus] = cpu;
            topo.nr_cpus += 1;
        } else {
            topo.nr_ignored += 1;
        }
    };
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) => {
                let cpu = Cpu {
                    apic_id: u32::from(e.apic_id),
                    acpi_id: u32::from(e.processor_id),
                    x2apic_entry: false,
                };
                // Flags bit 0: enabled; bit 1: online capable.
                add_cpu(&mut topo, cpu, { e.flags } & 1 != 0);
            }
            MadtEntry::LocalX2Apic(e) => {
                let cpu = Cpu {
                    apic_id: e.x2apic_id,
                    acpi_id: e.processor_uid,
                    x2apic_entry: true,
                };
                add_cpu(&mut topo, cpu, { e.flags } & 1 != 0);
            }
            MadtEntry::IoApic(e) if topo.nr_io_apics < MAX_IO_APICS => {
                let address = e.io_apic_address;
                let (version, nr_gsis) = io_apic_version(phys_offset + u64::from(address));
                topo.io_apics[topo.nr_io_apics] = IoApic {
                    id: e.io_apic_id,
                    address,
                    gsi_base: e.global_system_interrupt_base,
                    nr_gsis,
                    version,
                };
                topo.nr_io_apics += 1;
            }
            MadtEntry::InterruptSourceOverride(e) if topo.nr_overrides < MAX_OVERRIDES => {
                topo.overrides[topo.nr_overrides] = IrqOverride {
                    bus_irq: e.irq,
                    gsi: e.global_system_interrupt,
                    flags: e.flags,
                };
                topo.nr_overrides += 1;
            }
            MadtEntry::LocalApicAddressOverride(e) => {
                topo.lapic_address = e.local_apic_address;
            }
            _ => {}
        }
    }
    topo
}

/// Reads an I/O APIC's version register (index 1 through the IOREGSEL /
/// IOWIN window at `va`): the version and the number of redirection
/// entries.
fn io_apic_version(va: u64) -> (u8, u32) {
    const IOREGSEL: u64 = 0x00;
    const IOWIN: u64 = 0x10;
    const IOAPICVER: u32 = 0x01;
    // SAFETY: `va` is the I/O APIC's register window in the direct map
    // (below 4 GiB, module docs); selecting and reading the version
    // register changes no interrupt routing. Nothing else programs the
    // I/O APIC yet (single CPU, before interrupts are enabled).
    let ver = unsafe {
        core::ptr::write_volatile((va + IOREGSEL) as *mut u32, IOAPICVER);
        core::ptr::read_volatile((va + IOWIN) as *const u32)
    };
    ((ver & 0xff) as u8, ((ver >> 16) & 0xff) + 1)
}
