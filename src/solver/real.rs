//! The floating-point precision the solvers run in (`f64` by default, `f32` selectable).

use num_complex::Complex;
use num_traits::{Float, FloatConst};
use rustfft::FftNum;

/// A solver precision: `f32` or `f64`. Everything spectral is generic over it.
pub trait Real: FftNum + Float + FloatConst + Default + std::iter::Sum + Send + Sync + 'static {
    /// Name used in configs and file attributes (`"f32"` or `"f64"`).
    const NAME: &'static str;
    /// Converts from `f64` (rounding for `f32`).
    fn of(x: f64) -> Self;
    /// Widens to `f64`.
    fn to64(self) -> f64;
    /// The values `(a + i b, a* + i b*)` that a pair of real rows `z = a_row + i b_row` takes at
    /// `p` and `n − p` of its spectrum, from the two rows' half spectra `a`, `b` at `p` (the
    /// inner step of the grid's inverse transposes; see `grid::pack_block`).
    #[inline(always)]
    fn pack_pair(a: Complex<Self>, b: Complex<Self>) -> (Complex<Self>, Complex<Self>) {
        (Complex::new(a.re - b.im, a.im + b.re), Complex::new(a.re + b.im, b.re - a.im))
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    fn of(x: f64) -> Self {
        x
    }
    fn to64(self) -> f64 {
        self
    }
    /// With SSE2 (part of x86-64, so no detection) a value is one register `[re, im]`: a shuffle,
    /// two sign flips and two additions, where the compiler emits eight scalar operations (the
    /// inverse transposes run about 20 % faster). Bitwise equal to the generic form:
    /// `x + (−y) = x − y` exactly.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn pack_pair(a: Complex<f64>, b: Complex<f64>) -> (Complex<f64>, Complex<f64>) {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86-64 baseline, so these intrinsics are always available;
        // they only compute on values.
        unsafe {
            let (a, b) = (_mm_set_pd(a.im, a.re), _mm_set_pd(b.im, b.re));
            let swapped = _mm_shuffle_pd::<1>(b, b); // [b.im, b.re]
            let zp = _mm_add_pd(a, _mm_xor_pd(swapped, _mm_set_pd(0.0, -0.0))); // [a.re − b.im, a.im + b.re]
            let zm = _mm_add_pd(_mm_xor_pd(a, _mm_set_pd(-0.0, 0.0)), swapped); // [a.re + b.im, −a.im + b.re]
            let lanes = |v: __m128d| Complex::new(_mm_cvtsd_f64(v), _mm_cvtsd_f64(_mm_unpackhi_pd(v, v)));
            (lanes(zp), lanes(zm))
        }
    }
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    fn of(x: f64) -> Self {
        x as f32
    }
    fn to64(self) -> f64 {
        self as f64
    }
}
