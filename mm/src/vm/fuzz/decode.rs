//! Bytes to operations. Every byte string decodes to a run: a
//! configuration byte, then operations until the bytes (or
//! [`MAX_OPS`]) run out; an operation cut short by the end of the input
//! is dropped. Addresses are chosen relative to the model (an arena page,
//! or one of the target address space's mapped pages), so that most
//! operations hit something and small inputs reach deep states.
//!
//! ```text
//! config:  bit 0 anon_vmas on   bits 1-2 anonymous folio orders
//!          bit 3 no per-page mapcounts   bit 4 no large-folio CoW reuse
//!          bit 5 PTE-table reclaim off
//! op:      low 4 bits: the operation (table OPS), high 4: the address
//!          space (index into the live ones, modulo their number)
//! operands, one byte each: address selector (bit 7: a mapped page,
//!          index bits 0-6; else arena page 0..127), pages, prot+place,
//!          flags, advice, value ...
//! ```

use super::super::{MapFlags, MremapFlags, Prot};
use super::model::MmModel;
use crate::addr::PAGE_SIZE;
use crate::pgtable::PMD_SIZE;

const PG: u64 = PAGE_SIZE;
/// Most operations of one run.
pub const MAX_OPS: usize = 512;
/// Most address spaces alive at once (fork beyond that does nothing).
pub const MAX_MMS: usize = 4;
/// The arena most operations aim at: 128 pages across a 2 MiB boundary
/// (two PTE tables).
pub(super) const ARENA: u64 = 0x1000_0000 + PMD_SIZE - 64 * PG;
pub(super) const ARENA_PAGES: u64 = 128;
/// The program break starts here (away from the arena).
pub(super) const BRK_BASE: u64 = 0x3000_0000;

/// The machine's tunables, from the first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub anon_vmas: bool,
    /// `Vm::anon_orders`.
    pub anon_orders: u32,
    pub no_page_mapcount: bool,
    pub cow_reuse_large: bool,
    pub pt_reclaim: bool,
}

impl Config {
    pub fn from_byte(b: u8) -> Config {
        Config {
            anon_vmas: b & 1 != 0,
            anon_orders: [1, 1 | 1 << 4, 1 | 1 << 2 | 1 << 4, 0x1f][usize::from(b >> 1 & 3)],
            no_page_mapcount: b & 8 != 0,
            cow_reuse_large: b & 16 == 0,
            pt_reclaim: b & 32 == 0,
        }
    }
}

/// Where mmap places a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Anywhere,
    Hint,
    Fixed,
    NoReplace,
}

/// A call with an argument Linux refuses before looking at the address
/// space; the model expects the documented errno and no change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    MunmapUnaligned,
    MunmapZero,
    MunmapHuge,
    MprotectUnaligned,
    MprotectBadProt,
    MadviseUnaligned,
    MadviseUnknown,
    MmapZero,
    MmapNoType,
    MmapFile,
    MmapFixedUnaligned,
    MmapFixedLow,
    MremapUnaligned,
    MremapZeroNew,
    MremapBadFlags,
    MprotectZero,
}

impl Bad {
    const ALL: [Bad; 16] = [
        Bad::MunmapUnaligned,
        Bad::MunmapZero,
        Bad::MunmapHuge,
        Bad::MprotectUnaligned,
        Bad::MprotectBadProt,
        Bad::MadviseUnaligned,
        Bad::MadviseUnknown,
        Bad::MmapZero,
        Bad::MmapNoType,
        Bad::MmapFile,
        Bad::MmapFixedUnaligned,
        Bad::MmapFixedLow,
        Bad::MremapUnaligned,
        Bad::MremapZeroNew,
        Bad::MremapBadFlags,
        Bad::MprotectZero,
    ];
}

/// One operation on address space `mm` (an index into the live ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
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
    /// A child of `mm` joins the live address spaces.
    Fork,
    /// `mm` exits (the last one is replaced by a fresh address space).
    Exit,
    Bad(Bad, u64),
}

#[derive(Clone, Copy)]
enum Kind {
    Mmap,
    Munmap,
    Mprotect,
    Mremap,
    Madvise,
    Brk,
    Read,
    Write,
    Fork,
    Exit,
    Bad,
}

/// The operation of each value of an op byte's low 4 bits.
const OPS: [Kind; 16] = [
    Kind::Mmap,
    Kind::Mmap,
    Kind::Munmap,
    Kind::Mprotect,
    Kind::Mremap,
    Kind::Mremap,
    Kind::Madvise,
    Kind::Brk,
    Kind::Read,
    Kind::Read,
    Kind::Write,
    Kind::Write,
    Kind::Write,
    Kind::Fork,
    Kind::Exit,
    Kind::Bad,
];

const PROTS: [Prot; 8] = [
    Prot::READ.union(Prot::WRITE),
    Prot::READ.union(Prot::WRITE),
    Prot::READ,
    Prot::empty(),
    Prot::READ.union(Prot::EXEC),
    Prot::WRITE,
    Prot::all()
        .difference(Prot::GROWSDOWN)
        .difference(Prot::GROWSUP),
    Prot::EXEC,
];

const REMAP_FLAGS: [MremapFlags; 8] = [
    MremapFlags::empty(),
    MremapFlags::MAYMOVE,
    MremapFlags::MAYMOVE,
    MremapFlags::MAYMOVE.union(MremapFlags::FIXED),
    MremapFlags::MAYMOVE.union(MremapFlags::DONTUNMAP),
    MremapFlags::MAYMOVE
        .union(MremapFlags::FIXED)
        .union(MremapFlags::DONTUNMAP),
    MremapFlags::FIXED,
    MremapFlags::DONTUNMAP,
];

/// `MADV_*` values: DONTNEED (twice as likely), FREE, NORMAL, RANDOM,
/// SEQUENTIAL, WILLNEED, DONTFORK, DOFORK.
const ADVICE: [i64; 9] = [4, 4, 8, 0, 1, 2, 3, 10, 11];

/// A cursor over the input bytes.
pub struct Reader<'d> {
    data: &'d [u8],
    pos: usize,
}

impl<'d> Reader<'d> {
    pub fn new(data: &'d [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
}

fn arena_page(sel: u8) -> u64 {
    ARENA + u64::from(sel) % ARENA_PAGES * PG
}

/// An address from a selector byte: bit 7 picks a mapped page of `m`
/// (when it has one), else an arena page.
fn target(sel: u8, m: &MmModel) -> u64 {
    if sel & 0x80 != 0 && !m.pages.is_empty() {
        let i = usize::from(sel & 0x7f) % m.pages.len();
        *m.pages.keys().nth(i).expect("in range")
    } else {
        arena_page(sel & 0x7f)
    }
}

/// Decodes the next operation: the index of its address space among
/// `models` (the live ones, in order) and the operation.
pub fn next_op(r: &mut Reader<'_>, models: &[&MmModel]) -> Option<(usize, Op)> {
    let b = r.byte()?;
    let mm = usize::from(b >> 4) % models.len();
    let m = models[mm];
    let op = match OPS[usize::from(b & 15)] {
        Kind::Mmap => {
            let (sel, pages, p, f) = (r.byte()?, r.byte()?, r.byte()?, r.byte()?);
            let place = [Place::Anywhere, Place::Hint, Place::Fixed, Place::NoReplace]
                [usize::from(p >> 3 & 3)];
            let mut flags = MapFlags::ANONYMOUS;
            flags |= if f & 7 == 0 {
                MapFlags::SHARED
            } else {
                MapFlags::PRIVATE
            };
            if f & 8 != 0 {
                flags |= MapFlags::NORESERVE;
            }
            if f & 0x30 == 0x30 {
                flags |= MapFlags::LOCKED;
            }
            if f & 0x40 != 0 {
                flags |= MapFlags::POPULATE;
            }
            Op::Mmap {
                addr: if place == Place::Anywhere {
                    0
                } else {
                    target(sel, m)
                },
                pages: 1 + u64::from(pages % 16),
                prot: PROTS[usize::from(p & 7)],
                place,
                flags,
            }
        }
        Kind::Munmap => Op::Munmap {
            addr: target(r.byte()?, m),
            pages: 1 + u64::from(r.byte()? % 24),
        },
        Kind::Mprotect => Op::Mprotect {
            addr: target(r.byte()?, m),
            pages: 1 + u64::from(r.byte()? % 16),
            prot: PROTS[usize::from(r.byte()? & 7)],
        },
        Kind::Mremap => {
            let (sel, len, new, fl, dest) = (r.byte()?, r.byte()?, r.byte()?, r.byte()?, r.byte()?);
            // Mostly a range inside a VMA (a run of the model), often one
            // that ends at its end (growable in place).
            let vmas = m.vmas();
            let (addr, old_pages) = if sel & 0x80 == 0 || vmas.is_empty() {
                (arena_page(sel), 1 + u64::from(len % 10))
            } else {
                let (s, e, _) = vmas[usize::from(sel & 0x7f) % vmas.len()];
                let n = (e - s) / PG;
                let addr = s + u64::from(len) % n * PG;
                let left = (e - addr) / PG;
                let old = if new & 0x80 != 0 {
                    left
                } else {
                    1 + u64::from(new >> 4 & 7) % left
                };
                (addr, old)
            };
            let old_pages = if len == 0xff { 0 } else { old_pages };
            let flags = REMAP_FLAGS[usize::from(fl & 7)];
            let new_pages = if flags.contains(MremapFlags::DONTUNMAP) && fl & 0x18 != 0 {
                old_pages.max(1)
            } else {
                1 + u64::from(new & 15) % 12
            };
            Op::Mremap {
                addr,
                old_pages,
                new_pages,
                flags,
                new_addr: arena_page(dest),
            }
        }
        Kind::Madvise => Op::Madvise {
            addr: target(r.byte()?, m),
            pages: u64::from(r.byte()? % 17),
            advice: ADVICE[usize::from(r.byte()?) % ADVICE.len()],
        },
        Kind::Brk => Op::Brk {
            brk: BRK_BASE - 2 * PG + u64::from(r.byte()?) * (PG / 4),
        },
        Kind::Read => Op::Read {
            addr: target(r.byte()?, m),
        },
        Kind::Write => Op::Write {
            addr: target(r.byte()?, m),
            val: u64::from(r.byte()?).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        },
        Kind::Fork => Op::Fork,
        Kind::Exit => Op::Exit,
        Kind::Bad => {
            let (k, sel) = (r.byte()?, r.byte()?);
            Op::Bad(Bad::ALL[usize::from(k) % Bad::ALL.len()], target(sel, m))
        }
    };
    Some((mm, op))
}

/// Op-byte values (low nibbles, see `OPS`) for tests that write inputs
/// by hand.
pub mod bytes {
    pub const MMAP: u8 = 0;
    pub const MUNMAP: u8 = 2;
    pub const MPROTECT: u8 = 3;
    pub const MREMAP: u8 = 4;
    pub const MADVISE: u8 = 6;
    pub const BRK: u8 = 7;
    pub const READ: u8 = 8;
    pub const WRITE: u8 = 10;
    pub const FORK: u8 = 13;
    pub const EXIT: u8 = 14;
    pub const BAD: u8 = 15;
}
