//! The file of a trained model: its weights, optimizer state and training progress as one
//! safetensors file (the training checkpoint, `latest`/`best.safetensors`, and the exported
//! models), readable from Python with `safetensors`.
//!
//! Tensors (float32, CPU; files written by `thermalizer export --half` hold float16, which
//! [`Checkpoint::load`] widens to float32):
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

use crate::error::{Context, Error, Result};

/// Identifies our checkpoints.
pub const FORMAT: &str = "thermalizer-checkpoint-1";

/// A checkpoint in memory: named tensors and string metadata.
pub struct Checkpoint {
    pub tensors: HashMap<String, Tensor>,
    pub meta: HashMap<String, String>,
}

/// How a file stores its tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredAs {
    /// IEEE float32 (training checkpoints).
    Float32,
    /// IEEE float16 for the weights: half the bytes; each value rounded to 11 significant bits,
    /// magnitudes below 6e-8 flushed to zero (`thermalizer export --half`). Tensors under
    /// `normalisation/` stay float32: they are in physical units, which can lie below float16's
    /// normal range (two-layer QG's PV scale is ~1e-6 s⁻¹, where float16 keeps 4 bits).
    Float16,
}

impl StoredAs {
    /// How tensor `name` is stored.
    fn for_tensor(self, name: &str) -> StoredAs {
        if name.starts_with("normalisation/") {
            StoredAs::Float32
        } else {
            self
        }
    }

    fn dtype(self) -> Dtype {
        match self {
            StoredAs::Float32 => Dtype::F32,
            StoredAs::Float16 => Dtype::F16,
        }
    }
}

/// The shape and little-endian bytes of `t` stored as `how`.
fn stored_bytes(t: &Tensor, how: StoredAs) -> (Vec<usize>, Vec<u8>) {
    let t = t.detach().to_device(Device::Cpu);
    let shape = t.size().iter().map(|&d| d as usize).collect();
    let bytes = match how {
        StoredAs::Float16 => {
            let bits = t.to_kind(Kind::Half).contiguous().view_dtype(Kind::Int16);
            let mut v = vec![0i16; bits.numel()];
            bits.copy_data(&mut v, bits.numel());
            v.iter().flat_map(|x| x.to_le_bytes()).collect()
        }
        StoredAs::Float32 => {
            let t = t.to_kind(Kind::Float).contiguous();
            let mut v = vec![0f32; t.numel()];
            t.copy_data(&mut v, t.numel());
            v.iter().flat_map(|x| x.to_le_bytes()).collect()
        }
    };
    (shape, bytes)
}

impl Checkpoint {
    /// Writes atomically (temporary file + rename), every tensor as float32.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_as(path, StoredAs::Float32)
    }

    /// Writes atomically, every tensor stored as `how`; errors are failures.
    pub fn save_as(&self, path: &Path, how: StoredAs) -> Result<()> {
        let owned: Vec<(String, StoredAs, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(k, t)| {
                let as_ = how.for_tensor(k);
                let (shape, bytes) = stored_bytes(t, as_);
                (k.clone(), as_, shape, bytes)
            })
            .collect();
        let views: Vec<(String, TensorView)> = owned
            .iter()
            .map(|(k, as_, shape, bytes)| {
                (k.clone(), TensorView::new(as_.dtype(), shape.clone(), bytes).expect("consistent view"))
            })
            .collect();
        let tmp = path.with_extension("safetensors.tmp");
        safetensors::tensor::serialize_to_file(views, &Some(self.meta.clone()), &tmp)
            .map_err(|e| Error::Failure(format!("cannot write checkpoint {}: {e:?}", tmp.display())))?;
        std::fs::rename(&tmp, path).context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    }

    /// Reads a checkpoint written by [`Checkpoint::save`]; errors are input errors saying what
    /// is wrong with the file.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bad = |why: String| Error::Input(format!("checkpoint {}: {why}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read ({e})")))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a safetensors file ({e:?})")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("unreadable header ({e:?})")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!(
                "not a thermalizer checkpoint (metadata 'format' is {:?}, expected {FORMAT:?})",
                meta.get("format")
            )));
        }
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let kind = match view.dtype() {
                Dtype::F32 => Kind::Float,
                Dtype::F16 => Kind::Half,
                other => return Err(bad(format!("tensor '{name}' is {other:?}, expected F32 or F16"))),
            };
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let t = Tensor::f_from_data_size(view.data(), &shape, kind)
                .map_err(|e| bad(format!("tensor '{name}': {e}")))?;
            tensors.insert(name, t.to_kind(Kind::Float));
        }
        Ok(Checkpoint { tensors, meta })
    }

    /// Metadata value `key`, or an input error naming the file and key.
    pub fn meta(&self, key: &str, path: &Path) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::Input(format!("checkpoint {}: metadata '{key}' missing", path.display())))
    }

    /// Tensor `name` with the expected `shape`, or an input error naming file, tensor and shapes.
    pub fn tensor(&self, name: &str, shape: &[i64], path: &Path) -> Result<&Tensor> {
        let t = self.tensors.get(name).ok_or_else(|| {
            Error::Input(format!(
                "checkpoint {}: tensor '{name}' missing (a checkpoint of another model?)",
                path.display()
            ))
        })?;
        if t.size() != shape {
            return Err(Error::Input(format!(
                "checkpoint {}: tensor '{name}' has shape {:?}, the configured model needs {shape:?}",
                path.display(),
                t.size()
            )));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_float16_file_keeps_the_normalisation_in_float32() {
        // QG's PV scale (~1e-6 s⁻¹) is subnormal in float16, which would keep 4 bits of it.
        let scale = Tensor::from_slice(&[7.01477e-6f32, 9.78991e-7]);
        let weight = Tensor::from_slice(&[0.1f32, -1.0 / 3.0]);
        let ck = Checkpoint {
            tensors: HashMap::from([("normalisation/scale".to_string(), scale.shallow_clone()), ("w".into(), weight)]),
            meta: HashMap::from([("format".to_string(), FORMAT.to_string())]),
        };
        let path = std::env::temp_dir().join(format!("checkpoint-half-{}.safetensors", std::process::id()));
        ck.save_as(&path, StoredAs::Float16).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let read = |n: &str| Vec::<f32>::try_from(back.tensors[n].shallow_clone()).unwrap();
        assert_eq!(read("normalisation/scale"), Vec::<f32>::try_from(scale).unwrap());
        let w = read("w");
        assert!(w[0] != 0.1 && (w[0] - 0.1).abs() < 1e-4, "weights are rounded to float16: {w:?}");
    }
}
