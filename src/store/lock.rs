//! One writer per stage and run directory: `<run.dir>/.<stage>.lock`.
//!
//! A stage that writes resumable outputs (generate, train, calibrate, rollout) takes its lock
//! on rank 0 before it decides fresh / resume / done, and holds it until the stage returns
//! (finished, failed, or stopped on a signal): two jobs on one run directory, such as a
//! requeued Slurm job and its resubmission, would otherwise write the same `.partial` file.
//! The lock file is created atomically (`O_CREAT | O_EXCL`) and names its holder in
//! `key = value` lines: `stage`, `host`, `pid`, `slurm_job` (`SLURM_JOB_ID`, with
//! `_SLURM_ARRAY_TASK_ID` for an array task; `-` outside Slurm), `slurm_restart`
//! (`SLURM_RESTART_COUNT`, 0 when unset) and `since` (Unix seconds, UTC).
//!
//! A lock left behind by a holder that cannot be running any more is taken over with a
//! warning: on this host, when its pid is gone (or is this very process, a pid reused after a
//! reboot or in a new container); on any host, when it names this Slurm job and array task
//! with a lower restart count (Slurm requeued the job, so the earlier run is over). Any other
//! lock refuses the stage with one line naming the file to delete once that job is known to
//! be gone: a process on another host cannot be checked from here, and no age is old enough
//! to prove a multi-day run dead.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Context, Error, Result};
use crate::store::cf::iso8601;

/// A held lock; dropping it removes the file.
#[derive(Debug)]
pub struct StageLock {
    path: PathBuf,
}

impl Drop for StageLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The holder a lock file names.
#[derive(Debug, PartialEq)]
struct Holder {
    stage: String,
    host: String,
    pid: u32,
    slurm_job: String,
    slurm_restart: u64,
    since: i64,
}

impl Holder {
    /// This process, running `stage`.
    fn me(stage: &str) -> Holder {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let slurm_job = match (env("SLURM_JOB_ID"), env("SLURM_ARRAY_TASK_ID")) {
            (Some(job), Some(task)) => format!("{job}_{task}"),
            (Some(job), None) => job,
            (None, _) => "-".into(),
        };
        Holder {
            stage: stage.into(),
            host: hostname(),
            pid: std::process::id(),
            slurm_job,
            slurm_restart: env("SLURM_RESTART_COUNT").and_then(|v| v.parse().ok()).unwrap_or(0),
            since: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64),
        }
    }

    fn to_text(&self) -> String {
        format!(
            "stage = {}\nhost = {}\npid = {}\nslurm_job = {}\nslurm_restart = {}\nsince = {}\n",
            self.stage, self.host, self.pid, self.slurm_job, self.slurm_restart, self.since
        )
    }

    /// `None` when the text is not a complete lock (being written, or damaged).
    fn parse(text: &str) -> Option<Holder> {
        let get = |key: &str| {
            text.lines().find_map(|l| l.split_once(" = ").filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim()))
        };
        Some(Holder {
            stage: get("stage")?.into(),
            host: get("host")?.into(),
            pid: get("pid")?.parse().ok()?,
            slurm_job: get("slurm_job")?.into(),
            slurm_restart: get("slurm_restart")?.parse().ok()?,
            since: get("since")?.parse().ok()?,
        })
    }

    /// Why `self` (a lock's holder) cannot be running any more, as seen by `me`; `None` when it
    /// may be.
    fn gone(&self, me: &Holder) -> Option<String> {
        if self.host == me.host && (self.pid == me.pid || !pid_alive(self.pid)) {
            return Some(format!("pid {} on this host is no longer running", self.pid));
        }
        if self.slurm_job != "-" && self.slurm_job == me.slurm_job && self.slurm_restart < me.slurm_restart {
            return Some(format!("Slurm job {} was requeued (restart {})", self.slurm_job, me.slurm_restart));
        }
        None
    }

    /// `generate on host n1 (pid 4242, Slurm job 1234) since 2026-12-07T19:30:00Z`
    fn describe(&self) -> String {
        let job = if self.slurm_job == "-" { String::new() } else { format!(", Slurm job {}", self.slurm_job) };
        format!("{} on host {} (pid {}{job}) since {}", self.stage, self.host, self.pid, iso8601(self.since))
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its length; gethostname NUL-terminates within it.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown".into()
    }
}

/// Whether a process `pid` exists on this host (`kill(pid, 0)`: EPERM means it exists).
fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let status = unsafe { libc::kill(pid, 0) };
    status == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The lock file of `stage` (e.g. `train emulator`) in `dir`: `.train-emulator.lock`.
pub fn path(dir: &Path, stage: &str) -> PathBuf {
    dir.join(format!(".{}.lock", stage.replace(' ', "-")))
}

/// Takes `stage`'s lock in `dir` (created if missing) for this process, or says who holds it.
pub fn take(dir: &Path, stage: &str) -> Result<StageLock> {
    std::fs::create_dir_all(dir).input_context(|| format!("run.dir = {}: cannot create it", dir.display()))?;
    let path = path(dir, stage);
    let me = Holder::me(stage);
    // Twice at most: once more after removing a stale lock, unless another process got there first.
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(me.to_text().as_bytes()).input_context(|| format!("cannot write {}", path.display()))?;
                return Ok(StageLock { path });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Error::Input(format!(
                    "run.dir = {}: not writable (cannot create {}: {e})",
                    dir.display(),
                    path.display()
                )))
            }
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let Some(holder) = Holder::parse(&text) else {
            return Err(Error::Input(format!(
                "{} is in use by {stage} ({} is incomplete: being written, or damaged); remove it if no job is \
                 running there",
                dir.display(),
                path.display()
            )));
        };
        let Some(why) = holder.gone(&me) else {
            return Err(Error::Input(format!(
                "{} is in use by {}; remove {} if that job is gone",
                dir.display(),
                holder.describe(),
                path.display()
            )));
        };
        log::warn!("taking over {} left by {}: {why}", path.display(), holder.describe());
        std::fs::remove_file(&path).input_context(|| format!("cannot remove stale {}", path.display()))?;
    }
    Err(Error::Input(format!(
        "{} is in use by another {stage} that started just now; remove {} if not",
        dir.display(),
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(host: &str, pid: u32, job: &str, restart: u64) -> Holder {
        Holder {
            stage: "generate".into(),
            host: host.into(),
            pid,
            slurm_job: job.into(),
            slurm_restart: restart,
            since: 0,
        }
    }

    #[test]
    fn lock_text_round_trips() {
        let h = holder("n1", 4242, "1234_7", 2);
        assert_eq!(Holder::parse(&h.to_text()), Some(h));
        assert_eq!(Holder::parse("stage = generate\nhost = n1\n"), None);
    }

    #[test]
    fn stale_only_when_the_holder_cannot_be_running() {
        let me = holder("n1", std::process::id(), "1234", 1);
        let parent = std::os::unix::process::parent_id();
        assert!(holder("n1", parent, "-", 0).gone(&me).is_none(), "a live pid on this host");
        assert!(holder("n1", std::process::id(), "-", 0).gone(&me).is_some(), "this very process");
        assert!(holder("n2", parent, "999", 0).gone(&me).is_none(), "another host, another job");
        assert!(holder("n2", parent, "1234", 0).gone(&me).is_some(), "this job before a requeue");
        assert!(holder("n2", parent, "1234", 1).gone(&me).is_none(), "this job, same restart: another step");
    }

    #[test]
    fn describe_names_host_pid_job_and_time() {
        assert_eq!(
            holder("n1", 4242, "1234", 0).describe(),
            "generate on host n1 (pid 4242, Slurm job 1234) since 1970-01-01T00:00:00Z"
        );
        assert_eq!(holder("n1", 7, "-", 0).describe(), "generate on host n1 (pid 7) since 1970-01-01T00:00:00Z");
    }
}
