//! The fuzzer's corpus and a fixed-seed random run, replayed as host
//! tests (so CI runs them without cargo-fuzz), and regression inputs.

use alloc::vec::Vec;

use super::*;
use crate::rand::XorShift64;

/// The committed corpus of the `address_space` fuzz target.
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/address_space");

#[test]
fn corpus_replays_clean() {
    let mut files: Vec<_> = std::fs::read_dir(CORPUS)
        .expect("the committed corpus")
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "corpus at {CORPUS} is nearly empty");
    let mut ops = 0;
    for f in &files {
        let data = std::fs::read(f).expect("a corpus file");
        ops += run(&data).ops;
    }
    std::println!("{} corpus inputs, {ops} operations", files.len());
    assert!(ops > 0);
}

#[test]
fn random_bytes_run_clean() {
    let mut rng = XorShift64::new(0x5eed_f00d);
    let mut ops = 0;
    for _ in 0..64 {
        let len = 16 + rng.below(400);
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        ops += run(&data).ops;
    }
    std::println!("64 random inputs, {ops} operations");
    assert!(ops > 64 * 16 / 4);
}

/// Found by the fuzzer (its seed): a `MAP_SHARED` page mapped by parent
/// and child, write-protected by mprotect and made writable again; the
/// next write copied it as if private (`do_wp_page()` without the
/// `wp_page_shared()` branch), so the child no longer saw the parent's
/// writes.
#[test]
fn regression_shared_page_write_after_mprotect_stays_shared() {
    let input = [
        1, 0, 16, 15, 16, 0, 10, 18, 51, 10, 19, 68, 8, 20, 13, 26, 18, 85, 24, 18, 8, 18, 24, 19,
        3, 18, 3, 2, 3, 18, 3, 0, 10, 18, 102, 24, 18,
    ];
    // The input runs past the write of op 11 that used to copy.
    assert!(run(&input).ops >= 12);
}

/// Found by the fuzzer, a model bug: `MREMAP_DONTUNMAP` of part of a
/// locked VMA to the range just below it. The kernel unlocks the old VMA
/// only (as Linux's `dontunmap_complete()`); with anon_vmas on, the new
/// VMA does not merge with it (their page offsets are not contiguous), so
/// it stays locked, while the model unlocked both as one run.
#[test]
fn regression_dontunmap_unlocks_only_the_old_vma_with_anon_vmas() {
    let input = [
        1, 22, 136, 16, 15, 16, 248, 248, 248, 248, 248, 248, 248, 248, 248, 248, 248, 248, 248,
        248, 248, 248, 248, 248, 0, 0, 12, 15, 1, 10, 18, 49, 86, 10, 19, 68, 229, 235, 237, 170,
        13, 242, 248, 231, 198, 8, 18, 24, 19, 2, 12, 0, 0, 0, 0, 0, 0, 0, 12, 15, 1, 10, 18, 0,
        158, 3, 18, 3, 2, 1, 242,
    ];
    // Past the mremap (op 12).
    assert!(run(&input).ops > 13);
}

/// Long random runs in every configuration (anon_vmas off and on, each
/// large-folio set, both mapcount modes): the model's checks hold
/// throughout, and together the runs take every mremap path but the
/// out-of-memory one.
#[test]
fn random_runs_of_every_configuration_match_the_model() {
    let mut rng = XorShift64::new(0x9e37_79b9_7f4a_7c15);
    let mut paths = [0; MremapStat::COUNT];
    let mut ops = 0;
    for config in 0..64u8 {
        let data: Vec<u8> = core::iter::once(config)
            .chain((0..1200).map(|_| rng.next_u64() as u8))
            .collect();
        let stats = run(&data);
        ops += stats.ops;
        for (sum, n) in paths.iter_mut().zip(stats.mremap_paths) {
            *sum += n;
        }
    }
    std::println!("64 configurations, {ops} operations, mremap paths {paths:?}");
    for &s in MremapStat::ALL {
        assert!(
            paths[s as usize] > 0 || s == MremapStat::MoveFailed,
            "mremap path {} never ran",
            s.name()
        );
    }
}
