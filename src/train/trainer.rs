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

use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::{Device, Tensor};

use super::data::{epoch_order, evenly_spaced};
use super::logs::{validation_header, Csv, WallClock, HISTORY_HEADER};
use super::optim::{clip_grad_norm, Parameters};
use super::reduce::Reducer;
use super::state::State;
use super::task::{Draw, Split, Task};
use super::weights_file::Checkpoint;
use crate::config::train::LoopConfig;
use crate::config::{same_identity, Stage};
use crate::error::{Context, Error, Result};
use crate::parallel::signals::StopFlag;
use crate::parallel::{split_range, World};
use crate::store::resume::{self, Decision, Outcome};

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

/// Trains `task` to the end (or until stopped), resuming from `latest` if present: decide → set
/// up the state → restore it or take rank 0's → epochs {updates {batch, reduce, apply, log,
/// checkpoint, stop?}, validate, checkpoint} → finish.
pub fn train(task: &dyn Task, s: &Session) -> Result<Outcome<Trained>> {
    // One writer per model and run directory, held (on rank 0) until training returns.
    let run_dir = s.dir.parent().unwrap_or(&s.dir);
    let stage = format!("train {}", task.setup().name);
    let (decision, _lock) = resume::decide_locked(s.world, run_dir, &stage, || preflight(task, s))?;
    let per_epoch = updates_per_epoch(task, s.world)?;
    let mut st = State::new(task, s.device);
    if decision == Decision::Fresh {
        st.start_from_root(s.reducer);
    } else {
        st.restore(&latest(&s.dir), s.device)?;
    }
    if decision == Decision::Done {
        return Ok(Outcome::Complete { result: st.trained(), already: true });
    }
    let mut run = Run::begin(task, s, st, per_epoch, decision)?;
    while run.st.progress.epoch < run.lc.epochs as u64 && run.st.progress.applied < run.total {
        let order = epoch_order(run.n_train, s.seed, run.st.progress.epoch);
        while run.st.progress.batch < per_epoch {
            let update = run.update(&order)?;
            run.record(&update);
            if run.checkpoint_or_stop()? {
                return Ok(Outcome::Interrupted { step: run.st.progress.applied });
            }
            if run.st.progress.applied >= run.total {
                break;
            }
        }
        if run.st.progress.batch < per_epoch {
            break; // max_updates reached within the epoch
        }
        run.end_epoch()?;
    }
    run.finish()
}

/// Optimizer updates per epoch (whole global batches); refuses a batch the training split or
/// the ranks cannot fill.
fn updates_per_epoch(task: &dyn Task, world: &World) -> Result<u64> {
    let (name, batch_size) = (task.setup().name, task.setup().training.batch_size);
    let n_train = task.setup().len(Split::Train);
    let per_epoch = (n_train / batch_size) as u64;
    if per_epoch == 0 {
        return Err(Error::Input(format!(
            "{name}.training.batch_size = {batch_size}: the training split has only {n_train} samples"
        )));
    }
    if batch_size < world.size() {
        return Err(Error::Input(format!(
            "{name}.training.batch_size = {batch_size}: smaller than the {} ranks of this job (each rank needs at least \
             one sample of every batch)",
            world.size()
        )));
    }
    Ok(per_epoch)
}

/// One update as the ranks reduced it.
struct Update {
    lr: f64,
    /// The global batch's mean loss.
    loss: f64,
    /// Gradient norm before clipping; NaN when skipped.
    norm: f64,
    /// Whether it was applied (loss and gradient finite on every rank).
    finite: bool,
    started: Instant,
}

/// One session of a training: the state, its logs and clocks, shared by the phases of [`train`].
struct Run<'a> {
    task: &'a dyn Task,
    s: &'a Session<'a>,
    lc: LoopConfig,
    n_train: usize,
    /// Updates at which training ends (`max_updates`, or every epoch's).
    total: u64,
    st: State,
    history: Csv,
    valid_csv: Csv,
    clock: WallClock,
    last_ck: Instant,
    last_log: Instant,
    /// Updates applied when this session began, and samples since the last progress line.
    start_applied: u64,
    log_samples: usize,
    /// The update of the last validation.
    validated_at: Option<u64>,
    root: bool,
}

impl<'a> Run<'a> {
    /// Opens the logs (cut back to the checkpoint on resume) and says what will be trained.
    fn begin(task: &'a dyn Task, s: &'a Session<'a>, st: State, per_epoch: u64, decision: Decision) -> Result<Self> {
        let lc = task.setup().training.clone();
        let n_train = task.setup().len(Split::Train);
        let total = lc.max_updates.unwrap_or(u64::MAX).min(per_epoch * lc.epochs as u64);
        let root = s.world.is_root();
        let keep = (decision == Decision::Resume).then_some(st.progress.applied);
        let history = Csv::open(&s.dir.join("history.csv"), HISTORY_HEADER, keep, root)?;
        let valid_csv = Csv::open(&s.dir.join("validation.csv"), &validation_header(task), keep, root)?;
        if root {
            log::info!(
                "{}: {} parameters, {n_train} training / {} validation samples, batch {} over {} rank(s), {} updates \
                 per epoch{}",
                task.setup().name,
                st.params.numel(),
                task.setup().len(Split::Valid),
                lc.batch_size,
                s.world.size(),
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
        let start = Instant::now();
        let clock = WallClock { before: st.progress.wall_seconds, start };
        let start_applied = st.progress.applied;
        Ok(Run {
            task,
            s,
            lc,
            n_train,
            total,
            st,
            history,
            valid_csv,
            clock,
            last_ck: start,
            last_log: start,
            start_applied,
            log_samples: 0,
            validated_at: None,
            root,
        })
    }

    /// The next batch of `order`: this rank's block of it, its loss and gradient, summed over the
    /// ranks, then applied (clipped, AdamW, EMA) or, if anything is non-finite, skipped.
    fn update(&mut self, order: &[usize]) -> Result<Update> {
        let p = &self.st.progress;
        let base = (p.batch as usize) * self.lc.batch_size;
        let mine = split_range(self.lc.batch_size, self.s.world.size(), self.s.world.rank());
        let draws: Vec<Draw> =
            mine.map(|j| Draw { sample: order[base + j], stream: (p.epoch << 32) | (base + j) as u64 }).collect();
        let started = Instant::now();
        self.st.params.zero_grad();
        let loss = self.task.loss(Split::Train, &draws, self.lc.batch_size as f64, p.applied)?;
        loss.backward();
        let mut flat = Tensor::cat(&[self.st.params.flat_grad(), loss.detach().reshape([1])], 0);
        self.s.reducer.sum_in_place(&mut flat);
        let global_loss = flat.double_value(&[flat.numel() as i64 - 1]);
        let mut grad = flat.narrow(0, 0, flat.numel() as i64 - 1);
        let finite = bool::try_from(flat.isfinite().all()).unwrap_or(false);
        let lr = self.st.adam.lr(p.applied);
        let norm = if finite { clip_grad_norm(&mut grad, self.st.adam.cfg.grad_clip) } else { f64::NAN };
        if finite {
            self.apply(&grad);
        } else {
            self.skip()?;
        }
        Ok(Update { lr, loss: global_loss, norm, finite, started })
    }

    fn apply(&mut self, grad: &Tensor) {
        let st = &mut self.st;
        st.adam.step(&st.params, grad, st.progress.applied);
        if let Some(ema) = &mut st.ema {
            ema.update(&st.params);
        }
        st.progress.applied += 1;
        st.progress.skipped_in_a_row = 0;
    }

    /// Counts a skipped update; too many in a row end the training.
    fn skip(&mut self) -> Result<()> {
        let (name, p) = (self.task.setup().name, &mut self.st.progress);
        p.skipped_total += 1;
        p.skipped_in_a_row += 1;
        if self.root {
            log::warn!(
                "{name}: non-finite loss or gradient at epoch {} batch {}; update skipped ({} in a row)",
                p.epoch,
                p.batch,
                p.skipped_in_a_row
            );
        }
        if p.skipped_in_a_row > self.lc.max_skipped {
            return Err(Error::Failure(format!(
                "{name}: {} consecutive non-finite updates (limit {name}.training.max_skipped = {}); the last good \
                 checkpoint is {}; lower the learning rate or check the data",
                p.skipped_in_a_row,
                self.lc.max_skipped,
                latest(&self.s.dir).display()
            )));
        }
        Ok(())
    }

    /// The update's row of `history.csv`, the move to the next batch, and rank 0's progress line
    /// every `log_every` applied updates.
    fn record(&mut self, u: &Update) {
        let (lc, p) = (&self.lc, &mut self.st.progress);
        self.history.row(&[
            p.applied.to_string(),
            p.epoch.to_string(),
            p.batch.to_string(),
            format!("{:e}", u.lr),
            format!("{:e}", u.loss),
            format!("{:e}", u.norm),
            (u.finite as u8).to_string(),
            format!("{:.3}", self.clock.now()),
            format!("{:.2}", lc.batch_size as f64 / u.started.elapsed().as_secs_f64()),
        ]);
        p.wall_seconds = self.clock.now();
        p.batch += 1;
        self.log_samples += lc.batch_size;
        if self.root && u.finite && p.applied % lc.log_every == 0 {
            let rate = self.log_samples as f64 / self.last_log.elapsed().as_secs_f64();
            let per_update = self.clock.start.elapsed().as_secs_f64() / (p.applied - self.start_applied).max(1) as f64;
            log::info!(
                "{} update {}/{} epoch {} loss {:.4e} valid {} lr {:.2e} |g| {:.3e} {} {:.1} samples/s ETA {}",
                self.task.setup().name,
                p.applied,
                self.total,
                p.epoch,
                u.loss,
                p.last_valid.map_or("-".into(), |v| format!("{v:.4e}")),
                u.lr,
                u.norm,
                self.task.progress(p.applied),
                rate,
                eta(per_update * (self.total - p.applied) as f64)
            );
            (self.last_log, self.log_samples) = (Instant::now(), 0);
        }
    }

    /// The ranks agree whether a stop was requested (on any rank) and whether rank 0's
    /// checkpoint is due; either writes `latest`. Returns whether to stop.
    fn checkpoint_or_stop(&mut self) -> Result<bool> {
        let due = self.root && self.last_ck.elapsed().as_secs_f64() >= self.s.checkpoint_interval;
        let flags = self.s.world.sum(&[self.s.stop.requested() as u64, due as u64]);
        let (stop, due) = (flags[0] > 0, flags[1] > 0);
        if stop || due {
            self.history.flush();
            self.valid_csv.flush();
            if self.root {
                self.st.save(self.task, self.s, "latest.safetensors")?;
            }
            self.s.world.barrier();
            self.last_ck = Instant::now();
        }
        Ok(stop)
    }

    /// Validation and a checkpoint after the epoch's last batch.
    fn end_epoch(&mut self) -> Result<()> {
        self.end_of_validation()?;
        self.validated_at = Some(self.st.progress.applied);
        self.st.progress.epoch += 1;
        self.st.progress.batch = 0;
        self.history.flush();
        if self.root {
            self.st.save(self.task, self.s, "latest.safetensors")?;
        }
        Ok(())
    }

    /// The last validation (unless the last epoch's was at this update) and the finished
    /// checkpoint.
    fn finish(mut self) -> Result<Outcome<Trained>> {
        if self.validated_at != Some(self.st.progress.applied) {
            self.end_of_validation()?;
        }
        self.st.progress.finished = true;
        self.history.flush();
        if self.root {
            self.st.save(self.task, self.s, "latest.safetensors")?;
        }
        self.s.world.barrier();
        Ok(Outcome::Complete { result: self.st.trained(), already: false })
    }

    /// Mean validation loss, then the task's mean diagnostics, over the fixed validation subset
    /// (NaN without validation samples); and the size of that subset.
    fn validate(&self) -> Result<(Vec<f64>, usize)> {
        let (task, world, applied) = (self.task, self.s.world, self.st.progress.applied);
        let n = task.setup().len(Split::Valid);
        let picks = evenly_spaced(n, task.setup().training.valid_samples);
        let mine = split_range(picks.len(), world.size(), world.rank());
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
        world.sum_f64(&mut sums);
        Ok((
            sums.iter().map(|v| if picks.is_empty() { f64::NAN } else { v / picks.len() as f64 }).collect(),
            picks.len(),
        ))
    }

    /// Validation, its CSV row and log line, and the `best` checkpoint when it improved.
    fn end_of_validation(&mut self) -> Result<()> {
        let began = Instant::now();
        let (values, samples) = self.validate()?;
        let (v, diagnostics) = (values[0], &values[1..]);
        let (task, p) = (self.task, &mut self.st.progress);
        p.last_valid = Some(v).filter(|v| v.is_finite());
        p.wall_seconds = self.clock.now();
        let mut row = vec![p.applied.to_string(), p.epoch.to_string(), format!("{v:e}")];
        row.extend(diagnostics.iter().map(|d| format!("{d:e}")));
        row.push(format!("{:.3}", p.wall_seconds));
        row.push(format!("{:.2}", samples as f64 / began.elapsed().as_secs_f64()));
        self.valid_csv.row(&row);
        self.valid_csv.flush();
        let extra: String =
            task.diagnostic_names().iter().zip(diagnostics).map(|(name, d)| format!(", {name} {d:.3}")).collect();
        let improved = v.is_finite() && task.best_counts(p.applied) && p.best.is_none_or(|b| v < b);
        if improved {
            p.best = Some(v);
        }
        if self.root {
            log::info!(
                "{} epoch {} update {}: validation loss {v:.5e}{}{extra}",
                task.setup().name,
                p.epoch,
                p.applied,
                if improved { " (best)" } else { "" }
            );
            if improved {
                self.st.save(task, self.s, "best.safetensors")?;
            }
        }
        Ok(())
    }
}

/// `seconds` as `1h02m03s`.
fn eta(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}
