//! Training curves: each trained model's `<run.dir>/<model>/history.csv` and `validation.csv`
//! drawn to `training_<model>.png`, one panel per quantity against the update count: the
//! training loss (every update thin, its running mean thick) with the validation loss, the
//! learning rate, then one panel per validation diagnostic (the thermalizer's classifier:
//! `clean_level`, `low_within_2`). Drawn while training runs too: the files are appended to as
//! updates are applied.

use std::path::{Path, PathBuf};

use plotters::style::RGBColor;

use super::figures::{stacked_line_plots, Axes, Line};
use crate::error::{Context, Result};

/// The models whose training directories a run holds, in pipeline order.
const MODELS: [&str; 2] = ["emulator", "thermalizer"];
/// Columns of `validation.csv` that are not diagnostics of the model.
const NOT_DIAGNOSTICS: [&str; 5] = ["update", "epoch", "valid_loss", "wall_seconds", "samples_per_second"];
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VALID: RGBColor = RGBColor(214, 39, 40);
const OTHER: RGBColor = RGBColor(44, 160, 44);

/// A CSV file of numbers with a header row; an unparsable cell reads NaN.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<f64>>,
}

impl Table {
    fn read(path: &Path) -> Result<Table> {
        let text = std::fs::read_to_string(path).context(|| path.display())?;
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default().split(',').map(String::from).collect();
        let rows = lines.map(|l| l.split(',').map(|v| v.parse().unwrap_or(f64::NAN)).collect()).collect();
        Ok(Table { header, rows })
    }

    /// (update, column) pairs of the rows that have the column.
    fn series(&self, column: &str) -> Vec<(f64, f64)> {
        let Some(c) = self.header.iter().position(|h| h == column) else { return Vec::new() };
        self.rows.iter().filter(|r| r.len() > c).map(|r| (r[0], r[c])).collect()
    }
}

/// Mean over a trailing window of `width` points (fewer at the start).
fn running_mean(points: &[(f64, f64)], width: usize) -> Vec<(f64, f64)> {
    let mut sum = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            sum += y;
            if i >= width {
                sum -= points[i - width].1;
            }
            (x, sum / (i + 1).min(width) as f64)
        })
        .collect()
}

/// Whether the finite positive values span more than a decade (then a log axis shows them best).
fn spans_decades(points: &[(f64, f64)]) -> bool {
    let positive = points.iter().map(|p| p.1).filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = positive.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    hi > 10.0 * lo
}

fn line(label: &str, color: RGBColor, points: Vec<(f64, f64)>, thin: bool) -> Line {
    Line { label: label.into(), color, points, thin }
}

fn axes<'a>(title: &'a str, y_label: &'a str, log_y: bool) -> Axes<'a> {
    Axes { title, x_label: "update", y_label, log_x: false, log_y }
}

/// Draws `out/training_<model>.png` for every model of `run_dir` with a `history.csv`; returns
/// the files written (none when nothing was trained there yet). Errors are failures.
pub fn draw(run_dir: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for model in MODELS {
        let dir = run_dir.join(model);
        if !dir.join("history.csv").exists() {
            continue;
        }
        let history = Table::read(&dir.join("history.csv"))?;
        let validation = match dir.join("validation.csv") {
            p if p.exists() => Table::read(&p)?,
            _ => Table { header: Vec::new(), rows: Vec::new() },
        };
        // Skipped (non-finite) updates carry no loss worth drawing.
        let applied: Vec<bool> = history.series("applied").iter().map(|&(_, a)| a == 1.0).collect();
        let loss: Vec<(f64, f64)> =
            history.series("loss").into_iter().zip(&applied).filter(|(_, &a)| a).map(|(p, _)| p).collect();
        let smooth = running_mean(&loss, (loss.len() / 50).max(1));
        let mut panels = vec![
            (
                axes("Loss", "loss", spans_decades(&loss)),
                vec![
                    line("", TRAIN, loss, true),
                    line("training (running mean)", TRAIN, smooth, false),
                    line("validation", VALID, validation.series("valid_loss"), false),
                ],
            ),
            (axes("Learning rate", "learning rate", false), vec![line("", OTHER, history.series("lr"), false)]),
        ];
        let diagnostics: Vec<&String> =
            validation.header.iter().filter(|h| !NOT_DIAGNOSTICS.contains(&h.as_str())).collect();
        for name in &diagnostics {
            panels.push((
                axes(name.as_str(), name.as_str(), false),
                vec![line("", VALID, validation.series(name.as_str()), false)],
            ));
        }
        std::fs::create_dir_all(out).context(|| out.display())?;
        let path = out.join(format!("training_{model}.png"));
        stacked_line_plots(&path, &format!("Training of the {model} ({})", dir.display()), &panels)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_mean_averages_the_trailing_window() {
        let p: Vec<(f64, f64)> = [1.0, 3.0, 5.0, 7.0].iter().enumerate().map(|(i, &y)| (i as f64, y)).collect();
        let m: Vec<f64> = running_mean(&p, 2).into_iter().map(|(_, y)| y).collect();
        assert_eq!(m, vec![1.0, 2.0, 4.0, 6.0]);
    }

    #[test]
    fn training_curves_are_drawn_from_the_csv_files_by_column_name() {
        let dir = std::env::temp_dir().join(format!("thermalizer-curves-{}", std::process::id()));
        let model = dir.join("thermalizer");
        std::fs::create_dir_all(&model).unwrap();
        let history: String = std::iter::once("update,epoch,batch,lr,loss,grad_norm,applied,wall_seconds".to_string())
            .chain((1..=40).map(|u| format!("{u},0,{u},1e-3,{},1.0,1,{u}", 1.0 / u as f64)))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(model.join("history.csv"), history).unwrap();
        std::fs::write(model.join("validation.csv"), "update,epoch,valid_loss,clean_level\n20,0,0.1,3\n40,1,0.05,2\n")
            .unwrap();
        let out = dir.join("report");
        let files = draw(&dir, &out).unwrap();
        assert_eq!(files, vec![out.join("training_thermalizer.png")], "only the trained model is drawn");
        let png = std::fs::read(&files[0]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
