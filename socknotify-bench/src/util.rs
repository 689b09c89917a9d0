//! Shared helpers: socket pairs, descriptor limit, deterministic plans, byte I/O,
//! expectation bookkeeping and statistics.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// How long any single wait may block before the benchmark declares a notification missing.
pub const WAIT: Duration = Duration::from_secs(5);

/// Result type of everything fallible in the benchmark: a message that says what went wrong.
pub type Res<T> = Result<T, String>;

/// Adds context to an error.
pub fn ctx<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> Res<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the new soft limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
        let cur = lim.rlim_cur as u64;
        cur
    }
}

/// The largest number of socket pairs that fits under the descriptor limit, with headroom
/// for the pollers' own descriptors, rounded down to a multiple of 100.
pub fn max_pairs(nofile: u64) -> usize {
    let usable = nofile.saturating_sub(300) / 2;
    ((usable / 100) * 100) as usize
}

/// Which kind of connected sockets the scenarios use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairKind {
    /// `UnixStream::pair()` (AF_UNIX, SOCK_STREAM): the default.
    Unix,
    /// TCP loopback connections on 127.0.0.1 (TCP_NODELAY, SO_LINGER 0 so that no
    /// TIME_WAIT piles up when pairs are closed).
    Tcp,
}

impl PairKind {
    pub fn describe(self) -> &'static str {
        match self {
            PairKind::Unix => "UnixStream::pair() (AF_UNIX stream socket pairs)",
            PairKind::Tcp => "TCP loopback pairs on 127.0.0.1 (TCP_NODELAY)",
        }
    }
}

/// N connected pairs: `servers[i]` is the registered side, `peers[i]` is written to.
/// Every socket is non-blocking.
pub struct Pairs {
    pub servers: Vec<OwnedFd>,
    pub peers: Vec<OwnedFd>,
}

impl Pairs {
    pub fn new(kind: PairKind, n: usize) -> Res<Pairs> {
        let mut servers = Vec::with_capacity(n);
        let mut peers = Vec::with_capacity(n);
        match kind {
            PairKind::Unix => {
                for _ in 0..n {
                    let (a, b) = ctx(UnixStream::pair(), "UnixStream::pair")?;
                    ctx(a.set_nonblocking(true), "set_nonblocking")?;
                    ctx(b.set_nonblocking(true), "set_nonblocking")?;
                    servers.push(OwnedFd::from(a));
                    peers.push(OwnedFd::from(b));
                }
            }
            PairKind::Tcp => {
                let listener = ctx(TcpListener::bind("127.0.0.1:0"), "bind 127.0.0.1:0")?;
                let addr = ctx(listener.local_addr(), "local_addr")?;
                for _ in 0..n {
                    let c = ctx(TcpStream::connect(addr), "connect to loopback")?;
                    let (s, _) = ctx(listener.accept(), "accept")?;
                    for t in [&c, &s] {
                        ctx(t.set_nodelay(true), "TCP_NODELAY")?;
                        ctx(t.set_nonblocking(true), "set_nonblocking")?;
                        set_linger0(t.as_raw_fd());
                    }
                    servers.push(OwnedFd::from(s));
                    peers.push(OwnedFd::from(c));
                }
            }
        }
        Ok(Pairs { servers, peers })
    }
}

fn set_linger0(fd: RawFd) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt with a pointer to a local linger struct of the right size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Writes one byte to `fd` (the peer side of a pair).
#[inline]
pub fn write_one(fd: RawFd) -> Res<()> {
    loop {
        // SAFETY: writes one byte from a static buffer.
        let n = unsafe { libc::write(fd, b"x".as_ptr() as *const libc::c_void, 1) };
        if n == 1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if n < 0 && e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return Err(format!("write to peer fd {fd}: {n} ({e})"));
    }
}

/// Reads the one byte a round wrote to the socket of `key`. Anything but exactly one byte is
/// an error: a notification for a socket with nothing to read is a spurious notification.
#[inline]
pub fn read_one(fd: RawFd, key: usize) -> Res<()> {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: reads into a local buffer of the given size.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n == 1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if n < 0 && e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n < 0 && e.kind() == io::ErrorKind::WouldBlock {
            return Err(format!("notification for key {key} but its socket has nothing to read (spurious)"));
        }
        return Err(format!("read on key {key}: got {n} bytes, expected 1 ({e})"));
    }
}

/// Which socket each round makes readable and which notification it therefore expects.
/// `stamp[i] == round` while socket `i` owes a notification in `round` (rounds count from 1).
pub struct Expect {
    stamp: Vec<u32>,
    pub pending: usize,
    pub round: u32,
}

impl Expect {
    pub fn new(n: usize) -> Expect {
        Expect { stamp: vec![0; n], pending: 0, round: 0 }
    }

    #[inline]
    pub fn arm(&mut self, i: usize) {
        self.stamp[i] = self.round;
        self.pending += 1;
    }

    /// Accounts for a notification of key `i`; an unexpected or duplicate one is an error.
    #[inline]
    pub fn take(&mut self, i: usize) -> Res<()> {
        match self.stamp.get_mut(i) {
            Some(s) if *s == self.round && self.round != 0 => {
                *s = 0;
                self.pending -= 1;
                Ok(())
            }
            Some(_) => Err(format!(
                "round {}: notification for key {i}, which was not made readable in this round \
                 or was already notified (duplicate or spurious)",
                self.round
            )),
            None => Err(format!("round {}: notification with unknown key {i}", self.round)),
        }
    }
}

/// A deterministic plan: for each round, K distinct socket indices out of N.
pub struct Plan {
    pub k: usize,
    pub rounds: usize,
    pub warmup: usize,
    pub chosen: Vec<u32>,
}

impl Plan {
    pub fn new(n: usize, k: usize, rounds: usize, warmup: usize, seed: u64) -> Plan {
        assert!(k <= n && k > 0);
        let mut perm: Vec<u32> = (0..n as u32).collect();
        let mut rng = seed | 1;
        let total = rounds + warmup;
        let mut chosen = Vec::with_capacity(total * k);
        for _ in 0..total {
            // Partial Fisher-Yates: the first k entries become this round's choice.
            for j in 0..k {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let r = j + (rng % (n - j) as u64) as usize;
                perm.swap(j, r);
            }
            chosen.extend_from_slice(&perm[..k]);
        }
        Plan { k, rounds, warmup, chosen }
    }

    pub fn round(&self, r: usize) -> &[u32] {
        &self.chosen[r * self.k..(r + 1) * self.k]
    }
}

static WALL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Use wall-clock time instead of the thread's CPU time for the single-threaded scenarios.
pub fn set_wall_clock(on: bool) {
    WALL.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn wall_clock() -> bool {
    WALL.load(std::sync::atomic::Ordering::Relaxed)
}

/// A stopwatch for single-threaded timed sections. By default it reads the calling thread's
/// CPU time (`CLOCK_THREAD_CPUTIME_ID`: user + kernel time spent by this thread, system
/// calls and the socket wake-ups they trigger included), so that other processes on a
/// shared machine do not add their time slices to ours; `--wall` switches to wall time.
/// The sections it times never block (the data is written before each wait).
pub struct Stopwatch {
    wall: Option<std::time::Instant>,
    cpu: u64,
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes a timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Stopwatch {
    pub fn start() -> Stopwatch {
        if wall_clock() {
            Stopwatch { wall: Some(std::time::Instant::now()), cpu: 0 }
        } else {
            Stopwatch { wall: None, cpu: thread_cpu_ns() }
        }
    }
    pub fn ns(&self) -> u64 {
        match self.wall {
            Some(t) => t.elapsed().as_nanos() as u64,
            None => thread_cpu_ns().saturating_sub(self.cpu),
        }
    }
}

/// The p-th percentile (0..=100) of sorted values (nearest rank).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `f`, turning a panic into an error message (so that a `todo!()` in the core shows
/// as a failed cell, not as a dead benchmark).
pub fn guarded<T>(f: impl FnOnce() -> Res<T>) -> Res<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = if let Some(s) = p.downcast_ref::<&str>() {
                s.to_string()
            } else if let Some(s) = p.downcast_ref::<String>() {
                s.clone()
            } else {
                "unknown panic".to_string()
            };
            Err(format!("panicked: {msg}"))
        }
    }
}

/// Formats a nanosecond figure for a table cell.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns.abs() >= 100.0 {
        group(ns.round() as i64)
    } else {
        format!("{ns:.1}")
    }
}

/// 1234567 -> "1,234,567".
pub fn group(v: i64) -> String {
    let s = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        #[allow(clippy::manual_is_multiple_of)] // MSRV 1.80
        let third = (s.len() - i) % 3 == 0;
        if i > 0 && third {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 {
        format!("-{out}")
    } else {
        out
    }
}
