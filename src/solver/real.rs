//! The floating-point precision the solvers run in (`f64` by default, `f32` selectable).

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
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    fn of(x: f64) -> Self {
        x
    }
    fn to64(self) -> f64 {
        self
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
