//! The trained models a rollout uses: where their files are, loading them checked against the
//! config, and `thermalizer export`, which writes them as weights-only files to ship or share.
//!
//! By default a rollout reads the training checkpoints `<run.dir>/emulator/` and
//! `<run.dir>/thermalizer/` (`best.safetensors` or `latest.safetensors`, per `rollout.weights`).
//! With `rollout.models: DIR` it reads `DIR/emulator.safetensors` and
//! `DIR/thermalizer.safetensors` instead, and with `rollout.thermalizer_file: FILE` the
//! thermalizer from FILE (the emulator from its training checkpoint): files written by
//! [`export`], in the checkpoint format ([`crate::train::weights_file`]) with the same tensor names, but holding only what a rollout
//! needs: the emulator's weights, the thermalizer's EMA weights (`ema/<name>`, or its raw
//! weights when `rollout.ema` is false) and `normalisation/scale`; float32, or with `--half`
//! the weights in float16 (the scale stays float32). Their metadata is the checkpoint's plus `exported_from` (the checkpoint's path)
//! and `ema`: `true` (the thermalizer's EMA weights), `false` (raw weights of a model that has
//! EMA weights) or `none` (a model trained without EMA, such as the emulator).
//!
//! Either way a model trained on another system is refused before any compute: the `system`
//! section and `generate.steps_per_sample` (the emulator's time step) of the config stored in
//! the model file must equal this config's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::nn::VarStore;
use tch::Device;

use crate::config::rollout::{Mode, RolloutConfig, Weights};
use crate::config::Config;
use crate::error::{Context, Error, Result};
use crate::nn::classifier::Thermalizer;
use crate::nn::precision::Reduced;
use crate::nn::unet::Unet;
use crate::train::weights_file::{Checkpoint, StoredAs};

/// The two trained models, by the directory name of their checkpoints.
const NAMES: [&str; 2] = ["emulator", "thermalizer"];

/// The trained models, in `rollout.inference_precision`, and the normalisation they were
/// trained with.
pub struct Models {
    pub emulator: Reduced<Unet>,
    pub thermalizer: Option<Reduced<Thermalizer>>,
    /// Per-channel scale: physical units per normalised unit.
    pub scale: Vec<f64>,
    _stores: Vec<VarStore>,
}

/// The training checkpoint of `model` chosen by `weights` (`best` when it exists, else `latest`).
fn checkpoint_path(c: &Config, model: &str, weights: Weights) -> PathBuf {
    let dir = c.run.dir.join(model);
    match weights {
        Weights::Best if dir.join("best.safetensors").exists() => dir.join("best.safetensors"),
        _ => dir.join("latest.safetensors"),
    }
}

/// A shipped file that replaces `model`'s training checkpoint: the config key that names it
/// (`rollout.thermalizer_file` or `rollout.models`), that key's value, and the file.
pub struct Shipped<'a> {
    pub key: &'static str,
    pub value: &'a Path,
    pub file: PathBuf,
}

/// Where a rollout reads `model` from when it is shipped rather than trained here: the
/// thermalizer from `rollout.thermalizer_file` when set, either model from
/// `rollout.models/<model>.safetensors` when set; `None`: the training checkpoint.
pub fn shipped<'a>(r: &'a RolloutConfig, model: &str) -> Option<Shipped<'a>> {
    match (&r.thermalizer_file, &r.models) {
        (Some(file), _) if model == "thermalizer" => {
            Some(Shipped { key: "rollout.thermalizer_file", value: file, file: file.clone() })
        }
        (_, Some(dir)) => {
            Some(Shipped { key: "rollout.models", value: dir, file: dir.join(format!("{model}.safetensors")) })
        }
        _ => None,
    }
}

/// The file a rollout reads `model` from: the shipped file ([`shipped`]), else the training
/// checkpoint.
fn model_path(c: &Config, r: &RolloutConfig, model: &str) -> PathBuf {
    shipped(r, model).map_or_else(|| checkpoint_path(c, model, r.weights), |s| s.file)
}

/// Reads the model file at `path`, checks that it holds `model` trained on this config's system,
/// and (for an exported thermalizer) that it holds the weights `rollout.ema` (`ema`) asks for.
fn open(c: &Config, model: &str, path: &Path, ema: bool) -> Result<Checkpoint> {
    let ck = Checkpoint::load(path)?;
    let holds = ck.meta("model", path)?;
    if holds != model {
        return Err(Error::Input(format!("model file {}: holds the {holds}, not the {model}", path.display())));
    }
    trained_on_this_system(c, &ck, path)?;
    let exported_ema = ck.meta.get("ema").filter(|_| ck.meta.contains_key("exported_from"));
    if let Some(stored) = exported_ema.filter(|s| model == "thermalizer" && **s == (!ema).to_string()) {
        return Err(Error::Input(format!(
            "model file {}: exported with rollout.ema = {stored}, but this config has rollout.ema = {ema}",
            path.display()
        )));
    }
    Ok(ck)
}

/// Refuses a model whose stored config has another `system` section or emulator time step.
fn trained_on_this_system(c: &Config, ck: &Checkpoint, path: &Path) -> Result<()> {
    let stored: Config = serde_saphyr::from_str(ck.meta("config", path)?)
        .map_err(|e| Error::Input(format!("model file {}: its stored config is unreadable ({e})", path.display())))?;
    let yaml = |c: &Config| serde_saphyr::to_string(&c.system).expect("config serialises");
    let (theirs, ours) = (yaml(&stored), yaml(c));
    if let Some((a, b)) = theirs.lines().zip(ours.lines()).find(|(a, b)| a != b) {
        return Err(Error::Input(format!(
            "model file {} was trained on another system: its config has system.{}, this config system.{}",
            path.display(),
            a.trim(),
            b.trim()
        )));
    }
    let (a, b) = (stored.generate.steps_per_sample, c.generate.steps_per_sample);
    if a != b {
        return Err(Error::Input(format!(
            "model file {} was trained with another time step: generate.steps_per_sample = {a} in its config, {b} in this one",
            path.display()
        )));
    }
    Ok(())
}

/// Copies the file's tensors (`prefix` + name, else name) into the variables of `vs`.
fn load_into(vs: &VarStore, ck: &Checkpoint, path: &Path, prefix: &str) -> Result<()> {
    let _g = tch::no_grad_guard();
    for (name, var) in vs.variables() {
        let mut var = var;
        let key = format!("{prefix}{name}");
        let t = ck.tensor(&key, &var.size(), path).or_else(|_| ck.tensor(&name, &var.size(), path))?;
        var.copy_(&t.to_device(var.device()));
    }
    Ok(())
}

fn scale_of(ck: &Checkpoint, path: &Path, channels: usize) -> Result<Vec<f64>> {
    let t = ck.tensor("normalisation/scale", &[channels as i64], path)?;
    let scale = Vec::<f32>::try_from(t.shallow_clone()).map_err(|e| Error::Input(e.to_string()))?;
    Ok(scale.into_iter().map(f64::from).collect())
}

/// Where to train the missing `model`, or which shipped file (`rollout.models`,
/// `rollout.thermalizer_file`) does not exist.
fn missing(r: &RolloutConfig, model: &str, path: &Path) -> Error {
    Error::Input(match shipped(r, model) {
        Some(s) => format!("{}: no {model} at {} (written by `thermalizer export`)", s.key, path.display()),
        None => format!("no trained {model} at {} (run `thermalizer train {model}` first)", path.display()),
    })
}

/// A trained thermalizer and where it came from.
pub struct LoadedThermalizer {
    /// The network, with the EMA weights when `rollout.ema` (and the model has them).
    pub net: Thermalizer,
    /// Per-channel scale it was trained with: physical units per normalised unit.
    pub scale: Vec<f64>,
    /// The file it was read from.
    pub path: PathBuf,
    store: VarStore,
}

impl LoadedThermalizer {
    /// The device its weights are on.
    pub fn device(&self) -> Device {
        self.store.device()
    }
}

/// The trained thermalizer of rollout `r` on `device`; `None` when its file does not exist.
pub fn load_thermalizer(c: &Config, r: &RolloutConfig, device: Device) -> Result<Option<LoadedThermalizer>> {
    let path = model_path(c, r, "thermalizer");
    if !path.exists() {
        return Ok(None);
    }
    let ck = open(c, "thermalizer", &path, r.ema)?;
    let t = c.thermalizer();
    let vs = VarStore::new(device);
    let net = Thermalizer::new(&vs.root(), &t.model.shape(c.layers() as i64), c.output_grid() as i64, t.levels as i64);
    load_into(&vs, &ck, &path, if r.ema { "ema/" } else { "" })?;
    let scale = scale_of(&ck, &path, c.layers())?;
    Ok(Some(LoadedThermalizer { net, scale, path, store: vs }))
}

/// The thermalizer of rollout `r`, or why it cannot be loaded (for `thermalizer calibrate`).
pub fn require_thermalizer(c: &Config, r: &RolloutConfig, device: Device) -> Result<LoadedThermalizer> {
    load_thermalizer(c, r, device)?.ok_or_else(|| missing(r, "thermalizer", &model_path(c, r, "thermalizer")))
}

/// Loads the models of rollout `r` onto `device`, their weights cast to
/// `rollout.inference_precision`; the thermalizer only when its file exists (an error when
/// `rollout.modes` has `thermalized`). Every error is an input error.
pub fn load(c: &Config, r: &RolloutConfig, device: Device) -> Result<Models> {
    let channels = c.layers();
    let path = model_path(c, r, "emulator");
    if !path.exists() {
        return Err(missing(r, "emulator", &path));
    }
    let ck = open(c, "emulator", &path, r.ema)?;
    let mut evs = VarStore::new(device);
    let emulator = Unet::new(&evs.root(), &c.emulator().model.shape(channels as i64));
    load_into(&evs, &ck, &path, "")?;
    let kind = r.inference_precision.kind();
    let emulator = Reduced::new(emulator, &mut evs, kind);
    let scale = scale_of(&ck, &path, channels)?;
    let mut stores = vec![evs];
    let thermalizer = match load_thermalizer(c, r, device)? {
        Some(t) => {
            // 1e-3: above the round-off of a scale stored in float16 (≤ 4.9e-4 relative, as in
            // data/kolmogorov-small; newer exports keep it in float32), below any other dataset's.
            if t.scale.iter().zip(&scale).any(|(a, b)| (a - b).abs() > 1e-3 * b.abs()) {
                return Err(Error::Input(format!(
                    "{} and {} were trained with different normalisations ({:?} vs {scale:?}): not the same data",
                    path.display(),
                    t.path.display(),
                    t.scale
                )));
            }
            let mut store = t.store;
            let net = Reduced::new(t.net, &mut store, kind);
            stores.push(store);
            Some(net)
        }
        None if r.modes.iter().any(|m| m.thermalizes()) => {
            let tpath = model_path(c, r, "thermalizer");
            return Err(Error::Input(format!(
                "{} (needed by rollout.modes: thermalized)",
                missing(r, "thermalizer", &tpath)
            )));
        }
        None => None,
    };
    Ok(Models { emulator, thermalizer, scale, _stores: stores })
}

/// The shipped models a rollout reads instead of training checkpoints (the directory
/// `rollout.models`, or the file `rollout.thermalizer_file`), after loading them into this
/// config's models on the CPU (what `thermalizer validate` checks before a job is queued);
/// `None` when neither is set.
pub fn check_shipped(c: &Config) -> Result<Option<&Path>> {
    let Some(r) = c.rollout.as_ref() else { return Ok(None) };
    match (&r.models, &r.thermalizer_file) {
        (Some(dir), _) => load(c, r, Device::Cpu).map(|_| Some(dir.as_path())),
        (None, Some(file)) => require_thermalizer(c, r, Device::Cpu).map(|_| Some(file.as_path())),
        (None, None) => Ok(None),
    }
}

/// `thermalizer export`: writes the training checkpoints the rollout would use
/// (`rollout.weights`, `rollout.ema`) as `out/emulator.safetensors` and
/// `out/thermalizer.safetensors` (when trained), or with `thermalizer_only` the thermalizer
/// alone (to ship as `rollout.thermalizer_file`), weights only, stored as `how`. Each is checked
/// to load into this config's models first. Returns the files written.
pub fn export(c: &Config, out: &Path, how: StoredAs, thermalizer_only: bool) -> Result<Vec<PathBuf>> {
    let r = c.rollout.clone().ok_or_else(|| {
        Error::Input("the config has no rollout section (its weights and ema keys choose what is exported)".into())
    })?;
    let source = RolloutConfig { models: None, thermalizer_file: None, ..r };
    let mut selected = Vec::new();
    for model in NAMES.into_iter().filter(|&m| !thermalizer_only || m == "thermalizer") {
        let path = checkpoint_path(c, model, source.weights);
        if !path.exists() {
            if model == "emulator" || thermalizer_only {
                return Err(missing(&source, model, &path));
            }
            let stale = out.join(format!("{model}.safetensors"));
            if stale.exists() {
                return Err(Error::Input(format!(
                    "no trained thermalizer at {}, but {} exists from an earlier export: a rollout would pair it \
                     with this emulator; remove it or export to another --out",
                    path.display(),
                    stale.display()
                )));
            }
            log::warn!("no trained thermalizer at {}: exporting the emulator only", path.display());
            continue;
        }
        let ck = open(c, model, &path, source.ema)?;
        let has_ema = model == "thermalizer" && ck.tensors.keys().any(|k| k.starts_with("ema/"));
        let ema = has_ema && source.ema;
        let keep = |name: &str| {
            name == "normalisation/scale" || if ema { name.starts_with("ema/") } else { !name.contains('/') }
        };
        let tensors: HashMap<_, _> =
            ck.tensors.iter().filter(|(k, _)| keep(k)).map(|(k, t)| (k.clone(), t.shallow_clone())).collect();
        let mut meta = ck.meta.clone();
        meta.insert("exported_from".into(), path.display().to_string());
        meta.insert("ema".into(), if has_ema { ema.to_string() } else { "none".into() });
        selected.push((model, Checkpoint { tensors, meta }));
    }
    std::fs::create_dir_all(out).context(|| format!("cannot create {}", out.display()))?;
    let mut written = Vec::new();
    for (model, ck) in selected {
        let path = out.join(format!("{model}.safetensors"));
        ck.save_as(&path, how)?;
        written.push(path);
    }
    let loads = if thermalizer_only {
        let check = RolloutConfig { thermalizer_file: Some(out.join("thermalizer.safetensors")), ..source };
        require_thermalizer(c, &check, Device::Cpu).map(|_| ())
    } else {
        let modes = if written.len() == NAMES.len() { source.modes.clone() } else { vec![Mode::Emulator] };
        load(c, &RolloutConfig { models: Some(out.to_path_buf()), modes, ..source }, Device::Cpu).map(|_| ())
    };
    loads.context(|| "the exported files do not load")?;
    Ok(written)
}
