//! `closesocket` and the last-error calls.

use crate::errors::{fail, guard_or, last_error, set_last_error};
use crate::types::*;
use socknotify::codes::*;
use std::ffi::c_int;
use std::os::fd::RawFd;

/// `closesocket`: drops the socket's registration silently (no REMOVE packet), then closes
/// the descriptor. 0, or `SOCKET_ERROR` with `WSAENOTSOCK` for anything but an open socket.
#[no_mangle]
pub extern "C" fn closesocket(s: SOCKET) -> c_int {
    guard_or(SOCKET_ERROR, || {
        let fd = match RawFd::try_from(s) {
            Ok(fd) if fd >= 0 && crate::sys::is_open_socket(fd) => fd,
            _ => return fail(WSAENOTSOCK, SOCKET_ERROR),
        };
        socknotify::forget_registration_raw(fd);
        match crate::sys::close(fd) {
            Ok(()) => 0,
            // Linux releases the descriptor even when close is interrupted.
            Err(libc::EINTR) => 0,
            Err(libc::EBADF) => fail(WSAENOTSOCK, SOCKET_ERROR),
            // The descriptor is released anyway; report the failure (EIO and the like).
            Err(_) => fail(WSAEINVAL, SOCKET_ERROR),
        }
    })
}

/// `GetLastError`: the calling thread's last error.
#[no_mangle]
pub extern "C" fn GetLastError() -> DWORD {
    last_error()
}

/// `SetLastError`: sets the calling thread's last error.
#[no_mangle]
pub extern "C" fn SetLastError(dwErrCode: DWORD) {
    set_last_error(dwErrCode);
}

/// `WSAGetLastError`: the calling thread's last error (same value as `GetLastError`).
#[no_mangle]
pub extern "C" fn WSAGetLastError() -> c_int {
    last_error() as c_int
}

/// `WSASetLastError`: sets the calling thread's last error (same value as `SetLastError`).
#[no_mangle]
pub extern "C" fn WSASetLastError(iError: c_int) {
    set_last_error(iError as u32);
}
