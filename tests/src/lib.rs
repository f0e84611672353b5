//! Helpers for the QEMU-driven test targets: parse the harness serial log.
