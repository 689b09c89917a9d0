//! Windows' types and constants of the C boundary that the core crate does not define
//! (`HANDLE`, `DWORD`, `OVERLAPPED`, ...), with their x86_64 layouts asserted at compile time.
//! The header `include/socknotify.h` declares the same types and asserts the same numbers.

use std::ffi::{c_int, c_void};
use std::mem::{align_of, offset_of, size_of};

/// An opaque object handle (`void *`): a completion port or a thread.
pub type HANDLE = *mut c_void;
/// `void *`.
pub type PVOID = *mut c_void;
/// `void *` (a thread's parameter).
pub type LPVOID = *mut c_void;
/// 32-bit unsigned.
pub type DWORD = u32;
/// 32-bit unsigned (as on Windows).
pub type ULONG = u32;
/// `int`.
pub type BOOL = c_int;
/// Pointer-sized unsigned.
pub type ULONG_PTR = usize;
/// Pointer-sized unsigned (a size).
pub type SIZE_T = usize;
/// A socket: the descriptor number.
pub type SOCKET = socknotify::winsock::SOCKET;

/// BOOL true.
pub const TRUE: BOOL = 1;
/// BOOL false.
pub const FALSE: BOOL = 0;
/// `(HANDLE)-1`.
pub const INVALID_HANDLE_VALUE: HANDLE = usize::MAX as HANDLE;
/// `closesocket`'s failure result.
pub const SOCKET_ERROR: c_int = -1;
/// The request is not supported (a wait on a completion-port handle).
pub const ERROR_NOT_SUPPORTED: u32 = 50;
/// `WaitForSingleObject`/`WaitForMultipleObjects`: the (first) object is signalled.
pub const WAIT_OBJECT_0: DWORD = 0;
/// `WaitForSingleObject`/`WaitForMultipleObjects`: the call failed (see `GetLastError`).
pub const WAIT_FAILED: DWORD = 0xFFFF_FFFF;
/// `GetExitCodeThread`: the thread has not returned yet.
pub const STILL_ACTIVE: DWORD = 259;
/// The most handles one `WaitForMultipleObjects` call takes.
pub const MAXIMUM_WAIT_OBJECTS: DWORD = 64;
/// `CreateThread` flag: `dwStackSize` is a reservation (accepted; Linux stacks are reserved).
pub const STACK_SIZE_PARAM_IS_A_RESERVATION: DWORD = 0x0001_0000;

/// Windows' `OVERLAPPED` (never read or written by socknotify; only its address travels).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OVERLAPPED {
    /// Reserved status.
    pub Internal: usize,
    /// Reserved byte count.
    pub InternalHigh: usize,
    /// Offset or pointer.
    pub u: OVERLAPPED_0,
    /// Event handle.
    pub hEvent: HANDLE,
}

/// The union inside [`OVERLAPPED`].
#[repr(C)]
#[derive(Clone, Copy)]
pub union OVERLAPPED_0 {
    /// The offset halves.
    pub s: OVERLAPPED_0_0,
    /// Reserved pointer.
    pub Pointer: PVOID,
}

/// The offset halves of [`OVERLAPPED`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OVERLAPPED_0_0 {
    /// Low half.
    pub Offset: u32,
    /// High half.
    pub OffsetHigh: u32,
}

// The x86_64 layouts of the header's own types (the header asserts the same numbers on the C side).
const _: () = {
    assert!(size_of::<usize>() == 8, "socknotify-c supports 64-bit targets only");
    assert!(size_of::<OVERLAPPED>() == 32);
    assert!(align_of::<OVERLAPPED>() == 8);
    assert!(offset_of!(OVERLAPPED, Internal) == 0);
    assert!(offset_of!(OVERLAPPED, InternalHigh) == 8);
    assert!(offset_of!(OVERLAPPED, u) == 16);
    assert!(offset_of!(OVERLAPPED, hEvent) == 24);
    assert!(size_of::<OVERLAPPED_0>() == 8);
    assert!(offset_of!(OVERLAPPED_0_0, OffsetHigh) == 4);
    // OVERLAPPED_ENTRY and SOCK_NOTIFY_REGISTRATION are the core's (socknotify::winsock),
    // whose layouts are asserted there.

    assert!(size_of::<SOCKET>() == 8);
    assert!(size_of::<HANDLE>() == 8);
    assert!(size_of::<BOOL>() == 4);
    assert!(size_of::<ULONG>() == 4);
};
