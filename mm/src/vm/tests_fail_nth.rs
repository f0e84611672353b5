//! Fault injection through every address-space path (Linux's fail-nth,
//! as syzkaller drives it): for N = 1, 2, 3, ... a fresh machine is set
//! up, the Nth page or slab allocation of one operation is made to fail
//! ([`sim::set_fail_nth`]), and the walk goes on until the operation runs
//! without reaching its Nth allocation.
//!
//! Every injected failure must either be absorbed (the operation still
//! succeeds: a large folio falls back to a small one, `MAP_POPULATE`
//! stops early) or be reported with Linux's error (`ENOMEM`; a fault's
//! `VM_FAULT_OOM`; brk's unchanged break) and leave the address space as
//! it was: the same VMAs, the same present PTEs mapping the same frames
//! with the same contents, the same counters and commit charge. Either
//! way [`Mm::validate`] holds (check F2 of the `vm::fuzz` model),
//! and the fixture's teardown finds no leaked frame or object (the
//! simulator's leak check), no frame freed under a PTE (its page-table
//! check) and no write after free (its poison).

use alloc::string::String;
use alloc::vec::Vec;

use super::tests::{accounted_pages, peek, poke, with_mm};
use super::*;
use crate::errno::Errno;
use crate::pgtable::PteFlags;
use crate::sim::{self, SimPlatform};

type TestMm<'v, 'a> = Mm<'v, 'a, SimPlatform>;

const PG: u64 = PAGE_SIZE;
const RW: Prot = Prot::READ.union(Prot::WRITE);
const ANON: MapFlags = MapFlags::PRIVATE.union(MapFlags::ANONYMOUS);
/// The first mapping: 16 pages read-write, pages 0..8 written.
const A: u64 = 0x1000_0000;
/// A second one, 4 pages read-only, 32 pages above.
const B: u64 = A + 32 * PG;
/// The program break's start.
const BRK: u64 = 0x3000_0000;

/// What a failed operation must leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    vmas: Vec<Vma>,
    /// Every present PTE: address, frame, flags.
    ptes: Vec<(u64, u64, PteFlags)>,
    /// A hash of every mapped page's contents.
    data: Vec<(u64, u64)>,
    /// `/proc/PID/status` without `VmPTE` (page tables a failed operation
    /// allocated may stay, as in Linux).
    status: [u64; 5],
    committed: u64,
    map_count: usize,
    brk: u64,
}

fn snapshot(mm: &TestMm<'_, '_>) -> Snapshot {
    let mut ptes = Vec::new();
    let mut data = Vec::new();
    for r in mm.page_table().dump().ranges {
        let mut a = r.start;
        while a < r.end {
            let e = mm.page_table().get_pte(a).expect("dumped");
            ptes.push((a, e.pfn().as_u64(), e.flags()));
            let bytes = mm.vm.pa.platform().0.frame_bytes(e.pfn(), 1);
            let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            data.push((a, hash));
            a += PG;
        }
    }
    let s = mm.status();
    let l = mm.mmap_lock.read(mm.platform());
    Snapshot {
        vmas: mm.vmas(),
        ptes,
        data,
        status: [s.vm_size, s.vm_rss, s.vm_data, s.vm_stk, s.vm_exe],
        committed: mm.vm.committed_pages(),
        map_count: l.map_count,
        brk: l.brk,
    }
}

/// The result of one operation, whatever its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Err(Errno),
    Fault(FaultError),
}

impl<T> From<crate::errno::Result<T>> for Outcome {
    fn from(r: crate::errno::Result<T>) -> Self {
        r.map_or_else(Outcome::Err, |_| Outcome::Ok)
    }
}

impl From<Result<(), FaultError>> for Outcome {
    fn from(r: Result<(), FaultError>) -> Self {
        r.map_or_else(Outcome::Fault, |()| Outcome::Ok)
    }
}

/// One run of a scenario: the state before the operation, its outcome,
/// and whether the failure was injected.
struct Run {
    before: Snapshot,
    outcome: Outcome,
    injected: bool,
}

/// Runs `op` with its `n`th allocation failing; returns what it returned
/// and whether the failure was injected.
fn armed<R>(n: u32, op: impl FnOnce() -> R) -> (R, bool) {
    sim::set_fail_nth(n);
    let r = op();
    let injected = sim::fail_nth() == 0;
    sim::set_fail_nth(0);
    (r, injected)
}

/// How to compare the state after a failure with the state before.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Compare {
    Exact,
    /// fork write-protects the parent's private PTEs as it copies them,
    /// and a failed fork does not make them writable again (nor does
    /// Linux's `dup_mmap()`): the next write reuses the page.
    IgnoreWriteProtect,
    /// A fault that fails has still done its first steps, as in Linux:
    /// the VMA may have got its anon_vma (`anon_vma_prepare()`) or grown
    /// (`expand_stack()`). Only the PTEs and the data must be unchanged.
    Fault,
}

/// Figures of one walk.
#[derive(Debug, Default)]
struct Walk {
    /// Allocations the operation makes when nothing fails.
    points: u32,
    /// Injected failures reported as errors / absorbed.
    errors: u32,
    absorbed: u32,
}

/// The common start: mapping A (16 pages, pages 0..8 written), mapping B
/// (4 read-only pages), the program break at [`BRK`] grown by 4 pages, 2
/// of them written.
fn setup(mm: &TestMm<'_, '_>) {
    mm.mmap(A, 16 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
        .unwrap();
    for i in 0..8 {
        poke(mm, A + i * PG + 8, 0x1000 + i).unwrap();
    }
    mm.mmap(B, 4 * PG, Prot::READ, ANON | MapFlags::FIXED, -1, 0)
        .unwrap();
    peek(mm, B).unwrap();
    mm.set_brk_start(BRK);
    assert_eq!(mm.brk(BRK + 4 * PG), BRK + 4 * PG);
    poke(mm, BRK, 1).unwrap();
    poke(mm, BRK + PG, 2).unwrap();
}

/// Walks N = 1, 2, ... through `scenario` (which sets up, snapshots and
/// runs its operation armed with N) until a run injects nothing.
fn walk(name: &str, compare: Compare, scenario: impl Fn(&TestMm<'_, '_>, u32) -> Run) -> Walk {
    let mut w = Walk::default();
    for n in 1.. {
        let done = with_mm(|mm| {
            let run = scenario(mm, n);
            if let Err(e) = mm.validate() {
                panic!("{name}, allocation {n} failing: invalid address space: {e}");
            }
            assert_eq!(
                mm.vm.committed_pages(),
                accounted_pages(mm),
                "{name}, allocation {n} failing: commit charge"
            );
            if !run.injected {
                assert_eq!(run.outcome, Outcome::Ok, "{name} without a failure");
                return true;
            }
            match run.outcome {
                Outcome::Ok => w.absorbed += 1,
                Outcome::Err(e) => {
                    assert_eq!(e, Errno::ENOMEM, "{name}, allocation {n} failing");
                    w.errors += 1;
                }
                Outcome::Fault(f) => {
                    assert_eq!(f, FaultError::Oom, "{name}, allocation {n} failing");
                    w.errors += 1;
                }
            }
            if run.outcome != Outcome::Ok {
                let mut after = snapshot(mm);
                let mut before = run.before;
                if compare == Compare::IgnoreWriteProtect {
                    for s in [&mut before, &mut after] {
                        for p in &mut s.ptes {
                            p.2 -= PteFlags::WRITE;
                        }
                    }
                }
                if compare == Compare::Fault {
                    (after.vmas, after.status, after.committed, after.map_count) = (
                        before.vmas.clone(),
                        before.status,
                        before.committed,
                        before.map_count,
                    );
                }
                assert_eq!(
                    after, before,
                    "{name}, allocation {n} failing with {:?}: the address space changed",
                    run.outcome
                );
            }
            false
        });
        if done {
            w.points = n - 1;
            break;
        }
    }
    w
}

/// A scenario: the common setup, then `op` armed.
fn simple<'m>(
    mm: &'m TestMm<'_, '_>,
    n: u32,
    op: impl FnOnce(&'m TestMm<'_, '_>) -> Outcome,
) -> Run {
    prepared(mm, n, |_| {}, op)
}

/// A scenario: the common setup and `prep`, then `op` armed.
fn prepared<'m>(
    mm: &'m TestMm<'_, '_>,
    n: u32,
    prep: impl FnOnce(&'m TestMm<'_, '_>),
    op: impl FnOnce(&'m TestMm<'_, '_>) -> Outcome,
) -> Run {
    setup(mm);
    prep(mm);
    let before = snapshot(mm);
    let (outcome, injected) = armed(n, || op(mm));
    Run {
        before,
        outcome,
        injected,
    }
}

fn brk_outcome(got: u64, want: u64) -> Outcome {
    if got == want {
        Outcome::Ok
    } else {
        Outcome::Err(Errno::ENOMEM)
    }
}

type Scenario = fn(&TestMm<'_, '_>, u32) -> Run;

/// Every path, with its comparison rule.
fn scenarios() -> Vec<(&'static str, Compare, Scenario)> {
    let exact = Compare::Exact;
    Vec::from([
        (
            "mmap anywhere",
            exact,
            (|mm, n| simple(mm, n, |mm| mm.mmap(0, 8 * PG, RW, ANON, -1, 0).into())) as Scenario,
        ),
        ("mmap MAP_FIXED over the middle of a VMA", exact, |mm, n| {
            simple(mm, n, |mm| {
                mm.mmap(
                    A + 4 * PG,
                    2 * PG,
                    Prot::READ,
                    ANON | MapFlags::FIXED,
                    -1,
                    0,
                )
                .into()
            })
        }),
        ("mmap MAP_POPULATE", exact, |mm, n| {
            simple(mm, n, |mm| {
                mm.mmap(0, 4 * PG, RW, ANON | MapFlags::POPULATE, -1, 0)
                    .into()
            })
        }),
        ("munmap the middle of a VMA", exact, |mm, n| {
            simple(mm, n, |mm| mm.munmap(A + 4 * PG, 2 * PG).into())
        }),
        ("munmap across two VMAs", exact, |mm, n| {
            simple(mm, n, |mm| mm.munmap(A + 8 * PG, 26 * PG).into())
        }),
        ("mprotect the middle of a VMA", exact, |mm, n| {
            simple(mm, n, |mm| {
                mm.mprotect(A + 4 * PG, 2 * PG, Prot::READ).into()
            })
        }),
        (
            "mprotect the end of a VMA, merging with the one above",
            exact,
            |mm, n| {
                prepared(
                    mm,
                    n,
                    |mm| {
                        mm.mmap(
                            A + 16 * PG,
                            4 * PG,
                            Prot::READ,
                            ANON | MapFlags::FIXED,
                            -1,
                            0,
                        )
                        .unwrap();
                    },
                    |mm| mm.mprotect(A + 12 * PG, 4 * PG, Prot::READ).into(),
                )
            },
        ),
        ("mremap grow in place", exact, |mm, n| {
            simple(mm, n, |mm| {
                mm.mremap(A, 16 * PG, 24 * PG, MremapFlags::empty(), 0)
                    .into()
            })
        }),
        ("mremap grow and move", exact, |mm, n| {
            simple(mm, n, |mm| {
                mm.mremap(A, 16 * PG, 40 * PG, MremapFlags::MAYMOVE, 0)
                    .into()
            })
        }),
        ("mremap shrink", exact, |mm, n| {
            simple(mm, n, |mm| {
                mm.mremap(A, 16 * PG, 4 * PG, MremapFlags::empty(), 0)
                    .into()
            })
        }),
        ("mremap part of a VMA to a fixed address", exact, |mm, n| {
            simple(mm, n, |mm| {
                let flags = MremapFlags::MAYMOVE | MremapFlags::FIXED;
                mm.mremap(A + 2 * PG, 4 * PG, 4 * PG, flags, 0x2000_0000)
                    .into()
            })
        }),
        ("mremap with MREMAP_DONTUNMAP", exact, |mm, n| {
            simple(mm, n, |mm| {
                let flags = MremapFlags::MAYMOVE | MremapFlags::DONTUNMAP;
                mm.mremap(A, 16 * PG, 16 * PG, flags, 0).into()
            })
        }),
        ("munmap a whole VMA", exact, |mm, n| {
            simple(mm, n, |mm| mm.munmap(B, 4 * PG).into())
        }),
        (
            "madvise(MADV_DONTFORK) on the start of a VMA",
            exact,
            |mm, n| simple(mm, n, |mm| mm.madvise(A, 4 * PG, 10).into()),
        ),
        ("madvise(MADV_DONTNEED)", exact, |mm, n| {
            simple(mm, n, |mm| mm.madvise(A + 2 * PG, 4 * PG, 4).into())
        }),
        (
            "madvise(MADV_RANDOM) on the middle of a VMA",
            exact,
            |mm, n| simple(mm, n, |mm| mm.madvise(A + 4 * PG, 2 * PG, 1).into()),
        ),
        ("brk grow", exact, |mm, n| {
            simple(mm, n, |mm| {
                brk_outcome(mm.brk(BRK + 12 * PG), BRK + 12 * PG)
            })
        }),
        ("brk shrink", exact, |mm, n| {
            simple(mm, n, |mm| brk_outcome(mm.brk(BRK + PG), BRK + PG))
        }),
        ("write fault on a new page", Compare::Fault, |mm, n| {
            simple(mm, n, |mm| {
                mm.handle_fault(A + 10 * PG, FaultAccess::Write).into()
            })
        }),
        (
            "write fault needing page tables",
            Compare::Fault,
            |mm, n| {
                prepared(
                    mm,
                    n,
                    |mm| {
                        mm.mmap(0x40_0000_0000, 4 * PG, RW, ANON | MapFlags::FIXED, -1, 0)
                            .unwrap();
                    },
                    |mm| mm.handle_fault(0x40_0000_0000, FaultAccess::Write).into(),
                )
            },
        ),
        ("write fault, large folio", Compare::Fault, |mm, n| {
            prepared(
                mm,
                n,
                |mm| {
                    let orders = 1 << 2 | 1;
                    mm.vm
                        .anon_orders
                        .store(orders, core::sync::atomic::Ordering::Relaxed);
                },
                |mm| mm.handle_fault(A + 12 * PG, FaultAccess::Write).into(),
            )
        }),
        ("read fault (zero page)", Compare::Fault, |mm, n| {
            simple(mm, n, |mm| {
                mm.handle_fault(A + 11 * PG, FaultAccess::Read).into()
            })
        }),
        ("write fault on the zero page", Compare::Fault, |mm, n| {
            prepared(
                mm,
                n,
                |mm| {
                    mm.handle_fault(B + PG, FaultAccess::Read).unwrap();
                    mm.mprotect(B, 4 * PG, RW).unwrap();
                },
                |mm| mm.handle_fault(B + PG, FaultAccess::Write).into(),
            )
        }),
        ("stack growth fault", Compare::Fault, |mm, n| {
            prepared(
                mm,
                n,
                |mm| {
                    let flags = ANON | MapFlags::FIXED | MapFlags::GROWSDOWN;
                    mm.mmap(0x5000_0000, 4 * PG, RW, flags, -1, 0).unwrap();
                },
                |mm| {
                    mm.handle_fault(0x5000_0000 - 3 * PG, FaultAccess::Write)
                        .into()
                },
            )
        }),
        ("copy-on-write fault after fork", Compare::Fault, |mm, n| {
            setup(mm);
            let child = mm.fork().unwrap();
            let before = snapshot(mm);
            let (outcome, injected) =
                armed(n, || mm.handle_fault(A + PG, FaultAccess::Write).into());
            assert_eq!(peek(&child, A + PG + 8), Ok(0x1001), "the child's page");
            drop(child);
            Run {
                before,
                outcome,
                injected,
            }
        }),
        ("fork", Compare::IgnoreWriteProtect, |mm, n| {
            setup(mm);
            let before = snapshot(mm);
            let (child, injected) = armed(n, || mm.fork());
            let outcome = match child {
                Ok(child) => {
                    child.validate().expect("the child is valid");
                    for i in 0..8 {
                        assert_eq!(peek(&child, A + i * PG + 8), Ok(0x1000 + i));
                    }
                    Outcome::Ok
                }
                Err(e) => Outcome::Err(e),
            };
            Run {
                before,
                outcome,
                injected,
            }
        }),
        ("exit", Compare::Exact, |mm, n| {
            // The address space that exits is a second one; `mm` watches.
            let other = Mm::new(mm.vm).unwrap();
            setup(&other);
            other.madvise(A, 16 * PG, 4).unwrap();
            let before = snapshot(mm);
            let ((), injected) = armed(n, || drop(other));
            Run {
                before,
                outcome: Outcome::Ok,
                injected,
            }
        }),
    ])
}

#[test]
fn every_injected_allocation_failure_is_clean() {
    let mut report = String::new();
    let mut total = 0;
    let mut failed = Vec::new();
    // FAIL_NTH_PATH=words runs only the paths whose name contains them.
    let only = std::env::var("FAIL_NTH_PATH").unwrap_or_default();
    for (name, compare, scenario) in scenarios() {
        if !name.contains(only.as_str()) {
            continue;
        }
        let w = match std::panic::catch_unwind(|| walk(name, compare, scenario)) {
            Ok(w) => w,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| String::from(*s)))
                    .unwrap_or_default();
                failed.push(msg);
                continue;
            }
        };
        total += w.points;
        report += &alloc::format!(
            "{name}: {} allocation(s); failures reported {} absorbed {}\n",
            w.points,
            w.errors,
            w.absorbed
        );
    }
    std::println!("fail-nth walk ({total} points):\n{report}");
    assert!(
        failed.is_empty(),
        "{} path(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(total > 0);
}
