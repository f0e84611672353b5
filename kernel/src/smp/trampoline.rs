//! The real-mode trampoline an AP starts in (Linux's
//! `arch/x86/realmode/rm/trampoline_64.S`): from the 16-bit real mode a
//! STARTUP IPI leaves it in, through 32-bit protected mode, into long mode
//! and on to [`super::ap_start`] in the kernel image.
//!
//! The code below is position independent: the boot CPU copies it to a
//! page below 1 MiB (the SIPI vector names a page number below 256) and
//! patches the data words at its end with linear addresses computed from
//! that page, the AP's stack and its CPU number ([`Trampoline::prepare`]).
//! Three more low pages hold the page tables the AP turns paging on with:
//!
//! ```text
//!   page + 0     code, then the patched data (GDT, far pointers, ...)
//!   page + 1     PML4: entry 0 -> page + 2; entries 256..512 copied from
//!                the boot PGD (the kernel half: image, direct map, stacks)
//!   page + 2     PDPT: entry 0 -> page + 3
//!   page + 3     PD: entry 0 = a 2 MiB page at physical 0 (identity-maps
//!                the trampoline, so the instructions after the paging
//!                switch are still there)
//! ```
//!
//! The trampoline's CR3 must be a 32-bit address (it is loaded in
//! protected mode), hence these copies below 1 MiB; the AP moves to the
//! boot PGD as soon as it runs in the kernel half.
//!
//! The steps, with `ebx` = the page's linear address throughout:
//!
//! 1. real mode: `cs` = page >> 4; load the trampoline GDT, set CR0.PE, far
//!    jump to the 32-bit code segment;
//! 2. protected mode: flat data segments, CR4.PAE, CR3 = the low PML4,
//!    EFER.LME and EFER.NXE (the kernel half's entries have NX set), CR0.PG,
//!    far jump to the 64-bit code segment;
//! 3. long mode (identity-mapped): load the stack and the argument from the
//!    data words and jump to the absolute address of `ap_start`.

use core::arch::global_asm;

use x86_64::structures::paging::PageTable;

/// Bytes per page.
const PAGE: u64 = 4096;
/// Pages the trampoline needs below 1 MiB (module docs).
pub const NR_PAGES: u64 = 4;

global_asm!(
    ".section .text.ap_trampoline, \"ax\"",
    ".balign 4096",
    ".global ap_trampoline_start",
    "ap_trampoline_start:",
    ".code16",
    "cli",
    "cld",
    "movw %cs, %ax",
    "movw %ax, %ds",
    "movzwl %ax, %ebx",
    "shll $4, %ebx",
    "lgdtw (ap_tr_gdtr - ap_trampoline_start)",
    "movl %cr0, %eax",
    "orl $1, %eax",
    "movl %eax, %cr0",
    "ljmpl *(ap_tr_pm_ptr - ap_trampoline_start)",
    ".code32",
    ".global ap_tr_pm",
    "ap_tr_pm:",
    "movw $0x10, %ax",
    "movw %ax, %ds",
    "movw %ax, %es",
    "movw %ax, %ss",
    "movl %cr4, %eax",
    "orl $(1 << 5), %eax",
    "movl %eax, %cr4",
    "movl (ap_tr_cr3 - ap_trampoline_start)(%ebx), %eax",
    "movl %eax, %cr3",
    "movl $0xc0000080, %ecx",
    "rdmsr",
    "orl $((1 << 8) | (1 << 11)), %eax",
    "wrmsr",
    "movl %cr0, %eax",
    "orl $0x80000001, %eax",
    "movl %eax, %cr0",
    "ljmpl *(ap_tr_lm_ptr - ap_trampoline_start)(%ebx)",
    ".code64",
    ".global ap_tr_lm",
    "ap_tr_lm:",
    "movl %ebx, %ebx",
    "movq (ap_tr_stack - ap_trampoline_start)(%rbx), %rsp",
    "movq (ap_tr_arg - ap_trampoline_start)(%rbx), %rdi",
    "movq (ap_tr_entry - ap_trampoline_start)(%rbx), %rax",
    "xorl %ebp, %ebp",
    "pushq %rbp",
    "jmpq *%rax",
    // The data, patched by the boot CPU (`Trampoline::install`, `prepare`).
    ".balign 16",
    ".global ap_tr_gdt",
    "ap_tr_gdt:",
    ".quad 0",
    ".quad 0x00cf9a000000ffff", // 0x08: 32-bit code, flat
    ".quad 0x00cf92000000ffff", // 0x10: data, flat
    ".quad 0x00af9a000000ffff", // 0x18: 64-bit code
    ".global ap_tr_gdtr",
    "ap_tr_gdtr:",
    ".word 4 * 8 - 1",
    ".long 0", // linear address of ap_tr_gdt
    ".balign 8",
    ".global ap_tr_pm_ptr",
    "ap_tr_pm_ptr:",
    ".long 0", // linear address of ap_tr_pm
    ".word 0x08",
    ".balign 8",
    ".global ap_tr_lm_ptr",
    "ap_tr_lm_ptr:",
    ".long 0", // linear address of ap_tr_lm
    ".word 0x18",
    ".balign 8",
    ".global ap_tr_cr3",
    "ap_tr_cr3:",
    ".quad 0",
    ".global ap_tr_stack",
    "ap_tr_stack:",
    ".quad 0",
    ".global ap_tr_arg",
    "ap_tr_arg:",
    ".quad 0",
    ".global ap_tr_entry",
    "ap_tr_entry:",
    ".quad 0",
    ".global ap_trampoline_end",
    "ap_trampoline_end:",
    // The code after this global_asm is 64-bit again.
    ".code64",
    ".text",
    options(att_syntax)
);

// Every label named here is `.global` in the assembly: the linker resolves
// these names, and a local label is invisible to it whenever the
// `global_asm!` lands in another codegen unit than its user (release
// builds, where the link then fails on an undefined `ap_tr_*`).
unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_tr_gdt: u8;
    static ap_tr_gdtr: u8;
    static ap_tr_pm: u8;
    static ap_tr_pm_ptr: u8;
    static ap_tr_lm: u8;
    static ap_tr_lm_ptr: u8;
    static ap_tr_cr3: u8;
    static ap_tr_stack: u8;
    static ap_tr_arg: u8;
    static ap_tr_entry: u8;
}

/// Offset of `sym` from the trampoline's start.
fn off(sym: *const u8) -> u64 {
    sym as u64 - (&raw const ap_trampoline_start) as u64
}

/// The trampoline's pages below 1 MiB, reached through the direct map.
pub struct Trampoline {
    /// Physical address of the first page (page-aligned, below 1 MiB).
    pa: u64,
    /// Virtual address of the direct map's physical 0.
    phys_offset: u64,
}

impl Trampoline {
    /// The trampoline at physical `pa`: [`NR_PAGES`] pages of usable RAM
    /// below 1 MiB that nothing else uses (the page allocator never gets
    /// RAM below 1 MiB, `memory` module docs).
    pub fn new(pa: u64, phys_offset: u64) -> Self {
        assert!(pa.is_multiple_of(PAGE) && pa + NR_PAGES * PAGE <= 1 << 20);
        Self { pa, phys_offset }
    }

    /// The SIPI vector: the page number of the code.
    pub fn sipi_vector(&self) -> u8 {
        (self.pa / PAGE) as u8
    }

    fn va(&self, offset: u64) -> *mut u8 {
        (self.phys_offset + self.pa + offset) as *mut u8
    }

    fn write_u64(&self, offset: u64, v: u64) {
        // SAFETY: `offset` is one of the data words inside the first page,
        // 8-byte aligned (`.balign 8` above), which this trampoline owns
        // (`new`); no AP runs the trampoline while the boot CPU patches it.
        unsafe { core::ptr::write_volatile(self.va(offset).cast::<u64>(), v) };
    }

    fn write_u32(&self, offset: u64, v: u32) {
        // SAFETY: as for write_u64; the word may be 2-byte aligned only, so
        // the store is unaligned-tolerant.
        unsafe { core::ptr::write_unaligned(self.va(offset).cast::<u32>(), v) };
    }

    /// Copies the code and builds the page tables; `kernel_pgd` is the
    /// boot PGD's physical address (its kernel half is copied) and `entry`
    /// the 64-bit function the AP jumps to.
    pub fn install(&self, kernel_pgd: u64, entry: u64) {
        let start = &raw const ap_trampoline_start;
        let len = off(&raw const ap_trampoline_end);
        assert!(len <= PAGE, "the trampoline is larger than a page");
        // SAFETY: the source is the trampoline in the kernel image, `len`
        // bytes; the destination is the first low page (`new`), which
        // nothing else uses; they do not overlap (RAM below 1 MiB holds no
        // part of the image).
        unsafe {
            core::ptr::write_bytes(self.va(0), 0, (NR_PAGES * PAGE) as usize);
            core::ptr::copy_nonoverlapping(start, self.va(0), len as usize);
        }
        let base = self.pa;
        self.write_u32(
            off(&raw const ap_tr_gdtr) + 2,
            (base + off(&raw const ap_tr_gdt)) as u32,
        );
        self.write_u32(
            off(&raw const ap_tr_pm_ptr),
            (base + off(&raw const ap_tr_pm)) as u32,
        );
        self.write_u32(
            off(&raw const ap_tr_lm_ptr),
            (base + off(&raw const ap_tr_lm)) as u32,
        );
        self.write_u64(off(&raw const ap_tr_cr3), base + PAGE);
        self.write_u64(off(&raw const ap_tr_entry), entry);
        let table = |i: u64| self.va(i * PAGE).cast::<PageTable>();
        let present_rw = 0b11;
        // SAFETY: pages 1..4 of the trampoline are ours (`new`), zeroed
        // above and page-aligned, so each is a valid PageTable; the boot
        // PGD is the live kernel PGD in the direct map, read only. Its
        // kernel-half entries stay valid (K1 of sched::stack: the
        // top-level kernel entries never change once made).
        unsafe {
            let pml4 = &mut *table(1);
            let pdpt = &mut *table(2);
            let pd = &mut *table(3);
            let boot = &*((self.phys_offset + kernel_pgd) as *const PageTable);
            for i in 256..512 {
                pml4[i] = boot[i].clone();
            }
            pml4[0].set_addr(
                x86_64::PhysAddr::new(base + 2 * PAGE),
                x86_64::structures::paging::PageTableFlags::from_bits_truncate(present_rw),
            );
            pdpt[0].set_addr(
                x86_64::PhysAddr::new(base + 3 * PAGE),
                x86_64::structures::paging::PageTableFlags::from_bits_truncate(present_rw),
            );
            // A 2 MiB page (PS, bit 7) at physical 0.
            pd[0].set_addr(
                x86_64::PhysAddr::new(0),
                x86_64::structures::paging::PageTableFlags::from_bits_truncate(
                    present_rw | (1 << 7),
                ),
            );
        }
    }

    /// Sets the stack and argument the next AP to start gets.
    pub fn prepare(&self, stack_top: u64, arg: u64) {
        self.write_u64(off(&raw const ap_tr_stack), stack_top);
        self.write_u64(off(&raw const ap_tr_arg), arg);
    }
}
