//! The exported entry points (`#[no_mangle] extern "C"`), one file per family. Each one is a
//! translation: it runs the core's `socknotify::windows_sys` call of the same name (which
//! checks the handle and the pointers, keeps the handle table and the last error) inside the
//! panic guard, and nothing else.
//!
//! `unsafe` here is limited to exporting (`#[no_mangle]`, `unsafe extern "C" fn`) and to
//! calling the core's `unsafe fn`s under the C caller's contract, which is theirs.
#![allow(unsafe_code)]
// The safe entry points pass HANDLEs (looked up in the core's table, never dereferenced) and
// an OVERLAPPED address (only carried) to core calls that are `unsafe` for windows-sys's shape.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use crate::errors::guard;
use socknotify::windows_sys as ws;

pub mod iocp;
pub mod psn;
pub mod sockets;
pub mod threads;

/// Stores `code` as the calling thread's last error (the core's, which `GetLastError` reads).
fn set_last_error(code: u32) {
    // SAFETY: SetLastError has no precondition (it is `unsafe` only for windows-sys's shape).
    unsafe { ws::SetLastError(code) }
}

/// [`guard`] for the calls that report failure through the last error: a panic sets
/// `ERROR_INTERNAL_ERROR` as the last error and returns `failed`.
fn guard_or<R>(failed: R, f: impl FnOnce() -> R) -> R {
    guard(f, || {
        set_last_error(ws::ERROR_INTERNAL_ERROR);
        failed
    })
}

#[cfg(all(test, panic = "unwind"))]
mod tests {
    #[test]
    fn a_caught_panic_sets_the_last_error() {
        super::set_last_error(0);
        assert_eq!(super::guard_or(7u8, || panic!("boom")), 7);
        assert_eq!(crate::GetLastError(), crate::ERROR_INTERNAL_ERROR);
    }
}
