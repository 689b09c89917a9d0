//! Error types. Each maps to exactly one code of [`crate::codes`].

use super::codes;
use std::fmt;

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
