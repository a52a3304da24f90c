//! Paired comparison of the stable horizons of two rollout modes. Member j starts from the same
//! state in every mode, so each member gives one pair of horizons; both modes run the same number
//! of steps, so a member that never diverged (its horizon censored at the rollout length)
//! outlived any member that did. The exact two-sided sign test over the decided pairs says how
//! likely so lopsided a split would be if neither mode tended to outlive the other.

use ndarray::Array2;

use super::summary::PairRow;

/// Outcomes over members of `a` against `b`: pairs where `a` outlived `b`, pairs where `b`
/// outlived `a`, and ties (equal horizons, e.g. both ran to the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pairs {
    pub a_longer: usize,
    pub b_longer: usize,
    pub ties: usize,
}

impl Pairs {
    /// Counts the outcomes of horizons `a[j]` and `b[j]` (stop steps; the rollout length for a
    /// member never stopped).
    pub fn count(a: &[f64], b: &[f64]) -> Pairs {
        let mut p = Pairs { a_longer: 0, b_longer: 0, ties: 0 };
        for (x, y) in a.iter().zip(b) {
            match x.partial_cmp(y) {
                Some(std::cmp::Ordering::Greater) => p.a_longer += 1,
                Some(std::cmp::Ordering::Less) => p.b_longer += 1,
                _ => p.ties += 1,
            }
        }
        p
    }

    /// Exact two-sided sign-test p-value of the decided pairs: the probability, with each pair
    /// going either way with probability 1/2, of a split at least as uneven (1 with none decided).
    pub fn sign_test(&self) -> f64 {
        let n = self.a_longer + self.b_longer;
        let low = self.a_longer.min(self.b_longer);
        // P(X ≤ low) for X ~ Binomial(n, 1/2), C(n, i) / 2^n summed in floating point (n ≤ ~1000).
        let mut term = 0.5f64.powi(n as i32);
        let mut tail = 0.0;
        for i in 0..=low {
            tail += term;
            term *= (n - i) as f64 / (i + 1) as f64;
        }
        (2.0 * tail).min(1.0)
    }

    /// The sign test's p-value as printed: three decimals, or two significant digits below 0.001
    /// (so that a strong result does not read "p = 0.000").
    pub fn p_text(&self) -> String {
        let p = self.sign_test();
        if p >= 1e-3 {
            format!("{p:.3}")
        } else {
            format!("{p:.1e}")
        }
    }
}

/// The paired comparisons a report makes, in the order it makes them: each gives a sentence of
/// `summary.md` and a row of `summary.json`.
pub struct Pairing<'a> {
    modes: &'a [String],
    /// `horizons[mode, member]`: the stable horizons.
    horizons: &'a Array2<f64>,
    pub rows: Vec<PairRow>,
}

impl<'a> Pairing<'a> {
    pub fn new(modes: &'a [String], horizons: &'a Array2<f64>) -> Pairing<'a> {
        Pairing { modes, horizons, rows: Vec::new() }
    }

    /// Mode `a` against mode `b` (`a_says`, `b_says`: how the sentence names them), or nothing
    /// when either mode was not run.
    pub fn sentence(&mut self, a: &str, b: &str, a_says: &str, b_says: &str) -> Option<String> {
        let index = |n: &str| self.modes.iter().position(|m| m == n);
        let (ia, ib) = (index(a)?, index(b)?);
        let p = Pairs::count(&self.horizons.row(ia).to_vec(), &self.horizons.row(ib).to_vec());
        self.rows.push(PairRow {
            a: a.into(),
            b: b.into(),
            a_longer: p.a_longer,
            b_longer: p.b_longer,
            ties: p.ties,
            p: p.sign_test(),
        });
        Some(format!(
            "Paired by member (each starts from the same state in every mode): {a_says} outlived {b_says} in {} of \
             {} members, the reverse in {}, ties {} (the same step, or both ran to the end); two-sided sign \
             test p = {}.",
            p.a_longer,
            self.horizons.ncols(),
            p.b_longer,
            p.ties,
            p.p_text()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_their_sign_test_match_hand_counts_and_binomial_tables() {
        let p = Pairs::count(&[10.0, 50.0, 50.0, 7.0], &[50.0, 50.0, 3.0, 7.0]);
        assert_eq!(p, Pairs { a_longer: 1, b_longer: 1, ties: 2 });
        assert_eq!(p.sign_test(), 1.0);
        // 11 against 5 of 16: 2 · (1 + 16 + 120 + 560 + 1820 + 4368) / 65536 = 0.21011.
        let p = Pairs { a_longer: 11, b_longer: 5, ties: 16 };
        assert!((p.sign_test() - 13770.0 / 65536.0).abs() < 1e-12);
        // 10 against 0: 2 / 1024.
        assert!((Pairs { a_longer: 0, b_longer: 10, ties: 0 }.sign_test() - 2.0 / 1024.0).abs() < 1e-15);
        assert_eq!(Pairs { a_longer: 0, b_longer: 0, ties: 3 }.sign_test(), 1.0);
        assert_eq!(Pairs { a_longer: 0, b_longer: 10, ties: 0 }.p_text(), "0.002");
        assert_eq!(Pairs { a_longer: 31, b_longer: 1, ties: 0 }.p_text(), "1.5e-8");
    }
}
