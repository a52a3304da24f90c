//! The `thermalizer` command: parse the command line, start logging and MPI, dispatch to one
//! stage. Nothing else lives here.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use thermalizer::config::rollout::Precision;
use thermalizer::config::{validate, Config};
use thermalizer::error::Error;
use thermalizer::parallel::signals::StopFlag;
use thermalizer::parallel::{self, World};
use thermalizer::stages::command::{self, exit_status};
use thermalizer::stages::generate::Plan;
use thermalizer::stages::models;
use thermalizer::stages::train::{choose_device, Model, TrainOptions};
use thermalizer::store::{h5, trajectories};
use thermalizer::train::checkpoint::StoredAs;
use thermalizer::train::reduce::Allreduce;

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
        #[arg(value_parser = ["emulator", "thermalizer"])]
        model: String,
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
        #[arg(long, num_args = 1.., default_values = ["f32"], value_parser = parse_precision)]
        precisions: Vec<Precision>,
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
        #[arg(long, num_args = 1.., default_values = ["f64", "f32"])]
        precision: Vec<String>,
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
        #[arg(long, default_value = "kolmogorov")]
        system: String,
        /// QG small scales: exponential (pyqg's filter) or two_thirds (the 2/3 rule, the
        /// paper's data; only the band's columns are transformed). Kolmogorov ignores it.
        #[arg(long, default_value = "exponential")]
        dealias: String,
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
            Ok(config) => {
                let which = if model == "emulator" { Model::Emulator } else { Model::Thermalizer };
                command::train(&config, world, &StopFlag::install(), which, &train.into())
            }
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
            Ok(config) => match models::check_shipped(&config) {
                Err(e) => exit_status(world, e),
                Ok(shipped) => {
                    if world.is_root() {
                        print_plan(&config, world.size());
                        if let Some(dir) = shipped {
                            println!("shipped models:     {} (they load into these models)", dir.display());
                        }
                    }
                    0
                }
            },
        },
        Command::Info => {
            if world.is_root() {
                print_info(world);
            }
            0
        }
        Command::Bench {
            what:
                BenchCommand::Rollout { models, batches, passes, levels, precisions, threads, seconds, repeats, device },
        } => {
            if !world.is_root() {
                return 0;
            }
            match choose_device(device.as_deref()) {
                Ok(d) => {
                    let pieces = (batches.as_slice(), passes, levels, precisions.as_slice());
                    bench_rollout(world, models.as_deref(), pieces, threads, (seconds, repeats), d)
                }
                Err(e) => exit_status(world, e),
            }
        }
        Command::Bench { what: BenchCommand::Train { models, threads, seconds, repeats, json, device } } => {
            match choose_device(device.as_deref()) {
                Ok(d) => bench_train(world, models.as_deref(), &threads, (seconds, repeats), json.as_deref(), d),
                Err(e) => exit_status(world, e),
            }
        }
        Command::Bench {
            what:
                BenchCommand::Solver { grids, precision, seconds, repeats, viscosity, system, dealias, json, device, batch },
        } => {
            if !world.is_root() {
                return 0;
            }
            let opts = BenchOptions { seconds, repeats, viscosity, system, dealias };
            let code = bench_solver(&grids, &precision, &opts, json.as_deref());
            match device.map(|d| choose_device(Some(&d))) {
                None => code,
                Some(Err(e)) => exit_status(world, e),
                Some(Ok(d)) if code == 0 => bench_batched_solver(&grids, &precision, &opts, (batch, d)),
                Some(Ok(_)) => code,
            }
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

fn print_plan(c: &Config, ranks: usize) {
    let plan = Plan::of(c);
    println!("# resolved config\n{}", c.to_yaml().trim_end());
    println!("# planned work ({ranks} rank(s))");
    println!("members:            {}", plan.members);
    println!(
        "solver steps:       {} ({} spin-up, then {} stored states every {} steps)",
        plan.total_steps, plan.spinup_steps, plan.samples, c.generate.steps_per_sample
    );
    println!("simulated time:     {:.4}", plan.total_steps as f64 * c.system.dt);
    println!("member-steps:       {}", plan.total_steps * plan.members as u64);
    println!("grid:               {}² solver → {}² stored ({:?})", c.system.grid, c.output_grid(), c.system.precision);
    println!(
        "output:             {} ({:.1} MB)",
        c.run.dir.join("trajectories.h5").display(),
        plan.output_bytes as f64 / 1e6
    );
    println!("memory per rank:    ~{:.1} MB", Plan::memory_per_rank(c, ranks) as f64 / 1e6);
    println!("CFL estimate:       {:.3}", validate::cfl_estimate(c));
    let (channels, image) = (c.layers() as i64, c.output_grid() as i64);
    let count = |build: &dyn Fn(&tch::nn::Path)| {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        build(&vs.root());
        thermalizer::nn::parameter_count(&vs)
    };
    let (e, t) = (c.emulator(), c.thermalizer());
    let emulator = count(&|p| drop(thermalizer::nn::unet::Unet::new(p, &e.model.shape(channels))));
    let therm = count(&|p| {
        drop(thermalizer::nn::classifier::Thermalizer::new(p, &t.model.shape(channels), image, t.levels as i64))
    });
    println!(
        "emulator:           {emulator} parameters (hidden {}, dim_mults {:?})",
        e.model.hidden, e.model.dim_mults
    );
    println!("thermalizer:        {therm} parameters (UNet + classifier head, {} levels)", t.levels);
}

fn print_info(world: &World) {
    println!("thermalizer   {}", trajectories::VERSION);
    println!("git revision  {}", trajectories::GIT_REVISION);
    println!(
        "MPI           {} ({} rank(s))",
        mpi::environment::library_version().unwrap_or_default().trim(),
        world.size()
    );
    println!("HDF5          {} (parallel, MPI-IO)", h5::library_version());
    println!("libtorch      {}", env!("THERMALIZER_LIBTORCH_VERSION"));
    let cuda = tch::Cuda::is_available();
    println!(
        "CUDA          {}",
        if cuda { format!("available, {} device(s)", tch::Cuda::device_count()) } else { "not available".to_string() }
    );
    println!("threads       {} core(s) visible", std::thread::available_parallelism().map_or(1, |v| v.get()));
}

fn bench_rollout(
    world: &World,
    models: Option<&str>,
    (batches, passes, levels, precisions): (&[i64], usize, i64, &[Precision]),
    threads: usize,
    timing: (f64, usize),
    device: tch::Device,
) -> i32 {
    use thermalizer::bench::rollout::costs;
    let models = match parse_bench_models(world, models) {
        Ok(m) => m,
        Err(code) => return code,
    };
    tch::set_num_threads(threads as i32);
    println!("# thermalizer bench rollout: ms per member-step on {device:?}, {threads} thread(s), {levels} levels; thermalized = emulator + classifier + {passes} denoising passes, thermalized/s its member-steps per second");
    println!(
        "{:>12} {:>9} {:>6} {:>12} {:>12} {:>12} {:>16} {:>10} {:>16}",
        "model", "precision", "batch", "emulator", "classifier", "denoise", "thermalized", "÷emulator", "thermalized/s"
    );
    for m in &models {
        let shape = thermalizer::nn::unet::UnetShape {
            in_channels: m.channels,
            out_channels: m.channels,
            hidden: m.hidden,
            dim_mults: m.dim_mults.clone(),
            blocks: m.blocks,
        };
        for (&p, &b) in precisions.iter().flat_map(|p| batches.iter().map(move |b| (p, b))) {
            let r = costs(&shape, (m.grid, levels, b), p.kind(), timing.0, timing.1, device);
            let therm = r.emulator_ms + r.classifier_ms + passes as f64 * r.denoise_ms;
            println!(
                "{:>12} {:>9} {:>6} {:>12.3} {:>12.3} {:>12.3} {:>16.3} {:>10.2} {:>16.1}",
                m.name,
                p.name(),
                b,
                r.emulator_ms,
                r.classifier_ms,
                r.denoise_ms,
                therm,
                therm / r.emulator_ms,
                1e3 / therm
            );
        }
    }
    0
}

/// A `--precisions` value: a `rollout.inference_precision`.
fn parse_precision(s: &str) -> Result<Precision, Error> {
    [Precision::F32, Precision::Bf16, Precision::F16]
        .into_iter()
        .find(|p| p.name() == s)
        .ok_or_else(|| Error::Input(format!("{s}: expected f32, bf16 or f16")))
}

/// The `--models` JSON of the benchmarks (default: the built-in list), checked against its grid.
fn parse_bench_models(world: &World, models: Option<&str>) -> Result<Vec<thermalizer::bench::train::BenchModel>, i32> {
    use thermalizer::bench::train::{default_models, BenchModel};
    let models: Vec<BenchModel> = match models {
        None => default_models(),
        Some(text) => match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => return Err(exit_status(world, Error::Input(format!("--models: not a list of models ({e})")))),
        },
    };
    if let Some(m) = models.iter().find(|m| m.dim_mults.is_empty() || m.grid % (1 << (m.dim_mults.len() - 1)) != 0) {
        return Err(exit_status(
            world,
            Error::Input(format!("--models: {} does not fit its {}² grid", m.name, m.grid)),
        ));
    }
    Ok(models)
}

fn bench_train(
    world: &World,
    models: Option<&str>,
    threads: &[usize],
    timing: (f64, usize),
    json: Option<&std::path::Path>,
    device: tch::Device,
) -> i32 {
    use thermalizer::bench::train::update_time;
    let models = match parse_bench_models(world, models) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let root = world.is_root();
    if root {
        println!(
            "# thermalizer bench train: one emulator update (fwd+bwd+allreduce+AdamW) on {device:?}, {} rank(s)",
            world.size()
        );
        println!(
            "{:>12} {:>11} {:>8} {:>6} {:>7} {:>12} {:>12}",
            "model", "parameters", "threads", "ranks", "batch", "ms/update", "samples/s"
        );
    }
    let mut rows = Vec::new();
    for m in &models {
        for &t in threads {
            let r = update_time(m, t, timing, world, device);
            if root {
                println!(
                    "{:>12} {:>11} {:>8} {:>6} {:>7} {:>12.2} {:>12.2}",
                    m.name,
                    r.parameters,
                    t,
                    world.size(),
                    m.batch,
                    r.ms_per_update,
                    r.samples_per_s
                );
            }
            rows.push(serde_json::json!({
                "code": "thermalizer", "model": m.name, "threads": t, "ranks": world.size(), "batch": m.batch,
                "parameters": r.parameters, "ms_per_update": r.ms_per_update, "samples_per_s": r.samples_per_s,
            }));
        }
    }
    if let (Some(path), true) = (json, root) {
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n") {
            eprintln!("error: --json {}: {e}", path.display());
            return 1;
        }
    }
    0
}

struct BenchOptions {
    seconds: f64,
    repeats: usize,
    viscosity: f64,
    system: String,
    dealias: String,
}

/// The table of the batched libtorch solver (`bench solver --device`), after [`bench_solver`]
/// has accepted the options.
fn bench_batched_solver(grids: &[usize], precisions: &[String], o: &BenchOptions, run: (usize, tch::Device)) -> i32 {
    use thermalizer::bench::{batched, batched_qg};
    let qg = (o.system == "qg").then(|| small_scales(&o.dealias)).flatten();
    let what = if qg.is_some() {
        format!("two-layer QG model ({} dealiasing)", o.dealias)
    } else {
        "Kolmogorov solver".into()
    };
    println!("# batched libtorch {what} on {:?}, {} members per step", run.1, run.0);
    println!(
        "{:>6} {:>5} {:>18} {:>16} {:>18}",
        "grid", "prec", "ms/member-step", "member-steps/s", "vs native (20 st.)"
    );
    for &n in grids {
        for p in precisions {
            let r = match (qg, p == "f32") {
                (Some(s), true) => batched_qg::<f32>(n, s, run, o.seconds, o.repeats),
                (Some(s), false) => batched_qg::<f64>(n, s, run, o.seconds, o.repeats),
                (None, true) => batched::<f32>(n, o.viscosity, run, o.seconds, o.repeats),
                (None, false) => batched::<f64>(n, o.viscosity, run, o.seconds, o.repeats),
            };
            println!(
                "{:>6} {:>5} {:>18.4} {:>16.1} {:>18.2e}",
                r.grid,
                r.precision,
                r.ms_per_member_step,
                1e3 / r.ms_per_member_step,
                r.vs_native
            );
        }
    }
    0
}

/// The QG model's small-scale treatment named as the config's `system.dealias`.
fn small_scales(dealias: &str) -> Option<thermalizer::solver::qg::SmallScales> {
    serde_saphyr::from_str::<thermalizer::config::Dealias>(dealias).ok().map(|d| d.small_scales())
}

fn bench_solver(grids: &[usize], precisions: &[String], o: &BenchOptions, json: Option<&std::path::Path>) -> i32 {
    use thermalizer::bench;
    let Some(small_scales) = small_scales(&o.dealias) else {
        eprintln!("error: --dealias {}: use exponential or two_thirds", o.dealias);
        return 2;
    };
    let what = match o.system.as_str() {
        "kolmogorov" => "one Kolmogorov trajectory, CN-RK4".to_string(),
        "qg" => format!("one two-layer QG trajectory (eddy, {} dealiasing), AB3", o.dealias),
        other => {
            eprintln!("error: --system {other}: use kolmogorov or qg");
            return 2;
        }
    };
    println!("# thermalizer bench solver: {what}, 1 thread");
    println!(
        "{:>6} {:>5} {:>12} {:>16} {:>12} {:>12} {:>10}",
        "grid", "prec", "ms/step", "member-steps/s", "fft µs", "floor ms", "÷floor"
    );
    let mut rows = Vec::new();
    for &n in grids {
        if n < 8 || n % 2 != 0 {
            eprintln!("error: --grids {n}: grids must be even and >= 8");
            return 2;
        }
        for p in precisions {
            let r = match (o.system.as_str(), p.as_str()) {
                ("qg", "f64") => bench::qg::<f64>(n, small_scales, o.seconds, o.repeats),
                ("qg", "f32") => bench::qg::<f32>(n, small_scales, o.seconds, o.repeats),
                (_, "f64") => bench::solver::<f64>(n, o.viscosity, o.seconds, o.repeats),
                (_, "f32") => bench::solver::<f32>(n, o.viscosity, o.seconds, o.repeats),
                (_, other) => {
                    eprintln!("error: --precision {other}: use f64 or f32");
                    return 2;
                }
            };
            println!(
                "{:>6} {:>5} {:>12.4} {:>16.1} {:>12.2} {:>12.4} {:>10.2}",
                r.grid,
                r.precision,
                r.ms_per_step,
                1e3 / r.ms_per_step,
                r.fft_us,
                r.floor_ms,
                r.ms_per_step / r.floor_ms
            );
            // `dealias` only for QG (the Kolmogorov solver always uses the 2/3 rule).
            let dealias = if o.system == "qg" { format!(",\"dealias\":\"{}\"", o.dealias) } else { String::new() };
            rows.push(format!(
                "{{\"code\":\"thermalizer\",\"grid\":{},\"precision\":\"{}\"{dealias},\"ms_per_step\":{},\"floor_ms\":{},\"fft_us\":{}}}",
                r.grid, r.precision, r.ms_per_step, r.floor_ms, r.fft_us
            ));
        }
    }
    if let Some(path) = json {
        if let Err(e) = std::fs::write(path, format!("[{}]\n", rows.join(",\n"))) {
            eprintln!("error: --json {}: {e}", path.display());
            return 1;
        }
    }
    0
}
