//! The `train emulator` and `train thermalizer` stages: build the model from the config, open
//! the trajectories, and hand both to the shared training loop.

use std::path::PathBuf;

use tch::nn::VarStore;
use tch::Device;

use crate::config::{Config, Stage};
use crate::error::{Error, Result};
use crate::nn::classifier::Thermalizer;
use crate::nn::diffusion::Schedule;
use crate::nn::unet::Unet;
use crate::parallel::signals::StopFlag;
use crate::parallel::{node_local_rank, World};
use crate::store::resume::{Outcome, StageFiles};
use crate::store::trajectories::Trajectories;
use crate::train::data::{self, Samples};
use crate::train::emulator::EmulatorTask;
use crate::train::reduce::{self, Allreduce};
use crate::train::task::{Setup, Task};
use crate::train::thermalizer::ThermalizerTask;
use crate::train::trainer::{self, Session, Trained};

/// Which model to train.
#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub enum Model {
    Emulator,
    Thermalizer,
}

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::Emulator => "emulator",
            Model::Thermalizer => "thermalizer",
        }
    }
}

/// Command-line options of `train`.
pub struct TrainOptions {
    /// `cpu`, `cuda`, or `None` for CUDA when available.
    pub device: Option<String>,
    pub allow_config_change: bool,
    /// The transport of the gradient sum.
    pub allreduce: Allreduce,
}

/// The device of this rank: `cuda` takes GPU (node-local rank mod GPUs) — one rank per GPU. The
/// node-local rank comes from MPI ([`node_local_rank`]), so the binding is the same under
/// mpirun, srun, MPICH's or Cray's launchers.
pub fn choose_device(requested: Option<&str>) -> Result<Device> {
    let cuda = tch::Cuda::is_available();
    let (local, on_node) = node_local_rank();
    let device = match requested {
        Some("cpu") => Device::Cpu,
        Some("cuda") if !cuda => {
            return Err(Error::Input("--device cuda: CUDA is not available to libtorch on this machine".into()))
        }
        Some("cuda") | None if cuda => Device::Cuda(local % tch::Cuda::device_count().max(1) as usize),
        None => Device::Cpu,
        Some(other) => return Err(Error::Input(format!("--device {other}: use cpu or cuda"))),
    };
    log::debug!("node-local rank {local} of {on_node}: device {device:?}");
    Ok(device)
}

/// Refuses a config whose training windows need more stored states per member than `data` holds
/// (a constraint between two stages, checked here rather than when `generate` loads the config).
fn fits_the_file(c: &Config, model: Model, data: &Trajectories) -> Result<()> {
    let (file, samples) = (data.path().display(), data.samples);
    let (key, value, why) = match model {
        Model::Emulator => {
            let n = c.emulator().max_rollout;
            ("emulator.max_rollout", n, format!("a training window holds max_rollout + 1 = {} stored states", n + 1))
        }
        Model::Thermalizer => {
            let n = c.thermalizer().skip_samples;
            ("thermalizer.skip_samples", n, format!("skipping {n} stored states leaves none"))
        }
    };
    if value < samples {
        return Ok(());
    }
    Err(Error::Input(format!(
        "{key} = {value}: {why}, but {file} has {samples} per member (set {key} below {samples})"
    )))
}

/// Trains `model` with the config's settings; the checkpoints go to `<run.dir>/<model>/`.
pub fn run(c: &Config, world: &World, stop: &StopFlag, model: Model, opts: &TrainOptions) -> Result<Outcome<Trained>> {
    let device = choose_device(opts.device.as_deref())?;
    opts.allreduce.check(device)?;
    tch::set_num_threads(c.threads_per_rank(world.size()) as i32);
    let path: PathBuf = StageFiles::generate(&c.run.dir).output;
    let data = Trajectories::open(&path, c.layers(), c.output_grid())?;
    fits_the_file(c, model, &data)?;
    let scale = data::channel_std(&data, world)?;
    let channels = c.layers() as i64;
    tch::manual_seed(c.run.seed as i64);
    let vs = VarStore::new(device);
    let setup = |training, optimizer, vs, samples| Setup {
        name: model.name(),
        training,
        optimizer,
        vs,
        samples,
        seed: c.run.seed,
    };
    let task: Box<dyn Task> = match model {
        Model::Emulator => {
            let cfg = c.emulator().clone();
            let net = Unet::new(&vs.root(), &cfg.model.shape(channels));
            let samples = Samples::new(data, cfg.max_rollout + 1, 0, scale, device);
            let setup = setup(cfg.training.clone(), cfg.optimizer.clone(), vs, samples);
            Box::new(EmulatorTask { setup, cfg, net })
        }
        Model::Thermalizer => {
            let cfg = c.thermalizer().clone();
            let shape = cfg.model.shape(channels);
            let net = Thermalizer::new(&vs.root(), &shape, c.output_grid() as i64, cfg.levels as i64);
            let samples = Samples::new(data, 1, cfg.skip_samples, scale, device);
            let setup = setup(cfg.training.clone(), cfg.optimizer.clone(), vs, samples);
            Box::new(ThermalizerTask { setup, schedule: Schedule::cosine(cfg.levels), cfg, net })
        }
    };
    let reducer = reduce::for_device(world, device, opts.allreduce)?;
    let stage = match model {
        Model::Emulator => Stage::TrainEmulator,
        Model::Thermalizer => Stage::TrainThermalizer,
    };
    let session = Session {
        world,
        reducer: reducer.as_ref(),
        stop,
        dir: c.run.dir.join(model.name()),
        config_yaml: c.to_yaml(),
        identity: c.identity(stage),
        stage,
        allow_config_change: opts.allow_config_change,
        seed: c.run.seed,
        checkpoint_interval: c.run.checkpoint_interval,
        device,
    };
    trainer::train(task.as_ref(), &session)
}
