//! Two f64s side by side, one SSE2 register on x86_64 (where SSE2 is part of
//! the base instruction set): every operation is the IEEE operation lane by
//! lane, so each lane computes bit for bit what the scalar code would, for
//! half the instructions when two voices run the same code.

#[cfg(target_arch = "x86_64")]
pub(crate) use sse2::{F64x2, Mask};

#[cfg(not(target_arch = "x86_64"))]
pub(crate) use portable::{F64x2, Mask};

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use core::arch::x86_64::{
        __m128d, _mm_add_pd, _mm_and_pd, _mm_cmpeq_pd, _mm_cmplt_pd, _mm_cmpneq_pd,
        _mm_movemask_pd, _mm_mul_pd, _mm_or_pd, _mm_set_pd, _mm_set1_pd, _mm_setzero_pd,
        _mm_storeu_pd, _mm_sub_pd, _mm_xor_pd,
    };
    use std::ops::{Add, BitAnd, BitOr, Mul, Sub};

    #[derive(Clone, Copy, Debug)]
    pub(crate) struct F64x2(__m128d);

    /// Per lane, all bits set (true) or clear (false).
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Mask(__m128d);

    impl F64x2 {
        #[inline(always)]
        pub(crate) fn new(lanes: [f64; 2]) -> F64x2 {
            // SAFETY: SSE2 is in every x86_64 CPU (and the target's baseline).
            F64x2(unsafe { _mm_set_pd(lanes[1], lanes[0]) })
        }

        #[inline(always)]
        pub(crate) fn splat(x: f64) -> F64x2 {
            // SAFETY: SSE2 is in every x86_64 CPU.
            F64x2(unsafe { _mm_set1_pd(x) })
        }

        #[inline(always)]
        pub(crate) fn to_array(self) -> [f64; 2] {
            let mut out = [0.0; 2];
            // SAFETY: SSE2 is in every x86_64 CPU; the unaligned store writes
            // the two f64 of `out`.
            unsafe { _mm_storeu_pd(out.as_mut_ptr(), self.0) };
            out
        }

        /// `x != 0.0` per lane (true for NaN).
        #[inline(always)]
        pub(crate) fn is_nonzero(self) -> Mask {
            // SAFETY: SSE2 is in every x86_64 CPU.
            Mask(unsafe { _mm_cmpneq_pd(self.0, _mm_setzero_pd()) })
        }

        /// `self < other` per lane (false for NaN).
        #[inline(always)]
        pub(crate) fn lt(self, other: F64x2) -> Mask {
            // SAFETY: SSE2 is in every x86_64 CPU.
            Mask(unsafe { _mm_cmplt_pd(self.0, other.0) })
        }

        /// `x.is_finite()` per lane: |x| < ∞, false for NaN.
        #[inline(always)]
        pub(crate) fn is_finite(self) -> Mask {
            let magnitude = F64x2::splat(f64::from_bits(!(1 << 63)));
            // SAFETY: SSE2 is in every x86_64 CPU.
            Mask(unsafe {
                _mm_cmplt_pd(
                    _mm_and_pd(self.0, magnitude.0),
                    F64x2::splat(f64::INFINITY).0,
                )
            })
        }

        /// The lanes where `keep` is true, +0.0 in the others.
        #[inline(always)]
        pub(crate) fn or_zero(self, keep: Mask) -> F64x2 {
            // SAFETY: SSE2 is in every x86_64 CPU.
            F64x2(unsafe { _mm_and_pd(self.0, keep.0) })
        }
    }

    impl Mask {
        /// True where `self` is false.
        #[inline(always)]
        pub(crate) fn not(self) -> Mask {
            // SAFETY: SSE2 is in every x86_64 CPU.
            Mask(unsafe { _mm_xor_pd(self.0, _mm_cmpeq_pd(_mm_setzero_pd(), _mm_setzero_pd())) })
        }

        /// True in either lane.
        #[inline(always)]
        pub(crate) fn any(self) -> bool {
            // SAFETY: SSE2 is in every x86_64 CPU.
            unsafe { _mm_movemask_pd(self.0) != 0 }
        }
    }

    /// `impl $op for $ty`: the packed instruction `$intrinsic` on both lanes.
    macro_rules! packed {
        ($($op:ident $method:ident $ty:ident $intrinsic:ident;)*) => {$(
            impl $op for $ty {
                type Output = $ty;
                #[inline(always)]
                fn $method(self, other: $ty) -> $ty {
                    // SAFETY: SSE2 is in every x86_64 CPU.
                    $ty(unsafe { $intrinsic(self.0, other.0) })
                }
            }
        )*};
    }

    packed! {
        BitAnd bitand Mask _mm_and_pd;
        BitOr bitor Mask _mm_or_pd;
        Add add F64x2 _mm_add_pd;
        Sub sub F64x2 _mm_sub_pd;
        Mul mul F64x2 _mm_mul_pd;
    }
}

/// The same operations lane by lane in scalar code.
#[cfg(not(target_arch = "x86_64"))]
mod portable {
    use std::ops::{Add, BitAnd, BitOr, Mul, Sub};

    #[derive(Clone, Copy, Debug)]
    pub(crate) struct F64x2([f64; 2]);

    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Mask([bool; 2]);

    impl F64x2 {
        #[inline(always)]
        pub(crate) fn new(lanes: [f64; 2]) -> F64x2 {
            F64x2(lanes)
        }

        #[inline(always)]
        pub(crate) fn splat(x: f64) -> F64x2 {
            F64x2([x; 2])
        }

        #[inline(always)]
        pub(crate) fn to_array(self) -> [f64; 2] {
            self.0
        }

        #[inline(always)]
        pub(crate) fn is_nonzero(self) -> Mask {
            Mask(self.0.map(|x| x != 0.0))
        }

        #[inline(always)]
        pub(crate) fn is_finite(self) -> Mask {
            Mask(self.0.map(f64::is_finite))
        }

        #[inline(always)]
        pub(crate) fn lt(self, other: F64x2) -> Mask {
            Mask([self.0[0] < other.0[0], self.0[1] < other.0[1]])
        }

        #[inline(always)]
        pub(crate) fn or_zero(self, keep: Mask) -> F64x2 {
            F64x2([0, 1].map(|l| if keep.0[l] { self.0[l] } else { 0.0 }))
        }
    }

    impl Mask {
        #[inline(always)]
        pub(crate) fn not(self) -> Mask {
            Mask(self.0.map(|lane| !lane))
        }

        #[inline(always)]
        pub(crate) fn any(self) -> bool {
            self.0[0] || self.0[1]
        }
    }

    /// `impl $op for $ty`: `$operator` lane by lane.
    macro_rules! lanewise {
        ($($op:ident $method:ident $ty:ident $operator:tt;)*) => {$(
            impl $op for $ty {
                type Output = $ty;
                #[inline(always)]
                fn $method(self, other: $ty) -> $ty {
                    $ty([self.0[0] $operator other.0[0], self.0[1] $operator other.0[1]])
                }
            }
        )*};
    }

    lanewise! {
        BitAnd bitand Mask &&;
        BitOr bitor Mask ||;
        Add add F64x2 +;
        Sub sub F64x2 -;
        Mul mul F64x2 *;
    }
}
