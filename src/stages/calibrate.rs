//! `thermalizer calibrate`: the classifier's levels for held-out clean states and the s_init
//! they give ([`crate::rollout::calibration`]), written to
//! `<run.dir>/thermalizer/calibration.json`; and the s_init a rollout uses (the config's level,
//! or the calibrated one for `rollout.s_init: auto`).
//!
//! The stored states of a split are shared among the ranks in contiguous blocks, rated in
//! batches, and the counts per level summed over ranks, so the result does not depend on the
//! rank count.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use tch::{Device, Tensor};

use super::models;
use crate::config::rollout::{RolloutConfig, SInit};
use crate::config::validate::check_thresholds;
use crate::config::Config;
use crate::error::{Context, Error, Result};
use crate::nn::diffusion::Schedule;
use crate::parallel::World;
use crate::rng::{member_stream, Purpose};
use crate::rollout::calibration::{level_at_percentile, share_above, Calibration, NoisedLevel};
use crate::rollout::thermalize::Denoiser;
use crate::store::resume::{self, Decision, StageFiles};
use crate::store::trajectories::GIT_REVISION;
use crate::store::trajectories::{Trajectories, Window, VALID};
use crate::train::task::normals;

/// Split code of the test members.
const TEST: i8 = 2;
/// States rated per classifier call.
const BATCH: usize = 64;
/// Validation states noised to each level 0..=NOISED_LEVELS are rated (the thresholds live there).
const NOISED_LEVELS: usize = 20;
/// Every NOISED_STRIDE-th stored validation state is noised.
const NOISED_STRIDE: usize = 4;

/// Where the calibration of run `c` lives.
pub fn calibration_path(c: &Config) -> PathBuf {
    c.run.dir.join("thermalizer").join("calibration.json")
}

/// The s_init a rollout uses and a sentence saying where it came from: the config's level, or
/// for `auto` the calibration (reused when it is for this thermalizer file and percentile,
/// else made now on all ranks and written). Collective. The thresholds are checked against it.
pub fn resolve_s_init(c: &Config, r: &RolloutConfig, world: &World, device: Device) -> Result<(usize, String)> {
    let levels = c.thermalizer().levels;
    let (s_init, source) = match r.s_init {
        SInit::Level(level) => (level, "rollout.s_init".to_string()),
        SInit::Auto => {
            let calibration = current_or_new(c, r, world, device)?;
            (calibration.s_init, format!("auto: {}; {}", calibration.describe(), calibration_path(c).display()))
        }
    };
    check_thresholds(r, s_init, levels)
        .map_err(|(key, value, why)| Error::Input(format!("rollout.{key} = {value}: {why} (s_init from {source})")))?;
    Ok((s_init, source))
}

/// The calibration on file when it is for this thermalizer and percentile, else a new one.
fn current_or_new(c: &Config, r: &RolloutConfig, world: &World, device: Device) -> Result<Calibration> {
    let path = calibration_path(c);
    let thermalizer = models::require_thermalizer(c, r, device)?;
    let modified = modified_seconds(&thermalizer.path);
    let model = thermalizer.path.display().to_string();
    let reusable = world.root_decides(|| {
        Ok(Calibration::read(&path).is_ok_and(|k| k.is_for(&model, modified, r.calibration_percentile)))
    })?;
    if reusable {
        return Calibration::read(&path);
    }
    if world.is_root() && path.exists() {
        log::info!("{} is for another thermalizer or percentile: calibrating again", path.display());
    }
    run_with(c, r, world, &thermalizer)
}

/// `thermalizer calibrate`: rates the validation and test states and writes the calibration.
pub fn run(c: &Config, world: &World, device: Device) -> Result<Calibration> {
    let r = c.rollout.clone().ok_or_else(|| {
        Error::Input("the config has no rollout section (its models, weights, ema and calibration_percentile keys say what to calibrate)".into())
    })?;
    let thermalizer = models::require_thermalizer(c, &r, device)?;
    run_with(c, &r, world, &thermalizer)
}

fn run_with(
    c: &Config,
    r: &RolloutConfig,
    world: &World,
    thermalizer: &models::LoadedThermalizer,
) -> Result<Calibration> {
    // One calibration per run directory at a time, held (on rank 0) until it is written.
    let (_, _lock) = resume::decide_locked(world, &c.run.dir, "calibrate", || Ok(Decision::Fresh))?;
    let data = Trajectories::open(&StageFiles::generate(&c.run.dir).output, c.layers(), c.output_grid())?;
    let levels = c.thermalizer().levels;
    let counts = rate_split(&data, VALID, world, thermalizer, levels)?;
    let states: u64 = counts.iter().sum();
    if states == 0 {
        return Err(Error::Input(format!(
            "{}: the validation split has no usable members to calibrate on (generate.split.valid)",
            data.path().display()
        )));
    }
    let test_counts = rate_split(&data, TEST, world, thermalizer, levels)?;
    let noised = rate_noised(&data, c.run.seed, world, thermalizer, levels)?;
    let s_init = level_at_percentile(&counts, r.calibration_percentile);
    let calibration = Calibration {
        states,
        s_init,
        percentile: r.calibration_percentile,
        test_states: test_counts.iter().sum(),
        test_above: share_above(&test_counts, s_init),
        counts,
        test_counts,
        noised,
        model: thermalizer.path.display().to_string(),
        model_modified: modified_seconds(&thermalizer.path),
        git_revision: GIT_REVISION.to_string(),
    };
    let path = calibration_path(c);
    world.root_decides(|| {
        std::fs::create_dir_all(path.parent().expect("a directory"))
            .context(|| format!("cannot create {}", path.display()))?;
        calibration.write(&path)
    })?;
    if world.is_root() {
        log::info!("calibration: s_init = {}, {}", calibration.s_init, calibration.describe());
        log::info!("calibration: {}", calibration.describe_noised());
    }
    Ok(calibration)
}

/// Stored states of `split`'s members, every `stride`-th, in member order.
fn states_of(data: &Trajectories, split: i8, stride: usize) -> Vec<Window> {
    data.members(split)
        .into_iter()
        .flat_map(|member| (0..data.samples).step_by(stride).map(move |start| Window { member, start }))
        .collect()
}

/// This rank's share of `states` in batches of consecutive states of one member, normalised:
/// `visit(first global position, batch [B, C, N, N])` for each.
fn for_local_batches(
    data: &Trajectories,
    states: &[Window],
    stride: usize,
    world: &World,
    thermalizer: &models::LoadedThermalizer,
    mut visit: impl FnMut(usize, &Tensor),
) -> Result<()> {
    let scale: Vec<f32> = thermalizer.scale.iter().map(|&s| s as f32).collect();
    let scale = Tensor::from_slice(&scale).view([1, -1, 1, 1]).to_device(thermalizer.device());
    let local = world.members(states.len());
    let mut position = local.start;
    for block in states[local].chunk_by(|a, b| a.member == b.member) {
        for batch in block.chunks(BATCH) {
            let x = data.read_normalised(batch[0], (batch.len() - 1) * stride + 1, &scale)?;
            visit(position, &x.slice(0, 0, None, stride as i64));
            position += batch.len();
        }
    }
    Ok(())
}

/// Counts per level of the classifier's ratings of every stored state of `split`'s members
/// (summed over ranks).
fn rate_split(
    data: &Trajectories,
    split: i8,
    world: &World,
    thermalizer: &models::LoadedThermalizer,
    levels: usize,
) -> Result<Vec<u64>> {
    let states = states_of(data, split, 1);
    let mut counts = vec![0u64; levels];
    for_local_batches(data, &states, 1, world, thermalizer, |_, x| {
        for level in thermalizer.net.levels(x) {
            counts[level] += 1;
        }
    })?;
    Ok(world.sum(&counts))
}

/// The classifier on every `NOISED_STRIDE`-th validation state noised to each level
/// 0..=NOISED_LEVELS (the noise of state p at level t from the stream (seed, calibration,
/// t·2³² + p), so the result does not depend on the rank count).
fn rate_noised(
    data: &Trajectories,
    seed: u64,
    world: &World,
    thermalizer: &models::LoadedThermalizer,
    levels: usize,
) -> Result<Vec<NoisedLevel>> {
    let schedule = Schedule::cosine(levels);
    let top = NOISED_LEVELS.min(levels - 1);
    let states = states_of(data, VALID, NOISED_STRIDE);
    let mut counts = vec![0u64; (top + 1) * levels];
    for_local_batches(data, &states, NOISED_STRIDE, world, thermalizer, |first, x0| {
        let per = x0.numel() / x0.size()[0] as usize;
        for t in 0..=top {
            let eps: Vec<f32> = (0..x0.size()[0] as usize)
                .flat_map(|i| {
                    normals(
                        &mut member_stream(seed, Purpose::Calibration, ((t as u64) << 32) | (first + i) as u64),
                        per,
                    )
                })
                .collect();
            let eps = Tensor::from_slice(&eps).view(x0.size().as_slice()).to_device(x0.device());
            let xt = schedule.noised(x0, &vec![t; x0.size()[0] as usize], &eps);
            for level in thermalizer.net.levels(&xt) {
                counts[t * levels + level] += 1;
            }
        }
    })?;
    let counts = world.sum(&counts);
    Ok((0..=top).map(|t| NoisedLevel::of(t, &counts[t * levels..(t + 1) * levels])).collect())
}

/// Modification time of `path` in whole seconds since the Unix epoch (0 when unknown).
fn modified_seconds(path: &Path) -> u64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}
