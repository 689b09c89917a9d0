//! The two system calls the C layer makes itself (everything else goes through the core).
#![allow(unsafe_code)]

use std::os::fd::RawFd;

/// Whether `fd` is an open descriptor of a socket.
pub(crate) fn is_open_socket(fd: RawFd) -> bool {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat only writes into `st`, a buffer we own, whatever `fd` is.
    let rc = unsafe { libc::fstat(fd, &mut st) };
    rc == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK
}

/// `close(fd)`: `Err(errno)` on failure (Linux releases the descriptor even then).
pub(crate) fn close(fd: RawFd) -> Result<(), i32> {
    // SAFETY: closing a descriptor the C caller owns and hands over (closesocket's contract);
    // no Rust object owns it.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}
