//! Windows' names, values and layouts, for code ported from `windows-sys` or C.
//!
//! Everything here keeps the spelling of `winsock2.h` / `minwinbase.h`, so a port of
//! Windows code reads the same. Sockets are raw descriptors (`SOCKET` = `usize`
//! holding the descriptor number), as in the C API.
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

use crate::port::CompletionPort;
use crate::types::{Completion, Entry};
use std::os::fd::RawFd;
use std::time::Duration;

pub use crate::codes::*;

/// A socket: the descriptor number, widened (`UINT_PTR` on Windows).
pub type SOCKET = usize;
/// The value of an invalid socket (`~(UINT_PTR)0`).
pub const INVALID_SOCKET: SOCKET = !0;
/// Wait forever.
pub const INFINITE: u32 = 0xFFFF_FFFF;

/// Filter: nothing requested (only ERR can be delivered, decision D8).
pub const SOCK_NOTIFY_REGISTER_EVENT_NONE: u16 = 0x00;
/// Filter: receive or accept would not block.
pub const SOCK_NOTIFY_REGISTER_EVENT_IN: u16 = 0x01;
/// Filter: send would not block.
pub const SOCK_NOTIFY_REGISTER_EVENT_OUT: u16 = 0x02;
/// Filter: the stream connection was shut down by the peer or aborted.
pub const SOCK_NOTIFY_REGISTER_EVENT_HANGUP: u16 = 0x04;
/// Filter: IN | OUT | HANGUP.
pub const SOCK_NOTIFY_REGISTER_EVENTS_ALL: u16 = 0x07;
/// Event: IN.
pub const SOCK_NOTIFY_EVENT_IN: u32 = 0x01;
/// Event: OUT.
pub const SOCK_NOTIFY_EVENT_OUT: u32 = 0x02;
/// Event: HANGUP.
pub const SOCK_NOTIFY_EVENT_HANGUP: u32 = 0x04;
/// Event: ERR, delivered whatever the filter.
pub const SOCK_NOTIFY_EVENT_ERR: u32 = 0x40;
/// Event: REMOVE, the registration's last packet.
pub const SOCK_NOTIFY_EVENT_REMOVE: u32 = 0x80;
/// Every event bit.
pub const SOCK_NOTIFY_EVENTS_ALL: u32 = 0xC7;
/// Operation: nothing.
pub const SOCK_NOTIFY_OP_NONE: u8 = 0x00;
/// Operation: enable (create or re-arm).
pub const SOCK_NOTIFY_OP_ENABLE: u8 = 0x01;
/// Operation: disable.
pub const SOCK_NOTIFY_OP_DISABLE: u8 = 0x02;
/// Operation: remove.
pub const SOCK_NOTIFY_OP_REMOVE: u8 = 0x04;
/// Trigger: disable at delivery.
pub const SOCK_NOTIFY_TRIGGER_ONESHOT: u8 = 0x01;
/// Trigger: stay enabled.
pub const SOCK_NOTIFY_TRIGGER_PERSISTENT: u8 = 0x02;
/// Trigger: level.
pub const SOCK_NOTIFY_TRIGGER_LEVEL: u8 = 0x04;
/// Trigger: edge.
pub const SOCK_NOTIFY_TRIGGER_EDGE: u8 = 0x08;
/// Every trigger bit.
pub const SOCK_NOTIFY_TRIGGER_ALL: u8 = 0x0F;

/// One registration request, laid out as in `winsock2.h` (24 bytes on x86_64).
/// Only `registrationResult` is written by the call.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SOCK_NOTIFY_REGISTRATION {
    /// The socket (its descriptor number).
    pub socket: SOCKET,
    /// The completion key, fixed when the registration is created.
    pub completionKey: usize,
    /// `SOCK_NOTIFY_REGISTER_EVENT_*` bits (ENABLE only).
    pub eventFilter: u16,
    /// One `SOCK_NOTIFY_OP_*` value.
    pub operation: u8,
    /// `SOCK_NOTIFY_TRIGGER_*` bits (ENABLE only).
    pub triggerFlags: u8,
    /// Out: 0 or the entry's error code.
    pub registrationResult: u32,
}

/// One dequeued packet, laid out as in `minwinbase.h` (32 bytes on x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OVERLAPPED_ENTRY {
    /// The completion key.
    pub lpCompletionKey: usize,
    /// The posted overlapped value; 0 for notifications.
    pub lpOverlapped: usize,
    /// Reserved (a status); 0 for notifications.
    pub Internal: usize,
    /// Posted byte count; for notifications the event mask.
    pub dwNumberOfBytesTransferred: u32,
}

const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<SOCK_NOTIFY_REGISTRATION>() == 24);
    assert!(align_of::<SOCK_NOTIFY_REGISTRATION>() == 8);
    assert!(offset_of!(SOCK_NOTIFY_REGISTRATION, socket) == 0);
    assert!(offset_of!(SOCK_NOTIFY_REGISTRATION, completionKey) == 8);
    assert!(offset_of!(SOCK_NOTIFY_REGISTRATION, eventFilter) == 16);
    assert!(offset_of!(SOCK_NOTIFY_REGISTRATION, operation) == 18);
    assert!(offset_of!(SOCK_NOTIFY_REGISTRATION, triggerFlags) == 19);
    assert!(offset_of!(SOCK_NOTIFY_REGISTRATION, registrationResult) == 20);
    assert!(size_of::<OVERLAPPED_ENTRY>() == 32);
    assert!(align_of::<OVERLAPPED_ENTRY>() == 8);
    assert!(offset_of!(OVERLAPPED_ENTRY, lpCompletionKey) == 0);
    assert!(offset_of!(OVERLAPPED_ENTRY, lpOverlapped) == 8);
    assert!(offset_of!(OVERLAPPED_ENTRY, Internal) == 16);
    assert!(offset_of!(OVERLAPPED_ENTRY, dwNumberOfBytesTransferred) == 24);
    assert!(size_of::<OVERLAPPED_ENTRY>() == size_of::<Completion>());
    assert!(align_of::<OVERLAPPED_ENTRY>() == align_of::<Completion>());
};

impl From<Completion> for OVERLAPPED_ENTRY {
    fn from(c: Completion) -> Self {
        OVERLAPPED_ENTRY {
            lpCompletionKey: c.key(),
            lpOverlapped: c.overlapped(),
            Internal: c.internal(),
            dwNumberOfBytesTransferred: c.bytes(),
        }
    }
}

impl From<OVERLAPPED_ENTRY> for Completion {
    fn from(e: OVERLAPPED_ENTRY) -> Self {
        Completion::with_internal(e.lpCompletionKey, e.dwNumberOfBytesTransferred, e.lpOverlapped, e.Internal)
    }
}

/// Views an `OVERLAPPED_ENTRY` array as [`Completion`]s (same layout, asserted above),
/// so the port writes straight into the caller's array.
///
/// ```
/// use socknotify::winsock::{as_completions, OVERLAPPED_ENTRY};
/// let mut e = [OVERLAPPED_ENTRY::default(); 2];
/// assert_eq!(as_completions(&mut e).len(), 2);
/// ```
pub fn as_completions(entries: &mut [OVERLAPPED_ENTRY]) -> &mut [Completion] {
    // SAFETY: both types are #[repr(C)] with fields of the same types at the same offsets
    // (asserted at compile time above), every bit pattern is valid for both, and the
    // returned slice borrows `entries` mutably for its whole life.
    unsafe { std::slice::from_raw_parts_mut(entries.as_mut_ptr().cast::<Completion>(), entries.len()) }
}

impl Entry for SOCK_NOTIFY_REGISTRATION {
    fn raw_fd(&self) -> RawFd {
        RawFd::try_from(self.socket).unwrap_or(-1)
    }
    fn fd_out_of_range(&self) -> bool {
        RawFd::try_from(self.socket).is_err()
    }
    fn key(&self) -> usize {
        self.completionKey
    }
    fn op(&self) -> u8 {
        self.operation
    }
    fn filter(&self) -> u16 {
        self.eventFilter
    }
    fn trigger(&self) -> u8 {
        self.triggerFlags
    }
    fn set_result(&mut self, result: Result<(), crate::error::RegistrationError>) {
        self.registrationResult = result.err().map_or(ERROR_SUCCESS, |e| e.code());
    }
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
    if let Err(code) = shape.check() {
        return code;
    }
    let regs: &mut [SOCK_NOTIFY_REGISTRATION] = registrationInfos.unwrap_or_default();
    let out: &mut [Completion] = as_completions(completionPortEntries.unwrap_or_default());
    let wants_packets = !out.is_empty();
    match completionPort.process_entries(regs, out, timeout_from_ms(timeoutMs)) {
        Ok(n) => {
            if let Some(count) = receivedEntryCount {
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
