//! PNG figures with plotters; text is drawn with DejaVu Sans embedded in the binary
//! (`data/fonts`), so no system font is needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::{Error, Result};

static FONT: Once = Once::new();
const FONT_BYTES: &[u8] = include_bytes!("../../data/fonts/DejaVuSans.ttf");

/// Registers the embedded font as "sans-serif" (once per process).
pub fn init_font() {
    FONT.call_once(|| {
        if register_font("sans-serif", FontStyle::Normal, FONT_BYTES).is_err() {
            log::warn!("the embedded DejaVu Sans font could not be registered");
        }
    });
}

/// One named line of a line plot; NaN values break the line.
pub struct Line {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
    /// Thin lines (one per member) get no legend entry unless labelled.
    pub thin: bool,
}

/// Axes of a line plot.
pub struct Axes<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_x: bool,
    pub log_y: bool,
}

type DrawResult = Result<()>;

/// A plotters error (generic over the backend) as a failure.
fn err(e: impl std::fmt::Display) -> Error {
    Error::Failure(e.to_string())
}

fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return if log { (1e-3, 1.0) } else { (0.0, 1.0) };
    }
    if log {
        (lo * 0.8, hi * 1.25)
    } else if hi > lo {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    } else if lo != 0.0 {
        (lo - 0.1 * lo.abs(), hi + 0.1 * hi.abs())
    } else {
        (lo - 0.5, hi + 0.5)
    }
}

/// Segments of finite points (NaN/∞, and non-positive values on log axes, split them).
fn segments(points: &[(f64, f64)], log_x: bool, log_y: bool) -> Vec<Vec<(f64, f64)>> {
    let ok = |(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_x || *x > 0.0) && (!log_y || *y > 0.0);
    let mut out = vec![Vec::new()];
    for p in points {
        if ok(p) {
            out.last_mut().expect("non-empty").push(*p);
        } else if !out.last().expect("non-empty").is_empty() {
            out.push(Vec::new());
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

macro_rules! draw_lines {
    ($chart:expr, $lines:expr, $a:expr) => {{
        for line in $lines {
            let style = if line.thin { line.color.mix(0.35).stroke_width(1) } else { line.color.stroke_width(3) };
            let mut first = true;
            for seg in segments(&line.points, $a.log_x, $a.log_y) {
                // A lone point (e.g. a single validation) is drawn as a dot, which a line cannot show.
                if let [p] = seg[..] {
                    $chart.draw_series(std::iter::once(Circle::new(p, 4, line.color.filled()))).map_err(err)?;
                }
                let s = $chart.draw_series(LineSeries::new(seg, style)).map_err(err)?;
                if first && !line.label.is_empty() {
                    let c = line.color;
                    s.label(line.label.clone())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
                    first = false;
                }
            }
        }
        if $lines.iter().any(|l| !l.label.is_empty()) {
            $chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 16))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(err)?;
        }
    }};
}

/// A line plot to `path` (PNG, 1000×620).
pub fn line_plot(path: &Path, a: &Axes, lines: &[Line]) -> DrawResult {
    init_font();
    let root = BitMapBackend::new(path, (1000, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    chart(&root, a, lines)?;
    root.present().map_err(err)
}

/// Line plots stacked top to bottom in one PNG (1000 wide, 360 per panel) under one title.
pub fn stacked_line_plots(path: &Path, title: &str, panels: &[(Axes, Vec<Line>)]) -> DrawResult {
    init_font();
    let root = BitMapBackend::new(path, (1000, 40 + 360 * panels.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let body = root.titled(title, ("sans-serif", 26)).map_err(err)?;
    for (area, (a, lines)) in body.split_evenly((panels.len(), 1)).iter().zip(panels) {
        chart(area, a, lines)?;
    }
    root.present().map_err(err)
}

/// One line chart with its axes, mesh and legend on `area`.
fn chart<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>, a: &Axes, lines: &[Line]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (x0, x1) = range(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)), a.log_x);
    let (y0, y1) = range(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)), a.log_y);
    let mut builder = ChartBuilder::on(area);
    builder.caption(a.title, ("sans-serif", 24)).margin(15).x_label_area_size(50).y_label_area_size(90);
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(a.x_label)
                .y_desc(a.y_label)
                .x_label_formatter(&|v| tick(*v))
                .y_label_formatter(&|v| tick(*v))
                .label_style(("sans-serif", 15))
                .axis_desc_style(("sans-serif", 18))
                .draw()
                .map_err(err)?;
            draw_lines!(chart, lines, a);
        }};
    }
    match (a.log_x, a.log_y) {
        (false, false) => finish!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?),
        (false, true) => finish!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(err)?),
        (true, false) => finish!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(err)?),
        (true, true) => finish!(builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale()).map_err(err)?),
    }
    Ok(())
}

/// A tick label: plain for moderate magnitudes (trailing zeros trimmed), else `1e-5` style.
fn tick(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e5).contains(&v.abs()) {
        // Two significant digits, trailing zeros trimmed: 3e-4, 2.5e-4.
        let s = format!("{v:.1e}");
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        return format!("{}e{exponent}", mantissa.trim_end_matches('0').trim_end_matches('.'));
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Blue–white–red colour of `v` in [−1, 1].
fn diverging(v: f64) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    let (r, g, b) = if v < 0.0 { (1.0 + v, 1.0 + v, 1.0) } else { (1.0, 1.0 - v, 1.0 - v) };
    RGBColor((r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8)
}

/// Sequential (white → dark blue) colour of `v` in [0, 1].
fn sequential(v: f64) -> RGBColor {
    let v = v.clamp(0.0, 1.0);
    RGBColor((255.0 * (1.0 - 0.9 * v)) as u8, (255.0 * (1.0 - 0.75 * v)) as u8, (255.0 * (1.0 - 0.35 * v)) as u8)
}

/// A heat map of `values[row][col]` (NaN drawn grey) with row/column axis labels.
pub fn heat_map(path: &Path, title: &str, x_label: &str, y_label: &str, values: &[Vec<f64>], x_max: f64) -> DrawResult {
    init_font();
    let root = BitMapBackend::new(path, (1000, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let rows = values.len().max(1);
    let cols = values.first().map_or(1, Vec::len).max(1);
    let top = values.iter().flatten().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(*v)).max(1.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title} (darkest = {top})"), ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..rows as f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(err)?;
    let w = x_max / cols as f64;
    chart
        .draw_series(values.iter().enumerate().flat_map(|(r, row)| {
            row.iter().enumerate().map(move |(c, &v)| {
                let color = if v.is_finite() { sequential(v / top) } else { RGBColor(200, 200, 200) };
                Rectangle::new([(c as f64 * w, r as f64), ((c + 1) as f64 * w, r as f64 + 1.0)], color.filled())
            })
        }))
        .map_err(err)?;
    root.present().map_err(err)
}

/// Panels of fields (`rows` × `cols`, each `n × n`, row-major), titled, on one colour scale
/// symmetric about 0.
pub fn field_panels(
    path: &Path,
    title: &str,
    panels: &[(String, Option<Vec<f64>>)],
    cols: usize,
    n: usize,
) -> DrawResult {
    init_font();
    let rows = panels.len().div_ceil(cols.max(1));
    let cell = 260u32;
    let root = BitMapBackend::new(path, (cell * cols as u32, cell * rows as u32 + 50)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (head, body) = root.split_vertically(50);
    head.titled(title, ("sans-serif", 22)).map_err(err)?;
    let amp = panels
        .iter()
        .filter_map(|p| p.1.as_ref())
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-300);
    for (area, (label, field)) in body.split_evenly((rows, cols)).iter().zip(panels) {
        let area = area.titled(label, ("sans-serif", 15)).map_err(err)?;
        let area = area.margin(4, 4, 4, 4);
        let (w, h) = area.dim_in_pixel();
        let (px, py) = (w as f64 / n as f64, h as f64 / n as f64);
        match field {
            None => {
                area.fill(&RGBColor(220, 220, 220)).map_err(err)?;
            }
            Some(f) => {
                for j in 0..n {
                    for i in 0..n {
                        let v = f[j * n + i];
                        let color = if v.is_finite() { diverging(v / amp) } else { RGBColor(120, 120, 120) };
                        // y increases upwards: row j is drawn from the bottom.
                        let (x0, y0) = ((i as f64 * px) as i32, ((n - 1 - j) as f64 * py) as i32);
                        let (x1, y1) = (((i + 1) as f64 * px).ceil() as i32, (((n - j) as f64) * py).ceil() as i32);
                        area.draw(&Rectangle::new([(x0, y0), (x1, y1)], color.filled())).map_err(err)?;
                    }
                }
            }
        }
    }
    root.present().map_err(err)
}
