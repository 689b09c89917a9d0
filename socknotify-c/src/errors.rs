//! The per-thread last error (`GetLastError`/`WSAGetLastError`) and the panic guard that keeps
//! a Rust panic from unwinding into C.
//!
//! With `panic = "unwind"` (the default) the guard catches a panic and the entry point reports
//! `ERROR_INTERNAL_ERROR`. With `panic = "abort"` there is nothing to catch: a panic aborts the
//! process where it happens, so no unwinding crosses the C boundary either way. (Every entry
//! point is also `extern "C"`, which aborts rather than unwind should anything escape.)

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    // A const-initialised Cell<u32> has no destructor and allocates nothing.
    static LAST_ERROR: Cell<u32> = const { Cell::new(0) };
}

/// Stores `code` as the calling thread's last error.
pub(crate) fn set_last_error(code: u32) {
    // `try_with`: a call from a thread-local destructor late in thread exit must not panic.
    let _ = LAST_ERROR.try_with(|e| e.set(code));
}

/// The calling thread's last error (0 if never set, or during thread exit).
pub(crate) fn last_error() -> u32 {
    LAST_ERROR.try_with(Cell::get).unwrap_or(0)
}

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

/// [`guard`] for the BOOL/handle-returning calls: a panic sets `ERROR_INTERNAL_ERROR` as the
/// last error and returns `failed`.
pub(crate) fn guard_or<R>(failed: R, f: impl FnOnce() -> R) -> R {
    guard(f, || {
        set_last_error(socknotify::codes::ERROR_INTERNAL_ERROR);
        failed
    })
}

/// Sets `code` as the last error and returns `value` (the failure value of the call).
pub(crate) fn fail<R>(code: u32, value: R) -> R {
    set_last_error(code);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_is_per_thread() {
        set_last_error(42);
        std::thread::spawn(|| {
            assert_eq!(last_error(), 0);
            set_last_error(7);
            assert_eq!(last_error(), 7);
        })
        .join()
        .unwrap();
        assert_eq!(last_error(), 42);
    }

    #[cfg(panic = "unwind")]
    #[test]
    fn panics_become_error_codes() {
        let r = guard(|| -> u32 { panic!("boom") }, || socknotify::codes::ERROR_INTERNAL_ERROR);
        assert_eq!(r, socknotify::codes::ERROR_INTERNAL_ERROR);
        set_last_error(0);
        assert_eq!(guard_or(7u8, || panic!("boom")), 7);
        assert_eq!(last_error(), socknotify::codes::ERROR_INTERNAL_ERROR);
    }
}
