//! The one table of result codes.
//!
//! Windows documents almost none of the codes that `ProcessSocketNotifications`
//! returns (spec Q4); `decisions.md` fixes them. Every code socknotify hands
//! out comes from this table, so that a code can be corrected in one place
//! when real Windows output becomes available.

/// The call or entry succeeded (`ERROR_SUCCESS` / `NO_ERROR`).
pub const ERROR_SUCCESS: u32 = 0;
/// The port handle is not a live completion port (`ERROR_INVALID_HANDLE`, D4, D6).
pub const ERROR_INVALID_HANDLE: u32 = 6;
/// Out of memory (`ERROR_NOT_ENOUGH_MEMORY`).
pub const ERROR_NOT_ENOUGH_MEMORY: u32 = 8;
/// A completion-port argument is invalid (`ERROR_INVALID_PARAMETER`).
pub const ERROR_INVALID_PARAMETER: u32 = 87;
/// An alertable wait was interrupted by an APC (`WAIT_IO_COMPLETION`); never produced on Linux.
pub const WAIT_IO_COMPLETION: u32 = 192;
/// Nothing was dequeued before the timeout (`WAIT_TIMEOUT`, D2).
pub const WAIT_TIMEOUT: u32 = 258;
/// The port was closed while the thread waited on it (`ERROR_ABANDONED_WAIT_0`, D6).
pub const ERROR_ABANDONED_WAIT_0: u32 = 735;
/// Overlapped I/O is in progress (`ERROR_IO_PENDING`); defined for completeness.
pub const ERROR_IO_PENDING: u32 = 997;
/// REMOVE of a socket that has no registration (`ERROR_NOT_FOUND`, D12).
pub const ERROR_NOT_FOUND: u32 = 1168;
/// An internal failure (the C API returns it when it catches a panic at its boundary).
pub const ERROR_INTERNAL_ERROR: u32 = 1359;
/// The timeout code named in the `timeoutMs` text of the documentation (Q2); never returned.
pub const ERROR_TIMEOUT: u32 = 1460;
/// Base of the `WSAE*` codes.
pub const WSABASEERR: u32 = 10000;
/// Bad descriptor.
pub const WSAEBADF: u32 = 10009;
/// A required pointer is NULL (V3, D4).
pub const WSAEFAULT: u32 = 10014;
/// Invalid argument: call-shape rules V1, V2, V4; bad operation, filter or trigger; socket
/// registered with another port (D4, D7, D13).
pub const WSAEINVAL: u32 = 10022;
/// A non-blocking operation would block.
pub const WSAEWOULDBLOCK: u32 = 10035;
/// The registration is waiting for its REMOVE packet (D14).
pub const WSAEALREADY: u32 = 10037;
/// The descriptor is not an open socket (D10).
pub const WSAENOTSOCK: u32 = 10038;
/// Operation not supported.
pub const WSAEOPNOTSUPP: u32 = 10045;
/// Connection reset by peer.
pub const WSAECONNRESET: u32 = 10054;
/// Out of resources (D4, V6).
pub const WSAENOBUFS: u32 = 10055;
/// Socket not connected.
pub const WSAENOTCONN: u32 = 10057;
/// Connection refused.
pub const WSAECONNREFUSED: u32 = 10061;
/// Winsock not initialised; never produced (there is no `WSAStartup` to forget on Linux).
pub const WSANOTINITIALISED: u32 = 10093;
