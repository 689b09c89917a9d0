//! The per-thread last error: `GetLastError`/`SetLastError` and their Winsock twins
//! `WSAGetLastError`/`WSASetLastError`, which read and write the same value (as on Windows).

use super::{WIN32_ERROR, WSA_ERROR};
use std::cell::Cell;

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

/// Sets `code` as the last error and returns `value` (the failure value of the call).
pub(crate) fn fail<R>(code: u32, value: R) -> R {
    set_last_error(code);
    value
}

/// `GetLastError`: the calling thread's last error code (0 if none was set on this thread).
///
/// # Safety
///
/// None: it is `unsafe` only to have `windows-sys`'s signature.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     assert_eq!(CloseHandle(INVALID_HANDLE_VALUE), FALSE);
///     assert_eq!(GetLastError(), ERROR_INVALID_HANDLE);
/// }
/// ```
pub unsafe fn GetLastError() -> WIN32_ERROR {
    last_error()
}

/// `SetLastError`: sets the calling thread's last error code.
///
/// # Safety
///
/// None: it is `unsafe` only to have `windows-sys`'s signature.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     SetLastError(ERROR_NOT_FOUND);
///     assert_eq!(GetLastError(), ERROR_NOT_FOUND);
/// }
/// ```
pub unsafe fn SetLastError(dwerrcode: WIN32_ERROR) {
    set_last_error(dwerrcode);
}

/// `WSAGetLastError`: the calling thread's last error code, the same value as
/// [`GetLastError`], typed as `windows-sys` types it (`WSA_ERROR`, an `i32`), so it compares
/// with the `WSAE*` constants directly.
///
/// # Safety
///
/// None: it is `unsafe` only to have `windows-sys`'s signature.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     assert_eq!(closesocket(INVALID_SOCKET), SOCKET_ERROR);
///     assert_eq!(WSAGetLastError(), WSAENOTSOCK);
/// }
/// ```
pub unsafe fn WSAGetLastError() -> WSA_ERROR {
    last_error() as WSA_ERROR
}

/// `WSASetLastError`: sets the calling thread's last error code (the value [`GetLastError`]
/// returns too).
///
/// # Safety
///
/// None: it is `unsafe` only to have `windows-sys`'s signature.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     WSASetLastError(WSAEWOULDBLOCK);
///     assert_eq!(WSAGetLastError(), WSAEWOULDBLOCK);
///     assert_eq!(GetLastError(), WSAEWOULDBLOCK as u32);
/// }
/// ```
pub unsafe fn WSASetLastError(ierror: i32) {
    set_last_error(ierror as u32);
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
}
