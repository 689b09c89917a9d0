//! libFuzzer entry point of the `machine` target; the harness is in `src/machine.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| socknotify_fuzz::machine::run(data));
