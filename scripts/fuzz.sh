#!/usr/bin/env bash
# Fuzzes the address-space layer (mm::vm::fuzz, target mm/fuzz
# address_space) for SECONDS (default 60) with libFuzzer and AddressSanitizer,
# starting from the committed corpus. New inputs go to a scratch directory,
# so the committed corpus stays as it is; a crash leaves its input in
# mm/fuzz/artifacts/address_space/ and fails the script. Needs cargo-fuzz
# (scripts/setup.sh installs it). Extra arguments go to libFuzzer.
#
#   ./scripts/fuzz.sh              # 60 s, as CI runs it
#   ./scripts/fuzz.sh 3600 -jobs=2 # an hour, two processes
set -euo pipefail
cd "$(dirname "$0")/../mm/fuzz"
secs=${1:-60}
shift || true
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cargo fuzz build address_space
# libFuzzer adds what it finds to the first directory and only reads the
# second. 1024 bytes hold up to a few hundred operations.
cargo fuzz run address_space "$scratch" corpus/address_space -- \
    -max_total_time="$secs" -max_len=1024 -timeout=20 -print_final_stats=1 "$@"
