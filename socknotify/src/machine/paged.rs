//! Tables that grow a page at a time: a large table wastes at most one page (a doubling `Vec`
//! wastes up to half its capacity, 39% at 10,000 registrations), and growing never copies
//! or moves what is already stored.

use std::collections::TryReserveError;

/// A dense array that grows at its end, in pages of `P` elements (`P` a power of two). The
/// first page grows like a `Vec`, doubling up to `P`, so that a small table stays small.
#[derive(Debug)]
pub(crate) struct Slab<T, const P: usize> {
    pages: Vec<Vec<T>>,
    len: usize,
}

impl<T, const P: usize> Default for Slab<T, P> {
    fn default() -> Self {
        Slab { pages: Vec::new(), len: 0 }
    }
}

impl<T, const P: usize> Slab<T, P> {
    const SHIFT: u32 = {
        assert!(P.is_power_of_two());
        P.trailing_zeros()
    };

    /// Elements stored.
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.pages.get(i >> Self::SHIFT)?.get(i & (P - 1))
    }

    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.pages.get_mut(i >> Self::SHIFT)?.get_mut(i & (P - 1))
    }

    /// The capacity a page `p` gets when it is first allocated, for `want` elements.
    fn first_capacity(p: usize, want: usize) -> usize {
        if p == 0 {
            want.next_power_of_two().clamp(4.min(P), P)
        } else {
            P
        }
    }

    /// Appends `v` (aborting on out-of-memory, as `Vec::push` does, unless
    /// [`try_reserve`](Self::try_reserve) made room first).
    pub fn push(&mut self, v: T) {
        let p = self.len >> Self::SHIFT;
        if p == self.pages.len() {
            self.pages.push(Vec::with_capacity(Self::first_capacity(p, 1)));
        }
        let page = &mut self.pages[p];
        if page.len() == page.capacity() {
            // Only the first page is ever allocated short of `P`: it doubles.
            page.reserve_exact(page.capacity().clamp(1, P - page.len()));
        }
        page.push(v);
        self.len += 1;
    }

    /// Makes room for `n` more elements, or fails without losing anything: the next `n`
    /// [`push`](Self::push)es allocate nothing.
    pub fn try_reserve(&mut self, n: usize) -> Result<(), TryReserveError> {
        let end = self.len.saturating_add(n);
        if n == 0 {
            return Ok(());
        }
        let last = (end - 1) >> Self::SHIFT;
        if last >= self.pages.len() {
            self.pages.try_reserve(last + 1 - self.pages.len())?;
        }
        for p in (self.len >> Self::SHIFT)..=last {
            let want = if p == last { end - (p << Self::SHIFT) } else { P };
            if p == self.pages.len() {
                let mut page = Vec::new();
                page.try_reserve_exact(Self::first_capacity(p, want))?;
                self.pages.push(page);
            }
            let page = &mut self.pages[p];
            if page.capacity() < want {
                let target = want.max(page.capacity() * 2).min(P);
                page.try_reserve_exact(target - page.len())?;
            }
        }
        Ok(())
    }

    /// Every element, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.pages.iter().flatten()
    }
}

/// A sparse array indexed by a number (a descriptor, a slot), in pages of `P` elements
/// allocated when something is first stored in them. Elements never stored read as absent.
#[derive(Debug)]
pub(crate) struct Sparse<T, const P: usize> {
    pages: Vec<Option<Box<[T]>>>,
}

impl<T, const P: usize> Default for Sparse<T, P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const P: usize> Sparse<T, P> {
    const SHIFT: u32 = {
        assert!(P.is_power_of_two());
        P.trailing_zeros()
    };

    pub const fn new() -> Self {
        Sparse { pages: Vec::new() }
    }

    /// The element at `i`, if its page was ever allocated.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.pages.get(i >> Self::SHIFT)?.as_deref()?.get(i & (P - 1))
    }

    /// The element at `i`, if its page was ever allocated.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.pages.get_mut(i >> Self::SHIFT)?.as_deref_mut()?.get_mut(i & (P - 1))
    }

    /// Every element of every allocated page.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.pages.iter_mut().flatten().flat_map(|p| p.iter_mut())
    }
}

impl<T: Default, const P: usize> Sparse<T, P> {
    /// The element at `i`, its page allocated (filled with defaults) if it was not.
    pub fn entry(&mut self, i: usize) -> &mut T {
        let p = i >> Self::SHIFT;
        if p >= self.pages.len() {
            self.pages.resize_with(p + 1, || None);
        }
        let page = self.pages[p].get_or_insert_with(|| (0..P).map(|_| T::default()).collect());
        &mut page[i & (P - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slab_keeps_its_elements_in_order_across_pages() {
        let mut s: Slab<u32, 8> = Slab::default();
        for i in 0..30 {
            s.push(i);
        }
        assert_eq!(s.len(), 30);
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), (0..30).collect::<Vec<_>>());
        assert_eq!(s.get(17), Some(&17));
        assert_eq!(s.get(30), None);
        *s.get_mut(29).unwrap() = 7;
        assert_eq!(s.get(29), Some(&7));
        // Pages after the first hold exactly P; the first one grew to P.
        assert!(s.pages.iter().all(|p| p.capacity() == 8));
    }

    #[test]
    fn a_slab_reservation_covers_the_pushes_that_follow() {
        let mut s: Slab<u64, 16> = Slab::default();
        s.push(1);
        s.try_reserve(40).unwrap();
        let caps: Vec<usize> = s.pages.iter().map(|p| p.capacity()).collect();
        assert_eq!(caps, [16, 16, 16]);
        for i in 0..40 {
            s.push(i);
        }
        assert_eq!(s.pages.iter().map(|p| p.capacity()).collect::<Vec<_>>(), caps, "a push allocated");
        // A small table stays small.
        let mut t: Slab<u64, 256> = Slab::default();
        t.try_reserve(3).unwrap();
        t.push(0);
        assert!(t.pages[0].capacity() <= 4, "{}", t.pages[0].capacity());
    }

    #[test]
    fn a_sparse_array_allocates_only_the_pages_it_stores_in() {
        let mut s: Sparse<u32, 4> = Sparse::new();
        assert_eq!(s.get(100), None);
        *s.entry(100) = 5;
        assert_eq!(s.get(100), Some(&5));
        assert_eq!(s.get(101), Some(&0));
        assert_eq!(s.get(3), None);
        assert_eq!(s.pages.iter().filter(|p| p.is_some()).count(), 1);
        assert_eq!(s.iter_mut().count(), 4);
    }
}
