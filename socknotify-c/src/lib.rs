//! The C API of socknotify: Windows' `ProcessSocketNotifications` and I/O completion port
//! calls with Windows' names, values and x86_64 layouts (header `include/socknotify.h`).
//!
//! Every entry point is `extern "C"`, never lets a panic unwind into C (a panic becomes
//! [`ERROR_INTERNAL_ERROR`]), and checks its handle: completion ports are kept in a
//! process-wide table and a `HANDLE` is a never-reused id, so a stale or garbage handle
//! gives `ERROR_INVALID_HANDLE` instead of a crash.
//!
//! The crate is also an `rlib`, so Rust code (and tests) can call the same functions.
#![allow(non_snake_case, non_camel_case_types, clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

use socknotify::winsock as ws;
use socknotify::{Completion, CompletionPort};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::mem::{align_of, offset_of, size_of};
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

pub use socknotify::codes::*;
pub use ws::{
    INFINITE, INVALID_SOCKET, OVERLAPPED_ENTRY, SOCK_NOTIFY_EVENTS_ALL, SOCK_NOTIFY_EVENT_ERR,
    SOCK_NOTIFY_EVENT_HANGUP, SOCK_NOTIFY_EVENT_IN, SOCK_NOTIFY_EVENT_OUT, SOCK_NOTIFY_EVENT_REMOVE,
    SOCK_NOTIFY_OP_DISABLE, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_OP_NONE, SOCK_NOTIFY_OP_REMOVE,
    SOCK_NOTIFY_REGISTER_EVENTS_ALL, SOCK_NOTIFY_REGISTER_EVENT_HANGUP, SOCK_NOTIFY_REGISTER_EVENT_IN,
    SOCK_NOTIFY_REGISTER_EVENT_NONE, SOCK_NOTIFY_REGISTER_EVENT_OUT, SOCK_NOTIFY_REGISTRATION, SOCK_NOTIFY_TRIGGER_ALL,
    SOCK_NOTIFY_TRIGGER_EDGE, SOCK_NOTIFY_TRIGGER_LEVEL, SOCK_NOTIFY_TRIGGER_ONESHOT, SOCK_NOTIFY_TRIGGER_PERSISTENT,
};

/// An opaque object handle (`void *`); here only completion ports are handles.
pub type HANDLE = *mut c_void;
/// `void *`.
pub type PVOID = *mut c_void;
/// 32-bit unsigned.
pub type DWORD = u32;
/// 32-bit unsigned (as on Windows).
pub type ULONG = u32;
/// `int`.
pub type BOOL = c_int;
/// Pointer-sized unsigned.
pub type ULONG_PTR = usize;
/// A socket: the descriptor number.
pub type SOCKET = ws::SOCKET;

/// BOOL true.
pub const TRUE: BOOL = 1;
/// BOOL false.
pub const FALSE: BOOL = 0;
/// `(HANDLE)-1`.
pub const INVALID_HANDLE_VALUE: HANDLE = usize::MAX as HANDLE;
/// `closesocket`'s failure result.
pub const SOCKET_ERROR: c_int = -1;
/// A failure inside the library (a caught panic). Not in the core's code table: it is a
/// property of the C boundary only. Windows' value for "an internal error occurred".
pub const ERROR_INTERNAL_ERROR: u32 = 1359;

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

// `catch_unwind` is what keeps panics out of C; with panic=abort it could not.
const _: () = assert!(cfg!(panic = "unwind"), "socknotify-c must be built with panic=unwind");

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

// ---------------------------------------------------------------------------------------
// Last error (per thread) and the panic guard.
// ---------------------------------------------------------------------------------------

thread_local! {
    // A const-initialised Cell<u32> has no destructor and allocates nothing.
    static LAST_ERROR: Cell<u32> = const { Cell::new(0) };
}

fn set_last_error(code: u32) {
    // `try_with`: a call from a thread-local destructor late in thread exit must not panic.
    let _ = LAST_ERROR.try_with(|e| e.set(code));
}

fn last_error() -> u32 {
    LAST_ERROR.try_with(Cell::get).unwrap_or(0)
}

/// Runs `f`, turning a panic into `on_panic()` (which reports the error its own way).
fn guard<R>(f: impl FnOnce() -> R, on_panic: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            // Dropping the payload could itself panic (a panicking Drop); don't let it.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            on_panic()
        }
    }
}

// ---------------------------------------------------------------------------------------
// The handle table.
// ---------------------------------------------------------------------------------------

/// Live ports by handle value. Handle values are multiples of 4 (as on Windows), start at
/// 4 and are never reused, so they are never NULL nor INVALID_HANDLE_VALUE.
static PORTS: RwLock<BTreeMap<usize, CompletionPort>> = RwLock::new(BTreeMap::new());
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
const HANDLE_STRIDE: usize = 4;

fn ports_read() -> std::sync::RwLockReadGuard<'static, BTreeMap<usize, CompletionPort>> {
    PORTS.read().unwrap_or_else(|e| e.into_inner())
}

fn ports_write() -> std::sync::RwLockWriteGuard<'static, BTreeMap<usize, CompletionPort>> {
    PORTS.write().unwrap_or_else(|e| e.into_inner())
}

/// The live port behind `h` (a clone: the table lock is not held while the caller waits).
fn lookup(h: HANDLE) -> Option<CompletionPort> {
    ports_read().get(&(h as usize)).cloned()
}

fn insert(port: CompletionPort) -> Option<HANDLE> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let value = id.checked_mul(HANDLE_STRIDE).filter(|v| *v != INVALID_HANDLE_VALUE as usize)?;
    ports_write().insert(value, port);
    Some(value as HANDLE)
}

// ---------------------------------------------------------------------------------------
// Pointer helpers.
// ---------------------------------------------------------------------------------------

/// The byte range `[p, p + count * size)`, or `None` when it wraps the address space.
fn byte_range<T>(p: *const T, count: usize) -> Option<(usize, usize)> {
    let start = p as usize;
    let len = count.checked_mul(size_of::<T>())?;
    let end = start.checked_add(len)?;
    if end > isize::MAX as usize {
        return None;
    }
    Some((start, end))
}

fn ranges_overlap(a: Option<(usize, usize)>, b: Option<(usize, usize)>) -> bool {
    match (a, b) {
        (Some((a0, a1)), Some((b0, b1))) => a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Completion ports.
// ---------------------------------------------------------------------------------------

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
    guard(
        || {
            if FileHandle != INVALID_HANDLE_VALUE || !ExistingCompletionPort.is_null() {
                set_last_error(ERROR_INVALID_PARAMETER);
                return std::ptr::null_mut();
            }
            let port = match CompletionPort::with_concurrency(NumberOfConcurrentThreads) {
                Ok(p) => p,
                Err(e) => {
                    set_last_error(e.code());
                    return std::ptr::null_mut();
                }
            };
            match insert(port.clone()) {
                Some(h) => h,
                None => {
                    port.close();
                    set_last_error(WSAENOBUFS);
                    std::ptr::null_mut()
                }
            }
        },
        || {
            set_last_error(ERROR_INTERNAL_ERROR);
            std::ptr::null_mut()
        },
    )
}

/// `PostQueuedCompletionStatus`: queues `{key, overlapped, 0, bytes}` unchanged.
#[no_mangle]
pub extern "C" fn PostQueuedCompletionStatus(
    CompletionPort: HANDLE,
    dwNumberOfBytesTransferred: DWORD,
    dwCompletionKey: ULONG_PTR,
    lpOverlapped: *mut OVERLAPPED,
) -> BOOL {
    guard(
        || {
            let Some(port) = lookup(CompletionPort) else {
                set_last_error(ERROR_INVALID_HANDLE);
                return FALSE;
            };
            match port.post(Completion::new(dwCompletionKey, dwNumberOfBytesTransferred, lpOverlapped as usize)) {
                Ok(()) => TRUE,
                Err(e) => {
                    set_last_error(e.code());
                    FALSE
                }
            }
        },
        || {
            set_last_error(ERROR_INTERNAL_ERROR);
            FALSE
        },
    )
}

/// `GetQueuedCompletionStatus`: dequeues one packet (see the header for the results).
#[no_mangle]
pub unsafe extern "C" fn GetQueuedCompletionStatus(
    CompletionPort: HANDLE,
    lpNumberOfBytesTransferred: *mut DWORD,
    lpCompletionKey: *mut ULONG_PTR,
    lpOverlapped: *mut *mut OVERLAPPED,
    dwMilliseconds: DWORD,
) -> BOOL {
    let ov_ok = !lpOverlapped.is_null() && lpOverlapped.is_aligned();
    let clear_ov = || {
        if ov_ok {
            // SAFETY: non-NULL and aligned; the caller passes a writable LPOVERLAPPED*.
            unsafe { lpOverlapped.write(std::ptr::null_mut()) };
        }
    };
    guard(
        || {
            if !ov_ok
                || lpNumberOfBytesTransferred.is_null()
                || !lpNumberOfBytesTransferred.is_aligned()
                || lpCompletionKey.is_null()
                || !lpCompletionKey.is_aligned()
            {
                clear_ov();
                set_last_error(ERROR_INVALID_PARAMETER);
                return FALSE;
            }
            let Some(port) = lookup(CompletionPort) else {
                clear_ov();
                set_last_error(ERROR_INVALID_HANDLE);
                return FALSE;
            };
            let mut one = [Completion::default()];
            match port.dequeue(&mut one, ws::timeout_from_ms(dwMilliseconds)) {
                Ok(0) => {
                    clear_ov();
                    set_last_error(WAIT_TIMEOUT);
                    FALSE
                }
                Ok(_) => {
                    let c = one[0];
                    // SAFETY: all three pointers were checked non-NULL and aligned above.
                    unsafe {
                        lpNumberOfBytesTransferred.write(c.bytes());
                        lpCompletionKey.write(c.key());
                        lpOverlapped.write(c.overlapped() as *mut OVERLAPPED);
                    }
                    TRUE
                }
                Err(e) => {
                    clear_ov();
                    set_last_error(e.code());
                    FALSE
                }
            }
        },
        || {
            clear_ov();
            set_last_error(ERROR_INTERNAL_ERROR);
            FALSE
        },
    )
}

/// `GetQueuedCompletionStatusEx`: dequeues up to `ulCount` packets. `fAlertable` has no
/// effect (Linux has no APCs).
#[no_mangle]
pub unsafe extern "C" fn GetQueuedCompletionStatusEx(
    CompletionPort: HANDLE,
    lpCompletionPortEntries: *mut OVERLAPPED_ENTRY,
    ulCount: ULONG,
    ulNumEntriesRemoved: *mut ULONG,
    dwMilliseconds: DWORD,
    _fAlertable: BOOL,
) -> BOOL {
    guard(
        || {
            let entries_range = byte_range(lpCompletionPortEntries, ulCount as usize);
            let count_range = byte_range(ulNumEntriesRemoved, 1);
            if ulCount == 0
                || lpCompletionPortEntries.is_null()
                || !lpCompletionPortEntries.is_aligned()
                || ulNumEntriesRemoved.is_null()
                || !ulNumEntriesRemoved.is_aligned()
                || entries_range.is_none()
                || ranges_overlap(entries_range, count_range)
            {
                set_last_error(ERROR_INVALID_PARAMETER);
                return FALSE;
            }
            let Some(port) = lookup(CompletionPort) else {
                set_last_error(ERROR_INVALID_HANDLE);
                return FALSE;
            };
            // SAFETY: non-NULL, aligned, ulCount elements in a non-wrapping range that the
            // caller provides for writing; disjoint from the count (checked above).
            let entries = unsafe { std::slice::from_raw_parts_mut(lpCompletionPortEntries, ulCount as usize) };
            match port.dequeue(ws::as_completions(entries), ws::timeout_from_ms(dwMilliseconds)) {
                Ok(0) => {
                    // SAFETY: checked non-NULL and aligned.
                    unsafe { ulNumEntriesRemoved.write(0) };
                    set_last_error(WAIT_TIMEOUT);
                    FALSE
                }
                Ok(n) => {
                    // SAFETY: checked non-NULL and aligned. n <= ulCount fits a ULONG.
                    unsafe { ulNumEntriesRemoved.write(n as ULONG) };
                    TRUE
                }
                Err(e) => {
                    set_last_error(e.code());
                    FALSE
                }
            }
        },
        || {
            set_last_error(ERROR_INTERNAL_ERROR);
            FALSE
        },
    )
}

/// `CloseHandle` for completion ports: closes the port and retires its handle.
#[no_mangle]
pub extern "C" fn CloseHandle(hObject: HANDLE) -> BOOL {
    guard(
        || {
            let removed = ports_write().remove(&(hObject as usize));
            match removed {
                Some(port) => {
                    // Outside the table lock: waking the port's waiters must not contend with it.
                    port.close();
                    TRUE
                }
                None => {
                    set_last_error(ERROR_INVALID_HANDLE);
                    FALSE
                }
            }
        },
        || {
            set_last_error(ERROR_INTERNAL_ERROR);
            FALSE
        },
    )
}

// ---------------------------------------------------------------------------------------
// ProcessSocketNotifications.
// ---------------------------------------------------------------------------------------

/// `ProcessSocketNotifications`: validates the call's shape (V1–V4, plus alignment and
/// pointer-range checks), then the handle, then applies the registrations and dequeues.
/// A failed call changes nothing. A failure code is also stored as the thread's last error.
#[no_mangle]
pub unsafe extern "C" fn ProcessSocketNotifications(
    completionPort: HANDLE,
    registrationCount: u32,
    registrationInfos: *mut SOCK_NOTIFY_REGISTRATION,
    timeoutMs: u32,
    completionCount: ULONG,
    completionPortEntries: *mut OVERLAPPED_ENTRY,
    receivedEntryCount: *mut u32,
) -> DWORD {
    let rc = guard(
        || {
            // SAFETY: forwarded contract of this function.
            unsafe {
                psn(
                    completionPort,
                    registrationCount,
                    registrationInfos,
                    timeoutMs,
                    completionCount,
                    completionPortEntries,
                    receivedEntryCount,
                )
            }
        },
        || ERROR_INTERNAL_ERROR,
    );
    if rc != ERROR_SUCCESS {
        set_last_error(rc);
    }
    rc
}

unsafe fn psn(
    handle: HANDLE,
    reg_count: u32,
    regs: *mut SOCK_NOTIFY_REGISTRATION,
    timeout_ms: u32,
    entry_count: u32,
    entries: *mut OVERLAPPED_ENTRY,
    received: *mut u32,
) -> u32 {
    let reg_range = if regs.is_null() { None } else { byte_range(regs, reg_count as usize) };
    let entry_range = if entries.is_null() { None } else { byte_range(entries, entry_count as usize) };
    let received_range = if received.is_null() { None } else { byte_range(received, 1) };
    let shape = ws::CallShape {
        registration_count: reg_count,
        registrations_null: regs.is_null(),
        completion_count: entry_count,
        entries_null: entries.is_null(),
        received_null: received.is_null(),
        timeout_ms,
        // V4, widened to the count pointer: Rust must not hold overlapping &mut views.
        arrays_overlap: ranges_overlap(reg_range, entry_range)
            || ranges_overlap(received_range, reg_range)
            || ranges_overlap(received_range, entry_range),
    };
    // The call-shape rules are checked here, once; the core does not check them again.
    let call = match shape.validate() {
        Ok(call) => call,
        Err(code) => return code,
    };
    // Pointers the shape rules accepted must still be usable as Rust slices.
    if (!regs.is_null() && (!regs.is_aligned() || reg_range.is_none()))
        || (!entries.is_null() && (!entries.is_aligned() || entry_range.is_none()))
        || (!received.is_null() && !received.is_aligned())
    {
        return WSAEFAULT;
    }
    let Some(port) = lookup(handle) else {
        return ERROR_INVALID_HANDLE;
    };
    // SAFETY: each pointer is non-NULL (or mapped to None), aligned, covers its count in a
    // non-wrapping range, and the three ranges are pairwise disjoint (checked above); the
    // caller provides them readable and writable for the duration of the call.
    let (regs, entries, received) = unsafe {
        (
            (!regs.is_null()).then(|| std::slice::from_raw_parts_mut(regs, reg_count as usize)),
            (!entries.is_null()).then(|| std::slice::from_raw_parts_mut(entries, entry_count as usize)),
            received.as_mut(),
        )
    };
    ws::process_validated(&port, call, regs.unwrap_or_default(), entries.unwrap_or_default(), received)
}

/// The exported form of the header's inline `SocketNotificationRetrieveEvents` (NULL → 0).
#[no_mangle]
pub unsafe extern "C" fn socknotify_SocketNotificationRetrieveEvents(notification: *const OVERLAPPED_ENTRY) -> u32 {
    if notification.is_null() || !notification.is_aligned() {
        return 0;
    }
    // SAFETY: non-NULL and aligned; the caller passes a readable OVERLAPPED_ENTRY.
    ws::SocketNotificationRetrieveEvents(unsafe { &*notification })
}

// ---------------------------------------------------------------------------------------
// Sockets and errors.
// ---------------------------------------------------------------------------------------

fn is_open_socket(fd: RawFd) -> bool {
    // SAFETY: fstat only writes into the zeroed stat buffer we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstat(fd, &mut st) };
    rc == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK
}

/// `closesocket`: drops the socket's registration silently (no REMOVE packet), then closes
/// the descriptor. 0, or `SOCKET_ERROR` with `WSAENOTSOCK` for anything but an open socket.
#[no_mangle]
pub extern "C" fn closesocket(s: SOCKET) -> c_int {
    guard(
        || {
            let fd = match RawFd::try_from(s) {
                Ok(fd) if fd >= 0 && is_open_socket(fd) => fd,
                _ => {
                    set_last_error(WSAENOTSOCK);
                    return SOCKET_ERROR;
                }
            };
            socknotify::forget_registration_raw(fd);
            // SAFETY: closing a descriptor the caller owns and hands over.
            if unsafe { libc::close(fd) } != 0 {
                match std::io::Error::last_os_error().raw_os_error() {
                    // Linux releases the descriptor even when close is interrupted.
                    Some(libc::EINTR) => {}
                    Some(libc::EBADF) => {
                        set_last_error(WSAENOTSOCK);
                        return SOCKET_ERROR;
                    }
                    _ => {
                        // The descriptor is released anyway; report the failure (EIO and the like).
                        set_last_error(WSAEINVAL);
                        return SOCKET_ERROR;
                    }
                }
            }
            0
        },
        || {
            set_last_error(ERROR_INTERNAL_ERROR);
            SOCKET_ERROR
        },
    )
}

/// `GetLastError`: the calling thread's last error.
#[no_mangle]
pub extern "C" fn GetLastError() -> DWORD {
    last_error()
}

/// `SetLastError`: sets the calling thread's last error.
#[no_mangle]
pub extern "C" fn SetLastError(dwErrCode: DWORD) {
    set_last_error(dwErrCode);
}

/// `WSAGetLastError`: the calling thread's last error (same value as `GetLastError`).
#[no_mangle]
pub extern "C" fn WSAGetLastError() -> c_int {
    last_error() as c_int
}

/// `WSASetLastError`: sets the calling thread's last error (same value as `SetLastError`).
#[no_mangle]
pub extern "C" fn WSASetLastError(iError: c_int) {
    set_last_error(iError as u32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// `#define NAME VALUE` of the header, with aliases and `|` expressions resolved.
    fn header_defines() -> HashMap<String, i128> {
        let text = include_str!("../include/socknotify.h");
        let mut raw: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("#define ") else { continue };
            let rest = rest.split("/*").next().unwrap_or("").trim();
            let mut it = rest.splitn(2, char::is_whitespace);
            let (Some(name), Some(value)) = (it.next(), it.next()) else { continue };
            if name.contains('(') {
                continue; // function-like macro
            }
            raw.push((name.to_string(), value.trim().to_string()));
        }
        let mut values: HashMap<String, i128> = HashMap::new();
        // Resolve in passes: a value is a literal, a known name, or "(A | B | ...)".
        for _ in 0..8 {
            for (name, value) in &raw {
                if values.contains_key(name) {
                    continue;
                }
                let v = value.trim_start_matches('(').trim_end_matches(')');
                let mut acc: Option<i128> = Some(0);
                for part in v.split('|').map(str::trim) {
                    let x = if let Some(h) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
                        i128::from_str_radix(h, 16).ok()
                    } else if let Ok(d) = part.parse::<i128>() {
                        Some(d)
                    } else {
                        values.get(part).copied()
                    };
                    acc = match (acc, x) {
                        (Some(a), Some(b)) => Some(a | b),
                        _ => None,
                    };
                }
                if let Some(a) = acc {
                    values.insert(name.clone(), a);
                }
            }
        }
        values
    }

    /// Every code of the project's one code table (`socknotify/src/abi/codes.rs`) is in the header
    /// with the same value, and so are the SOCK_NOTIFY_* values of the core.
    #[test]
    fn header_values_match_the_code_table() {
        use socknotify::winsock as w;
        let defines = header_defines();
        let codes_rs = include_str!("../../socknotify/src/abi/codes.rs");
        let mut checked = 0;
        for line in codes_rs.lines() {
            let Some(rest) = line.trim().strip_prefix("pub const ") else { continue };
            let (name, value) = rest.split_once(':').expect("pub const NAME: u32 = VALUE;");
            let value = value.split('=').nth(1).expect("= VALUE").trim().trim_end_matches(';').replace('_', "");
            let value: i128 = value.parse().unwrap_or_else(|_| panic!("codes.rs value of {name}: {value}"));
            let name = name.trim();
            assert_eq!(defines.get(name), Some(&value), "{name}: header and codes.rs disagree");
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} codes found in codes.rs");
        let core: &[(&str, i128)] = &[
            ("SOCK_NOTIFY_REGISTER_EVENT_NONE", w::SOCK_NOTIFY_REGISTER_EVENT_NONE.into()),
            ("SOCK_NOTIFY_REGISTER_EVENT_IN", w::SOCK_NOTIFY_REGISTER_EVENT_IN.into()),
            ("SOCK_NOTIFY_REGISTER_EVENT_OUT", w::SOCK_NOTIFY_REGISTER_EVENT_OUT.into()),
            ("SOCK_NOTIFY_REGISTER_EVENT_HANGUP", w::SOCK_NOTIFY_REGISTER_EVENT_HANGUP.into()),
            ("SOCK_NOTIFY_REGISTER_EVENTS_ALL", w::SOCK_NOTIFY_REGISTER_EVENTS_ALL.into()),
            ("SOCK_NOTIFY_EVENT_IN", w::SOCK_NOTIFY_EVENT_IN.into()),
            ("SOCK_NOTIFY_EVENT_OUT", w::SOCK_NOTIFY_EVENT_OUT.into()),
            ("SOCK_NOTIFY_EVENT_HANGUP", w::SOCK_NOTIFY_EVENT_HANGUP.into()),
            ("SOCK_NOTIFY_EVENT_ERR", w::SOCK_NOTIFY_EVENT_ERR.into()),
            ("SOCK_NOTIFY_EVENT_REMOVE", w::SOCK_NOTIFY_EVENT_REMOVE.into()),
            ("SOCK_NOTIFY_EVENTS_ALL", w::SOCK_NOTIFY_EVENTS_ALL.into()),
            ("SOCK_NOTIFY_OP_NONE", w::SOCK_NOTIFY_OP_NONE.into()),
            ("SOCK_NOTIFY_OP_ENABLE", w::SOCK_NOTIFY_OP_ENABLE.into()),
            ("SOCK_NOTIFY_OP_DISABLE", w::SOCK_NOTIFY_OP_DISABLE.into()),
            ("SOCK_NOTIFY_OP_REMOVE", w::SOCK_NOTIFY_OP_REMOVE.into()),
            ("SOCK_NOTIFY_TRIGGER_ONESHOT", w::SOCK_NOTIFY_TRIGGER_ONESHOT.into()),
            ("SOCK_NOTIFY_TRIGGER_PERSISTENT", w::SOCK_NOTIFY_TRIGGER_PERSISTENT.into()),
            ("SOCK_NOTIFY_TRIGGER_LEVEL", w::SOCK_NOTIFY_TRIGGER_LEVEL.into()),
            ("SOCK_NOTIFY_TRIGGER_EDGE", w::SOCK_NOTIFY_TRIGGER_EDGE.into()),
            ("SOCK_NOTIFY_TRIGGER_ALL", w::SOCK_NOTIFY_TRIGGER_ALL.into()),
            ("INFINITE", w::INFINITE.into()),
            ("ERROR_INTERNAL_ERROR", ERROR_INTERNAL_ERROR.into()),
            ("SOCKET_ERROR", SOCKET_ERROR.into()),
            ("TRUE", TRUE.into()),
            ("FALSE", FALSE.into()),
        ];
        for (name, value) in core {
            assert_eq!(defines.get(*name), Some(value), "{name}: header and the Rust crates disagree");
        }
        assert!(!defines.contains_key("SOCK_NOTIFY_EVENT_DISABLE"), "D1: there is no SOCK_NOTIFY_EVENT_DISABLE");
    }

    #[test]
    fn overlap_detection() {
        let a = Some((100, 124));
        assert!(ranges_overlap(a, Some((120, 152))));
        assert!(ranges_overlap(a, Some((90, 101))));
        assert!(!ranges_overlap(a, Some((124, 156))));
        assert!(!ranges_overlap(a, Some((68, 100))));
        assert!(!ranges_overlap(a, Some((110, 110))), "an empty range overlaps nothing");
        assert!(!ranges_overlap(a, None));
    }

    #[test]
    fn byte_ranges_reject_wrapping() {
        assert_eq!(byte_range(0x1000 as *const u64, 2), Some((0x1000, 0x1010)));
        assert_eq!(byte_range((usize::MAX - 8) as *const u64, 2), None);
    }

    #[test]
    fn last_error_is_per_thread() {
        SetLastError(42);
        std::thread::spawn(|| {
            assert_eq!(GetLastError(), 0);
            WSASetLastError(7);
            assert_eq!(GetLastError(), 7);
        })
        .join()
        .unwrap();
        assert_eq!(WSAGetLastError(), 42);
    }

    #[test]
    fn garbage_handles_are_rejected_without_touching_the_core() {
        for h in [std::ptr::null_mut(), INVALID_HANDLE_VALUE, 0x1234_5678 as HANDLE, 3 as HANDLE] {
            SetLastError(0);
            assert_eq!(CloseHandle(h), FALSE);
            assert_eq!(GetLastError(), ERROR_INVALID_HANDLE);
            assert_eq!(PostQueuedCompletionStatus(h, 1, 2, std::ptr::null_mut()), FALSE);
            assert_eq!(GetLastError(), ERROR_INVALID_HANDLE);
        }
    }

    #[test]
    fn panics_become_error_codes() {
        let r = guard(|| -> u32 { panic!("boom") }, || ERROR_INTERNAL_ERROR);
        assert_eq!(r, ERROR_INTERNAL_ERROR);
    }
}
