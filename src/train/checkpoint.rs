//! Training checkpoints as safetensors files, readable from Python with `safetensors`.
//!
//! Tensors (all float32, CPU):
//! - the model's parameters under the authors' PyTorch names (`image_proj.weight`, ...), so
//!   `model.load_state_dict(safetensors.torch.load_file(path))` works on their module;
//! - `ema/<name>` for the EMA weights (when EMA is on);
//! - `optimizer/exp_avg`, `optimizer/exp_avg_sq`: AdamW's moments, flat, in the sorted order
//!   of the parameter names;
//! - `normalisation/scale`: per-channel scale (physical units per normalised unit).
//!
//! `__metadata__` (strings): `format` ("thermalizer-checkpoint-1"), `model` (emulator or
//! thermalizer), `config` (the resolved YAML), `version`, `git_revision`, `update` (applied
//! optimizer updates), `epoch` and `batch` (next batch of that epoch: the random state, since
//! every random draw derives from (seed, epoch, position)), `skipped`, `best_valid_loss`,
//! `last_valid_loss`, `finished`.
//!
//! Written to `<name>.tmp` in the same directory, then renamed: a reader sees the old or the
//! new file, never a partial one.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tch::{Device, Kind, Tensor};

/// Identifies our checkpoints.
pub const FORMAT: &str = "thermalizer-checkpoint-1";

/// A checkpoint in memory: named tensors and string metadata.
pub struct Checkpoint {
    pub tensors: HashMap<String, Tensor>,
    pub meta: HashMap<String, String>,
}

fn f32_bytes(t: &Tensor) -> (Vec<usize>, Vec<u8>) {
    let t = t.detach().to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let mut v = vec![0f32; t.numel()];
    t.copy_data(&mut v, t.numel());
    let shape = t.size().iter().map(|&d| d as usize).collect();
    (shape, v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

impl Checkpoint {
    /// Writes atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let owned: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(k, t)| {
                let (shape, bytes) = f32_bytes(t);
                (k.clone(), shape, bytes)
            })
            .collect();
        let views: Vec<(String, TensorView)> = owned
            .iter()
            .map(|(k, shape, bytes)| {
                (k.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes).expect("consistent view"))
            })
            .collect();
        let tmp = path.with_extension("safetensors.tmp");
        safetensors::tensor::serialize_to_file(views, &Some(self.meta.clone()), &tmp)
            .map_err(|e| format!("cannot write checkpoint {}: {e:?}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), path.display()))
    }

    /// Reads a checkpoint written by [`Checkpoint::save`]; errors say what is wrong with the file.
    pub fn load(path: &Path) -> Result<Checkpoint, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("checkpoint {}: cannot read ({e})", path.display()))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| format!("checkpoint {}: not a safetensors file ({e:?})", path.display()))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| format!("checkpoint {}: unreadable header ({e:?})", path.display()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(format!(
                "checkpoint {}: not a thermalizer checkpoint (metadata 'format' is {:?}, expected {FORMAT:?})",
                path.display(),
                meta.get("format")
            ));
        }
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(format!(
                    "checkpoint {}: tensor '{name}' is {:?}, expected F32",
                    path.display(),
                    view.dtype()
                ));
            }
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let t = Tensor::f_from_data_size(view.data(), &shape, Kind::Float)
                .map_err(|e| format!("checkpoint {}: tensor '{name}': {e}", path.display()))?;
            tensors.insert(name, t);
        }
        Ok(Checkpoint { tensors, meta })
    }

    /// Metadata value `key`, or an error naming the file and key.
    pub fn meta(&self, key: &str, path: &Path) -> Result<&str, String> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("checkpoint {}: metadata '{key}' missing", path.display()))
    }

    /// Tensor `name` with the expected `shape`, or an error naming file, tensor and shapes.
    pub fn tensor(&self, name: &str, shape: &[i64], path: &Path) -> Result<&Tensor, String> {
        let t = self.tensors.get(name).ok_or_else(|| {
            format!("checkpoint {}: tensor '{name}' missing (a checkpoint of another model?)", path.display())
        })?;
        if t.size() != shape {
            return Err(format!(
                "checkpoint {}: tensor '{name}' has shape {:?}, the configured model needs {shape:?}",
                path.display(),
                t.size()
            ));
        }
        Ok(t)
    }
}
