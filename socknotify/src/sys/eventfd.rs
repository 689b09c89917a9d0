//! The port's wake-up descriptor: an eventfd in the port's epoll set.

use super::{count, cvt};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A non-blocking, close-on-exec eventfd.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    count();
    // SAFETY: plain system call.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    #[cfg(loom)]
    super::model::eventfd_created(fd);
    // SAFETY: fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd (wakes a thread in `epoll_wait` on it).
#[cfg_attr(loom, allow(unreachable_code))]
pub(crate) fn eventfd_signal(fd: &OwnedFd) {
    count();
    #[cfg(loom)]
    return super::model::eventfd_signal(fd.as_raw_fd());
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64. A full counter (EAGAIN) is already signalled.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// Resets an eventfd to 0.
#[cfg_attr(loom, allow(unreachable_code))]
pub(crate) fn eventfd_drain(fd: &OwnedFd) {
    count();
    #[cfg(loom)]
    return super::model::eventfd_drain(fd.as_raw_fd());
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64. EAGAIN means it was already 0.
    unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
}
