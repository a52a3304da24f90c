//! What a training holds between updates (parameters, AdamW's moments, the EMA, where it
//! stands) and its round trip through the weights file ([`super::weights_file`]).

use std::collections::HashMap;
use std::path::Path;

use tch::{Device, Tensor};

use super::optim::{AdamW, Ema, Parameters};
use super::reduce::Reducer;
use super::task::Task;
use super::trainer::{Session, Trained};
use super::weights_file::{Checkpoint, FORMAT};
use crate::error::{Error, Result};
use crate::store::trajectories::{GIT_REVISION, VERSION};

/// Where training stands (all of it is in the checkpoint).
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub applied: u64,
    pub epoch: u64,
    /// Next batch of `epoch`.
    pub batch: u64,
    pub skipped_total: u64,
    pub skipped_in_a_row: u64,
    pub best: Option<f64>,
    pub last_valid: Option<f64>,
    pub finished: bool,
    /// Wall seconds spent training, summed over every session of a resumed run.
    pub wall_seconds: f64,
}

/// A model's training state.
pub struct State {
    pub params: Parameters,
    pub adam: AdamW,
    pub ema: Option<Ema>,
    pub progress: Progress,
}

impl State {
    /// The model's parameters as initialised on this rank, fresh optimizer state, no progress.
    pub fn new(task: &dyn Task, device: Device) -> State {
        let params = Parameters::of(&task.setup().vs);
        let adam = AdamW::new(&task.setup().optimizer, params.numel(), device);
        let ema = task.setup().optimizer.ema_decay.map(|d| Ema::new(d, &params));
        State { params, adam, ema, progress: Progress::default() }
    }

    /// Starts every rank from rank 0's parameters (and its EMA from them).
    pub fn start_from_root(&mut self, reducer: &dyn Reducer) {
        let mut flat = self.params.flat();
        reducer.broadcast_in_place(&mut flat);
        self.params.set_flat(&flat);
        if let Some(ema) = &mut self.ema {
            ema.flat.copy_(&flat);
        }
    }

    /// What the training has reached.
    pub fn trained(&self) -> Trained {
        Trained { updates: self.progress.applied, best: self.progress.best }
    }

    /// Loads everything from the checkpoint at `path` onto `device`.
    pub fn restore(&mut self, path: &Path, device: Device) -> Result<()> {
        let ck = Checkpoint::load(path)?;
        let _g = tch::no_grad_guard();
        for (name, p) in &self.params.named {
            p.detach().copy_(&ck.tensor(name, &p.size(), path)?.to_device(device));
        }
        let n = self.params.numel();
        self.adam.exp_avg.copy_(&ck.tensor("optimizer/exp_avg", &[n], path)?.to_device(device));
        self.adam.exp_avg_sq.copy_(&ck.tensor("optimizer/exp_avg_sq", &[n], path)?.to_device(device));
        if let Some(ema) = &mut self.ema {
            let parts: Vec<Tensor> = self
                .params
                .named
                .iter()
                .map(|(name, p)| ck.tensor(&format!("ema/{name}"), &p.size(), path).map(|t| t.reshape([-1])))
                .collect::<Result<_>>()?;
            ema.flat.copy_(&Tensor::cat(&parts, 0).to_device(device));
        }
        self.progress = Progress {
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

    /// Writes everything to `<s.dir>/<name>` (rank 0's call).
    pub fn save(&self, task: &dyn Task, s: &Session, name: &str) -> Result<()> {
        let mut tensors: HashMap<String, Tensor> =
            self.params.named.iter().map(|(k, t)| (k.clone(), t.detach().shallow_clone())).collect();
        if let Some(ema) = &self.ema {
            for ((k, _), v) in self.params.named.iter().zip(self.params.split(&ema.flat)) {
                tensors.insert(format!("ema/{k}"), v);
            }
        }
        tensors.insert("optimizer/exp_avg".into(), self.adam.exp_avg.shallow_clone());
        tensors.insert("optimizer/exp_avg_sq".into(), self.adam.exp_avg_sq.shallow_clone());
        tensors.insert("normalisation/scale".into(), Tensor::from_slice(&task.setup().samples.scale[..]));
        let p = &self.progress;
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
