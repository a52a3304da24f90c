//! The training's CSV logs, `history.csv` (one row per applied or skipped update) and
//! `validation.csv` (one row per validation), written by rank 0, and the wall clock they share.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use super::task::Task;
use crate::error::{Context, Result};

/// The columns of `history.csv`: `wall_seconds` is training time since the run began (summed
/// over resumed sessions), `samples_per_second` the update's global batch over its wall time.
pub const HISTORY_HEADER: &str = "update,epoch,batch,lr,loss,grad_norm,applied,wall_seconds,samples_per_second";

/// The columns of `validation.csv`: update, epoch, valid_loss, the task's diagnostics, then
/// `wall_seconds` (the clock of `history.csv`) and the validation pass's `samples_per_second`.
pub fn validation_header(task: &dyn Task) -> String {
    let mut h = "update,epoch,valid_loss".to_string();
    for name in task.diagnostic_names() {
        h += &format!(",{name}");
    }
    h + ",wall_seconds,samples_per_second"
}

/// Appends CSV rows (rank 0 only).
pub struct Csv(Option<BufWriter<File>>);

impl Csv {
    /// Opens `path` for appending after keeping only rows whose first column (the update) is
    /// at most `keep_until` (a resumed run rewrites what followed its checkpoint).
    pub fn open(path: &Path, header: &str, keep_until: Option<u64>, root: bool) -> Result<Csv> {
        if !root {
            return Ok(Csv(None));
        }
        let mut rows = vec![header.to_string()];
        if let (Some(limit), Ok(f)) = (keep_until, File::open(path)) {
            rows.extend(
                BufReader::new(f)
                    .lines()
                    .skip(1)
                    .map_while(Result::ok)
                    .filter(|l| l.split(',').next().and_then(|u| u.parse::<u64>().ok()).is_some_and(|u| u <= limit)),
            );
        }
        std::fs::write(path, rows.join("\n") + "\n").context(|| path.display())?;
        Ok(Csv(Some(BufWriter::new(OpenOptions::new().append(true).open(path).context(|| path.display())?))))
    }

    pub fn row(&mut self, fields: &[String]) {
        if let Some(w) = &mut self.0 {
            let _ = writeln!(w, "{}", fields.join(","));
        }
    }

    pub fn flush(&mut self) {
        if let Some(w) = &mut self.0 {
            let _ = w.flush();
        }
    }
}

/// Training wall time: what earlier sessions of a resumed run spent plus this session's.
pub struct WallClock {
    pub before: f64,
    pub start: Instant,
}

impl WallClock {
    pub fn now(&self) -> f64 {
        self.before + self.start.elapsed().as_secs_f64()
    }
}
