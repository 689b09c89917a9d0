//! Windows' names, values and layouts (`winsock2.h`, `minwinbase.h`): the ground floor that
//! every other part of the crate builds on. Nothing here does anything; it only names.
//!
//! The safe types ([`Events`](crate::Events), [`Trigger`](crate::Trigger),
//! [`Completion`](crate::Completion)) take their values from these constants, and the layouts
//! are asserted at compile time.
#![allow(non_snake_case, non_camel_case_types)]

use super::completion::Completion;

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
