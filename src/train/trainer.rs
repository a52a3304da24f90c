//! The data-parallel training loop, the same for both models.
//!
//! Per update: every rank computes the loss of its block of the global batch (divided by the
//! global batch size) and its gradients; the flat gradient buffer, with the loss appended, is
//! summed over ranks; if any value is non-finite every rank skips the update (they hold the
//! same buffer, so they agree without more communication); otherwise the gradient is clipped
//! and AdamW (and the EMA) applied identically everywhere. Parameters start from rank 0's.
//!
//! Checkpoints (`latest.safetensors`, and `best.safetensors` by validation loss) are written by
//! rank 0 every `run.checkpoint_interval` seconds (0: after every update), at the end of each
//! epoch, at the end, and at the next update after SIGTERM/SIGINT/SIGUSR1 on any rank. The
//! same command resumes from `latest`; a finished run is left alone. `history.csv` (one row per
//! applied or skipped update) and `validation.csv` (one row per validation) are truncated to
//! the checkpoint on resume, so an interrupted run's history equals an uninterrupted one's.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::{Device, Tensor};

use super::data::{epoch_order, evenly_spaced};
use super::optim::{clip_grad_norm, AdamW, Ema, Parameters};
use super::reduce::Reducer;
use super::task::{Draw, Split, Task};
use super::weights_file::{Checkpoint, FORMAT};
use crate::config::{same_identity, Stage};
use crate::error::{Context, Error, Result};
use crate::parallel::signals::StopFlag;
use crate::parallel::{split_range, World};
use crate::store::resume::{self, Decision, Outcome};
use crate::store::trajectories::{GIT_REVISION, VERSION};

/// Run-level settings of a training.
pub struct Session<'a> {
    pub world: &'a World,
    pub reducer: &'a dyn Reducer,
    pub stop: &'a StopFlag,
    /// `<run.dir>/<model>/`.
    pub dir: PathBuf,
    /// Resolved config YAML (stored in checkpoints).
    pub config_yaml: String,
    /// What must not change between a checkpoint and its resumption, and the stage it is of.
    pub identity: String,
    pub stage: Stage,
    pub allow_config_change: bool,
    pub seed: u64,
    pub checkpoint_interval: f64,
    pub device: Device,
}

/// What a finished training holds.
#[derive(Debug, PartialEq)]
pub struct Trained {
    /// Optimizer updates applied, over every session of the run.
    pub updates: u64,
    /// Lowest validation loss seen (its weights are `best.safetensors`).
    pub best: Option<f64>,
}

/// Where training stands (all of it is in the checkpoint).
#[derive(Clone, Debug, Default)]
struct Progress {
    applied: u64,
    epoch: u64,
    batch: u64,
    skipped_total: u64,
    skipped_in_a_row: u64,
    best: Option<f64>,
    last_valid: Option<f64>,
    finished: bool,
    /// Wall seconds spent training, summed over every session of a resumed run.
    wall_seconds: f64,
}

fn latest(dir: &Path) -> PathBuf {
    dir.join("latest.safetensors")
}

/// Rank 0 inspects the checkpoint directory: fresh, resume or done (and refuses foreign or
/// changed-config checkpoints).
fn preflight(task: &dyn Task, s: &Session) -> Result<Decision> {
    std::fs::create_dir_all(&s.dir).input_context(|| format!("cannot create {}", s.dir.display()))?;
    let path = latest(&s.dir);
    if !path.exists() {
        return Ok(Decision::Fresh);
    }
    let ck = Checkpoint::load(&path)?;
    let model = ck.meta("model", &path)?;
    if model != task.setup().name {
        return Err(Error::Input(format!(
            "checkpoint {}: holds a {model} model, not the {}",
            path.display(),
            task.setup().name
        )));
    }
    let changed = !same_identity(s.stage, ck.meta("identity", &path)?, &s.identity);
    if changed && !s.allow_config_change {
        return Err(Error::Input(format!(
            "checkpoint {}: was trained with a different config (data, model or training settings); pass \
             --allow-config-change to continue it with this one, or use another run.dir",
            path.display()
        )));
    }
    let params = Parameters::of(&task.setup().vs);
    for (name, t) in &params.named {
        ck.tensor(name, &t.size(), &path)?;
    }
    // A finished run continues only under a deliberately changed config (e.g. more epochs).
    Ok(if ck.meta("finished", &path)? == "true" && !changed { Decision::Done } else { Decision::Resume })
}

struct State {
    params: Parameters,
    adam: AdamW,
    ema: Option<Ema>,
    progress: Progress,
}

fn parse<T: std::str::FromStr>(ck: &Checkpoint, key: &str, path: &Path) -> Result<T> {
    let v = ck.meta(key, path)?;
    v.parse()
        .map_err(|_| Error::Input(format!("checkpoint {}: metadata '{key}' = {v:?} is not a number", path.display())))
}

fn opt_f64(ck: &Checkpoint, key: &str, path: &Path) -> Result<Option<f64>> {
    match ck.meta(key, path)? {
        "" => Ok(None),
        _ => parse(ck, key, path).map(Some),
    }
}

fn restore(st: &mut State, path: &Path, device: Device) -> Result<()> {
    let ck = Checkpoint::load(path)?;
    let _g = tch::no_grad_guard();
    for (name, p) in &st.params.named {
        p.detach().copy_(&ck.tensor(name, &p.size(), path)?.to_device(device));
    }
    let n = st.params.numel();
    st.adam.exp_avg.copy_(&ck.tensor("optimizer/exp_avg", &[n], path)?.to_device(device));
    st.adam.exp_avg_sq.copy_(&ck.tensor("optimizer/exp_avg_sq", &[n], path)?.to_device(device));
    if let Some(ema) = &mut st.ema {
        let parts: Vec<Tensor> = st
            .params
            .named
            .iter()
            .map(|(name, p)| ck.tensor(&format!("ema/{name}"), &p.size(), path).map(|t| t.reshape([-1])))
            .collect::<Result<_>>()?;
        ema.flat.copy_(&Tensor::cat(&parts, 0).to_device(device));
    }
    st.progress = Progress {
        applied: parse(&ck, "update", path)?,
        epoch: parse(&ck, "epoch", path)?,
        batch: parse(&ck, "batch", path)?,
        skipped_total: parse(&ck, "skipped", path)?,
        skipped_in_a_row: 0,
        best: opt_f64(&ck, "best_valid_loss", path)?,
        last_valid: opt_f64(&ck, "last_valid_loss", path)?,
        finished: ck.meta("finished", path)? == "true",
        // Checkpoints written before the column existed count their past sessions as zero.
        wall_seconds: if ck.meta.contains_key("wall_seconds") { parse(&ck, "wall_seconds", path)? } else { 0.0 },
    };
    Ok(())
}

fn save(task: &dyn Task, st: &State, s: &Session, name: &str) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> =
        st.params.named.iter().map(|(k, t)| (k.clone(), t.detach().shallow_clone())).collect();
    if let Some(ema) = &st.ema {
        for ((k, _), v) in st.params.named.iter().zip(st.params.split(&ema.flat)) {
            tensors.insert(format!("ema/{k}"), v);
        }
    }
    tensors.insert("optimizer/exp_avg".into(), st.adam.exp_avg.shallow_clone());
    tensors.insert("optimizer/exp_avg_sq".into(), st.adam.exp_avg_sq.shallow_clone());
    tensors.insert("normalisation/scale".into(), Tensor::from_slice(&task.setup().samples.scale[..]));
    let p = &st.progress;
    let show = |v: Option<f64>| v.map(|x| format!("{x:e}")).unwrap_or_default();
    let meta: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("model", task.setup().name.to_string()),
        ("config", s.config_yaml.clone()),
        ("identity", s.identity.clone()),
        ("version", VERSION.to_string()),
        ("git_revision", GIT_REVISION.to_string()),
        ("ranks", s.world.size().to_string()),
        ("update", p.applied.to_string()),
        ("epoch", p.epoch.to_string()),
        ("batch", p.batch.to_string()),
        ("skipped", p.skipped_total.to_string()),
        ("best_valid_loss", show(p.best)),
        ("last_valid_loss", show(p.last_valid)),
        ("finished", p.finished.to_string()),
        ("wall_seconds", format!("{:e}", p.wall_seconds)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Checkpoint { tensors, meta }.save(&s.dir.join(name))
}

/// Appends CSV rows (rank 0 only).
struct Csv(Option<BufWriter<File>>);

impl Csv {
    /// Opens `path` for appending after keeping only rows whose first column (the update) is
    /// at most `keep_until` (a resumed run rewrites what followed its checkpoint).
    fn open(path: &Path, header: &str, keep_until: Option<u64>, root: bool) -> Result<Csv> {
        if !root {
            return Ok(Csv(None));
        }
        let mut rows = vec![header.to_string()];
        if let (Some(limit), Ok(f)) = (keep_until, File::open(path)) {
            rows.extend(
                BufReader::new(f)
                    .lines()
                    .skip(1)
                    .map_while(Result::ok)
                    .filter(|l| l.split(',').next().and_then(|u| u.parse::<u64>().ok()).is_some_and(|u| u <= limit)),
            );
        }
        std::fs::write(path, rows.join("\n") + "\n").context(|| path.display())?;
        Ok(Csv(Some(BufWriter::new(OpenOptions::new().append(true).open(path).context(|| path.display())?))))
    }

    fn row(&mut self, fields: &[String]) {
        if let Some(w) = &mut self.0 {
            let _ = writeln!(w, "{}", fields.join(","));
        }
    }

    fn flush(&mut self) {
        if let Some(w) = &mut self.0 {
            let _ = w.flush();
        }
    }
}

/// Mean validation loss, then the task's mean diagnostics, over the fixed validation subset
/// (NaN without validation samples); and the size of that subset.
fn validate(task: &dyn Task, s: &Session, applied: u64) -> Result<(Vec<f64>, usize)> {
    let n = task.setup().len(Split::Valid);
    let picks = evenly_spaced(n, task.setup().training.valid_samples);
    let mine = split_range(picks.len(), s.world.size(), s.world.rank());
    let _g = tch::no_grad_guard();
    let mut sums = vec![0.0f64; 1 + task.diagnostic_names().len()];
    let draws: Vec<Draw> =
        picks[mine.clone()].iter().zip(mine).map(|(&sample, pos)| Draw { sample, stream: pos as u64 }).collect();
    for chunk in draws.chunks(task.setup().training.batch_size.max(1)) {
        sums[0] += task.loss(Split::Valid, chunk, 1.0, applied)?.double_value(&[]);
        for (sum, v) in sums[1..].iter_mut().zip(task.diagnostics(chunk)?) {
            *sum += v;
        }
    }
    s.world.sum_f64(&mut sums);
    Ok((sums.iter().map(|v| if picks.is_empty() { f64::NAN } else { v / picks.len() as f64 }).collect(), picks.len()))
}

fn eta(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

/// Trains `task` to the end (or until stopped), resuming from `latest` if present.
pub fn train(task: &dyn Task, s: &Session) -> Result<Outcome<Trained>> {
    let world = s.world;
    // One writer per model and run directory, held (on rank 0) until training returns.
    let run_dir = s.dir.parent().unwrap_or(&s.dir);
    let stage = format!("train {}", task.setup().name);
    let (decision, _lock) = resume::decide_locked(world, run_dir, &stage, || preflight(task, s))?;
    let lc = task.setup().training.clone();
    let n_train = task.setup().len(Split::Train);
    let per_epoch = (n_train / lc.batch_size) as u64;
    if per_epoch == 0 {
        return Err(Error::Input(format!(
            "{}.training.batch_size = {}: the training split has only {n_train} samples",
            task.setup().name,
            lc.batch_size
        )));
    }
    if lc.batch_size < world.size() {
        return Err(Error::Input(format!(
            "{}.training.batch_size = {}: smaller than the {} ranks of this job (each rank needs at least one sample \
             of every batch)",
            task.setup().name,
            lc.batch_size,
            world.size()
        )));
    }
    let params = Parameters::of(&task.setup().vs);
    let adam = AdamW::new(&task.setup().optimizer, params.numel(), s.device);
    let ema = task.setup().optimizer.ema_decay.map(|d| Ema::new(d, &params));
    let mut st = State { params, adam, ema, progress: Progress::default() };
    if decision == Decision::Fresh {
        let mut flat = st.params.flat();
        s.reducer.broadcast_in_place(&mut flat);
        st.params.set_flat(&flat);
        if let Some(ema) = &mut st.ema {
            ema.flat.copy_(&flat);
        }
    } else {
        restore(&mut st, &latest(&s.dir), s.device)?;
    }
    if decision == Decision::Done {
        let p = &st.progress;
        return Ok(Outcome::Complete { result: Trained { updates: p.applied, best: p.best }, already: true });
    }
    let total = lc.max_updates.unwrap_or(u64::MAX).min(per_epoch * lc.epochs as u64);
    let root = world.is_root();
    let keep = (decision == Decision::Resume).then_some(st.progress.applied);
    let mut history = Csv::open(&s.dir.join("history.csv"), HISTORY_HEADER, keep, root)?;
    let mut valid_csv = Csv::open(&s.dir.join("validation.csv"), &validation_header(task), keep, root)?;
    if root {
        log::info!(
            "{}: {} parameters, {n_train} training / {} validation samples, batch {} over {} rank(s), {} updates per \
             epoch{}",
            task.setup().name,
            st.params.numel(),
            task.setup().len(Split::Valid),
            lc.batch_size,
            world.size(),
            per_epoch,
            if decision == Decision::Resume {
                format!(
                    "; resuming at update {} (epoch {}, batch {})",
                    st.progress.applied, st.progress.epoch, st.progress.batch
                )
            } else {
                String::new()
            }
        );
    }
    let (start, mut last_ck, mut last_log) = (Instant::now(), Instant::now(), Instant::now());
    let clock = WallClock { before: st.progress.wall_seconds, start };
    let (start_applied, mut log_samples) = (st.progress.applied, 0usize);
    let ranks = world.size();
    let mut validated_at = None;
    while st.progress.epoch < lc.epochs as u64 && st.progress.applied < total {
        let order = epoch_order(n_train, s.seed, st.progress.epoch);
        while st.progress.batch < per_epoch {
            let p = &mut st.progress;
            let base = (p.batch as usize) * lc.batch_size;
            let mine = split_range(lc.batch_size, ranks, world.rank());
            let draws: Vec<Draw> =
                mine.map(|j| Draw { sample: order[base + j], stream: (p.epoch << 32) | (base + j) as u64 }).collect();
            let update_start = Instant::now();
            st.params.zero_grad();
            let loss = task.loss(Split::Train, &draws, lc.batch_size as f64, p.applied)?;
            loss.backward();
            let mut flat = Tensor::cat(&[st.params.flat_grad(), loss.detach().reshape([1])], 0);
            s.reducer.sum_in_place(&mut flat);
            let global_loss = flat.double_value(&[flat.numel() as i64 - 1]);
            let mut grad = flat.narrow(0, 0, flat.numel() as i64 - 1);
            let finite = bool::try_from(flat.isfinite().all()).unwrap_or(false);
            let lr = st.adam.lr(p.applied);
            let norm = if finite { clip_grad_norm(&mut grad, st.adam.cfg.grad_clip) } else { f64::NAN };
            if finite {
                st.adam.step(&st.params, &grad, p.applied);
                if let Some(ema) = &mut st.ema {
                    ema.update(&st.params);
                }
                p.applied += 1;
                p.skipped_in_a_row = 0;
            } else {
                p.skipped_total += 1;
                p.skipped_in_a_row += 1;
                if root {
                    log::warn!(
                        "{}: non-finite loss or gradient at epoch {} batch {}; update skipped ({} in a row)",
                        task.setup().name,
                        p.epoch,
                        p.batch,
                        p.skipped_in_a_row
                    );
                }
                if p.skipped_in_a_row > lc.max_skipped {
                    return Err(Error::Failure(format!(
                        "{}: {} consecutive non-finite updates (limit {}.training.max_skipped = {}); the last good \
                         checkpoint is {}; lower the learning rate or check the data",
                        task.setup().name,
                        p.skipped_in_a_row,
                        task.setup().name,
                        lc.max_skipped,
                        latest(&s.dir).display()
                    )));
                }
            }
            history.row(&[
                p.applied.to_string(),
                p.epoch.to_string(),
                p.batch.to_string(),
                format!("{lr:e}"),
                format!("{global_loss:e}"),
                format!("{norm:e}"),
                (finite as u8).to_string(),
                format!("{:.3}", clock.now()),
                format!("{:.2}", lc.batch_size as f64 / update_start.elapsed().as_secs_f64()),
            ]);
            p.wall_seconds = clock.now();
            p.batch += 1;
            log_samples += lc.batch_size;
            if root && finite && p.applied % lc.log_every == 0 {
                let rate = log_samples as f64 / last_log.elapsed().as_secs_f64();
                let per_update = start.elapsed().as_secs_f64() / (p.applied - start_applied).max(1) as f64;
                log::info!(
                    "{} update {}/{} epoch {} loss {:.4e} valid {} lr {:.2e} |g| {:.3e} {} {:.1} samples/s ETA {}",
                    task.setup().name,
                    p.applied,
                    total,
                    p.epoch,
                    global_loss,
                    p.last_valid.map_or("-".into(), |v| format!("{v:.4e}")),
                    lr,
                    norm,
                    task.progress(p.applied),
                    rate,
                    eta(per_update * (total - p.applied) as f64)
                );
                (last_log, log_samples) = (Instant::now(), 0);
            }
            let due = root && last_ck.elapsed().as_secs_f64() >= s.checkpoint_interval;
            let flags = world.sum(&[s.stop.requested() as u64, due as u64]);
            let (stop, due) = (flags[0] > 0, flags[1] > 0);
            if stop || due {
                history.flush();
                valid_csv.flush();
                if root {
                    save(task, &st, s, "latest.safetensors")?;
                }
                world.barrier();
                last_ck = Instant::now();
            }
            if stop {
                return Ok(Outcome::Interrupted { step: st.progress.applied });
            }
            if st.progress.applied >= total {
                break;
            }
        }
        if st.progress.batch < per_epoch {
            break; // max_updates reached within the epoch
        }
        end_of_validation(task, s, &mut st, &mut valid_csv, &clock)?;
        validated_at = Some(st.progress.applied);
        st.progress.epoch += 1;
        st.progress.batch = 0;
        history.flush();
        if root {
            save(task, &st, s, "latest.safetensors")?;
        }
    }
    if validated_at != Some(st.progress.applied) {
        end_of_validation(task, s, &mut st, &mut valid_csv, &clock)?;
    }
    st.progress.finished = true;
    history.flush();
    if root {
        save(task, &st, s, "latest.safetensors")?;
    }
    world.barrier();
    Ok(Outcome::Complete { result: Trained { updates: st.progress.applied, best: st.progress.best }, already: false })
}

/// The columns of `history.csv`: `wall_seconds` is training time since the run began (summed
/// over resumed sessions), `samples_per_second` the update's global batch over its wall time.
const HISTORY_HEADER: &str = "update,epoch,batch,lr,loss,grad_norm,applied,wall_seconds,samples_per_second";

/// The columns of `validation.csv`: update, epoch, valid_loss, the task's diagnostics, then
/// `wall_seconds` (the clock of `history.csv`) and the validation pass's `samples_per_second`.
fn validation_header(task: &dyn Task) -> String {
    let mut h = "update,epoch,valid_loss".to_string();
    for name in task.diagnostic_names() {
        h += &format!(",{name}");
    }
    h + ",wall_seconds,samples_per_second"
}

/// Training wall time: what earlier sessions of a resumed run spent plus this session's.
struct WallClock {
    before: f64,
    start: Instant,
}

impl WallClock {
    fn now(&self) -> f64 {
        self.before + self.start.elapsed().as_secs_f64()
    }
}

/// Validation, its CSV row and log line, and the `best` checkpoint when it improved.
fn end_of_validation(task: &dyn Task, s: &Session, st: &mut State, csv: &mut Csv, clock: &WallClock) -> Result<()> {
    let began = Instant::now();
    let (values, samples) = validate(task, s, st.progress.applied)?;
    let (v, diagnostics) = (values[0], &values[1..]);
    let p = &mut st.progress;
    p.last_valid = Some(v).filter(|v| v.is_finite());
    p.wall_seconds = clock.now();
    let mut row = vec![p.applied.to_string(), p.epoch.to_string(), format!("{v:e}")];
    row.extend(diagnostics.iter().map(|d| format!("{d:e}")));
    row.push(format!("{:.3}", p.wall_seconds));
    row.push(format!("{:.2}", samples as f64 / began.elapsed().as_secs_f64()));
    csv.row(&row);
    csv.flush();
    let extra: String =
        task.diagnostic_names().iter().zip(diagnostics).map(|(name, d)| format!(", {name} {d:.3}")).collect();
    let improved = v.is_finite() && task.best_counts(p.applied) && p.best.is_none_or(|b| v < b);
    if improved {
        p.best = Some(v);
    }
    if s.world.is_root() {
        log::info!(
            "{} epoch {} update {}: validation loss {v:.5e}{}{extra}",
            task.setup().name,
            p.epoch,
            p.applied,
            if improved { " (best)" } else { "" }
        );
        if improved {
            save(task, st, s, "best.safetensors")?;
        }
    }
    Ok(())
}
