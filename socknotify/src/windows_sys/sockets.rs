//! `closesocket`.

use super::errors::fail;
use super::{SOCKET, SOCKET_ERROR};
use crate::abi::codes::*;
use crate::port::forget_registration_raw;
use crate::sys::{close_raw, is_open_socket, CloseError};
use std::os::fd::RawFd;

/// `closesocket`: drops the socket's registration silently (no REMOVE packet; a packet
/// already queued is still delivered), then closes the descriptor. 0, or `SOCKET_ERROR` with
/// `WSAENOTSOCK` when `s` is not an open socket (nothing is closed then).
///
/// # Safety
///
/// `s` is handed over: no other owner (an `OwnedFd`, a `TcpStream`, ...) may close or use the
/// descriptor afterwards, as for `libc::close`.
///
/// ```
/// use socknotify::windows_sys::*;
/// use std::os::fd::IntoRawFd;
/// let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().into_raw_fd() as SOCKET;
/// unsafe {
///     assert_eq!(closesocket(s), 0);
///     assert_eq!(closesocket(s), SOCKET_ERROR);
///     assert_eq!(WSAGetLastError(), WSAENOTSOCK);
/// }
/// ```
pub unsafe fn closesocket(s: SOCKET) -> i32 {
    let fd = match RawFd::try_from(s) {
        Ok(fd) if is_open_socket(fd) => fd,
        _ => return fail(WSAENOTSOCK, SOCKET_ERROR),
    };
    forget_registration_raw(fd);
    match close_raw(fd) {
        Ok(()) => 0,
        Err(CloseError::NotOpen) => fail(WSAENOTSOCK, SOCKET_ERROR),
        // The descriptor is released anyway; report the failure (EIO and the like).
        Err(CloseError::Failed) => fail(WSAEINVAL, SOCKET_ERROR),
    }
}
