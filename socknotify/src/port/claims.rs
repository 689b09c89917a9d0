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

/// The process-wide one-port-per-socket table (D13): descriptor → (port, socket cookie).
struct Claim {
    port: u64,
    cookie: u64,
    owner: Weak<Inner>,
}

/// Indexed by descriptor, in pages of 256 allocated when first used (a large table wastes at
/// most one page, and growing never copies it).
type Table = Sparse<Option<Claim>, 256>;

#[cfg(not(loom))]
static CLAIMS: Mutex<Table> = Mutex::new(Sparse::new());

#[cfg(loom)]
loom::lazy_static! {
    static ref CLAIMS: Mutex<Table> = Mutex::new(Sparse::new());
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
        let slot = t.entry(i);
        match slot {
            // Another port holds this very socket.
            Some(c) if c.port != self.port && c.cookie == cookie && c.owner.strong_count() > 0 => false,
            // Free, or a claim left by a socket that was closed and whose number was reused.
            _ => {
                *slot = Some(Claim { port: self.port, cookie, owner: self.owner.clone() });
                true
            }
        }
    }
    fn release(&mut self, fd: RawFd, cookie: u64) {
        let Ok(i) = usize::try_from(fd) else { return };
        let mut t = claims_table();
        if let Some(slot) = t.get_mut(i) {
            if matches!(slot, Some(c) if c.port == self.port && c.cookie == cookie) {
                *slot = None;
            }
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
    let owner = match claims_table().get(i) {
        Some(Some(c)) => c.owner.upgrade(),
        _ => None,
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
