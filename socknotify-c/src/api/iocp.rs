//! Completion ports: `CreateIoCompletionPort`, `PostQueuedCompletionStatus`,
//! `GetQueuedCompletionStatus(Ex)` and `CloseHandle`.

use crate::errors::{fail, guard, guard_or};
use crate::handles::{self, Object};
use crate::ptr::{self, Out};
use crate::types::*;
use socknotify::codes::*;
use socknotify::winsock::{self as ws, OVERLAPPED_ENTRY};
use socknotify::{Completion, CompletionPort};
use std::ptr::null_mut;

/// `CreateIoCompletionPort`: only the creation form (`FileHandle == INVALID_HANDLE_VALUE`,
/// `ExistingCompletionPort == NULL`) is supported; any other form returns NULL with
/// `ERROR_INVALID_PARAMETER`. `CompletionKey` is ignored (as on Windows for creation).
#[no_mangle]
pub extern "C" fn CreateIoCompletionPort(
    FileHandle: HANDLE,
    ExistingCompletionPort: HANDLE,
    _CompletionKey: ULONG_PTR,
    NumberOfConcurrentThreads: DWORD,
) -> HANDLE {
    guard_or(null_mut(), || {
        if FileHandle != INVALID_HANDLE_VALUE || !ExistingCompletionPort.is_null() {
            return fail(ERROR_INVALID_PARAMETER, null_mut());
        }
        let port = match CompletionPort::with_concurrency(NumberOfConcurrentThreads) {
            Ok(p) => p,
            Err(e) => return fail(e.code(), null_mut()),
        };
        match handles::insert(Object::Port(port.clone())) {
            Some(h) => h,
            None => {
                port.close();
                fail(WSAENOBUFS, null_mut())
            }
        }
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
    guard_or(FALSE, || {
        let Some(port) = handles::port(CompletionPort) else {
            return fail(ERROR_INVALID_HANDLE, FALSE);
        };
        match port.post(Completion::new(dwCompletionKey, dwNumberOfBytesTransferred, lpOverlapped as usize)) {
            Ok(()) => TRUE,
            Err(e) => fail(e.code(), FALSE),
        }
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
    // SAFETY: the caller passes each pointer NULL or writable for the call (this fn's contract).
    let (bytes, key, ov) =
        unsafe { (Out::new(lpNumberOfBytesTransferred), Out::new(lpCompletionKey), Out::new(lpOverlapped)) };
    // Every failure writes NULL to *lpOverlapped when that pointer is usable.
    let failed = |code| {
        if let Some(ov) = ov {
            ov.write(null_mut());
        }
        fail(code, FALSE)
    };
    let run = || {
        let (Some(bytes), Some(key), Some(ov)) = (bytes, key, ov) else {
            return failed(ERROR_INVALID_PARAMETER);
        };
        let Some(port) = handles::port(CompletionPort) else {
            return failed(ERROR_INVALID_HANDLE);
        };
        let mut one = [Completion::default()];
        match port.dequeue(&mut one, ws::timeout_from_ms(dwMilliseconds)) {
            Ok(0) => failed(WAIT_TIMEOUT),
            Ok(_) => {
                let c = one[0];
                bytes.write(c.bytes());
                key.write(c.key());
                ov.write(c.overlapped() as *mut OVERLAPPED);
                TRUE
            }
            Err(e) => failed(e.code()),
        }
    };
    guard(run, || failed(ERROR_INTERNAL_ERROR))
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
    _fAlertable: BOOL,
) -> BOOL {
    guard_or(FALSE, || {
        let entries_range = ptr::byte_range(lpCompletionPortEntries, ulCount as usize);
        let count_range = ptr::byte_range(ulNumEntriesRemoved, 1);
        if ulCount == 0
            || !ptr::usable(lpCompletionPortEntries, ulCount as usize)
            || ptr::ranges_overlap(entries_range, count_range)
        {
            return fail(ERROR_INVALID_PARAMETER, FALSE);
        }
        // SAFETY: the caller passes the count pointer NULL or writable for the call.
        let Some(removed) = (unsafe { Out::new(ulNumEntriesRemoved) }) else {
            return fail(ERROR_INVALID_PARAMETER, FALSE);
        };
        let Some(port) = handles::port(CompletionPort) else {
            return fail(ERROR_INVALID_HANDLE, FALSE);
        };
        // SAFETY: the caller passes ulCount writable entries for the call; they do not
        // overlap the count (checked above), and the slice lives only during this call.
        let Some(entries) = (unsafe { ptr::slice_mut(lpCompletionPortEntries, ulCount as usize) }) else {
            return fail(ERROR_INVALID_PARAMETER, FALSE);
        };
        match port.dequeue(ws::as_completions(entries), ws::timeout_from_ms(dwMilliseconds)) {
            Ok(0) => {
                removed.write(0);
                fail(WAIT_TIMEOUT, FALSE)
            }
            Ok(n) => {
                // n <= ulCount fits a ULONG.
                removed.write(n as ULONG);
                TRUE
            }
            Err(e) => fail(e.code(), FALSE),
        }
    })
}

/// `CloseHandle`: closes a completion port (waking its waiters) or releases a thread handle
/// (the thread runs on), and retires the handle.
#[no_mangle]
pub extern "C" fn CloseHandle(hObject: HANDLE) -> BOOL {
    guard_or(FALSE, || match handles::remove(hObject) {
        Some(Object::Port(port)) => {
            // Outside the table lock: waking the port's waiters must not contend with it.
            port.close();
            TRUE
        }
        Some(Object::Thread(t)) => {
            t.reap();
            TRUE
        }
        None => fail(ERROR_INVALID_HANDLE, FALSE),
    })
}
