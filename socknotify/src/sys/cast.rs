//! The layout casts of the crate: Windows' arrays seen as the types the port works on.
//!
//! - `OVERLAPPED_ENTRY` (either spelling) as [`Completion`];
//! - `windows-sys`'s `SOCK_NOTIFY_REGISTRATION` (a `*mut c_void` key) as the `usize`-keyed
//!   one that the machine decodes.

use crate::abi::windows::{OVERLAPPED_ENTRY, SOCK_NOTIFY_REGISTRATION};
use crate::abi::{win32, Completion};

/// Views an `OVERLAPPED_ENTRY` array as [`Completion`]s, so that the port writes straight
/// into the caller's array.
pub(crate) fn completions_mut(entries: &mut [OVERLAPPED_ENTRY]) -> &mut [Completion] {
    // SAFETY: both types are #[repr(C)] with fields of the same types at the same offsets
    // (sizes, alignments and offsets are asserted at compile time in `abi::windows`), every
    // bit pattern is valid for both, and the returned slice borrows `entries` mutably for its
    // whole life, so no other view of the memory exists meanwhile.
    unsafe { std::slice::from_raw_parts_mut(entries.as_mut_ptr().cast::<Completion>(), entries.len()) }
}

/// Views `windows-sys`'s `OVERLAPPED_ENTRY` array (`lpOverlapped: *mut OVERLAPPED`) as the
/// `usize`-spelled one, so that the port writes straight into the caller's array.
pub(crate) fn entries_mut(entries: &mut [win32::OVERLAPPED_ENTRY]) -> &mut [OVERLAPPED_ENTRY] {
    // SAFETY: both types are #[repr(C)] with the same size, alignment and field offsets
    // (asserted at compile time in `abi::win32`); they differ only in `lpOverlapped`, a
    // pointer in one and a `usize` in the other, and every bit pattern is valid for both
    // (socknotify never dereferences the pointer: it only carries the address that was
    // posted). The returned slice borrows `entries` mutably for its whole life, so no other
    // view of the memory exists meanwhile.
    unsafe { std::slice::from_raw_parts_mut(entries.as_mut_ptr().cast::<OVERLAPPED_ENTRY>(), entries.len()) }
}

/// Views `windows-sys`'s `SOCK_NOTIFY_REGISTRATION` array (`completionKey: *mut c_void`) as
/// the `usize`-keyed one, so that the machine reads and writes the caller's entries in place.
pub(crate) fn registrations_mut(regs: &mut [win32::SOCK_NOTIFY_REGISTRATION]) -> &mut [SOCK_NOTIFY_REGISTRATION] {
    // SAFETY: both types are #[repr(C)] with the same size, alignment and field offsets
    // (asserted at compile time in `abi::win32`); they differ only in `completionKey`, a
    // pointer in one and a `usize` in the other, and every bit pattern is valid for both (the
    // key is never dereferenced: it is a value handed back in packets). The returned slice
    // borrows `regs` mutably for its whole life, so no other view of the memory exists
    // meanwhile.
    unsafe { std::slice::from_raw_parts_mut(regs.as_mut_ptr().cast::<SOCK_NOTIFY_REGISTRATION>(), regs.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_sys_arrays_are_seen_in_place() {
        let mut regs =
            [win32::SOCK_NOTIFY_REGISTRATION { socket: 3, completionKey: 0x1234 as _, ..Default::default() }];
        let seen = registrations_mut(&mut regs);
        assert_eq!((seen[0].socket, seen[0].completionKey), (3, 0x1234));
        seen[0].registrationResult = 10022;
        assert_eq!(regs[0].registrationResult, 10022);

        let mut entries = [win32::OVERLAPPED_ENTRY::default(); 2];
        let seen = entries_mut(&mut entries);
        seen[1].lpOverlapped = 0x40;
        seen[1].dwNumberOfBytesTransferred = 7;
        assert_eq!((entries[1].lpOverlapped as usize, entries[1].dwNumberOfBytesTransferred), (0x40, 7));
        assert!(entries[0].lpOverlapped.is_null());
    }
}
