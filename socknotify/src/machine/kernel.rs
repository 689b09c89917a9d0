//! What the machine needs from the world outside it, in the machine's own terms: a [`Kernel`]
//! that watches and samples sockets, and the process-wide [`Claims`] table. The port supplies
//! real implementations (the `sys` adapter and its claims table); tests and the fuzzer supply
//! scripted ones.

use crate::abi::RegistrationError;
use std::ops::{BitAnd, BitOr, BitOrAssign};
use std::os::fd::RawFd;

/// The name under which the kernel reports a registration's readiness back to the machine
/// (slot and generation, so that a report for a freed slot is recognised and ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub u64);

/// What the kernel should report for a watched socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// Report while the socket is readable (`read`) or writable (`write`), and on hang-up or
    /// error; with `once`, stop after the first report until the interest is set again.
    Level {
        /// Readable.
        read: bool,
        /// Writable.
        write: bool,
        /// Disarm after one report.
        once: bool,
    },
    /// Report every change of the socket's readiness, whatever it is.
    Edge,
    /// Report nothing the machine asked for (a disabled registration): at most one wake-up for
    /// an error or hang-up, which the machine ignores.
    Off,
}

/// A socket's readiness as the kernel reports it (Linux's view, before the mapping to
/// Windows' bits in [`readiness`](super::readiness)).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Readiness(u8);

impl Readiness {
    /// Nothing.
    pub const NONE: Readiness = Readiness(0);
    /// Readable (data, a connection to accept, or end of file).
    pub const READ: Readiness = Readiness(1);
    /// Writable.
    pub const WRITE: Readiness = Readiness(2);
    /// An error is pending.
    pub const ERROR: Readiness = Readiness(4);
    /// Hung up: closed in both directions, or never connected.
    pub const HANGUP: Readiness = Readiness(8);
    /// The peer shut down its sending side (read hang-up).
    pub const READ_HANGUP: Readiness = Readiness(16);

    /// True when every bit of `other` is set.
    pub const fn contains(self, other: Readiness) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Readiness {
    type Output = Readiness;
    fn bitor(self, rhs: Readiness) -> Readiness {
        Readiness(self.0 | rhs.0)
    }
}

impl BitOrAssign for Readiness {
    fn bitor_assign(&mut self, rhs: Readiness) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Readiness {
    type Output = Readiness;
    fn bitand(self, rhs: Readiness) -> Readiness {
        Readiness(self.0 & rhs.0)
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (Readiness::READ, "READ"),
            (Readiness::WRITE, "WRITE"),
            (Readiness::ERROR, "ERROR"),
            (Readiness::HANGUP, "HANGUP"),
            (Readiness::READ_HANGUP, "READ_HANGUP"),
        ];
        let set: Vec<&str> = names.iter().filter(|(b, _)| self.contains(*b)).map(|(_, n)| *n).collect();
        if set.is_empty() {
            f.write_str("NONE")
        } else {
            f.write_str(&set.join("|"))
        }
    }
}

/// What a socket is, as far as the mapping to Windows' bits cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketKind {
    /// Connection-oriented (TCP, Unix stream or seqpacket).
    pub stream: bool,
}

/// Byte counters of a TCP connection, for edge decisions (decision D18).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Bytes received in total.
    pub received: u64,
    /// Bytes received and not yet read.
    pub queued: u64,
    /// Bytes sent and acknowledged by the peer, in total.
    pub acked: u64,
}

/// What the machine needs from the kernel. All methods may fail because the descriptor was
/// closed or now names another socket; they then report `false` / `None`.
pub trait Kernel {
    /// Identity of a descriptor for a new registration: its socket's cookie, a number unique
    /// to that socket for the life of the system.
    fn identify(&mut self, fd: RawFd) -> Result<u64, RegistrationError>;
    /// The kind of the socket `fd` names now (`None`: not an open socket). Asked lazily, the
    /// first time the mapping of a registration's readiness depends on it.
    fn kind(&mut self, fd: RawFd) -> Option<SocketKind>;
    /// The cookie of the socket a descriptor names now (`None`: not an open socket).
    fn cookie(&mut self, fd: RawFd) -> Option<u64>;
    /// Start watching `fd` with this interest, reporting under `token`.
    fn add(&mut self, fd: RawFd, interest: Interest, token: Token) -> bool;
    /// Change the interest of a watched `fd`. `false`: `fd` is no longer the watched socket.
    fn modify(&mut self, fd: RawFd, interest: Interest, token: Token) -> bool;
    /// Stop watching `fd`. `false`: `fd` is no longer the watched socket.
    fn delete(&mut self, fd: RawFd) -> bool;
    /// Readiness of `fd` now, if it still names the socket with `cookie`.
    fn sample(&mut self, fd: RawFd, cookie: u64) -> Option<Readiness>;
    /// Readiness of `fd` now, without checking its identity (the caller learnt it in the same
    /// entry). `None`: not an open descriptor.
    fn poll(&mut self, fd: RawFd) -> Option<Readiness>;
    /// True for a TCP socket that is closed and never completed a connection (its connect
    /// failed), even when the error was already read by the application.
    fn never_connected(&mut self, fd: RawFd) -> bool;
    /// TCP byte counters, or `None` for other sockets.
    fn tcp_counters(&mut self, fd: RawFd) -> Option<TcpCounters>;
}

/// The process-wide table that keeps a socket on one port at a time (decision D13).
pub trait Claims {
    /// Claims `fd` (whose socket has `cookie`) for this port. `false`: another port holds it.
    fn claim(&mut self, fd: RawFd, cookie: u64) -> bool;
    /// Gives up the claim on `fd`, if this port holds it for the socket with `cookie`.
    fn release(&mut self, fd: RawFd, cookie: u64);
}
