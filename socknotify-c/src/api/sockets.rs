//! `closesocket` and the last-error calls, each the core's `socknotify::windows_sys` call.

use super::guard_or;
use crate::types::*;
use socknotify::windows_sys as ws;
use std::ffi::c_int;

/// `closesocket`: drops the socket's registration silently (no REMOVE packet), then closes
/// the descriptor. 0, or `SOCKET_ERROR` with `WSAENOTSOCK` for anything but an open socket.
#[no_mangle]
pub extern "C" fn closesocket(s: SOCKET) -> c_int {
    // SAFETY: the C caller hands the descriptor over (closesocket's contract, stated in the
    // header): no Rust object owns it.
    guard_or(SOCKET_ERROR, || unsafe { ws::closesocket(s) })
}

/// `GetLastError`: the calling thread's last error.
#[no_mangle]
pub extern "C" fn GetLastError() -> DWORD {
    // SAFETY: no precondition.
    unsafe { ws::GetLastError() }
}

/// `SetLastError`: sets the calling thread's last error.
#[no_mangle]
pub extern "C" fn SetLastError(dwErrCode: DWORD) {
    // SAFETY: no precondition.
    unsafe { ws::SetLastError(dwErrCode) }
}

/// `WSAGetLastError`: the calling thread's last error (same value as `GetLastError`).
#[no_mangle]
pub extern "C" fn WSAGetLastError() -> c_int {
    // SAFETY: no precondition.
    unsafe { ws::WSAGetLastError() }
}

/// `WSASetLastError`: sets the calling thread's last error (same value as `SetLastError`).
#[no_mangle]
pub extern "C" fn WSASetLastError(iError: c_int) {
    // SAFETY: no precondition.
    unsafe { ws::WSASetLastError(iError) }
}
