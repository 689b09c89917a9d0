//! Harnesses of the fuzz targets, shared by the libFuzzer binaries (`fuzz_targets/`) and by
//! `tests/replay.rs`, which replays the seed corpus with plain `cargo test` (stable, or miri).
#![allow(clippy::new_without_default)]

pub mod capi;
pub mod machine;
