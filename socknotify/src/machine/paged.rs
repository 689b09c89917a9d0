//! Tables that grow a page at a time: a large table wastes at most one page (a doubling `Vec`
//! wastes up to half its capacity, 39% at 10,000 registrations), and growing never copies
//! or moves what is already stored.

use std::collections::TryReserveError;

/// A dense array that grows at its end, in pages of `P` elements (`P` a power of two),
/// each a fixed-size array (one bounds check per access, on the page directory). The unused
/// tail of the last page holds `T::default()`.
#[derive(Debug)]
pub(crate) struct Slab<T, const P: usize> {
    pages: Vec<Box<[T; P]>>,
    len: usize,
}

impl<T, const P: usize> Default for Slab<T, P> {
    fn default() -> Self {
        Slab { pages: Vec::new(), len: 0 }
    }
}

impl<T: Copy + Default, const P: usize> Slab<T, P> {
    const SHIFT: u32 = {
        assert!(P.is_power_of_two());
        P.trailing_zeros()
    };

    /// Elements stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The element at `i`; past the end but within the last page, `T::default()`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.pages.get(i >> Self::SHIFT).map(|p| &p[i & (P - 1)])
    }

    /// The element at `i`; past the end but within the last page, `T::default()`.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.pages.get_mut(i >> Self::SHIFT).map(|p| &mut p[i & (P - 1)])
    }

    fn new_page() -> Result<Box<[T; P]>, TryReserveError> {
        let mut v = Vec::new();
        v.try_reserve_exact(P)?;
        v.resize(P, T::default());
        Ok(v.into_boxed_slice().try_into().ok().expect("P elements"))
    }

    /// Appends `v` (aborting on out-of-memory, as `Vec::push` does, unless
    /// [`try_reserve`](Self::try_reserve) made room first).
    #[inline]
    pub fn push(&mut self, v: T) {
        if self.len == self.pages.len() << Self::SHIFT {
            self.grow();
        }
        self.pages[self.len >> Self::SHIFT][self.len & (P - 1)] = v;
        self.len += 1;
    }

    #[cold]
    fn grow(&mut self) {
        let page =
            Self::new_page().unwrap_or_else(|_| std::alloc::handle_alloc_error(std::alloc::Layout::new::<[T; P]>()));
        self.pages.push(page);
    }

    /// Makes room for `n` more elements, or fails without losing anything: the next `n`
    /// [`push`](Self::push)es allocate nothing.
    pub fn try_reserve(&mut self, n: usize) -> Result<(), TryReserveError> {
        let pages = self.len.saturating_add(n).div_ceil(P);
        if pages > self.pages.len() {
            self.pages.try_reserve(pages - self.pages.len())?;
            while self.pages.len() < pages {
                self.pages.push(Self::new_page()?);
            }
        }
        Ok(())
    }

    /// Every element, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.pages.iter().flat_map(|p| p.iter()).take(self.len)
    }
}

/// A sparse array indexed by a number (a descriptor, a slot), in pages of `P` elements
/// allocated when something is first stored in them. Elements never stored read as absent.
#[derive(Debug)]
pub(crate) struct Sparse<T, const P: usize> {
    pages: Vec<Option<Box<[T; P]>>>,
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
        self.pages.get(i >> Self::SHIFT)?.as_deref().map(|p| &p[i & (P - 1)])
    }

    /// The element at `i`, if its page was ever allocated.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.pages.get_mut(i >> Self::SHIFT)?.as_deref_mut().map(|p| &mut p[i & (P - 1)])
    }

    /// Every element of every allocated page.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.pages.iter_mut().flatten().flat_map(|p| p.iter_mut())
    }
}

impl<T: Default, const P: usize> Sparse<T, P> {
    /// The element at `i`, its page allocated (filled with defaults) if it was not.
    #[inline]
    pub fn entry(&mut self, i: usize) -> &mut T {
        let p = i >> Self::SHIFT;
        if !matches!(self.pages.get(p), Some(Some(_))) {
            self.allocate(p);
        }
        match &mut self.pages[p] {
            Some(page) => &mut page[i & (P - 1)],
            None => unreachable!("allocated"),
        }
    }

    #[cold]
    fn allocate(&mut self, p: usize) {
        if p >= self.pages.len() {
            self.pages.resize_with(p + 1, || None);
        }
        let v: Vec<T> = (0..P).map(|_| T::default()).collect();
        self.pages[p] = Some(v.into_boxed_slice().try_into().ok().expect("P elements"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slab_keeps_its_elements_in_order_across_pages() {
        let mut s: Slab<u32, 8> = Slab::default();
        for i in 0..30 {
            s.push(i + 1);
        }
        assert_eq!(s.len(), 30);
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), (1..31).collect::<Vec<_>>());
        assert_eq!(s.get(17), Some(&18));
        // The tail of the last page reads as defaults; past it, nothing.
        assert_eq!((s.get(30), s.get(31), s.get(32)), (Some(&0), Some(&0), None));
        *s.get_mut(29).unwrap() = 7;
        assert_eq!(s.get(29), Some(&7));
        assert_eq!(s.pages.len(), 4);
    }

    #[test]
    fn a_slab_reservation_covers_the_pushes_that_follow() {
        let mut s: Slab<u64, 16> = Slab::default();
        s.push(1);
        s.try_reserve(40).unwrap();
        assert_eq!(s.pages.len(), 3);
        let at: Vec<*const [u64; 16]> = s.pages.iter().map(|p| &**p as *const _).collect();
        for i in 0..40 {
            s.push(i);
        }
        assert_eq!(s.pages.iter().map(|p| &**p as *const _).collect::<Vec<_>>(), at, "a push allocated");
        // The rest of the last page, then a new one.
        for i in 0..8 {
            s.push(i);
        }
        assert_eq!((s.len(), s.pages.len()), (49, 4));
        // Nothing to reserve: nothing allocated.
        let mut t: Slab<u64, 16> = Slab::default();
        t.try_reserve(0).unwrap();
        assert!(t.pages.is_empty());
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
