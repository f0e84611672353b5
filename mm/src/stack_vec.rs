//! [`StackVec`]: a list that keeps its first `N` elements inline (on the
//! stack) and moves to the heap only past them, for the short lists of
//! hot paths (the one or two VMAs an `mmap`, `munmap` or `mprotect`
//! replaces), where a `Vec` would cost a kmalloc and a kfree per call.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::ops::Deref;

/// Up to `N` elements inline, then all of them in a `Vec`.
///
/// # Invariants
///
/// - I1: while `heap` is empty, the elements are `inline[..len]`; once it
///   is not, they are all in `heap` (and `len` no longer counts).
pub struct StackVec<T: Copy, const N: usize> {
    inline: [T; N],
    len: usize,
    heap: Vec<T>,
}

impl<T: Copy, const N: usize> StackVec<T, N> {
    /// Empty; `fill` only initializes the unused inline slots.
    pub fn new(fill: T) -> Self {
        Self {
            inline: [fill; N],
            len: 0,
            heap: Vec::new(),
        }
    }

    /// Appends `v` (moving everything to the heap at the `N + 1`-th).
    pub fn push(&mut self, v: T) {
        if !self.heap.is_empty() {
            self.heap.push(v);
        } else if self.len < N {
            self.inline[self.len] = v;
            self.len += 1;
        } else {
            self.heap.reserve(N + 1);
            self.heap.extend_from_slice(&self.inline[..self.len]);
            self.heap.push(v);
        }
    }
}

impl<T: Copy, const N: usize> Deref for StackVec<T, N> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        if self.heap.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StackVec;

    #[test]
    fn inline_then_heap_keeps_order() {
        let mut v = StackVec::<u32, 2>::new(0);
        assert!(v.is_empty());
        v.push(1);
        v.push(2);
        assert_eq!(&*v, &[1, 2]);
        assert!(v.heap.is_empty(), "two fit inline");
        v.push(3);
        v.push(4);
        assert_eq!(&*v, &[1, 2, 3, 4]);
        assert_eq!(v.heap.len(), 4);
    }
}
