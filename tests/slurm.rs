//! The Slurm templates (slurm/) and submission scripts (jobs/) on a real single-node Slurm
//! cluster: munged + slurmctld + slurmd started for the test by scripts/slurm-ci/start-slurm.sh
//! (packages installed by scripts/setup-slurm.sh; needs root and apt on Debian/Ubuntu) and
//! stopped by their PID files at the end, also when an assertion fails.
//!
//! 1. `jobs/submit-pipeline.sh --cpu --ntasks 2` on tests/configs/tiny-train.yaml: five chained
//!    jobs that all end COMPLETED with exit 0:0, 2-rank MPI jobs launched by srun over PMIx,
//!    every output of the pipeline present; `--dry-run` prints the five sbatch commands with
//!    their dependencies and submits nothing; a `jobs/sweep-rollout.sh` array (chained after
//!    both trainings) writes a rollout and report per grid point with its own s_init; a
//!    pipeline whose first stage fails leaves no job pending (--kill-on-invalid-dep);
//!    slurm/pipeline-cpu.sbatch runs all stages in one 2-rank job.
//!    Per-stage resources: `--stage-ntasks`, `--cpu-sbatch`/`--gpu-sbatch` in the dry run's
//!    commands and (--comment) on the real jobs.
//! 2. `mpirun` inside an allocation (`salloc -n 2 mpirun -np 2`, also from a one-task step)
//!    passes the world-size check and generates.
//! 3. slurm/generate.sbatch with `-t 1 --signal=B:USR1@30`: USR1 before the time limit →
//!    checkpoint → requeue → resumed job, COMPLETED with Restarts ≥ 1, and trajectories.h5
//!    bitwise equal to an uninterrupted run's.
//!
//! Run alone: cargo test --release --locked --test slurm -- --nocapture

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

use thermalizer::store::h5::{Access, File};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// What a finished pipeline leaves in its run.dir.
const OUTPUTS: [&str; 5] = [
    "trajectories.h5",
    "emulator/latest.safetensors",
    "thermalizer/latest.safetensors",
    "rollout.h5",
    "report/summary.md",
];

fn tiny_train() -> String {
    format!("{ROOT}/tests/configs/tiny-train.yaml")
}

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A throw-away Slurm cluster; dropping it stops its daemons (by PID file).
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        let t0 = Instant::now();
        let setup =
            Command::new(format!("{ROOT}/scripts/setup-slurm.sh")).output().expect("run scripts/setup-slurm.sh");
        assert!(
            setup.status.success(),
            "installing Slurm (slurmctld slurmd slurm-client munge libpmix-dev) with scripts/setup-slurm.sh \
             failed; this test needs root and apt-get\n{}",
            text(&setup)
        );
        let dir = std::env::temp_dir().join(format!("thermalizer-slurm-test-{}", std::process::id()));
        let cluster = Cluster { conf: dir.join("etc/slurm.conf"), dir };
        // Ports of their own, so that a developer's cluster on the defaults does not clash.
        let out = Command::new(format!("{ROOT}/scripts/slurm-ci/start-slurm.sh"))
            .env("SLURM_CI_DIR", &cluster.dir)
            .env("SLURM_CI_CTLD_PORT", "6827")
            .env("SLURM_CI_SLURMD_PORT", "6828")
            .output()
            .expect("run start-slurm.sh");
        assert!(out.status.success(), "start-slurm.sh failed\n{}", text(&out));
        eprintln!("slurm: installed and started in {:.1} s ({})", t0.elapsed().as_secs_f64(), cluster.dir.display());
        cluster
    }

    /// `program` with the cluster's config and what the jobs need: the binary under test,
    /// the checkout with slurm/lib/step.sh, mpirun-as-root permission, one thread per rank.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf)
            .env("THERMALIZER", bin())
            .env("THERMALIZER_SRC", ROOT)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .env("OMP_NUM_THREADS", "1");
        c
    }

    fn output(&self, program: &str, args: &[&str], cwd: &Path) -> Output {
        self.command(program).args(args).current_dir(cwd).output().unwrap_or_else(|e| panic!("run {program}: {e}"))
    }

    /// Every job record of `id` (one per array task) as key → value.
    fn jobs(&self, id: &str) -> Vec<HashMap<String, String>> {
        let out = self.output("scontrol", &["show", "job", "-o", id], Path::new("/"));
        assert!(out.status.success(), "scontrol show job {id}\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut m = HashMap::new();
                for tok in l.split_whitespace() {
                    if let Some((k, v)) = tok.split_once('=') {
                        m.entry(k.to_string()).or_insert_with(|| v.to_string());
                    }
                }
                m
            })
            .collect()
    }

    /// Polls `squeue` every 0.5 s until none of `ids` is pending, running or completing.
    fn wait(&self, ids: &[&str], limit: Duration) {
        let t0 = Instant::now();
        let list = ids.join(",");
        loop {
            let out = self.output("squeue", &["-h", "-o", "%i %T", "-j", &list], Path::new("/"));
            assert!(out.status.success(), "squeue\n{}", text(&out));
            if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            assert!(
                t0.elapsed() < limit,
                "jobs {list} not done after {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn assert_completed(&self, id: &str, what: &str) -> HashMap<String, String> {
        let recs = self.jobs(id);
        assert!(!recs.is_empty(), "no record of job {id} ({what})");
        for r in &recs {
            assert_eq!(
                (r["JobState"].as_str(), r["ExitCode"].as_str()),
                ("COMPLETED", "0:0"),
                "job {id} ({what}) did not complete: {r:?}"
            );
        }
        recs.into_iter().next().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let t0 = Instant::now();
        let out =
            Command::new(format!("{ROOT}/scripts/slurm-ci/stop-slurm.sh")).env("SLURM_CI_DIR", &self.dir).output();
        match out {
            Ok(o) if o.status.success() => {
                eprintln!("slurm: stopped in {:.1} s", t0.elapsed().as_secs_f64());
                let _ = std::fs::remove_dir_all(&self.dir);
            }
            Ok(o) => eprintln!("stop-slurm.sh failed (cluster files kept in {})\n{}", self.dir.display(), text(&o)),
            Err(e) => eprintln!("stop-slurm.sh did not run: {e}"),
        }
    }
}

/// The log file of job `id` in `logs` (named %x-%j.out by jobs/*.sh).
fn log_of(logs: &Path, id: &str) -> (PathBuf, String) {
    let suffix = format!("-{id}.out");
    let path = std::fs::read_dir(logs)
        .unwrap_or_else(|e| panic!("{}: {e}", logs.display()))
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().ends_with(&suffix))
        .unwrap_or_else(|| panic!("no log *{suffix} in {}", logs.display()));
    let s = std::fs::read_to_string(&path).unwrap();
    (path, s)
}

/// "<stage> <id>" lines printed by jobs/submit-pipeline.sh.
fn ids(out: &Output) -> HashMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.trim().to_string())))
        .collect()
}

fn bits(path: &Path) -> (Vec<u32>, Vec<u64>) {
    let f = File::open(path, Access::Serial, false).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v = f.dataset("vorticity").unwrap().read::<f32>(None).unwrap();
    let t = f.dataset("time").unwrap().read::<f64>(None).unwrap();
    assert!(!v.is_empty());
    (v.iter().map(|x| x.to_bits()).collect(), t.iter().map(|x| x.to_bits()).collect())
}

fn pipeline_and_sweep(cl: &Cluster, work: &Path) {
    let cfg = tiny_train();
    let run = work.join("run");
    let run_set = format!("run.dir={}", run.display());
    let submit = format!("{ROOT}/jobs/submit-pipeline.sh");

    // --dry-run: the exact commands, placeholders for ids, nothing submitted.
    let dry = cl.output(&submit, &[&cfg, "--cpu", "--ntasks", "2", "--dry-run", "--set", &run_set], work);
    assert!(dry.status.success(), "dry run\n{}", text(&dry));
    let dry_out = String::from_utf8_lossy(&dry.stdout).to_string();
    let lines: Vec<&str> = dry_out.lines().filter(|l| l.starts_with("sbatch ")).collect();
    assert_eq!(lines.len(), 5, "dry run: five sbatch commands expected\n{dry_out}");
    assert!(lines[0].contains("slurm/generate.sbatch") && !lines[0].contains("--dependency"), "{dry_out}");
    for (l, (dep, script)) in lines[1..].iter().zip([
        ("afterok:JOBID_generate ", "train-cpu.sbatch emulator"),
        ("afterok:JOBID_generate ", "train-cpu.sbatch thermalizer"),
        ("afterok:JOBID_train_emulator:JOBID_train_thermalizer ", "rollout-cpu.sbatch"),
        ("afterok:JOBID_rollout ", "report.sbatch"),
    ]) {
        assert!(l.contains(dep) && l.contains(script) && l.contains("--kill-on-invalid-dep=yes"), "{l}\n{dry_out}");
    }
    // Per-stage resources (--gpu): generate on 3 ranks; CPU jobs (generate, report) and GPU jobs
    // (trainings, rollout) each with their own partition.
    let dry = cl.output(
        &submit,
        &[
            &cfg,
            "--gpu",
            "--ntasks",
            "2",
            "--stage-ntasks",
            "generate=3",
            "--cpu-sbatch",
            "--partition=cpuq",
            "--gpu-sbatch",
            "--partition=gpuq",
            "--dry-run",
            "--set",
            &run_set,
        ],
        work,
    );
    assert!(dry.status.success(), "dry run with per-stage resources\n{}", text(&dry));
    let dry_out = String::from_utf8_lossy(&dry.stdout).to_string();
    let lines: Vec<&str> = dry_out.lines().filter(|l| l.starts_with("sbatch ")).collect();
    assert_eq!(lines.len(), 5, "{dry_out}");
    for (l, (ntasks, class)) in lines.iter().zip([
        (Some("--ntasks=3 "), "--partition=cpuq "),
        (Some("--ntasks=2 "), "--partition=gpuq "),
        (Some("--ntasks=2 "), "--partition=gpuq "),
        (Some("--ntasks=2 "), "--partition=gpuq "),
        (None, "--partition=cpuq "),
    ]) {
        assert_eq!(l.contains("--ntasks="), ntasks.is_some(), "{l}\n{dry_out}");
        assert!(ntasks.is_none_or(|n| l.contains(n)) && l.contains(class), "{l}\n{dry_out}");
        assert_eq!(l.matches("--partition=").count(), 1, "{l}\n{dry_out}");
    }
    let bad = cl.output(&submit, &[&cfg, "--stage-ntasks", "report=2", "--dry-run", "--set", &run_set], work);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--stage-ntasks report=2"), "{}", text(&bad));
    let q = cl.output("squeue", &["-h"], work);
    assert!(String::from_utf8_lossy(&q.stdout).trim().is_empty(), "the dry run submitted jobs:\n{}", text(&q));

    // The real submission (2 ranks per stage given per stage, over --ntasks 1; every job a CPU
    // job, marked by --cpu-sbatch), and a sweep chained after both trainings.
    let t0 = Instant::now();
    let out = cl.output(
        &submit,
        &[
            &cfg,
            "--cpu",
            "--ntasks",
            "1",
            "--stage-ntasks",
            "generate=2",
            "--stage-ntasks",
            "train=2",
            "--stage-ntasks",
            "rollout=2",
            "--cpu-sbatch",
            "--comment=cpu-class",
            "--gpu-sbatch",
            "--comment=gpu-class",
            "--time",
            "10",
            "--set",
            &run_set,
        ],
        work,
    );
    assert!(out.status.success(), "submit-pipeline.sh\n{}", text(&out));
    let id = ids(&out);
    let stages = ["generate", "train-emulator", "train-thermalizer", "rollout", "report"];
    for s in stages {
        assert!(id.contains_key(s), "no job id for {s}\n{}", text(&out));
    }
    let after = format!("{}:{}", id["train-emulator"], id["train-thermalizer"]);
    let sweep = cl.output(
        &format!("{ROOT}/jobs/sweep-rollout.sh"),
        &[&cfg, "--s-init", "2,3", "--s-stop", "1", "--cpu", "--ntasks", "2", "--after", &after, "--set", &run_set],
        work,
    );
    assert!(sweep.status.success(), "sweep-rollout.sh\n{}", text(&sweep));
    let sweep_id = ids(&sweep).remove("sweep").unwrap_or_else(|| panic!("no sweep id\n{}", text(&sweep)));

    // The whole pipeline in one job: slurm/pipeline-cpu.sbatch (`thermalizer pipeline`).
    let one = work.join("one-job");
    let one_set = format!("run.dir={}", one.display());
    let one_log = format!("--output={}", work.join("pipeline-%j.out").display());
    let script = format!("{ROOT}/slurm/pipeline-cpu.sbatch");
    let out = cl.output("sbatch", &["--parsable", "-n", "2", &one_log, &script, &cfg, "--set", &one_set], work);
    assert!(out.status.success(), "sbatch pipeline-cpu.sbatch\n{}", text(&out));
    let one_id = String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap().to_string();

    let all: Vec<&str> = stages.iter().map(|s| id[*s].as_str()).chain([sweep_id.as_str(), one_id.as_str()]).collect();
    cl.wait(&all, Duration::from_secs(400));
    eprintln!("slurm: chained pipeline + 2-point sweep + one-job pipeline done in {:.1} s", t0.elapsed().as_secs_f64());

    let logs = run.join("slurm-logs");
    for s in stages {
        let rec = cl.assert_completed(&id[s], s);
        assert_eq!(rec.get("Comment").map(String::as_str), Some("cpu-class"), "{s}: --cpu-sbatch not applied: {rec:?}");
        let (path, log) = log_of(&logs, &id[s]);
        if s != "report" {
            // srun over PMIx started 2 ranks that form one MPI world of size 2.
            assert!(log.contains("(2 tasks,"), "{}: not a 2-task job\n{log}", path.display());
            assert!(log.contains("[0/2]"), "{}: no log line of a 2-rank MPI world\n{log}", path.display());
        }
    }
    for f in OUTPUTS {
        assert!(run.join(f).is_file(), "missing {}", run.join(f).display());
    }
    cl.assert_completed(&one_id, "pipeline-cpu.sbatch");
    let log = std::fs::read_to_string(work.join(format!("pipeline-{one_id}.out"))).unwrap();
    assert!(log.contains("(2 tasks,") && log.contains("[0/2]"), "pipeline-cpu.sbatch: not a 2-rank job\n{log}");
    for f in OUTPUTS {
        assert!(one.join(f).is_file(), "pipeline-cpu.sbatch: missing {}", one.join(f).display());
    }
    let recs = cl.jobs(&sweep_id);
    assert_eq!(recs.len(), 2, "two array tasks expected: {recs:?}");
    cl.assert_completed(&sweep_id, "sweep");
    for s_init in [2, 3] {
        let d = run.join(format!("sweep/sinit-{s_init}_sstop-1"));
        for f in ["rollout.h5", "report/summary.md"] {
            assert!(d.join(f).is_file(), "missing {}", d.join(f).display());
        }
        let ident =
            File::open(&d.join("rollout.h5"), Access::Serial, false).unwrap().attrs().get_str("identity").unwrap();
        assert!(
            ident.contains(&format!("s_init: {s_init}\n")) && ident.contains("s_stop: 1\n"),
            "{}: not rolled out with s_init {s_init}, s_stop 1:\n{ident}",
            d.display()
        );
    }

    // A failing first stage: its dependents are cancelled, not left pending for ever.
    let bad = work.join("not-a-dir");
    std::fs::write(&bad, "a file where run.dir should be").unwrap();
    let bad_set = format!("run.dir={}", bad.display());
    let bad_logs = work.join("bad-logs");
    let out = cl.output(
        &submit,
        &[&cfg, "--cpu", "--ntasks", "2", "--log-dir", bad_logs.to_str().unwrap(), "--set", &bad_set],
        work,
    );
    assert!(out.status.success(), "submit-pipeline.sh\n{}", text(&out));
    let id = ids(&out);
    let all: Vec<&str> = stages.iter().map(|s| id[*s].as_str()).collect();
    cl.wait(&all, Duration::from_secs(60));
    let g = &cl.jobs(&id["generate"])[0];
    assert_eq!((g["JobState"].as_str(), g["ExitCode"].as_str()), ("FAILED", "2:0"), "{g:?}");
    for s in &stages[1..] {
        let r = &cl.jobs(&id[*s])[0];
        assert_eq!(r["JobState"], "CANCELLED", "{s} after a failed generate: {r:?}");
    }
}

fn usr1_requeue(cl: &Cluster, work: &Path) {
    // 8 members at 64², 200 solver steps per stored state, as many stored states as make the
    // run last about 50 s on 2 ranks of this machine: USR1 (-t 1, @30) arrives 12-26 s after
    // each start, so a run that ends sooner is never interrupted, and the uninterrupted
    // reference must end well inside its 120 s timeout. A probe of 56 states measures the speed
    // (280 states took ~50 s on the project's 2-core VM).
    let cfg = tiny_train();
    let set_args = |dir: &Path, samples: usize| -> Vec<String> {
        let mut a = vec!["--set".to_string(), format!("run.dir={}", dir.display())];
        let samples = format!("generate.samples={samples}");
        for s in [
            "generate.members=8",
            "generate.steps_per_sample=200",
            samples.as_str(),
            "system.grid=64",
            "run.checkpoint_interval=600",
            "run.log_interval=5",
        ] {
            a.extend(["--set".to_string(), s.to_string()]);
        }
        a
    };
    let generate_args = |dir: &Path, samples: usize| {
        let mut args = vec!["generate".to_string(), "--config".into(), cfg.clone()];
        args.extend(set_args(dir, samples));
        args
    };
    let t0 = Instant::now();
    let probe = generate_args(&work.join("probe"), 56);
    assert_ok(&run(2, &probe.iter().map(String::as_str).collect::<Vec<_>>()));
    let probe_s = t0.elapsed().as_secs_f64();
    let samples = ((56.0 * 50.0 / probe_s) as usize).clamp(112, 2000);
    eprintln!("slurm: a 56-state probe took {probe_s:.1} s: the USR1 run stores {samples} states");

    // The uninterrupted reference, under mpirun on 2 ranks.
    let t0 = Instant::now();
    let reference = work.join("reference");
    let args = generate_args(&reference, samples);
    assert_ok(&run(2, &args.iter().map(String::as_str).collect::<Vec<_>>()));
    eprintln!("slurm: uninterrupted generate (mpirun -np 2) took {:.1} s", t0.elapsed().as_secs_f64());

    let t0 = Instant::now();
    let dir = work.join("usr1");
    let log = work.join("usr1-%j.out");
    let mut sb = vec![
        "--parsable".to_string(),
        "-n".into(),
        "2".into(),
        "-t".into(),
        "1".into(),
        "--signal=B:USR1@30".into(),
        format!("--output={}", log.display()),
        format!("{ROOT}/slurm/generate.sbatch"),
        cfg.clone(),
    ];
    sb.extend(set_args(&dir, samples));
    let out = cl.output("sbatch", &sb.iter().map(String::as_str).collect::<Vec<_>>(), work);
    assert!(out.status.success(), "sbatch {sb:?}\n{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap().to_string();
    cl.wait(&[&id], Duration::from_secs(400));
    let rec = cl.assert_completed(&id, "generate with USR1");
    let restarts: u32 = rec["Restarts"].parse().unwrap();
    let logtext = std::fs::read_to_string(work.join(format!("usr1-{id}.out"))).unwrap();
    eprintln!(
        "slurm: generate with USR1 at the time limit done in {:.1} s, {restarts} restart(s)",
        t0.elapsed().as_secs_f64()
    );
    assert!(restarts >= 1, "job {id} was not requeued: {rec:?}\n{logtext}");
    assert!(logtext.contains("USR1 (time limit near)"), "no USR1 in the log\n{logtext}");
    assert!(
        logtext.contains(&format!("checkpointed before the time limit: requeueing job {id}")),
        "no requeue message in the log\n{logtext}"
    );
    assert!(logtext.contains("exit code 75"), "the step did not exit 75\n{logtext}");
    assert!(logtext.contains("[0/2]"), "not a 2-rank job\n{logtext}");
    let (a, b) = (bits(&reference.join("trajectories.h5")), bits(&dir.join("trajectories.h5")));
    assert!(a.1 == b.1, "time differs between the uninterrupted and the requeued run");
    assert!(a.0 == b.0, "vorticity differs between the uninterrupted and the requeued run");
}

/// `thermalizer generate` of tiny.yaml launched by Open MPI's mpirun inside an allocation, not
/// by srun: plain (`salloc -n 2 mpirun -np 2`), and from inside a job step of one task, as the
/// ranks of an srun-started mpirun daemon see it (`SLURM_NTASKS` = 1 < 2 ranks).
fn mpirun_in_allocation(cl: &Cluster, work: &Path) {
    let tiny = format!("{ROOT}/tests/configs/tiny.yaml");
    for (name, launcher) in [
        ("salloc", &["salloc", "-n", "2", "mpirun", "-np", "2"][..]),
        ("salloc-srun", &["salloc", "-n", "2", "srun", "-n", "1", "mpirun", "--oversubscribe", "-np", "2"][..]),
    ] {
        let dir = work.join(format!("mpirun-{name}"));
        let set = format!("run.dir={}", dir.display());
        let mut args = launcher[1..].to_vec();
        args.extend([bin(), "generate", "--config", &tiny, "--set", &set]);
        let out = cl.output(launcher[0], &args, work);
        assert!(out.status.success(), "{}\n{}", args.join(" "), text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("[0/2]"), "not a 2-rank world\n{}", text(&out));
        assert!(dir.join("trajectories.h5").is_file(), "{}: no trajectories.h5\n{}", args.join(" "), text(&out));
    }
}

#[test]
fn slurm_cluster() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let work = scratch("slurm");
    let cluster = Cluster::start();
    usr1_requeue(&cluster, &work);
    mpirun_in_allocation(&cluster, &work);
    pipeline_and_sweep(&cluster, &work);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("slurm: test done in {:.1} s", t0.elapsed().as_secs_f64());
}
