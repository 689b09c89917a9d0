//! Socket probes: identity and kind, TCP byte counters, a non-blocking `poll`.

use super::{count, cvt};
use crate::machine::{Readiness, SocketKind, TcpCounters};
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::RawFd;

/// Why a descriptor cannot be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotSocket {
    /// Not an open descriptor.
    Closed,
    /// Open, but not a socket.
    Other,
}

/// Plain data that the kernel may fill byte by byte: every bit pattern is a valid value.
///
/// # Safety
/// Implement it only for types without padding-sensitive invariants, references, enums or
/// `bool`s: integers and `#[repr(C)]` structs and arrays of them.
unsafe trait Pod: Copy {}
// SAFETY: integers accept every bit pattern.
unsafe impl Pod for u64 {}
// SAFETY: integers accept every bit pattern.
unsafe impl Pod for libc::c_int {}
// SAFETY: a #[repr(C)] struct of integers and integer arrays.
unsafe impl Pod for TcpInfoPrefix {}

fn getsockopt<T: Pod>(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
    count();
    let mut v = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` has room for `len` bytes; the kernel writes at most that many.
    cvt(unsafe { libc::getsockopt(fd, level, name, v.as_mut_ptr().cast(), &mut len) })?;
    // SAFETY: `v` was zeroed and the kernel wrote at most `len` bytes over it; `T: Pod`
    // accepts every bit pattern, so whatever part the kernel wrote, the value is valid.
    Ok(unsafe { v.assume_init() })
}

/// The socket's cookie, or why it is not a socket.
pub(crate) fn socket_cookie(fd: RawFd) -> Result<u64, NotSocket> {
    if fd < 0 {
        return Err(NotSocket::Closed);
    }
    getsockopt::<u64>(fd, libc::SOL_SOCKET, libc::SO_COOKIE).map_err(|e| match e.raw_os_error() {
        Some(libc::EBADF) => NotSocket::Closed,
        _ => NotSocket::Other,
    })
}

/// The kind of the socket `fd` names (`None`: not an open socket).
pub(crate) fn socket_kind(fd: RawFd) -> Option<SocketKind> {
    let ty: libc::c_int = getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE).ok()?;
    Some(SocketKind { stream: ty == libc::SOCK_STREAM || ty == libc::SOCK_SEQPACKET })
}

/// The prefix of Linux's `struct tcp_info` up to `tcpi_bytes_received` (kernel ≥ 4.1).
#[repr(C)]
#[derive(Clone, Copy)]
struct TcpInfoPrefix {
    head: [u8; 8],    // state, ca_state, retransmits, probes, backoff, options, wscale, flags
    words: [u32; 24], // rto .. total_retrans (24 × u32)
    pacing_rate: u64,
    max_pacing_rate: u64,
    bytes_acked: u64,
    bytes_received: u64,
    segs_out: u32,
    segs_in: u32,
}

/// Samples a TCP socket's byte counters (`SIOCINQ`, then `TCP_INFO`).
///
/// The order matters: bytes that arrive between the two calls must count as received and
/// still queued, never as already read. Reading the queue first can only make `received -
/// queued` (bytes consumed) too large, which at worst raises an extra edge (the guiding rule);
/// the other order made it too small, so a drain could go unseen and a connection stall.
pub(crate) fn tcp_counters(fd: RawFd) -> Option<TcpCounters> {
    count();
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD (SIOCINQ) writes one int into `queued`, which lives across the call.
    cvt(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) }).ok()?;
    let info: TcpInfoPrefix = getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO).ok()?;
    Some(TcpCounters {
        received: info.bytes_received,
        queued: u64::try_from(queued).unwrap_or(0),
        acked: info.bytes_acked,
    })
}

/// Current readiness of one descriptor, as epoll bits, without side effects.
/// `None` when the descriptor is not open.
pub(crate) fn poll_now(fd: RawFd) -> Option<Readiness> {
    count();
    let mut p = libc::pollfd { fd, events: libc::POLLIN | libc::POLLOUT | libc::POLLRDHUP, revents: 0 };
    // SAFETY: one valid pollfd, timeout 0.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n < 0 || p.revents & libc::POLLNVAL != 0 {
        return None;
    }
    // poll and epoll share bit values for these flags.
    Some(super::epoll::readiness(u32::from(p.revents as u16)))
}

/// True for a TCP socket in state CLOSE that received at most one segment: its connect
/// failed (or it was reset before anything else arrived), even if the application already
/// read the error with `SO_ERROR` (D19: a failed connect reports ERR, never OUT).
pub(crate) fn tcp_never_connected(fd: RawFd) -> bool {
    const TCP_CLOSE: u8 = 7;
    match getsockopt::<TcpInfoPrefix>(fd, libc::IPPROTO_TCP, libc::TCP_INFO) {
        Ok(info) => info.head[0] == TCP_CLOSE && info.segs_in <= 1,
        Err(_) => false,
    }
}

/// Whether `fd` is an open descriptor of a socket (`fstat`: any socket, whatever its family).
pub(crate) fn is_open_socket(fd: RawFd) -> bool {
    if fd < 0 {
        return false;
    }
    let mut st = MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat only writes into `st`, a buffer we own, whatever `fd` is.
    let rc = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
    // SAFETY: zeroed is a valid `stat` (plain integers), and fstat wrote a whole one if rc == 0.
    rc == 0 && (unsafe { st.assume_init() }.st_mode & libc::S_IFMT) == libc::S_IFSOCK
}

/// Why [`close_raw`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseError {
    /// `EBADF`: not an open descriptor.
    NotOpen,
    /// Another error (`EIO` and the like); Linux released the descriptor anyway.
    Failed,
}

/// `close(fd)` of a descriptor no Rust object owns (`closesocket`: the caller hands it over).
/// An interrupted close counts as done: Linux releases the descriptor even then.
pub(crate) fn close_raw(fd: RawFd) -> Result<(), CloseError> {
    // SAFETY: closing a descriptor that its owner hands over (closesocket's contract); no Rust
    // object owns it, so nothing else will close or use it as its own.
    if unsafe { libc::close(fd) } == 0 {
        return Ok(());
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EINTR) => Ok(()),
        Some(libc::EBADF) => Err(CloseError::NotOpen),
        _ => Err(CloseError::Failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn tcp_info_prefix_matches_kernel_layout() {
        // tcpi_bytes_acked sits at offset 120 and tcpi_bytes_received at 128 in struct tcp_info.
        assert_eq!(std::mem::offset_of!(TcpInfoPrefix, bytes_acked), 120);
        assert_eq!(std::mem::offset_of!(TcpInfoPrefix, bytes_received), 128);
        assert_eq!(std::mem::offset_of!(TcpInfoPrefix, segs_in), 140);
    }

    #[test]
    fn tcp_counters_track_received_and_queued_bytes() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.write_all(b"hello").unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b[..2]).unwrap();
        let t = tcp_counters(s.as_raw_fd()).unwrap();
        assert_eq!(t.received, 5);
        assert_eq!(t.queued, 3);
        assert!(socket_kind(s.as_raw_fd()).unwrap().stream);
    }

    #[test]
    fn a_refused_connect_is_told_apart_from_a_closed_connection() {
        use std::io::Read;
        // Refused: connect to a port nobody listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        assert!(s.connect(&addr.into()).is_err());
        assert!(tcp_never_connected(s.as_raw_fd()));
        // Connected, then closed by both sides.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut srv, _) = l.accept().unwrap();
        assert!(!tcp_never_connected(c.as_raw_fd()));
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut b = [0u8; 1];
        assert_eq!(srv.read(&mut b).unwrap(), 0);
        drop(srv);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!tcp_never_connected(c.as_raw_fd()));
    }

    #[test]
    fn non_sockets_are_told_apart_from_closed_descriptors() {
        let (r, _w) = std::io::pipe().unwrap();
        assert_eq!(socket_cookie(r.as_raw_fd()), Err(NotSocket::Other));
        assert_eq!(socket_cookie(-1), Err(NotSocket::Closed));
        assert_eq!(socket_cookie(1_000_000), Err(NotSocket::Closed));
        assert_eq!(socket_kind(r.as_raw_fd()), None);
        assert_eq!(socket_kind(1_000_000), None);
    }

    #[test]
    fn open_sockets_are_told_apart_and_closed() {
        use std::os::fd::IntoRawFd;
        let (r, _w) = std::io::pipe().unwrap();
        assert!(!is_open_socket(r.as_raw_fd()));
        assert!(!is_open_socket(-1));
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().into_raw_fd();
        assert!(is_open_socket(s));
        assert_eq!(close_raw(s), Ok(()));
        assert_eq!(close_raw(s), Err(CloseError::NotOpen));
    }

    #[test]
    fn cookies_differ_between_sockets() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_ne!(socket_cookie(a.as_raw_fd()).unwrap(), socket_cookie(b.as_raw_fd()).unwrap());
        assert!(!socket_kind(a.as_raw_fd()).unwrap().stream);
    }
}
