//! Randomized tests of address spaces against a model.
//!
//! The model is the mapped pages: for each page, its VMA flags and the
//! value last written at offset 8 (`None`: never written since it was
//! mapped or zapped, so it reads as zero). The expected VMA set is the
//! maximal runs of adjacent pages with equal flags: every VMA here is
//! anonymous without an anon_vma (the test turns `Vm::anon_vmas_on` off:
//! the model does not track anon_vmas yet), so its page offset is always
//! its start page and two neighbours merge exactly when their flags are
//! equal. A second test runs sequences with anon_vmas on, comparing VMAs
//! page by page (flags) and checking the reverse map of every mapped page.
//!
//! Seeded xorshift sequences ([`SEEDS`] seeds of [`STEPS`] steps) draw
//! mmap (anywhere, at a hint, MAP_FIXED, MAP_FIXED_NOREPLACE; private,
//! NORESERVE, LOCKED, POPULATE; shared mappings, whose shmem objects
//! break the page-offset rule below, are left to `vm/fuzz`'s model),
//! munmap, mprotect, mremap (every
//! flag combination, including invalid ones), madvise (DONTNEED, NORMAL,
//! RANDOM, SEQUENTIAL, WILLNEED), brk and user reads and writes, mostly
//! in a 256-page arena that straddles a PTE-table boundary, half of the
//! time at a page that is mapped (mremap: mostly a range inside a VMA).
//! The model predicts each result (errno, address, value read); where
//! the kernel picks the address, the model checks the pick was free (and
//! was the hint when the hint was free). After every step:
//!
//! - M1: [`Mm::validate`] holds (no overlap, compatible neighbours
//!   merged, every present PTE inside a VMA that allows it, RSS exact);
//! - M2: the VMAs are the model's runs, with page offset = start page;
//! - M3: the commit charge is the model's `VM_ACCOUNT` pages, and
//!   `VmSize` its pages;
//! - M4: `VmPTE` is the tables actually linked below the PGD (walked);
//! - M5: every model page reads its value (present PTE) or is unpopulated
//!   and never written; every mapped anonymous page has mapcount 1.
//!
//! At the end the fixture checks that no frame leaked and the commit
//! charge returned to zero. A failure names the seed, the step and the
//! last operations.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Acquire;

use super::tests::{peek, poke, with_mm};
use super::*;
use crate::errno::Errno;
use crate::pgtable::{Entry, Level, PGDIR_SIZE, PMD_SIZE, PUD_SIZE, USER_PGD_ENTRIES};
use crate::rand::XorShift64;
use crate::sim::SimPlatform;

type TestMm<'v, 'a> = Mm<'v, 'a, SimPlatform>;

const PG: u64 = PAGE_SIZE;
/// Sequences and steps per sequence.
const SEEDS: u64 = 24;
const STEPS: usize = 250;
/// The arena most operations aim at: 256 pages across a 2 MiB boundary.
const ARENA: u64 = 0x1000_0000 + PMD_SIZE - 128 * PG;
const ARENA_PAGES: u64 = 256;
/// The program break starts here (away from the arena).
const BRK_BASE: u64 = 0x3000_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PageModel {
    flags: VmFlags,
    /// Value at offset 8, if written since mapped or zapped.
    data: Option<u64>,
}

struct Model {
    pages: BTreeMap<u64, PageModel>,
    start_brk: u64,
    brk: u64,
    /// anon_vmas are on: a VMA may end before the model's run of equal
    /// pages does (faulted neighbours with different anon_vmas do not
    /// merge); mremap then asks the kernel where the VMA ends.
    anon_vmas: bool,
}

impl Model {
    fn free(&self, s: u64, e: u64) -> bool {
        self.pages.range(s..e).next().is_none()
    }

    fn unmap(&mut self, s: u64, e: u64) {
        let keys: Vec<u64> = self.pages.range(s..e).map(|(&a, _)| a).collect();
        for a in keys {
            self.pages.remove(&a);
        }
    }

    fn map(&mut self, s: u64, e: u64, flags: VmFlags) {
        for a in (s..e).step_by(PG as usize) {
            self.pages.insert(a, PageModel { flags, data: None });
        }
    }

    /// Maximal runs of adjacent pages with equal flags: the VMAs.
    fn vmas(&self) -> Vec<(u64, u64, VmFlags)> {
        let mut out: Vec<(u64, u64, VmFlags)> = Vec::new();
        for (&a, p) in &self.pages {
            match out.last_mut() {
                Some(last) if last.1 == a && last.2 == p.flags => last.1 += PG,
                _ => out.push((a, a + PG, p.flags)),
            }
        }
        out
    }

    fn vma_at(&self, a: u64) -> Option<(u64, u64, VmFlags)> {
        self.vmas().into_iter().find(|v| v.0 <= a && a < v.1)
    }

    fn accounted(&self) -> u64 {
        self.pages
            .values()
            .filter(|p| p.flags.contains(VmFlags::ACCOUNT))
            .count() as u64
    }
}

#[derive(Clone, Copy, Debug)]
enum Place {
    Anywhere,
    Hint,
    Fixed,
    NoReplace,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Mmap {
        addr: u64,
        pages: u64,
        prot: Prot,
        place: Place,
        flags: MapFlags,
    },
    Munmap {
        addr: u64,
        pages: u64,
    },
    Mprotect {
        addr: u64,
        pages: u64,
        prot: Prot,
    },
    Mremap {
        addr: u64,
        old_pages: u64,
        new_pages: u64,
        flags: MremapFlags,
        new_addr: u64,
    },
    Madvise {
        addr: u64,
        pages: u64,
        advice: i64,
    },
    Brk {
        brk: u64,
    },
    Read {
        addr: u64,
    },
    Write {
        addr: u64,
        val: u64,
    },
}

fn arena_page(rng: &mut XorShift64) -> u64 {
    ARENA + rng.below(ARENA_PAGES as usize) as u64 * PG
}

/// A page to aim at: half of the time a mapped one.
fn target(rng: &mut XorShift64, m: &Model) -> u64 {
    if !m.pages.is_empty() && rng.below(2) == 0 {
        let i = rng.below(m.pages.len());
        *m.pages.keys().nth(i).expect("in range")
    } else {
        arena_page(rng)
    }
}

fn prot(rng: &mut XorShift64) -> Prot {
    [
        Prot::READ | Prot::WRITE,
        Prot::READ | Prot::WRITE,
        Prot::READ,
        Prot::empty(),
        Prot::READ | Prot::EXEC,
    ][rng.below(5)]
}

fn gen_op(rng: &mut XorShift64, m: &Model) -> Op {
    let pages = |rng: &mut XorShift64, n: usize| 1 + rng.below(n) as u64;
    match rng.below(100) {
        0..=19 => {
            let place =
                [Place::Anywhere, Place::Hint, Place::Fixed, Place::NoReplace][rng.below(4)];
            // Private only: shared mappings are shmem objects, which
            // `vm/fuzz`'s model covers (across fork too).
            let mut flags = MapFlags::ANONYMOUS | MapFlags::PRIVATE;
            if rng.below(8) == 0 {
                flags |= MapFlags::NORESERVE;
            }
            if rng.below(20) == 0 {
                flags |= MapFlags::LOCKED;
            }
            if rng.below(10) == 0 {
                flags |= MapFlags::POPULATE;
            }
            Op::Mmap {
                addr: if matches!(place, Place::Anywhere) {
                    0
                } else {
                    target(rng, m)
                },
                pages: pages(rng, 16),
                prot: prot(rng),
                place,
                flags,
            }
        }
        20..=29 => Op::Munmap {
            addr: target(rng, m),
            pages: pages(rng, 24),
        },
        30..=39 => Op::Mprotect {
            addr: target(rng, m),
            pages: pages(rng, 16),
            prot: prot(rng),
        },
        40..=57 => {
            let flags = [
                MremapFlags::empty(),
                MremapFlags::MAYMOVE,
                MremapFlags::MAYMOVE,
                MremapFlags::MAYMOVE | MremapFlags::FIXED,
                MremapFlags::MAYMOVE | MremapFlags::DONTUNMAP,
                MremapFlags::MAYMOVE | MremapFlags::FIXED | MremapFlags::DONTUNMAP,
                MremapFlags::FIXED,
            ][rng.below(7)];
            // Mostly a range inside a VMA, often one that ends at the
            // VMA's end (growable in place).
            let vmas = m.vmas();
            let (addr, old_pages) = match rng.below(10) {
                0 => (arena_page(rng), pages(rng, 10)),
                _ if vmas.is_empty() => (arena_page(rng), pages(rng, 10)),
                i => {
                    let (s, e, _) = vmas[rng.below(vmas.len())];
                    let addr = s + rng.below(((e - s) / PG) as usize) as u64 * PG;
                    let left = (e - addr) / PG;
                    (
                        addr,
                        if i < 5 {
                            left
                        } else {
                            pages(rng, left as usize)
                        },
                    )
                }
            };
            let old_pages = if rng.below(20) == 0 { 0 } else { old_pages };
            let new_pages = if flags.contains(MremapFlags::DONTUNMAP) && rng.below(5) != 0 {
                old_pages.max(1)
            } else {
                pages(rng, 12)
            };
            Op::Mremap {
                addr,
                old_pages,
                new_pages,
                flags,
                new_addr: arena_page(rng),
            }
        }
        58..=65 => Op::Madvise {
            addr: target(rng, m),
            pages: rng.below(17) as u64,
            advice: [4, 4, 4, 0, 1, 2, 3][rng.below(7)],
        },
        66..=71 => Op::Brk {
            brk: BRK_BASE - 2 * PG + rng.below(40 * PG as usize) as u64,
        },
        72..=85 => Op::Read {
            addr: target(rng, m),
        },
        _ => Op::Write {
            addr: target(rng, m),
            val: rng.next_u64(),
        },
    }
}

/// `actual == expected`, or an error message naming `what`.
fn expect<T: PartialEq + core::fmt::Debug>(
    what: &str,
    actual: T,
    expected: T,
) -> Result<(), String> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {actual:?}, model expects {expected:?}"
        ))
    }
}

/// The flags mmap gives a mapping (`do_mmap()` as ours does it).
fn vm_flags(prot: Prot, flags: MapFlags) -> VmFlags {
    let mut f = VmFlags::MAYREAD | VmFlags::MAYWRITE | VmFlags::MAYEXEC;
    for (p, v) in [
        (Prot::READ, VmFlags::READ),
        (Prot::WRITE, VmFlags::WRITE),
        (Prot::EXEC, VmFlags::EXEC),
    ] {
        if prot.contains(p) {
            f |= v;
        }
    }
    if flags.contains(MapFlags::SHARED) {
        f |= VmFlags::SHARED | VmFlags::MAYSHARE;
    } else if flags.contains(MapFlags::NORESERVE) {
        f |= VmFlags::NORESERVE;
    }
    if flags.contains(MapFlags::LOCKED) {
        f |= VmFlags::LOCKED;
    }
    if f.accountable() {
        f |= VmFlags::ACCOUNT;
    }
    f
}

/// Flags after mprotect (`mprotect_fixup()` as ours does it).
fn protect(old: VmFlags, prot: Prot) -> VmFlags {
    let mut f = (old - VmFlags::ACCESS) | (vm_flags(prot, MapFlags::PRIVATE) & VmFlags::ACCESS);
    if f.accountable() {
        f |= VmFlags::ACCOUNT;
    }
    f
}

/// Applies `op` to the address space and the model; checks the result.
fn step(mm: &TestMm<'_, '_>, m: &mut Model, op: Op) -> Result<(), String> {
    match op {
        Op::Mmap {
            addr,
            pages,
            prot,
            place,
            flags,
        } => {
            let len = pages * PG;
            let flags = flags
                | match place {
                    Place::Fixed => MapFlags::FIXED,
                    Place::NoReplace => MapFlags::FIXED_NOREPLACE,
                    _ => MapFlags::empty(),
                };
            let r = mm.mmap(addr, len, prot, flags, -1, 0);
            let vf = vm_flags(prot, flags);
            let at = match place {
                Place::Fixed => {
                    expect("mmap fixed", r, Ok(addr))?;
                    m.unmap(addr, addr + len);
                    addr
                }
                Place::NoReplace if !m.free(addr, addr + len) => {
                    return expect("mmap noreplace", r, Err(Errno::EEXIST));
                }
                Place::NoReplace => {
                    expect("mmap noreplace", r, Ok(addr))?;
                    addr
                }
                Place::Hint if m.free(addr, addr + len) => {
                    expect("mmap at a free hint", r, Ok(addr))?;
                    addr
                }
                _ => {
                    let a = r.map_err(|e| format!("mmap failed: {e:?}"))?;
                    if a % PG != 0 || !m.free(a, a + len) {
                        return Err(format!("mmap picked {a:#x}, not free"));
                    }
                    a
                }
            };
            m.map(at, at + len, vf);
        }
        Op::Munmap { addr, pages } => {
            expect("munmap", mm.munmap(addr, pages * PG), Ok(()))?;
            m.unmap(addr, addr + pages * PG);
        }
        Op::Mprotect { addr, pages, prot } => {
            let r = mm.mprotect(addr, pages * PG, prot);
            let mut want = Ok(());
            for a in (addr..addr + pages * PG).step_by(PG as usize) {
                match m.pages.get_mut(&a) {
                    Some(p) => p.flags = protect(p.flags, prot),
                    None => {
                        want = Err(Errno::ENOMEM);
                        break;
                    }
                }
            }
            expect("mprotect", r, want)?;
        }
        Op::Mremap {
            addr,
            old_pages,
            new_pages,
            flags,
            new_addr,
        } => {
            let vma_end = if m.anon_vmas {
                mm.vma_lookup(addr).map(|v| v.end)
            } else {
                None
            };
            let r = mm.mremap(addr, old_pages * PG, new_pages * PG, flags, new_addr);
            model_mremap(
                m,
                addr,
                old_pages * PG,
                new_pages * PG,
                flags,
                new_addr,
                vma_end,
                r,
            )?;
        }
        Op::Madvise {
            addr,
            pages,
            advice,
        } => {
            let r = mm.madvise(addr, pages * PG, advice);
            let end = addr + pages * PG;
            let mapped: Vec<u64> = m.pages.range(addr..end).map(|(&a, _)| a).collect();
            let hole = (mapped.len() as u64) < pages;
            if advice == 4
                && mapped
                    .iter()
                    .any(|a| m.pages[a].flags.contains(VmFlags::LOCKED))
            {
                return expect("madvise dontneed locked", r, Err(Errno::EINVAL));
            }
            for a in mapped {
                let p = m.pages.get_mut(&a).expect("mapped");
                match advice {
                    4 => p.data = None,
                    0..=2 => {
                        p.flags -= VmFlags::SEQ_READ | VmFlags::RAND_READ;
                        if advice == 1 {
                            p.flags |= VmFlags::RAND_READ;
                        } else if advice == 2 {
                            p.flags |= VmFlags::SEQ_READ;
                        }
                    }
                    _ => {}
                }
            }
            expect("madvise", r, if hole { Err(Errno::ENOMEM) } else { Ok(()) })?;
        }
        Op::Brk { brk } => {
            let r = mm.brk(brk);
            let old = m.brk;
            let align = |x: u64| (x + PG - 1) & !(PG - 1);
            let (newbrk, oldbrk) = (align(brk), align(old));
            let want = if brk < m.start_brk {
                old
            } else if newbrk == oldbrk {
                brk
            } else if brk <= old {
                m.unmap(newbrk, oldbrk);
                brk
            } else if !m.free(oldbrk, newbrk) {
                old
            } else {
                m.map(oldbrk, newbrk, VmFlags::DATA_DEFAULT | VmFlags::ACCOUNT);
                brk
            };
            m.brk = want;
            expect("brk", r, want)?;
        }
        Op::Read { addr } => {
            let want = match m.pages.get(&addr) {
                None => Err(FaultError::Segv(SegvCode::MapErr)),
                Some(p) if !p.flags.intersects(VmFlags::ACCESS) => {
                    Err(FaultError::Segv(SegvCode::AccErr))
                }
                Some(p) => Ok(p.data.unwrap_or(0)),
            };
            expect("read", peek(mm, addr + 8), want)?;
        }
        Op::Write { addr, val } => {
            let want = match m.pages.get(&addr) {
                None => Err(FaultError::Segv(SegvCode::MapErr)),
                Some(p) if !p.flags.contains(VmFlags::WRITE) => {
                    Err(FaultError::Segv(SegvCode::AccErr))
                }
                Some(_) => Ok(()),
            };
            expect("write", poke(mm, addr + 8, val), want)?;
            if want.is_ok() {
                m.pages.get_mut(&addr).expect("mapped").data = Some(val);
            }
        }
    }
    Ok(())
}

/// The model of mremap, in the order the kernel checks and acts; `r` is
/// the kernel's result, consulted only for addresses it may choose;
/// `vma_end`, with anon_vmas on, is where the kernel's VMA at `addr` ends.
#[allow(clippy::too_many_arguments)]
fn model_mremap(
    m: &mut Model,
    addr: u64,
    old_len: u64,
    new_len: u64,
    flags: MremapFlags,
    new_addr: u64,
    vma_end: Option<u64>,
    r: Result<u64, Errno>,
) -> Result<(), String> {
    let err = |e: Errno| expect("mremap", r, Err(e));
    let implies_new = flags.intersects(MremapFlags::FIXED | MremapFlags::DONTUNMAP);
    let dontunmap = flags.contains(MremapFlags::DONTUNMAP);
    if implies_new {
        if !flags.contains(MremapFlags::MAYMOVE) {
            return err(Errno::EINVAL);
        }
        if dontunmap && old_len != new_len {
            return err(Errno::EINVAL);
        }
        if addr + old_len > new_addr && new_addr + new_len > addr {
            return err(Errno::EINVAL);
        }
    }
    let Some((_, ve, _)) = m.vma_at(addr) else {
        return err(Errno::EFAULT);
    };
    let ve = vma_end.map_or(ve, |k| k.min(ve));
    let shrink = new_len < old_len;
    if new_len > old_len || implies_new {
        if old_len == 0 {
            return err(Errno::EINVAL);
        }
        let ol = if shrink { new_len } else { old_len };
        if ol > ve - addr {
            return err(Errno::EFAULT);
        }
    }
    // Picks by the kernel must be free; a free hint must be taken.
    let picked = |m: &Model, hint: Option<u64>| -> Result<u64, String> {
        let a = r.map_err(|e| format!("mremap failed: {e:?}"))?;
        if let Some(h) = hint
            && m.free(h, h + new_len)
            && a != h
        {
            return Err(format!("mremap ignored the free hint {h:#x} for {a:#x}"));
        }
        if a % PG != 0 || !m.free(a, a + new_len) {
            return Err(format!("mremap picked {a:#x}, not free"));
        }
        Ok(a)
    };
    if implies_new {
        if flags.contains(MremapFlags::FIXED) {
            m.unmap(new_addr, new_addr + new_len);
        }
        let mut old_len = old_len;
        if shrink {
            m.unmap(addr + new_len, addr + old_len);
            old_len = new_len;
        }
        let dest = if flags.contains(MremapFlags::FIXED) {
            expect("mremap fixed", r, Ok(new_addr))?;
            new_addr
        } else {
            picked(m, Some(new_addr))?
        };
        model_move(m, addr, old_len, dest, new_len, dontunmap);
        return Ok(());
    }
    if new_len == old_len {
        return expect("mremap same size", r, Ok(addr));
    }
    if shrink {
        m.unmap(addr + new_len, addr + old_len);
        return expect("mremap shrink", r, Ok(addr));
    }
    let (_, ve, vf) = m.vma_at(addr).expect("looked up");
    let delta = new_len - old_len;
    if ve - addr == old_len && m.free(ve, ve + delta) {
        m.map(ve, ve + delta, vf);
        return expect("mremap grow in place", r, Ok(addr));
    }
    if !flags.contains(MremapFlags::MAYMOVE) {
        return err(Errno::ENOMEM);
    }
    let dest = picked(m, None)?;
    model_move(m, addr, old_len, dest, new_len, false);
    Ok(())
}

/// Moves `[addr, addr + old_len)` to `dest`, growing it to `new_len`.
fn model_move(m: &mut Model, addr: u64, old_len: u64, dest: u64, new_len: u64, dontunmap: bool) {
    let flags = m.pages[&addr].flags;
    for off in (0..old_len).step_by(PG as usize) {
        let data = if dontunmap {
            m.pages.get_mut(&(addr + off)).expect("mapped").data.take()
        } else {
            m.pages.remove(&(addr + off)).expect("mapped").data
        };
        m.pages.insert(dest + off, PageModel { flags, data });
    }
    m.map(dest + old_len, dest + new_len, flags);
    if dontunmap && flags.contains(VmFlags::LOCKED) {
        // The old VMA (merged with the new one if they touch) is unlocked.
        let (s, e, _) = m.vma_at(addr).expect("the old VMA");
        for a in (s..e).step_by(PG as usize) {
            m.pages.get_mut(&a).expect("mapped").flags -= VmFlags::LOCKED;
        }
    }
}

/// Page tables linked below the PGD, walked.
fn count_tables(mm: &TestMm<'_, '_>) -> u64 {
    let pt = mm.page_table();
    let _rcu = mm.vm.rcu.read_lock();
    let present = |a: u64, l: Level| {
        let e = Entry(pt.slot(a, l).expect("a table above").load(Acquire));
        e.is_present() && !e.is_huge()
    };
    let mut n = 0;
    for i in 0..USER_PGD_ENTRIES as u64 {
        let a = i * PGDIR_SIZE;
        if !present(a, Level::Pgd) {
            continue;
        }
        n += 1;
        for j in 0..512 {
            let b = a + j * PUD_SIZE;
            if !present(b, Level::Pud) {
                continue;
            }
            n += 1;
            n += (0..512)
                .filter(|k| present(b + k * PMD_SIZE, Level::Pmd))
                .count() as u64;
        }
    }
    n
}

/// The word at `addr` through its PTE `e`, without faulting.
fn read_mapped(mm: &TestMm<'_, '_>, e: Entry, addr: u64) -> u64 {
    super::tests::user_word(mm, e, addr).load(Relaxed)
}

/// M1..M5.
fn check(mm: &TestMm<'_, '_>, m: &Model, anon_vmas: bool) -> Result<(), String> {
    mm.validate()?;
    if anon_vmas {
        // anon_vmas decide merges and page offsets the model does not
        // track: compare page by page, and check the reverse map (M6).
        for (&a, p) in &m.pages {
            match mm.vma_lookup(a) {
                // The model does not track soft-dirty (tests_memapi does).
                Some(v) if v.flags - VmFlags::SOFTDIRTY == p.flags => {}
                v => return Err(format!("page {a:#x}: VMA {v:?}, model flags {:?}", p.flags)),
            }
        }
        expect(
            "VMA pages",
            mm.vmas().iter().map(|v| v.pages()).sum::<u64>(),
            m.pages.len() as u64,
        )?;
        let zero = mm.vm.zero_page();
        for &a in m.pages.keys() {
            let Some(e) = mm
                .page_table()
                .get_pte(a)
                .filter(|e| e.is_present() && e.pfn() != zero)
            else {
                continue;
            };
            let folio = crate::folio::Folio::of(mm.vm.pa.memmap(), e.pfn());
            let hits = mm.vm.rmap_walk(&folio, &[mm]);
            if !hits.iter().any(|h| h.addr == a && h.mm_id == mm.id()) {
                return Err(format!(
                    "rmap walk of the folio at {a:#x} misses it: {hits:x?}"
                ));
            }
        }
    } else {
        let got: Vec<(u64, u64, VmFlags)> = mm
            .vmas()
            .iter()
            .map(|v| (v.start, v.end, v.flags - VmFlags::SOFTDIRTY))
            .collect();
        if got != m.vmas() {
            return Err(format!("VMAs {got:x?}\n  model {:x?}", m.vmas()));
        }
        for v in mm.vmas() {
            if v.pgoff != v.start / PG {
                return Err(format!("{v:?}: page offset {:#x}", v.pgoff));
            }
        }
    }
    expect("committed pages", mm.vm.committed_pages(), m.accounted())?;
    expect("VmSize kB", mm.status().vm_size, m.pages.len() as u64 * 4)?;
    expect("VmPTE kB", mm.status().vm_pte, count_tables(mm) * 4)?;
    let zero = mm.vm.zero_page();
    for (&a, p) in &m.pages {
        match mm.page_table().get_pte(a).filter(|e| e.is_present()) {
            Some(e) => {
                let what = format!("value at {a:#x}");
                expect(&what, read_mapped(mm, e, a + 8), p.data.unwrap_or(0))?;
                if e.pfn() != zero {
                    let page = mm.vm.pa.memmap().page(e.pfn());
                    expect(&format!("mapcount at {a:#x}"), page.mapcount(), 1)?;
                }
            }
            None if p.data.is_some() => return Err(format!("written page {a:#x} not mapped")),
            None => {}
        }
    }
    Ok(())
}

/// One sequence; returns the mremap path counts.
fn run(seed: u64, anon_vmas: bool) -> Vec<u64> {
    with_mm(|mm| {
        mm.vm
            .anon_vmas_on
            .store(anon_vmas, core::sync::atomic::Ordering::Relaxed);
        let mut rng = XorShift64::new(seed);
        let mut m = Model {
            pages: BTreeMap::new(),
            start_brk: BRK_BASE,
            brk: BRK_BASE,
            anon_vmas,
        };
        mm.set_brk_start(BRK_BASE);
        let mut log: Vec<Op> = Vec::new();
        for i in 0..STEPS {
            let op = gen_op(&mut rng, &m);
            log.push(op);
            if let Err(e) = step(mm, &mut m, op).and_then(|()| check(mm, &m, anon_vmas)) {
                let from = log.len().saturating_sub(12);
                panic!(
                    "seed {seed:#x} step {i}: {e}\nlast operations:\n{}",
                    log[from..]
                        .iter()
                        .map(|o| format!("  {o:x?}\n"))
                        .collect::<String>()
                );
            }
        }
        MremapStat::ALL
            .iter()
            .map(|&s| mm.mremap_stat(s))
            .collect::<Vec<_>>()
    })
}

#[test]
fn random_syscalls_and_faults_match_the_model() {
    let mut paths = [0; MremapStat::COUNT];
    for seed in 1..=SEEDS {
        let n = run(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), false);
        for (sum, n) in paths.iter_mut().zip(n) {
            *sum += n;
        }
    }
    // Every mremap path but the out-of-memory one ran.
    for s in MremapStat::ALL {
        assert!(
            paths[*s as usize] > 0 || *s == MremapStat::MoveFailed,
            "{} never ran",
            s.name()
        );
    }
}

/// The same sequences with anon_vmas on (as the kernel runs): VMA
/// boundaries and offsets may differ from the model's (anon_vmas keep
/// faulted neighbours apart), so the VMAs are compared page by page, and
/// every mapped page must be found by an rmap walk of its folio (M6).
#[test]
fn random_syscalls_with_anon_vmas_keep_the_reverse_map_exact() {
    for seed in 1..=SEEDS / 2 {
        run(seed.wrapping_mul(0x2545_f491_4f6c_dd1d), true);
    }
}
