//! The `thermalizer bench` subcommands: run a benchmark of this module, print its table on rank 0
//! and optionally write its rows as JSON. Each returns the process exit status (0 done, 2 bad
//! input, 1 other failures).

use std::path::Path;

use serde::Serialize;
use tch::Device;

use crate::bench::rollout::costs;
use crate::bench::train::{default_models, update_time, BenchModel};
use crate::config::rollout::Precision as InferencePrecision;
use crate::config::{Dealias, Precision, SystemKind};
use crate::error::{Error, Result};
use crate::parallel::World;
use crate::stages::command::exit_status;
use crate::stages::train::choose_device;

/// Options of `bench rollout`.
pub struct RolloutOptions<'a> {
    /// `--models` JSON (default: the built-in list).
    pub models: Option<&'a str>,
    pub batches: &'a [i64],
    /// Denoising passes assumed for the thermalized-step cost.
    pub passes: usize,
    /// Diffusion levels of the classifier head.
    pub levels: i64,
    pub precisions: &'a [InferencePrecision],
    pub threads: usize,
    /// Seconds per timed block and timed blocks.
    pub timing: (f64, usize),
    pub device: Option<&'a str>,
    /// Also write the rows as JSON to this file.
    pub json: Option<&'a Path>,
}

/// One row of `bench rollout --json`: costs in ms per member-step, rates in member-steps/s;
/// thermalized = emulator + classifier + `passes` × denoise.
#[derive(Serialize)]
struct RolloutJson<'a> {
    code: &'static str,
    model: &'a str,
    grid: i64,
    device: String,
    precision: &'static str,
    batch: i64,
    threads: usize,
    levels: i64,
    passes: usize,
    emulator_ms: f64,
    classifier_ms: f64,
    denoise_ms: f64,
    thermalized_ms: f64,
    /// thermalized_ms / emulator_ms.
    thermalized_over_emulator: f64,
    emulator_member_steps_per_s: f64,
    thermalized_member_steps_per_s: f64,
}

/// `bench rollout`: inference cost per member-step, on rank 0 only.
pub fn rollout(world: &World, o: &RolloutOptions) -> i32 {
    if !world.is_root() {
        return 0;
    }
    if o.levels < 2 {
        return exit_status(world, Error::Input(format!("--levels {}: a schedule needs at least 2 levels", o.levels)));
    }
    let (device, models) = match device_and_models(o.device, o.models) {
        Ok(v) => v,
        Err(e) => return exit_status(world, e),
    };
    let (threads, levels, passes) = (o.threads, o.levels, o.passes);
    tch::set_num_threads(threads as i32);
    println!("# thermalizer bench rollout: ms per member-step on {device:?}, {threads} thread(s), {levels} levels; thermalized = emulator + classifier + {passes} denoising passes, thermalized/s its member-steps per second");
    println!(
        "{:>12} {:>9} {:>6} {:>12} {:>12} {:>12} {:>16} {:>10} {:>16}",
        "model", "precision", "batch", "emulator", "classifier", "denoise", "thermalized", "÷emulator", "thermalized/s"
    );
    let mut rows = Vec::new();
    for m in &models {
        let shape = m.shape();
        for (&p, &b) in o.precisions.iter().flat_map(|p| o.batches.iter().map(move |b| (p, b))) {
            let r = costs(&shape, (m.grid, levels, b), p.kind(), o.timing.0, o.timing.1, device);
            let therm = r.emulator_ms + r.classifier_ms + passes as f64 * r.denoise_ms;
            println!(
                "{:>12} {:>9} {:>6} {:>12.3} {:>12.3} {:>12.3} {:>16.3} {:>10.2} {:>16.1}",
                m.name,
                p.name(),
                b,
                r.emulator_ms,
                r.classifier_ms,
                r.denoise_ms,
                therm,
                therm / r.emulator_ms,
                1e3 / therm
            );
            rows.push(RolloutJson {
                code: "thermalizer",
                model: &m.name,
                grid: m.grid,
                device: device_label(device),
                precision: p.name(),
                batch: b,
                threads,
                levels,
                passes,
                emulator_ms: r.emulator_ms,
                classifier_ms: r.classifier_ms,
                denoise_ms: r.denoise_ms,
                thermalized_ms: therm,
                thermalized_over_emulator: therm / r.emulator_ms,
                emulator_member_steps_per_s: 1e3 / r.emulator_ms,
                thermalized_member_steps_per_s: 1e3 / therm,
            });
        }
    }
    o.json.map_or(0, |path| write_json(path, &rows))
}

/// `device` as torch spells it (`cpu`, `cuda:0`), for the JSON rows.
fn device_label(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The device, then the `--models` JSON of the benchmarks (default: the built-in list), checked
/// against its grid.
fn device_and_models(device: Option<&str>, models: Option<&str>) -> Result<(Device, Vec<BenchModel>)> {
    let device = choose_device(device)?;
    let models: Vec<BenchModel> = match models {
        None => default_models(),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| Error::Input(format!("--models: not a list of models ({e})")))?
        }
    };
    if let Some(m) = models.iter().find(|m| m.dim_mults.is_empty() || m.grid % (1 << (m.dim_mults.len() - 1)) != 0) {
        return Err(Error::Input(format!("--models: {} does not fit its {}² grid", m.name, m.grid)));
    }
    Ok((device, models))
}

/// Options of `bench train`.
pub struct TrainOptions<'a> {
    /// `--models` JSON (default: the built-in list).
    pub models: Option<&'a str>,
    /// Threads per rank, one table row each.
    pub threads: &'a [usize],
    /// Seconds per timed block and timed blocks.
    pub timing: (f64, usize),
    /// Also write the rows as JSON to this file.
    pub json: Option<&'a Path>,
    pub device: Option<&'a str>,
}

/// One row of `bench train --json`.
#[derive(Serialize)]
struct TrainJson<'a> {
    code: &'static str,
    model: &'a str,
    grid: i64,
    device: String,
    threads: usize,
    ranks: usize,
    batch: i64,
    parameters: i64,
    ms_per_update: f64,
    samples_per_s: f64,
}

/// `bench train`: samples/s of one emulator update, on every rank (weak scaling).
pub fn train(world: &World, o: &TrainOptions) -> i32 {
    let (device, models) = match device_and_models(o.device, o.models) {
        Ok(v) => v,
        Err(e) => return exit_status(world, e),
    };
    let root = world.is_root();
    if root {
        println!(
            "# thermalizer bench train: one emulator update (fwd+bwd+allreduce+AdamW) on {device:?}, {} rank(s)",
            world.size()
        );
        println!(
            "{:>12} {:>11} {:>8} {:>6} {:>7} {:>12} {:>12}",
            "model", "parameters", "threads", "ranks", "batch", "ms/update", "samples/s"
        );
    }
    let mut rows = Vec::new();
    for m in &models {
        for &t in o.threads {
            let r = update_time(m, t, o.timing, world, device);
            if root {
                println!(
                    "{:>12} {:>11} {:>8} {:>6} {:>7} {:>12.2} {:>12.2}",
                    m.name,
                    r.parameters,
                    t,
                    world.size(),
                    m.batch,
                    r.ms_per_update,
                    r.samples_per_s
                );
            }
            rows.push(TrainJson {
                code: "thermalizer",
                model: &m.name,
                grid: m.grid,
                device: device_label(device),
                threads: t,
                ranks: world.size(),
                batch: m.batch,
                parameters: r.parameters,
                ms_per_update: r.ms_per_update,
                samples_per_s: r.samples_per_s,
            });
        }
    }
    match (o.json, root) {
        (Some(path), true) => write_json(path, &rows),
        _ => 0,
    }
}

/// Options of `bench solver`.
pub struct SolverOptions<'a> {
    pub grids: &'a [usize],
    pub precisions: &'a [Precision],
    /// Seconds per timed block and timed blocks.
    pub timing: (f64, usize),
    /// Viscosity of the Kolmogorov flow.
    pub viscosity: f64,
    pub system: SystemKind,
    /// QG small scales (Kolmogorov ignores it).
    pub dealias: Dealias,
    /// Also time the batched libtorch solver on this device, `batch` members per step.
    pub device: Option<&'a str>,
    pub batch: usize,
    /// Also write the rows (native, then batched) as JSON to this file.
    pub json: Option<&'a Path>,
}

/// One row of `bench solver --json`, tagged `"solver": "native"` (one trajectory on one core) or
/// `"batched"` (the libtorch solver, `--device`).
#[derive(Serialize)]
#[serde(tag = "solver", rename_all = "lowercase")]
enum SolverJson {
    Native(NativeJson),
    Batched(BatchedJson),
}

/// The system, grid and precision of a `bench solver --json` row; `dealias` only for QG (the
/// Kolmogorov solver always uses the 2/3 rule).
#[derive(Serialize)]
struct SolverCase {
    code: &'static str,
    system: &'static str,
    grid: usize,
    precision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dealias: Option<&'static str>,
}

/// A native solver row: ms per step, the FFT floor and one transform's µs.
#[derive(Serialize)]
struct NativeJson {
    #[serde(flatten)]
    case: SolverCase,
    ms_per_step: f64,
    floor_ms: f64,
    fft_us: f64,
}

/// A batched solver row; `eff_gb_per_s` = `bytes_per_member_step` × `member_steps_per_s` / 1e9,
/// a lower bound of the bandwidth achieved (see [`crate::bench::fft_bytes`]).
#[derive(Serialize)]
struct BatchedJson {
    #[serde(flatten)]
    case: SolverCase,
    device: String,
    batch: usize,
    ms_per_member_step: f64,
    member_steps_per_s: f64,
    ffts_per_step: f64,
    bytes_per_member_step: f64,
    eff_gb_per_s: f64,
    vs_native: f64,
}

/// `bench solver`: time per step of the native solver on one core, then with `--device` the
/// batched libtorch solver; on rank 0 only.
pub fn solver(world: &World, o: &SolverOptions) -> i32 {
    if !world.is_root() {
        return 0;
    }
    if let Some(n) = o.grids.iter().find(|&&n| n < 8 || n % 2 != 0) {
        return exit_status(world, Error::Input(format!("--grids {n}: grids must be even and >= 8")));
    }
    let device = match o.device.map(|d| choose_device(Some(d))).transpose() {
        Ok(d) => d,
        Err(e) => return exit_status(world, e),
    };
    let mut rows = native_solver(o);
    if let Some(d) = device {
        rows.extend(batched_solver(o, d));
    }
    o.json.map_or(0, |path| write_json(path, &rows))
}

/// `--dealias` as the config spells it.
fn dealias_name(d: Dealias) -> &'static str {
    match d {
        Dealias::Exponential => "exponential",
        Dealias::TwoThirds => "two_thirds",
    }
}

impl SolverCase {
    fn new(o: &SolverOptions, grid: usize, precision: &'static str) -> SolverCase {
        let (system, dealias) = match o.system {
            SystemKind::Kolmogorov => ("kolmogorov", None),
            SystemKind::Qg => ("qg", Some(dealias_name(o.dealias))),
        };
        SolverCase { code: "thermalizer", system, grid, precision, dealias }
    }
}

/// The table (and JSON rows) of the native solver.
fn native_solver(o: &SolverOptions) -> Vec<SolverJson> {
    use crate::bench;
    let (seconds, repeats) = o.timing;
    let (small_scales, dealias) = (o.dealias.small_scales(), dealias_name(o.dealias));
    let what = match o.system {
        SystemKind::Kolmogorov => "one Kolmogorov trajectory, CN-RK4".to_string(),
        SystemKind::Qg => format!("one two-layer QG trajectory (eddy, {dealias} dealiasing), AB3"),
    };
    println!("# thermalizer bench solver: {what}, 1 thread");
    println!(
        "{:>6} {:>5} {:>12} {:>16} {:>12} {:>12} {:>10}",
        "grid", "prec", "ms/step", "member-steps/s", "fft µs", "floor ms", "÷floor"
    );
    let mut rows = Vec::new();
    for &n in o.grids {
        for &p in o.precisions {
            let r = match (o.system, p) {
                (SystemKind::Qg, Precision::F64) => bench::qg::<f64>(n, small_scales, seconds, repeats),
                (SystemKind::Qg, Precision::F32) => bench::qg::<f32>(n, small_scales, seconds, repeats),
                (SystemKind::Kolmogorov, Precision::F64) => bench::solver::<f64>(n, o.viscosity, seconds, repeats),
                (SystemKind::Kolmogorov, Precision::F32) => bench::solver::<f32>(n, o.viscosity, seconds, repeats),
            };
            println!(
                "{:>6} {:>5} {:>12.4} {:>16.1} {:>12.2} {:>12.4} {:>10.2}",
                r.grid,
                r.precision,
                r.ms_per_step,
                1e3 / r.ms_per_step,
                r.fft_us,
                r.floor_ms,
                r.ms_per_step / r.floor_ms
            );
            rows.push(SolverJson::Native(NativeJson {
                case: SolverCase::new(o, r.grid, r.precision),
                ms_per_step: r.ms_per_step,
                floor_ms: r.floor_ms,
                fft_us: r.fft_us,
            }));
        }
    }
    rows
}

/// The table (and JSON rows) of the batched libtorch solver (`bench solver --device`).
fn batched_solver(o: &SolverOptions, device: tch::Device) -> Vec<SolverJson> {
    use crate::bench::{batched, batched_qg};
    let (seconds, repeats) = o.timing;
    let run = (o.batch, device);
    let qg = (o.system == SystemKind::Qg).then(|| o.dealias.small_scales());
    let what = if qg.is_some() {
        format!("two-layer QG model ({} dealiasing)", dealias_name(o.dealias))
    } else {
        "Kolmogorov solver".into()
    };
    println!(
        "# batched libtorch {what} on {device:?}, {} members per step; eff. GB/s: the step's real 2D FFTs' minimum traffic (a lower bound)",
        o.batch
    );
    println!(
        "{:>6} {:>5} {:>18} {:>16} {:>12} {:>18}",
        "grid", "prec", "ms/member-step", "member-steps/s", "eff. GB/s", "vs native (20 st.)"
    );
    let mut rows = Vec::new();
    for &n in o.grids {
        for &p in o.precisions {
            let r = match (qg, p) {
                (Some(s), Precision::F32) => batched_qg::<f32>(n, s, run, seconds, repeats),
                (Some(s), Precision::F64) => batched_qg::<f64>(n, s, run, seconds, repeats),
                (None, Precision::F32) => batched::<f32>(n, o.viscosity, run, seconds, repeats),
                (None, Precision::F64) => batched::<f64>(n, o.viscosity, run, seconds, repeats),
            };
            let rate = 1e3 / r.ms_per_member_step;
            let gb_per_s = r.bytes_per_member_step * rate / 1e9;
            println!(
                "{:>6} {:>5} {:>18.4} {:>16.1} {:>12.2} {:>18.2e}",
                r.grid, r.precision, r.ms_per_member_step, rate, gb_per_s, r.vs_native
            );
            rows.push(SolverJson::Batched(BatchedJson {
                case: SolverCase::new(o, r.grid, r.precision),
                device: device_label(device),
                batch: r.batch,
                ms_per_member_step: r.ms_per_member_step,
                member_steps_per_s: rate,
                ffts_per_step: r.ffts_per_step,
                bytes_per_member_step: r.bytes_per_member_step,
                eff_gb_per_s: gb_per_s,
                vs_native: r.vs_native,
            }));
        }
    }
    rows
}

/// Writes `rows` as a pretty-printed JSON list to `path` (`--json`); 1 if it cannot.
fn write_json<T: Serialize>(path: &Path, rows: &[T]) -> i32 {
    let text = match serde_json::to_string_pretty(rows) {
        Ok(t) => t + "\n",
        Err(e) => {
            eprintln!("error: --json {}: {e}", path.display());
            return 1;
        }
    };
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("error: --json {}: {e}", path.display());
        return 1;
    }
    0
}
