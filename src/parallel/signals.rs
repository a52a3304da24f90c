//! Stop requests from the batch system: SIGTERM (Slurm's time limit, `scancel`), SIGINT
//! (Ctrl-C) and SIGUSR1 (`sbatch --signal=USR1@180`, checkpoint-and-requeue). The handler only
//! sets a flag; the stages read it at step boundaries and reduce it over ranks, so all ranks
//! checkpoint at the same step and exit with [`EXIT_INTERRUPTED`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Exit status of a run that stopped on request after writing a checkpoint (BSD `EX_TEMPFAIL`):
/// run the same command again to continue.
pub const EXIT_INTERRUPTED: i32 = 75;

/// A flag set by SIGTERM, SIGINT or SIGUSR1.
#[derive(Clone)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Registers the handlers.
    pub fn install() -> StopFlag {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT, signal_hook::consts::SIGUSR1] {
            signal_hook::flag::register(sig, Arc::clone(&flag)).expect("register signal handler");
        }
        StopFlag(flag)
    }

    /// Whether a stop was requested on this rank.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
