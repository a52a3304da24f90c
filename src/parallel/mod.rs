//! The MPI world every stage runs in (a run without `mpirun` is a world of one rank).
//!
//! - [`World`]: rank and size, the contiguous split of ensemble members over ranks, and the
//!   reductions that make every rank take the same decision (stop, checkpoint, errors).
//! - A panic on any rank aborts the whole job ([`install_panic_abort`]), so no rank waits
//!   forever in a collective call for one that died.
//! - [`check_slurm`]: refuses the silent-singletons failure (`SLURM_NTASKS` ≠ world size).
//! - [`signals`]: SIGTERM/SIGINT/SIGUSR1 set a flag that the stages reduce at step boundaries.

pub mod signals;

use std::ops::Range;

use mpi::collective::SystemOperation;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

/// The ranks of this job.
pub struct World {
    comm: SimpleCommunicator,
}

impl World {
    /// Wraps `MPI_COMM_WORLD` of an initialised universe.
    pub fn new(universe: &mpi::environment::Universe) -> World {
        World { comm: universe.world() }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.comm.size() as usize
    }

    /// Whether this is rank 0 (the one that logs and renames files).
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// The communicator (for MPI-IO).
    pub fn comm(&self) -> &SimpleCommunicator {
        &self.comm
    }

    /// The members this rank owns: a contiguous block, the first `count % size` ranks taking
    /// one extra. Which rank runs a member never changes its result.
    pub fn members(&self, count: usize) -> Range<usize> {
        split_range(count, self.size(), self.rank())
    }

    /// Element-wise sum over ranks.
    pub fn sum(&self, local: &[u64]) -> Vec<u64> {
        let mut out = vec![0u64; local.len()];
        self.comm.all_reduce_into(local, &mut out[..], SystemOperation::sum());
        out
    }

    /// Element-wise maximum over ranks.
    pub fn max_f64(&self, local: &[f64]) -> Vec<f64> {
        let mut out = vec![0f64; local.len()];
        self.comm.all_reduce_into(local, &mut out[..], SystemOperation::max());
        out
    }

    /// Element-wise sum over ranks, in place (f64).
    pub fn sum_f64(&self, values: &mut [f64]) {
        let local = values.to_vec();
        self.comm.all_reduce_into(&local[..], values, SystemOperation::sum());
    }

    /// Element-wise sum over ranks, in place (f32): the gradient allreduce of CPU training.
    pub fn sum_f32(&self, values: &mut [f32]) {
        if self.size() > 1 {
            let local = values.to_vec();
            self.comm.all_reduce_into(&local[..], values, SystemOperation::sum());
        }
    }

    /// Rank 0's `values` on every rank.
    pub fn broadcast_f32(&self, values: &mut [f32]) {
        if self.size() > 1 {
            self.comm.process_at_rank(0).broadcast_into(values);
        }
    }

    /// Whether `flag` is set on any rank.
    pub fn any(&self, flag: bool) -> bool {
        self.sum(&[flag as u64])[0] > 0
    }

    /// Waits for all ranks.
    pub fn barrier(&self) {
        self.comm.barrier();
    }

    /// Rank 0's `Result` on every rank: rank 0 runs `f` (e.g. a file-system check) and the
    /// outcome, a small code or an error message, is broadcast so that all ranks act alike.
    pub fn root_decides(&self, f: impl FnOnce() -> Result<u8, String>) -> Result<u8, String> {
        let (mut code, mut msg) = (0u8, Vec::new());
        if self.is_root() {
            match f() {
                Ok(c) => code = c,
                Err(e) => msg = e.into_bytes(),
            }
        }
        let mut head = [code as u64, msg.len() as u64];
        let root = self.comm.process_at_rank(0);
        root.broadcast_into(&mut head[..]);
        if head[1] == 0 {
            return Ok(head[0] as u8);
        }
        msg.resize(head[1] as usize, 0);
        root.broadcast_into(&mut msg[..]);
        Err(String::from_utf8_lossy(&msg).into_owned())
    }

    /// Aborts every rank of the job with `code` (after an unrecoverable local failure).
    pub fn abort(&self, code: i32) -> ! {
        self.comm.abort(code)
    }
}

/// The `rank`-th of `parts` contiguous, balanced blocks of `0..count`.
pub fn split_range(count: usize, parts: usize, rank: usize) -> Range<usize> {
    let (base, extra) = (count / parts, count % parts);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// Makes a panic on any rank print its message and abort the whole MPI job (exit code 101),
/// instead of leaving the other ranks blocked in a collective call.
pub fn install_panic_abort(size: usize) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        if size > 1 {
            // SAFETY: MPI is initialised while the hook is installed; MPI_Abort does not return.
            unsafe {
                mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 101);
            }
        }
    }));
}

/// Under Slurm, checks that `SLURM_NTASKS` (if set, for a job step launched by srun) matches
/// the MPI world size: a mismatch means srun started independent singletons.
pub fn check_slurm(size: usize) -> Result<(), String> {
    if std::env::var_os("SLURM_STEP_ID").is_none() {
        return Ok(());
    }
    match std::env::var("SLURM_NTASKS").ok().and_then(|v| v.parse::<usize>().ok()) {
        Some(n) if n != size => Err(format!(
            "SLURM_NTASKS = {n} but the MPI world has {size} rank(s): srun started independent \
             processes (check --mpi=pmix and that the binary uses the cluster's MPI)"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::split_range;

    #[test]
    fn split_covers_everything_once() {
        for count in 0..20 {
            for parts in 1..6 {
                let ranges: Vec<_> = (0..parts).map(|r| split_range(count, parts, r)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[parts - 1].end, count);
                for w in ranges.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                    assert!(w[0].len() >= w[1].len() && w[0].len() <= w[1].len() + 1);
                }
            }
        }
    }
}
