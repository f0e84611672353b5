//! Context-switch benchmarks.
pub const BENCHES: &[crate::bench::Bench] = crate::benches![];
