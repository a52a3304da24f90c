//! `thermalizer status`: what a run directory holds, stage by stage, without changing it.
//!
//! Each stage is **done** (its final output exists), **partial** (a checkpoint of a run in
//! progress or interrupted: the same command resumes it), **absent**, or **stale**. Stale means
//! made from other inputs: with a config given, from another config than it (what `pipeline`
//! would refuse or redo); without one, from inputs other than the stage before it holds now
//! (e.g. models trained on a `trajectories.h5` since regenerated, a report older than its
//! rollout). Every output stores the config it was made with, which is what is compared
//! ([`same_identity`]).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::{same_identity, Config, Stage};
use crate::error::{Context, Result};
use crate::store;
use crate::store::member_states;
use crate::store::resume::StageFiles;

/// Where a stage stands.
#[derive(Debug, PartialEq)]
pub enum State {
    Done,
    /// In progress or interrupted; `at` says how far its last checkpoint got.
    Partial {
        at: String,
    },
    Absent,
    /// Made from other inputs; `why` says which.
    Stale {
        why: String,
    },
}

/// One line of the status table.
pub struct StageStatus {
    pub stage: &'static str,
    pub state: State,
    /// The file the state was read from, and what it holds.
    pub detail: String,
}

/// The stored config of a stage's output, and the file it came from.
struct Made {
    config: String,
    file: PathBuf,
}

/// "4 min ago" from a file's modification time.
fn age(path: &Path) -> String {
    let secs = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or(0, |d| d.as_secs());
    match secs {
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{:.1} h ago", s as f64 / 3600.0),
        s => format!("{} days ago", s / 86_400),
    }
}

/// Metadata of a training checkpoint, from the safetensors header alone (an 8-byte
/// little-endian length, then that much JSON): the tensors, hundreds of MB at the paper's size,
/// are not read.
fn checkpoint_meta(path: &Path) -> Result<std::collections::HashMap<String, String>> {
    use std::io::Read;
    let bad = || format!("{}: not safetensors", path.display());
    let mut f = std::fs::File::open(path).context(|| path.display())?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).context(bad)?;
    let mut header = vec![0u8; u64::from_le_bytes(len).min(100 << 20) as usize];
    f.read_exact(&mut header).context(bad)?;
    let json: serde_json::Value = serde_json::from_slice(&header).context(bad)?;
    Ok(serde_json::from_value(json["__metadata__"].clone()).unwrap_or_default())
}

/// Whether `made` (a stage's output) was made from `upstream` (the output of the stage before
/// it, `stage`): the config stored downstream names the same `stage` inputs as the upstream one.
fn made_from(made: &Made, upstream: &Made, stage: Stage) -> bool {
    serde_saphyr::from_str::<Config>(&made.config)
        .is_ok_and(|c| same_identity(stage, &upstream.config, &c.identity(stage)))
}

/// The status of every stage of `run_dir`, checked against `config` when one is given.
pub fn of(run_dir: &Path, config: Option<&Config>) -> Vec<StageStatus> {
    let check = Check { config };
    let (generate, generated) = generate(run_dir, &check);
    let mut out = vec![generate];
    let mut trained = Vec::new();
    for (stage, model, ident) in [
        ("train emulator", "emulator", Stage::TrainEmulator),
        ("train thermalizer", "thermalizer", Stage::TrainThermalizer),
    ] {
        let (status, made) = train(run_dir, &check, (stage, model, ident), &generated);
        out.push(status);
        trained.push((made, ident));
    }
    out.push(calibrate(run_dir));
    out.push(rollout(run_dir, &check, &generated, &trained));
    out.push(report(run_dir));
    out
}

/// The output of an upstream stage (absent: `None`), and the stage whose inputs it stores.
type Upstream<'a> = (&'a Option<Made>, Stage);

/// What staleness is judged against: the config given, or else the outputs upstream.
struct Check<'a> {
    config: Option<&'a Config>,
}

impl Check<'_> {
    /// `stage` as stale when `made` (its output, of identity `ident`) was made from another
    /// config than the one given or, without one, from other inputs than `upstream` holds now.
    fn stale(&self, stage: &'static str, made: &Made, ident: Stage, upstream: &[Upstream]) -> Option<StageStatus> {
        let why = match self.config {
            Some(c) if !same_identity(ident, &made.config, &c.identity(ident)) => {
                Some(format!("{} was made from another config than the one given", made.file.display()))
            }
            Some(_) => None,
            None => upstream.iter().find_map(|(up, s)| {
                up.as_ref().filter(|u| !made_from(made, u, *s)).map(|u| {
                    format!("{} was made from other inputs than {} holds now", made.file.display(), u.file.display())
                })
            }),
        };
        why.map(|why| StageStatus { stage, state: State::Stale { why }, detail: String::new() })
    }
}

/// How far the checkpoint `ck` of a stage in progress got, in `unit` steps.
fn checkpointed(ck: &Path, unit: &str) -> State {
    State::Partial {
        at: member_states::stored_step(ck)
            .map_or("checkpoint unreadable".into(), |s| format!("{unit} step {s}, checkpointed {}", age(ck))),
    }
}

/// The generate stage, and its output when there is one.
fn generate(run_dir: &Path, check: &Check) -> (StageStatus, Option<Made>) {
    let StageFiles { output: traj, partial, checkpoint } = StageFiles::generate(run_dir);
    let generated = store::stored_config(&traj).ok().map(|config| Made { config, file: traj.clone() });
    let status = match &generated {
        Some(m) => check.stale("generate", m, Stage::Generate, &[]).unwrap_or(StageStatus {
            stage: "generate",
            state: State::Done,
            detail: traj.display().to_string(),
        }),
        None if checkpoint.exists() => StageStatus {
            stage: "generate",
            state: checkpointed(&checkpoint, "solver"),
            detail: partial.display().to_string(),
        },
        None => StageStatus { stage: "generate", state: State::Absent, detail: traj.display().to_string() },
    };
    (status, generated)
}

/// The training of `model` (shown as `stage`, of identity `ident`) from its latest checkpoint,
/// and that checkpoint when there is one.
fn train(
    run_dir: &Path,
    check: &Check,
    (stage, model, ident): (&'static str, &str, Stage),
    generated: &Option<Made>,
) -> (StageStatus, Option<Made>) {
    let latest = run_dir.join(model).join("latest.safetensors");
    let meta = checkpoint_meta(&latest).ok();
    let made = meta.as_ref().and_then(|m| m.get("config")).map(|c| Made { config: c.clone(), file: latest.clone() });
    let get = |k: &str| meta.as_ref().and_then(|m| m.get(k)).cloned().unwrap_or_default();
    let status = match &made {
        None => StageStatus { stage, state: State::Absent, detail: latest.display().to_string() },
        Some(m) => {
            check.stale(stage, m, ident, &[(generated, Stage::Generate)]).unwrap_or(if get("finished") == "true" {
                StageStatus {
                    stage,
                    state: State::Done,
                    detail: format!("{} ({} updates)", latest.display(), get("update")),
                }
            } else {
                StageStatus {
                    stage,
                    state: State::Partial { at: format!("update {}, checkpointed {}", get("update"), age(&latest)) },
                    detail: latest.display().to_string(),
                }
            })
        }
    };
    (status, made)
}

/// The calibration of the thermalizer's classifier: done when its file exists.
fn calibrate(run_dir: &Path) -> StageStatus {
    let calibration = run_dir.join("thermalizer").join("calibration.json");
    StageStatus {
        stage: "calibrate",
        state: if calibration.exists() { State::Done } else { State::Absent },
        detail: calibration.display().to_string(),
    }
}

/// The stages a rollout whose stored config is `m`'s depends on: its models come from the run
/// directory unless the config names other files.
fn rollout_upstream<'a>(
    m: &Made,
    generated: &'a Option<Made>,
    trained: &'a [(Option<Made>, Stage)],
) -> Vec<Upstream<'a>> {
    let r = serde_saphyr::from_str::<Config>(&m.config).ok().and_then(|c| c.rollout);
    let shipped = r.as_ref().is_some_and(|r| r.models.is_some());
    let mut up = vec![(generated, Stage::Generate)];
    for (made, ident) in trained {
        let from_file = *ident == Stage::TrainThermalizer && r.as_ref().is_some_and(|r| r.thermalizer_file.is_some());
        if !(shipped || from_file) {
            up.push((made, *ident));
        }
    }
    up
}

/// The rollout stage, from its output or, in progress, its checkpoint.
fn rollout(run_dir: &Path, check: &Check, generated: &Option<Made>, trained: &[(Option<Made>, Stage)]) -> StageStatus {
    let StageFiles { output: done, partial, checkpoint: ck } = StageFiles::rollout(run_dir);
    // rollout.h5 stores its config as its checkpoint does: the root attribute `config`.
    let rolled = store::stored_config(&done).ok().map(|config| Made { config, file: done.clone() });
    let resumable = store::stored_config(&ck).ok().map(|config| Made { config, file: ck.clone() });
    let stale = |m: &Made| check.stale("rollout", m, Stage::Rollout, &rollout_upstream(m, generated, trained));
    match (&rolled, &resumable) {
        (Some(m), _) => {
            stale(m).unwrap_or(StageStatus { stage: "rollout", state: State::Done, detail: done.display().to_string() })
        }
        (None, Some(m)) if partial.exists() => stale(m).unwrap_or(StageStatus {
            stage: "rollout",
            state: checkpointed(&ck, "emulator"),
            detail: partial.display().to_string(),
        }),
        _ => StageStatus { stage: "rollout", state: State::Absent, detail: done.display().to_string() },
    }
}

/// The report: stale when older than the rollout it reports.
fn report(run_dir: &Path) -> StageStatus {
    let summary = run_dir.join("report").join("summary.md");
    let done = StageFiles::rollout(run_dir).output;
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    StageStatus {
        stage: "report",
        state: match (modified(&summary), modified(&done)) {
            (None, _) => State::Absent,
            (Some(r), Some(d)) if r < d => State::Stale { why: format!("older than {}", done.display()) },
            _ => State::Done,
        },
        detail: summary.display().to_string(),
    }
}

/// The status as a table, one stage per line.
pub fn table(run_dir: &Path, rows: &[StageStatus]) -> String {
    let mut s = format!("run directory {}\n", run_dir.display());
    for r in rows {
        let (state, what) = match &r.state {
            State::Done => ("done", r.detail.clone()),
            State::Partial { at } => ("partial", format!("{} ({at})", r.detail)),
            State::Absent => ("absent", r.detail.clone()),
            State::Stale { why } => ("stale", why.clone()),
        };
        s += &format!("{:<18} {state:<8} {what}\n", r.stage);
    }
    s
}
