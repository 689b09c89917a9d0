//! Windows' types as the `windows-sys` crate spells them: raw pointers where the C headers
//! have pointers (`HANDLE`, `completionKey`, `lpOverlapped`), 32-bit integers for the flags.
//! They have exactly the layouts of [`super::windows`]'s types (asserted below), so the
//! `sys` floor can view one as the other without copying.
//!
//! Nothing here does anything; the front end [`crate::windows_sys`] names these types and
//! the calls that take them.
#![allow(non_snake_case, non_camel_case_types)]

use super::windows;
use std::ffi::c_void;
use std::ptr::null_mut;

/// An object handle (`void *`): a completion port or a thread.
pub type HANDLE = *mut c_void;
/// A C `BOOL`: 0 is false, anything else true.
pub type BOOL = i32;
/// A socket: the descriptor number, widened (`UINT_PTR`).
pub type SOCKET = usize;

/// `OVERLAPPED` (`minwinbase.h`). socknotify never reads or writes one: only its address
/// travels, from `PostQueuedCompletionStatus` to the dequeued packet.
///
/// ```
/// use socknotify::windows_sys::OVERLAPPED;
/// let ov = OVERLAPPED::default();
/// assert_eq!((ov.Internal, ov.InternalHigh), (0, 0));
/// assert!(ov.hEvent.is_null());
/// ```
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OVERLAPPED {
    /// Reserved status.
    pub Internal: usize,
    /// Reserved byte count.
    pub InternalHigh: usize,
    /// The file offset, or a reserved pointer.
    pub Anonymous: OVERLAPPED_0,
    /// An event handle.
    pub hEvent: HANDLE,
}

/// The union inside [`OVERLAPPED`].
///
/// ```
/// use socknotify::windows_sys::{OVERLAPPED, OVERLAPPED_0, OVERLAPPED_0_0};
/// let ov = OVERLAPPED {
///     Anonymous: OVERLAPPED_0 { Anonymous: OVERLAPPED_0_0 { Offset: 4096, OffsetHigh: 0 } },
///     ..OVERLAPPED::default()
/// };
/// assert_eq!(std::mem::size_of_val(&ov.Anonymous), 8);
/// ```
#[repr(C)]
#[derive(Clone, Copy)]
pub union OVERLAPPED_0 {
    /// The offset halves.
    pub Anonymous: OVERLAPPED_0_0,
    /// A reserved pointer.
    pub Pointer: *mut c_void,
}

/// The offset halves inside [`OVERLAPPED_0`].
///
/// ```
/// let o = socknotify::windows_sys::OVERLAPPED_0_0 { Offset: 1, OffsetHigh: 2 };
/// assert_eq!(o.OffsetHigh, 2);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OVERLAPPED_0_0 {
    /// Low half.
    pub Offset: u32,
    /// High half.
    pub OffsetHigh: u32,
}

impl Default for OVERLAPPED_0 {
    fn default() -> Self {
        OVERLAPPED_0 { Pointer: null_mut() }
    }
}

impl Default for OVERLAPPED {
    fn default() -> Self {
        OVERLAPPED { Internal: 0, InternalHigh: 0, Anonymous: OVERLAPPED_0::default(), hEvent: null_mut() }
    }
}

/// One dequeued packet (`minwinbase.h`), as `windows_sys::Win32::System::IO` has it.
/// A notification carries its event mask in `dwNumberOfBytesTransferred`, a NULL
/// `lpOverlapped` and `Internal` 0; a posted packet comes back exactly as posted.
///
/// ```
/// use socknotify::windows_sys::OVERLAPPED_ENTRY;
/// let e = OVERLAPPED_ENTRY::default();
/// assert!(e.lpOverlapped.is_null());
/// assert_eq!(std::mem::size_of::<OVERLAPPED_ENTRY>(), 32);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OVERLAPPED_ENTRY {
    /// The completion key.
    pub lpCompletionKey: usize,
    /// The posted `OVERLAPPED` address; NULL for notifications.
    pub lpOverlapped: *mut OVERLAPPED,
    /// Reserved (a status); 0 for notifications.
    pub Internal: usize,
    /// The posted byte count; for a notification, the event mask.
    pub dwNumberOfBytesTransferred: u32,
}

impl Default for OVERLAPPED_ENTRY {
    fn default() -> Self {
        OVERLAPPED_ENTRY { lpCompletionKey: 0, lpOverlapped: null_mut(), Internal: 0, dwNumberOfBytesTransferred: 0 }
    }
}

/// One registration request (`winsock2.h`), as `windows_sys::Win32::Networking::WinSock` has
/// it. Only `registrationResult` is written by the call.
///
/// ```
/// use socknotify::windows_sys::*;
/// let r = SOCK_NOTIFY_REGISTRATION {
///     socket: 5,
///     completionKey: 42 as _,
///     eventFilter: SOCK_NOTIFY_REGISTER_EVENT_IN as _,
///     operation: SOCK_NOTIFY_OP_ENABLE as _,
///     triggerFlags: (SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT) as _,
///     registrationResult: 0,
/// };
/// assert_eq!(r.completionKey as usize, 42);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SOCK_NOTIFY_REGISTRATION {
    /// The socket (its descriptor number).
    pub socket: SOCKET,
    /// The completion key (`PVOID`), fixed when the registration is created.
    pub completionKey: *mut c_void,
    /// `SOCK_NOTIFY_REGISTER_EVENT_*` bits (ENABLE only).
    pub eventFilter: u16,
    /// One `SOCK_NOTIFY_OP_*` value.
    pub operation: u8,
    /// `SOCK_NOTIFY_TRIGGER_*` bits (ENABLE only).
    pub triggerFlags: u8,
    /// Out: 0 or the entry's error code.
    pub registrationResult: u32,
}

impl Default for SOCK_NOTIFY_REGISTRATION {
    fn default() -> Self {
        SOCK_NOTIFY_REGISTRATION {
            socket: 0,
            completionKey: null_mut(),
            eventFilter: 0,
            operation: 0,
            triggerFlags: 0,
            registrationResult: 0,
        }
    }
}

/// `SECURITY_ATTRIBUTES` (`CreateThread`'s first argument; accepted and ignored).
///
/// ```
/// let sa = socknotify::windows_sys::SECURITY_ATTRIBUTES::default();
/// assert!(sa.lpSecurityDescriptor.is_null());
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SECURITY_ATTRIBUTES {
    /// The structure's size in bytes.
    pub nLength: u32,
    /// A security descriptor.
    pub lpSecurityDescriptor: *mut c_void,
    /// Whether the handle is inherited by child processes.
    pub bInheritHandle: BOOL,
}

impl Default for SECURITY_ATTRIBUTES {
    fn default() -> Self {
        SECURITY_ATTRIBUTES { nLength: 0, lpSecurityDescriptor: null_mut(), bInheritHandle: 0 }
    }
}

// The x86_64 layouts (the C header asserts the same numbers), and the equality with the
// `usize`-spelled types of `abi::windows` that `sys::cast` relies on.
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<usize>() == 8, "socknotify supports 64-bit targets only");
    assert!(size_of::<OVERLAPPED>() == 32);
    assert!(align_of::<OVERLAPPED>() == 8);
    assert!(offset_of!(OVERLAPPED, Internal) == 0);
    assert!(offset_of!(OVERLAPPED, InternalHigh) == 8);
    assert!(offset_of!(OVERLAPPED, Anonymous) == 16);
    assert!(offset_of!(OVERLAPPED, hEvent) == 24);
    assert!(size_of::<OVERLAPPED_0>() == 8);
    assert!(offset_of!(OVERLAPPED_0_0, OffsetHigh) == 4);
    assert!(size_of::<HANDLE>() == 8);
    assert!(size_of::<BOOL>() == 4);

    assert!(size_of::<OVERLAPPED_ENTRY>() == size_of::<windows::OVERLAPPED_ENTRY>());
    assert!(align_of::<OVERLAPPED_ENTRY>() == align_of::<windows::OVERLAPPED_ENTRY>());
    assert!(offset_of!(OVERLAPPED_ENTRY, lpCompletionKey) == offset_of!(windows::OVERLAPPED_ENTRY, lpCompletionKey));
    assert!(offset_of!(OVERLAPPED_ENTRY, lpOverlapped) == offset_of!(windows::OVERLAPPED_ENTRY, lpOverlapped));
    assert!(offset_of!(OVERLAPPED_ENTRY, Internal) == offset_of!(windows::OVERLAPPED_ENTRY, Internal));
    assert!(
        offset_of!(OVERLAPPED_ENTRY, dwNumberOfBytesTransferred)
            == offset_of!(windows::OVERLAPPED_ENTRY, dwNumberOfBytesTransferred)
    );
    assert!(size_of::<*mut OVERLAPPED>() == size_of::<usize>());

    assert!(size_of::<SOCK_NOTIFY_REGISTRATION>() == size_of::<windows::SOCK_NOTIFY_REGISTRATION>());
    assert!(align_of::<SOCK_NOTIFY_REGISTRATION>() == align_of::<windows::SOCK_NOTIFY_REGISTRATION>());
    assert!(offset_of!(SOCK_NOTIFY_REGISTRATION, socket) == offset_of!(windows::SOCK_NOTIFY_REGISTRATION, socket));
    assert!(
        offset_of!(SOCK_NOTIFY_REGISTRATION, completionKey)
            == offset_of!(windows::SOCK_NOTIFY_REGISTRATION, completionKey)
    );
    assert!(
        offset_of!(SOCK_NOTIFY_REGISTRATION, eventFilter) == offset_of!(windows::SOCK_NOTIFY_REGISTRATION, eventFilter)
    );
    assert!(
        offset_of!(SOCK_NOTIFY_REGISTRATION, operation) == offset_of!(windows::SOCK_NOTIFY_REGISTRATION, operation)
    );
    assert!(
        offset_of!(SOCK_NOTIFY_REGISTRATION, triggerFlags)
            == offset_of!(windows::SOCK_NOTIFY_REGISTRATION, triggerFlags)
    );
    assert!(
        offset_of!(SOCK_NOTIFY_REGISTRATION, registrationResult)
            == offset_of!(windows::SOCK_NOTIFY_REGISTRATION, registrationResult)
    );
    assert!(size_of::<*mut c_void>() == size_of::<usize>());
};
