//! The largest flow speed on the grid, accumulated while the solvers form their products (for
//! the CFL number and the blow-up check).

use super::real::Real;

/// Lanes of independent running maxima: breaks the loop-carried dependency so the compiler can
/// keep several in flight (and vectorise them).
const LANES: usize = 4;

/// Running maximum of the squared speed `(u + U)² + v²` and a record of whether every value seen
/// was finite.
pub struct PeakSpeed<T: Real> {
    max: [T; LANES],
    /// `Σ 0·s` over the squared speeds `s` seen: exactly 0 while all are finite, NaN after the
    /// first infinite or NaN one (0·∞ and 0·NaN are NaN).
    probe: [T; LANES],
}

impl<T: Real> PeakSpeed<T> {
    /// Nothing seen yet (speed 0).
    pub fn new() -> Self {
        PeakSpeed { max: [T::zero(); LANES], probe: [T::zero(); LANES] }
    }

    /// Takes in the squared speeds `(u[i] + background)² + v[i]²` of the grid points in `u`, `v`.
    pub fn add(&mut self, u: &[T], v: &[T], background: T) {
        debug_assert_eq!(u.len(), v.len());
        let (uc, vc) = (u.chunks_exact(LANES), v.chunks_exact(LANES));
        let (ur, vr) = (uc.remainder(), vc.remainder());
        for (a, b) in uc.zip(vc) {
            for j in 0..LANES {
                self.take(j, a[j] + background, b[j]);
            }
        }
        for (j, (&a, &b)) in ur.iter().zip(vr).enumerate() {
            self.take(j, a + background, b);
        }
    }

    #[inline(always)]
    fn take(&mut self, lane: usize, u: T, v: T) {
        let s = u * u + v * v;
        self.max[lane] = if s > self.max[lane] { s } else { self.max[lane] };
        self.probe[lane] = self.probe[lane] + s * T::zero();
    }

    /// The largest speed seen, or NaN if any velocity was not finite.
    pub fn speed(&self) -> T {
        if self.probe.iter().all(|p| *p == T::zero()) {
            self.max.iter().fold(T::zero(), |m, &s| if s > m { s } else { m }).sqrt()
        } else {
            T::nan()
        }
    }
}

impl<T: Real> Default for PeakSpeed<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_speed_and_non_finite_values() {
        let mut peak = PeakSpeed::<f64>::new();
        peak.add(&[0.0, 3.0, -1.0, 0.5, 2.0, 0.0], &[1.0, 0.0, 0.0, 0.0, 0.0, 2.5], 1.0);
        // (3 + 1)² = 16 beats (0 + 1)² + 2.5² = 7.25 and (2 + 1)² = 9.
        assert_eq!(peak.speed(), 4.0);
        peak.add(&[0.0, 0.0], &[f64::INFINITY, 0.0], 0.0);
        assert!(peak.speed().is_nan());
        let mut peak = PeakSpeed::<f32>::new();
        peak.add(&[0.0; 5], &[0.0, 0.0, 0.0, 0.0, f32::NAN], 0.0);
        assert!(peak.speed().is_nan());
        assert_eq!(PeakSpeed::<f32>::new().speed(), 0.0);
    }
}
