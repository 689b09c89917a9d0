//! The `sys` layer: every system call socknotify makes, and all of its `unsafe`.
//!
//! Each function is a thin, safe wrapper that turns a failure into `io::Error`.
//! Nothing above this module calls `libc` directly.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod uring;
pub(crate) use uring::{ring_new, Mod, Ring, MAX_RING_MODS, MOD_ROUND_WAIT};

pub(crate) use libc::epoll_event as EpollEvent;

pub(crate) const EPOLLIN: u32 = libc::EPOLLIN as u32;
pub(crate) const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
pub(crate) const EPOLLERR: u32 = libc::EPOLLERR as u32;
pub(crate) const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
pub(crate) const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
pub(crate) const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;
pub(crate) const EPOLLET: u32 = libc::EPOLLET as u32;

/// How many system calls this process has made through this module (for tests and
/// benchmarks that count them).
static SYSCALLS: AtomicU64 = AtomicU64::new(0);

#[inline]
fn count() {
    SYSCALLS.fetch_add(1, Ordering::Relaxed);
}

/// Counts a futex call made by a condition variable (wait or wake-up), so that
/// [`syscall_count`] covers the port's own blocking too.
pub(crate) fn note_futex_call() {
    count();
}

/// The number of system calls made through the `sys` layer so far, process-wide.
pub(crate) fn syscall_count() -> u64 {
    SYSCALLS.load(Ordering::Relaxed)
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

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

/// A non-blocking, close-on-exec eventfd.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    count();
    // SAFETY: plain system call.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd (wakes a thread in `epoll_wait` on it).
pub(crate) fn eventfd_signal(fd: &OwnedFd) {
    count();
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64. A full counter (EAGAIN) is already signalled.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// Resets an eventfd to 0.
pub(crate) fn eventfd_drain(fd: &OwnedFd) {
    count();
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64. EAGAIN means it was already 0.
    unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
}

/// What a descriptor is, for a new registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketInfo {
    /// A number unique to this socket for the life of the system (`SO_COOKIE`).
    pub cookie: u64,
    /// `SOCK_STREAM` or `SOCK_SEQPACKET` (connection-oriented).
    pub stream: bool,
}

/// Why a descriptor cannot be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotSocket {
    /// Not an open descriptor.
    Closed,
    /// Open, but not a socket.
    Other,
}

fn getsockopt<T: Copy>(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
    count();
    let mut v = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` has room for `len` bytes; the kernel writes at most that many.
    cvt(unsafe { libc::getsockopt(fd, level, name, v.as_mut_ptr().cast(), &mut len) })?;
    // SAFETY: zero-initialised plain-old-data; a short write leaves zeroes.
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

/// Identity and kind of a socket.
pub(crate) fn socket_info(fd: RawFd) -> Result<SocketInfo, NotSocket> {
    let cookie = socket_cookie(fd)?;
    let ty: libc::c_int = getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE).map_err(|_| NotSocket::Other)?;
    Ok(SocketInfo { cookie, stream: ty == libc::SOCK_STREAM || ty == libc::SOCK_SEQPACKET })
}

/// Byte counters of a TCP connection: total received, still queued for reading, total acked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpCounters {
    pub received: u64,
    pub queued: u64,
    pub acked: u64,
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

/// Samples a TCP socket's byte counters (`TCP_INFO` and `SIOCINQ`).
pub(crate) fn tcp_counters(fd: RawFd) -> Option<TcpCounters> {
    let info: TcpInfoPrefix = getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO).ok()?;
    count();
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD (SIOCINQ) writes one int.
    cvt(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) }).ok()?;
    Some(TcpCounters {
        received: info.bytes_received,
        queued: u64::try_from(queued).unwrap_or(0),
        acked: info.bytes_acked,
    })
}

/// Current readiness of one descriptor, as epoll bits, without side effects.
/// `None` when the descriptor is not open.
pub(crate) fn poll_now(fd: RawFd) -> Option<u32> {
    count();
    let mut p = libc::pollfd { fd, events: libc::POLLIN | libc::POLLOUT | libc::POLLRDHUP, revents: 0 };
    // SAFETY: one valid pollfd, timeout 0.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n < 0 || p.revents & libc::POLLNVAL != 0 {
        return None;
    }
    // poll and epoll share bit values for these flags.
    Some(p.revents as u16 as u32)
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

/// The number of processors this process may run on.
pub(crate) fn processors() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
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
        assert!(socket_info(s.as_raw_fd()).unwrap().stream);
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
        assert_eq!(socket_info(r.as_raw_fd()), Err(NotSocket::Other));
        assert_eq!(socket_info(-1), Err(NotSocket::Closed));
        assert_eq!(socket_info(1_000_000), Err(NotSocket::Closed));
    }

    #[test]
    fn cookies_differ_between_sockets() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (ia, ib) = (socket_info(a.as_raw_fd()).unwrap(), socket_info(b.as_raw_fd()).unwrap());
        assert_ne!(ia.cookie, ib.cookie);
        assert!(!ia.stream);
    }
}
