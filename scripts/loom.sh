#!/usr/bin/env bash
# Runs the loom models of mm's concurrency protocols (models/loom, not a
# workspace member) in release mode, printing each model's explored
# executions and run time and each broken variant loom caught.
# LOOM_MAX_PREEMPTIONS=N overrides every model's preemption bound; further
# arguments go to the test binary (a name filter, --test-threads 1).
set -euo pipefail
cd "$(dirname "$0")/.."
set +o pipefail
cargo test --manifest-path models/loom/Cargo.toml --target-dir target/loom-models --release \
    -- --nocapture "$@" 2>&1 |
    grep -E '^(loom model |test |running |test result|error)'
status=${PIPESTATUS[0]}
exit "$status"
