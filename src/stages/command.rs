//! Each stage as a command: run it on all ranks, log its outcome once, and turn it into the
//! process exit status (0 done, 2 bad input, 75 stopped after a checkpoint, 1 failure). The
//! single-stage commands and `thermalizer pipeline` share these, so a stage behaves the same
//! whichever way it is started.

use std::io::Write;
use std::path::Path;

use super::train::{self, Model, TrainOptions};
use super::{calibrate, models, status, well};
use super::{generate, rollout};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::parallel::signals::{StopFlag, EXIT_INTERRUPTED};
use crate::parallel::World;
use crate::report::{self, Headline};
use crate::store::resume::Outcome;
use crate::train::trainer::Trained;
use crate::train::weights_file::StoredAs;

/// Prints a stage error (once for input errors and failures all ranks hold, from the failing
/// rank otherwise) and returns the exit status; a run-time failure of one rank in a multi-rank
/// job aborts all ranks, one that all ranks hold ends them together.
pub fn exit_status(world: &World, e: Error) -> i32 {
    match e {
        Error::Input(_) => {
            if world.is_root() {
                eprintln!("error: {e}");
            }
        }
        Error::Collective(_) => {
            if world.is_root() {
                eprintln!("error: {e}");
            }
            if world.size() > 1 {
                world.exit_together(1);
            }
        }
        _ => {
            // One write, so that the lines of several failing ranks do not interleave.
            let _ = std::io::stderr().write_all(format!("error (rank {}): {e}\n", world.rank()).as_bytes());
            if world.size() > 1 {
                let _ = std::io::stderr().flush();
                // A moment for the launcher to forward the line: MPICH's hydra drops the
                // output it has not read when MPI_Abort ends the job.
                std::thread::sleep(std::time::Duration::from_millis(500));
                world.abort(1);
            }
        }
    }
    e.exit_status()
}

/// Prints `path` on stdout (rank 0) and notes when the stage had nothing to do.
fn finished(world: &World, path: &std::path::Path, already: bool, what: &str) {
    if world.is_root() {
        if already {
            log::info!("{} is already {what} for this config; nothing to do", path.display());
        }
        println!("{}", path.display());
    }
}

/// Logs a stop on a signal (after the stage's checkpoint) and returns the resumable status.
fn stopped(world: &World, at: &str) -> i32 {
    if world.is_root() {
        log::warn!("stopped on request {at}; checkpoint written, run the same command to resume");
    }
    EXIT_INTERRUPTED
}

/// `thermalizer generate`: the ensemble to `<run.dir>/trajectories.h5`; with `device`, stepped
/// by the batched libtorch solver on it (`cpu` or `cuda`), else by the native CPU solver.
pub fn generate(config: &Config, world: &World, stop: &StopFlag, device: Option<&str>) -> i32 {
    let device = match device.map(|d| train::choose_device(Some(d))).transpose() {
        Ok(d) => d,
        Err(e) => return exit_status(world, e),
    };
    match generate::run(config, world, stop, device) {
        Ok(Outcome::Complete { result: path, already }) => {
            finished(world, &path, already, "complete");
            0
        }
        Ok(Outcome::Interrupted { step }) => stopped(world, &format!("at solver step {step}")),
        Err(e) => exit_status(world, e),
    }
}

/// `thermalizer train <model>`: checkpoints in `<run.dir>/<model>/`.
pub fn train(config: &Config, world: &World, stop: &StopFlag, model: Model, opts: &TrainOptions) -> i32 {
    match train::run(config, world, stop, model, opts) {
        Ok(Outcome::Complete { result: Trained { updates, best }, already }) => {
            let dir = config.run.dir.join(model.name());
            if world.is_root() {
                log::info!(
                    "{}: {updates} updates, best validation loss {}",
                    model.name(),
                    best.map_or("-".into(), |b| format!("{b:.5e}"))
                );
            }
            finished(world, &dir.join("latest.safetensors"), already, "trained");
            0
        }
        Ok(Outcome::Interrupted { step }) => stopped(world, &format!("after update {step}")),
        Err(e) => exit_status(world, e),
    }
}

/// `thermalizer calibrate`: `<run.dir>/thermalizer/calibration.json` (printed on stdout).
pub fn calibrate(config: &Config, world: &World, device: Option<&str>) -> i32 {
    match train::choose_device(device).and_then(|d| calibrate::run(config, world, d)) {
        Ok(_) => {
            finished(world, &calibrate::calibration_path(config), false, "written");
            0
        }
        Err(e) => exit_status(world, e),
    }
}

/// `thermalizer rollout`: statistics to `<run.dir>/rollout.h5`.
pub fn rollout(config: &Config, world: &World, stop: &StopFlag, device: Option<&str>) -> i32 {
    match train::choose_device(device).and_then(|d| rollout::run(config, world, stop, d)) {
        Ok(Outcome::Complete { result: path, already }) => {
            finished(world, &path, already, "complete");
            0
        }
        Ok(Outcome::Interrupted { step }) => stopped(world, &format!("at emulator step {step}")),
        Err(e) => exit_status(world, e),
    }
}

/// Runs `work` on rank 0 only while the others wait for its verdict: `Ok(Some(value))` on rank 0
/// and `Ok(None)` elsewhere when it succeeded, `Err(exit status)` on every rank when it failed
/// (2 for bad input, 1 otherwise, the same on every rank).
fn on_root<T>(world: &World, work: impl FnOnce() -> Result<T>) -> Result<Option<T>, i32> {
    let outcome = if world.is_root() { Some(work()) } else { None };
    let status = match &outcome {
        Some(Err(e)) => e.exit_status() as u64,
        _ => 0,
    };
    let status = world.sum(&[status])[0] as i32; // rank 0's, on every rank
    match outcome {
        Some(Ok(value)) => Ok(Some(value)),
        Some(Err(e)) => Err(exit_status(world, e)),
        None if status != 0 => Err(status),
        None => Ok(None),
    }
}

/// `thermalizer report [--partial]`: figures, summary.md and summary.json of `run_dir` (rank 0
/// draws; the others wait for its verdict); `partial`: of the rollout in progress, up to its last
/// checkpoint. Returns the exit status and, on rank 0, what the report found.
pub fn report(run_dir: &Path, world: &World, partial: bool) -> (i32, Option<Headline>) {
    match on_root(world, || report::write(run_dir, partial)) {
        Ok(Some(h)) => {
            for m in &h.modes {
                log::info!(
                    "{}: median stable horizon {}{:.0} steps, {:.0} % surviving",
                    m.mode,
                    if m.median_is_lower_bound { "≥ " } else { "" },
                    m.median_stable_horizon,
                    m.surviving_fraction * 100.0
                );
            }
            println!("{}", h.dir.join("summary.md").display());
            (0, Some(h))
        }
        Ok(None) => (0, None),
        Err(code) => (code, None),
    }
}

/// `thermalizer report --training`: the training curves of `run_dir`'s models (rank 0 draws;
/// the others wait). Prints each file written.
pub fn training_curves(run_dir: &Path, world: &World) -> i32 {
    match on_root(world, || report::training::draw(run_dir, &run_dir.join("report"))) {
        Ok(Some(files)) if files.is_empty() => exit_status(
            world,
            Error::Input(format!("{}: no model has been trained here (no <model>/history.csv)", run_dir.display())),
        ),
        Ok(files) => {
            for f in files.unwrap_or_default() {
                println!("{}", f.display());
            }
            0
        }
        Err(code) => code,
    }
}

/// `thermalizer status`: the state of every stage of `run_dir` (against `config` when given),
/// printed by rank 0. Exits 0 whatever the stages' states.
pub fn status(run_dir: &Path, config: Option<&Config>, world: &World) -> i32 {
    if !run_dir.is_dir() {
        return exit_status(world, Error::Input(format!("run directory {} does not exist", run_dir.display())));
    }
    if world.is_root() {
        print!("{}", status::table(run_dir, &status::of(run_dir, config)));
    }
    0
}

/// `thermalizer export`: the models the rollout would use, weights only, into `out` (rank 0
/// writes; the others wait for its verdict). Prints each file written.
pub fn export(config: &Config, world: &World, out: &Path, how: StoredAs, thermalizer_only: bool) -> i32 {
    match on_root(world, || models::export(config, out, how, thermalizer_only)) {
        Ok(files) => {
            for f in files.unwrap_or_default() {
                let bytes = std::fs::metadata(&f).map_or(0, |m| m.len());
                log::info!("{}: {:.2} MB", f.display(), bytes as f64 / 1e6);
                println!("{}", f.display());
            }
            0
        }
        Err(code) => code,
    }
}

/// `thermalizer export-well`: the trajectories in The Well's layout into `out` (rank 0 writes;
/// the others wait for its verdict). Prints each file written.
pub fn export_well(config: &Config, world: &World, out: &Path) -> i32 {
    match on_root(world, || well::export(config, out)) {
        Ok(files) => {
            for f in files.unwrap_or_default() {
                println!("{}", f.display());
            }
            0
        }
        Err(code) => code,
    }
}

/// `thermalizer pipeline`: generate (native CPU solver) → train emulator → train thermalizer →
/// rollout → report on all ranks, each stage skipping what is already done for this config and
/// resuming what was interrupted; stops at the first stage that does not finish (its exit status
/// is returned). A model the rollout reads from a shipped file (`rollout.models`: both,
/// `rollout.thermalizer_file`: the thermalizer) is not trained.
pub fn pipeline(config: &Config, world: &World, opts: &TrainOptions) -> i32 {
    let stop = StopFlag::install();
    let banner = |name: &str| {
        if world.is_root() {
            log::info!("==== pipeline: {name}");
        }
    };
    banner("generate");
    let mut code = generate(config, world, &stop, None);
    for model in [Model::Emulator, Model::Thermalizer] {
        if code != 0 {
            break;
        }
        match config.rollout.as_ref().and_then(|r| models::shipped(r, model.name())) {
            Some(s) => banner(&format!("train {}: skipped ({} = {})", model.name(), s.key, s.value.display())),
            None => {
                banner(&format!("train {}", model.name()));
                code = train(config, world, &stop, model, opts);
            }
        }
    }
    if code == 0 {
        banner("rollout");
        code = rollout(config, world, &stop, opts.device.as_deref());
    }
    if code != 0 {
        return code;
    }
    banner("report");
    let (code, headline) = report(&config.run.dir, world, false);
    if let Some(h) = headline {
        println!("{}", h.one_line());
    }
    code
}
