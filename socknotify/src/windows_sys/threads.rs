//! Threads for ported programs: `CreateThread`, `WaitForSingleObject`,
//! `WaitForMultipleObjects` and `GetExitCodeThread` (`CloseHandle` is in `iocp`).
//! Thread handles live in the same handle table as ports.

use super::errors::fail;
use super::handles::{self, Object};
use super::thread::{self, Thread};
use super::{
    BOOL, ERROR_NOT_SUPPORTED, FALSE, HANDLE, LPTHREAD_START_ROUTINE, MAXIMUM_WAIT_OBJECTS, SECURITY_ATTRIBUTES,
    STACK_SIZE_PARAM_IS_A_RESERVATION, STILL_ACTIVE, THREAD_CREATION_FLAGS, TRUE, WAIT_EVENT, WAIT_FAILED,
    WAIT_OBJECT_0,
};
use crate::abi::codes::*;
use crate::sys::ptr::{self, Out};
use crate::winsock::timeout_from_ms;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::Arc;

/// `CreateThread`: runs `lpstartaddress(lpparameter)` on a new thread and returns its handle;
/// the routine's return value becomes the thread's exit code. `*lpthreadid` (if not NULL)
/// gets a process-unique, non-zero id. `lpthreadattributes` is ignored; `dwstacksize` 0 means
/// the default stack.
///
/// NULL with `ERROR_INVALID_PARAMETER` for a NULL routine or a creation flag other than
/// `STACK_SIZE_PARAM_IS_A_RESERVATION` (`CREATE_SUSPENDED` included), or with
/// `ERROR_NOT_ENOUGH_MEMORY` when the system refuses a thread.
///
/// # Safety
///
/// `lpstartaddress` must be safe to call with `lpparameter` on another thread and must not
/// unwind; `lpthreadid` must be NULL or valid for writing one `u32`.
///
/// ```
/// use socknotify::windows_sys::*;
/// use std::ffi::c_void;
/// unsafe extern "system" fn twice(p: *mut c_void) -> u32 {
///     2 * p as u32
/// }
/// unsafe {
///     let mut id = 0u32;
///     let t = CreateThread(std::ptr::null(), 0, Some(twice), 21 as *const c_void, 0, &mut id);
///     assert!(!t.is_null() && id != 0);
///     assert_eq!(WaitForSingleObject(t, INFINITE), WAIT_OBJECT_0);
///     let mut code = 0u32;
///     assert_eq!(GetExitCodeThread(t, &mut code), TRUE);
///     assert_eq!(code, 42);
///     CloseHandle(t);
/// }
/// ```
pub unsafe fn CreateThread(
    lpthreadattributes: *const SECURITY_ATTRIBUTES,
    dwstacksize: usize,
    lpstartaddress: LPTHREAD_START_ROUTINE,
    lpparameter: *const c_void,
    dwcreationflags: THREAD_CREATION_FLAGS,
    lpthreadid: *mut u32,
) -> HANDLE {
    let _ = lpthreadattributes;
    // SAFETY: NULL or writable for one u32 (this function's contract).
    let id_out = unsafe { Out::new(lpthreadid) };
    let Some(start) = lpstartaddress else {
        return fail(ERROR_INVALID_PARAMETER, null_mut());
    };
    if dwcreationflags & !STACK_SIZE_PARAM_IS_A_RESERVATION != 0 {
        return fail(ERROR_INVALID_PARAMETER, null_mut());
    }
    // The parameter crosses to the new thread as an address (it is the caller's to share).
    let param = lpparameter as usize;
    let body = move || {
        // SAFETY: `start` may be called with this parameter on another thread (this
        // function's contract).
        unsafe { start(param as *mut c_void) }
    };
    let Some(t) = Thread::spawn(dwstacksize, body) else {
        return fail(ERROR_NOT_ENOUGH_MEMORY, null_mut());
    };
    match handles::insert(Object::Thread(t)) {
        Some(h) => {
            if let Some(out) = id_out {
                // The handle value / 4: unique, non-zero, and fits a u32 for 2^32 threads.
                out.write((h as usize / 4) as u32);
            }
            h
        }
        None => fail(WSAENOBUFS, null_mut()),
    }
}

/// The thread behind `h`, or the failure code for it (`ERROR_NOT_SUPPORTED` for a port:
/// waiting on a port handle is not offered; `ERROR_INVALID_HANDLE` for anything else).
fn thread_of(h: HANDLE) -> Result<Arc<Thread>, u32> {
    match handles::lookup(h) {
        Some(Object::Thread(t)) => Ok(t),
        Some(Object::Port(_)) => Err(ERROR_NOT_SUPPORTED),
        None => Err(ERROR_INVALID_HANDLE),
    }
}

/// `WaitForSingleObject` on a thread handle: `WAIT_OBJECT_0` once the thread has returned,
/// `WAIT_TIMEOUT` after `dwmilliseconds` (`INFINITE`: never), `WAIT_FAILED` with
/// `ERROR_INVALID_HANDLE` (or `ERROR_NOT_SUPPORTED` for a port handle).
///
/// # Safety
///
/// None: it is `unsafe` only to have `windows-sys`'s signature.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     let port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 0);
///     assert_eq!(WaitForSingleObject(port, 0), WAIT_FAILED);
///     assert_eq!(GetLastError(), ERROR_NOT_SUPPORTED);
///     CloseHandle(port);
/// }
/// ```
pub unsafe fn WaitForSingleObject(hhandle: HANDLE, dwmilliseconds: u32) -> WAIT_EVENT {
    match thread_of(hhandle) {
        Ok(t) => match thread::wait(&[t], true, timeout_from_ms(dwmilliseconds)) {
            Some(_) => WAIT_OBJECT_0,
            None => WAIT_TIMEOUT,
        },
        Err(code) => fail(code, WAIT_FAILED),
    }
}

/// `WaitForMultipleObjects` on thread handles: with `bwaitall`, `WAIT_OBJECT_0` once all
/// have returned; without, `WAIT_OBJECT_0 + i` for the lowest index `i` that has returned.
/// `WAIT_TIMEOUT` after `dwmilliseconds`. `WAIT_FAILED` with `ERROR_INVALID_PARAMETER`
/// (count 0 or above `MAXIMUM_WAIT_OBJECTS`, NULL or misaligned array) or the failure of a
/// handle as in [`WaitForSingleObject`].
///
/// # Safety
///
/// `lphandles` must be NULL or valid for reading `ncount` handles.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe extern "system" fn quick(_: *mut std::ffi::c_void) -> u32 {
///     0
/// }
/// unsafe {
///     let t = [
///         CreateThread(std::ptr::null(), 0, Some(quick), std::ptr::null(), 0, std::ptr::null_mut()),
///         CreateThread(std::ptr::null(), 0, Some(quick), std::ptr::null(), 0, std::ptr::null_mut()),
///     ];
///     assert_eq!(WaitForMultipleObjects(2, t.as_ptr(), TRUE, INFINITE), WAIT_OBJECT_0);
///     assert_eq!(WaitForMultipleObjects(0, t.as_ptr(), TRUE, 0), WAIT_FAILED);
///     t.iter().for_each(|&h| { CloseHandle(h); });
/// }
/// ```
pub unsafe fn WaitForMultipleObjects(
    ncount: u32,
    lphandles: *const HANDLE,
    bwaitall: BOOL,
    dwmilliseconds: u32,
) -> WAIT_EVENT {
    if ncount == 0 || ncount > MAXIMUM_WAIT_OBJECTS {
        return fail(ERROR_INVALID_PARAMETER, WAIT_FAILED);
    }
    // SAFETY: NULL or `ncount` readable handles (this function's contract).
    let Some(hs) = (unsafe { ptr::slice(lphandles, ncount as usize) }) else {
        return fail(ERROR_INVALID_PARAMETER, WAIT_FAILED);
    };
    let mut threads = Vec::with_capacity(hs.len());
    for &h in hs {
        match thread_of(h) {
            Ok(t) => threads.push(t),
            Err(code) => return fail(code, WAIT_FAILED),
        }
    }
    match thread::wait(&threads, bwaitall != FALSE, timeout_from_ms(dwmilliseconds)) {
        // i < ncount <= 64.
        Some(i) => WAIT_OBJECT_0 + i as u32,
        None => WAIT_TIMEOUT,
    }
}

/// `GetExitCodeThread`: `*lpexitcode` = the start routine's return value, or `STILL_ACTIVE`
/// while it runs. FALSE with `ERROR_INVALID_HANDLE` (not a thread handle) or
/// `ERROR_INVALID_PARAMETER` (NULL or misaligned `lpexitcode`).
///
/// # Safety
///
/// `lpexitcode` must be NULL or valid for writing one `u32`.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     let mut code = 0u32;
///     assert_eq!(GetExitCodeThread(std::ptr::null_mut(), &mut code), FALSE);
///     assert_eq!(GetLastError(), ERROR_INVALID_HANDLE);
/// }
/// ```
pub unsafe fn GetExitCodeThread(hthread: HANDLE, lpexitcode: *mut u32) -> BOOL {
    // SAFETY: NULL or a writable u32 (this function's contract).
    let Some(out) = (unsafe { Out::new(lpexitcode) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    match handles::lookup(hthread) {
        Some(Object::Thread(t)) => {
            out.write(t.exit_code().unwrap_or(STILL_ACTIVE as u32));
            TRUE
        }
        _ => fail(ERROR_INVALID_HANDLE, FALSE),
    }
}
