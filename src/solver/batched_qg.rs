//! The two-layer QG model on libtorch tensors: a whole batch of ensemble members stepped at
//! once, on the CPU or a GPU. The same equations, flux-form advection, Adams–Bashforth 3 start-up
//! (Euler, AB2), small-scale filter (exponential or 2/3 rule) and Smagorinsky closure as
//! [`Qg`](super::qg::Qg) (see [`super::qg`]), built from its grid and coefficients, so the two
//! agree to round-off.
//!
//! Conventions: a batch holds `q̂` and the two previous tendencies as complex tensors
//! `[batch, layer, n, n/2 + 1]` = torch's `rfft2` of the PV `[batch, layer, y, x]` (s⁻¹;
//! unnormalised forward, `1/N²` inverse, as the CPU model's spectra); element `[b, i, q, p]` is
//! the CPU layout's `i·len + p·n + q` (layer 1 = upper, `p` = kx, `q` = ky). The CPU model
//! transforms only the 2/3 band's columns under the 2/3 rule; here every transform is full and
//! the tendencies' columns beyond the band are zeroed instead, which is the same arithmetic on
//! the state (it lives in the band).

use num_complex::Complex;
use tch::{Device, Kind, Tensor};

use super::batched::{from_spectral_tensor, kind_of, mode_field, narrow, to_spectral_tensor, BatchedDynamics};
use super::qg::{Qg, QgParams, QgState, SmallScales};
use super::real::Real;

/// The batched QG model for one grid, parameters, time step, precision and device.
pub struct BatchedQg {
    n: i64,
    kind: Kind,
    device: Device,
    dt: f64,
    /// `kx`, `ky` `[1, n, nkx]` (rad/m); like every per-mode tensor here, broadcast over members
    /// and layers.
    kx: Tensor,
    ky: Tensor,
    /// The PV inversion `ψ = A q` per mode: `A = [[a11, a12], [a21, a22]]`.
    inv: [Tensor; 4],
    /// Per layer: `k·Qy_i` (the background PV gradient's term) and `r_ek |k|²` (bottom drag, 0 in
    /// the upper layer), `[1, 2, n, nkx]`.
    beta_k: Tensor,
    drag: Tensor,
    /// Background zonal velocity per layer `[1, 2, 1, 1]` (m/s).
    background: Tensor,
    /// The small-scale multiplier applied after every step.
    filter: Tensor,
    /// Under the 2/3 rule, 1 in the columns `p ≤ kmax` and 0 beyond (where the CPU model's
    /// tendencies are zero).
    columns: Option<Tensor>,
    /// `(C_S dx)²` of the Smagorinsky viscosity, with its strain multipliers `kl` and
    /// `½(l² − k²)` (`None` when `C_S = 0`).
    smagorinsky: Option<(f64, Tensor, Tensor)>,
    /// `dt/dx`: speed → CFL number.
    dt_over_dx: f64,
}

/// A batch of members: `q̂`, the tendencies of the two previous steps, and each member's
/// Adams–Bashforth level (steps taken, capped at 2), as in [`QgState`].
pub struct QgBatch {
    pub q: Tensor,
    pub dq_prev: Tensor,
    pub dq_prev2: Tensor,
    pub level: Vec<u8>,
}

impl BatchedQg {
    /// The model of `Qg::<T>::new(n, params)` stepped with `dt` (s) on `device`, in `T`'s precision.
    pub fn new<T: Real>(n: usize, params: QgParams, dt: f64, device: Device) -> Self {
        let model = Qg::<T>::new(n, params);
        let g = model.grid();
        let kind = kind_of::<T>();
        let field = |f: &dyn Fn(usize, usize) -> f64| mode_field(n, kind, device, f);
        let (kx, ky) = (|p: usize| g.kx[p].to64(), |q: usize| g.ky[q].to64());
        let k2 = |p: usize, q: usize| kx(p).powi(2) + ky(q).powi(2);
        // The inverse of the PV operator, as Qg::new builds it.
        let (f1, f2) = params.f();
        let det = |p, q| k2(p, q) * (k2(p, q) + f1 + f2);
        let entry =
            |num: &dyn Fn(f64) -> f64| field(&|p, q| if k2(p, q) > 0.0 { num(k2(p, q)) / det(p, q) } else { 0.0 });
        let inv = [entry(&|k2| -(k2 + f2)), entry(&|_| -f1), entry(&|_| -f2), entry(&|k2| -(k2 + f1))];
        let shear = params.u1 - params.u2;
        let qy = [params.beta + f1 * shear, params.beta - f2 * shear];
        let per_layer = |upper: Tensor, lower: Tensor| Tensor::stack(&[upper, lower], 1);
        let beta_k = per_layer(field(&|p, _| kx(p) * qy[0]), field(&|p, _| kx(p) * qy[1]));
        let drag = per_layer(field(&|_, _| 0.0), field(&|p, q| params.rek * k2(p, q)));
        let filter = model.filter();
        let rows = g.band_rows();
        let smagorinsky = (params.smagorinsky > 0.0).then(|| {
            let c = (params.smagorinsky * params.length / n as f64).powi(2);
            (c, field(&|p, q| kx(p) * ky(q)), field(&|p, q| 0.5 * (ky(q).powi(2) - kx(p).powi(2))))
        });
        BatchedQg {
            n: n as i64,
            kind,
            device,
            dt,
            kx: field(&|p, _| kx(p)),
            ky: field(&|_, q| ky(q)),
            inv,
            beta_k,
            drag,
            background: Tensor::from_slice(&[params.u1, params.u2]).view([1, 2, 1, 1]).to_kind(kind).to_device(device),
            filter: field(&|p, q| filter[p * n + q].to64()),
            columns: (params.small_scales == SmallScales::TwoThirds)
                .then(|| field(&|p, _| f64::from(u8::from(p < rows)))),
            smagorinsky,
            dt_over_dx: dt * n as f64 / params.length,
        }
    }

    /// Advances every member by one step (Euler, AB2, then AB3 by its level) and applies the
    /// small-scale filter, as [`Qg::step`]; returns each member's CFL number `max|u + U|·dt/dx`
    /// at the start of the step (a tensor `[batch]`, NaN or infinite where not finite).
    pub fn step(&self, batch: &mut QgBatch) -> Tensor {
        let _g = tch::no_grad_guard();
        let (dq, speed) = self.tendency(&batch.q);
        let [c1, c2, c3] = self.weights(&batch.level);
        batch.q = (&batch.q + &dq * c1 + &batch.dq_prev * c2 + &batch.dq_prev2 * c3) * &self.filter;
        batch.dq_prev2 = std::mem::replace(&mut batch.dq_prev, dq);
        batch.level.iter_mut().for_each(|l| *l = (*l + 1).min(2));
        speed * self.dt_over_dx
    }

    /// `i·s·a` for `s = ±1`, exactly (a multiplication by `(0, s)`).
    fn times_i(&self, a: &Tensor, s: f64) -> Tensor {
        a * Tensor::from_slice(&[0.0f64, s]).view_as_complex().to_kind(a.kind()).to_device(self.device)
    }

    fn irfft2(&self, a: &Tensor) -> Tensor {
        a.fft_irfft2([self.n, self.n].as_slice(), [-2i64, -1].as_slice(), "backward")
    }

    fn rfft2(&self, a: &Tensor) -> Tensor {
        a.fft_rfft2([self.n, self.n].as_slice(), [-2i64, -1].as_slice(), "backward")
    }

    /// `dq̂/dt` of every member and layer, and the largest speed `|u + U|` per member.
    fn tendency(&self, q: &Tensor) -> (Tensor, Tensor) {
        let [a11, a12, a21, a22] = &self.inv;
        let (q1, q2) = (q.select(1, 0), q.select(1, 1));
        let psi = Tensor::stack(&[&q1 * a11 + &q2 * a12, q1 * a21 + q2 * a22], 1);
        // u = −∂yψ: −i l ψ̂;  v = ∂xψ: i k ψ̂.
        let u = self.irfft2(&self.times_i(&(&psi * &self.ky), -1.0)) + &self.background;
        let v = self.irfft2(&self.times_i(&(&psi * &self.kx), 1.0));
        let speed = (&u * &u + &v * &v).amax([1i64, 2, 3].as_slice(), false).sqrt();
        let qp = self.irfft2(q);
        let (uq, vq) = (self.rfft2(&(u * &qp)), self.rfft2(&(v * qp)));
        // −i (k (ũq)^ + l (vq)^ + k Qy ψ̂) − δ_{i2} r_ek ∇²ψ̂ (∇² = −|k|²).
        let flux = uq * &self.kx + vq * &self.ky + &psi * &self.beta_k;
        let mut dq = self.times_i(&flux, -1.0) + &psi * &self.drag;
        if let Some((c, kl, half)) = &self.smagorinsky {
            dq += self.smagorinsky_curl(&psi, *c, kl, half);
        }
        if let Some(columns) = &self.columns {
            dq *= columns;
        }
        (dq, speed)
    }

    /// The curl of pyqg's Smagorinsky velocity tendency (see the CPU model's `add_smagorinsky`):
    /// strain spectra `Sxx = kl ψ̂`, `Syy = −kl ψ̂`, `Sxy = ½(l² − k²) ψ̂`, `ν = (C_S dx)²
    /// √(2(Sxx² + Syy² + 2 Sxy²))` on the grid, curl `2(kl ((νSxx)^ − (νSyy)^) + (l² − k²)(νSxy)^)`.
    fn smagorinsky_curl(&self, psi: &Tensor, c: f64, kl: &Tensor, half: &Tensor) -> Tensor {
        let sxx = self.irfft2(&(psi * kl));
        let syy = self.irfft2(&(psi * -kl));
        let sxy = self.irfft2(&(psi * half));
        let nu = (((&sxx * &sxx + &syy * &syy + &sxy * &sxy * 2.0) * 2.0).sqrt()) * c;
        let (a, b, d) = (self.rfft2(&(sxx * &nu)), self.rfft2(&(syy * &nu)), self.rfft2(&(sxy * nu)));
        ((a - b) * kl + d * (half * 2.0)) * 2.0
    }

    /// Per-member Adams–Bashforth weights `[batch, 1, 1, 1]` of the new and the two previous
    /// tendencies, by level: Euler, AB2, AB3.
    fn weights(&self, level: &[u8]) -> [Tensor; 3] {
        let dt = self.dt;
        let of = |l: u8| match l {
            0 => [dt, 0.0, 0.0],
            1 => [1.5 * dt, -0.5 * dt, 0.0],
            _ => [23.0 / 12.0 * dt, -16.0 / 12.0 * dt, 5.0 / 12.0 * dt],
        };
        std::array::from_fn(|j| {
            let c: Vec<f64> = level.iter().map(|&l| of(l)[j]).collect();
            Tensor::from_slice(&c).view([-1, 1, 1, 1]).to_kind(self.kind).to_device(self.device)
        })
    }
}

impl<T: Real> BatchedDynamics<QgState<T>> for BatchedQg {
    type Batch = QgBatch;

    fn load(&self, states: &[&QgState<T>]) -> QgBatch {
        let tensor = |part: &dyn Fn(&QgState<T>) -> &[Complex<T>]| {
            let parts: Vec<&[Complex<T>]> = states.iter().map(|s| part(s)).collect();
            to_spectral_tensor(&parts, self.n as usize, self.device, self.kind)
        };
        QgBatch {
            q: tensor(&|s| &s.q),
            dq_prev: tensor(&|s| &s.dq_prev),
            dq_prev2: tensor(&|s| &s.dq_prev2),
            level: states.iter().map(|s| s.level).collect(),
        }
    }

    fn step(&self, batch: &mut QgBatch) -> Tensor {
        BatchedQg::step(self, batch)
    }

    fn unload(&self, batch: &QgBatch, b: i64) -> QgState<T> {
        QgState {
            q: narrow(&from_spectral_tensor(&batch.q, b)),
            dq_prev: narrow(&from_spectral_tensor(&batch.dq_prev, b)),
            dq_prev2: narrow(&from_spectral_tensor(&batch.dq_prev2, b)),
            level: batch.level[b as usize],
        }
    }
}
