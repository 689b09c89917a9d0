//! Completion ports: `CreateIoCompletionPort`, `PostQueuedCompletionStatus`,
//! `GetQueuedCompletionStatus(Ex)`, `CloseHandle` and `socknotify_SetPortOptions`, each the
//! core's `socknotify::windows_sys` call of the same name.

use super::guard_or;
use crate::types::*;
use socknotify::windows_sys as ws;
use std::ptr::null_mut;

/// `CreateIoCompletionPort`: only the creation form (`FileHandle == INVALID_HANDLE_VALUE`,
/// `ExistingCompletionPort == NULL`) is supported; any other form returns NULL with
/// `ERROR_INVALID_PARAMETER`. `CompletionKey` is ignored (as on Windows for creation).
#[no_mangle]
pub extern "C" fn CreateIoCompletionPort(
    FileHandle: HANDLE,
    ExistingCompletionPort: HANDLE,
    CompletionKey: ULONG_PTR,
    NumberOfConcurrentThreads: DWORD,
) -> HANDLE {
    // SAFETY: no pointer is dereferenced (the handles are looked up in the table).
    guard_or(null_mut(), || unsafe {
        ws::CreateIoCompletionPort(FileHandle, ExistingCompletionPort, CompletionKey, NumberOfConcurrentThreads)
    })
}

/// `PostQueuedCompletionStatus`: queues `{key, overlapped, 0, bytes}` unchanged.
#[no_mangle]
pub extern "C" fn PostQueuedCompletionStatus(
    CompletionPort: HANDLE,
    dwNumberOfBytesTransferred: DWORD,
    dwCompletionKey: ULONG_PTR,
    lpOverlapped: *mut OVERLAPPED,
) -> BOOL {
    // SAFETY: `lpOverlapped` is never dereferenced (only its address travels).
    guard_or(FALSE, || unsafe {
        ws::PostQueuedCompletionStatus(CompletionPort, dwNumberOfBytesTransferred, dwCompletionKey, lpOverlapped)
    })
}

/// `GetQueuedCompletionStatus`: dequeues one packet (see the header for the results).
///
/// # Safety
///
/// Each output pointer must be NULL or valid for writing its type for the duration of the
/// call (NULL or misaligned ones are refused with `ERROR_INVALID_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn GetQueuedCompletionStatus(
    CompletionPort: HANDLE,
    lpNumberOfBytesTransferred: *mut DWORD,
    lpCompletionKey: *mut ULONG_PTR,
    lpOverlapped: *mut *mut OVERLAPPED,
    dwMilliseconds: DWORD,
) -> BOOL {
    // SAFETY: forwarded contract (the same as the core call's). A panic after the core wrote
    // NULL to *lpOverlapped (its first step) leaves it NULL, as any failure does.
    guard_or(FALSE, || unsafe {
        ws::GetQueuedCompletionStatus(
            CompletionPort,
            lpNumberOfBytesTransferred,
            lpCompletionKey,
            lpOverlapped,
            dwMilliseconds,
        )
    })
}

/// `GetQueuedCompletionStatusEx`: dequeues up to `ulCount` packets. `fAlertable` has no
/// effect (Linux has no APCs).
///
/// # Safety
///
/// `lpCompletionPortEntries` must be NULL or valid for writing `ulCount` entries, and
/// `ulNumEntriesRemoved` NULL or valid for writing one ULONG, for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn GetQueuedCompletionStatusEx(
    CompletionPort: HANDLE,
    lpCompletionPortEntries: *mut OVERLAPPED_ENTRY,
    ulCount: ULONG,
    ulNumEntriesRemoved: *mut ULONG,
    dwMilliseconds: DWORD,
    fAlertable: BOOL,
) -> BOOL {
    // SAFETY: forwarded contract (the same as the core call's).
    guard_or(FALSE, || unsafe {
        ws::GetQueuedCompletionStatusEx(
            CompletionPort,
            lpCompletionPortEntries,
            ulCount,
            ulNumEntriesRemoved,
            dwMilliseconds,
            fAlertable,
        )
    })
}

/// `CloseHandle`: closes a completion port (waking its waiters) or releases a thread handle
/// (the thread runs on), and retires the handle.
#[no_mangle]
pub extern "C" fn CloseHandle(hObject: HANDLE) -> BOOL {
    // SAFETY: no pointer is dereferenced (the handle is looked up in the table).
    guard_or(FALSE, || unsafe { ws::CloseHandle(hObject) })
}

/// `socknotify_SetPortOptions`: port options, before the port's first registration (see the
/// header). Unknown bits, or a port that already had a registration: `ERROR_INVALID_PARAMETER`.
#[no_mangle]
pub extern "C" fn socknotify_SetPortOptions(CompletionPort: HANDLE, options: DWORD) -> BOOL {
    // SAFETY: no pointer is dereferenced (the handle is looked up in the table).
    guard_or(FALSE, || unsafe { ws::socknotify_SetPortOptions(CompletionPort, options) })
}

/// `socknotify_GetPortDescriptor`: the port's descriptor for another event loop (see the
/// header); -1 with `ERROR_INVALID_HANDLE` for anything but a live port.
#[no_mangle]
pub extern "C" fn socknotify_GetPortDescriptor(CompletionPort: HANDLE) -> std::ffi::c_int {
    // SAFETY: no pointer is dereferenced (the handle is looked up in the table).
    guard_or(-1, || unsafe { ws::socknotify_GetPortDescriptor(CompletionPort) })
}

/// `socknotify_GetPortStats`: a snapshot of the port into `*stats` (see the header).
///
/// # Safety
///
/// `stats` must be NULL or valid for writes of one `SOCKNOTIFY_PORT_STATS`.
#[no_mangle]
pub unsafe extern "C" fn socknotify_GetPortStats(
    CompletionPort: HANDLE,
    stats: *mut ws::SOCKNOTIFY_PORT_STATS,
) -> BOOL {
    // SAFETY: the caller's contract on `stats` is the one the core function needs.
    guard_or(FALSE, || unsafe { ws::socknotify_GetPortStats(CompletionPort, stats) })
}
