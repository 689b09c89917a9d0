//! Floor 4, the `windows-sys`-shaped front end: the completion-port and socket-notification
//! calls with the names, types and signatures of the `windows-sys` crate
//! (`Win32::Networking::WinSock`, `Win32::System::IO`, `Win32::System::Threading`,
//! `Win32::Foundation`), as `unsafe fn`s over raw pointers and [`HANDLE`]s, so that a crate
//! written against `windows-sys` builds on Linux by changing its `use` lines only:
//!
//! ```text
//! -use windows_sys::Win32::Foundation::{CloseHandle, GetLastError, HANDLE, INVALID_HANDLE_VALUE};
//! -use windows_sys::Win32::Networking::WinSock::*;
//! -use windows_sys::Win32::System::IO::*;
//! +use socknotify::windows_sys::Win32::Foundation::{CloseHandle, GetLastError, HANDLE, INVALID_HANDLE_VALUE};
//! +use socknotify::windows_sys::Win32::Networking::WinSock::*;
//! +use socknotify::windows_sys::Win32::System::IO::*;
//! ```
//!
//! (and `windows_sys::core::BOOL` → `socknotify::windows_sys::core::BOOL`). Everything is also
//! available flat (`use socknotify::windows_sys::*`). The types are
//! `windows-sys`'s: `completionKey` is a `*mut c_void`, `lpOverlapped` a `*mut OVERLAPPED`,
//! the `SOCK_NOTIFY_*` constants `u32` (so the struct fields take them with `as _`, as with
//! `windows-sys`), the `WSAE*` codes `i32` (`WSA_ERROR`, what [`WSAGetLastError`] returns),
//! the `ERROR_*` codes `u32` (`WIN32_ERROR`). Their values come from [`crate::codes`] and
//! [`crate::winsock`], the crate's one table.
//!
//! Handles name completion ports and threads in one process-wide table (shared with the C API
//! of socknotify-c, which calls these functions); a handle value is never reused, so a stale
//! handle fails with `ERROR_INVALID_HANDLE`. [`completion_port`] gives the
//! [`CompletionPort`](crate::CompletionPort) behind a handle, to use the safe API on it. The
//! last error is per thread ([`GetLastError`] and [`WSAGetLastError`] read the same value).
//!
//! This layer adds no behaviour: [`ProcessSocketNotifications`] checks the call's shape once
//! ([`CallShape::validate`](crate::winsock::CallShape::validate)), turns the checked pointers
//! into slices (the `sys` floor's pointer layer) and calls
//! [`winsock::process_validated`](crate::winsock::process_validated), as the safe
//! [`winsock::ProcessSocketNotifications`](crate::winsock::ProcessSocketNotifications) does.
//! Its `unsafe` is limited to declaring the `unsafe fn`s and forwarding their callers'
//! contracts to the `sys` floor's checked conversions, each block with a `SAFETY:` comment.
//!
//! ```
//! use socknotify::windows_sys::Win32::Foundation::*;
//! use socknotify::windows_sys::Win32::Networking::WinSock::*;
//! use socknotify::windows_sys::Win32::System::IO::*;
//! use std::os::fd::AsRawFd;
//!
//! unsafe {
//!     let port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 0);
//!     assert!(!port.is_null());
//!     let (sock, peer) = std::os::unix::net::UnixStream::pair().unwrap();
//!     let mut reg = SOCK_NOTIFY_REGISTRATION {
//!         socket: sock.as_raw_fd() as SOCKET,
//!         completionKey: 7 as _,
//!         eventFilter: SOCK_NOTIFY_REGISTER_EVENT_IN as _,
//!         operation: SOCK_NOTIFY_OP_ENABLE as _,
//!         triggerFlags: (SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_PERSISTENT) as _,
//!         registrationResult: 0,
//!     };
//!     let rc = ProcessSocketNotifications(port, 1, &mut reg, 0, 0, std::ptr::null_mut(), std::ptr::null_mut());
//!     assert_eq!((rc, reg.registrationResult), (ERROR_SUCCESS, ERROR_SUCCESS));
//!
//!     std::io::Write::write_all(&mut &peer, b"ping").unwrap();
//!     let mut entries = [OVERLAPPED_ENTRY::default(); 8];
//!     let mut n = 0u32;
//!     assert_eq!(GetQueuedCompletionStatusEx(port, entries.as_mut_ptr(), 8, &mut n, 5000, FALSE), TRUE);
//!     assert_eq!((n, entries[0].lpCompletionKey), (1, 7));
//!
//!     // REMOVE: the registration's last packet carries SOCK_NOTIFY_EVENT_REMOVE.
//!     reg.operation = SOCK_NOTIFY_OP_REMOVE as _;
//!     let rc = ProcessSocketNotifications(port, 1, &mut reg, 5000, 8, entries.as_mut_ptr(), &mut n);
//!     assert_eq!(rc, ERROR_SUCCESS);
//!     let last = &entries[n as usize - 1];
//!     assert_ne!(SocketNotificationRetrieveEvents(last) & SOCK_NOTIFY_EVENT_REMOVE, 0);
//!
//!     assert_eq!(CloseHandle(port), TRUE);
//!     assert_eq!(CloseHandle(port), FALSE);
//!     assert_eq!(GetLastError(), ERROR_INVALID_HANDLE);
//! }
//! ```
#![allow(non_snake_case, non_camel_case_types)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod errors;
mod handles;
mod iocp;
mod psn;
mod sockets;
mod thread;
mod threads;

use crate::abi::codes;
use crate::abi::windows as ws;
use std::ffi::c_void;

pub use crate::abi::win32::{
    BOOL, HANDLE, OVERLAPPED, OVERLAPPED_0, OVERLAPPED_0_0, OVERLAPPED_ENTRY, SECURITY_ATTRIBUTES, SOCKET,
    SOCK_NOTIFY_REGISTRATION,
};
pub use errors::{GetLastError, SetLastError, WSAGetLastError, WSASetLastError};
pub use iocp::{
    completion_port, socknotify_GetPortDescriptor, socknotify_GetPortStats, socknotify_SetPortOptions, CloseHandle,
    CreateIoCompletionPort, GetQueuedCompletionStatus, GetQueuedCompletionStatusEx, PostQueuedCompletionStatus,
    SOCKNOTIFY_PORT_CLOSES_THROUGH_PORT, SOCKNOTIFY_PORT_STATS,
};
pub use psn::{ProcessSocketNotifications, SocketNotificationRetrieveEvents};
pub use sockets::closesocket;
pub use threads::{CreateThread, GetExitCodeThread, WaitForMultipleObjects, WaitForSingleObject};

/// A Win32 error code (`GetLastError`, the `ERROR_*` constants).
///
/// ```
/// let e: socknotify::windows_sys::WIN32_ERROR = socknotify::windows_sys::ERROR_NOT_FOUND;
/// assert_eq!(e, 1168);
/// ```
pub type WIN32_ERROR = u32;
/// A Winsock error code (`WSAGetLastError`, the `WSAE*` constants).
///
/// ```
/// let e: socknotify::windows_sys::WSA_ERROR = socknotify::windows_sys::WSAEINVAL;
/// assert_eq!(e, 10022);
/// ```
pub type WSA_ERROR = i32;
/// What a wait returns (`WAIT_OBJECT_0`, `WAIT_TIMEOUT`, `WAIT_FAILED`).
///
/// ```
/// let w: socknotify::windows_sys::WAIT_EVENT = socknotify::windows_sys::WAIT_TIMEOUT;
/// assert_eq!(w, 258);
/// ```
pub type WAIT_EVENT = u32;
/// An NT status (`STILL_ACTIVE`).
///
/// ```
/// let s: socknotify::windows_sys::NTSTATUS = socknotify::windows_sys::STILL_ACTIVE;
/// assert_eq!(s, 259);
/// ```
pub type NTSTATUS = i32;
/// `CreateThread`'s creation flags.
///
/// ```
/// let f: socknotify::windows_sys::THREAD_CREATION_FLAGS = socknotify::windows_sys::STACK_SIZE_PARAM_IS_A_RESERVATION;
/// assert_eq!(f, 0x1_0000);
/// ```
pub type THREAD_CREATION_FLAGS = u32;
/// A thread's start routine: `DWORD WINAPI f(LPVOID)`.
///
/// ```
/// unsafe extern "system" fn worker(_param: *mut std::ffi::c_void) -> u32 {
///     0
/// }
/// let routine: socknotify::windows_sys::LPTHREAD_START_ROUTINE = Some(worker);
/// assert!(routine.is_some());
/// ```
pub type LPTHREAD_START_ROUTINE = Option<unsafe extern "system" fn(lpthreadparameter: *mut c_void) -> u32>;

/// `BOOL` true.
///
/// ```
/// assert_eq!(socknotify::windows_sys::TRUE, 1);
/// ```
pub const TRUE: BOOL = 1;
/// `BOOL` false.
///
/// ```
/// assert_eq!(socknotify::windows_sys::FALSE, 0);
/// ```
pub const FALSE: BOOL = 0;
/// `(HANDLE)-1`: `CreateIoCompletionPort`'s `filehandle` for creating a port. Never a valid
/// handle.
///
/// ```
/// assert_eq!(socknotify::windows_sys::INVALID_HANDLE_VALUE as isize, -1);
/// ```
pub const INVALID_HANDLE_VALUE: HANDLE = usize::MAX as HANDLE;
/// The value of an invalid socket (`~(UINT_PTR)0`).
///
/// ```
/// assert_eq!(socknotify::windows_sys::INVALID_SOCKET, usize::MAX);
/// ```
pub const INVALID_SOCKET: SOCKET = ws::INVALID_SOCKET;
/// `closesocket`'s failure result.
///
/// ```
/// assert_eq!(socknotify::windows_sys::SOCKET_ERROR, -1);
/// ```
pub const SOCKET_ERROR: i32 = -1;
/// Wait forever (a timeout in milliseconds).
///
/// ```
/// assert_eq!(socknotify::windows_sys::INFINITE, u32::MAX);
/// ```
pub const INFINITE: u32 = ws::INFINITE;
/// `WaitForSingleObject`/`WaitForMultipleObjects`: the (first) object is signalled.
///
/// ```
/// assert_eq!(socknotify::windows_sys::WAIT_OBJECT_0, 0);
/// ```
pub const WAIT_OBJECT_0: WAIT_EVENT = 0;
/// `WaitForSingleObject`/`WaitForMultipleObjects`: the call failed (see `GetLastError`).
///
/// ```
/// assert_eq!(socknotify::windows_sys::WAIT_FAILED, u32::MAX);
/// ```
pub const WAIT_FAILED: WAIT_EVENT = 0xFFFF_FFFF;
/// `GetExitCodeThread`: the thread has not returned yet.
///
/// ```
/// assert_eq!(socknotify::windows_sys::STILL_ACTIVE, 259);
/// ```
pub const STILL_ACTIVE: NTSTATUS = 259;
/// The most handles one `WaitForMultipleObjects` call takes.
///
/// ```
/// assert_eq!(socknotify::windows_sys::MAXIMUM_WAIT_OBJECTS, 64);
/// ```
pub const MAXIMUM_WAIT_OBJECTS: u32 = 64;
/// `CreateThread` flag: `dwstacksize` is a reservation (accepted; Linux stacks are reserved).
///
/// ```
/// assert_eq!(socknotify::windows_sys::STACK_SIZE_PARAM_IS_A_RESERVATION, 0x1_0000);
/// ```
pub const STACK_SIZE_PARAM_IS_A_RESERVATION: THREAD_CREATION_FLAGS = 0x0001_0000;
/// The request is not supported (`WaitForSingleObject` on a completion-port handle).
///
/// ```
/// assert_eq!(socknotify::windows_sys::ERROR_NOT_SUPPORTED, 50);
/// ```
pub const ERROR_NOT_SUPPORTED: WIN32_ERROR = 50;
/// Success (`NO_ERROR`, the same value as `ERROR_SUCCESS`).
///
/// ```
/// assert_eq!(socknotify::windows_sys::NO_ERROR, socknotify::windows_sys::ERROR_SUCCESS);
/// ```
pub const NO_ERROR: WIN32_ERROR = codes::ERROR_SUCCESS;

/// Constants taken from the crate's tables (`codes`, `winsock`) with `windows-sys`'s type;
/// each one's example shows the type and that the value is the table's.
macro_rules! from_table {
    ($table:ident, $path:literal; $( #[doc = $doc:literal] $name:ident: $ty:ident; )*) => { $(
        #[doc = $doc]
        #[doc = ""]
        #[doc = concat!(
            "```\nuse socknotify::windows_sys::*;\nlet v: ", stringify!($ty), " = ", stringify!($name),
            ";\nassert_eq!(i64::from(v), i64::from(", $path, "::", stringify!($name), "));\n```"
        )]
        pub const $name: $ty = $table::$name as $ty;
    )* };
}

from_table! { codes, "socknotify::codes";
    /// The call or entry succeeded.
    ERROR_SUCCESS: WIN32_ERROR;
    /// The handle is not a live port (or thread) handle.
    ERROR_INVALID_HANDLE: WIN32_ERROR;
    /// Out of memory (a thread could not be created).
    ERROR_NOT_ENOUGH_MEMORY: WIN32_ERROR;
    /// A completion-port argument is invalid.
    ERROR_INVALID_PARAMETER: WIN32_ERROR;
    /// The port was closed while the thread waited on it.
    ERROR_ABANDONED_WAIT_0: WIN32_ERROR;
    /// Overlapped I/O is in progress (never produced).
    ERROR_IO_PENDING: WIN32_ERROR;
    /// REMOVE of a socket that has no registration.
    ERROR_NOT_FOUND: WIN32_ERROR;
    /// An internal failure (the C API returns it for a panic caught at its boundary).
    ERROR_INTERNAL_ERROR: WIN32_ERROR;
    /// The timeout code named in the documentation of `timeoutMs` (never returned).
    ERROR_TIMEOUT: WIN32_ERROR;
    /// Nothing was dequeued before the timeout.
    WAIT_TIMEOUT: WAIT_EVENT;
    /// An alertable wait was interrupted by an APC (never produced on Linux).
    WAIT_IO_COMPLETION: WAIT_EVENT;
    /// Base of the `WSAE*` codes.
    WSABASEERR: WSA_ERROR;
    /// Bad descriptor.
    WSAEBADF: WSA_ERROR;
    /// A required pointer is NULL, or a pointer is misaligned.
    WSAEFAULT: WSA_ERROR;
    /// Invalid argument (call shape, operation, filter, trigger; socket of another port).
    WSAEINVAL: WSA_ERROR;
    /// A non-blocking operation would block.
    WSAEWOULDBLOCK: WSA_ERROR;
    /// The registration is waiting for its REMOVE packet.
    WSAEALREADY: WSA_ERROR;
    /// The descriptor is not an open socket.
    WSAENOTSOCK: WSA_ERROR;
    /// Operation not supported.
    WSAEOPNOTSUPP: WSA_ERROR;
    /// Connection reset by peer.
    WSAECONNRESET: WSA_ERROR;
    /// Out of resources.
    WSAENOBUFS: WSA_ERROR;
    /// Socket not connected.
    WSAENOTCONN: WSA_ERROR;
    /// Connection refused.
    WSAECONNREFUSED: WSA_ERROR;
    /// Winsock not initialised (never produced).
    WSANOTINITIALISED: WSA_ERROR;
}

from_table! { ws, "socknotify::winsock";
    /// Filter: nothing requested (only ERR can be delivered).
    SOCK_NOTIFY_REGISTER_EVENT_NONE: u32;
    /// Filter: receive or accept would not block.
    SOCK_NOTIFY_REGISTER_EVENT_IN: u32;
    /// Filter: send would not block.
    SOCK_NOTIFY_REGISTER_EVENT_OUT: u32;
    /// Filter: the stream connection was shut down by the peer or aborted.
    SOCK_NOTIFY_REGISTER_EVENT_HANGUP: u32;
    /// Filter: IN | OUT | HANGUP.
    SOCK_NOTIFY_REGISTER_EVENTS_ALL: u32;
    /// Event: IN.
    SOCK_NOTIFY_EVENT_IN: u32;
    /// Event: OUT.
    SOCK_NOTIFY_EVENT_OUT: u32;
    /// Event: HANGUP.
    SOCK_NOTIFY_EVENT_HANGUP: u32;
    /// Event: ERR, delivered whatever the filter.
    SOCK_NOTIFY_EVENT_ERR: u32;
    /// Event: REMOVE, the registration's last packet.
    SOCK_NOTIFY_EVENT_REMOVE: u32;
    /// Every event bit.
    SOCK_NOTIFY_EVENTS_ALL: u32;
    /// Operation: nothing.
    SOCK_NOTIFY_OP_NONE: u32;
    /// Operation: enable (create or re-arm).
    SOCK_NOTIFY_OP_ENABLE: u32;
    /// Operation: disable.
    SOCK_NOTIFY_OP_DISABLE: u32;
    /// Operation: remove.
    SOCK_NOTIFY_OP_REMOVE: u32;
    /// Trigger: disable at delivery.
    SOCK_NOTIFY_TRIGGER_ONESHOT: u32;
    /// Trigger: stay enabled.
    SOCK_NOTIFY_TRIGGER_PERSISTENT: u32;
    /// Trigger: level.
    SOCK_NOTIFY_TRIGGER_LEVEL: u32;
    /// Trigger: edge.
    SOCK_NOTIFY_TRIGGER_EDGE: u32;
    /// Every trigger bit.
    SOCK_NOTIFY_TRIGGER_ALL: u32;
}

/// The items under the paths `windows-sys` gives them, so that a port changes only the crate
/// at the front of its `use` lines (`windows_sys::Win32::…` → `socknotify::windows_sys::Win32::…`).
///
/// ```
/// use socknotify::windows_sys::Win32::Foundation::{CloseHandle, HANDLE, INVALID_HANDLE_VALUE, TRUE};
/// use socknotify::windows_sys::Win32::System::IO::CreateIoCompletionPort;
/// unsafe {
///     let port: HANDLE = CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 0);
///     assert_eq!(CloseHandle(port), TRUE);
/// }
/// ```
pub mod Win32 {
    /// `Win32::Foundation`: handles, `BOOL`, the last error and the `ERROR_*` codes.
    ///
    /// ```
    /// use socknotify::windows_sys::Win32::Foundation::*;
    /// unsafe { SetLastError(ERROR_NOT_FOUND) };
    /// assert_eq!(unsafe { GetLastError() }, ERROR_NOT_FOUND);
    /// ```
    pub mod Foundation {
        pub use super::super::{
            CloseHandle, GetLastError, SetLastError, BOOL, ERROR_ABANDONED_WAIT_0, ERROR_INTERNAL_ERROR,
            ERROR_INVALID_HANDLE, ERROR_INVALID_PARAMETER, ERROR_IO_PENDING, ERROR_NOT_ENOUGH_MEMORY, ERROR_NOT_FOUND,
            ERROR_NOT_SUPPORTED, ERROR_SUCCESS, ERROR_TIMEOUT, FALSE, HANDLE, INVALID_HANDLE_VALUE, NO_ERROR, NTSTATUS,
            STILL_ACTIVE, TRUE, WAIT_EVENT, WAIT_FAILED, WAIT_IO_COMPLETION, WAIT_OBJECT_0, WAIT_TIMEOUT, WIN32_ERROR,
        };
    }

    /// `Win32::Networking`.
    ///
    /// ```
    /// use socknotify::windows_sys::Win32::Networking::WinSock::SOCKET_ERROR;
    /// assert_eq!(SOCKET_ERROR, -1);
    /// ```
    pub mod Networking {
        /// `Win32::Networking::WinSock`: `ProcessSocketNotifications`, its structure and
        /// constants, `closesocket`, `WSAGetLastError` and the `WSAE*` codes.
        ///
        /// ```
        /// use socknotify::windows_sys::Win32::Networking::WinSock::*;
        /// unsafe { WSASetLastError(WSAENOBUFS) };
        /// assert_eq!(unsafe { WSAGetLastError() }, WSAENOBUFS);
        /// ```
        pub mod WinSock {
            pub use super::super::super::{
                closesocket, socknotify_SetPortOptions, ProcessSocketNotifications, SocketNotificationRetrieveEvents,
                WSAGetLastError, WSASetLastError, INVALID_SOCKET, SOCKET, SOCKET_ERROR,
                SOCKNOTIFY_PORT_CLOSES_THROUGH_PORT, SOCK_NOTIFY_EVENTS_ALL, SOCK_NOTIFY_EVENT_ERR,
                SOCK_NOTIFY_EVENT_HANGUP, SOCK_NOTIFY_EVENT_IN, SOCK_NOTIFY_EVENT_OUT, SOCK_NOTIFY_EVENT_REMOVE,
                SOCK_NOTIFY_OP_DISABLE, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_OP_NONE, SOCK_NOTIFY_OP_REMOVE,
                SOCK_NOTIFY_REGISTER_EVENTS_ALL, SOCK_NOTIFY_REGISTER_EVENT_HANGUP, SOCK_NOTIFY_REGISTER_EVENT_IN,
                SOCK_NOTIFY_REGISTER_EVENT_NONE, SOCK_NOTIFY_REGISTER_EVENT_OUT, SOCK_NOTIFY_REGISTRATION,
                SOCK_NOTIFY_TRIGGER_ALL, SOCK_NOTIFY_TRIGGER_EDGE, SOCK_NOTIFY_TRIGGER_LEVEL,
                SOCK_NOTIFY_TRIGGER_ONESHOT, SOCK_NOTIFY_TRIGGER_PERSISTENT, WSABASEERR, WSAEALREADY, WSAEBADF,
                WSAECONNREFUSED, WSAECONNRESET, WSAEFAULT, WSAEINVAL, WSAENOBUFS, WSAENOTCONN, WSAENOTSOCK,
                WSAEOPNOTSUPP, WSAEWOULDBLOCK, WSANOTINITIALISED, WSA_ERROR,
            };
        }
    }

    /// `Win32::Security`.
    ///
    /// ```
    /// let sa = socknotify::windows_sys::Win32::Security::SECURITY_ATTRIBUTES::default();
    /// assert_eq!(sa.bInheritHandle, 0);
    /// ```
    pub mod Security {
        pub use super::super::SECURITY_ATTRIBUTES;
    }

    /// `Win32::System`.
    ///
    /// ```
    /// assert_eq!(socknotify::windows_sys::Win32::System::Threading::INFINITE, u32::MAX);
    /// ```
    pub mod System {
        /// `Win32::System::IO`: completion ports and their packets.
        ///
        /// ```
        /// use socknotify::windows_sys::Win32::System::IO::*;
        /// assert!(OVERLAPPED_ENTRY::default().lpOverlapped.is_null());
        /// ```
        pub mod IO {
            pub use super::super::super::{
                CreateIoCompletionPort, GetQueuedCompletionStatus, GetQueuedCompletionStatusEx,
                PostQueuedCompletionStatus, OVERLAPPED, OVERLAPPED_0, OVERLAPPED_0_0, OVERLAPPED_ENTRY,
            };
        }

        /// `Win32::System::Threading`: threads and waits on them.
        ///
        /// ```
        /// use socknotify::windows_sys::Win32::System::Threading::*;
        /// assert_eq!(unsafe { WaitForSingleObject(std::ptr::null_mut(), 0) }, socknotify::windows_sys::WAIT_FAILED);
        /// ```
        pub mod Threading {
            pub use super::super::super::{
                CreateThread, GetExitCodeThread, WaitForMultipleObjects, WaitForSingleObject, INFINITE,
                LPTHREAD_START_ROUTINE, STACK_SIZE_PARAM_IS_A_RESERVATION, THREAD_CREATION_FLAGS,
            };
        }

        /// `Win32::System::SystemServices`: `MAXIMUM_WAIT_OBJECTS`.
        ///
        /// ```
        /// assert_eq!(socknotify::windows_sys::Win32::System::SystemServices::MAXIMUM_WAIT_OBJECTS, 64);
        /// ```
        pub mod SystemServices {
            pub use super::super::super::MAXIMUM_WAIT_OBJECTS;
        }
    }
}

/// `windows_sys::core`: `BOOL` (there since `windows-sys` 0.60; older versions have it in
/// `Win32::Foundation`, where it is too).
///
/// ```
/// let b: socknotify::windows_sys::core::BOOL = socknotify::windows_sys::TRUE;
/// assert_eq!(b, 1);
/// ```
pub mod core {
    pub use super::BOOL;
}
