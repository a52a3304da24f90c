//! Statistics over a rollout's records once it is complete: time means over the stationary
//! window (spectra, PDFs) and the spectral stable horizon.
//!
//! Records are the rows of a [`Series`](crate::store::series::Series): `[member][record][inner]`,
//! row-major, NaN where nothing was recorded (after a member diverged, beyond the truth).
//!
//! **Spectral stable horizon.** The reference is the truth's mean log-spectrum μ(k) =
//! ⟨ln E(k)⟩ over every finite truth record (all members, all times), for 1 ≤ k < N/2 (the
//! complete shells; the corners beyond hold the truncated tail) where the truth holds flow:
//! shells below [`RESOLVED_FRACTION`] of its most energetic shell are left out. The distance
//! of one spectrum from it is the RMS over those k of ln E(k) − μ(k) (a log-spectral distance:
//! 0.1 is a 10 % mismatch on average). The truth's spread is the largest distance of any of its
//! own records; a member's spectral horizon is the first recorded step at which its distance
//! exceeds that spread (or its spectrum is no longer finite).

use ndarray::{s, Array1, Array2, ArrayView3};

/// Per-member mean over records `first..` of `[members][records][inner]` rows. Records with a
/// non-finite value are skipped; a member with none in the window gets NaN.
pub fn time_mean(data: &[f64], members: usize, records: usize, inner: usize, first: usize) -> Vec<f64> {
    let data = ArrayView3::from_shape((members, records, inner), data).expect("[members][records][inner]");
    let mut out = Array2::from_elem((members, inner), f64::NAN);
    for (member, mut mean) in data.outer_iter().zip(out.rows_mut()) {
        let mut sum = Array1::zeros(inner);
        let mut count = 0usize;
        for row in member.slice(s![first.min(records).., ..]).rows() {
            if row.iter().all(|v| v.is_finite()) {
                sum += &row;
                count += 1;
            }
        }
        if count > 0 {
            mean.assign(&(sum / count as f64));
        }
    }
    out.into_raw_vec_and_offset().0
}

/// Sums of ln E(k) over the finite, positive values of spectra rows `[rows][kbins]`, then their
/// counts: `2·kbins` numbers, to be summed over ranks before [`log_mean`].
pub fn log_sums(spectra: &[f64], kbins: usize) -> Vec<f64> {
    let mut out = vec![0.0; 2 * kbins];
    for row in spectra.chunks_exact(kbins) {
        if !row.iter().all(|v| v.is_finite()) {
            continue;
        }
        for (k, &e) in row.iter().enumerate().skip(1) {
            if e > 0.0 {
                out[k] += e.ln();
                out[kbins + k] += 1.0;
            }
        }
    }
    out
}

/// A shell of the truth's spectrum holding less than this fraction of the energy of its most
/// energetic shell holds round-off of the stored (float32) field, not flow, and is not compared:
/// two-layer QG's exponential filter leaves shells near N/2 at ~1e-12 of the peak, where any
/// emulator error would dominate a log distance. Resolved shells lie far above it (QG's last,
/// in the filter's edge, at ~1e-5; Kolmogorov flow's at ~6e-4).
pub const RESOLVED_FRACTION: f64 = 1e-8;

/// The mean log-spectrum from [`log_sums`] on the compared shells ([`compared`]; NaN
/// elsewhere and where no value was seen): the distance is taken over these shells.
pub fn log_mean(sums: &[f64], kmax: usize) -> Vec<f64> {
    let kbins = sums.len() / 2;
    compared(
        (0..kbins).map(|k| if sums[kbins + k] > 0.0 { sums[k] / sums[kbins + k] } else { f64::NAN }).collect(),
        kmax,
    )
}

/// `log_spectrum` (ln E(k) per shell) on the shells a spectral distance compares, NaN
/// elsewhere: 1 ≤ k ≤ `kmax`, and at least [`RESOLVED_FRACTION`] of the largest of those.
pub fn compared(mut log_spectrum: Vec<f64>, kmax: usize) -> Vec<f64> {
    for (k, v) in log_spectrum.iter_mut().enumerate() {
        if !(1..=kmax).contains(&k) {
            *v = f64::NAN;
        }
    }
    let floor = log_spectrum.iter().copied().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max)
        + RESOLVED_FRACTION.ln();
    log_spectrum.iter_mut().filter(|v| v.is_nan() || **v < floor).for_each(|v| *v = f64::NAN);
    log_spectrum
}

/// RMS over the wavenumbers where `reference` is finite of ln E(k) − reference(k); +∞ when the
/// spectrum is not finite or not positive there.
pub fn log_distance(spectrum: &[f64], reference: &[f64]) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for (&e, &mu) in spectrum.iter().zip(reference) {
        if !mu.is_finite() {
            continue;
        }
        if !(e.is_finite() && e > 0.0) {
            return f64::INFINITY;
        }
        sum += (e.ln() - mu).powi(2);
        n += 1;
    }
    if n == 0 {
        f64::INFINITY
    } else {
        (sum / n as f64).sqrt()
    }
}

/// The largest [`log_distance`] of the finite rows of `[rows][kbins]` (0 if there are none).
pub fn spread(spectra: &[f64], kbins: usize, reference: &[f64]) -> f64 {
    spectra
        .chunks_exact(kbins)
        .filter(|row| row.iter().all(|v| v.is_finite()))
        .map(|row| log_distance(row, reference))
        .fold(0.0, f64::max)
}

/// Per member of `[members][records][kbins]`, the first record whose distance from `reference`
/// exceeds `threshold` (None: it never leaves).
pub fn departures(
    spectra: &[f64],
    members: usize,
    kbins: usize,
    reference: &[f64],
    threshold: f64,
) -> Vec<Option<usize>> {
    let records = if members == 0 { 0 } else { spectra.len() / (members * kbins) };
    let spectra = ArrayView3::from_shape((members, records, kbins), spectra).expect("[members][records][kbins]");
    spectra
        .outer_iter()
        .map(|member| {
            member.rows().into_iter().position(|spectrum| {
                !(log_distance(spectrum.as_slice().expect("a contiguous row"), reference) <= threshold)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_mean_skips_missing_records() {
        // 2 members, 3 records of 2 values; member 1 diverged after record 0.
        let nan = f64::NAN;
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, nan, nan, nan, nan];
        let w = time_mean(&data, 2, 3, 2, 1);
        assert_eq!(&w[..2], &[4.0, 5.0]);
        assert!(w[2].is_nan() && w[3].is_nan());
        let m = time_mean(&data, 2, 3, 2, 0);
        assert_eq!(&m[..2], &[3.0, 4.0]);
        assert_eq!(&m[2..], &[7.0, 8.0]);
    }

    #[test]
    fn a_spectrum_leaves_when_it_departs_from_the_truth_spread() {
        let truth = [0.0, 1.0, 0.5, 0.0, 1.1, 0.45, 0.0, 0.9, 0.55];
        let mu = log_mean(&log_sums(&truth, 3), 2);
        assert!(log_mean(&log_sums(&truth, 3), 1)[2].is_nan());
        assert!(mu[0].is_nan());
        assert!((mu[1] - (1.1f64.ln() + 0.9f64.ln()) / 3.0).abs() < 1e-12);
        let tau = spread(&truth, 3, &mu);
        assert!(tau > 0.05 && tau < 0.2, "{tau}");
        // One member: within, within, 2× too energetic, NaN.
        let run = [0.0, 1.0, 0.5, 0.0, 1.05, 0.5, 0.0, 2.0, 1.0, f64::NAN, f64::NAN, f64::NAN];
        assert_eq!(departures(&run, 1, 3, &mu, tau), vec![Some(2)]);
        assert_eq!(departures(&run[..6], 1, 3, &mu, tau), vec![None]);
        assert_eq!(log_distance(&[0.0, 2.0f64.exp(), 1.0], &[f64::NAN, 0.0, 2.0]), 2.0);
    }

    #[test]
    fn shells_holding_round_off_are_not_compared() {
        // Shell 3 holds 1e-12 of the peak (a filtered, float32-stored field): left out, so a
        // member with error there but the truth's energy elsewhere stays within the spread.
        let truth = [0.0, 1.0, 0.1, 1e-12, 0.0, 1.1, 0.09, 1.1e-12];
        let mu = log_mean(&log_sums(&truth, 4), 3);
        assert!(mu[1].is_finite() && mu[2].is_finite() && mu[3].is_nan(), "{mu:?}");
        let noisy = [0.0, 1.0, 0.1, 1e-6];
        assert!(log_distance(&noisy, &mu) < 0.1);
        assert_eq!(compared(vec![f64::NAN, 0.0, -10.0, -30.0], 3).iter().filter(|v| v.is_finite()).count(), 2);
    }
}
