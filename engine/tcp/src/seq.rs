//! TCP sequence numbers: 32-bit, compared modulo 2^32 (RFC 9293 3.4).
//!
//! `a < b` means `b` is less than 2^31 ahead of `a`; the order is only
//! meaningful between numbers less than 2^31 apart, which TCP's windows
//! guarantee (a window is at most 2^30, RFC 7323 2.3).
use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Seq {
    /// The signed distance `self - other`.
    #[inline]
    pub fn diff(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// Bytes from `other` up to `self` (0 when `self` is not after `other`).
    #[inline]
    pub fn since(self, other: Seq) -> u32 {
        self.diff(other).max(0) as u32
    }

    /// `lo <= self < hi`.
    #[inline]
    pub fn in_range(self, lo: Seq, hi: Seq) -> bool {
        lo <= self && self < hi
    }

    /// `lo <= self <= hi`.
    #[inline]
    pub fn in_range_inclusive(self, lo: Seq, hi: Seq) -> bool {
        lo <= self && self <= hi
    }

    /// The later of the two.
    #[inline]
    pub fn max(self, o: Seq) -> Seq {
        if self >= o {
            self
        } else {
            o
        }
    }

    /// The earlier of the two.
    #[inline]
    pub fn min(self, o: Seq) -> Seq {
        if self <= o {
            self
        } else {
            o
        }
    }
}

impl PartialOrd for Seq {
    #[inline]
    fn partial_cmp(&self, other: &Seq) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

impl Add<u32> for Seq {
    type Output = Seq;
    #[inline]
    fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }
}

impl AddAssign<u32> for Seq {
    #[inline]
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n);
    }
}

impl Sub<u32> for Seq {
    type Output = Seq;
    #[inline]
    fn sub(self, n: u32) -> Seq {
        Seq(self.0.wrapping_sub(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn comparisons_wrap() {
        let a = Seq(u32::MAX - 5);
        let b = a + 10;
        assert_eq!(b, Seq(4));
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b.diff(a), 10);
        assert_eq!(a.diff(b), -10);
        assert_eq!(b.since(a), 10);
        assert_eq!(a.since(b), 0);
        assert!(Seq(3).in_range(a, b) && !b.in_range(a, b) && b.in_range_inclusive(a, b));
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
        assert_eq!(Seq(2) - 5, Seq(u32::MAX - 2));
    }

    proptest! {
        /// Within a window of less than 2^31 the order is a total order
        /// that matches the order of the unwrapped numbers.
        #[test]
        fn order_matches_unwrapped(base in any::<u32>(), x in 0u32..(1 << 30), y in 0u32..(1 << 30)) {
            let (a, b) = (Seq(base) + x, Seq(base) + y);
            prop_assert_eq!(a < b, x < y);
            prop_assert_eq!(a == b, x == y);
            prop_assert_eq!(b.diff(a) as i64, y as i64 - x as i64);
            prop_assert_eq!(a + y.wrapping_sub(x), b);
        }
    }
}
