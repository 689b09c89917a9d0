//! Windows' types and constants of the C boundary. The ones `windows-sys` has are the core's
//! (`socknotify::windows_sys`, with their x86_64 layouts asserted there); the C-only aliases
//! (`DWORD`, `ULONG`, ...) are here. The header `include/socknotify.h` declares the same types
//! and asserts the same numbers.

use std::ffi::c_void;

pub use socknotify::windows_sys::{
    BOOL, FALSE, HANDLE, INVALID_HANDLE_VALUE, LPTHREAD_START_ROUTINE, MAXIMUM_WAIT_OBJECTS, OVERLAPPED, OVERLAPPED_0,
    OVERLAPPED_0_0, OVERLAPPED_ENTRY, SOCKET, SOCKET_ERROR, SOCKNOTIFY_PORT_CLOSES_THROUGH_PORT,
    SOCK_NOTIFY_REGISTRATION, STACK_SIZE_PARAM_IS_A_RESERVATION, TRUE, WAIT_FAILED, WAIT_OBJECT_0,
};

/// `void *`.
pub type PVOID = *mut c_void;
/// `void *` (a thread's parameter).
pub type LPVOID = *mut c_void;
/// 32-bit unsigned.
pub type DWORD = u32;
/// 32-bit unsigned (as on Windows).
pub type ULONG = u32;
/// Pointer-sized unsigned.
pub type ULONG_PTR = usize;
/// Pointer-sized unsigned (a size).
pub type SIZE_T = usize;

const _: () = {
    use std::mem::size_of;
    assert!(size_of::<SOCKET>() == 8);
    assert!(size_of::<ULONG>() == 4);
    assert!(size_of::<DWORD>() == 4);
};
