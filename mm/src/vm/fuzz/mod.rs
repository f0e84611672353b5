//! A coverage-guided fuzzer's view of the address-space layer: bytes
//! decode into memory syscalls, user reads and writes, forks and exits
//! on up to [`MAX_MMS`] address spaces of one simulated machine, each
//! checked against a model after every operation.
//!
//! [`run`] is the whole harness; the libFuzzer target (`mm/fuzz`) is a
//! thin wrapper around it, and the host tests replay the committed corpus
//! and a fixed-seed random run through it, so CI exercises the same code
//! without cargo-fuzz.
//!
//! The operations (`decode`): mmap (anywhere, at a hint, MAP_FIXED,
//! MAP_FIXED_NOREPLACE; private, shared, NORESERVE, LOCKED, POPULATE),
//! munmap, mprotect, mremap (every flag combination), madvise, brk, user
//! reads and writes, fork and exit, and arguments Linux
//! refuses, mostly aimed at a small arena that straddles a PTE-table
//! boundary and half of the time at a mapped page. The machine's
//! tunables (anon_vmas, large folios, mapcount mode, CoW reuse, PTE-table
//! reclaim) come from the first byte. This is the one model of the
//! address-space layer: the host tests run it on random inputs of every
//! configuration too (`fuzz/tests.rs`).
//!
//! # Checks after every operation
//!
//! - F1: the result (errno, address, value read) is the model's; where
//!   the kernel picks an address, the pick was free (and was the hint
//!   when the hint was free);
//! - F2: per address space, [`Mm::validate`] holds; its VMAs are the
//!   model's runs (anon_vmas off) or carry the model's flags page by page
//!   (anon_vmas on); `VmSize` is its pages, `VmPTE` the tables linked
//!   below its PGD;
//! - F3: the commit charge is the model's `VM_ACCOUNT` pages over all
//!   address spaces;
//! - F4: every model page reads its value through its PTE, or is
//!   unpopulated and reads zero (or its shared object's value); a written
//!   private page is mapped; a page beyond its shared object is not;
//! - F5: every frame mapped anywhere has exactly as many mappings
//!   (folio mapcount, and per page with per-page mapcounts) as PTEs map
//!   it over all address spaces, as many references as mappings (plus
//!   its object's, for a shmem folio), is a shmem folio exactly when
//!   shared VMAs map it, and is "maybe mapped shared" when two address
//!   spaces map it;
//! - F6: the holders of a shared object's page all map the same frame
//!   (sharing is not broken), and, with anon_vmas on, an rmap walk of
//!   every mapped folio (anon or shmem) finds each of its PTEs.
//!
//! At the end every address space exits; then the commit charge is
//! zero, no anon_vma or MM id is left, and once RCU callbacks ran and the
//! caches were drained every frame is back in the buddy allocator.
//!
//! A failure panics with the configuration, the step, the check that
//! failed and the last operations.

mod decode;
mod model;
#[cfg(test)]
mod tests;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::{Acquire, Relaxed};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{FaultAccess, FaultError, MapFlags, Mm, MremapStat, Prot, SegvCode, Vm, VmFlags};
use crate::addr::{PAGE_SIZE, Pfn, PhysAddr};
use crate::errno::Errno;
use crate::folio::{Folio, MapcountMode};
use crate::memmap::MemMap;
use crate::page_alloc::{PageAlloc, ZoneLayout};
use crate::pgtable::{Entry, Level, PGDIR_SIZE, PUD_SIZE, PteFlags, USER_PGD_ENTRIES};
use crate::platform::Platform;
use crate::sim::{self, SimMachine, SimPlatform};

use decode::{BRK_BASE, Reader};
pub use decode::{Bad, Config, MAX_MMS, MAX_OPS, Op, Place, bytes};
use model::{Cells, Data, MmModel, expect};

const PG: u64 = PAGE_SIZE;
/// Frames of the simulated machine.
const NR_PAGES: usize = 2048;
/// A run stops early when fewer frames are free: no operation needs
/// nearly as many (a populate or a large folio takes 16, a fork a few
/// tables), so no fault or syscall ever runs out of memory, which the
/// model does not predict.
const LOW_FRAMES: u64 = 256;
/// A run also stops once its address spaces map this many pages in all:
/// `MREMAP_DONTUNMAP` copies a whole VMA without allocating anything, so
/// repeated, it doubles the mapped range each time, and the checks after
/// every operation cost time per mapped page.
const MAX_MAPPED_PAGES: usize = 4096;

/// Operations executed by [`run`] in this process, over all runs.
pub static OPS_EXECUTED: AtomicU64 = AtomicU64::new(0);

type SimMm<'v, 'a> = Mm<'v, 'a, SimPlatform>;

/// The live address spaces and their models.
struct World<'v, 'a> {
    vm: &'v Vm<'a, SimPlatform>,
    cfg: Config,
    mms: Vec<SimMm<'v, 'a>>,
    models: Vec<MmModel>,
    cells: Cells,
    /// mremap path counts of the address spaces that exited.
    mremap_paths: [u64; MremapStat::COUNT],
}

/// What one [`run`] did.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunStats {
    /// Operations run.
    pub ops: usize,
    /// How often each mremap path ran ([`MremapStat`] order), over every
    /// address space of the run.
    pub mremap_paths: [u64; MremapStat::COUNT],
}

/// Runs the operations `data` decodes to, checking the model after each,
/// then tears everything down and checks that nothing leaked. Panics on
/// the first difference.
pub fn run(data: &[u8]) -> RunStats {
    let mut stats = RunStats::default();
    let mut r = Reader::new(data);
    let Some(b) = r.byte() else {
        return stats;
    };
    let cfg = Config::from_byte(b);
    sim::set_cpu(0);
    let pa = PageAlloc::new(
        SimPlatform(fresh_machine()),
        MemMap::new_boxed(NR_PAGES),
        ZoneLayout::X86_64,
        &[Pfn::new(16)..Pfn::new(NR_PAGES as u64)],
    );
    let rcu = crate::rcu::Rcu::new(pa.platform().clone());
    let cache = crate::maple::node_cache(&pa, &rcu).expect("the maple node cache");
    let vm = Vm::new(&pa, &rcu, &cache).expect("the zero page");
    vm.anon_vmas_on.store(cfg.anon_vmas, Relaxed);
    vm.anon_orders.store(cfg.anon_orders, Relaxed);
    vm.no_page_mapcount.store(cfg.no_page_mapcount, Relaxed);
    vm.cow_reuse_large.store(cfg.cow_reuse_large, Relaxed);
    vm.pt_reclaim.store(cfg.pt_reclaim, Relaxed);
    // kvfree_rcu_barrier, not just rcu_barrier: retired VMAs wait in
    // kvfree_rcu batches, which rcu_barrier does not flush (as in Linux).
    let settle = || {
        cache.flush_rcu_sheaf();
        rcu.kvfree_rcu_barrier();
        cache.shrink();
        pa.drain_all_pages();
        pa.nr_free_pages()
    };
    let before = settle();
    let mut log: Vec<(usize, Op)> = Vec::new();
    {
        let mut w = World {
            vm: &vm,
            cfg,
            mms: Vec::new(),
            models: Vec::new(),
            cells: Cells::default(),
            mremap_paths: [0; MremapStat::COUNT],
        };
        w.spawn();
        while log.len() < MAX_OPS
            && pa.nr_free_pages() >= LOW_FRAMES
            && w.models.iter().map(|m| m.pages.len()).sum::<usize>() < MAX_MAPPED_PAGES
        {
            let models: Vec<&MmModel> = w.models.iter().collect();
            let Some((i, op)) = decode::next_op(&mut r, &models) else {
                break;
            };
            log.push((i, op));
            OPS_EXECUTED.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = w.step(i, op).and_then(|()| w.check()) {
                fail(cfg, &log, &e);
            }
        }
        for mm in &w.mms {
            w.mremap_paths = count_mremap_paths(w.mremap_paths, mm);
        }
        stats.mremap_paths = w.mremap_paths;
    }
    let leftovers = || -> Result<(), String> {
        expect("commit charge after exit", vm.committed_pages(), 0)?;
        let av = vm.anon_vmas.lock();
        if !av.is_empty() {
            return Err(format!("anon_vmas left after exit: {:?}", *av));
        }
        drop(av);
        if vm.mm_ids.lock().iter().any(|&w| w & !1 != 0) {
            return Err(format!("MM ids left after exit: {:x?}", vm.mm_ids.lock()));
        }
        expect("free frames after exit", settle(), before)
    };
    if let Err(e) = leftovers() {
        fail(cfg, &log, &e);
    }
    stats.ops = log.len();
    stats
}

/// `paths` plus the mremap path counts of `mm`.
fn count_mremap_paths(
    mut paths: [u64; MremapStat::COUNT],
    mm: &SimMm<'_, '_>,
) -> [u64; MremapStat::COUNT] {
    for &s in MremapStat::ALL {
        paths[s as usize] += mm.mremap_stat(s);
    }
    paths
}

std::thread_local! {
    /// The simulated machine runs on this thread reuse: allocating and
    /// zeroing a new one costs more than most runs.
    static MACHINE: Arc<SimMachine> = SimMachine::new(NR_PAGES, 1);
}

/// This thread's machine with its RAM zeroed and its instrument reset, as
/// a new one would be.
fn fresh_machine() -> Arc<SimMachine> {
    let m = MACHINE.with(Arc::clone);
    assert_eq!(
        Arc::strong_count(&m),
        2,
        "a page allocator of an earlier run is still alive"
    );
    let ram = SimPlatform(m.clone()).phys_to_virt(PhysAddr::new(0));
    // SAFETY: 1. `ram` is the start of the machine's RAM buffer of
    // `nr_pages()` frames; 2. nothing else uses the machine (only the
    // thread-local and `m` hold it, checked above), so no reference into
    // the buffer exists; 3. bytes have no invalid values.
    unsafe { core::ptr::write_bytes(ram, 0, m.nr_pages() * PAGE_SIZE as usize) };
    // The instrument's records of the last run (poison marks of its freed
    // frames, owners) would not match the zeroed RAM.
    m.reset_instrument();
    m
}

#[cold]
fn fail(cfg: Config, log: &[(usize, Op)], e: &str) -> ! {
    let from = log.len().saturating_sub(16);
    let mut ops = String::new();
    for (i, (mm, op)) in log.iter().enumerate().skip(from) {
        ops += &format!("  {i:3}: mm {mm}: {op:x?}\n");
    }
    panic!(
        "address-space fuzz: {cfg:?}, after op {}: {e}\nlast operations:\n{ops}",
        log.len().saturating_sub(1)
    );
}

impl<'v, 'a> World<'v, 'a> {
    /// A fresh address space (exec's `mm_alloc()`), its break at
    /// [`BRK_BASE`].
    fn spawn(&mut self) {
        let mm = Mm::new(self.vm).expect("an MM id and a PGD");
        mm.set_brk_start(BRK_BASE);
        self.mms.push(mm);
        self.models.push(MmModel {
            start_brk: BRK_BASE,
            brk: BRK_BASE,
            ..MmModel::default()
        });
    }

    /// Applies `op` to address space `i` and its model; checks the result.
    fn step(&mut self, i: usize, op: Op) -> Result<(), String> {
        match op {
            Op::Fork => {
                if self.mms.len() < MAX_MMS {
                    self.fork(i)?;
                }
                Ok(())
            }
            Op::Exit => {
                self.mremap_paths = count_mremap_paths(self.mremap_paths, &self.mms[i]);
                drop(self.mms.remove(i));
                self.models.remove(i);
                if self.mms.is_empty() {
                    self.spawn();
                }
                Ok(())
            }
            op => step_one(&self.mms[i], &mut self.models[i], &mut self.cells, op),
        }
    }

    /// fork: the child's model is the parent's minus DONTCOPY pages and
    /// without memory locks (VM_LOCKED_MASK is not inherited); a shared
    /// page the parent has mapped (written or not) becomes one cell for
    /// both.
    fn fork(&mut self, i: usize) -> Result<(), String> {
        let child = self.mms[i]
            .fork()
            .map_err(|e| format!("fork failed: {e:?}"))?;
        let mut model = MmModel {
            start_brk: self.models[i].start_brk,
            brk: self.models[i].brk,
            ..MmModel::default()
        };
        for (&a, p) in self.models[i].pages.iter() {
            if p.flags.contains(VmFlags::DONTCOPY) {
                continue;
            }
            let mut p = *p;
            p.flags -= crate::vm::VM_LOCKED_MASK;
            model.pages.insert(a, p);
        }
        self.mms.push(child);
        self.models.push(model);
        Ok(())
    }

    /// F2..F6 over every live address space.
    fn check(&self) -> Result<(), String> {
        for (i, (mm, m)) in self.mms.iter().zip(&self.models).enumerate() {
            check_mm(mm, m, &self.cells, self.cfg.anon_vmas).map_err(|e| format!("mm {i}: {e}"))?;
        }
        expect(
            "committed pages",
            self.vm.committed_pages(),
            self.models.iter().map(MmModel::accounted).sum(),
        )?;
        self.check_frames()
    }

    /// F5 and F6: mappings and references of every mapped frame, shared
    /// cells, rmap.
    fn check_frames(&self) -> Result<(), String> {
        let memmap = self.vm.pa.memmap();
        let zero = self.vm.zero_page();
        // Frame -> (address space, address) of every PTE mapping it.
        let mut maps: BTreeMap<Pfn, Vec<(usize, u64)>> = BTreeMap::new();
        let mut cells: BTreeMap<(usize, u64), Pfn> = BTreeMap::new();
        for (i, (mm, m)) in self.mms.iter().zip(&self.models).enumerate() {
            for (&a, p) in &m.pages {
                let Some(e) = mm.page_table().get_pte(a).filter(|e| e.is_present()) else {
                    continue;
                };
                if let Data::Shared { obj, pgoff } = p.data
                    && let Some(other) = cells.insert((obj, pgoff), e.pfn())
                    && other != e.pfn()
                {
                    return Err(format!(
                        "shared page {a:#x} of mm {i} maps {:?}, another holder {other:?}",
                        e.pfn()
                    ));
                }
                if e.pfn() != zero {
                    maps.entry(e.pfn()).or_default().push((i, a));
                }
            }
        }
        // Group by folio.
        let mut folios: BTreeMap<Pfn, Vec<(Pfn, usize, u64)>> = BTreeMap::new();
        for (&pfn, users) in &maps {
            let head = Folio::of(memmap, pfn).head();
            for &(i, a) in users {
                folios.entry(head).or_default().push((pfn, i, a));
            }
        }
        let per_page = self.vm.mapcount_mode() == MapcountMode::PerPage;
        for (&head, users) in &folios {
            let folio = Folio::of(memmap, head);
            let n = users.len() as i64;
            let what = |s: &str| format!("{s} of the folio at {head:?} ({users:x?})");
            if folio.mapcount() != n {
                return Err(what(&format!("mapcount {}, PTEs {n}", folio.mapcount())));
            }
            // A shmem folio holds one more reference: its object's.
            let refs = i64::from(folio.page(0).refcount());
            let want = n + i64::from(folio.mapping().is_some());
            if refs != want {
                return Err(what(&format!("refcount {refs}, PTEs {n}")));
            }
            if folio.is_shmem() != users.iter().any(|&(_, i, a)| self.models[i].shared(a)) {
                return Err(what("shmem folio outside shared VMAs, or the reverse"));
            }
            if !folio.is_large() || per_page {
                for (&pfn, u) in maps.range(head..head.add(folio.nr_pages() as u64)) {
                    let mc = memmap.page(pfn).mapcount();
                    if mc as usize != u.len() {
                        return Err(what(&format!("mapcount {mc} of {pfn:?}, PTEs {u:x?}")));
                    }
                }
            }
            let mut owners: Vec<usize> = users.iter().map(|u| u.1).collect();
            owners.sort_unstable();
            owners.dedup();
            if owners.len() > 1 && !folio.maybe_mapped_shared() {
                return Err(what("not maybe-mapped-shared though mapped by two MMs"));
            }
            if self.cfg.anon_vmas {
                let mms: Vec<&SimMm<'_, '_>> = self.mms.iter().collect();
                let hits = self.vm.rmap_walk(&folio, &mms);
                for &(_, i, a) in users {
                    let id = self.mms[i].id();
                    if !hits.iter().any(|h| h.addr == a && h.mm_id == id) {
                        return Err(what(&format!(
                            "rmap walk misses mm {i} at {a:#x}: {hits:x?}"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Reads a user word the way the CPU would: fault first if needed.
fn user_read(mm: &SimMm<'_, '_>, addr: u64) -> Result<u64, FaultError> {
    let pte = mm
        .page_table()
        .get_pte(addr)
        .filter(|e| e.flags().contains(PteFlags::PRESENT));
    if pte.is_none() {
        mm.handle_fault(addr, FaultAccess::Read)?;
    }
    let e = mm
        .page_table()
        .get_pte(addr)
        .filter(|e| e.flags().contains(PteFlags::PRESENT))
        .expect("a resolved read fault leaves a present PTE");
    // SAFETY: 1. `e` is a present PTE of this address space, so its frame
    // is simulated RAM it maps; 2. this thread is the only one running on
    // the machine; 3. `addr % 8 == 0`, so the word is aligned.
    Ok(unsafe { user_word(mm, e, addr).read_volatile() })
}

/// Writes a user word the way the CPU would.
fn user_write(mm: &SimMm<'_, '_>, addr: u64, val: u64) -> Result<(), FaultError> {
    let writable = |e: &Entry| e.flags().contains(PteFlags::PRESENT | PteFlags::WRITE);
    if !mm.page_table().get_pte(addr).is_some_and(|e| writable(&e)) {
        mm.handle_fault(addr, FaultAccess::Write)?;
    }
    let e = mm
        .page_table()
        .get_pte(addr)
        .filter(writable)
        .expect("a resolved write fault leaves a writable PTE");
    // SAFETY: as in `user_read`: a present, writable PTE of this address
    // space maps the frame; one thread; aligned.
    unsafe { user_word(mm, e, addr).write_volatile(val) };
    Ok(())
}

/// The direct-map address of the word at `addr`, which `e` maps.
fn user_word(mm: &SimMm<'_, '_>, e: Entry, addr: u64) -> *mut u64 {
    mm.vm
        .pa
        .platform()
        .phys_to_virt(e.pfn().phys_addr())
        .wrapping_add((addr % PG) as usize)
        .cast::<u64>()
}

/// One memory syscall or access on `mm` and its model `m`.
fn step_one(mm: &SimMm<'_, '_>, m: &mut MmModel, cells: &mut Cells, op: Op) -> Result<(), String> {
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
            let vf = model::vm_flags(prot, flags);
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
            if flags.contains(MapFlags::SHARED) {
                let obj = cells.new_object(pages);
                m.map_shared(at, at + len, vf, obj, 0);
            } else {
                m.map(at, at + len, vf);
            }
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
                    Some(p) => p.flags = model::protect(p.flags, prot),
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
            let anon_vmas = mm.vm.anon_vmas_on.load(Relaxed);
            let lookup = || mm.vma_lookup(addr).map(|v| (v.start, v.end));
            let before = lookup();
            let r = mm.mremap(addr, old_pages * PG, new_pages * PG, flags, new_addr);
            let kernel_vma = anon_vmas.then(|| model::KernelVma {
                before,
                after: lookup(),
            });
            model::mremap(
                m,
                addr,
                old_pages * PG,
                new_pages * PG,
                flags,
                new_addr,
                kernel_vma,
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
            let any = |f: VmFlags| mapped.iter().any(|a| m.pages[a].flags.intersects(f));
            if (advice == 4 && any(VmFlags::LOCKED)) || (advice == 8 && any(VmFlags::SHARED)) {
                return expect("madvise refused", r, Err(Errno::EINVAL));
            }
            for a in mapped {
                let p = m.pages.get_mut(&a).expect("mapped");
                match advice {
                    // DONTNEED: private pages read zero again; shared
                    // ones re-read their object.
                    4 if !matches!(p.data, Data::Shared { .. }) => p.data = Data::Unwritten,
                    0..=2 => {
                        p.flags -= VmFlags::SEQ_READ | VmFlags::RAND_READ;
                        if advice == 1 {
                            p.flags |= VmFlags::RAND_READ;
                        } else if advice == 2 {
                            p.flags |= VmFlags::SEQ_READ;
                        }
                    }
                    10 => p.flags |= VmFlags::DONTCOPY,
                    11 => p.flags -= VmFlags::DONTCOPY,
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
                Some(_) => m
                    .value(cells, addr)
                    .expect("mapped")
                    .ok_or(FaultError::Sigbus),
            };
            expect("read", user_read(mm, addr + 8), want)?;
        }
        Op::Write { addr, val } => {
            let want = match m.pages.get(&addr) {
                None => Err(FaultError::Segv(SegvCode::MapErr)),
                Some(p) if !p.flags.contains(VmFlags::WRITE) => {
                    Err(FaultError::Segv(SegvCode::AccErr))
                }
                Some(p) => match p.data {
                    Data::Shared { obj, pgoff } if cells.cell(obj, pgoff).is_none() => {
                        Err(FaultError::Sigbus)
                    }
                    _ => Ok(()),
                },
            };
            expect("write", user_write(mm, addr + 8, val), want)?;
            if want.is_ok() {
                let p = m.pages.get_mut(&addr).expect("mapped");
                match p.data {
                    Data::Shared { obj, pgoff } => {
                        *cells.cell(obj, pgoff).expect("inside the object") = val;
                    }
                    _ => p.data = Data::Private(val),
                }
            }
        }
        Op::Bad(bad, addr) => bad_call(mm, bad, addr)?,
        Op::Fork | Op::Exit => unreachable!("handled by the world"),
    }
    Ok(())
}

/// A call Linux refuses on its arguments alone: the errno it documents.
fn bad_call(mm: &SimMm<'_, '_>, bad: Bad, addr: u64) -> Result<(), String> {
    let anon = MapFlags::PRIVATE | MapFlags::ANONYMOUS;
    let rw = Prot::READ | Prot::WRITE;
    let (r, want): (Result<u64, Errno>, Result<u64, Errno>) = match bad {
        Bad::MunmapUnaligned => (mm.munmap(addr + 1, PG).map(|()| 0), Err(Errno::EINVAL)),
        Bad::MunmapZero => (mm.munmap(addr, 0).map(|()| 0), Err(Errno::EINVAL)),
        Bad::MunmapHuge => (
            mm.munmap(addr, u64::MAX - 5).map(|()| 0),
            Err(Errno::EINVAL),
        ),
        Bad::MprotectUnaligned => (
            mm.mprotect(addr + 8, PG, Prot::READ).map(|()| 0),
            Err(Errno::EINVAL),
        ),
        Bad::MprotectBadProt => (
            mm.mprotect(addr, PG, Prot::from_bits_retain(0x8))
                .map(|()| 0),
            Err(Errno::EINVAL),
        ),
        Bad::MprotectZero => (mm.mprotect(addr, 0, Prot::empty()).map(|()| 0), Ok(0)),
        Bad::MadviseUnaligned => (mm.madvise(addr + 1, PG, 4).map(|()| 0), Err(Errno::EINVAL)),
        Bad::MadviseUnknown => (mm.madvise(addr, PG, 5).map(|()| 0), Err(Errno::EINVAL)),
        Bad::MmapZero => (mm.mmap(addr, 0, rw, anon, -1, 0), Err(Errno::EINVAL)),
        Bad::MmapNoType => (
            mm.mmap(addr, PG, rw, MapFlags::ANONYMOUS, -1, 0),
            Err(Errno::EINVAL),
        ),
        Bad::MmapFile => (
            mm.mmap(addr, PG, rw, MapFlags::PRIVATE, -1, 0),
            Err(Errno::EBADF),
        ),
        Bad::MmapFixedUnaligned => (
            mm.mmap(addr + 16, PG, rw, anon | MapFlags::FIXED, -1, 0),
            Err(Errno::EINVAL),
        ),
        Bad::MmapFixedLow => (
            mm.mmap(PG, PG, rw, anon | MapFlags::FIXED, -1, 0),
            Err(Errno::EPERM),
        ),
        Bad::MremapUnaligned => (
            mm.mremap(addr + 1, PG, PG, super::MremapFlags::empty(), 0),
            Err(Errno::EINVAL),
        ),
        Bad::MremapZeroNew => (
            mm.mremap(addr, PG, 0, super::MremapFlags::MAYMOVE, 0),
            Err(Errno::EINVAL),
        ),
        Bad::MremapBadFlags => (
            mm.mremap(addr, PG, PG, super::MremapFlags::from_bits_retain(8 | 1), 0),
            Err(Errno::EINVAL),
        ),
    };
    expect(&format!("{bad:?}"), r, want)
}

/// Page tables linked below the PGD, walked.
fn count_tables(mm: &SimMm<'_, '_>) -> u64 {
    let pt = mm.page_table();
    let _rcu = mm.vm.rcu.read_lock();
    let linked = |e: &AtomicU64| {
        let e = Entry(e.load(Acquire));
        e.is_present() && !e.is_huge()
    };
    // The table holding the entry for `a` at `level`, `a` being the
    // start of the range that table covers (entry 0).
    let table = |a: u64, level: Level| -> &[AtomicU64; 512] {
        let first = pt.slot(a, level).expect("the table above is linked");
        // SAFETY: 1. `a` is aligned to the range one table of `level`
        // covers, so `first` is entry 0 of that table, and the table is
        // 512 such entries in one frame; 2. the table stays allocated
        // while we hold the RCU read lock (tables are freed after a grace
        // period), and we only read it atomically.
        unsafe { &*core::ptr::from_ref(first).cast::<[AtomicU64; 512]>() }
    };
    let mut n = 0;
    let pgd = table(0, Level::Pgd);
    for (i, e) in pgd.iter().enumerate().take(USER_PGD_ENTRIES) {
        if !linked(e) {
            continue;
        }
        n += 1;
        let a = i as u64 * PGDIR_SIZE;
        for (j, e) in table(a, Level::Pud).iter().enumerate() {
            if !linked(e) {
                continue;
            }
            n += 1;
            let b = a + j as u64 * PUD_SIZE;
            n += table(b, Level::Pmd).iter().filter(|e| linked(e)).count() as u64;
        }
    }
    n
}

/// F2 and F4 for one address space.
fn check_mm(mm: &SimMm<'_, '_>, m: &MmModel, cells: &Cells, anon_vmas: bool) -> Result<(), String> {
    mm.validate()?;
    if anon_vmas {
        // anon_vmas decide merges and page offsets the model does not
        // track: compare page by page.
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
    } else {
        let got: Vec<(u64, u64, VmFlags)> = mm
            .vmas()
            .iter()
            .map(|v| (v.start, v.end, v.flags - VmFlags::SOFTDIRTY))
            .collect();
        if got != m.vmas() {
            return Err(format!("VMAs {got:x?}\n  model {:x?}", m.vmas()));
        }
    }
    expect("VmSize kB", mm.status().vm_size, m.pages.len() as u64 * 4)?;
    expect("VmPTE kB", mm.status().vm_pte, count_tables(mm) * 4)?;
    for (&a, p) in &m.pages {
        match mm.page_table().get_pte(a).filter(|e| e.is_present()) {
            Some(e) => {
                // SAFETY: 1. `e` is a present PTE of this address space,
                // so its frame is simulated RAM; 2. one thread runs;
                // 3. aligned.
                let got = unsafe { user_word(mm, e, a + 8).read_volatile() };
                let Some(want) = m.value(cells, a).expect("mapped") else {
                    return Err(format!("page {a:#x} beyond its object is mapped"));
                };
                if got != want {
                    return Err(format!("value at {a:#x}: {got:#x}, model {want:#x}"));
                }
            }
            // Shared pages may be unmapped with data: it is in the object.
            None if matches!(p.data, Data::Private(_)) => {
                return Err(format!("written page {a:#x} not mapped"));
            }
            None => {}
        }
    }
    Ok(())
}
