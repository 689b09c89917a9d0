//! The values that travel through a port: [`Completion`] packets and [`Registration`] entries.

use crate::error::RegistrationError;
use crate::events::{Events, Trigger};
use crate::winsock::{SOCK_NOTIFY_OP_DISABLE, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_OP_NONE, SOCK_NOTIFY_OP_REMOVE};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// One packet dequeued from a [`CompletionPort`](crate::CompletionPort).
///
/// It has exactly the layout of Windows' `OVERLAPPED_ENTRY` (32 bytes on x86_64).
/// A notification carries the registration's key and the event mask in
/// [`bytes`](Completion::bytes) (read it with [`events`](Completion::events));
/// its overlapped and internal values are 0. A posted packet comes back exactly as posted.
///
/// ```
/// use socknotify::{Completion, Events};
/// let c = Completion::new(7, 0xABC, 42);
/// assert_eq!((c.key(), c.bytes(), c.overlapped()), (7, 0xABC, 42));
/// let n = Completion::new(3, (Events::IN | Events::REMOVE).bits(), 0);
/// assert!(n.events().contains(Events::REMOVE));
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Completion {
    key: usize,
    overlapped: usize,
    internal: usize,
    bytes: u32,
}

const _: () = assert!(std::mem::size_of::<Completion>() == 32);
const _: () = assert!(std::mem::align_of::<Completion>() == 8);

impl Completion {
    /// A packet to [`post`](crate::CompletionPort::post): key, byte count and overlapped value.
    ///
    /// ```
    /// let c = socknotify::Completion::new(1, 2, 3);
    /// assert_eq!(c.internal(), 0);
    /// ```
    pub const fn new(key: usize, bytes: u32, overlapped: usize) -> Completion {
        Completion { key, overlapped, internal: 0, bytes }
    }

    /// A packet with every field of `OVERLAPPED_ENTRY` given, `Internal` included.
    ///
    /// ```
    /// let c = socknotify::Completion::with_internal(1, 2, 3, 4);
    /// assert_eq!(c.internal(), 4);
    /// ```
    pub const fn with_internal(key: usize, bytes: u32, overlapped: usize, internal: usize) -> Completion {
        Completion { key, overlapped, internal, bytes }
    }

    /// The completion key (`lpCompletionKey`).
    ///
    /// ```
    /// assert_eq!(socknotify::Completion::new(9, 0, 0).key(), 9);
    /// ```
    pub const fn key(&self) -> usize {
        self.key
    }

    /// The byte count (`dwNumberOfBytesTransferred`); for a notification, the event mask.
    ///
    /// ```
    /// assert_eq!(socknotify::Completion::new(0, 5, 0).bytes(), 5);
    /// ```
    pub const fn bytes(&self) -> u32 {
        self.bytes
    }

    /// The overlapped value (`lpOverlapped`); 0 for notifications.
    ///
    /// ```
    /// assert_eq!(socknotify::Completion::new(0, 0, 77).overlapped(), 77);
    /// ```
    pub const fn overlapped(&self) -> usize {
        self.overlapped
    }

    /// The `Internal` field; 0 for notifications and for packets posted with [`Completion::new`].
    ///
    /// ```
    /// assert_eq!(socknotify::Completion::new(0, 0, 0).internal(), 0);
    /// ```
    pub const fn internal(&self) -> usize {
        self.internal
    }

    /// The byte count read as an event mask (Windows' `SocketNotificationRetrieveEvents`).
    ///
    /// ```
    /// use socknotify::{Completion, Events};
    /// assert_eq!(Completion::new(0, 0x41, 0).events(), Events::IN | Events::ERR);
    /// ```
    pub const fn events(&self) -> Events {
        Events::from_bits(self.bytes)
    }
}

/// What one [`Registration`] entry asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Do nothing (`SOCK_NOTIFY_OP_NONE`); the entry always succeeds.
    None,
    /// Create the registration, or re-arm or change an existing one (`SOCK_NOTIFY_OP_ENABLE`).
    /// An existing registration keeps its key; filter and trigger are replaced.
    Enable {
        /// What to watch: a subset of `IN | OUT | HANGUP` (ERR is always delivered).
        events: Events,
        /// When to notify.
        trigger: Trigger,
    },
    /// Stop notifications; a packet already queued is still delivered (`SOCK_NOTIFY_OP_DISABLE`).
    Disable,
    /// End the registration with one last packet carrying [`Events::REMOVE`] (`SOCK_NOTIFY_OP_REMOVE`).
    Remove,
}

/// One entry of a [`CompletionPort::process`](crate::CompletionPort::process) batch:
/// a socket, a completion key, an [`Operation`], and after the call its result.
///
/// ```no_run
/// use socknotify::{CompletionPort, Events, Registration, Trigger};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let port = CompletionPort::new()?;
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let mut regs = [Registration::enable(&listener, 1, Events::IN, Trigger::LEVEL_PERSISTENT)];
/// port.process(&mut regs, &mut [], Some(std::time::Duration::ZERO))?;
/// regs[0].result()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Registration<'fd> {
    socket: BorrowedFd<'fd>,
    key: usize,
    operation: Operation,
    result: Result<(), RegistrationError>,
}

impl<'fd> Registration<'fd> {
    /// An entry with any operation.
    ///
    /// ```
    /// use socknotify::{Operation, Registration};
    /// let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let r = Registration::new(&s, 5, Operation::Disable);
    /// assert_eq!(r.key(), 5);
    /// ```
    pub fn new<S: AsFd + ?Sized>(socket: &'fd S, key: usize, operation: Operation) -> Self {
        Registration { socket: socket.as_fd(), key, operation, result: Ok(()) }
    }

    /// An ENABLE entry.
    ///
    /// ```
    /// use socknotify::{Events, Registration, Trigger};
    /// let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let r = Registration::enable(&s, 1, Events::IN, Trigger::LEVEL_ONESHOT);
    /// assert!(r.result().is_ok()); // nothing has failed yet
    /// ```
    pub fn enable<S: AsFd + ?Sized>(socket: &'fd S, key: usize, events: Events, trigger: Trigger) -> Self {
        Self::new(socket, key, Operation::Enable { events, trigger })
    }

    /// A DISABLE entry. The key is used only if this creates the registration (decision D11).
    ///
    /// ```
    /// let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let _ = socknotify::Registration::disable(&s, 1);
    /// ```
    pub fn disable<S: AsFd + ?Sized>(socket: &'fd S, key: usize) -> Self {
        Self::new(socket, key, Operation::Disable)
    }

    /// A REMOVE entry.
    ///
    /// ```
    /// let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let _ = socknotify::Registration::remove(&s);
    /// ```
    pub fn remove<S: AsFd + ?Sized>(socket: &'fd S) -> Self {
        Self::new(socket, 0, Operation::Remove)
    }

    /// The socket of this entry.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let r = socknotify::Registration::remove(&s);
    /// assert_eq!(r.socket().as_raw_fd(), s.as_raw_fd());
    /// ```
    pub fn socket(&self) -> BorrowedFd<'fd> {
        self.socket
    }

    /// The completion key.
    ///
    /// ```
    /// let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_eq!(socknotify::Registration::disable(&s, 8).key(), 8);
    /// ```
    pub fn key(&self) -> usize {
        self.key
    }

    /// The operation.
    ///
    /// ```
    /// use socknotify::{Operation, Registration};
    /// let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_eq!(Registration::remove(&s).operation(), Operation::Remove);
    /// ```
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The entry's result after the call (`Ok` before it).
    ///
    /// ```
    /// let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(socknotify::Registration::remove(&s).result().is_ok());
    /// ```
    pub fn result(&self) -> Result<(), RegistrationError> {
        self.result
    }

    /// The entry's result as the Windows code written to `registrationResult` (0 = success).
    ///
    /// ```
    /// let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_eq!(socknotify::Registration::remove(&s).result_code(), 0);
    /// ```
    pub fn result_code(&self) -> u32 {
        self.result.err().map_or(crate::codes::ERROR_SUCCESS, RegistrationError::code)
    }
}

/// The view of a registration entry that the engine works on; implemented by the safe
/// [`Registration`] and by Windows' `SOCK_NOTIFY_REGISTRATION`, so neither is copied.
pub(crate) trait Entry {
    fn raw_fd(&self) -> RawFd;
    /// The descriptor value is out of range for a descriptor (C callers may pass anything).
    fn fd_out_of_range(&self) -> bool {
        false
    }
    fn key(&self) -> usize;
    fn op(&self) -> u8;
    fn filter(&self) -> u16;
    fn trigger(&self) -> u8;
    fn set_result(&mut self, result: Result<(), RegistrationError>);
}

impl Entry for Registration<'_> {
    fn raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
    fn key(&self) -> usize {
        self.key
    }
    fn op(&self) -> u8 {
        match self.operation {
            Operation::None => SOCK_NOTIFY_OP_NONE,
            Operation::Enable { .. } => SOCK_NOTIFY_OP_ENABLE,
            Operation::Disable => SOCK_NOTIFY_OP_DISABLE,
            Operation::Remove => SOCK_NOTIFY_OP_REMOVE,
        }
    }
    fn filter(&self) -> u16 {
        match self.operation {
            // Bits beyond u16 can never be valid; keep them visible to validation.
            Operation::Enable { events, .. } => u16::try_from(events.bits()).unwrap_or(u16::MAX),
            _ => 0,
        }
    }
    fn trigger(&self) -> u8 {
        match self.operation {
            Operation::Enable { trigger, .. } => trigger.bits(),
            _ => 0,
        }
    }
    fn set_result(&mut self, result: Result<(), RegistrationError>) {
        self.result = result;
    }
}
