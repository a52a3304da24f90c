//! Spectral downsampling from the solver grid to the stored grid: a sharp truncation, as
//! jax-cfd's `downsample_spectral`.
//!
//! The coarse field keeps exactly the modes with `|kx|, |ky| < M/2` of the fine field (their
//! amplitudes unchanged in physical units) and drops everything else, including the coarse
//! grid's Nyquist modes, so the stored field is the band-limited real field sampled at the
//! coarse points `x_i = i·2π/M`. With the FFT scaling of [`super::grid`] the coarse coefficient
//! is `ŵ_M = (M/N)² ŵ_N`. `M = N` returns the field itself (the solver state has no Nyquist
//! content).

use num_complex::Complex;

use super::grid::{FftScratch, Grid};
use super::real::Real;

/// Truncates fine spectra to an `m × m` grid and returns physical values.
pub struct Downsampler<T: Real> {
    coarse: Grid<T>,
    fine_n: usize,
    /// Optional multiplier per coarse mode (the coarse model's filter: pyqg's "operator 1").
    filter: Option<Vec<T>>,
}

/// Work space of one [`Downsampler`] call.
pub struct DownsampleWork<T: Real> {
    spec: Vec<Complex<T>>,
    fft: FftScratch<T>,
}

impl<T: Real> Downsampler<T> {
    /// From `fine_n` to `m` points per side on a domain of side `length`.
    pub fn new(fine_n: usize, m: usize, length: f64) -> Self {
        assert!(m <= fine_n && m % 2 == 0);
        Downsampler { coarse: Grid::new(m, length), fine_n, filter: None }
    }

    /// As [`Downsampler::new`], then multiplies each coarse mode by `filter` (half-spectrum
    /// layout of the coarse grid): truncation × the low-resolution model's filter, the
    /// coarse-graining of the paper's QG data (Ross et al. 2023, operator 1).
    pub fn with_filter(fine_n: usize, m: usize, length: f64, filter: Vec<T>) -> Self {
        Downsampler { filter: Some(filter), ..Downsampler::new(fine_n, m, length) }
    }

    /// Fresh work space.
    pub fn work(&self) -> DownsampleWork<T> {
        DownsampleWork { spec: vec![Complex::default(); self.coarse.spec_len()], fft: self.coarse.scratch() }
    }

    /// Writes the truncated field of fine spectrum `w` to `out` (`m × m`, `[y][x]`).
    pub fn apply(&self, w: &[Complex<T>], out: &mut [T], work: &mut DownsampleWork<T>) {
        let (n, m) = (self.fine_n, self.coarse.n);
        let half = m / 2;
        work.spec.fill(Complex::default());
        for p in 0..half {
            for qc in 0..m {
                let k = Grid::<T>::signed_index(m, qc);
                if k.unsigned_abs() as usize >= half {
                    continue;
                }
                let qf = k.rem_euclid(n as i64) as usize;
                work.spec[p * m + qc] = w[p * n + qf];
            }
        }
        if let Some(f) = &self.filter {
            work.spec.iter_mut().zip(f).for_each(|(c, &f)| *c = *c * f);
        }
        self.coarse.inverse_in_place(&mut work.spec, out, half, &mut work.fft);
        let s = T::one() / T::of((n * n) as f64);
        out.iter_mut().for_each(|v| *v = *v * s);
    }
}
