#!/usr/bin/env bash
# Formatting, lints and docs for every crate, warnings as errors.
# The kernel is checked on its own target (forced-target); host crates are
# checked with all their targets (tests, benches) in a separate invocation,
# because dev-dependencies (proptest) would turn on `std` features of shared
# crates such as bitflags for the bare-metal build too.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
# The fuzz targets sit outside the workspace (cargo-fuzz builds them).
cargo fmt --manifest-path mm/fuzz/Cargo.toml -- --check
cargo clippy --workspace -- -D warnings
cargo clippy --workspace --exclude kernel --exclude user --all-targets --features mm/std -- -D warnings
# Documentation builds without warnings. A kernel's docs are for the people
# who work on it, so private items are documented too (and may be linked
# from public ones).
RUSTDOCFLAGS="-D warnings -A rustdoc::private-intra-doc-links" \
    cargo doc --workspace --no-deps --document-private-items
# The loom models are not a workspace member (see Cargo.toml).
cargo fmt --manifest-path models/loom/Cargo.toml -- --check
cargo clippy --manifest-path models/loom/Cargo.toml --target-dir target/loom-models --all-targets -- -D warnings
