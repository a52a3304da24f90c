//! Where the members start: random initial conditions (each member's own stream), an
//! initial-condition file, or the checkpoint of an interrupted run.

use std::ops::Range;
use std::path::Path;

use ndarray::{Array4, Axis};
use num_complex::Complex;
use rand::Rng;

use super::ensemble::Member;
use crate::config::{Config, SystemKind};
use crate::error::{Context, Error, Result};
use crate::rng::{member_stream, Purpose};
use crate::solver::initial::filtered_vorticity;
use crate::solver::kolmogorov::Kolmogorov;
use crate::solver::real::Real;
use crate::solver::Dynamics;
use crate::store::h5::{Access, File, Hyperslab};
use crate::store::member_states;
use crate::store::trajectories::variable;

/// An initial-condition file must hold `vorticity[member, y, x]` (Kolmogorov) or
/// `q[member, layer, y, x]` (QG) on the solver grid; errors are input errors.
pub(super) fn check_ic_file(path: &Path, c: &Config) -> Result<()> {
    let (members, n, var) = (c.generate.members, c.system.grid, variable(c));
    let key = format!("generate.initial_condition = {}", path.display());
    if !path.is_file() {
        return Err(Error::Input(format!("{key}: no such file")));
    }
    let f = File::open(path, Access::Serial, false).input_context(|| &key)?;
    let shape = f.dataset(var.name).and_then(|d| d.shape()).input_context(|| &key)?;
    let (want, names) = if var.layers > 1 {
        (vec![members, var.layers, n, n], "[generate.members, layer, system.grid, system.grid]")
    } else {
        (vec![members, n, n], "[generate.members, system.grid, system.grid]")
    };
    if shape != want {
        return Err(Error::Input(format!("{key}: {} has shape {shape:?}, expected {names} = {want:?}", var.name)));
    }
    Ok(())
}

/// This rank's `local` members as the checkpoint at `path` holds them, and the solver step
/// they reached.
pub(super) fn resumed_states<T: Real, D: Dynamics<T>>(
    solver: &D,
    path: &Path,
    local: Range<usize>,
) -> Result<(Vec<Member<D::State>>, u64)> {
    let spectra = solver.layers() * solver.grid().spec_len();
    let words = solver.save(&solver.state(vec![Complex::default(); spectra])).len();
    let ck = member_states::read(path, local.clone(), words)?;
    let members = local
        .zip(ck.states)
        .zip(ck.diverged_at)
        .map(|((index, w), d)| Member { index, state: solver.load(&w), diverged_at: u64::try_from(d).ok() })
        .collect();
    log::info!("resuming from {} at solver step {}", path.display(), ck.step);
    Ok((members, ck.step))
}

/// Initial states of this rank's members: random (own stream per member) or from the file
/// (errors are input errors).
pub(super) fn initial_states<T: Real, D: Dynamics<T>>(
    c: &Config,
    solver: &D,
    local: Range<usize>,
) -> Result<Vec<Member<D::State>>> {
    let g = solver.grid();
    let (n, len) = (g.n, g.spec_len());
    let from_file = c.ic_file().map(|path| read_ic_file(&path, c, solver.layers(), local.clone())).transpose()?;
    // The equation the random vorticity is built for (plans and spectra made once per rank).
    let random_kolmogorov = (from_file.is_none() && c.system.kind == SystemKind::Kolmogorov)
        .then(|| Kolmogorov::<T>::new(n, c.kolmogorov()));
    let mut ws = g.scratch();
    local
        .clone()
        .map(|index| {
            let mut rng = member_stream(c.run.seed, Purpose::InitialCondition, index as u64);
            let real: Vec<T> = match (&from_file, c.system.kind) {
                (Some(fields), _) => {
                    let field = fields.index_axis(Axis(0), index - local.start);
                    if field.iter().any(|v| !v.is_finite()) {
                        return Err(Error::Input(format!(
                            "generate.initial_condition: member {index} has non-finite values"
                        )));
                    }
                    field.iter().map(|&v| T::of(v)).collect()
                }
                (None, SystemKind::Qg) => pyqg_random_pv(&mut rng, n),
                (None, SystemKind::Kolmogorov) => {
                    let eq = random_kolmogorov.as_ref().expect("built for random Kolmogorov initial conditions");
                    let w = filtered_vorticity(eq, &mut rng, c.generate.ic_max_velocity, c.generate.ic_peak_wavenumber);
                    return Ok(Member { index, state: solver.state(w), diverged_at: None });
                }
            };
            let mut spectra = vec![Complex::default(); solver.layers() * len];
            for (field, spectrum) in real.chunks_exact(n * n).zip(spectra.chunks_exact_mut(len)) {
                g.forward(field, spectrum, g.nkx, &mut ws);
            }
            Ok(Member { index, state: solver.state(spectra), diverged_at: None })
        })
        .collect()
}

/// The `local` members' fields of the initial-condition file at `path` (checked by
/// [`check_ic_file`]), `[member, layer, y, x]` on the solver grid (one layer for Kolmogorov
/// flow's vorticity); errors are input errors.
fn read_ic_file(path: &Path, c: &Config, layers: usize, local: Range<usize>) -> Result<Array4<f64>> {
    let n = c.system.grid;
    let key = format!("generate.initial_condition = {}", path.display());
    let f = File::open(path, Access::Serial, false).input_context(|| &key)?;
    let (start, count) = if layers > 1 {
        (vec![local.start, 0, 0, 0], vec![local.len(), layers, n, n])
    } else {
        (vec![local.start, 0, 0], vec![local.len(), n, n])
    };
    let data: Vec<f64> = f
        .dataset(variable(c).name)
        .and_then(|d| d.read(Some(&Hyperslab { start: &start, count: &count })))
        .input_context(|| &key)?;
    Array4::from_shape_vec((local.len(), layers, n, n), data).input_context(|| &key)
}

/// pyqg's random initial PV (QGModel's own): upper layer `1e-7·U[0,1)` at every point plus
/// `1e-6·U[0,1)` stripes varying in `x` only; lower layer at rest. `[layer][y][x]`, s⁻¹.
fn pyqg_random_pv<T: Real>(rng: &mut impl Rng, n: usize) -> Vec<T> {
    let mut q = vec![T::zero(); 2 * n * n];
    let noise: Vec<f64> = (0..n * n).map(|_| 1e-7 * rng.random::<f64>()).collect();
    let stripes: Vec<f64> = (0..n).map(|_| 1e-6 * rng.random::<f64>()).collect();
    for (k, v) in q[..n * n].iter_mut().enumerate() {
        *v = T::of(noise[k] + stripes[k % n]);
    }
    q
}
