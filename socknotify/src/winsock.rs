//! Floor 4, the Windows-shaped front end: `ProcessSocketNotifications` and Windows' names,
//! values and layouts, for code ported from `windows-sys` or C.
//!
//! Everything here keeps the spelling of `winsock2.h` / `minwinbase.h`, so a port of
//! Windows code reads the same. Sockets are raw descriptors (`SOCKET` = `usize`
//! holding the descriptor number), as in the C API. The call-shape rules (spec §3.2, V1–V4)
//! are checked here, once ([`CallShape::validate`]); the port does not check them again.
//!
//! ```
//! use socknotify::winsock::*;
//! use socknotify::CompletionPort;
//! use std::os::fd::AsRawFd;
//!
//! let port = CompletionPort::new().unwrap();
//! let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
//! let mut reg = [SOCK_NOTIFY_REGISTRATION {
//!     socket: a.as_raw_fd() as SOCKET,
//!     completionKey: 42,
//!     eventFilter: SOCK_NOTIFY_REGISTER_EVENT_IN,
//!     operation: SOCK_NOTIFY_OP_ENABLE,
//!     triggerFlags: SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT,
//!     registrationResult: 0,
//! }];
//! std::io::Write::write_all(&mut &b, b"x").unwrap();
//! let mut entries = [OVERLAPPED_ENTRY::default(); 4];
//! let mut received = 0u32;
//! let rc = ProcessSocketNotifications(&port, Some(&mut reg), 1000, Some(&mut entries), Some(&mut received));
//! assert_eq!(rc, ERROR_SUCCESS);
//! assert_eq!(reg[0].registrationResult, ERROR_SUCCESS);
//! assert_eq!(received, 1);
//! assert_eq!(entries[0].lpCompletionKey, 42);
//! assert_eq!(SocketNotificationRetrieveEvents(&entries[0]) & SOCK_NOTIFY_EVENT_IN, SOCK_NOTIFY_EVENT_IN);
//! ```
#![allow(non_snake_case, non_camel_case_types)]

use crate::abi::Completion;
use crate::port::CompletionPort;
use std::time::Duration;

pub use crate::abi::codes::*;
pub use crate::abi::windows::*;

/// Views an `OVERLAPPED_ENTRY` array as [`Completion`]s (same layout, asserted at compile time),
/// so the port writes straight into the caller's array.
///
/// ```
/// use socknotify::winsock::{as_completions, OVERLAPPED_ENTRY};
/// let mut e = [OVERLAPPED_ENTRY::default(); 2];
/// assert_eq!(as_completions(&mut e).len(), 2);
/// ```
pub fn as_completions(entries: &mut [OVERLAPPED_ENTRY]) -> &mut [Completion] {
    crate::sys::completions_mut(entries)
}

/// The shape of a `ProcessSocketNotifications` call: counts, which pointers are NULL,
/// the timeout and whether the two arrays overlap. [`CallShape::check`] applies the
/// whole-call rules V1–V4 of the spec (decision D4) before anything is changed.
///
/// ```
/// use socknotify::winsock::{CallShape, WSAEINVAL, WSAEFAULT};
/// let ok = CallShape { registration_count: 1, registrations_null: false, ..CallShape::default() };
/// assert_eq!(ok.check(), Ok(()));
/// // V1: a timeout with nowhere to put packets
/// assert_eq!(CallShape { timeout_ms: 100, ..ok }.check(), Err(WSAEINVAL));
/// // V3: packets wanted but no output array
/// assert_eq!(CallShape { completion_count: 1, entries_null: true, received_null: false, ..ok }.check(), Err(WSAEFAULT));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallShape {
    /// `registrationCount`.
    pub registration_count: u32,
    /// `registrationInfos == NULL`.
    pub registrations_null: bool,
    /// `completionCount`.
    pub completion_count: u32,
    /// `completionPortEntries == NULL`.
    pub entries_null: bool,
    /// `receivedEntryCount == NULL`.
    pub received_null: bool,
    /// `timeoutMs`.
    pub timeout_ms: u32,
    /// The registration array and the output array share memory.
    pub arrays_overlap: bool,
}

impl Default for CallShape {
    /// The shape of `ProcessSocketNotifications(port, 0, NULL, 0, 0, NULL, NULL)`.
    fn default() -> Self {
        CallShape {
            registration_count: 0,
            registrations_null: true,
            completion_count: 0,
            entries_null: true,
            received_null: true,
            timeout_ms: 0,
            arrays_overlap: false,
        }
    }
}

impl CallShape {
    /// Applies V1–V4 in order; the error is the code the call returns.
    ///
    /// ```
    /// use socknotify::winsock::CallShape;
    /// assert_eq!(CallShape::default().check(), Ok(()));
    /// ```
    pub fn check(&self) -> Result<(), u32> {
        if self.completion_count == 0 && (!self.entries_null || !self.received_null || self.timeout_ms != 0) {
            return Err(WSAEINVAL); // V1
        }
        if (self.registration_count == 0) != self.registrations_null {
            return Err(WSAEINVAL); // V2
        }
        if self.completion_count > 0 && (self.entries_null || self.received_null) {
            return Err(WSAEFAULT); // V3
        }
        if self.arrays_overlap {
            return Err(WSAEINVAL); // V4
        }
        Ok(())
    }

    /// Applies V1–V4 and, when they hold, returns the proof that they did, which
    /// [`process_validated`] takes: the rules are checked once per call, wherever it comes from.
    ///
    /// ```
    /// use socknotify::winsock::{CallShape, WSAEINVAL};
    /// assert!(CallShape::default().validate().is_ok());
    /// assert_eq!(CallShape { timeout_ms: 1, ..CallShape::default() }.validate().err(), Some(WSAEINVAL));
    /// ```
    pub fn validate(self) -> Result<ValidCall, u32> {
        self.check().map(|()| ValidCall(self))
    }
}

/// A [`CallShape`] that passed [`CallShape::validate`]; only that function makes one.
///
/// ```
/// let call = socknotify::winsock::CallShape::default().validate().unwrap();
/// assert_eq!(call.shape().completion_count, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidCall(CallShape);

impl ValidCall {
    /// The shape that was validated.
    ///
    /// ```
    /// let call = socknotify::winsock::CallShape::default().validate().unwrap();
    /// assert!(call.shape().registrations_null);
    /// ```
    pub fn shape(&self) -> CallShape {
        self.0
    }
}

/// Milliseconds as a wait: `INFINITE` waits forever.
///
/// ```
/// use socknotify::winsock::{timeout_from_ms, INFINITE};
/// assert_eq!(timeout_from_ms(INFINITE), None);
/// assert_eq!(timeout_from_ms(5), Some(std::time::Duration::from_millis(5)));
/// ```
pub fn timeout_from_ms(ms: u32) -> Option<Duration> {
    (ms != INFINITE).then(|| Duration::from_millis(u64::from(ms)))
}

/// Windows' `ProcessSocketNotifications`: applies `registrationInfos` in order (a result in
/// each entry), then dequeues up to `completionPortEntries.len()` packets.
///
/// `None` stands for a NULL pointer and the slices' lengths are the counts, so
/// `Some(&mut [])` is a non-NULL pointer with a count of 0 (invalid, V1/V2).
/// Returns `ERROR_SUCCESS`, `WAIT_TIMEOUT` (with `*receivedEntryCount = 0`), or an error
/// code after which nothing was changed (see [`crate::codes`]).
///
/// ```
/// use socknotify::winsock::*;
/// use std::os::fd::AsRawFd;
/// let port = socknotify::CompletionPort::new()?;
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// std::io::Write::write_all(&mut &b, b"x")?;
/// let mut regs = [SOCK_NOTIFY_REGISTRATION {
///     socket: a.as_raw_fd() as SOCKET,
///     completionKey: 5,
///     eventFilter: SOCK_NOTIFY_REGISTER_EVENT_IN,
///     operation: SOCK_NOTIFY_OP_ENABLE,
///     triggerFlags: SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT,
///     registrationResult: 0,
/// }];
/// let mut entries = [OVERLAPPED_ENTRY::default(); 4];
/// let mut n = 0;
/// let rc = ProcessSocketNotifications(&port, Some(&mut regs), 1000, Some(&mut entries), Some(&mut n));
/// assert_eq!((rc, n, entries[0].lpCompletionKey), (ERROR_SUCCESS, 1, 5));
/// // A timeout with nowhere to put packets is refused before anything changes (V1).
/// assert_eq!(ProcessSocketNotifications(&port, None, 10, None, None), WSAEINVAL);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn ProcessSocketNotifications(
    completionPort: &CompletionPort,
    registrationInfos: Option<&mut [SOCK_NOTIFY_REGISTRATION]>,
    timeoutMs: u32,
    completionPortEntries: Option<&mut [OVERLAPPED_ENTRY]>,
    receivedEntryCount: Option<&mut u32>,
) -> u32 {
    let shape = CallShape {
        registration_count: registrationInfos.as_ref().map_or(0, |r| u32::try_from(r.len()).unwrap_or(u32::MAX)),
        registrations_null: registrationInfos.is_none(),
        completion_count: completionPortEntries.as_ref().map_or(0, |e| u32::try_from(e.len()).unwrap_or(u32::MAX)),
        entries_null: completionPortEntries.is_none(),
        received_null: receivedEntryCount.is_none(),
        timeout_ms: timeoutMs,
        arrays_overlap: false, // two live Rust borrows cannot overlap
    };
    match shape.validate() {
        Ok(call) => process_validated(
            completionPort,
            call,
            registrationInfos.unwrap_or_default(),
            completionPortEntries.unwrap_or_default(),
            receivedEntryCount,
        ),
        Err(code) => code,
    }
}

/// `ProcessSocketNotifications` after the call's shape was validated (for callers that must
/// validate before they can form the slices, such as the C API). `registrations` and
/// `entries` are the arrays the shape describes (empty for NULL).
///
/// ```
/// use socknotify::winsock::*;
/// let port = socknotify::CompletionPort::new()?;
/// let call = CallShape::default().validate().unwrap();
/// assert_eq!(process_validated(&port, call, &mut [], &mut [], None), ERROR_SUCCESS);
/// # Ok::<(), socknotify::Error>(())
/// ```
pub fn process_validated(
    port: &CompletionPort,
    call: ValidCall,
    registrations: &mut [SOCK_NOTIFY_REGISTRATION],
    entries: &mut [OVERLAPPED_ENTRY],
    received: Option<&mut u32>,
) -> u32 {
    let out: &mut [Completion] = as_completions(entries);
    let wants_packets = !out.is_empty();
    match port.call(registrations, out, timeout_from_ms(call.shape().timeout_ms)) {
        Ok(n) => {
            if let Some(count) = received {
                *count = u32::try_from(n).unwrap_or(u32::MAX);
            }
            if wants_packets && n == 0 {
                WAIT_TIMEOUT
            } else {
                ERROR_SUCCESS
            }
        }
        Err(e) => e.code(),
    }
}

/// Windows' `SocketNotificationRetrieveEvents`: the event mask of a notification packet.
///
/// ```
/// use socknotify::winsock::*;
/// let e = OVERLAPPED_ENTRY { dwNumberOfBytesTransferred: 0x81, ..Default::default() };
/// assert_eq!(SocketNotificationRetrieveEvents(&e), SOCK_NOTIFY_EVENT_IN | SOCK_NOTIFY_EVENT_REMOVE);
/// ```
pub fn SocketNotificationRetrieveEvents(notification: &OVERLAPPED_ENTRY) -> u32 {
    notification.dwNumberOfBytesTransferred
}
