//! Pointer checks: the only place where a caller's raw pointers become Rust references.
//!
//! Every pointer a [`windows_sys`](crate::windows_sys) call receives (and so every pointer a
//! C program passes to socknotify-c, which calls them) is checked here (NULL, alignment, a
//! byte range that does not wrap the address space; the callers check overlap with the other
//! arrays of the call with [`byte_range`] and [`ranges_overlap`]) before it is used, so what
//! Rust sees is a valid `&`/`&mut` or an [`Out`] slot. What cannot be checked (that the memory
//! is really there and not shared with another thread) is the caller's contract, stated in
//! each call's `# Safety` section and in the C header.

use std::mem::size_of;

/// The byte range `[p, p + count * size_of::<T>())`, or `None` when it wraps the address
/// space or goes past `isize::MAX` (what a Rust slice may cover).
pub(crate) fn byte_range<T>(p: *const T, count: usize) -> Option<(usize, usize)> {
    let start = p as usize;
    let len = count.checked_mul(size_of::<T>())?;
    let end = start.checked_add(len)?;
    if end > isize::MAX as usize {
        return None;
    }
    Some((start, end))
}

/// Whether two byte ranges share a byte (an empty or missing range overlaps nothing).
pub(crate) fn ranges_overlap(a: Option<(usize, usize)>, b: Option<(usize, usize)>) -> bool {
    match (a, b) {
        (Some((a0, a1)), Some((b0, b1))) => a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1,
        _ => false,
    }
}

/// `p` may be turned into a slice of `count` elements: non-NULL, aligned, and its range does
/// not wrap.
pub(crate) fn usable<T>(p: *const T, count: usize) -> bool {
    !p.is_null() && p.is_aligned() && byte_range(p, count).is_some()
}

/// A checked output slot: a non-NULL, aligned pointer the C caller passed for one `T`.
#[derive(Clone, Copy)]
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// The slot behind `p`, or `None` when `p` is NULL or misaligned.
    ///
    /// # Safety
    ///
    /// `p` must be NULL or valid for writes of one `T` for as long as the returned `Out` (or
    /// a copy) is used, and no Rust reference may point into that `T` meanwhile.
    pub(crate) unsafe fn new(p: *mut T) -> Option<Self> {
        (!p.is_null() && p.is_aligned()).then_some(Out(p))
    }

    /// Writes `value` into the slot (a plain store: the old value is not dropped).
    pub(crate) fn write(self, value: T) {
        // SAFETY: `new` checked non-NULL and alignment; its caller promised the slot is
        // writable for the life of this value and not aliased by a Rust reference.
        unsafe { self.0.write(value) }
    }
}

/// A mutable slice of `count` elements at `p`, or `None` when `p` is NULL, misaligned, or its
/// range wraps.
///
/// # Safety
///
/// `p` must be NULL or valid for reads and writes of `count` elements of `T`, holding
/// initialised values, for the lifetime `'a`, and the memory must not be accessed through
/// any other pointer or reference during `'a`.
pub(crate) unsafe fn slice_mut<'a, T>(p: *mut T, count: usize) -> Option<&'a mut [T]> {
    if !usable(p, count) {
        return None;
    }
    // SAFETY: non-NULL, aligned, a non-wrapping range of at most isize::MAX bytes (checked
    // above); valid, initialised and unaliased for 'a by the caller's contract.
    Some(unsafe { std::slice::from_raw_parts_mut(p, count) })
}

/// A mutable reference to the `T` at `p`, or `None` when `p` is NULL or misaligned.
///
/// # Safety
///
/// As for [`slice_mut`] with `count == 1`.
pub(crate) unsafe fn as_mut<'a, T>(p: *mut T) -> Option<&'a mut T> {
    // SAFETY: forwarded contract; `slice_mut` checks NULL, alignment and range.
    unsafe { slice_mut(p, 1) }.map(|s| &mut s[0])
}

/// A shared reference to the `T` at `p`, or `None` when `p` is NULL or misaligned.
///
/// # Safety
///
/// `p` must be NULL or valid for reads of one initialised `T` for `'a`, and not written
/// through any other pointer during `'a`.
pub(crate) unsafe fn as_ref<'a, T>(p: *const T) -> Option<&'a T> {
    if p.is_null() || !p.is_aligned() {
        return None;
    }
    // SAFETY: non-NULL and aligned (checked above); readable and not written meanwhile by
    // the caller's contract.
    Some(unsafe { &*p })
}

/// A shared slice of `count` elements at `p`, or `None` when `p` is NULL, misaligned, or
/// its range wraps.
///
/// # Safety
///
/// `p` must be NULL or valid for reads of `count` initialised elements of `T` for `'a`, and
/// not written through any other pointer during `'a`.
pub(crate) unsafe fn slice<'a, T>(p: *const T, count: usize) -> Option<&'a [T]> {
    if !usable(p, count) {
        return None;
    }
    // SAFETY: non-NULL, aligned, a non-wrapping range (checked above); readable and not
    // written meanwhile by the caller's contract.
    Some(unsafe { std::slice::from_raw_parts(p, count) })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(!usable((usize::MAX - 8) as *const u64, 2));
        assert!(!usable(std::ptr::null::<u64>(), 0));
        assert!(!usable(0x1001 as *const u64, 1), "misaligned");
    }

    #[test]
    fn checked_slots_refuse_null_and_misaligned() {
        let mut x = [0u64; 2];
        // SAFETY: NULL, a misaligned pointer (refused before use) and a live local.
        unsafe {
            assert!(Out::<u64>::new(std::ptr::null_mut()).is_none());
            assert!(Out::new((x.as_mut_ptr() as *mut u8).add(1) as *mut u64).is_none());
            Out::new(&mut x[1]).expect("aligned").write(5);
        }
        assert_eq!(x, [0, 5]);
    }
}
