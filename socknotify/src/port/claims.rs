//! The process-wide one-port-per-socket table (decision D13), and the calls that drop a
//! registration because its socket is being closed: [`close_socket`] and
//! [`forget_registration_raw`].

use super::inner::Inner;
use super::sync::{lock, Mutex, MutexGuard};
use crate::machine::paged::Sparse;
use crate::machine::Claims;
use crate::sys;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Weak};

/// One descriptor's entry in the table: the port that claims it (0: none; port ids start
/// at 1) and the cookie of the socket it claimed. 16 bytes per descriptor.
#[derive(Clone, Copy, Debug, Default)]
struct Claim {
    port: u64,
    cookie: u64,
}

/// The process-wide one-port-per-socket table (D13): descriptor → (port, socket cookie), and
/// a handle to each port that holds claims (few: a list).
struct Table {
    /// Indexed by descriptor, in pages of 256 allocated when first used (a large table wastes
    /// at most one page, and growing never copies it).
    by_fd: Sparse<Claim, 256>,
    /// (port id, the port, how many descriptors it claims); an entry leaves with its last claim.
    owners: Vec<(u64, Weak<Inner>, usize)>,
}

impl Table {
    const fn new() -> Table {
        Table { by_fd: Sparse::new(), owners: Vec::new() }
    }

    fn owner(&self, port: u64) -> Option<&Weak<Inner>> {
        self.owners.iter().find(|o| o.0 == port).map(|o| &o.1)
    }

    /// Sets descriptor `i`'s entry, keeping the claim counts of `owners` (`owner`: the
    /// claiming port itself, when `c` is a claim).
    fn set(&mut self, i: usize, c: Claim, owner: Option<&Weak<Inner>>) {
        let e = self.by_fd.entry(i);
        let old = std::mem::replace(e, c);
        if old.port != 0 {
            if let Some(k) = self.owners.iter().position(|o| o.0 == old.port) {
                self.owners[k].2 -= 1;
                if self.owners[k].2 == 0 {
                    self.owners.swap_remove(k);
                }
            }
        }
        if c.port != 0 {
            match self.owners.iter_mut().find(|o| o.0 == c.port) {
                Some(o) => o.2 += 1,
                None => self.owners.push((c.port, owner.cloned().unwrap_or_default(), 1)),
            }
        }
    }
}

#[cfg(not(loom))]
static CLAIMS: Mutex<Table> = Mutex::new(Table::new());

#[cfg(loom)]
loom::lazy_static! {
    static ref CLAIMS: Mutex<Table> = Mutex::new(Table::new());
}

/// The table, locked (see the lock order in `inner.rs`: after a port lock, never before).
fn claims_table() -> MutexGuard<'static, Table> {
    #[cfg(not(loom))]
    let table: &'static Mutex<Table> = &CLAIMS;
    #[cfg(loom)]
    let table: &'static Mutex<Table> = &*CLAIMS;
    lock(table)
}

/// This port's view of the table, handed to the machine.
pub(super) struct PortClaims<'a> {
    pub port: u64,
    pub owner: &'a Weak<Inner>,
}

impl Claims for PortClaims<'_> {
    fn claim(&mut self, fd: RawFd, cookie: u64) -> bool {
        let Ok(i) = usize::try_from(fd) else {
            return false;
        };
        let mut t = claims_table();
        let c = t.by_fd.get(i).copied().unwrap_or_default();
        // Another port holds this very socket.
        if c.port != 0
            && c.port != self.port
            && c.cookie == cookie
            && t.owner(c.port).is_some_and(|o| o.strong_count() > 0)
        {
            return false;
        }
        // Free, or a claim left by a socket that was closed and whose number was reused.
        t.set(i, Claim { port: self.port, cookie }, Some(self.owner));
        true
    }
    fn release(&mut self, fd: RawFd, cookie: u64) {
        let Ok(i) = usize::try_from(fd) else { return };
        let mut t = claims_table();
        if t.by_fd.get(i).is_some_and(|c| c.port == self.port && c.cookie == cookie) {
            t.set(i, Claim::default(), None);
        }
    }
}
/// Drops the registration of descriptor `fd`, whatever port holds it, without a REMOVE
/// packet, as Windows does when a socket is closed (D21). A packet already queued for it is
/// still delivered. Call it just before closing a registered descriptor yourself (the C
/// API's `closesocket` does); plain `close` is detected too, but only lazily.
///
/// ```
/// use socknotify::{CompletionPort, Events, Registration, Trigger};
/// use std::os::fd::AsRawFd;
/// let port = CompletionPort::new()?;
/// let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// port.process(&mut [Registration::enable(&s, 1, Events::IN, Trigger::LEVEL_ONESHOT)], &mut [], Some(std::time::Duration::ZERO))?;
/// assert_eq!(port.registrations(), 1);
/// socknotify::forget_registration_raw(s.as_raw_fd());
/// assert_eq!(port.registrations(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn forget_registration_raw(fd: RawFd) {
    let Ok(i) = usize::try_from(fd) else { return };
    let owner = {
        let t = claims_table();
        match t.by_fd.get(i) {
            Some(c) if c.port != 0 => t.owner(c.port).and_then(Weak::upgrade),
            _ => None,
        }
    };
    if let Some(port) = owner {
        let mut st = port.lock();
        if st.closed {
            return;
        }
        // Readiness the kernel noted before the close becomes packets first: a packet that
        // was queued is still delivered after the close (D21, T43).
        port.harvest(&mut st);
        let weak = Arc::downgrade(&port);
        let mut kernel = sys::SysKernel::new(&port.epfd);
        st.machine.forget_fd(fd, &mut kernel, &mut PortClaims { port: port.id, owner: &weak });
        port.dispatch(&mut st);
    }
}

/// Closes a socket the way Windows' `closesocket` does: its registration, on whatever port,
/// is dropped without a REMOVE packet, and a packet already queued for it is still
/// delivered (D21). Prefer it to a plain `drop` for registered sockets: a plain close is
/// detected only lazily, and readiness not yet collected from the kernel is lost with it.
///
/// ```
/// use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
/// use std::time::Duration;
/// let port = CompletionPort::new()?;
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// port.process(&mut [Registration::enable(&a, 5, Events::IN, Trigger::LEVEL_PERSISTENT)], &mut [], Some(Duration::ZERO))?;
/// std::io::Write::write_all(&mut &b, b"x")?;
/// socknotify::close_socket(a);
/// let mut out = [Completion::default(); 4];
/// assert_eq!(port.dequeue(&mut out, Some(Duration::ZERO))?, 1); // the queued IN, no REMOVE
/// assert_eq!((out[0].key(), out[0].events()), (5, Events::IN));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn close_socket(socket: impl Into<OwnedFd>) {
    let fd: OwnedFd = socket.into();
    forget_registration_raw(fd.as_raw_fd());
    drop(fd);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_kept_exactly_while_it_claims_a_descriptor() {
        let mut t = Table::new();
        let owners = |t: &Table| {
            let mut v: Vec<(u64, usize)> = t.owners.iter().map(|o| (o.0, o.2)).collect();
            v.sort_unstable();
            v
        };
        let none = Weak::new();
        t.set(3, Claim { port: 1, cookie: 10 }, Some(&none));
        t.set(700, Claim { port: 1, cookie: 11 }, Some(&none));
        assert_eq!(owners(&t), [(1, 2)]);
        // A claim left by a closed socket, taken over by another port.
        t.set(3, Claim { port: 2, cookie: 12 }, Some(&none));
        assert_eq!(owners(&t), [(1, 1), (2, 1)]);
        t.set(700, Claim::default(), None);
        assert_eq!(owners(&t), [(2, 1)]);
        t.set(3, Claim::default(), None);
        assert!(t.owners.is_empty());
        assert_eq!(std::mem::size_of::<Claim>(), 16);
        assert_eq!(t.by_fd.get(700).map(|c| c.port), Some(0));
    }
}
