//! Connected socket pairs, and how many fit under the descriptor limit.

use crate::run::{ctx, Res};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

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
            PairKind::Unix => "AF_UNIX stream socket pairs (UnixStream::pair)",
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
                        crate::sys::set_linger0(t.as_raw_fd());
                    }
                    servers.push(OwnedFd::from(s));
                    peers.push(OwnedFd::from(c));
                }
            }
        }
        Ok(Pairs { servers, peers })
    }

    /// `n` idle sockets for scenarios that only register them (churn, heap): both ends of
    /// `⌈n/2⌉` pairs, so that 10,000 of them need 10,000 descriptors, not 20,000.
    pub fn idle_sockets(kind: PairKind, n: usize) -> Res<Vec<OwnedFd>> {
        let p = Pairs::new(kind, n.div_ceil(2))?;
        let mut v: Vec<OwnedFd> = p.servers.into_iter().zip(p.peers).flat_map(|(a, b)| [a, b]).collect();
        v.truncate(n);
        Ok(v)
    }

    pub fn server_fds(&self) -> Vec<RawFd> {
        self.servers.iter().map(|s| s.as_raw_fd()).collect()
    }

    pub fn peer_fds(&self) -> Vec<RawFd> {
        self.peers.iter().map(|s| s.as_raw_fd()).collect()
    }
}

/// The largest number of socket pairs that fits under the descriptor limit, with headroom
/// for the pollers' own descriptors, rounded down to a multiple of 100.
pub fn max_pairs(nofile: u64) -> usize {
    let usable = nofile.saturating_sub(300) / 2;
    ((usable / 100) * 100) as usize
}

/// The large N of the readiness grid: 10,000 where the limit allows it, else 9,800 (what a
/// hard limit of 20,000 allows), else the most that fits.
pub fn large_n(nofile: u64) -> usize {
    let fit = max_pairs(nofile);
    if fit >= 10_000 {
        10_000
    } else {
        fit.min(9_800)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(max_pairs(20_000), 9_800);
        assert_eq!(large_n(20_000), 9_800);
        assert_eq!(large_n(1 << 20), 10_000);
        assert_eq!(large_n(4_096), 1_800);
    }

    #[test]
    fn idle_sockets_use_both_ends() {
        let v = Pairs::idle_sockets(PairKind::Unix, 5).unwrap();
        assert_eq!(v.len(), 5);
    }
}
