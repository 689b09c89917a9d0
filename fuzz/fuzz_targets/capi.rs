//! libFuzzer entry point of the `capi` target; the harness is in `src/capi.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| socknotify_fuzz::capi::run(data));
