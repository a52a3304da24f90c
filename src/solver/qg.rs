//! Two-layer quasi-geostrophic turbulence in pyqg's formulation (`pyqg.QGModel`, as in torch_qg).
//!
//! Doubly periodic square `[0, L)²`, SI units (m, s), potential vorticity `q_i` of the upper
//! (`i = 1`) and lower (`i = 2`) layer:
//!
//! ```text
//! q1 = ∇²ψ1 + F1 (ψ2 − ψ1),   q2 = ∇²ψ2 + F2 (ψ1 − ψ2),   F1 = rd⁻²/(1 + δ),  F2 = δ F1
//! ∂t q_i + J(ψ_i, q_i) + β_i ∂x ψ_i + U_i ∂x q_i = −δ_{i2} r_ek ∇²ψ2
//! β1 = β + F1 (U1 − U2),  β2 = β − F2 (U1 − U2),   u_i = −∂y ψ_i,  v_i = ∂x ψ_i
//! ```
//!
//! Discretisation as pyqg's: pseudo-spectral with the advection in flux form,
//! `−ik (ũq)^ − il (vq)^` with `ũ = u + U_i` (3 inverse + 2 forward real FFTs per layer, 10 per
//! step); Adams–Bashforth 3 (forward Euler, then AB2 for the first steps); after every step the
//! small-scale treatment multiplies the new `q̂`: pyqg's exponential filter
//! `exp(−23.6 (k̃ − 0.65π)⁴)` for `k̃ = √((k dx)² + (l dx)²) > 0.65π` (1 below), or the 2/3-rule
//! mask of torch_qg (kept: `|k|, |l| ≤ (N−1)/3`; the state then lives in that band, so the
//! transforms skip the columns `p > (N−1)/3`, exactly). Optional Smagorinsky eddy viscosity
//! (`C_S`, pyqg's `Smagorinsky` parameterization) enters as the curl of its velocity tendency.
//! Spectra use the layout and scaling of [`super::grid`], so `q̂` equals numpy's `rfft2(q)`
//! transposed.

use num_complex::Complex;

use super::grid::{FftScratch, Grid};
use super::real::Real;
use super::speed::PeakSpeed;

/// How the smallest scales are controlled after every step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SmallScales {
    /// pyqg's exponential spectral filter (its default).
    Exponential,
    /// The 2/3-rule mask (torch_qg, the paper's data).
    TwoThirds,
    /// Nothing (tests of conservation only).
    None,
}

/// Physical and numerical parameters of the two-layer model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QgParams {
    /// Domain side `L` (m).
    pub length: f64,
    /// Planetary vorticity gradient `β` (m⁻¹ s⁻¹).
    pub beta: f64,
    /// First baroclinic deformation radius `rd` (m).
    pub rd: f64,
    /// Layer-depth ratio `δ = H1/H2`.
    pub delta: f64,
    /// Upper- and lower-layer background zonal velocities `U1`, `U2` (m/s).
    pub u1: f64,
    pub u2: f64,
    /// Bottom (Ekman) drag `r_ek` on the lower layer (s⁻¹).
    pub rek: f64,
    /// Small-scale treatment.
    pub small_scales: SmallScales,
    /// Smagorinsky constant `C_S` (0 = off).
    pub smagorinsky: f64,
}

impl QgParams {
    /// pyqg's "eddy" configuration (its QGModel defaults at L = 1e6 m), as used by the paper.
    pub fn eddy() -> QgParams {
        QgParams {
            length: 1e6,
            beta: 1.5e-11,
            rd: 15e3,
            delta: 0.25,
            u1: 0.025,
            u2: 0.0,
            rek: 5.787e-7,
            small_scales: SmallScales::Exponential,
            smagorinsky: 0.0,
        }
    }

    /// The "jet" configuration of torch_qg (`jet_config`): weaker drag, thinner upper layer.
    pub fn jet() -> QgParams {
        QgParams { rek: 7e-8, delta: 0.1, beta: 1e-11, ..QgParams::eddy() }
    }

    /// `(F1, F2)`.
    pub fn f(&self) -> (f64, f64) {
        let f1 = 1.0 / (self.rd * self.rd * (1.0 + self.delta));
        (f1, self.delta * f1)
    }
}

/// The two-layer QG model on one grid.
pub struct Qg<T: Real> {
    grid: Grid<T>,
    params: QgParams,
    /// Background PV gradients `β1, β2`.
    qy: [T; 2],
    /// Inverse of the PV operator per mode: `ψ = A q` with `A = [[a11, a12], [a21, a22]]`.
    inv: [Vec<T>; 4],
    /// Small-scale multiplier per mode.
    filter: Vec<T>,
    /// `|k|²` per mode.
    k2: Vec<T>,
    /// Columns `p < rows` of a half spectrum are transformed and updated: the 2/3 band's
    /// `kmax + 1` under [`SmallScales::TwoThirds`] (the state lives in the band, so the pruned
    /// transforms are exact), all `nkx` otherwise.
    rows: usize,
}

/// One member's state: `q̂` of both layers and the Adams–Bashforth history.
#[derive(Clone, Debug, PartialEq)]
pub struct QgState<T: Real> {
    /// `q̂` of layer 1 then layer 2 (each a half spectrum).
    pub q: Vec<Complex<T>>,
    /// Tendencies of the previous two steps.
    pub dq_prev: Vec<Complex<T>>,
    pub dq_prev2: Vec<Complex<T>>,
    /// Steps taken so far, capped at 2 (selects Euler, AB2, AB3).
    pub level: u8,
}

/// Per-thread work space.
pub struct QgWork<T: Real> {
    fft: FftScratch<T>,
    psi: Vec<Complex<T>>,
    dq: Vec<Complex<T>>,
    /// Spectral work space of one layer: `q̂`'s `y` transforms, `û` and `v̂` (then the fluxes
    /// `(uq)^`, `(vq)^`); Smagorinsky's strain spectra. The physical fields exist only a block
    /// of rows at a time ([`Grid::through_physical`]).
    spec: [Vec<Complex<T>>; 3],
}

impl<T: Real> Qg<T> {
    /// The model on an `n × n` grid.
    pub fn new(n: usize, params: QgParams) -> Self {
        let grid = Grid::<T>::new(n, params.length);
        let (f1, f2) = params.f();
        let len = grid.spec_len();
        let mut inv: [Vec<T>; 4] = std::array::from_fn(|_| vec![T::zero(); len]);
        let mut filter = vec![T::one(); len];
        let mut k2v = vec![T::zero(); len];
        let dx = params.length / n as f64;
        let (cphi, filterfac) = (0.65 * std::f64::consts::PI, 23.6);
        for p in 0..grid.nkx {
            for q in 0..n {
                let i = p * n + q;
                let (k, l) = (grid.kx[p].to64(), grid.ky[q].to64());
                let k2 = k * k + l * l;
                k2v[i] = T::of(k2);
                if k2 > 0.0 {
                    let det = k2 * (k2 + f1 + f2);
                    inv[0][i] = T::of(-(k2 + f2) / det);
                    inv[1][i] = T::of(-f1 / det);
                    inv[2][i] = T::of(-f2 / det);
                    inv[3][i] = T::of(-(k2 + f1) / det);
                }
                filter[i] = T::of(match params.small_scales {
                    SmallScales::Exponential => {
                        let wv = ((k * dx).powi(2) + (l * dx).powi(2)).sqrt();
                        if wv <= cphi {
                            1.0
                        } else {
                            (-filterfac * (wv - cphi).powi(4)).exp()
                        }
                    }
                    SmallScales::TwoThirds => f64::from(u8::from(grid.in_band(p, q))),
                    SmallScales::None => 1.0,
                });
            }
        }
        let shear = params.u1 - params.u2;
        let qy = [T::of(params.beta + f1 * shear), T::of(params.beta - f2 * shear)];
        let rows = if params.small_scales == SmallScales::TwoThirds { grid.band_rows() } else { grid.nkx };
        Qg { grid, params, qy, inv, filter, k2: k2v, rows }
    }

    /// The grid.
    pub fn grid(&self) -> &Grid<T> {
        &self.grid
    }

    /// The small-scale multiplier applied after every step, per mode.
    pub fn filter(&self) -> &[T] {
        &self.filter
    }

    /// The parameters.
    pub fn params(&self) -> &QgParams {
        &self.params
    }

    /// A state at rest in time-stepping terms (no history) with PV spectrum `q`; under
    /// [`SmallScales::TwoThirds`] `q` is projected onto the 2/3 band (the model's state space).
    pub fn state(&self, mut q: Vec<Complex<T>>) -> QgState<T> {
        let len = q.len();
        if self.params.small_scales == SmallScales::TwoThirds {
            for layer in q.chunks_exact_mut(self.grid.spec_len()) {
                layer.iter_mut().zip(&self.filter).for_each(|(v, &f)| *v = *v * f);
            }
        }
        QgState { q, dq_prev: vec![Complex::default(); len], dq_prev2: vec![Complex::default(); len], level: 0 }
    }

    /// Fresh work space (one per thread).
    pub fn work(&self) -> QgWork<T> {
        let len = self.grid.spec_len();
        QgWork {
            fft: self.grid.scratch(),
            psi: vec![Complex::default(); 2 * len],
            dq: vec![Complex::default(); 2 * len],
            spec: std::array::from_fn(|_| vec![Complex::default(); len]),
        }
    }

    /// Streamfunction spectra `ψ̂` of both layers from `q̂` (the `k = 0` mode is set to 0).
    pub fn invert(&self, q: &[Complex<T>], psi: &mut [Complex<T>]) {
        self.invert_first(q, psi, self.grid.spec_len());
    }

    /// [`Qg::invert`] of the first `active` modes of each layer (the others are left as they are).
    fn invert_first(&self, q: &[Complex<T>], psi: &mut [Complex<T>], active: usize) {
        let len = self.grid.spec_len();
        let (q1, q2) = (&q[..active], &q[len..len + active]);
        let (p1, p2) = psi.split_at_mut(len);
        let (p1, p2) = (&mut p1[..active], &mut p2[..active]);
        let [a11, a12, a21, a22] = &self.inv;
        let (a11, a12, a21, a22) = (&a11[..active], &a12[..active], &a21[..active], &a22[..active]);
        for i in 0..active {
            p1[i] = q1[i] * a11[i] + q2[i] * a12[i];
            p2[i] = q1[i] * a21[i] + q2[i] * a22[i];
        }
    }

    /// PV spectra from streamfunction spectra (the operator [`Qg::invert`] inverts).
    pub fn pv(&self, psi: &[Complex<T>], q: &mut [Complex<T>]) {
        let len = self.grid.spec_len();
        let (f1, f2) = self.params.f();
        let (f1, f2) = (T::of(f1), T::of(f2));
        let (p1, p2) = psi.split_at(len);
        let (q1, q2) = q.split_at_mut(len);
        for i in 0..len {
            let k2 = self.k2[i];
            q1[i] = p1[i] * -(k2 + f1) + p2[i] * f1;
            q2[i] = p1[i] * f2 - p2[i] * (k2 + f2);
        }
    }

    /// Writes `dq̂/dt` of both layers into `work.dq` (zero in the columns `p ≥ rows`); returns
    /// the largest speed `|u + U|` (NaN if any velocity is not finite).
    ///
    /// The spectral loops run over one `p` column at a time with every slice cut to its `n`
    /// modes, so they carry no bounds checks and vectorise.
    fn tendency(&self, q: &[Complex<T>], work: &mut QgWork<T>) -> T {
        let g = &self.grid;
        let (n, len, rows) = (g.n, g.spec_len(), self.rows);
        let active = rows * n;
        let s = T::one() / T::of((n * n) as f64);
        let ky = &g.ky[..n];
        self.invert_first(q, &mut work.psi, active);
        let mut peak = PeakSpeed::new();
        for layer in 0..2 {
            let off = layer * len;
            let (psi, ql) = (&work.psi[off..off + len], &q[off..off + len]);
            let [sq, su, sv] = &mut work.spec;
            for p in 0..rows {
                let (k, at) = (g.kx[p], p * n);
                let psi = &psi[at..][..n];
                let (su, sv) = (&mut su[at..][..n], &mut sv[at..][..n]);
                for j in 0..n {
                    let (ps, l) = (psi[j] * s, ky[j]);
                    su[j] = Complex::new(ps.im * l, -ps.re * l); // u = −∂yψ: −i l ψ̂
                    sv[j] = Complex::new(-ps.im * k, ps.re * k); // v = ∂xψ:   i k ψ̂
                }
            }
            // q goes to physical space unscaled (its y transforms read q̂ itself, into sq as work
            // space); its 1/N² is applied in the products.
            g.inverse_y_from(ql, sq, rows, &mut work.fft);
            g.inverse_y(su, rows, &mut work.fft);
            g.inverse_y(sv, rows, &mut work.fft);
            let ubg = T::of(if layer == 0 { self.params.u1 } else { self.params.u2 });
            g.through_physical([&mut sq[..], su, sv], 2, rows, &mut work.fft, |[fq, fu, fv]| {
                peak.add(fu, fv, ubg);
                for ((qv, uv), vv) in fq.iter().zip(fu.iter_mut()).zip(fv.iter_mut()) {
                    let qs = *qv * s;
                    *uv = (*uv + ubg) * qs;
                    *vv = *vv * qs;
                }
            });
            let dq = &mut work.dq[off..off + len];
            let qy = self.qy[layer];
            let rek = T::of(if layer == 1 { self.params.rek } else { 0.0 });
            for p in 0..rows {
                let (k, at) = (g.kx[p], p * n);
                let (su, sv, psi, k2) = (&su[at..][..n], &sv[at..][..n], &psi[at..][..n], &self.k2[at..][..n]);
                let dq = &mut dq[at..][..n];
                for j in 0..n {
                    // −(ik uq̂ + il vq̂ + ik Qy ψ̂) − δ_{i2} r_ek ∇²ψ̂
                    let flux = su[j] * k + sv[j] * ky[j] + psi[j] * (k * qy);
                    dq[j] = Complex::new(flux.im, -flux.re) + psi[j] * (rek * k2[j]);
                }
            }
            dq[active..].fill(Complex::default());
            if self.params.smagorinsky > 0.0 {
                self.add_smagorinsky(layer, work);
            }
        }
        peak.speed()
    }

    /// Adds pyqg's Smagorinsky tendency of `layer` to `work.dq`, from `work.psi`:
    /// strain `Sxx = ∂x u`, `Syy = ∂y v`, `Sxy = ½(∂y u + ∂x v)` of the anomaly velocity,
    /// `ν = (C_S dx)² √(2(Sxx² + Syy² + 2 Sxy²))`, velocity tendency
    /// `du = 2(∂x(ν Sxx) + ∂y(ν Sxy))`, `dv = 2(∂x(ν Sxy) + ∂y(ν Syy))`, and its curl
    /// `∂x dv − ∂y du` added to `dq/dt` (6 more FFTs per layer).
    fn add_smagorinsky(&self, layer: usize, work: &mut QgWork<T>) {
        let g = &self.grid;
        let (n, len, rows) = (g.n, g.spec_len(), self.rows);
        let s = T::one() / T::of((n * n) as f64);
        let psi = &work.psi[layer * len..(layer + 1) * len];
        let [sxx, syy, sxy] = &mut work.spec;
        for p in 0..rows {
            let k = g.kx[p];
            for qi in 0..n {
                let (i, l) = (p * n + qi, g.ky[qi]);
                // û = −il ψ̂, v̂ = ik ψ̂ ⇒ ∂x u = kl ψ̂, ∂y v = −kl ψ̂, ½(∂y u + ∂x v) = ½(l² − k²) ψ̂
                let ps = psi[i] * s;
                sxx[i] = ps * (k * l);
                syy[i] = ps * -(k * l);
                sxy[i] = ps * (T::of(0.5) * (l * l - k * k));
            }
        }
        for spec in [&mut *sxx, &mut *syy, &mut *sxy] {
            g.inverse_y(spec, rows, &mut work.fft);
        }
        let c = T::of((self.params.smagorinsky * self.params.length / n as f64).powi(2));
        let two = T::of(2.0);
        g.through_physical([&mut sxx[..], syy, sxy], 3, rows, &mut work.fft, |[fxx, fyy, fxy]| {
            for ((a, b), d) in fxx.iter_mut().zip(fyy.iter_mut()).zip(fxy.iter_mut()) {
                let nu = c * (two * (*a * *a + *b * *b + two * *d * *d)).sqrt();
                *a = *a * nu;
                *b = *b * nu;
                *d = *d * nu;
            }
        });
        let dq = &mut work.dq[layer * len..(layer + 1) * len];
        for p in 0..rows {
            let k = g.kx[p];
            for qi in 0..n {
                let (i, l) = (p * n + qi, g.ky[qi]);
                // du^ = 2(ik A + il B), dv^ = 2(ik B + il C); curl: ik dv^ − il du^
                //     = 2(−k² B − kl C + kl A + l² B) = 2(kl (A − C) + (l² − k²) B)
                let curl = ((sxx[i] - syy[i]) * (k * l) + sxy[i] * (l * l - k * k)) * two;
                dq[i] = dq[i] + curl;
            }
        }
    }

    /// Advances `state` by one step of `dt` (AB3 after an Euler and an AB2 start) and applies
    /// the small-scale filter; returns the CFL number `max|u + U|·dt/dx` at the start of the step.
    pub fn step(&self, state: &mut QgState<T>, dt: f64, work: &mut QgWork<T>) -> f64 {
        let speed = self.tendency(&state.q, work).to64();
        let (c1, c2, c3) = match state.level {
            0 => (dt, 0.0, 0.0),
            1 => (1.5 * dt, -0.5 * dt, 0.0),
            _ => (23.0 / 12.0 * dt, -16.0 / 12.0 * dt, 5.0 / 12.0 * dt),
        };
        let (c1, c2, c3) = (T::of(c1), T::of(c2), T::of(c3));
        let len = self.grid.spec_len();
        // Columns p ≥ rows stay zero under the 2/3 rule (masked state, zero tendencies).
        let active = self.rows * self.grid.n;
        let layers = state.q.chunks_exact_mut(len).zip(work.dq.chunks_exact(len));
        let history = state.dq_prev.chunks_exact(len).zip(state.dq_prev2.chunks_exact(len));
        let filter = &self.filter[..active];
        for ((q, d), (d1, d2)) in layers.zip(history) {
            let (q, d, d1, d2) = (&mut q[..active], &d[..active], &d1[..active], &d2[..active]);
            for i in 0..active {
                q[i] = (q[i] + d[i] * c1 + d1[i] * c2 + d2[i] * c3) * filter[i];
            }
        }
        std::mem::swap(&mut state.dq_prev2, &mut state.dq_prev);
        std::mem::swap(&mut state.dq_prev, &mut work.dq);
        state.level = (state.level + 1).min(2);
        speed * dt * self.grid.n as f64 / self.params.length
    }

    /// Total energy per unit mass, `−½ Σ_i (H_i/H) ⟨ψ_i q_i⟩` (kinetic plus available potential;
    /// conserved by the inviscid, unforced, undamped dynamics).
    pub fn energy(&self, q: &[Complex<T>]) -> f64 {
        let (g, len) = (&self.grid, self.grid.spec_len());
        let mut psi = vec![Complex::default(); 2 * len];
        self.invert(q, &mut psi);
        let d = self.params.delta;
        let weights = [d / (1.0 + d), 1.0 / (1.0 + d)];
        let n4 = (g.n as f64).powi(4);
        let mut e = 0.0;
        for (layer, w) in weights.iter().enumerate() {
            for p in 0..g.nkx {
                let wp = g.weight(p).to64();
                for qi in 0..g.n {
                    let i = layer * len + p * g.n + qi;
                    e -= 0.5 * w * wp * (psi[i].re.to64() * q[i].re.to64() + psi[i].im.to64() * q[i].im.to64()) / n4;
                }
            }
        }
        e
    }
}
