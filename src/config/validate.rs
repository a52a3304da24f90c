//! Semantic checks of a parsed [`Config`], before any compute: every message names the key and
//! the value, and says what would be accepted.

use super::rollout::{RolloutConfig, SInit};
use super::train::{LoopConfig, ModelConfig, OptimizerConfig};
use super::{Config, SystemConfig, SystemKind};
use crate::error::{Error, Result};

/// Checks value ranges, grid sizes and an a-priori CFL estimate.
pub fn check(c: &Config) -> Result<()> {
    let s = &c.system;
    let g = &c.generate;
    let err = |key: &str, value: String, why: &str| Err(Error::Input(format!("{key} = {value}: {why}")));
    if s.grid < 8 || s.grid % 2 != 0 {
        return err("system.grid", s.grid.to_string(), "the solver needs an even grid of at least 8 points");
    }
    if let Some(m) = s.output_grid {
        if m < 4 || m % 2 != 0 {
            return err("system.output_grid", m.to_string(), "must be even and at least 4");
        }
        if m > s.grid {
            return err(
                "system.output_grid",
                m.to_string(),
                &format!("larger than the solver grid system.grid = {}", s.grid),
            );
        }
    }
    if !(s.dt.is_finite() && s.dt > 0.0) {
        return err("system.dt", s.dt.to_string(), "must be a positive number");
    }
    let kolmogorov_keys = [
        ("system.viscosity", s.viscosity.is_some()),
        ("system.drag", s.drag.is_some()),
        ("system.forcing_wavenumber", s.forcing_wavenumber.is_some()),
        ("system.forcing_amplitude", s.forcing_amplitude.is_some()),
    ];
    let qg_keys = [
        ("system.preset", s.preset.is_some()),
        ("system.length", s.length.is_some()),
        ("system.beta", s.beta.is_some()),
        ("system.rd", s.rd.is_some()),
        ("system.delta", s.delta.is_some()),
        ("system.u1", s.u1.is_some()),
        ("system.u2", s.u2.is_some()),
        ("system.rek", s.rek.is_some()),
        ("system.dealias", s.dealias.is_some()),
        ("system.smagorinsky", s.smagorinsky.is_some()),
    ];
    let (foreign, kind) = match s.kind {
        SystemKind::Kolmogorov => (&qg_keys[..], "kolmogorov"),
        SystemKind::Qg => (&kolmogorov_keys[..], "qg"),
    };
    if let Some((key, _)) = foreign.iter().find(|(_, set)| *set) {
        return err(key, "(set)".into(), &format!("not a parameter of system.kind = {kind}; remove it"));
    }
    match s.kind {
        SystemKind::Kolmogorov => check_kolmogorov(s)?,
        SystemKind::Qg => check_qg(s)?,
    }
    if g.members == 0 {
        return err("generate.members", "0".into(), "need at least one member");
    }
    if g.samples == 0 {
        return err("generate.samples", "0".into(), "need at least one stored state");
    }
    if g.steps_per_sample == 0 {
        return err("generate.steps_per_sample", "0".into(), "must be at least 1");
    }
    if !(g.ic_max_velocity.is_finite() && g.ic_max_velocity > 0.0) {
        return err("generate.ic_max_velocity", g.ic_max_velocity.to_string(), "must be positive");
    }
    if !(g.ic_peak_wavenumber.is_finite() && g.ic_peak_wavenumber > 0.0) {
        return err("generate.ic_peak_wavenumber", g.ic_peak_wavenumber.to_string(), "must be positive");
    }
    let (tr, va) = (g.split.train, g.split.valid);
    if !(tr >= 0.0 && va >= 0.0 && tr + va <= 1.0 + 1e-12) {
        return err(
            "generate.split",
            format!("{{train: {tr}, valid: {va}}}"),
            "fractions must be >= 0 with train + valid <= 1",
        );
    }
    if !(g.max_cfl.is_finite() && g.max_cfl > 0.0) {
        return err("generate.max_cfl", g.max_cfl.to_string(), "must be positive");
    }
    if !(c.run.checkpoint_interval >= 0.0 && c.run.log_interval >= 0.0) {
        return err("run.checkpoint_interval", c.run.checkpoint_interval.to_string(), "intervals must be >= 0 seconds");
    }
    let (u_est, dx) = (speed_estimate(c), c.domain_length() / s.grid as f64);
    let cfl = cfl_estimate(c);
    if cfl > 1.0 {
        return err(
            "system.dt",
            s.dt.to_string(),
            &format!(
                "estimated CFL number {cfl:.2} > 1 (speed ~{u_est:.2}, dx = {dx:.4}); the explicit advection would be unstable: use dt <= {:.2e}",
                0.5 * dx / u_est
            ),
        );
    }
    check_training(c)?;
    check_rollout(c)
}

/// The `rollout.*` section (when present).
fn check_rollout(c: &Config) -> Result<()> {
    let Some(r) = &c.rollout else { return Ok(()) };
    let levels = c.thermalizer.as_ref().map_or(1000, |t| t.levels);
    let bad = |key: &str, value: String, why: &str| Err(Error::Input(format!("rollout.{key} = {value}: {why}")));
    for (key, v) in [
        ("members", r.members),
        ("steps", r.steps),
        ("batch", r.batch),
        ("record_every", r.record_every),
        ("spectrum_every", r.spectrum_every),
        ("histogram_bins", r.histogram_bins),
    ] {
        if v == 0 {
            return bad(key, "0".into(), "must be at least 1");
        }
    }
    if r.modes.is_empty() {
        return bad("modes", "[]".into(), "name at least one of emulator, thermalized");
    }
    if let Some(m) = r.modes.iter().enumerate().find(|(i, m)| r.modes[..*i].contains(m)).map(|(_, m)| m) {
        return bad(
            "modes",
            format!("{:?}", r.modes.iter().map(|m| m.name()).collect::<Vec<_>>()),
            &format!("{} is listed twice", m.name()),
        );
    }
    if !(r.guard.quantile > 0.0 && r.guard.quantile <= 1.0) {
        return bad("guard.quantile", r.guard.quantile.to_string(), "must be in (0, 1]");
    }
    if r.guard.margin.is_nan() || r.guard.margin < 1.0 {
        return bad(
            "guard.margin",
            r.guard.margin.to_string(),
            "must be at least 1 (a bound below the measure's range would correct clean states)",
        );
    }
    if let (Some(dir), Some(_)) = (&r.models, &r.thermalizer_file) {
        return bad(
            "thermalizer_file",
            r.thermalizer_file.as_ref().map_or(String::new(), |f| f.display().to_string()),
            &format!("set together with rollout.models = {} (which holds the thermalizer too): set one", dir.display()),
        );
    }
    if !(r.calibration_percentile > 0.0 && r.calibration_percentile <= 100.0) {
        return bad("calibration_percentile", r.calibration_percentile.to_string(), "must be in (0, 100]");
    }
    if let SInit::Level(s_init) = r.s_init {
        check_thresholds(r, s_init, levels)
            .map_err(|(key, value, why)| Error::Input(format!("rollout.{key} = {value}: {why}")))?;
    } else if r.s_stop + 1 >= levels {
        return bad("s_stop", r.s_stop.to_string(), &format!("must be below the thermalizer's {levels} levels"));
    }
    let last_spectrum = r.last_spectrum_step();
    if r.window_start() > last_spectrum {
        return bad(
            "average_from",
            r.window_start().to_string(),
            &format!("the time-averaging window must hold a spectrum record (the last is at step {last_spectrum})"),
        );
    }
    positive("rollout.blowup", Some(r.blowup), false)?;
    positive("rollout.histogram_range", Some(r.histogram_range), false)?;
    positive("rollout.sigma", r.sigma, true)?;
    positive("rollout.filter.strength", Some(r.filter.strength), false)?;
    if !(r.filter.cutoff > 0.0 && r.filter.cutoff < 1.0) {
        return bad("filter.cutoff", r.filter.cutoff.to_string(), "must be in (0, 1): a fraction of the grid's π");
    }
    if let Some(g) = &r.small_scale_growth {
        positive("rollout.small_scale_growth.rate", Some(g.rate), false)?;
        let largest = c.output_grid() as f64 / std::f64::consts::SQRT_2;
        if !(g.wavenumber > 0.0 && g.wavenumber <= largest) {
            return bad(
                "small_scale_growth.wavenumber",
                g.wavenumber.to_string(),
                &format!("must be in (0, {largest:.1}], the largest |k| of the stored grid"),
            );
        }
    }
    Ok(())
}

/// The thresholds against a known `s_init` (the config's, or the calibrated one of
/// `s_init: auto`): on failure the offending key, its value and why.
pub fn check_thresholds(r: &RolloutConfig, s_init: usize, levels: usize) -> Result<(), (&'static str, String, String)> {
    if r.s_stop >= s_init {
        return Err(("s_stop", r.s_stop.to_string(), format!("must be below rollout.s_init = {s_init}")));
    }
    if s_init >= levels {
        return Err(("s_init", s_init.to_string(), format!("must be below the thermalizer's {levels} levels")));
    }
    if r.noise_limit < s_init {
        return Err(("noise_limit", r.noise_limit.to_string(), format!("must be at least rollout.s_init = {s_init}")));
    }
    Ok(())
}

/// The `emulator.*` and `thermalizer.*` sections (when present). Their bounds by the stored
/// states per member (`emulator.max_rollout`, `thermalizer.skip_samples`) are checked by the
/// training stage against the file it reads, so that `generate` accepts any `generate.samples`.
fn check_training(c: &Config) -> Result<()> {
    if let Some(e) = &c.emulator {
        check_model("emulator.model", &e.model, c.output_grid())?;
        check_optimizer("emulator.optimizer", &e.optimizer)?;
        check_loop("emulator.training", &e.training)?;
        if e.max_rollout == 0 {
            return Err(Error::Input("emulator.max_rollout = 0: must be at least 1".into()));
        }
        if e.rollout_scheduler == 0 {
            return Err(Error::Input("emulator.rollout_scheduler = 0: must be at least 1 update".into()));
        }
        positive("emulator.sigma", Some(e.sigma), true)?;
    }
    if let Some(t) = &c.thermalizer {
        check_model("thermalizer.model", &t.model, c.output_grid())?;
        check_optimizer("thermalizer.optimizer", &t.optimizer)?;
        check_loop("thermalizer.training", &t.training)?;
        if t.levels < 2 {
            return Err(Error::Input(format!("thermalizer.levels = {}: need at least 2 diffusion levels", t.levels)));
        }
        positive("thermalizer.classifier_weight", Some(t.classifier_weight), true)?;
    }
    Ok(())
}

fn check_model(key: &str, m: &ModelConfig, grid: usize) -> Result<()> {
    if m.hidden < 1 || m.blocks < 1 || m.dim_mults.iter().any(|&k| k < 1) {
        return Err(Error::Input(format!(
            "{key} = {{hidden: {}, dim_mults: {:?}, blocks: {}}}: widths, multipliers and blocks must be >= 1",
            m.hidden, m.dim_mults, m.blocks
        )));
    }
    m.shape(1).check_grid(grid as i64).map_err(|why| {
        Error::Input(format!("{key}.dim_mults = {:?}: {why} (stored grid system.output_grid)", m.dim_mults))
    })
}

fn check_optimizer(key: &str, o: &OptimizerConfig) -> Result<()> {
    positive(&format!("{key}.lr"), Some(o.lr), false)?;
    positive(&format!("{key}.weight_decay"), Some(o.weight_decay), true)?;
    positive(&format!("{key}.eps"), Some(o.eps), false)?;
    positive(&format!("{key}.grad_clip"), o.grad_clip, false)?;
    positive(&format!("{key}.lr_gamma"), Some(o.lr_gamma), false)?;
    if o.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
        return Err(Error::Input(format!("{key}.betas = {:?}: each must be in [0, 1)", o.betas)));
    }
    if let Some(d) = o.ema_decay.filter(|d| !(0.0..1.0).contains(d)) {
        return Err(Error::Input(format!("{key}.ema_decay = {d}: must be in [0, 1)")));
    }
    if o.lr_step == Some(0) {
        return Err(Error::Input(format!("{key}.lr_step = 0: must be at least 1 update (or null)")));
    }
    Ok(())
}

fn check_loop(key: &str, l: &LoopConfig) -> Result<()> {
    for (k, v) in [("batch_size", l.batch_size as u64), ("epochs", l.epochs as u64), ("log_every", l.log_every)] {
        if v == 0 {
            return Err(Error::Input(format!("{key}.{k} = 0: must be at least 1")));
        }
    }
    if l.max_updates == Some(0) {
        return Err(Error::Input(format!("{key}.max_updates = 0: must be at least 1 (or null)")));
    }
    Ok(())
}

fn positive(key: &str, v: Option<f64>, allow_zero: bool) -> Result<()> {
    match v {
        Some(x) if x.is_finite() && (x > 0.0 || (allow_zero && x == 0.0)) => Ok(()),
        Some(x) => Err(Error::Input(format!("{key} = {x}: must be {}", if allow_zero { ">= 0" } else { "> 0" }))),
        None => Ok(()),
    }
}

fn check_kolmogorov(s: &SystemConfig) -> Result<()> {
    for (key, v) in [("system.viscosity", s.viscosity), ("system.drag", s.drag)] {
        if v.is_none() {
            return Err(Error::Input(format!("{key}: required for system.kind = kolmogorov")));
        }
        positive(key, v, true)?;
    }
    let Some(kf) = s.forcing_wavenumber else {
        return Err(Error::Input("system.forcing_wavenumber: required for system.kind = kolmogorov".into()));
    };
    if let Some(a) = s.forcing_amplitude.filter(|a| !a.is_finite()) {
        return Err(Error::Input(format!("system.forcing_amplitude = {a}: must be finite")));
    }
    let kmax = (s.grid - 1) / 3;
    if kf > kmax {
        return Err(Error::Input(format!(
            "system.forcing_wavenumber = {kf}: outside the dealiased band of system.grid = {} (|k| <= {kmax})",
            s.grid
        )));
    }
    Ok(())
}

fn check_qg(s: &SystemConfig) -> Result<()> {
    positive("system.length", s.length, false)?;
    positive("system.rd", s.rd, false)?;
    positive("system.delta", s.delta, false)?;
    positive("system.rek", s.rek, true)?;
    positive("system.smagorinsky", s.smagorinsky, true)?;
    for (key, v) in [("system.beta", s.beta), ("system.u1", s.u1), ("system.u2", s.u2)] {
        if let Some(x) = v.filter(|x| !x.is_finite()) {
            return Err(Error::Input(format!("{key} = {x}: must be finite")));
        }
    }
    Ok(())
}

/// A-priori speed scale. Kolmogorov: the larger of the random initial field's maximum speed and
/// the speed of the laminar response to the forcing, `A/(ν k_f² + α)` (capped at 4× the initial
/// speed, since turbulence keeps the flow well below the unstable laminar state). QG: ten times
/// the largest background velocity (equilibrated eddies are an order of magnitude faster).
fn speed_estimate(c: &Config) -> f64 {
    let s = &c.system;
    if s.kind == SystemKind::Qg {
        let p = c.qg_or_preset();
        return 10.0 * p.u1.abs().max(p.u2.abs());
    }
    let kf = s.forcing_wavenumber.unwrap_or(0) as f64;
    let (nu, drag, amp) = (s.viscosity.unwrap_or(0.0), s.drag.unwrap_or(0.0), s.forcing_amplitude.unwrap_or(1.0));
    let laminar = if kf > 0.0 { amp.abs() / (nu * kf * kf + drag).max(1e-300) } else { 0.0 };
    if c.ic_file().is_some() {
        laminar
    } else {
        c.generate.ic_max_velocity.max(laminar.min(c.generate.ic_max_velocity * 4.0))
    }
}

/// The a-priori CFL number `u·dt/dx` used by [`check`] (also printed by `validate`).
pub fn cfl_estimate(c: &Config) -> f64 {
    speed_estimate(c) * c.system.dt / (c.domain_length() / c.system.grid as f64)
}
