//! The port's epoll instance, and the translation between the machine's terms and epoll's bits.

use super::{count, cvt};
use crate::machine::{Interest, Readiness};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub(crate) use libc::epoll_event as EpollEvent;

const EPOLLIN: u32 = libc::EPOLLIN as u32;
const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
const EPOLLERR: u32 = libc::EPOLLERR as u32;
const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;
const EPOLLET: u32 = libc::EPOLLET as u32;

/// The epoll flags that express an [`Interest`]. Level interests always ask for the read
/// hang-up, which the mapping to Windows' bits needs; an edge interest asks for everything.
pub(crate) fn flags(interest: Interest) -> u32 {
    match interest {
        Interest::Level { read, write, once } => {
            let mut f = EPOLLRDHUP;
            if read {
                f |= EPOLLIN;
            }
            if write {
                f |= EPOLLOUT;
            }
            if once {
                f |= EPOLLONESHOT;
            }
            f
        }
        Interest::Edge => EPOLLRDHUP | EPOLLIN | EPOLLOUT | EPOLLET,
        Interest::Off => EPOLLET | EPOLLONESHOT,
    }
}

/// The [`Readiness`] that epoll (or `poll`, whose bits are the same) reports as `revents`.
pub(crate) fn readiness(revents: u32) -> Readiness {
    let mut r = Readiness::NONE;
    for (bit, ready) in [
        (EPOLLIN, Readiness::READ),
        (EPOLLOUT, Readiness::WRITE),
        (EPOLLERR, Readiness::ERROR),
        (EPOLLHUP, Readiness::HANGUP),
        (EPOLLRDHUP, Readiness::READ_HANGUP),
    ] {
        if revents & bit != 0 {
            r |= ready;
        }
    }
    r
}

/// Readable: the flags of the port's wake-up eventfd.
pub(crate) const WAKE_FLAGS: u32 = EPOLLIN;

/// A new epoll instance (close-on-exec).
pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    count();
    // SAFETY: plain system call with a flag argument.
    let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: the kernel just returned this descriptor and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn epoll_ctl(epfd: &OwnedFd, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
    count();
    let mut ev = EpollEvent { events, u64: data };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    cvt(unsafe { libc::epoll_ctl(epfd.as_raw_fd(), op, fd, &mut ev) }).map(drop)
}

/// `EPOLL_CTL_ADD`.
pub(crate) fn epoll_add(epfd: &OwnedFd, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
    epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, events, data)
}

/// `EPOLL_CTL_MOD`.
pub(crate) fn epoll_mod(epfd: &OwnedFd, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
    epoll_ctl(epfd, libc::EPOLL_CTL_MOD, fd, events, data)
}

/// `EPOLL_CTL_DEL`.
pub(crate) fn epoll_del(epfd: &OwnedFd, fd: RawFd) -> io::Result<()> {
    epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0, 0)
}

/// A zeroed event buffer for [`epoll_wait`].
pub(crate) fn event_buffer(len: usize) -> Vec<EpollEvent> {
    vec![EpollEvent { events: 0, u64: 0 }; len]
}

/// Waits for events; `timeout` `None` waits forever. Returns how many entries of `buf`
/// were filled (0 on timeout or when interrupted by a signal).
pub(crate) fn epoll_wait(epfd: &OwnedFd, buf: &mut [EpollEvent], timeout: Option<Duration>) -> io::Result<usize> {
    count();
    let ms: libc::c_int = match timeout {
        None => -1,
        // Round up so that a wait never ends before its deadline.
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    };
    let max = libc::c_int::try_from(buf.len()).unwrap_or(libc::c_int::MAX).max(1);
    // SAFETY: `buf` has room for `max` events (len ≥ 1 is checked by callers; max is
    // clamped to the slice length).
    let n = unsafe { libc::epoll_wait(epfd.as_raw_fd(), buf.as_mut_ptr(), max.min(buf.len() as libc::c_int), ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(n as usize)
}
