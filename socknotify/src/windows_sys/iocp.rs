//! Completion ports: `CreateIoCompletionPort`, `PostQueuedCompletionStatus`,
//! `GetQueuedCompletionStatus(Ex)` and `CloseHandle`, and socknotify's port options.

use super::errors::fail;
use super::handles::{self, Object};
use super::{BOOL, FALSE, HANDLE, INVALID_HANDLE_VALUE, OVERLAPPED, OVERLAPPED_ENTRY, TRUE};
use crate::abi::codes::*;
use crate::abi::Completion;
use crate::port::CompletionPort;
use crate::sys::ptr::{self, Out};
use crate::winsock::{as_completions, timeout_from_ms};
use std::ptr::null_mut;

/// `CreateIoCompletionPort`: creates a completion port whose concurrency value is
/// `numberofconcurrentthreads` (0: the number of processors) and returns its handle.
///
/// Only the creation form is supported (`filehandle == INVALID_HANDLE_VALUE`,
/// `existingcompletionport` NULL; sockets are associated with
/// [`ProcessSocketNotifications`](super::ProcessSocketNotifications)); any other form returns
/// NULL with `ERROR_INVALID_PARAMETER`. `completionkey` is ignored, as on Windows for
/// creation.
///
/// # Safety
///
/// None: it is `unsafe` only to have `windows-sys`'s signature.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     let port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 1);
///     assert!(!port.is_null());
///     assert!(CreateIoCompletionPort(5 as HANDLE, port, 0, 0).is_null()); // association
///     assert_eq!(GetLastError(), ERROR_INVALID_PARAMETER);
///     assert_eq!(CloseHandle(port), TRUE);
/// }
/// ```
pub unsafe fn CreateIoCompletionPort(
    filehandle: HANDLE,
    existingcompletionport: HANDLE,
    completionkey: usize,
    numberofconcurrentthreads: u32,
) -> HANDLE {
    let _ = completionkey;
    if filehandle != INVALID_HANDLE_VALUE || !existingcompletionport.is_null() {
        return fail(ERROR_INVALID_PARAMETER, null_mut());
    }
    let port = match CompletionPort::with_concurrency(numberofconcurrentthreads) {
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
}

/// `PostQueuedCompletionStatus`: queues the packet `{lpCompletionKey: dwcompletionkey,
/// lpOverlapped, Internal: 0, dwNumberOfBytesTransferred}`; it is dequeued unchanged, in FIFO
/// order with the notifications. FALSE with `ERROR_INVALID_HANDLE` when `completionport` is
/// not a live port.
///
/// # Safety
///
/// None: `lpoverlapped` is never dereferenced (only its address travels); it is `unsafe` only
/// to have `windows-sys`'s signature.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     let port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 0);
///     let mut ov = OVERLAPPED::default();
///     assert_eq!(PostQueuedCompletionStatus(port, 5, 7, &mut ov), TRUE);
///     let (mut bytes, mut key, mut got) = (0u32, 0usize, std::ptr::null_mut());
///     assert_eq!(GetQueuedCompletionStatus(port, &mut bytes, &mut key, &mut got, 0), TRUE);
///     assert_eq!((bytes, key, got), (5, 7, &mut ov as *mut OVERLAPPED));
///     CloseHandle(port);
/// }
/// ```
pub unsafe fn PostQueuedCompletionStatus(
    completionport: HANDLE,
    dwnumberofbytestransferred: u32,
    dwcompletionkey: usize,
    lpoverlapped: *const OVERLAPPED,
) -> BOOL {
    let Some(port) = handles::port(completionport) else {
        return fail(ERROR_INVALID_HANDLE, FALSE);
    };
    match port.post(Completion::new(dwcompletionkey, dwnumberofbytestransferred, lpoverlapped as usize)) {
        Ok(()) => TRUE,
        Err(e) => fail(e.code(), FALSE),
    }
}

/// `GetQueuedCompletionStatus`: dequeues one packet, waiting up to `dwmilliseconds`
/// (`INFINITE`: forever). TRUE with the packet's byte count, key and overlapped address
/// written; otherwise FALSE, `*lpoverlapped` = NULL (when that pointer is usable) and the
/// last error: `WAIT_TIMEOUT`, `ERROR_ABANDONED_WAIT_0` (the port was closed during the
/// wait), `ERROR_INVALID_HANDLE`, or `ERROR_INVALID_PARAMETER` (a NULL or misaligned output
/// pointer).
///
/// # Safety
///
/// Each output pointer must be NULL or valid for writing its type for the duration of the
/// call.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     let port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 0);
///     let (mut bytes, mut key, mut ov) = (0u32, 0usize, 8 as *mut OVERLAPPED);
///     assert_eq!(GetQueuedCompletionStatus(port, &mut bytes, &mut key, &mut ov, 0), FALSE);
///     assert_eq!(GetLastError(), WAIT_TIMEOUT);
///     assert!(ov.is_null());
///     CloseHandle(port);
/// }
/// ```
pub unsafe fn GetQueuedCompletionStatus(
    completionport: HANDLE,
    lpnumberofbytestransferred: *mut u32,
    lpcompletionkey: *mut usize,
    lpoverlapped: *mut *mut OVERLAPPED,
    dwmilliseconds: u32,
) -> BOOL {
    // SAFETY: each pointer is NULL or writable for the call (this function's contract).
    let (bytes, key, ov) =
        unsafe { (Out::new(lpnumberofbytestransferred), Out::new(lpcompletionkey), Out::new(lpoverlapped)) };
    // Every failure leaves NULL in *lpoverlapped (when usable): written first, overwritten
    // only by a dequeued packet.
    if let Some(ov) = ov {
        ov.write(null_mut());
    }
    let (Some(bytes), Some(key), Some(ov)) = (bytes, key, ov) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    let Some(port) = handles::port(completionport) else {
        return fail(ERROR_INVALID_HANDLE, FALSE);
    };
    let mut one = [Completion::default()];
    match port.dequeue(&mut one, timeout_from_ms(dwmilliseconds)) {
        Ok(0) => fail(WAIT_TIMEOUT, FALSE),
        Ok(_) => {
            let c = one[0];
            bytes.write(c.bytes());
            key.write(c.key());
            ov.write(c.overlapped() as *mut OVERLAPPED);
            TRUE
        }
        Err(e) => fail(e.code(), FALSE),
    }
}

/// `GetQueuedCompletionStatusEx`: dequeues up to `ulcount` packets into
/// `lpcompletionportentries`, waiting up to `dwmilliseconds` for the first. TRUE with
/// `*ulnumentriesremoved` (≥ 1) written; otherwise FALSE and the last error: `WAIT_TIMEOUT`
/// (with `*ulnumentriesremoved` = 0), `ERROR_ABANDONED_WAIT_0`, `ERROR_INVALID_HANDLE`, or
/// `ERROR_INVALID_PARAMETER` (`ulcount` 0, a NULL, misaligned or overlapping pointer).
/// `falertable` has no effect (Linux has no APCs).
///
/// # Safety
///
/// `lpcompletionportentries` must be NULL or valid for writing `ulcount` entries, and
/// `ulnumentriesremoved` NULL or valid for writing one `u32`, for the duration of the call.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     let port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 0);
///     PostQueuedCompletionStatus(port, 1, 10, std::ptr::null());
///     PostQueuedCompletionStatus(port, 2, 20, std::ptr::null());
///     let mut entries = [OVERLAPPED_ENTRY::default(); 4];
///     let mut n = 0u32;
///     assert_eq!(GetQueuedCompletionStatusEx(port, entries.as_mut_ptr(), 4, &mut n, 0, FALSE), TRUE);
///     assert_eq!(n, 2);
///     assert_eq!((entries[1].lpCompletionKey, entries[1].dwNumberOfBytesTransferred), (20, 2));
///     CloseHandle(port);
/// }
/// ```
pub unsafe fn GetQueuedCompletionStatusEx(
    completionport: HANDLE,
    lpcompletionportentries: *mut OVERLAPPED_ENTRY,
    ulcount: u32,
    ulnumentriesremoved: *mut u32,
    dwmilliseconds: u32,
    falertable: BOOL,
) -> BOOL {
    let _ = falertable;
    let count = ulcount as usize;
    let entries_range = ptr::byte_range(lpcompletionportentries, count);
    let count_range = ptr::byte_range(ulnumentriesremoved, 1);
    if ulcount == 0 || !ptr::usable(lpcompletionportentries, count) || ptr::ranges_overlap(entries_range, count_range) {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    // SAFETY: the count pointer is NULL or writable for the call (this function's contract).
    let Some(removed) = (unsafe { Out::new(ulnumentriesremoved) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    let Some(port) = handles::port(completionport) else {
        return fail(ERROR_INVALID_HANDLE, FALSE);
    };
    // SAFETY: the entries are writable for the call (this function's contract; usable, as
    // checked above); they do not overlap the count (checked above), and the slice lives only
    // during this call.
    let Some(entries) = (unsafe { ptr::slice_mut(lpcompletionportentries, count) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    match port.dequeue(as_completions(crate::sys::entries_mut(entries)), timeout_from_ms(dwmilliseconds)) {
        Ok(0) => {
            removed.write(0);
            fail(WAIT_TIMEOUT, FALSE)
        }
        Ok(n) => {
            // n <= ulcount, so it fits.
            removed.write(n as u32);
            TRUE
        }
        Err(e) => fail(e.code(), FALSE),
    }
}

/// `CloseHandle`: closes a completion port (its waiters wake with `ERROR_ABANDONED_WAIT_0`,
/// queued packets are discarded, its registrations dropped without REMOVE packets) or releases
/// a thread handle (the thread runs on), and retires the handle: it is never valid again.
/// FALSE with `ERROR_INVALID_HANDLE` for anything but a live port or thread handle (sockets
/// are closed with [`closesocket`](super::closesocket)).
///
/// # Safety
///
/// None: it is `unsafe` only to have `windows-sys`'s signature.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     let port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 0);
///     assert_eq!(CloseHandle(port), TRUE);
///     assert_eq!(CloseHandle(port), FALSE);
///     assert_eq!(GetLastError(), ERROR_INVALID_HANDLE);
/// }
/// ```
pub unsafe fn CloseHandle(hobject: HANDLE) -> BOOL {
    match handles::remove(hobject) {
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
    }
}

/// `socknotify_SetPortOptions` option (an extension, not in Windows): the program promises
/// that every socket it registers with the port is closed with
/// [`closesocket`](super::closesocket) (or REMOVEd first); in return re-arms cost no system
/// call. See [`CompletionPort::set_closes_through_port`].
///
/// ```
/// assert_eq!(socknotify::windows_sys::SOCKNOTIFY_PORT_CLOSES_THROUGH_PORT, 1);
/// ```
pub const SOCKNOTIFY_PORT_CLOSES_THROUGH_PORT: u32 = 0x1;

/// `socknotify_SetPortOptions` (an extension, not in Windows): sets port options
/// (`SOCKNOTIFY_PORT_*` bits; 0 turns them all off), before the port's first registration.
/// FALSE with `ERROR_INVALID_HANDLE` (not a live port) or `ERROR_INVALID_PARAMETER` (unknown
/// bits, or the port already had a registration).
///
/// # Safety
///
/// None: it is `unsafe` only to match the other calls of this module.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     let port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 0);
///     assert_eq!(socknotify_SetPortOptions(port, SOCKNOTIFY_PORT_CLOSES_THROUGH_PORT), TRUE);
///     assert_eq!(socknotify_SetPortOptions(port, 0x100), FALSE);
///     assert_eq!(GetLastError(), ERROR_INVALID_PARAMETER);
///     CloseHandle(port);
/// }
/// ```
pub unsafe fn socknotify_SetPortOptions(completionport: HANDLE, options: u32) -> BOOL {
    let Some(port) = handles::port(completionport) else {
        return fail(ERROR_INVALID_HANDLE, FALSE);
    };
    if options & !SOCKNOTIFY_PORT_CLOSES_THROUGH_PORT != 0 {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    }
    match port.set_closes_through_port(options & SOCKNOTIFY_PORT_CLOSES_THROUGH_PORT != 0) {
        Ok(()) => TRUE,
        Err(crate::Error::InvalidHandle) => fail(ERROR_INVALID_HANDLE, FALSE),
        Err(_) => fail(ERROR_INVALID_PARAMETER, FALSE),
    }
}

/// `socknotify_GetPortDescriptor` (an extension, not in Windows): the port's descriptor, to
/// nest the port in another event loop (`epoll`, `poll`, libuv, an async runtime). It is
/// readable when a non-blocking dequeue (`GetQueuedCompletionStatusEx` or
/// `ProcessSocketNotifications` with a zero timeout) may find a packet, and quiet while the
/// port is idle; wait for it, dequeue with a zero timeout until `WAIT_TIMEOUT`, wait again
/// (see `impl AsFd for CompletionPort`). The descriptor belongs to the port: do not close or
/// read it. -1 with `ERROR_INVALID_HANDLE` for anything but a live port.
///
/// # Safety
///
/// None: it is `unsafe` only to match the other calls of this module.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     let port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 0);
///     let fd = socknotify_GetPortDescriptor(port);
///     assert!(fd >= 0);
///     let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
///     assert_eq!(libc::poll(&mut p, 1, 0), 0); // idle
///     PostQueuedCompletionStatus(port, 1, 2, std::ptr::null_mut());
///     assert_eq!(libc::poll(&mut p, 1, 0), 1); // a packet is queued
///     CloseHandle(port);
///     assert_eq!(socknotify_GetPortDescriptor(port), -1);
///     assert_eq!(GetLastError(), ERROR_INVALID_HANDLE);
/// }
/// ```
pub unsafe fn socknotify_GetPortDescriptor(completionport: HANDLE) -> i32 {
    match handles::port(completionport) {
        // The port behind the handle outlives this clone: the number stays valid until
        // `CloseHandle` retires the handle (and the last clone is dropped).
        Some(port) => std::os::fd::AsRawFd::as_raw_fd(&port),
        None => fail(ERROR_INVALID_HANDLE, -1),
    }
}

/// `SOCKNOTIFY_PORT_STATS` (an extension): a snapshot of one port, filled by
/// [`socknotify_GetPortStats`]; the fields are those of [`crate::Stats`].
///
/// ```
/// let s = socknotify::windows_sys::SOCKNOTIFY_PORT_STATS::default();
/// assert_eq!(s.registrations, 0);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SOCKNOTIFY_PORT_STATS {
    /// Registrations held, including those whose REMOVE packet is not yet dequeued.
    pub registrations: u64,
    /// Packets queued and not yet handed to a thread.
    pub queued: u64,
    /// Threads blocked in a dequeue on the port.
    pub waiters: u64,
    /// Threads counted as running (decision D23).
    pub running: u64,
    /// Packets posted since the port was created.
    pub posted: u64,
    /// Packets handed to threads since the port was created.
    pub delivered: u64,
    /// Audits of the kernel's watch list (closes_through_port only).
    pub audits: u64,
    /// Registrations repaired after a broken closes_through_port promise.
    pub reuse_repairs: u64,
}

/// `socknotify_GetPortStats` (an extension, not in Windows): fills `*stats` with a snapshot of
/// the port. FALSE with `ERROR_INVALID_HANDLE` (not a live port) or `ERROR_INVALID_PARAMETER`
/// (`stats` NULL or misaligned).
///
/// # Safety
///
/// `stats` must be NULL or valid for writes of one `SOCKNOTIFY_PORT_STATS`.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     let port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 0);
///     PostQueuedCompletionStatus(port, 1, 2, std::ptr::null_mut());
///     let mut s = SOCKNOTIFY_PORT_STATS::default();
///     assert_eq!(socknotify_GetPortStats(port, &mut s), TRUE);
///     assert_eq!((s.posted, s.queued), (1, 1));
///     assert_eq!(socknotify_GetPortStats(port, std::ptr::null_mut()), FALSE);
///     CloseHandle(port);
/// }
/// ```
pub unsafe fn socknotify_GetPortStats(completionport: HANDLE, stats: *mut SOCKNOTIFY_PORT_STATS) -> BOOL {
    let Some(port) = handles::port(completionport) else {
        return fail(ERROR_INVALID_HANDLE, FALSE);
    };
    // SAFETY: the caller provides `stats` NULL or writable for one value; nothing else
    // refers to it during this call.
    let Some(out) = (unsafe { Out::new(stats) }) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    let s = port.stats();
    out.write(SOCKNOTIFY_PORT_STATS {
        registrations: s.registrations as u64,
        queued: s.queued as u64,
        waiters: s.waiters as u64,
        running: s.running as u64,
        posted: s.posted,
        delivered: s.delivered,
        audits: s.audits,
        reuse_repairs: s.reuse_repairs,
    });
    TRUE
}

/// The [`CompletionPort`] behind a handle from [`CreateIoCompletionPort`] (a clone: the same
/// port), to use the safe API on it; `None` for anything but a live port handle. Closing the
/// handle closes the port.
///
/// ```
/// use socknotify::windows_sys::*;
/// unsafe {
///     let h = CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 0);
///     let port = completion_port(h).unwrap();
///     port.post(socknotify::Completion::new(9, 0, 0)).unwrap();
///     let mut e = [OVERLAPPED_ENTRY::default(); 1];
///     let mut n = 0;
///     assert_eq!(GetQueuedCompletionStatusEx(h, e.as_mut_ptr(), 1, &mut n, 0, FALSE), TRUE);
///     assert_eq!(e[0].lpCompletionKey, 9);
///     CloseHandle(h);
///     assert!(port.is_closed());
///     assert!(completion_port(h).is_none());
/// }
/// ```
pub fn completion_port(handle: HANDLE) -> Option<CompletionPort> {
    handles::port(handle)
}
