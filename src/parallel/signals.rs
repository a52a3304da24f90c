//! Stop requests from the batch system: SIGTERM (Slurm's time limit, `scancel`), SIGINT
//! (Ctrl-C) and SIGUSR1 (`sbatch --signal=USR1@180`, checkpoint-and-requeue). The handler only
//! sets a flag; the stages read it at step boundaries and reduce it over ranks, so all ranks
//! checkpoint at the same step and exit with [`EXIT_INTERRUPTED`].
//!
//! A SIGINT after an earlier SIGINT or SIGTERM (Ctrl-C pressed again while the checkpoint is
//! awaited) ends the process at once with [`EXIT_ABORTED`], without a checkpoint: checkpoints
//! are written to a temporary file and renamed, so the previous one stays valid. A repeated
//! SIGTERM does not: a job step under `scancel` or at its time limit gets SIGTERM twice (from
//! its slurmstepd and forwarded by srun), and that must still end in a checkpoint within
//! Slurm's KillWait. SIGUSR1 is not an interrupt either.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Exit status of a run that stopped on request after writing a checkpoint (BSD `EX_TEMPFAIL`):
/// run the same command again to continue.
pub const EXIT_INTERRUPTED: i32 = 75;

/// Exit status after a second interrupt (128 + SIGINT, as a shell reports Ctrl-C).
pub const EXIT_ABORTED: i32 = 130;

/// The line printed on a second interrupt.
const SECOND_INTERRUPT: &[u8] = b"second interrupt: exiting without a checkpoint; the last checkpoint is kept\n";

/// A flag set by SIGTERM, SIGINT or SIGUSR1.
#[derive(Clone)]
pub struct StopFlag(Arc<AtomicBool>);

/// The process's one flag: handlers are registered once however often [`StopFlag::install`] is
/// called, so one signal counts once.
static INSTALLED: OnceLock<StopFlag> = OnceLock::new();

impl StopFlag {
    /// Registers the handlers (once per process) and returns the flag they set.
    pub fn install() -> StopFlag {
        INSTALLED.get_or_init(register).clone()
    }

    /// Whether a stop was requested on this rank.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

fn register() -> StopFlag {
    let flag = Arc::new(AtomicBool::new(false));
    let interrupts = Arc::new(AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let (flag, interrupts) = (Arc::clone(&flag), Arc::clone(&interrupts));
        let escalates = sig == signal_hook::consts::SIGINT;
        let handler = move || {
            flag.store(true, Ordering::SeqCst);
            if interrupts.fetch_add(1, Ordering::SeqCst) >= 1 && escalates {
                // SAFETY: write(2) and _exit(2) are async-signal-safe.
                unsafe {
                    libc::write(libc::STDERR_FILENO, SECOND_INTERRUPT.as_ptr().cast(), SECOND_INTERRUPT.len());
                }
                signal_hook::low_level::exit(EXIT_ABORTED);
            }
        };
        // SAFETY: the handler only touches atomics and calls async-signal-safe functions.
        unsafe { signal_hook::low_level::register(sig, handler) }.expect("register signal handler");
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&flag)).expect("register signal handler");
    StopFlag(flag)
}
