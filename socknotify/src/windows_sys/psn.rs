//! `ProcessSocketNotifications` and `SocketNotificationRetrieveEvents`.

use super::errors::set_last_error;
use super::handles;
use super::{HANDLE, OVERLAPPED_ENTRY, SOCK_NOTIFY_REGISTRATION};
use crate::abi::codes::*;
use crate::sys::ptr;
use crate::winsock::{self as ws, CallShape};

/// `ProcessSocketNotifications`: applies `registrationcount` registrations in array order
/// (each one's result goes to its `registrationResult`), then, if `completioncount` > 0,
/// dequeues up to `completioncount` packets like
/// [`GetQueuedCompletionStatusEx`](super::GetQueuedCompletionStatusEx), waiting up to
/// `timeoutms` (`INFINITE`: forever).
///
/// Returns `ERROR_SUCCESS` (with `completioncount` > 0, `*receivedentrycount` ≥ 1 entries
/// were written; check every `registrationResult`), `WAIT_TIMEOUT` (`*receivedentrycount` =
/// 0), `ERROR_ABANDONED_WAIT_0` (the port was closed during the wait; the registrations stay
/// applied), or a whole-call error after which nothing was changed: `WSAEINVAL` (the
/// call-shape rules V1, V2, V4 — checked once, by [`CallShape::validate`] — with the overlap
/// rule widened to the count pointer), `WSAEFAULT` (V3, or a misaligned or wrapping pointer),
/// `ERROR_INVALID_HANDLE`, `WSAENOBUFS`. A code other than `ERROR_SUCCESS` is also stored as
/// the thread's last error.
///
/// The call is [`winsock::ProcessSocketNotifications`](crate::winsock::ProcessSocketNotifications)
/// over raw pointers: both end in [`winsock::process_validated`](crate::winsock::process_validated).
///
/// # Safety
///
/// `registrationinfos` must be NULL or valid for reads and writes of `registrationcount`
/// registrations, `completionportentries` NULL or valid for writes of `completioncount`
/// entries, and `receivedentrycount` NULL or valid for writing one `u32`, each for the
/// duration of the call and not accessed by another thread meanwhile.
///
/// ```
/// use socknotify::windows_sys::*;
/// use std::os::fd::AsRawFd;
/// unsafe {
///     let port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 0);
///     let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
///     let mut reg = SOCK_NOTIFY_REGISTRATION {
///         socket: a.as_raw_fd() as SOCKET,
///         completionKey: 42 as _,
///         eventFilter: SOCK_NOTIFY_REGISTER_EVENT_IN as _,
///         operation: SOCK_NOTIFY_OP_ENABLE as _,
///         triggerFlags: (SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT) as _,
///         registrationResult: 0,
///     };
///     std::io::Write::write_all(&mut &b, b"x").unwrap();
///     let mut entries = [OVERLAPPED_ENTRY::default(); 4];
///     let mut received = 0u32;
///     let rc = ProcessSocketNotifications(port, 1, &mut reg, 1000, 4, entries.as_mut_ptr(), &mut received);
///     assert_eq!(rc, ERROR_SUCCESS);
///     assert_eq!(reg.registrationResult, ERROR_SUCCESS);
///     assert_eq!((received, entries[0].lpCompletionKey), (1, 42));
///     assert_ne!(SocketNotificationRetrieveEvents(&entries[0]) & SOCK_NOTIFY_EVENT_IN, 0);
///     CloseHandle(port);
/// }
/// ```
pub unsafe fn ProcessSocketNotifications(
    completionport: HANDLE,
    registrationcount: u32,
    registrationinfos: *mut SOCK_NOTIFY_REGISTRATION,
    timeoutms: u32,
    completioncount: u32,
    completionportentries: *mut OVERLAPPED_ENTRY,
    receivedentrycount: *mut u32,
) -> u32 {
    // SAFETY: forwarded contract of this function.
    let rc = unsafe {
        psn(
            completionport,
            registrationcount,
            registrationinfos,
            timeoutms,
            completioncount,
            completionportentries,
            receivedentrycount,
        )
    };
    if rc != ERROR_SUCCESS {
        set_last_error(rc);
    }
    rc
}

/// The body of [`ProcessSocketNotifications`]: the call's shape (checked with the core's
/// rules), then what Rust needs to hold the pointers, then the handle, then the front end.
///
/// # Safety
///
/// As for [`ProcessSocketNotifications`].
unsafe fn psn(
    handle: HANDLE,
    reg_count: u32,
    regs: *mut SOCK_NOTIFY_REGISTRATION,
    timeout_ms: u32,
    entry_count: u32,
    entries: *mut OVERLAPPED_ENTRY,
    received: *mut u32,
) -> u32 {
    let reg_range = if regs.is_null() { None } else { ptr::byte_range(regs, reg_count as usize) };
    let entry_range = if entries.is_null() { None } else { ptr::byte_range(entries, entry_count as usize) };
    let received_range = if received.is_null() { None } else { ptr::byte_range(received, 1) };
    let shape = CallShape {
        registration_count: reg_count,
        registrations_null: regs.is_null(),
        completion_count: entry_count,
        entries_null: entries.is_null(),
        received_null: received.is_null(),
        timeout_ms,
        // V4, widened to the count pointer: Rust must not hold overlapping &mut views.
        arrays_overlap: ptr::ranges_overlap(reg_range, entry_range)
            || ptr::ranges_overlap(received_range, reg_range)
            || ptr::ranges_overlap(received_range, entry_range),
    };
    // The call-shape rules are checked here, once; the front end does not check them again.
    let call = match shape.validate() {
        Ok(call) => call,
        Err(code) => return code,
    };
    // Pointers the shape rules accepted must still be usable as Rust slices.
    if (!regs.is_null() && !ptr::usable(regs, reg_count as usize))
        || (!entries.is_null() && !ptr::usable(entries, entry_count as usize))
        || (!received.is_null() && !received.is_aligned())
    {
        return WSAEFAULT;
    }
    let Some(port) = handles::port(handle) else {
        return ERROR_INVALID_HANDLE;
    };
    // SAFETY: each pointer is NULL (→ None) or checked usable above, the three ranges are
    // pairwise disjoint (V4 above), and the caller provides them readable and writable for
    // this call, which is as long as the references live.
    let (regs, entries, received) = unsafe {
        (ptr::slice_mut(regs, reg_count as usize), ptr::slice_mut(entries, entry_count as usize), ptr::as_mut(received))
    };
    ws::process_validated(
        &port,
        call,
        crate::sys::registrations_mut(regs.unwrap_or_default()),
        crate::sys::entries_mut(entries.unwrap_or_default()),
        received,
    )
}

/// `SocketNotificationRetrieveEvents` (an inline function of `winsock2.h`, so not in
/// `windows-sys`): the event mask (`SOCK_NOTIFY_EVENT_*` bits) of a notification packet, its
/// `dwNumberOfBytesTransferred`. NULL gives 0.
///
/// # Safety
///
/// `notification` must be NULL or valid for reading one `OVERLAPPED_ENTRY`.
///
/// ```
/// use socknotify::windows_sys::*;
/// let e = OVERLAPPED_ENTRY { dwNumberOfBytesTransferred: 0x81, ..Default::default() };
/// unsafe {
///     assert_eq!(SocketNotificationRetrieveEvents(&e), SOCK_NOTIFY_EVENT_IN | SOCK_NOTIFY_EVENT_REMOVE);
///     assert_eq!(SocketNotificationRetrieveEvents(std::ptr::null()), 0);
/// }
/// ```
pub unsafe fn SocketNotificationRetrieveEvents(notification: *const OVERLAPPED_ENTRY) -> u32 {
    // SAFETY: NULL or a readable entry (this function's contract).
    match unsafe { ptr::as_ref(notification) } {
        Some(e) => e.dwNumberOfBytesTransferred,
        None => 0,
    }
}
