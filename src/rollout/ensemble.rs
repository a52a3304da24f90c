//! The members a rank rolls out, in every mode: what a checkpoint saves and a resume restores
//! (as [`MemberRow`]s of `rollout.checkpoint.h5`, [`crate::store::rollout`]).

use ndarray::Array2;
use tch::{Device, Tensor};

use super::stats::values;
use crate::store::rollout::{Counts, MemberRow, Tally};

pub struct Ensemble {
    /// Per mode, the normalised states `[member, C, N, N]` (float32, on the run's device).
    pub states: Vec<Tensor>,
    /// `[mode, member]`: the emulator step at which the member was stopped, −1 while it runs.
    pub diverged: Array2<i64>,
    /// `[mode, member]`: the totals of the summary. Saved with the checkpoint, so that they
    /// cover the whole run however often it resumed.
    pub counts: Array2<Counts>,
    /// Per mode, this rank's wall seconds stepping it (saved too; after a resume, the slowest
    /// saved rank's).
    pub seconds: Vec<f64>,
}

impl Ensemble {
    /// Every mode starting from the states `x0` `[member, C, N, N]`.
    pub fn new(x0: &Tensor, modes: usize) -> Ensemble {
        let members = x0.size()[0] as usize;
        Ensemble {
            states: (0..modes).map(|_| x0.copy()).collect(),
            diverged: Array2::from_elem((modes, members), -1),
            counts: Array2::default((modes, members)),
            seconds: vec![0.0; modes],
        }
    }

    /// The local members of mode `i` still running.
    pub fn alive(&self, i: usize) -> Vec<usize> {
        self.diverged.row(i).indexed_iter().filter(|(_, &d)| d < 0).map(|(m, _)| m).collect()
    }

    /// Per mode, how many local members were stopped.
    pub fn stopped(&self) -> Vec<u64> {
        self.diverged.rows().into_iter().map(|d| d.iter().filter(|&&s| s >= 0).count() as u64).collect()
    }

    /// The checkpoint row of each local member.
    pub fn rows(&self) -> Vec<MemberRow> {
        let local = self.diverged.ncols();
        let states: Vec<Array2<f64>> = self
            .states
            .iter()
            .map(|x| {
                let v = values(x);
                Array2::from_shape_vec((local, v.len() / local.max(1)), v).expect("[member, C·N·N]")
            })
            .collect();
        (0..local)
            .map(|m| MemberRow {
                states: states.iter().map(|x| x.row(m).to_vec()).collect(),
                diverged_at: self.diverged.column(m).to_vec(),
                tallies: Some(
                    self.counts
                        .column(m)
                        .iter()
                        .zip(&self.seconds)
                        .map(|(&counts, &seconds)| Tally { counts, seconds })
                        .collect(),
                ),
            })
            .collect()
    }

    /// The ensemble of checkpoint `rows` of `modes` modes, states of `shape` `[C, N, N]`, on
    /// `device`. Rows without tallies (an earlier version's) restart the totals at zero.
    pub fn from_rows(rows: &[MemberRow], modes: usize, shape: [i64; 3], device: Device) -> Ensemble {
        let local = rows.len();
        let states = (0..modes)
            .map(|i| {
                let words: Vec<f32> = rows.iter().flat_map(|r| r.states[i].iter().map(|&v| v as f32)).collect();
                Tensor::from_slice(&words).view([local as i64, shape[0], shape[1], shape[2]]).to_device(device)
            })
            .collect();
        let mut e = Ensemble {
            states,
            diverged: Array2::from_shape_fn((modes, local), |(i, m)| rows[m].diverged_at[i]),
            counts: Array2::default((modes, local)),
            seconds: vec![0.0; modes],
        };
        for (m, row) in rows.iter().enumerate() {
            for (i, t) in row.tallies.iter().flatten().enumerate() {
                e.counts[[i, m]] = t.counts;
                e.seconds[i] = e.seconds[i].max(t.seconds);
            }
        }
        e
    }
}
