//! The Kolmogorov solver on libtorch tensors: a whole batch of ensemble members stepped at once,
//! on the CPU or a GPU. The same equation, discretisation and CN–RK4 scheme as
//! [`KolmogorovSolver`](super::KolmogorovSolver) (see [`super::kolmogorov`] and
//! [`super::stepper`]), built from its grid and coefficients, so the two agree to round-off.
//!
//! Conventions: a state is a complex tensor `[batch, n, n/2 + 1]` = torch's `rfft2` of the
//! vorticity `[batch, y, x]` (unnormalised forward, `1/N²` inverse, as the CPU solver's
//! spectra); element `[b, q, p]` is the CPU layout's `p·n + q` (`p` = kx in the half spectrum,
//! `q` = ky). Modes outside the 2/3-rule band are zero and stay zero.
//!
//! [`BatchedDynamics`] is what the ensemble driver asks of any batched solver (this one and
//! [`super::batched_qg`]); the tensor conversions at the end are shared by both.

use num_complex::Complex;
use tch::{Device, Kind, Tensor};

use super::kolmogorov::{Kolmogorov, KolmogorovParams};
use super::real::Real;
use super::stepper::{stage_factors, ImexRhs, BETAS};

/// The batched solver for one grid, parameters, time step, precision and device.
pub struct BatchedKolmogorov {
    n: i64,
    kind: Kind,
    device: Device,
    /// `kx`, `ky` broadcastable to `[1, n, nkx]`.
    kx: Tensor,
    ky: Tensor,
    /// `1/|k|²` (0 at k = 0).
    inv_k2: Tensor,
    /// 1 inside the 2/3-rule band, 0 outside.
    band: Tensor,
    /// The constant forcing spectrum `[1, n, nkx]`.
    forcing: Tensor,
    /// Per stage: `(1 + µL)/(1 − µL)` and `γ dt/(1 − µL)`.
    stages: Vec<(Tensor, Tensor)>,
    /// `dt/dx`: speed → CFL number.
    dt_over_dx: f64,
}

impl BatchedKolmogorov {
    /// The solver of `KolmogorovSolver::<T>::new(n, params, dt)` on `device`, in `T`'s precision.
    pub fn new<T: Real>(n: usize, params: KolmogorovParams, dt: f64, device: Device) -> Self {
        let eq = Kolmogorov::<T>::new(n, params);
        let g = eq.grid();
        let kind = kind_of::<T>();
        let field = |f: &dyn Fn(usize, usize) -> f64| mode_field(n, kind, device, f);
        let k2 = |p: usize, q: usize| g.kx[p].to64().powi(2) + g.ky[q].to64().powi(2);
        let linear = |p: usize, q: usize| eq.linear()[p * n + q].to64();
        let stages = (0..BETAS.len())
            .map(|k| {
                let a = field(&|p, q| stage_factors(k, linear(p, q), dt).0);
                let b = field(&|p, q| stage_factors(k, linear(p, q), dt).1);
                (a, b)
            })
            .collect();
        let forcing_cpu = eq.forcing_spectrum();
        let forcing = to_spectral_tensor(&[&forcing_cpu[..]], n, device, kind).squeeze_dim(1);
        BatchedKolmogorov {
            n: n as i64,
            kind,
            device,
            kx: field(&|p, _| g.kx[p].to64()),
            ky: field(&|_, q| g.ky[q].to64()),
            inv_k2: field(&|p, q| if k2(p, q) > 0.0 { 1.0 / k2(p, q) } else { 0.0 }),
            band: field(&|p, q| if g.in_band(p, q) { 1.0 } else { 0.0 }),
            forcing,
            stages,
            dt_over_dx: dt * n as f64 / g.length,
        }
    }

    /// A batch `[members, n, nkx]` from CPU-layout spectra (one per member).
    pub fn state<T: Real>(&self, spectra: &[Vec<Complex<T>>]) -> Tensor {
        let parts: Vec<&Vec<Complex<T>>> = spectra.iter().collect();
        self.load(&parts)
    }

    /// Member `b` of a batch as a CPU-layout spectrum.
    pub fn spectrum(&self, w: &Tensor, b: i64) -> Vec<Complex<f64>> {
        from_spectral_tensor(w, b)
    }

    /// The explicit terms `N(ŵ)` (advection in Basdevant's form, projected on the band, plus
    /// the forcing) and the largest speed per member.
    fn explicit(&self, w: &Tensor) -> (Tensor, Tensor) {
        let s = [self.n, self.n];
        let rot = w * &self.inv_k2 * Tensor::from_slice(&[0.0f64, 1.0]).view_as_complex().to_device(self.device);
        let rot = rot.to_kind(w.kind());
        let u = (&rot * &self.ky).fft_irfft2(s.as_slice(), [-2i64, -1].as_slice(), "backward");
        let v = (-&rot * &self.kx).fft_irfft2(s.as_slice(), [-2i64, -1].as_slice(), "backward");
        let (uu, vv) = (&u * &u, &v * &v);
        let speed = (&uu + &vv).amax([-2i64, -1].as_slice(), false).sqrt();
        let uv = (&u * &v).fft_rfft2(s.as_slice(), [-2i64, -1].as_slice(), "backward");
        let d = (vv - uu).fft_rfft2(s.as_slice(), [-2i64, -1].as_slice(), "backward");
        let out = (uv * (&self.kx * &self.kx - &self.ky * &self.ky) + d * (&self.kx * &self.ky)) * &self.band;
        (out + &self.forcing, speed)
    }

    /// Advances the batch `w` by one step; returns each member's CFL number `max|u|·dt/dx` at the
    /// start of the step (NaN where not finite), as [`KolmogorovSolver::step`](super::KolmogorovSolver).
    pub fn step(&self, w: &mut Tensor) -> Tensor {
        let _g = tch::no_grad_guard();
        let mut h = w.zeros_like();
        let mut speed = Tensor::zeros([0], (self.kind, self.device));
        for (k, (a, b)) in self.stages.iter().enumerate() {
            let (f, s) = self.explicit(w);
            if k == 0 {
                speed = s;
                h = f;
            } else {
                h = f + h * BETAS[k];
            }
            *w = &*w * a + &h * b;
        }
        speed * self.dt_over_dx
    }
}

impl<T: Real> BatchedDynamics<Vec<Complex<T>>> for BatchedKolmogorov {
    type Batch = Tensor;
    fn load(&self, states: &[&Vec<Complex<T>>]) -> Tensor {
        let parts: Vec<&[Complex<T>]> = states.iter().map(|s| &s[..]).collect();
        to_spectral_tensor(&parts, self.n as usize, self.device, self.kind).squeeze_dim(1)
    }
    fn step(&self, batch: &mut Tensor) -> Tensor {
        BatchedKolmogorov::step(self, batch)
    }
    fn unload(&self, batch: &Tensor, b: i64) -> Vec<Complex<T>> {
        narrow(&from_spectral_tensor(batch, b))
    }
}

/// A batched solver as the ensemble driver uses it: members' native states `S` in, one batch
/// stepped on the device, states out, exactly (step history included).
pub trait BatchedDynamics<S> {
    /// The batch on the device.
    type Batch;
    /// The batch of `states` (member `b` is `states[b]`).
    fn load(&self, states: &[&S]) -> Self::Batch;
    /// Advances every member by one step; returns each member's CFL number at the start of the
    /// step (a tensor `[batch]`; NaN or infinite where the state is not finite).
    fn step(&self, batch: &mut Self::Batch) -> Tensor;
    /// Member `b`'s state.
    fn unload(&self, batch: &Self::Batch, b: i64) -> S;
}

/// The tensor kind of precision `T` (`Double` or `Float`).
pub(super) fn kind_of<T: Real>() -> Kind {
    if std::mem::size_of::<T>() == 8 {
        Kind::Double
    } else {
        Kind::Float
    }
}

/// A real per-mode tensor `[1, n, nkx]` with element `[0, q, p] = f(p, q)`.
pub(super) fn mode_field(n: usize, kind: Kind, device: Device, f: &dyn Fn(usize, usize) -> f64) -> Tensor {
    let nkx = n / 2 + 1;
    let v: Vec<f64> = (0..n).flat_map(|q| (0..nkx).map(move |p| (p, q))).map(|(p, q)| f(p, q)).collect();
    Tensor::from_slice(&v).view([1, n as i64, nkx as i64]).to_kind(kind).to_device(device)
}

/// CPU-layout spectra, one per member, each `layers` half spectra `[layer][p·n + q]`, as one
/// complex tensor `[members, layers, n, nkx]` (torch's rfft2 layout).
pub(super) fn to_spectral_tensor<T: Real>(spectra: &[&[Complex<T>]], n: usize, device: Device, kind: Kind) -> Tensor {
    let nkx = n / 2 + 1;
    let layers = spectra.first().map_or(1, |s| s.len() / (nkx * n));
    let v: Vec<f64> = spectra.iter().flat_map(|s| s.iter()).flat_map(|c| [c.re.to64(), c.im.to64()]).collect();
    Tensor::from_slice(&v)
        .view([spectra.len() as i64, layers as i64, nkx as i64, n as i64, 2])
        .to_kind(kind)
        .view_as_complex()
        .transpose(-2, -1)
        .contiguous()
        .to_device(device)
}

/// Member `b` of a batch `[batch, ..., n, nkx]` in the CPU layout (`[...][p·n + q]`), in f64.
pub(super) fn from_spectral_tensor(t: &Tensor, b: i64) -> Vec<Complex<f64>> {
    let re = t.get(b).transpose(-2, -1).contiguous().view_as_real().to_kind(Kind::Double).to_device(Device::Cpu);
    let v = Vec::<f64>::try_from(re.flatten(0, -1)).expect("a real tensor");
    v.chunks_exact(2).map(|c| Complex::new(c[0], c[1])).collect()
}

/// An f64 spectrum in precision `T`.
pub(super) fn narrow<T: Real>(s: &[Complex<f64>]) -> Vec<Complex<T>> {
    s.iter().map(|c| Complex::new(T::of(c.re), T::of(c.im))).collect()
}
