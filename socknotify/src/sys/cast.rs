//! The one layout cast of the crate: Windows' `OVERLAPPED_ENTRY` array seen as [`Completion`]s.

use crate::abi::windows::OVERLAPPED_ENTRY;
use crate::abi::Completion;

/// Views an `OVERLAPPED_ENTRY` array as [`Completion`]s, so that the port writes straight
/// into the caller's array.
pub(crate) fn completions_mut(entries: &mut [OVERLAPPED_ENTRY]) -> &mut [Completion] {
    // SAFETY: both types are #[repr(C)] with fields of the same types at the same offsets
    // (sizes, alignments and offsets are asserted at compile time in `abi::windows`), every
    // bit pattern is valid for both, and the returned slice borrows `entries` mutably for its
    // whole life, so no other view of the memory exists meanwhile.
    unsafe { std::slice::from_raw_parts_mut(entries.as_mut_ptr().cast::<Completion>(), entries.len()) }
}
