//! What training adds to the stored trajectories ([`crate::store::trajectories`]): the windows
//! of each split, their normalisation, their order and their batches.
//!
//! A *sample* is a window of consecutive stored states of one member, `[len, C, y, x]` (C = 1
//! for Kolmogorov flow's vorticity, 2 for QG's layers), divided by the per-channel scale.
//!
//! Each epoch's order is a permutation drawn from (run seed, epoch) alone, so the global
//! sequence of batches is the same for any number of ranks; rank r of P trains on the r-th
//! contiguous block of each global batch and reads only those windows from the file.

use rand::seq::SliceRandom;
use tch::{Device, Kind, Tensor};

use super::task::{Draw, Split};
use crate::error::{Error, Result};
use crate::parallel::World;
use crate::rng::{member_stream, Purpose};
use crate::store::trajectories::{Trajectories, Window, TRAIN, VALID};

/// The windows of the train and valid splits, read on demand and normalised.
pub struct Samples {
    pub data: Trajectories,
    pub train: Vec<Window>,
    pub valid: Vec<Window>,
    /// States per window.
    pub len: usize,
    /// Per-channel scale (physical units per normalised unit).
    pub scale: Vec<f64>,
    pub device: Device,
}

impl Samples {
    /// Windows of `len` states starting at or after stored state `first`.
    pub fn new(data: Trajectories, len: usize, first: usize, scale: Vec<f64>, device: Device) -> Samples {
        let train = data.windows(TRAIN, len, first);
        let valid = data.windows(VALID, len, first);
        Samples { data, train, valid, len, scale, device }
    }

    pub fn list(&self, split: Split) -> &[Window] {
        match split {
            Split::Train => &self.train,
            Split::Valid => &self.valid,
        }
    }

    /// The windows of `draws` as one normalised tensor `[b, len, C, N, N]` on the device.
    pub fn batch(&self, split: Split, draws: &[Draw]) -> Result<Tensor> {
        let (c, n) = (self.data.channels as i64, self.data.grid as i64);
        let mut host: Vec<f32> = Vec::with_capacity(draws.len() * self.len * (c * n * n) as usize);
        for d in draws {
            host.extend(self.data.read(self.list(split)[d.sample], self.len)?.iter());
        }
        let scale: Vec<f32> = self.scale.iter().map(|s| (1.0 / s) as f32).collect();
        let scale = Tensor::from_slice(&scale).view([1, 1, c, 1, 1]);
        let x = Tensor::from_slice(&host).view([draws.len() as i64, self.len as i64, c, n, n]) * scale;
        Ok(x.to_kind(Kind::Float).to_device(self.device))
    }
}

/// Per-channel standard deviation over every stored state of the training members of `data`
/// (the normalisation scale, physical units per normalised unit; the mean is not subtracted
/// from the fields). The members are read in shares by the ranks and the sums reduced in f64.
/// The validation members are read too, to refuse (as bad input, before training) any member
/// with NaN or ±inf that the file does not mark diverged: one such value would turn the scale
/// or the losses into NaN.
pub fn channel_std(data: &Trajectories, world: &World) -> Result<Vec<f64>> {
    let members = data.members(TRAIN);
    let (c, samples, grid) = (data.channels, data.samples, data.grid);
    // Per channel its sum, then per channel its sum of squares, then the count per channel.
    let mut sums = vec![0.0f64; 2 * c + 1];
    let checked: Vec<usize> = {
        let mut all = data.members(VALID);
        all.extend(&members);
        all.sort_unstable();
        all
    };
    // The first non-finite value, as `member · samples + time`, over this rank's share.
    let mut first_bad = None;
    for &m in &checked[world.members(checked.len())] {
        let states = data.read(Window { member: m, start: 0 }, samples)?;
        if let Some(t) = states.outer_iter().position(|s| s.iter().any(|v| !v.is_finite())) {
            first_bad = Some(m * samples + t);
            break;
        }
        if data.split_of(m) != TRAIN {
            continue;
        }
        for state in states.outer_iter() {
            for (ch, field) in state.outer_iter().enumerate() {
                sums[ch] += field.iter().map(|&v| v as f64).sum::<f64>();
                sums[c + ch] += field.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
            }
        }
        sums[2 * c] += (samples * grid * grid) as f64;
    }
    // The smallest over ranks (as the largest negated: every rank learns rank 0's verdict).
    let bad = -world.max_f64(&[first_bad.map_or(f64::NEG_INFINITY, |i| -(i as f64))])[0];
    if bad.is_finite() {
        let (m, t) = (bad as usize / samples, bad as usize % samples);
        return Err(Error::Input(format!(
            "{}: member {m} has non-finite values at time index {t} but is not marked diverged \
             (diverged_at = {})",
            data.path().display(),
            data.diverged_at(m)
        )));
    }
    world.sum_f64(&mut sums);
    let n = sums[2 * c];
    let std: Vec<f64> = (0..c).map(|ch| (sums[c + ch] / n - (sums[ch] / n).powi(2)).max(0.0).sqrt()).collect();
    if !(n > 0.0) || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(Error::Input(format!(
            "trajectories file {}: the training split has no usable data (members {:?}, std {std:?})",
            data.path().display(),
            members.len()
        )));
    }
    Ok(std)
}

/// The order of `n` training samples in `epoch`: a permutation from (seed, epoch) only.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut member_stream(seed, Purpose::Shuffle, epoch));
    order
}

/// `count` indices spread evenly over `0..n` (all of them if `count >= n`): the fixed
/// validation subset.
pub fn evenly_spaced(n: usize, count: usize) -> Vec<usize> {
    if count >= n {
        return (0..n).collect();
    }
    (0..count).map(|i| i * n / count).collect()
}
