//! What the training loop needs from a model: its variables, its samples and its loss.

use rand::Rng;
use rand_distr::StandardNormal;
use tch::nn::VarStore;
use tch::Tensor;

use super::data::Samples;
use crate::config::train::{LoopConfig, OptimizerConfig};
use crate::error::Result;
use crate::rng::{member_stream, Purpose};

/// Which list of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Split {
    Train,
    Valid,
}

/// One sample of a batch: its index in the split's list and the index of its random stream
/// (epoch·2³² + position for training, the position for validation).
#[derive(Clone, Copy, Debug)]
pub struct Draw {
    pub sample: usize,
    pub stream: u64,
}

impl Draw {
    /// The sample's random stream (noise, diffusion level).
    pub fn rng(&self, seed: u64, split: Split) -> rand_chacha::ChaCha8Rng {
        let purpose = if split == Split::Train { Purpose::TrainingNoise } else { Purpose::ValidationNoise };
        member_stream(seed, purpose, self.stream)
    }
}

/// `count` standard normal values from `rng`.
pub fn normals(rng: &mut impl Rng, count: usize) -> Vec<f32> {
    (0..count).map(|_| rng.sample::<f32, _>(StandardNormal)).collect()
}

/// What every trained model holds, whatever its loss.
pub struct Setup {
    /// `emulator` or `thermalizer` (also the checkpoint directory and metadata `model`).
    pub name: &'static str,
    pub training: LoopConfig,
    pub optimizer: OptimizerConfig,
    pub vs: VarStore,
    pub samples: Samples,
    /// Run seed (of the random streams).
    pub seed: u64,
}

impl Setup {
    /// Number of samples in a split.
    pub fn len(&self, split: Split) -> usize {
        self.samples.list(split).len()
    }
}

/// A model being trained.
pub trait Task {
    fn setup(&self) -> &Setup;
    /// Σ over `draws` of each sample's loss, divided by `denom` (the global batch size); with
    /// the autograd graph when `split` is `Train`. `applied` is the number of updates so far.
    fn loss(&self, split: Split, draws: &[Draw], denom: f64, applied: u64) -> Result<Tensor>;
    /// Whether a validation loss now may make a `best` checkpoint (the emulator: only once the
    /// curriculum has reached its longest unroll, as the authors').
    fn best_counts(&self, applied: u64) -> bool;
    /// Extra words for the progress line.
    fn progress(&self, _applied: u64) -> String {
        String::new()
    }
    /// Names of the validation diagnostics beyond the loss (columns of `validation.csv`).
    fn diagnostic_names(&self) -> &'static [&'static str] {
        &[]
    }
    /// Σ over the validation `draws` of each diagnostic (the trainer sums over ranks and
    /// divides by the number of validation samples).
    fn diagnostics(&self, _draws: &[Draw]) -> Result<Vec<f64>> {
        Ok(Vec::new())
    }
}
