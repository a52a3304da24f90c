//! The rollout report's figures, one function per PNG (or group of alike PNGs), drawn from the
//! [`RolloutFile`] with the primitives of [`super::figures`].

use std::path::Path;

use ndarray::{aview1, s, ArrayView1, ArrayView2, ArrayView3, Axis};
use plotters::style::RGBColor;

use super::figures::{field_panels, heat_map, line_plot, Axes, Line};
use super::file::{ensemble_mean, finite, RolloutFile};
use crate::error::Result;
use crate::rollout::stats::median;

const TRUTH: RGBColor = RGBColor(0, 0, 0);
/// Line colours of the modes, in their order in the file (e.g. emulator, thermalized, filtered,
/// guarded, guarded_thermalized: red, blue, green, orange, purple).
const COLORS: [RGBColor; 5] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];

/// The colour of mode `i`.
fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// A cut of one member's row into the (x, y) points of a line.
type Cut<'a> = dyn Fn(ArrayView1<f64>) -> Vec<(f64, f64)> + 'a;

/// Every figure of the report into `dir`: the series against the emulator step, the spectra
/// and PDFs, the ticker tapes and the snapshots.
pub fn draw(r: &RolloutFile, dir: &Path) -> Result<()> {
    mean_square(r, dir)?;
    mse(r, dir)?;
    survival(r, dir)?;
    time_mean_spectra(r, dir)?;
    time_mean_pdfs(r, dir)?;
    spectra_at_times(r, dir)?;
    tapes(r, dir)?;
    snapshots(r, dir)
}

/// Axes of a series against the emulator step.
fn by_step<'a>(title: &'a str, y_label: &'a str, log_y: bool) -> Axes<'a> {
    Axes { title, x_label: "emulator step", y_label, log_x: false, log_y }
}

/// The points (x, y) of `ys` against `xs`.
fn points(xs: &[f64], ys: ArrayView1<f64>) -> Vec<(f64, f64)> {
    xs.iter().copied().zip(ys.iter().copied()).collect()
}

/// `mean_square.png`: the mean square (enstrophy-like) of every member, truth and modes.
fn mean_square(r: &RolloutFile, dir: &Path) -> Result<()> {
    let mut lines = Vec::new();
    for m in 0..r.members {
        let label = |s: &str| if m == 0 { s.to_string() } else { String::new() };
        let truth = points(&r.steps, r.truth_mean_square.row(m));
        lines.push(Line { label: label("truth"), color: TRUTH, points: truth, thin: true });
        for (i, name) in r.modes.iter().enumerate() {
            let points = points(&r.steps, r.mean_square.slice(s![i, m, ..]));
            lines.push(Line { label: label(name), color: color(i), points, thin: true });
        }
    }
    let axes = by_step("Mean square of the normalised state, every member", "mean square (normalised)", true);
    line_plot(&dir.join("mean_square.png"), &axes, &lines)
}

/// `mse.png`: the MSE against the truth of every member, and its median over members.
fn mse(r: &RolloutFile, dir: &Path) -> Result<()> {
    let mut lines = Vec::new();
    for (i, name) in r.modes.iter().enumerate() {
        let mse = r.mse.index_axis(Axis(0), i);
        let med = r.steps.iter().zip(mse.columns()).map(|(&s, at)| (s, median(finite(at)))).collect();
        lines.push(Line { label: format!("{name} (median)"), color: color(i), points: med, thin: false });
        for row in mse.outer_iter() {
            lines.push(Line { label: String::new(), color: color(i), points: points(&r.steps, row), thin: true });
        }
    }
    let axes = by_step("MSE against the solver's truth", "MSE (normalised units)", true);
    line_plot(&dir.join("mse.png"), &axes, &lines)
}

/// `survival.png`: the fraction of members not yet stopped at each recorded step.
fn survival(r: &RolloutFile, dir: &Path) -> Result<()> {
    let mut lines = Vec::new();
    for (i, name) in r.modes.iter().enumerate() {
        let stops = r.diverged_at.row(i);
        let alive = r
            .steps
            .iter()
            .map(|&s| {
                let n = stops.iter().filter(|&&d| d < 0 || d as f64 > s).count();
                (s, n as f64 / r.members as f64)
            })
            .collect();
        lines.push(Line { label: name.clone(), color: color(i), points: alive, thin: false });
    }
    let axes = by_step("Members not yet diverged", "surviving fraction", false);
    line_plot(&dir.join("survival.png"), &axes, &lines)
}

/// The points of a spectrum row on the complete shells 1 ≤ k ≤ kmax.
fn shells(r: &RolloutFile, row: ArrayView1<f64>) -> Vec<(f64, f64)> {
    r.k.iter().copied().zip(row.iter().copied()).take(r.kmax() + 1).skip(1).collect()
}

/// Axes of a kinetic-energy spectrum.
fn spectrum_axes(title: &str) -> Axes<'_> {
    Axes { title, x_label: "wavenumber k (2π/L)", y_label: "E(k)", log_x: true, log_y: true }
}

/// Time means over the stationary window, `truth[member, x]` and `modes[mode, member, x]`:
/// every member's that is finite throughout (thin: the ensemble spread) and their ensemble mean
/// (thick), truth first.
fn spread_lines(r: &RolloutFile, truth: ArrayView2<f64>, modes: ArrayView3<f64>, cut: &Cut<'_>) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut add = |rows: ArrayView2<f64>, label: &str, color: RGBColor| {
        for row in rows.outer_iter().filter(|row| row.iter().all(|v| v.is_finite())) {
            lines.push(Line { label: String::new(), color, points: cut(row), thin: true });
        }
        let (mean, count) = ensemble_mean(rows);
        lines.push(Line {
            label: format!("{label} ({count} members)"),
            color,
            points: cut(aview1(&mean)),
            thin: false,
        });
    };
    add(truth, "truth", TRUTH);
    for (i, mode) in r.modes.iter().enumerate() {
        add(modes.index_axis(Axis(0), i), mode, color(i));
    }
    lines
}

/// `spectra.png`: the time-mean kinetic-energy spectra.
fn time_mean_spectra(r: &RolloutFile, dir: &Path) -> Result<()> {
    let title = format!(
        "Time-mean KE spectrum (steps ≥ {:.0}; truth: all its records): members thin, ensemble mean",
        r.window_start
    );
    let lines = spread_lines(r, r.truth_spectrum_mean.view(), r.spectrum_mean.view(), &|row| shells(r, row));
    line_plot(&dir.join("spectra.png"), &spectrum_axes(&title), &lines)
}

/// `pdf.png`: the time-mean PDFs of the normalised field.
fn time_mean_pdfs(r: &RolloutFile, dir: &Path) -> Result<()> {
    let title =
        format!("Time-mean PDF (steps ≥ {:.0}; truth: all its records): members thin, ensemble mean", r.window_start);
    let axes = Axes {
        title: &title,
        x_label: "value (normalised units)",
        y_label: "probability density",
        log_x: false,
        log_y: true,
    };
    let on_bins = |row: ArrayView1<f64>| points(&r.bins, row);
    let lines = spread_lines(r, r.truth_histogram_mean.view(), r.histogram_mean.view(), &on_bins);
    line_plot(&dir.join("pdf.png"), &axes, &lines)
}

/// Mean over members of `a[member, k]`, at each k over the finite values (NaN where none is).
fn member_mean(a: ArrayView2<f64>) -> Vec<f64> {
    let mean = |at: ArrayView1<f64>| {
        let (sum, n) = at.iter().filter(|v| v.is_finite()).fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
        if n > 0 {
            sum / n as f64
        } else {
            f64::NAN
        }
    };
    a.columns().into_iter().map(mean).collect()
}

/// `spectra_times.png`: the member-mean spectra at up to four recorded times (first, last and
/// two between), later ones darker.
fn spectra_at_times(r: &RolloutFile, dir: &Path) -> Result<()> {
    let n = r.spectrum_steps.len();
    let mut picks: Vec<usize> = (0..4).map(|j| j * (n - 1) / 3).collect();
    picks.dedup();
    let mut lines = Vec::new();
    for (j, &s) in picks.iter().enumerate() {
        let shade = |c: RGBColor| {
            let f = 0.35 + 0.65 * (j + 1) as f64 / picks.len() as f64;
            RGBColor(
                (255.0 - f * (255.0 - c.0 as f64)) as u8,
                (255.0 - f * (255.0 - c.1 as f64)) as u8,
                (255.0 - f * (255.0 - c.2 as f64)) as u8,
            )
        };
        let t = r.spectrum_steps[s];
        let at = |a: ArrayView3<f64>| shells(r, aview1(&member_mean(a.index_axis(Axis(1), s))));
        let truth = at(r.truth_spectrum.view());
        lines.push(Line {
            label: format!("truth, step {t}"),
            color: shade(RGBColor(60, 60, 60)),
            points: truth,
            thin: false,
        });
        for (i, name) in r.modes.iter().enumerate() {
            let points = at(r.spectrum.index_axis(Axis(0), i));
            lines.push(Line { label: format!("{name}, step {t}"), color: shade(color(i)), points, thin: false });
        }
    }
    let axes = spectrum_axes("Kinetic-energy spectrum at several times (member mean; darker = later)");
    line_plot(&dir.join("spectra_times.png"), &axes, &lines)
}

/// `ticker_tape.png`, the denoising passes of the thermalized mode, and `guard_tape_<mode>.png`,
/// the runaway guard's corrections of each guarded mode: per member and record.
fn tapes(r: &RolloutFile, dir: &Path) -> Result<()> {
    let tape = |file: &str, title: &str, counts: ArrayView2<f64>| {
        let rows: Vec<Vec<f64>> = counts.outer_iter().map(|row| row.to_vec()).collect();
        heat_map(&dir.join(file), title, "emulator step", "member", &rows, r.last.max(1.0))
    };
    if let Some(i) = r.mode("thermalized") {
        let passes = r.denoising_passes.index_axis(Axis(0), i);
        tape("ticker_tape.png", "Denoising passes per record, thermalized", passes)?;
    }
    if let Some(corrections) = &r.guard_corrections {
        for (i, name) in r.modes.iter().enumerate().filter(|(_, m)| m.starts_with("guarded")) {
            let title = format!("Steps the runaway guard corrected per record, {name}");
            tape(&format!("guard_tape_{name}.png"), &title, corrections.index_axis(Axis(0), i))?;
        }
    }
    Ok(())
}

/// `snapshots.png`: member 0's first layer at every snapshot, truth and modes, on one colour
/// scale (a panel with no finite value, e.g. after a stop, is grey).
fn snapshots(r: &RolloutFile, dir: &Path) -> Result<()> {
    let Some(snap) = &r.snapshots else { return Ok(()) };
    let field = |v: ArrayView2<f64>| -> Option<Vec<f64>> {
        let v: Vec<f64> = v.iter().copied().collect();
        v.iter().any(|x| x.is_finite()).then_some(v)
    };
    let mut panels = Vec::new();
    for (p, s) in snap.steps.iter().enumerate() {
        panels.push((format!("truth, step {s}"), field(snap.truth.index_axis(Axis(0), p))));
    }
    for (i, name) in r.modes.iter().enumerate() {
        for (p, s) in snap.steps.iter().enumerate() {
            panels.push((format!("{name}, step {s}"), field(snap.field.slice(s![i, p, .., ..]))));
        }
    }
    field_panels(
        &dir.join("snapshots.png"),
        "Member 0 (first layer); blue < 0 < red, one scale; grey: not available",
        &panels,
        snap.steps.len(),
        snap.field.shape()[3],
    )
}
