//! Semantic checks of a parsed [`Config`], before any compute: every message names the key and
//! the value, and says what would be accepted.

use super::{Config, ConfigError, SystemKind};

/// Checks value ranges, grid sizes and an a-priori CFL estimate.
pub fn check(c: &Config) -> Result<(), ConfigError> {
    let s = &c.system;
    let g = &c.generate;
    let err = |key: &str, value: String, why: &str| Err(ConfigError(format!("{key} = {value}: {why}")));
    if s.kind == SystemKind::Qg {
        return err("system.kind", "qg".into(), "the QG system is not available in this version (use kolmogorov)");
    }
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
    if !(s.viscosity.is_finite() && s.viscosity >= 0.0) {
        return err("system.viscosity", s.viscosity.to_string(), "must be >= 0");
    }
    if !(s.drag.is_finite() && s.drag >= 0.0) {
        return err("system.drag", s.drag.to_string(), "must be >= 0");
    }
    if !s.forcing_amplitude.is_finite() {
        return err("system.forcing_amplitude", s.forcing_amplitude.to_string(), "must be finite");
    }
    let kmax = (s.grid - 1) / 3;
    if s.forcing_wavenumber > kmax {
        return err(
            "system.forcing_wavenumber",
            s.forcing_wavenumber.to_string(),
            &format!("outside the dealiased band of system.grid = {} (|k| <= {kmax})", s.grid),
        );
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
    let (u_est, dx) = (speed_estimate(c), 2.0 * std::f64::consts::PI / s.grid as f64);
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
    Ok(())
}

/// A-priori speed scale: the larger of the random initial field's maximum speed and the speed
/// of the laminar response to the forcing, `A/(ν k_f² + α)` (capped at 4× the initial speed,
/// since turbulence keeps the flow well below the unstable laminar state).
fn speed_estimate(c: &Config) -> f64 {
    let s = &c.system;
    let kf = s.forcing_wavenumber as f64;
    let laminar = if kf > 0.0 { s.forcing_amplitude.abs() / (s.viscosity * kf * kf + s.drag).max(1e-300) } else { 0.0 };
    if c.ic_file().is_some() {
        laminar
    } else {
        c.generate.ic_max_velocity.max(laminar.min(c.generate.ic_max_velocity * 4.0))
    }
}

/// The a-priori CFL number `u·dt/dx` used by [`check`] (also printed by `validate`).
pub fn cfl_estimate(c: &Config) -> f64 {
    speed_estimate(c) * c.system.dt / (2.0 * std::f64::consts::PI / c.system.grid as f64)
}
