//! Named event counters, one enum per subsystem (`vm_event_item` style).
//!
//! [`define_stats!`] declares an enum whose variants are the counters, each
//! with a doc line and its printed name; [`Counters`] holds one atomic per
//! variant. Tests assert on counters to prove which path ran.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Declares a counter enum with `ALL`, `COUNT` and `name()`.
macro_rules! define_stats {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[doc = $doc:literal])* $v:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name { $($(#[doc = $doc])* $v,)* }

        impl $name {
            /// Every counter, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            /// Number of counters.
            pub const COUNT: usize = Self::ALL.len();
            /// The counter's name as printed (Linux-style, lower case).
            pub const fn name(self) -> &'static str {
                match self { $($name::$v => $s,)* }
            }
        }
    };
}
pub(crate) use define_stats;

/// One relaxed atomic per counter of an enum with `N` variants.
pub struct Counters<const N: usize>([AtomicU64; N]);

impl<const N: usize> Counters<N> {
    /// All zero.
    pub const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; N])
    }

    /// Adds `n` to counter `i` (an enum variant as usize).
    #[inline]
    pub fn add(&self, i: usize, n: u64) {
        self.0[i].fetch_add(n, Relaxed);
    }

    /// The current value of counter `i` (racy snapshot).
    pub fn get(&self, i: usize) -> u64 {
        self.0[i].load(Relaxed)
    }
}

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Self::new()
    }
}
