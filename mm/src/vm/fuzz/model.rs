//! The model the fuzzer checks address spaces against: per address
//! space, every mapped page with its VMA flags and what a read of its
//! word at offset 8 returns; across address spaces, the shmem objects
//! that `MAP_SHARED` mappings map (in several address spaces after fork).
//!
//! The VMA rules: an address space's VMAs are the maximal runs of
//! adjacent pages with equal flags when anon_vmas are off (every private
//! VMA's page offset is then its start page, so neighbours merge exactly
//! when their flags are equal); a shared page continues a run only in the
//! same object at the next offset. Fork extends them: a child's model
//! is its parent's minus the `VM_DONTCOPY` pages and the memory locks,
//! private data is copied (copy-on-write keeps the two apart from then
//! on), and shared pages name the same object offsets, whose values both
//! see.
//!
//! A shared mapping is a new object of its size (Linux's
//! `shmem_zero_setup()`): its pages are the object's from the start, keep
//! their data through `MADV_DONTNEED` and unmapping of other mappings,
//! and a page of the VMA beyond the object's size (after mremap grew it)
//! raises SIGBUS.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::super::{MapFlags, MremapFlags, Prot, VmFlags};
use crate::addr::PAGE_SIZE;
use crate::errno::Errno;

const PG: u64 = PAGE_SIZE;

/// What the word at offset 8 of a mapped page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Data {
    /// Not written since mapped or zapped: reads zero.
    Unwritten,
    /// Written, private to this address space.
    Private(u64),
    /// A `MAP_SHARED` page: offset `pgoff` of object `obj` in
    /// [`World::cells`]; beyond the object's size it raises SIGBUS.
    Shared { obj: usize, pgoff: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PageModel {
    pub flags: VmFlags,
    pub data: Data,
}

/// The model of one address space.
#[derive(Clone, Debug, Default)]
pub(super) struct MmModel {
    pub pages: BTreeMap<u64, PageModel>,
    pub start_brk: u64,
    pub brk: u64,
}

/// The shmem objects: the values of their pages, by object; objects are
/// never reused.
#[derive(Debug, Default)]
pub(super) struct Cells(pub Vec<Vec<u64>>);

impl Cells {
    /// A new zeroed object of `pages` pages.
    pub fn new_object(&mut self, pages: u64) -> usize {
        self.0.push(alloc::vec![0; pages as usize]);
        self.0.len() - 1
    }

    /// The cell of `(obj, pgoff)`; `None` beyond the object (SIGBUS).
    pub fn cell(&mut self, obj: usize, pgoff: u64) -> Option<&mut u64> {
        self.0[obj].get_mut(pgoff as usize)
    }
}

/// Whether page data `b` directly above `a` can be in one VMA with it.
fn contiguous(a: Data, b: Data) -> bool {
    match (a, b) {
        (Data::Shared { obj, pgoff }, Data::Shared { obj: o, pgoff: p }) => {
            obj == o && pgoff + 1 == p
        }
        (Data::Shared { .. }, _) | (_, Data::Shared { .. }) => false,
        _ => true,
    }
}

impl MmModel {
    pub fn free(&self, s: u64, e: u64) -> bool {
        self.pages.range(s..e).next().is_none()
    }

    pub fn unmap(&mut self, s: u64, e: u64) {
        let keys: Vec<u64> = self.pages.range(s..e).map(|(&a, _)| a).collect();
        for a in keys {
            self.pages.remove(&a);
        }
    }

    pub fn map(&mut self, s: u64, e: u64, flags: VmFlags) {
        for a in (s..e).step_by(PG as usize) {
            self.pages.insert(
                a,
                PageModel {
                    flags,
                    data: Data::Unwritten,
                },
            );
        }
    }

    /// Maps `[s, e)` to object `obj` from offset `pgoff` (a shared mmap, or
    /// a shared VMA grown by mremap: its object offsets go on).
    pub fn map_shared(&mut self, s: u64, e: u64, flags: VmFlags, obj: usize, pgoff: u64) {
        for (i, a) in (s..e).step_by(PG as usize).enumerate() {
            let data = Data::Shared {
                obj,
                pgoff: pgoff + i as u64,
            };
            self.pages.insert(a, PageModel { flags, data });
        }
    }

    /// Extends the VMA whose last page is at `last` over `[s, e)`:
    /// anonymous pages, or the shared object's next offsets.
    pub fn extend(&mut self, last: u64, s: u64, e: u64) {
        let p = self.pages[&last];
        match p.data {
            Data::Shared { obj, pgoff } => self.map_shared(s, e, p.flags, obj, pgoff + 1),
            _ => self.map(s, e, p.flags),
        }
    }

    /// Maximal runs of adjacent pages with equal flags (and contiguous
    /// offsets of one object, for shared pages): the VMAs when anon_vmas
    /// are off.
    pub fn vmas(&self) -> Vec<(u64, u64, VmFlags)> {
        let mut out: Vec<(u64, u64, VmFlags)> = Vec::new();
        let mut prev = Data::Unwritten;
        for (&a, p) in &self.pages {
            match out.last_mut() {
                Some(last) if last.1 == a && last.2 == p.flags && contiguous(prev, p.data) => {
                    last.1 += PG
                }
                _ => out.push((a, a + PG, p.flags)),
            }
            prev = p.data;
        }
        out
    }

    /// Whether `a` is a page of a shared mapping.
    pub fn shared(&self, a: u64) -> bool {
        self.pages
            .get(&a)
            .is_some_and(|p| matches!(p.data, Data::Shared { .. }))
    }

    pub fn vma_at(&self, a: u64) -> Option<(u64, u64, VmFlags)> {
        self.vmas().into_iter().find(|v| v.0 <= a && a < v.1)
    }

    /// Pages of `VM_ACCOUNT` mappings: what this address space commits.
    pub fn accounted(&self) -> u64 {
        self.pages
            .values()
            .filter(|p| p.flags.contains(VmFlags::ACCOUNT))
            .count() as u64
    }

    /// What a read of the word at offset 8 of `a` returns: `None` if
    /// unmapped, `Some(None)` for SIGBUS (beyond a shared object).
    pub fn value(&self, cells: &Cells, a: u64) -> Option<Option<u64>> {
        self.pages.get(&a).map(|p| match p.data {
            Data::Unwritten => Some(0),
            Data::Private(v) => Some(v),
            Data::Shared { obj, pgoff } => cells.0[obj].get(pgoff as usize).copied(),
        })
    }
}

/// The flags mmap gives a mapping (`do_mmap()` as ours does it).
pub(super) fn vm_flags(prot: Prot, flags: MapFlags) -> VmFlags {
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
pub(super) fn protect(old: VmFlags, prot: Prot) -> VmFlags {
    let mut f = (old - VmFlags::ACCESS) | (vm_flags(prot, MapFlags::PRIVATE) & VmFlags::ACCESS);
    if f.accountable() {
        f |= VmFlags::ACCOUNT;
    }
    f
}

/// `actual == expected`, or an error message naming `what`.
pub(super) fn expect<T: PartialEq + core::fmt::Debug>(
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

/// The model of mremap, in the order the kernel checks and acts; `r` is
/// the kernel's result, consulted only for addresses it may choose;
/// with anon_vmas on (which may keep neighbours with equal flags apart),
/// `kernel_vma` gives the kernel's VMA at `addr` before and after the call.
#[allow(clippy::too_many_arguments)]
pub(super) fn mremap(
    m: &mut MmModel,
    addr: u64,
    old_len: u64,
    new_len: u64,
    flags: MremapFlags,
    new_addr: u64,
    kernel_vma: Option<KernelVma>,
    r: Result<u64, Errno>,
) -> Result<(), String> {
    let vma_end = kernel_vma.and_then(|k| k.before).map(|v| v.1);
    let old_vma_after = kernel_vma.and_then(|k| k.after);
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
    let picked = |m: &MmModel, hint: Option<u64>| -> Result<u64, String> {
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
        move_range(m, addr, old_len, dest, new_len, dontunmap, old_vma_after);
        return Ok(());
    }
    if new_len == old_len {
        return expect("mremap same size", r, Ok(addr));
    }
    if shrink {
        m.unmap(addr + new_len, addr + old_len);
        return expect("mremap shrink", r, Ok(addr));
    }
    let (_, ve, _) = m.vma_at(addr).expect("looked up");
    let delta = new_len - old_len;
    if ve - addr == old_len && m.free(ve, ve + delta) {
        m.extend(ve - PG, ve, ve + delta);
        return expect("mremap grow in place", r, Ok(addr));
    }
    if !flags.contains(MremapFlags::MAYMOVE) {
        return err(Errno::ENOMEM);
    }
    let dest = picked(m, None)?;
    move_range(m, addr, old_len, dest, new_len, false, None);
    Ok(())
}

/// The kernel's VMA at the address mremap moves from, `(start, end)`,
/// before and after the call.
#[derive(Clone, Copy, Debug)]
pub(super) struct KernelVma {
    pub before: Option<(u64, u64)>,
    pub after: Option<(u64, u64)>,
}

/// Moves `[addr, addr + old_len)` to `dest`, growing it to `new_len`;
/// with `dontunmap` the old range stays mapped, emptied, and the old VMA
/// loses `VM_LOCKED`: the model's run at `addr` afterwards (merged with
/// the new range if they touch), or with anon_vmas on, `old_vma_after`,
/// the kernel's VMA there (anon_vmas decide whether they merge).
#[allow(clippy::too_many_arguments)]
fn move_range(
    m: &mut MmModel,
    addr: u64,
    old_len: u64,
    dest: u64,
    new_len: u64,
    dontunmap: bool,
    old_vma_after: Option<(u64, u64)>,
) {
    let flags = m.pages[&addr].flags;
    for off in (0..old_len).step_by(PG as usize) {
        let data = if dontunmap {
            let p = m.pages.get_mut(&(addr + off)).expect("mapped");
            match p.data {
                // The old range still maps the object: it keeps its data.
                Data::Shared { .. } => p.data,
                _ => core::mem::replace(&mut p.data, Data::Unwritten),
            }
        } else {
            m.pages.remove(&(addr + off)).expect("mapped").data
        };
        m.pages.insert(dest + off, PageModel { flags, data });
    }
    m.extend(dest + old_len - PG, dest + old_len, dest + new_len);
    if dontunmap && flags.contains(VmFlags::LOCKED) {
        // The old VMA (merged with the new one if they touch) is unlocked.
        let (s, e) = old_vma_after.unwrap_or_else(|| {
            let (s, e, _) = m.vma_at(addr).expect("the old VMA");
            (s, e)
        });
        for p in m.pages.range_mut(s..e) {
            p.1.flags -= VmFlags::LOCKED;
        }
    }
}
