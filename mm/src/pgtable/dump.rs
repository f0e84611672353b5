//! A page-table dump of an address space (after Linux's ptdump,
//! `/sys/kernel/debug/page_tables`) and the W^X check
//! (`ptdump_check_wx()`): no mapping may be both writable and executable.

use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::Ordering::*;

use super::{Entry, Level, PageTable, PteFlags, USER_PGD_ENTRIES};
use crate::addr::Pfn;
use crate::platform::Platform;

/// One run of contiguous leaf mappings with the same attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DumpRange {
    pub start: u64,
    pub end: u64,
    pub level: Level,
    pub flags: PteFlags,
}

/// The user half of an address space, as runs of leaf mappings.
pub struct PtDump {
    pub ranges: Vec<DumpRange>,
}

/// Mappings that are both writable and executable.
pub struct WxReport {
    pub ranges: Vec<DumpRange>,
}

/// Attributes that split runs (accessed and dirty do not).
fn attrs(e: Entry) -> PteFlags {
    e.flags() & (PteFlags::WRITE | PteFlags::USER | PteFlags::NX | PteFlags::PRESENT)
}

impl<P: Platform> PageTable<'_, P> {
    /// Walks the user half and merges adjacent leaves with equal
    /// attributes (`ptdump_walk_pgd()`). Callers hold the mmap lock.
    pub fn dump(&self) -> PtDump {
        let _rcu = self.rcu.read_lock();
        let mut ranges: Vec<DumpRange> = Vec::new();
        self.dump_table(self.pgd, Level::Pgd, 0, &mut ranges);
        PtDump { ranges }
    }

    fn dump_table(&self, table: Pfn, level: Level, base: u64, out: &mut Vec<DumpRange>) {
        let n = if level == Level::Pgd {
            USER_PGD_ENTRIES
        } else {
            super::PTRS_PER_TABLE
        };
        for (i, slot) in self.table(table).iter().enumerate().take(n) {
            let e = Entry(slot.load(Acquire));
            if !e.is_present() {
                continue;
            }
            let start = base + (i as u64) * level.entry_size();
            if level == Level::Pte || e.is_huge() {
                let r = DumpRange {
                    start,
                    end: start + level.entry_size(),
                    level,
                    flags: attrs(e),
                };
                match out.last_mut() {
                    Some(last)
                        if last.end == r.start
                            && last.flags == r.flags
                            && last.level == r.level =>
                    {
                        last.end = r.end;
                    }
                    _ => out.push(r),
                }
            } else {
                self.dump_table(e.pfn(), level.below().expect("not a leaf"), start, out);
            }
        }
    }

    /// Reports every user mapping that is writable and executable.
    pub fn check_wx(&self) -> WxReport {
        let ranges = self
            .dump()
            .ranges
            .into_iter()
            .filter(|r| r.flags.contains(PteFlags::WRITE) && !r.flags.contains(PteFlags::NX))
            .collect();
        WxReport { ranges }
    }
}

impl fmt::Display for DumpRange {
    /// `0x0000000000400000-0x0000000000402000           8K USR rw     NX pte`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = self.end - self.start;
        let (n, unit) = if size >= 1 << 30 && size.is_multiple_of(1 << 30) {
            (size >> 30, "G")
        } else if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
            (size >> 20, "M")
        } else {
            (size >> 10, "K")
        };
        let fl = self.flags;
        write!(
            f,
            "{:#018x}-{:#018x} {:>9}{} {} {} {} {}",
            self.start,
            self.end,
            n,
            unit,
            if fl.contains(PteFlags::USER) {
                "USR"
            } else {
                "   "
            },
            if fl.contains(PteFlags::WRITE) {
                "rw"
            } else {
                "ro"
            },
            if fl.contains(PteFlags::NX) {
                "NX"
            } else {
                "x "
            },
            self.level.name()
        )
    }
}

impl fmt::Display for PtDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.ranges {
            writeln!(f, "{r}")?;
        }
        Ok(())
    }
}

impl WxReport {
    pub fn passed(&self) -> bool {
        self.ranges.is_empty()
    }
}

impl fmt::Display for WxReport {
    /// Linux's wording: "Checked W+X mappings: passed, no W+X pages found."
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            return write!(f, "Checked W+X mappings: passed, no W+X pages found.");
        }
        let pages: u64 = self.ranges.iter().map(|r| (r.end - r.start) >> 12).sum();
        writeln!(f, "Checked W+X mappings: FAILED, {pages} W+X pages found:")?;
        for r in &self.ranges {
            writeln!(f, "  {r}")?;
        }
        Ok(())
    }
}
