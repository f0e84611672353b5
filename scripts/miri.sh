#!/usr/bin/env bash
# Runs the unit tests that exercise mm's unsafe code under Miri (undefined
# behaviour, Stacked Borrows aliasing, leaks, data races): memmap records,
# the bit spinlock, RCU heads, folio metadata in the memmap, page-table
# entries, slab freelists, address spaces on the simulated machine (its
# RAM behind raw pointers), and one fuzzer input. Miri interprets the
# code, so the subset is small and the test machines shrink under
# cfg(miri); docs/RELIABILITY.md has the run time. Not part of CI.
#
# The slab code turns integers back into pointers (object addresses kept
# as u64, a sheaf's cache pointer kept as usize): permissive provenance
# accepts those casts without a warning. Extra arguments go to libtest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo miri --version >/dev/null 2>&1; then
    channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
    echo "miri: rustup component add miri --toolchain $channel" >&2
    exit 1
fi
tests=(
    memmap::tests::fresh_records_are_reserved
    memmap::tests::list_push_remove_pop
    sync::tests::bit_spinlock_excludes_and_keeps_the_other_bits
    rcu::tests::nested_readers_end_with_the_outermost
    rcu::tests::double_call_rcu_is_reported_and_ignored
    folio::tests::tails_name_their_head
    folio::tests::small_folios_use_the_page_mapcount
    pgtable::tests::first_pte_allocates_pud_pmd_and_pte_tables
    slab::tests_sheaf::small_round_trip_through_sheaves_barn_and_freelists
    maple::tests::small_tree_grows_splits_and_empties
)
MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-permissive-provenance" \
    cargo miri test -p mm --features std --lib -- --exact "${tests[@]}" "$@"
