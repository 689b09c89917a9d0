//! `ProcessSocketNotifications` and `SocketNotificationRetrieveEvents`.

use crate::errors::{guard, set_last_error};
use crate::handles;
use crate::ptr;
use crate::types::*;
use socknotify::codes::*;
use socknotify::winsock::{self as ws, OVERLAPPED_ENTRY, SOCK_NOTIFY_REGISTRATION};

/// `ProcessSocketNotifications`: checks the call's shape with the core's rules
/// (`CallShape`: V1–V4, with the overlap rule widened to the count pointer), then what Rust
/// needs to hold the pointers (alignment, non-wrapping ranges: `WSAEFAULT`), then the handle,
/// then hands the call to the core's front end, which applies the registrations and dequeues.
/// A failed call changes nothing. A failure code is also stored as the thread's last error.
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

/// The body of [`ProcessSocketNotifications`].
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
    let shape = ws::CallShape {
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
    // The call-shape rules are checked here, once; the core does not check them again.
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
    ws::process_validated(&port, call, regs.unwrap_or_default(), entries.unwrap_or_default(), received)
}

/// The exported form of the header's inline `SocketNotificationRetrieveEvents` (NULL → 0).
///
/// # Safety
///
/// `notification` must be NULL or valid for reading one `OVERLAPPED_ENTRY`.
#[no_mangle]
pub unsafe extern "C" fn socknotify_SocketNotificationRetrieveEvents(notification: *const OVERLAPPED_ENTRY) -> u32 {
    // SAFETY: the caller passes NULL or a readable entry (this fn's contract).
    match unsafe { ptr::as_ref(notification) } {
        Some(e) => ws::SocketNotificationRetrieveEvents(e),
        None => 0,
    }
}
