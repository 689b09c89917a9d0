//! `ProcessSocketNotifications` and `SocketNotificationRetrieveEvents`, each the core's
//! `socknotify::windows_sys` call.

use super::set_last_error;
use crate::errors::guard;
use crate::types::*;
use socknotify::windows_sys as ws;

/// `ProcessSocketNotifications`: the core checks the call's shape with its rules
/// (`CallShape`: V1–V4, with the overlap rule widened to the count pointer), then what Rust
/// needs to hold the pointers (alignment, non-wrapping ranges: `WSAEFAULT`), then the handle,
/// then applies the registrations and dequeues. A failed call changes nothing. A failure code
/// is also stored as the thread's last error.
///
/// # Safety
///
/// `registrationInfos` must be NULL or valid for reads and writes of `registrationCount`
/// registrations, `completionPortEntries` NULL or valid for writes of `completionCount`
/// entries, and `receivedEntryCount` NULL or valid for writing one UINT32, each for the
/// duration of the call and not accessed by another thread meanwhile.
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
    guard(
        // SAFETY: forwarded contract (the same as the core call's).
        || unsafe {
            ws::ProcessSocketNotifications(
                completionPort,
                registrationCount,
                registrationInfos,
                timeoutMs,
                completionCount,
                completionPortEntries,
                receivedEntryCount,
            )
        },
        || {
            set_last_error(ws::ERROR_INTERNAL_ERROR);
            ws::ERROR_INTERNAL_ERROR
        },
    )
}

/// The exported form of the header's inline `SocketNotificationRetrieveEvents` (NULL → 0).
///
/// # Safety
///
/// `notification` must be NULL or valid for reading one `OVERLAPPED_ENTRY`.
#[no_mangle]
pub unsafe extern "C" fn socknotify_SocketNotificationRetrieveEvents(notification: *const OVERLAPPED_ENTRY) -> u32 {
    // SAFETY: forwarded contract (the same as the core call's).
    guard(|| unsafe { ws::SocketNotificationRetrieveEvents(notification) }, || 0)
}
