//! Threads for ported programs: `CreateThread`, `WaitForSingleObject`,
//! `WaitForMultipleObjects` and `GetExitCodeThread` (`CloseHandle` is in [`super::iocp`]).
//! Thread handles live in the same handle table as ports.

use crate::errors::{fail, guard_or};
use crate::handles::{self, Object};
use crate::ptr::{self, Out};
use crate::thread::{self, Thread};
use crate::types::*;
use socknotify::codes::*;
use socknotify::winsock as ws;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::Arc;

/// A thread's start routine: `DWORD WINAPI f(LPVOID)`.
pub type LPTHREAD_START_ROUTINE = Option<unsafe extern "C" fn(LPVOID) -> DWORD>;

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
    _lpThreadAttributes: *mut c_void,
    dwStackSize: SIZE_T,
    lpStartAddress: LPTHREAD_START_ROUTINE,
    lpParameter: LPVOID,
    dwCreationFlags: DWORD,
    lpThreadId: *mut DWORD,
) -> HANDLE {
    // SAFETY: the caller passes NULL or a writable DWORD (this fn's contract).
    let id_out = unsafe { Out::new(lpThreadId) };
    guard_or(null_mut(), || {
        let Some(start) = lpStartAddress else {
            return fail(ERROR_INVALID_PARAMETER, null_mut());
        };
        if dwCreationFlags & !STACK_SIZE_PARAM_IS_A_RESERVATION != 0 {
            return fail(ERROR_INVALID_PARAMETER, null_mut());
        }
        // The parameter crosses to the new thread as an address (it is the caller's to share).
        let param = lpParameter as usize;
        let body = move || {
            // SAFETY: the caller promised `start` may be called with this parameter on
            // another thread (this fn's contract).
            unsafe { start(param as LPVOID) }
        };
        let Some(t) = Thread::spawn(dwStackSize, body) else {
            return fail(ERROR_NOT_ENOUGH_MEMORY, null_mut());
        };
        match handles::insert(Object::Thread(t)) {
            Some(h) => {
                if let Some(out) = id_out {
                    // The handle value / 4: unique, non-zero, and fits a DWORD for 2^32 threads.
                    out.write((h as usize / 4) as DWORD);
                }
                h
            }
            None => fail(WSAENOBUFS, null_mut()),
        }
    })
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
/// `WAIT_TIMEOUT` after `dwMilliseconds` (`INFINITE`: never), `WAIT_FAILED` with
/// `ERROR_INVALID_HANDLE` (or `ERROR_NOT_SUPPORTED` for a port handle).
#[no_mangle]
pub extern "C" fn WaitForSingleObject(hHandle: HANDLE, dwMilliseconds: DWORD) -> DWORD {
    guard_or(WAIT_FAILED, || match thread_of(hHandle) {
        Ok(t) => match thread::wait(&[t], true, ws::timeout_from_ms(dwMilliseconds)) {
            Some(_) => WAIT_OBJECT_0,
            None => WAIT_TIMEOUT,
        },
        Err(code) => fail(code, WAIT_FAILED),
    })
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
    guard_or(WAIT_FAILED, || {
        if nCount == 0 || nCount > MAXIMUM_WAIT_OBJECTS {
            return fail(ERROR_INVALID_PARAMETER, WAIT_FAILED);
        }
        // SAFETY: the caller passes NULL or nCount readable handles (this fn's contract).
        let Some(hs) = (unsafe { ptr::slice(lpHandles, nCount as usize) }) else {
            return fail(ERROR_INVALID_PARAMETER, WAIT_FAILED);
        };
        let mut threads = Vec::with_capacity(hs.len());
        for &h in hs {
            match thread_of(h) {
                Ok(t) => threads.push(t),
                Err(code) => return fail(code, WAIT_FAILED),
            }
        }
        match thread::wait(&threads, bWaitAll != FALSE, ws::timeout_from_ms(dwMilliseconds)) {
            Some(i) => WAIT_OBJECT_0 + i as DWORD,
            None => WAIT_TIMEOUT,
        }
    })
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
    // SAFETY: the caller passes NULL or a writable DWORD (this fn's contract).
    let out = unsafe { Out::new(lpExitCode) };
    guard_or(FALSE, || {
        let Some(out) = out else {
            return fail(ERROR_INVALID_PARAMETER, FALSE);
        };
        match handles::lookup(hThread) {
            Some(Object::Thread(t)) => {
                out.write(t.exit_code().unwrap_or(STILL_ACTIVE));
                TRUE
            }
            _ => fail(ERROR_INVALID_HANDLE, FALSE),
        }
    })
}
