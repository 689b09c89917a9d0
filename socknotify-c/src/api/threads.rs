//! Threads for ported programs: `CreateThread`, `WaitForSingleObject`,
//! `WaitForMultipleObjects` and `GetExitCodeThread` (`CloseHandle` is in [`super::iocp`]),
//! each the core's `socknotify::windows_sys` call. Thread handles live in the same handle
//! table as ports.

use super::guard_or;
use crate::types::*;
use socknotify::windows_sys as ws;
use std::ffi::c_void;
use std::ptr::null_mut;

/// `CreateThread`: runs `lpStartAddress(lpParameter)` on a new thread and returns its handle
/// (NULL with `ERROR_INVALID_PARAMETER` for a NULL routine or a creation flag other than
/// `STACK_SIZE_PARAM_IS_A_RESERVATION`, e.g. `CREATE_SUSPENDED`; `ERROR_NOT_ENOUGH_MEMORY`
/// when the system refuses a thread). `lpThreadAttributes` is ignored; `dwStackSize` 0 means
/// the default stack. `*lpThreadId` (if not NULL) gets a process-unique, non-zero id.
///
/// # Safety
///
/// `lpStartAddress` must be safe to call with `lpParameter` on another thread, and must not
/// unwind (no C++ exception may leave it). `lpThreadId` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn CreateThread(
    lpThreadAttributes: *mut c_void,
    dwStackSize: SIZE_T,
    lpStartAddress: LPTHREAD_START_ROUTINE,
    lpParameter: LPVOID,
    dwCreationFlags: DWORD,
    lpThreadId: *mut DWORD,
) -> HANDLE {
    // SAFETY: forwarded contract (the same as the core call's; the attributes are ignored).
    guard_or(null_mut(), || unsafe {
        ws::CreateThread(
            lpThreadAttributes.cast(),
            dwStackSize,
            lpStartAddress,
            lpParameter,
            dwCreationFlags,
            lpThreadId,
        )
    })
}

/// `WaitForSingleObject` on a thread handle: `WAIT_OBJECT_0` once the thread has returned,
/// `WAIT_TIMEOUT` after `dwMilliseconds` (`INFINITE`: never), `WAIT_FAILED` with
/// `ERROR_INVALID_HANDLE` (or `ERROR_NOT_SUPPORTED` for a port handle).
#[no_mangle]
pub extern "C" fn WaitForSingleObject(hHandle: HANDLE, dwMilliseconds: DWORD) -> DWORD {
    // SAFETY: no pointer is dereferenced (the handle is looked up in the table).
    guard_or(WAIT_FAILED, || unsafe { ws::WaitForSingleObject(hHandle, dwMilliseconds) })
}

/// `WaitForMultipleObjects` on thread handles: with `bWaitAll`, `WAIT_OBJECT_0` once all
/// have returned; without, `WAIT_OBJECT_0 + i` for the lowest index `i` that has returned.
/// `WAIT_TIMEOUT` after `dwMilliseconds`. `WAIT_FAILED` with `ERROR_INVALID_PARAMETER` (count
/// 0 or above `MAXIMUM_WAIT_OBJECTS`, NULL or misaligned array) or the failure of a handle
/// as in [`WaitForSingleObject`].
///
/// # Safety
///
/// `lpHandles` must be NULL or valid for reading `nCount` handles.
#[no_mangle]
pub unsafe extern "C" fn WaitForMultipleObjects(
    nCount: DWORD,
    lpHandles: *const HANDLE,
    bWaitAll: BOOL,
    dwMilliseconds: DWORD,
) -> DWORD {
    // SAFETY: forwarded contract (the same as the core call's).
    guard_or(WAIT_FAILED, || unsafe { ws::WaitForMultipleObjects(nCount, lpHandles, bWaitAll, dwMilliseconds) })
}

/// `GetExitCodeThread`: `*lpExitCode` = the start routine's return value, or `STILL_ACTIVE`
/// while it runs. FALSE with `ERROR_INVALID_HANDLE` (not a thread handle) or
/// `ERROR_INVALID_PARAMETER` (NULL or misaligned `lpExitCode`).
///
/// # Safety
///
/// `lpExitCode` must be NULL or valid for writing one DWORD.
#[no_mangle]
pub unsafe extern "C" fn GetExitCodeThread(hThread: HANDLE, lpExitCode: *mut DWORD) -> BOOL {
    // SAFETY: forwarded contract (the same as the core call's).
    guard_or(FALSE, || unsafe { ws::GetExitCodeThread(hThread, lpExitCode) })
}
