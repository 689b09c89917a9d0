//! Error types. Each maps to exactly one code of [`crate::codes`].

use super::codes;
use std::{fmt, io};

/// Why a whole call failed. A failed call changed nothing (decision D3),
/// except [`Error::Abandoned`], after which the registrations of the call stay applied.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The call's shape is invalid (for example a timeout with nowhere to put
    /// packets, spec V1/V2/V4). `WSAEINVAL`.
    InvalidArgument(&'static str),
    /// The port was closed before the call started. `ERROR_INVALID_HANDLE`.
    InvalidHandle,
    /// The port was closed while this thread waited on it. `ERROR_ABANDONED_WAIT_0`.
    Abandoned,
    /// Out of memory or another resource before any change was made. `WSAENOBUFS`.
    NoBuffers,
    /// The operating system refused a request the port needs (for example creating its
    /// epoll instance). Maps to `WSAENOBUFS` in Windows terms.
    Io(std::io::Error),
}

impl Error {
    /// The Windows code for this error (see [`crate::codes`]).
    ///
    /// ```
    /// assert_eq!(socknotify::Error::InvalidHandle.code(), 6);
    /// assert_eq!(socknotify::Error::Abandoned.code(), 735);
    /// ```
    pub fn code(&self) -> u32 {
        match self {
            Error::InvalidArgument(_) => codes::WSAEINVAL,
            Error::InvalidHandle => codes::ERROR_INVALID_HANDLE,
            Error::Abandoned => codes::ERROR_ABANDONED_WAIT_0,
            Error::NoBuffers | Error::Io(_) => codes::WSAENOBUFS,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::InvalidHandle => f.write_str("the completion port is closed"),
            Error::Abandoned => f.write_str("the completion port was closed during the wait"),
            Error::NoBuffers => f.write_str("out of memory or resources; nothing was changed"),
            Error::Io(e) => write!(f, "system error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl Error {
    /// The [`io::ErrorKind`] this error converts to (see `From<Error> for io::Error`).
    fn io_kind(&self) -> io::ErrorKind {
        match self {
            Error::InvalidArgument(_) => io::ErrorKind::InvalidInput,
            // The port is gone, whether before the call or during its wait: as a write to a
            // pipe whose reader is gone, nothing will come of retrying.
            Error::InvalidHandle | Error::Abandoned => io::ErrorKind::BrokenPipe,
            Error::NoBuffers => io::ErrorKind::OutOfMemory,
            Error::Io(e) => e.kind(),
        }
    }
}

/// An [`Error`] as an [`io::Error`], for `?` in functions returning `io::Result`.
///
/// The kind says what happened in Rust terms: [`InvalidArgument`](Error::InvalidArgument) →
/// `InvalidInput`; [`InvalidHandle`](Error::InvalidHandle) and [`Abandoned`](Error::Abandoned)
/// (the port was closed, before or during the call) → `BrokenPipe`;
/// [`NoBuffers`](Error::NoBuffers) → `OutOfMemory`; [`Io`](Error::Io) → the system error's
/// own kind. The `Error` itself is the payload, so the Windows code and the message stay
/// reachable through [`io::Error::get_ref`]; a Windows code is never passed off as an errno
/// value ([`io::Error::raw_os_error`] is `None`).
///
/// ```
/// use std::io;
/// let e = io::Error::from(socknotify::Error::Abandoned);
/// assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
/// assert_eq!(e.raw_os_error(), None);
/// let inner = e.get_ref().and_then(|i| i.downcast_ref::<socknotify::Error>()).unwrap();
/// assert_eq!(inner.code(), socknotify::codes::ERROR_ABANDONED_WAIT_0);
/// assert_eq!(e.to_string(), "the completion port was closed during the wait");
/// ```
impl From<Error> for io::Error {
    /// Wraps `e` with the kind described above.
    ///
    /// ```
    /// fn closed_port() -> std::io::Result<()> {
    ///     let port = socknotify::CompletionPort::new()?;
    ///     port.close();
    ///     port.post(socknotify::Completion::new(1, 0, 0))?;
    ///     Ok(())
    /// }
    /// assert_eq!(closed_port().unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    /// ```
    fn from(e: Error) -> io::Error {
        io::Error::new(e.io_kind(), e)
    }
}

/// Why one registration entry failed. Other entries of the same call are not affected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationError {
    /// The operation is not NONE, ENABLE, DISABLE or REMOVE, or an ENABLE's filter or trigger
    /// is invalid (decision D7). `WSAEINVAL`.
    InvalidArgument,
    /// The descriptor is not an open socket (decision D10). `WSAENOTSOCK`.
    NotASocket,
    /// The socket is registered with another completion port (decision D13). `WSAEINVAL`.
    OtherPort,
    /// The registration's REMOVE packet has not been dequeued yet (decision D14). `WSAEALREADY`.
    RemovePending,
    /// REMOVE of a socket that has no registration (decision D12). `ERROR_NOT_FOUND`.
    NotFound,
    /// Out of resources. `WSAENOBUFS`.
    NoBuffers,
}

impl RegistrationError {
    /// The Windows code written to `registrationResult` for this error.
    ///
    /// ```
    /// use socknotify::RegistrationError;
    /// assert_eq!(RegistrationError::NotASocket.code(), 10038);
    /// assert_eq!(RegistrationError::NotFound.code(), 1168);
    /// ```
    pub fn code(self) -> u32 {
        match self {
            RegistrationError::InvalidArgument | RegistrationError::OtherPort => codes::WSAEINVAL,
            RegistrationError::NotASocket => codes::WSAENOTSOCK,
            RegistrationError::RemovePending => codes::WSAEALREADY,
            RegistrationError::NotFound => codes::ERROR_NOT_FOUND,
            RegistrationError::NoBuffers => codes::WSAENOBUFS,
        }
    }

    /// The error for a non-zero `registrationResult` code, if it is one socknotify produces.
    ///
    /// ```
    /// use socknotify::RegistrationError;
    /// assert_eq!(RegistrationError::from_code(10037), Some(RegistrationError::RemovePending));
    /// assert_eq!(RegistrationError::from_code(0), None);
    /// ```
    pub fn from_code(code: u32) -> Option<RegistrationError> {
        match code {
            codes::WSAEINVAL => Some(RegistrationError::InvalidArgument),
            codes::WSAENOTSOCK => Some(RegistrationError::NotASocket),
            codes::WSAEALREADY => Some(RegistrationError::RemovePending),
            codes::ERROR_NOT_FOUND => Some(RegistrationError::NotFound),
            codes::WSAENOBUFS => Some(RegistrationError::NoBuffers),
            _ => None,
        }
    }
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RegistrationError::InvalidArgument => {
                "invalid operation, filter or trigger (ENABLE needs exactly one of LEVEL/EDGE, \
                 at most one of ONESHOT/PERSISTENT, filter bits within IN|OUT|HANGUP)"
            }
            RegistrationError::NotASocket => "the descriptor is not an open socket",
            RegistrationError::OtherPort => {
                "the socket is registered with another completion port; REMOVE it there first"
            }
            RegistrationError::RemovePending => "the registration is being removed; dequeue its REMOVE packet first",
            RegistrationError::NotFound => "the socket has no registration to remove",
            RegistrationError::NoBuffers => "out of resources",
        })
    }
}

impl std::error::Error for RegistrationError {}

/// A [`RegistrationError`] as an [`io::Error`], for `?` in functions returning `io::Result`.
///
/// The kind: [`InvalidArgument`](RegistrationError::InvalidArgument) and
/// [`NotASocket`](RegistrationError::NotASocket) → `InvalidInput`;
/// [`OtherPort`](RegistrationError::OtherPort) (the socket belongs to another port) →
/// `AlreadyExists`; [`RemovePending`](RegistrationError::RemovePending) → `Other` (retry once
/// the REMOVE packet was dequeued); [`NotFound`](RegistrationError::NotFound) → `NotFound`;
/// [`NoBuffers`](RegistrationError::NoBuffers) → `OutOfMemory`. The `RegistrationError` is the
/// payload (its Windows code stays reachable through [`io::Error::get_ref`]); a Windows code
/// is never passed off as an errno value.
///
/// ```
/// use socknotify::{CompletionPort, Registration, RegistrationError};
/// use std::io;
/// let port = CompletionPort::new()?;
/// let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// let mut regs = [Registration::remove(&s)];
/// port.process(&mut regs, &mut [], Some(std::time::Duration::ZERO))?;
/// let e = io::Error::from(regs[0].result().unwrap_err());
/// assert_eq!(e.kind(), io::ErrorKind::NotFound);
/// let inner = e.get_ref().and_then(|i| i.downcast_ref::<RegistrationError>()).unwrap();
/// assert_eq!(inner.code(), socknotify::codes::ERROR_NOT_FOUND);
/// # Ok::<(), io::Error>(())
/// ```
impl From<RegistrationError> for io::Error {
    /// Wraps `e` with the kind described above.
    ///
    /// ```
    /// use socknotify::RegistrationError;
    /// let e = std::io::Error::from(RegistrationError::OtherPort);
    /// assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    /// assert_eq!(e.raw_os_error(), None);
    /// ```
    fn from(e: RegistrationError) -> io::Error {
        let kind = match e {
            RegistrationError::InvalidArgument | RegistrationError::NotASocket => io::ErrorKind::InvalidInput,
            RegistrationError::OtherPort => io::ErrorKind::AlreadyExists,
            RegistrationError::RemovePending => io::ErrorKind::Other,
            RegistrationError::NotFound => io::ErrorKind::NotFound,
            RegistrationError::NoBuffers => io::ErrorKind::OutOfMemory,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_the_windows_code_and_never_pose_as_errno() {
        let all = [
            (Error::InvalidArgument("x"), io::ErrorKind::InvalidInput),
            (Error::InvalidHandle, io::ErrorKind::BrokenPipe),
            (Error::Abandoned, io::ErrorKind::BrokenPipe),
            (Error::NoBuffers, io::ErrorKind::OutOfMemory),
            (Error::Io(io::Error::new(io::ErrorKind::PermissionDenied, "no")), io::ErrorKind::PermissionDenied),
        ];
        for (e, kind) in all {
            let code = e.code();
            let text = e.to_string();
            let io = io::Error::from(e);
            assert_eq!(io.kind(), kind, "{text}");
            assert_eq!(io.raw_os_error(), None, "{text}");
            assert_eq!(io.to_string(), text);
            let back = io.get_ref().and_then(|i| i.downcast_ref::<Error>()).expect("the payload is the Error");
            assert_eq!(back.code(), code);
        }
        let regs = [
            RegistrationError::InvalidArgument,
            RegistrationError::NotASocket,
            RegistrationError::OtherPort,
            RegistrationError::RemovePending,
            RegistrationError::NotFound,
            RegistrationError::NoBuffers,
        ];
        for r in regs {
            let io = io::Error::from(r);
            assert_eq!(io.raw_os_error(), None);
            assert_eq!(io.get_ref().and_then(|i| i.downcast_ref::<RegistrationError>()), Some(&r));
            assert_eq!(io.to_string(), r.to_string());
        }
        assert_eq!(io::Error::from(RegistrationError::NoBuffers).kind(), io::ErrorKind::OutOfMemory);
        assert_eq!(io::Error::from(RegistrationError::NotASocket).kind(), io::ErrorKind::InvalidInput);
    }
}
