//! Random streams with a global identity: a stream is fixed by (run seed, purpose, index), never
//! by rank or thread, so results do not depend on how a run is spread over MPI ranks.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a random stream is used for (its own ChaCha stream id space).
#[derive(Clone, Copy, Debug)]
#[repr(u64)]
pub enum Purpose {
    /// Initial conditions of ensemble members in `generate`.
    InitialCondition = 1,
    /// Per-epoch order of the training samples (index: epoch).
    Shuffle = 2,
    /// Noise and diffusion levels of one training sample (index: epoch·2³² + position).
    TrainingNoise = 3,
    /// Noise and diffusion levels of one validation sample (index: its position).
    ValidationNoise = 4,
    /// Noise of one rollout member at one step (index: mode·2⁵⁶ + member·2²⁸ + step).
    Rollout = 5,
    /// Noise of one calibration state at one level (index: level·2³² + position).
    Calibration = 6,
}

/// The stream of member `index` for `purpose` under `seed`.
pub fn member_stream(seed: u64, purpose: Purpose, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((purpose as u64) << 48) ^ index);
    rng
}
