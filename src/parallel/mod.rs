//! The MPI world every stage runs in (a run without `mpirun` is a world of one rank).
//!
//! - [`World`]: rank and size, the contiguous split of ensemble members over ranks, and the
//!   reductions that make every rank take the same decision (stop, checkpoint, errors).
//! - [`node_local_rank`]: this rank's place among the ranks of its node, asked of MPI
//!   (`MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)`), so GPU binding works under any launcher
//!   (Open MPI, MPICH, Cray, srun) without reading launcher-specific variables.
//! - A panic on any rank aborts the whole job ([`install_panic_abort`]), so no rank waits
//!   forever in a collective call for one that died.
//! - [`check_slurm`]: refuses the silent-singletons failure (fewer ranks than `SLURM_NTASKS`).
//! - [`signals`]: SIGTERM/SIGINT/SIGUSR1 set a flag that the stages reduce at step boundaries.

pub mod signals;

use std::ops::Range;
use std::sync::OnceLock;

use mpi::collective::SystemOperation;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

use crate::error::{Error, Result};

/// The ranks of this job.
pub struct World {
    comm: SimpleCommunicator,
    /// (local rank, ranks on this node): see [`node_local_rank`].
    node: (usize, usize),
}

/// The node placement of the world of this process, set once by [`World::new`].
static NODE: OnceLock<(usize, usize)> = OnceLock::new();

/// This process's rank among the ranks sharing its node (ordered by world rank) and their count;
/// `(0, 1)` before a [`World`] exists. Stages that have no `World` at hand (device choice) read it
/// here.
pub fn node_local_rank() -> (usize, usize) {
    NODE.get().copied().unwrap_or((0, 1))
}

impl World {
    /// Wraps `MPI_COMM_WORLD` of an initialised universe and asks MPI which ranks share this
    /// node (collective: every rank calls it once, at start-up).
    pub fn new(universe: &mpi::environment::Universe) -> World {
        let comm = universe.world();
        let shared = comm.split_shared(comm.rank());
        let node = (shared.rank() as usize, shared.size() as usize);
        NODE.get_or_init(|| node);
        World { comm, node }
    }

    /// This rank's index among the ranks of its node (0-based, in world-rank order): the GPU it
    /// takes is this modulo the node's GPUs.
    pub fn local_rank(&self) -> usize {
        self.node.0
    }

    /// Number of ranks on this node.
    pub fn local_size(&self) -> usize {
        self.node.1
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
    /// outcome, a small [`Verdict`] or an error (its kind, input or failure, and its message),
    /// is broadcast so that all ranks act alike.
    pub fn root_decides<V: Verdict>(&self, f: impl FnOnce() -> Result<V>) -> Result<V> {
        let (mut code, mut input, mut msg) = (0u8, false, Vec::new());
        if self.is_root() {
            match f() {
                Ok(v) => code = v.code(),
                Err(e) => (input, msg) = (e.is_input(), e.to_string().into_bytes()),
            }
        }
        let mut head = [code as u64, msg.len() as u64, input as u64];
        let root = self.comm.process_at_rank(0);
        root.broadcast_into(&mut head[..]);
        if head[1] == 0 {
            return Ok(V::from_code(head[0] as u8));
        }
        msg.resize(head[1] as usize, 0);
        root.broadcast_into(&mut msg[..]);
        let msg = String::from_utf8_lossy(&msg).into_owned();
        Err(if head[2] == 1 { Error::Input(msg) } else { Error::Failure(msg) })
    }

    /// The outcome of a collective operation, the same on every rank: `local` where every rank
    /// succeeded, else [`Error::Collective`] with the message of the lowest failing rank
    /// (broadcast from it). Every rank calls it right after the operation, so that a failure
    /// seen by some ranks only (a full disk, seen by the ranks that wrote) is reported once and
    /// stops all of them alike.
    pub fn agree<T, E: std::fmt::Display>(&self, local: Result<T, E>) -> Result<T> {
        let none = self.size() as u64;
        let mine = if local.is_err() { self.rank() as u64 } else { none };
        let mut first = none;
        self.comm.all_reduce_into(&mine, &mut first, SystemOperation::min());
        let mut msg = match local {
            Ok(value) if first == none => return Ok(value),
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().into_bytes(),
        };
        let from = self.comm.process_at_rank(first as i32);
        let mut len = msg.len() as u64;
        from.broadcast_into(&mut len);
        msg.resize(len as usize, 0);
        from.broadcast_into(&mut msg[..]);
        Err(Error::Collective(String::from_utf8_lossy(&msg).into_owned()))
    }

    /// Ends every rank with `code` once all of them get here, without `MPI_Finalize` or exit
    /// handlers: after a failed collective write the parallel HDF5 files are abandoned, and HDF5
    /// would close them (collectively, possibly waiting forever) at finalize or exit. Unlike
    /// [`World::abort`], the launcher sees every rank end by itself and forwards all they
    /// printed (MPICH's hydra drops an aborted job's output that it has not yet read).
    pub fn exit_together(&self, code: i32) -> ! {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        self.barrier();
        // SAFETY: _exit ends this process at once; nothing of it is used afterwards.
        unsafe { libc::_exit(code) }
    }

    /// Aborts every rank of the job with `code` (after an unrecoverable failure on this rank,
    /// which the others do not know of).
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

/// Set to `1` to skip [`check_slurm`] (a launcher it misjudges; the user vouches for the world).
pub const SKIP_SLURM_CHECK: &str = "THERMALIZER_SKIP_SLURM_CHECK";

/// The variables in which a launcher states the size of the world it started: Open MPI's
/// `mpirun`, and the PMI of MPICH's hydra `mpiexec`, Cray's PMI (and Intel MPI, MVAPICH).
const LAUNCHER_SIZES: [&str; 2] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"];

/// Under Slurm, refuses the silent-singletons failure: srun starting `SLURM_NTASKS` processes
/// that each initialise an MPI world of their own (no PMIx between srun and the MPI library).
///
/// Only a world *smaller* than the job step's task count is refused. A larger one is a launcher
/// that starts several ranks per Slurm task: Open MPI's `mpirun` inside an allocation starts
/// one daemon per node through srun, so the ranks of those nodes see `SLURM_NTASKS` = number of
/// daemons. A world of several ranks that the launcher itself sized (one of `LAUNCHER_SIZES`
/// = world size: `mpirun`, hydra's `mpiexec` or Cray's PMI in an allocation with more tasks
/// than ranks) is accepted as well. Outside a job step (no `SLURM_STEP_ID`, e.g. mpirun under
/// `salloc`) there is nothing to compare. [`SKIP_SLURM_CHECK`]`=1` skips the check.
pub fn check_slurm(size: usize) -> Result<()> {
    slurm_world_check(|k| std::env::var(k).ok(), size)
}

/// [`check_slurm`]'s decision on the environment `env` (a variable's value by name) and the
/// MPI world size.
fn slurm_world_check(env: impl Fn(&str) -> Option<String>, size: usize) -> Result<()> {
    let number = |k: &str| env(k).and_then(|v| v.trim().parse::<usize>().ok());
    let in_step = env("SLURM_STEP_ID").is_some() && env(SKIP_SLURM_CHECK).as_deref() != Some("1");
    // A one-rank world is the singletons' symptom whatever a launcher says.
    let sized_by_launcher = size > 1 && LAUNCHER_SIZES.iter().any(|k| number(k) == Some(size));
    match number("SLURM_NTASKS") {
        Some(n) if in_step && !sized_by_launcher && size < n => Err(Error::Input(format!(
            "SLURM_NTASKS = {n} but the MPI world has {size} rank(s): srun started independent \
             processes (check --mpi=pmix and that the binary uses the cluster's MPI; \
             {SKIP_SLURM_CHECK}=1 skips this check)"
        ))),
        _ => Ok(()),
    }
}

/// A verdict small enough to broadcast as one byte ([`World::root_decides`]).
pub trait Verdict: Sized {
    fn code(&self) -> u8;
    fn from_code(code: u8) -> Self;
}

impl Verdict for () {
    fn code(&self) -> u8 {
        0
    }
    fn from_code(_: u8) -> Self {}
}

impl Verdict for bool {
    fn code(&self) -> u8 {
        *self as u8
    }
    fn from_code(code: u8) -> Self {
        code != 0
    }
}

#[cfg(test)]
mod tests {
    use super::{slurm_world_check, split_range, SKIP_SLURM_CHECK};

    /// [`slurm_world_check`] on the variables `vars` (name, value) and the world size.
    fn check(vars: &[(&str, &str)], size: usize) -> Result<(), String> {
        slurm_world_check(|k| vars.iter().find(|(name, _)| *name == k).map(|(_, v)| v.to_string()), size)
            .map_err(|e| e.to_string())
    }

    const STEP: (&str, &str) = ("SLURM_STEP_ID", "0");

    #[test]
    fn slurm_check_refuses_only_fewer_ranks_than_tasks() {
        // srun -n 4 of singletons: each rank sees a world of one.
        assert!(check(&[STEP, ("SLURM_NTASKS", "4")], 1).unwrap_err().contains("SLURM_NTASKS = 4"));
        assert!(check(&[STEP, ("SLURM_NTASKS", "4")], 4).is_ok());
        // mpirun in an allocation of 2 nodes: one srun-launched daemon per node, 64 ranks.
        assert!(check(&[STEP, ("SLURM_NTASKS", "2")], 64).is_ok());
        // Outside a step, or skipped, or without SLURM_NTASKS: nothing to compare.
        assert!(check(&[("SLURM_NTASKS", "4")], 1).is_ok());
        assert!(check(&[STEP, ("SLURM_NTASKS", "4"), (SKIP_SLURM_CHECK, "1")], 1).is_ok());
        assert!(check(&[STEP, (SKIP_SLURM_CHECK, "0"), ("SLURM_NTASKS", "4")], 1).is_err());
        assert!(check(&[STEP], 1).is_ok());
    }

    #[test]
    fn slurm_check_accepts_a_world_its_launcher_sized() {
        // In a step of 8 tasks, 2 ranks started by mpirun, hydra's mpiexec or Cray's PMI.
        let step = [STEP, ("SLURM_NTASKS", "8")];
        for var in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"] {
            assert!(check(&[step[0], step[1], (var, "2")], 2).is_ok(), "{var}");
            // A launcher that sized another world vouches for nothing.
            assert!(check(&[step[0], step[1], (var, "8")], 2).is_err(), "{var}");
        }
        // srun --mpi=pmi2 of a binary on another MPI: PMI_SIZE = 8, eight worlds of one.
        assert!(check(&[step[0], step[1], ("PMI_SIZE", "8")], 1).is_err());
        // A launcher saying one rank does not excuse a world of one in a step of eight.
        assert!(check(&[step[0], step[1], ("PMI_SIZE", "1")], 1).is_err());
    }

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
