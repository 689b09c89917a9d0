//! Shared helpers for the conformance suites (`tests/conformance*.rs`).
//!
//! Every wait here is bounded, so a broken core fails a test instead of hanging it.
#![allow(dead_code)]

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};
use socknotify::winsock::*;
use socknotify::{Completion, CompletionPort, Events, Operation, Registration, RegistrationError, Trigger};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// A value no implementation writes by accident: pre-fill outputs with it.
pub const SENTINEL: u32 = 0xDEAD;

pub const MS: fn(u64) -> Duration = Duration::from_millis;

/// "Surely nothing comes": how long a negative check waits.
pub const QUIET: Duration = Duration::from_millis(150);
/// How long a positive check may wait before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(3);

pub fn port() -> CompletionPort {
    CompletionPort::new().expect("CompletionPort::new")
}

/// A port for tests that close registered sockets behind its back (plain `close()`, a
/// descriptor number reused): they check decision D21's default, so they keep it even when
/// the suite runs with `SOCKNOTIFY_CLOSES_THROUGH_PORT=1` (whose promise they break).
pub fn port_without_the_promise() -> CompletionPort {
    CompletionPort::builder().closes_through_port(false).build().expect("CompletionPort")
}

// ---------------------------------------------------------------------------------------------
// Sockets

/// A connected TCP pair on 127.0.0.1: (client, accepted server side). Both non-blocking.
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    c.set_nonblocking(true).unwrap();
    s.set_nonblocking(true).unwrap();
    c.set_nodelay(true).unwrap();
    s.set_nodelay(true).unwrap();
    (c, s)
}

/// Two UDP sockets on 127.0.0.1 connected to each other. Both non-blocking.
pub fn udp_pair() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.connect(b.local_addr().unwrap()).unwrap();
    b.connect(a.local_addr().unwrap()).unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// A fresh, never-connected, non-blocking TCP socket (not bound, not listening).
pub fn fresh_tcp() -> Socket {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

/// A fresh, unbound, non-blocking UDP socket.
pub fn fresh_udp() -> Socket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

/// Starts a non-blocking connect of `s` to `addr` (EINPROGRESS is success here).
/// Returns the immediate outcome: Ok for "in progress or done", Err for an immediate failure.
pub fn start_connect(s: &Socket, addr: SocketAddr) -> io::Result<()> {
    match s.connect(&SockAddr::from(addr)) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        Err(e) => Err(e),
    }
}

/// An address on 127.0.0.1 where nothing listens and that nobody else can take while the
/// returned socket lives: a TCP socket bound there but not listening (connect → refused).
pub fn refused_addr() -> (Socket, SocketAddr) {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.bind(&SockAddr::from("127.0.0.1:0".parse::<SocketAddr>().unwrap())).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    (s, addr)
}

/// Closes `s` with SO_LINGER {1, 0}: the peer receives a RST.
pub fn close_with_rst<S: AsFd>(s: S) {
    SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
}

/// Reads everything currently buffered (non-blocking socket), returns the byte count.
/// Stops at EOF, WouldBlock or an error.
pub fn drain_socket<R: Read>(mut r: R) -> usize {
    let mut buf = [0u8; 65536];
    let mut total = 0;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return total,
        }
    }
}

/// Reads exactly `n` bytes from a non-blocking socket, waiting at most `PATIENCE`.
pub fn read_n<R: Read>(mut r: R, n: usize) {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    let deadline = Instant::now() + PATIENCE;
    while got < n {
        match r.read(&mut buf[got..]) {
            Ok(0) => panic!("EOF after {got} of {n} bytes"),
            Ok(k) => got += k,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                assert!(Instant::now() < deadline, "read_n: only {got} of {n} bytes arrived");
                std::thread::sleep(MS(1));
            }
            Err(e) => panic!("read_n: {e}"),
        }
    }
}

/// Writes all of `data` to a (possibly non-blocking) socket.
pub fn write_all<W: Write>(mut w: W, data: &[u8]) {
    let mut done = 0;
    let deadline = Instant::now() + PATIENCE;
    while done < data.len() {
        match w.write(&data[done..]) {
            Ok(k) => done += k,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                assert!(Instant::now() < deadline, "write_all timed out");
                std::thread::sleep(MS(1));
            }
            Err(e) => panic!("write_all: {e}"),
        }
    }
}

/// Sends until the socket says WouldBlock, and keeps doing so until a send still says
/// WouldBlock after a pause (the send buffer is stably full). Returns the bytes sent.
pub fn fill_send_buffer<W: Write>(mut w: W) -> usize {
    let chunk = vec![0x5Au8; 65536];
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        loop {
            match w.write(&chunk) {
                Ok(k) => total += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("fill_send_buffer: {e}"),
            }
            assert!(Instant::now() < deadline, "could not fill the send buffer");
        }
        std::thread::sleep(MS(30));
        match w.write(&chunk[..1]) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => return total,
            Ok(k) => total += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("fill_send_buffer: {e}"),
        }
        assert!(Instant::now() < deadline, "could not fill the send buffer");
    }
}

/// A pipe: (read end, write end).
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2");
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Descriptor numbers that cannot be open in this process (at or above the hard
/// RLIMIT_NOFILE, and above the kernel's maximum `nr_open`), so using them can never touch
/// a descriptor of a test running in parallel.
pub fn never_open_fds() -> Vec<RawFd> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: lim is a valid out pointer.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(rc, 0);
    let mut v = vec![i32::MAX - 1, i32::MAX];
    if lim.rlim_max != libc::RLIM_INFINITY && lim.rlim_max < (i32::MAX - 1) as u64 {
        v.push(lim.rlim_max as RawFd);
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Safe API helpers

/// Applies one entry (no dequeue) and returns its result.
pub fn apply(port: &CompletionPort, reg: Registration<'_>) -> Result<(), RegistrationError> {
    let mut regs = [reg];
    let n = port.process(&mut regs, &mut [], Some(Duration::ZERO)).expect("process (apply only)");
    assert_eq!(n, 0, "a call without output returned packets");
    regs[0].result()
}

/// Applies one entry (no dequeue) and returns its Windows code (`result_code`).
pub fn apply_code(port: &CompletionPort, reg: Registration<'_>) -> u32 {
    let mut regs = [reg];
    let n = port.process(&mut regs, &mut [], Some(Duration::ZERO)).expect("process (apply only)");
    assert_eq!(n, 0, "a call without output returned packets");
    regs[0].result_code()
}

/// The Windows code of an ENABLE.
pub fn enable_code<S: AsFd>(port: &CompletionPort, s: &S, key: usize, events: Events, trigger: Trigger) -> u32 {
    apply_code(port, Registration::enable(s, key, events, trigger))
}

pub fn enable<S: AsFd>(
    port: &CompletionPort,
    s: &S,
    key: usize,
    events: Events,
    trigger: Trigger,
) -> Result<(), RegistrationError> {
    apply(port, Registration::enable(s, key, events, trigger))
}

pub fn disable<S: AsFd>(port: &CompletionPort, s: &S, key: usize) -> Result<(), RegistrationError> {
    apply(port, Registration::disable(s, key))
}

pub fn remove<S: AsFd>(port: &CompletionPort, s: &S) -> Result<(), RegistrationError> {
    apply(port, Registration::remove(s))
}

pub fn none_op<S: AsFd>(port: &CompletionPort, s: &S, key: usize) -> Result<(), RegistrationError> {
    apply(port, Registration::new(s, key, Operation::None))
}

/// One dequeue of up to `max` packets.
pub fn dequeue(port: &CompletionPort, max: usize, timeout: Duration) -> Vec<Completion> {
    let mut out = vec![Completion::default(); max];
    let n = port.dequeue(&mut out, Some(timeout)).expect("dequeue");
    assert!(n <= max, "dequeue returned {n} > {max}");
    out.truncate(n);
    out
}

/// Dequeues until one dequeue of `quiet` returns nothing, or `limit` packets were
/// collected, or `PATIENCE` passed. Returns everything in order.
pub fn collect(port: &CompletionPort, quiet: Duration, limit: usize) -> Vec<Completion> {
    let deadline = Instant::now() + PATIENCE;
    let mut all = Vec::new();
    while all.len() < limit && Instant::now() < deadline {
        let got = dequeue(port, 64.min(limit - all.len()), quiet);
        if got.is_empty() {
            break;
        }
        all.extend(got);
    }
    all
}

/// Dequeues (one packet at a time) until a packet with `key` comes, at most `within`.
/// Returns that packet and every other packet seen before it.
pub fn wait_key(port: &CompletionPort, key: usize, within: Duration) -> (Option<Completion>, Vec<Completion>) {
    let deadline = Instant::now() + within;
    let mut others = Vec::new();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return (None, others);
        }
        for c in dequeue(port, 1, deadline - now) {
            if c.key() == key {
                return (Some(c), others);
            }
            others.push(c);
        }
    }
}

/// Waits for a packet with `key`, panicking if none comes within `PATIENCE`.
pub fn expect_key(port: &CompletionPort, key: usize) -> Completion {
    match wait_key(port, key, PATIENCE) {
        (Some(c), _) => c,
        (None, others) => panic!("no packet with key {key:#x} within {PATIENCE:?}; saw {others:?}"),
    }
}

/// Asserts that nothing with `key` comes within `quiet`; returns the other packets seen.
pub fn expect_no_key(port: &CompletionPort, key: usize, quiet: Duration) -> Vec<Completion> {
    let (c, others) = wait_key(port, key, quiet);
    assert!(c.is_none(), "unexpected packet with key {key:#x}: {:?} ({:?})", c.unwrap(), c.unwrap().events());
    others
}

/// Asserts that the port stays empty for `quiet`.
pub fn expect_empty(port: &CompletionPort, quiet: Duration) {
    let got = dequeue(port, 16, quiet);
    assert!(got.is_empty(), "expected no packet, got {got:?}");
}

/// The socket has no registration anywhere: REMOVE on `port` answers ERROR_NOT_FOUND and
/// produces no packet, and an ENABLE on a brand-new port succeeds (and is removed again).
pub fn assert_unregistered<S: AsFd>(port: &CompletionPort, s: &S) {
    assert_eq!(remove(port, s), Err(RegistrationError::NotFound), "socket unexpectedly registered");
    let other = self::port();
    assert_eq!(
        enable(&other, s, 0x5EED, Events::IN, Trigger::LEVEL_PERSISTENT),
        Ok(()),
        "ENABLE on a fresh port failed"
    );
    assert_eq!(remove(&other, s), Ok(()));
    let (c, _) = wait_key(&other, 0x5EED, PATIENCE);
    let c = c.expect("REMOVE packet on the helper port");
    assert!(c.events().contains(Events::REMOVE));
    other.close();
}

/// Removes the registration of `s` on `port` and waits for its REMOVE packet.
pub fn remove_and_wait<S: AsFd>(port: &CompletionPort, s: &S, key: usize) {
    assert_eq!(remove(port, s), Ok(()));
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "no REMOVE packet for key {key:#x}");
        match wait_key(port, key, deadline.saturating_duration_since(Instant::now())).0 {
            Some(c) if c.events().contains(Events::REMOVE) => return,
            Some(_) => continue,
            None => panic!("no REMOVE packet for key {key:#x}"),
        }
    }
}

/// The packets with `key` among `v`.
pub fn with_key(v: &[Completion], key: usize) -> Vec<Completion> {
    v.iter().copied().filter(|c| c.key() == key).collect()
}

/// Asserts `d` is within [lo, hi].
pub fn assert_between(d: Duration, lo: Duration, hi: Duration, what: &str) {
    assert!(d >= lo, "{what}: took {d:?}, less than {lo:?} (waits never return early, D5)");
    assert!(d <= hi, "{what}: took {d:?}, more than {hi:?}");
}

// ---------------------------------------------------------------------------------------------
// Windows-shaped helpers

/// A SOCK_NOTIFY_REGISTRATION whose result field holds the sentinel.
pub fn raw_reg(socket: SOCKET, key: usize, filter: u16, op: u8, trigger: u8) -> SOCK_NOTIFY_REGISTRATION {
    SOCK_NOTIFY_REGISTRATION {
        socket,
        completionKey: key,
        eventFilter: filter,
        operation: op,
        triggerFlags: trigger,
        registrationResult: SENTINEL,
    }
}

pub fn sock<S: AsRawFd>(s: &S) -> SOCKET {
    s.as_raw_fd() as SOCKET
}

/// An OVERLAPPED_ENTRY array filled with a recognisable pattern.
pub fn sentinel_entries<const N: usize>() -> [OVERLAPPED_ENTRY; N] {
    [OVERLAPPED_ENTRY {
        lpCompletionKey: 0xDEAD,
        lpOverlapped: 0xDEAD,
        Internal: 0xDEAD,
        dwNumberOfBytesTransferred: SENTINEL,
    }; N]
}

/// ProcessSocketNotifications with registrations only (no output, timeout 0).
pub fn psn_apply(port: &CompletionPort, regs: &mut [SOCK_NOTIFY_REGISTRATION]) -> u32 {
    ProcessSocketNotifications(port, Some(regs), 0, None, None)
}

/// ProcessSocketNotifications that only dequeues (no registrations).
pub fn psn_dequeue(port: &CompletionPort, out: &mut [OVERLAPPED_ENTRY], timeout_ms: u32) -> (u32, u32) {
    let mut n = SENTINEL;
    let rc = ProcessSocketNotifications(port, None, timeout_ms, Some(out), Some(&mut n));
    (rc, n)
}

/// Runs `f` on a new thread and returns its result, or None if it takes longer than `within`.
pub fn run_bounded<T: Send + 'static>(within: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(within).ok()
}

pub fn shutdown_write(s: &TcpStream) {
    s.shutdown(Shutdown::Write).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Batches and descriptor reuse

/// Applies `regs` as one call (no dequeue) and returns every entry's Windows code.
pub fn apply_batch(port: &CompletionPort, regs: &mut [Registration<'_>]) -> Vec<u32> {
    let n = port.process(regs, &mut [], Some(Duration::ZERO)).expect("process (batch, apply only)");
    assert_eq!(n, 0, "a call without output returned packets");
    regs.iter().map(Registration::result_code).collect()
}

/// One call that applies `regs` and then dequeues up to `max` packets, waiting at most
/// `timeout`: returns every entry's Windows code and the packets.
pub fn process_batch(
    port: &CompletionPort,
    regs: &mut [Registration<'_>],
    max: usize,
    timeout: Duration,
) -> (Vec<u32>, Vec<Completion>) {
    let mut out = vec![Completion::default(); max];
    let n = port.process(regs, &mut out, Some(timeout)).expect("process (batch with dequeue)");
    assert!(n <= max, "process returned {n} > {max}");
    out.truncate(n);
    (regs.iter().map(Registration::result_code).collect(), out)
}

/// Puts the socket `new` at the descriptor number of `num`, as a plain `close(num)` followed
/// by a new socket that takes the freed number would. It is done with one `dup2` onto the
/// number (which closes the old socket), so no other thread of the test process can take the
/// number in between. Returns the number, which now owns the new socket; `new`'s own
/// descriptor is closed.
pub fn reuse_number(num: impl Into<OwnedFd>, new: impl Into<OwnedFd>) -> OwnedFd {
    let num: OwnedFd = num.into();
    let new: OwnedFd = new.into();
    // SAFETY: both descriptors are open and owned here; `num` keeps owning its number, which
    // names the new socket once dup2 returns.
    let rc = unsafe { libc::dup2(new.as_raw_fd(), num.as_raw_fd()) };
    assert_eq!(rc, num.as_raw_fd(), "dup2: {}", io::Error::last_os_error());
    num
}

/// A packet as `(key, events)`, with a REMOVE packet reduced to its REMOVE bit (the spec
/// allows other bits to be coalesced into it, §4.3).
pub fn key_events(c: &Completion) -> (usize, Events) {
    let e = c.events();
    (c.key(), if e.contains(Events::REMOVE) { Events::REMOVE } else { e })
}

/// [`key_events`] of each packet, sorted (a dequeue compared as a multiset).
pub fn summary(v: &[Completion]) -> Vec<(usize, Events)> {
    let mut s: Vec<(usize, Events)> = v.iter().map(key_events).collect();
    s.sort_by_key(|&(k, e)| (k, e.bits()));
    s
}
