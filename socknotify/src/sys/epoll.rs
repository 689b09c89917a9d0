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
pub fn flags(interest: Interest) -> u32 {
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
pub fn readiness(revents: u32) -> Readiness {
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
    #[cfg(loom)]
    super::model::epoll_added(epfd.as_raw_fd(), fd, data);
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
#[cfg_attr(loom, allow(unreachable_code))]
pub(crate) fn epoll_wait(epfd: &OwnedFd, buf: &mut [EpollEvent], timeout: Option<Duration>) -> io::Result<usize> {
    count();
    #[cfg(loom)]
    return Ok(super::model::epoll_wait(epfd.as_raw_fd(), buf, timeout));
    let ms: libc::c_int = match timeout {
        None => -1,
        // Round up so that a wait never ends before its deadline.
        Some(d) => {
            let ms = d.as_secs().saturating_mul(1000).saturating_add(u64::from(d.subsec_nanos().div_ceil(1_000_000)));
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

/// Every descriptor an epoll instance watches, with the token (`data`) it reports, sorted:
/// read from `/proc/self/fdinfo/<epfd>` (one `tfd:` line per watched descriptor). Three
/// system calls (open, read until the end, close) whatever the number of descriptors.
pub(crate) fn watched(epfd: &OwnedFd) -> io::Result<Vec<(RawFd, u64)>> {
    count();
    count();
    count();
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", epfd.as_raw_fd()))?;
    let mut out = parse_fdinfo(&text);
    out.sort_unstable();
    Ok(out)
}

/// The `(tfd, data)` pairs of an epoll instance's fdinfo text
/// (`tfd:        5 events:       19 data:                7  pos:0 ino:… sdev:…`).
fn parse_fdinfo(text: &str) -> Vec<(RawFd, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "tfd:" {
                return None;
            }
            let fd: RawFd = words.next()?.parse().ok()?;
            let mut rest = words;
            rest.find(|w| *w == "data:")?;
            let data = u64::from_str_radix(rest.next()?, 16).ok()?;
            Some((fd, data))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_lists_every_watched_descriptor_with_its_token() {
        let ep = epoll_create().unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        epoll_add(&ep, a.as_raw_fd(), EPOLLIN, 0xABCD_0000_0001).unwrap();
        epoll_add(&ep, b.as_raw_fd(), EPOLLIN, 7).unwrap();
        let mut want = vec![(a.as_raw_fd(), 0xABCD_0000_0001), (b.as_raw_fd(), 7)];
        want.sort_unstable();
        assert_eq!(watched(&ep).unwrap(), want);
        drop(b); // the kernel forgets a closed socket
        assert_eq!(watched(&ep).unwrap(), vec![(a.as_raw_fd(), 0xABCD_0000_0001)]);
    }

    #[test]
    fn fdinfo_parsing_ignores_other_lines() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\ntfd:       12 events:       19 data:             ff00000003  pos:0 ino:2d5e sdev:8\n";
        assert_eq!(parse_fdinfo(text), vec![(12, 0xff_0000_0003)]);
    }
}
