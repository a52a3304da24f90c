//! The `thermalizer` command: parse the command line, start logging and MPI, dispatch to one
//! stage. Nothing else lives here.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use thermalizer::bench::command as bench;
use thermalizer::config::rollout::Precision as InferencePrecision;
use thermalizer::config::{Config, Dealias, Precision, SystemKind};
use thermalizer::parallel::signals::StopFlag;
use thermalizer::parallel::{self, World};
use thermalizer::stages::command::{self, exit_status};
use thermalizer::stages::describe;
use thermalizer::stages::train::{Model, TrainOptions};
use thermalizer::store::h5;
use thermalizer::train::reduce::Allreduce;
use thermalizer::train::weights_file::StoredAs;

#[derive(Parser)]
#[command(
    name = "thermalizer",
    version,
    about = "Stable long-horizon neural emulation of 2D turbulence (Thermalizer) on MPI ranks",
    long_about = "Stable long-horizon neural emulation of 2D turbulence (Thermalizer; Pedersen, Zanna & Bruna, \
ICML 2025).\n\nEvery command runs on all ranks of an MPI job: `mpirun -np 4 thermalizer generate --config run.yaml` \
or `srun thermalizer ...` in a Slurm job; without a launcher it is a job of one rank. One YAML file configures all \
stages; outputs go to its run.dir.\n\nExit status: 0 done, 2 bad input (nothing computed), 75 stopped on a signal \
after a checkpoint (run the same command again to resume), 1 other failures.\n\nLogging: rank 0 logs at info \
level, other ranks warnings only; -v/-q change that, and THERMALIZER_LOG (else RUST_LOG) overrides both with \
env_logger's syntax, e.g. THERMALIZER_LOG=debug or RUST_LOG=thermalizer::rollout=trace.",
    after_help = "Examples:\n  thermalizer validate --config configs/quickstart.yaml\n  \
mpirun -np 2 thermalizer generate --config configs/quickstart.yaml --set generate.members=8\n  \
mpirun -np 2 thermalizer train emulator --config configs/quickstart.yaml\n  \
thermalizer bench solver --grids 64 128 256"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate the ensemble of config `generate.*` and write <run.dir>/trajectories.h5
    /// (collectively, all ranks; resumes from a checkpoint if one exists).
    Generate {
        #[command(flatten)]
        args: ConfigArgs,
        /// Step the members of each rank as one batch with the libtorch solver on this device
        /// (`cuda`, or `cpu` to check it; Kolmogorov only). Default: the native CPU solver.
        #[arg(long)]
        device: Option<String>,
    },
    /// Train the emulator or the thermalizer on <run.dir>/trajectories.h5, data-parallel over all
    /// ranks; checkpoints in <run.dir>/<model>/ (resumes from latest.safetensors if present).
    Train {
        /// `emulator` or `thermalizer`.
        #[arg(value_enum)]
        model: Model,
        #[command(flatten)]
        args: ConfigArgs,
        #[command(flatten)]
        train: TrainArgs,
    },
    /// Rate every stored state of the validation and test splits with the thermalizer's
    /// classifier and write <run.dir>/thermalizer/calibration.json: the levels' counts and the
    /// s_init at rollout.calibration_percentile of the validation states (`rollout.s_init: auto`).
    Calibrate {
        #[command(flatten)]
        args: ConfigArgs,
        /// `cpu` or `cuda` (default: cuda when libtorch sees a GPU).
        #[arg(long)]
        device: Option<String>,
    },
    /// Roll the trained emulator out, alone and thermalized, from test-split states; statistics to
    /// <run.dir>/rollout.h5 (collectively, all ranks; resumes from a checkpoint if one exists).
    Rollout {
        #[command(flatten)]
        args: ConfigArgs,
        /// `cpu` or `cuda` (default: cuda when libtorch sees a GPU).
        #[arg(long)]
        device: Option<String>,
    },
    /// Figures (PNG), summary.md and summary.json from RUN_DIR/rollout.h5 into RUN_DIR/report/,
    /// with the training curves of the models trained in RUN_DIR.
    Report {
        #[command(flatten)]
        run: RunArgs,
        /// Report a rollout still running or interrupted, up to its last checkpoint
        /// (rollout.h5.partial), into RUN_DIR/report-interim/.
        #[arg(long)]
        partial: bool,
        /// Draw only the training curves (RUN_DIR/report/training_<model>.png), e.g. while
        /// training runs.
        #[arg(long, conflicts_with = "partial")]
        training: bool,
    },
    /// Say which stages of a run directory are done, partial (at which step, checkpointed when),
    /// absent or stale (made from other inputs than the stage before it, or from another config
    /// than --config's). Writes nothing.
    Status {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Write the trained models the rollout uses (rollout.weights, rollout.ema) as weights-only
    /// files DIR/emulator.safetensors and DIR/thermalizer.safetensors, which a rollout reads with
    /// `--set rollout.models=DIR` (no training needed), or with `--thermalizer-only` the
    /// thermalizer alone, which a rollout reads with `--set rollout.thermalizer_file=FILE`.
    Export {
        #[command(flatten)]
        args: ConfigArgs,
        /// Output directory [default: <run.dir>/models].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Store float16 instead of float32 (half the size; weights rounded to 11 significant bits).
        #[arg(long)]
        half: bool,
        /// Export the thermalizer only (no emulator needed).
        #[arg(long)]
        thermalizer_only: bool,
    },
    /// Write <run.dir>/trajectories.h5 in The Well's layout, which `the_well.data.WellDataset`
    /// loads: DIR/data/{train,valid,test}/thermalizer_<system>.hdf5 and DIR/stats.yaml (physical
    /// units; members that diverged are dropped and listed). Rank 0 writes.
    ExportWell {
        #[command(flatten)]
        args: ConfigArgs,
        /// Output directory [default: <run.dir>/well].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// The whole method in one command: generate, train emulator, train thermalizer, rollout,
    /// report, on all ranks. Stages whose outputs are finished for this config are skipped, an
    /// interrupted one resumes; stops at the first stage that does not finish (with its status).
    /// `--device` applies to training and rollout; generation uses the native CPU solver.
    Pipeline {
        #[command(flatten)]
        args: ConfigArgs,
        #[command(flatten)]
        train: TrainArgs,
    },
    /// Parse and check a config, print it resolved with the planned work; writes nothing. With
    /// `rollout.models` set, its files are loaded into the configured models as a check.
    Validate(ConfigArgs),
    /// Print versions (thermalizer, git, MPI, HDF5, libtorch) and CUDA availability.
    Info,
    /// Benchmarks that print a table.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Args)]
struct ConfigArgs {
    /// Experiment YAML file.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Override a config key, e.g. --set system.grid=128 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// A run directory, named directly or as the `run.dir` of a config.
#[derive(Args)]
struct RunArgs {
    /// The run directory (a config's run.dir).
    #[arg(value_name = "RUN_DIR", required_unless_present = "config")]
    run_dir: Option<PathBuf>,
    /// Or the experiment YAML file whose run.dir to use.
    #[arg(short, long, value_name = "FILE", conflicts_with = "run_dir")]
    config: Option<PathBuf>,
    /// Override a config key, with --config (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "config")]
    set: Vec<String>,
}

/// Options of the training stages (also taken by `pipeline`).
#[derive(Args)]
struct TrainArgs {
    /// `cpu` or `cuda` (default: cuda when libtorch sees a GPU; one rank per GPU).
    #[arg(long)]
    device: Option<String>,
    /// Continue a checkpoint written under a different config.
    #[arg(long)]
    allow_config_change: bool,
    /// Gradient sum across ranks: `auto` (NCCL on GPUs when every rank can join it, else MPI),
    /// `nccl` (or an error) or `mpi` (through host memory, any device).
    #[arg(long, default_value = "auto", value_parser = Allreduce::parse)]
    allreduce: Allreduce,
}

impl From<TrainArgs> for TrainOptions {
    fn from(a: TrainArgs) -> TrainOptions {
        TrainOptions { device: a.device, allow_config_change: a.allow_config_change, allreduce: a.allreduce }
    }
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Inference cost per member-step: emulator step, classifier pass, denoising pass, and the
    /// cost of a thermalized step relative to the emulator alone, at several batch sizes.
    Rollout {
        /// JSON list of models as for `bench train` (their `batch` is ignored; default: the
        /// quickstart models on 64²).
        #[arg(long)]
        models: Option<String>,
        /// Members stepped together.
        #[arg(long, num_args = 1.., default_values_t = [1i64, 4, 16, 64])]
        batches: Vec<i64>,
        /// Denoising passes assumed for the thermalized-step cost ratio.
        #[arg(long, default_value_t = 6)]
        passes: usize,
        /// Diffusion levels (classes of the classifier head).
        #[arg(long, default_value_t = 1000)]
        levels: i64,
        /// Precisions the networks run in, as `rollout.inference_precision` (f32, bf16, f16).
        #[arg(long, value_enum, num_args = 1.., default_values = ["f32"])]
        precisions: Vec<InferencePrecision>,
        /// Threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Seconds per timed block.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Timed blocks (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// `cpu` or `cuda` (default: cuda when libtorch sees a GPU).
        #[arg(long)]
        device: Option<String>,
        /// Also write the rows as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Samples/s of one emulator training update (forward, backward, allreduce, AdamW) on random
    /// data; under mpirun each rank trains its own batch (weak scaling).
    Train {
        /// JSON list of {"name","hidden","dim_mults","blocks","channels","grid","batch"}
        /// (default: the quickstart emulator and a 4-level width-32 UNet on 64², batch 32).
        #[arg(long)]
        models: Option<String>,
        /// Threads per rank.
        #[arg(long, num_args = 1.., default_values_t = [1usize, 2])]
        threads: Vec<usize>,
        /// Seconds per timed block.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Timed blocks (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Also write the rows as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// `cpu` or `cuda` (default: cuda when libtorch sees a GPU; one rank per GPU).
        #[arg(long)]
        device: Option<String>,
    },
    /// Time per step of the Kolmogorov solver on one core at several grids, beside the FFT floor.
    Solver {
        /// Grid sizes.
        #[arg(long, num_args = 1.., default_values_t = [64usize, 128, 256, 512])]
        grids: Vec<usize>,
        /// Precisions (f64, f32).
        #[arg(long, value_enum, num_args = 1.., default_values = ["f64", "f32"])]
        precision: Vec<Precision>,
        /// Seconds per timed block.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Timed blocks (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Viscosity of the benchmarked Kolmogorov flow (cost does not depend on it).
        #[arg(long, default_value_t = 1e-3)]
        viscosity: f64,
        /// System: kolmogorov or qg (pyqg's eddy configuration).
        #[arg(long, value_enum, default_value = "kolmogorov")]
        system: SystemKind,
        /// QG small scales: exponential (pyqg's filter) or two_thirds (the 2/3 rule, the
        /// paper's data; only the band's columns are transformed). Kolmogorov ignores it.
        #[arg(long, value_enum, default_value = "exponential")]
        dealias: Dealias,
        /// Also time the batched libtorch Kolmogorov solver on this device (`cpu` or `cuda`)
        /// and check it against the native solver.
        #[arg(long)]
        device: Option<String>,
        /// Members stepped together by the batched solver.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Also write the rows as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let universe = match mpi::initialize() {
        Some(u) => u,
        None => {
            eprintln!("error: MPI could not be initialised");
            return ExitCode::from(1);
        }
    };
    let world = World::new(&universe);
    parallel::install_panic_abort(world.size());
    init_logging(&world, cli.verbose, cli.quiet);
    h5::init();
    let code = match parallel::check_slurm(world.size()) {
        Err(e) => exit_status(&world, e),
        Ok(()) => dispatch(cli.command, &world),
    };
    drop(universe);
    ExitCode::from(code as u8)
}

fn dispatch(command: Command, world: &World) -> i32 {
    let load = |args: &ConfigArgs| Config::load(&args.config, &args.set).map_err(|e| exit_status(world, e));
    let resolve = |run: &RunArgs| match (&run.run_dir, &run.config) {
        (Some(dir), _) => Ok((dir.clone(), None)),
        (None, config) => load(&ConfigArgs { config: config.clone().unwrap_or_default(), set: run.set.clone() })
            .map(|c| (c.run.dir.clone(), Some(c))),
    };
    match command {
        Command::Generate { args, device } => match load(&args) {
            Err(code) => code,
            Ok(config) => command::generate(&config, world, &StopFlag::install(), device.as_deref()),
        },
        Command::Train { model, args, train } => match load(&args) {
            Err(code) => code,
            Ok(config) => command::train(&config, world, &StopFlag::install(), model, &train.into()),
        },
        Command::Calibrate { args, device } => match load(&args) {
            Err(code) => code,
            Ok(config) => command::calibrate(&config, world, device.as_deref()),
        },
        Command::Rollout { args, device } => match load(&args) {
            Err(code) => code,
            Ok(config) => command::rollout(&config, world, &StopFlag::install(), device.as_deref()),
        },
        Command::Report { run, partial, training } => match resolve(&run) {
            Err(code) => code,
            Ok((dir, _)) if training => command::training_curves(&dir, world),
            Ok((dir, _)) => command::report(&dir, world, partial).0,
        },
        Command::Status { run } => match resolve(&run) {
            Err(code) => code,
            Ok((dir, config)) => command::status(&dir, config.as_ref(), world),
        },
        Command::Export { args, out, half, thermalizer_only } => match load(&args) {
            Err(code) => code,
            Ok(config) => {
                let out = out.unwrap_or_else(|| config.run.dir.join("models"));
                let how = if half { StoredAs::Float16 } else { StoredAs::Float32 };
                command::export(&config, world, &out, how, thermalizer_only)
            }
        },
        Command::ExportWell { args, out } => match load(&args) {
            Err(code) => code,
            Ok(config) => {
                let out = out.unwrap_or_else(|| config.run.dir.join("well"));
                command::export_well(&config, world, &out)
            }
        },
        Command::Pipeline { args, train } => match load(&args) {
            Err(code) => code,
            Ok(config) => command::pipeline(&config, world, &train.into()),
        },
        Command::Validate(args) => match Config::load(&args.config, &args.set) {
            Err(e) => exit_status(world, e),
            Ok(config) => describe::validate(&config, world),
        },
        Command::Info => describe::info(world),
        Command::Bench { what } => bench(what, world),
    }
}

/// `bench rollout|train|solver`.
fn bench(what: BenchCommand, world: &World) -> i32 {
    match what {
        BenchCommand::Rollout {
            models,
            batches,
            passes,
            levels,
            precisions,
            threads,
            seconds,
            repeats,
            device,
            json,
        } => {
            let o = bench::RolloutOptions {
                models: models.as_deref(),
                batches: &batches,
                passes,
                levels,
                precisions: &precisions,
                threads,
                timing: (seconds, repeats),
                device: device.as_deref(),
                json: json.as_deref(),
            };
            bench::rollout(world, &o)
        }
        BenchCommand::Train { models, threads, seconds, repeats, json, device } => {
            let o = bench::TrainOptions {
                models: models.as_deref(),
                threads: &threads,
                timing: (seconds, repeats),
                json: json.as_deref(),
                device: device.as_deref(),
            };
            bench::train(world, &o)
        }
        BenchCommand::Solver {
            grids,
            precision,
            seconds,
            repeats,
            viscosity,
            system,
            dealias,
            device,
            batch,
            json,
        } => {
            let o = bench::SolverOptions {
                grids: &grids,
                precisions: &precision,
                timing: (seconds, repeats),
                viscosity,
                system,
                dealias,
                device: device.as_deref(),
                batch,
                json: json.as_deref(),
            };
            bench::solver(world, &o)
        }
    }
}

fn init_logging(world: &World, verbose: u8, quiet: bool) {
    let level = match (world.is_root(), quiet, verbose) {
        (_, true, _) | (false, _, 0) => log::LevelFilter::Warn,
        (_, _, 0) => log::LevelFilter::Info,
        (_, _, 1) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let (rank, size) = (world.rank(), world.size());
    // THERMALIZER_LOG first, then the Rust-wide RUST_LOG (env_logger's syntax: `debug`,
    // `thermalizer::rollout=trace`); either overrides -q/-v.
    let filters = std::env::var("THERMALIZER_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_default();
    env_logger::Builder::new()
        .filter_level(level)
        .parse_filters(&filters)
        .format(move |buf, record| {
            writeln!(buf, "{} {:<5} [{rank}/{size}] {}", buf.timestamp_seconds(), record.level(), record.args())
        })
        .init();
}
