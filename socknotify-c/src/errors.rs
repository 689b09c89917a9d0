//! The panic guard that keeps a Rust panic from unwinding into C. (The per-thread last error
//! is the core's: `socknotify::windows_sys`.)
//!
//! With `panic = "unwind"` (the default) the guard catches a panic and the entry point reports
//! `ERROR_INTERNAL_ERROR`. With `panic = "abort"` there is nothing to catch: a panic aborts the
//! process where it happens, so no unwinding crosses the C boundary either way. (Every entry
//! point is also `extern "C"`, which aborts rather than unwind should anything escape.)

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic into `on_panic()` (which reports the error its own way).
/// In a `panic = "abort"` build a panic aborts inside `f` and `on_panic` is never run.
pub(crate) fn guard<R>(f: impl FnOnce() -> R, on_panic: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            // Dropping the payload could itself panic (a panicking Drop); don't let it.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            on_panic()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(panic = "unwind")]
    #[test]
    fn panics_become_error_codes() {
        assert_eq!(guard(|| -> u32 { panic!("boom") }, || 1359), 1359);
        assert_eq!(guard(|| 7u32, || 1359), 7);
    }
}
