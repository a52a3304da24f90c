//! The netCDF Climate and Forecast (CF-1.8) global attributes shared by the output files
//! (`trajectories.h5`, `rollout.h5`): `Conventions`, `history`, `references`, `source` and
//! `date_created` (docs/file-format.md, "netCDF-4 and CF").
//!
//! In a parallel file attribute values must be the same on every rank, so the creation time
//! is agreed over ranks ([`creation_time`]) before it is written.

use super::h5::Attrs;
use super::trajectories::{GIT_REVISION, VERSION};
use crate::config::SystemKind;
use crate::error::Result;
use crate::parallel::World;

/// The CF version the files follow.
pub const CONVENTIONS: &str = "CF-1.8";

const PAPER: &str = "Pedersen, C., Zanna, L. and Bruna, J. (2025): Thermalizer: Stable autoregressive neural \
                     emulation of spatiotemporal chaos. ICML 2025, arXiv:2503.18731";
const JAX_CFD: &str = "Kochkov, D. et al. (2021): Machine learning-accelerated computational fluid dynamics. \
                       PNAS 118(21), e2101784118, doi:10.1073/pnas.2101784118 (jax-cfd, \
                       https://github.com/google/jax-cfd)";
const PYQG: &str = "pyqg: a Python quasigeostrophic model, https://github.com/pyqg/pyqg";

/// The creation time, Unix seconds (UTC): the latest clock over the ranks, so that every rank
/// writes the same value.
pub fn creation_time(world: &World) -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    world.max_f64(&[now as f64])[0] as i64
}

/// Writes the CF global attributes of a file about `system`, created at `created` (Unix
/// seconds) by this process's command line; the Slurm job id is taken from `SLURM_JOB_ID`.
pub fn write_global(a: &Attrs, system: SystemKind, created: i64) -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let job = std::env::var("SLURM_JOB_ID").ok().filter(|j| !j.is_empty());
    a.set_str("Conventions", CONVENTIONS)?;
    a.set_str("history", &history(created, &args, job.as_deref()))?;
    a.set_str("references", &references(system))?;
    a.set_str("source", &format!("thermalizer {VERSION} (git {GIT_REVISION})"))?;
    a.set_str("date_created", &iso8601(created))
}

/// The `references` of a file: the paper, then the reference implementation of the system.
pub fn references(system: SystemKind) -> String {
    let solver = match system {
        SystemKind::Kolmogorov => JAX_CFD,
        SystemKind::Qg => PYQG,
    };
    format!("{PAPER}; {solver}")
}

/// One `history` line: `<UTC time>: <command line>` and, under Slurm, `(Slurm job <id>)`.
/// Arguments with blanks or quotes are single-quoted so the line can be pasted into a shell.
pub fn history(created: i64, args: &[String], slurm_job: Option<&str>) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| {
            if a.is_empty() || a.chars().any(|c| c.is_whitespace() || "'\"\\$`".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect();
    let job = slurm_job.map(|j| format!(" (Slurm job {j})")).unwrap_or_default();
    format!("{}: {}{job}", iso8601(created), quoted.join(" "))
}

/// `secs` (Unix time) as ISO 8601 UTC, `YYYY-MM-DDThh:mm:ssZ` (proleptic Gregorian calendar).
pub fn iso8601(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm, eras of 400 years).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(iso8601(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn history_quotes_arguments_and_names_the_job() {
        let args: Vec<String> = ["thermalizer", "rollout", "--set", "run.dir=my runs/a"].map(String::from).to_vec();
        assert_eq!(
            history(0, &args, Some("4242")),
            "1970-01-01T00:00:00Z: thermalizer rollout --set 'run.dir=my runs/a' (Slurm job 4242)"
        );
        assert_eq!(history(0, &args[..2], None), "1970-01-01T00:00:00Z: thermalizer rollout");
    }
}
