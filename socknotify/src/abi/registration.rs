//! What a batch asks for: [`Operation`], the safe [`Registration`] entry, and [`Entry`], the
//! view of an entry (safe or Windows-shaped) that the machine works on.

use super::error::RegistrationError;
use super::events::{Events, Trigger};
use super::windows::{
    SOCK_NOTIFY_OP_DISABLE, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_OP_NONE, SOCK_NOTIFY_OP_REMOVE, SOCK_NOTIFY_REGISTRATION,
};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

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

impl Operation {
    /// Decodes Windows' `operation`, `eventFilter` and `triggerFlags` fields; `None` when the
    /// operation code is not one of the four (decision D7). Filter and trigger are kept as
    /// given (an ENABLE's are validated when it is applied) and ignored for other operations.
    ///
    /// ```
    /// use socknotify::winsock::*;
    /// use socknotify::{Events, Operation, Trigger};
    /// let op = Operation::from_windows(SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_EDGE);
    /// assert_eq!(op, Some(Operation::Enable { events: Events::IN, trigger: Trigger::EDGE }));
    /// assert_eq!(Operation::from_windows(SOCK_NOTIFY_OP_REMOVE, 0xFFFF, 0xFF), Some(Operation::Remove));
    /// assert_eq!(Operation::from_windows(5, 0, 0), None); // ENABLE|REMOVE is no operation
    /// ```
    pub fn from_windows(operation: u8, filter: u16, trigger: u8) -> Option<Operation> {
        match operation {
            SOCK_NOTIFY_OP_NONE => Some(Operation::None),
            SOCK_NOTIFY_OP_ENABLE => Some(Operation::Enable {
                events: Events::from_bits(u32::from(filter)),
                trigger: Trigger::from_bits(trigger),
            }),
            SOCK_NOTIFY_OP_DISABLE => Some(Operation::Disable),
            SOCK_NOTIFY_OP_REMOVE => Some(Operation::Remove),
            _ => None,
        }
    }
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
        self.result.err().map_or(super::codes::ERROR_SUCCESS, RegistrationError::code)
    }
}

/// The view of a registration entry that the machine works on; implemented by the safe
/// [`Registration`] and by Windows' `SOCK_NOTIFY_REGISTRATION`, so neither is copied.
/// Windows' bytes are decoded here, once.
pub(crate) trait Entry {
    /// The descriptor; `None` when the value cannot be a descriptor (C callers may pass anything).
    fn fd(&self) -> Option<RawFd>;
    /// The completion key.
    fn key(&self) -> usize;
    /// The operation; `None` when the operation code is not one of the four (decision D7).
    fn operation(&self) -> Option<Operation>;
    /// Writes the entry's result.
    fn set_result(&mut self, result: Result<(), RegistrationError>);
}

impl Entry for Registration<'_> {
    fn fd(&self) -> Option<RawFd> {
        Some(self.socket.as_raw_fd())
    }
    fn key(&self) -> usize {
        self.key
    }
    fn operation(&self) -> Option<Operation> {
        Some(self.operation)
    }
    fn set_result(&mut self, result: Result<(), RegistrationError>) {
        self.result = result;
    }
}

impl Entry for SOCK_NOTIFY_REGISTRATION {
    fn fd(&self) -> Option<RawFd> {
        RawFd::try_from(self.socket).ok()
    }
    fn key(&self) -> usize {
        self.completionKey
    }
    fn operation(&self) -> Option<Operation> {
        Operation::from_windows(self.operation, self.eventFilter, self.triggerFlags)
    }
    fn set_result(&mut self, result: Result<(), RegistrationError>) {
        self.registrationResult = result.err().map_or(super::codes::ERROR_SUCCESS, RegistrationError::code);
    }
}
