//! What a config plans and what this build has: `thermalizer validate` and `thermalizer info`.
//! Rank 0 prints; nothing is computed or written.

use super::command::exit_status;
use super::generate::Plan;
use super::models;
use crate::config::{validate, Config};
use crate::parallel::World;
use crate::store::resume::StageFiles;
use crate::store::{h5, trajectories};

/// `thermalizer validate`: the config loaded (every key checked), shipped models checked against
/// it, and the plan printed.
pub fn validate(config: &Config, world: &World) -> i32 {
    match models::check_shipped(config) {
        Err(e) => exit_status(world, e),
        Ok(shipped) => {
            if world.is_root() {
                print_plan(config, world.size());
                if let Some(dir) = shipped {
                    println!("shipped models:     {} (they load into these models)", dir.display());
                }
            }
            0
        }
    }
}

/// The resolved config and the work it plans: steps, output size, memory per rank, CFL and
/// model sizes.
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
        StageFiles::generate(&c.run.dir).output.display(),
        plan.output_bytes as f64 / 1e6
    );
    println!("memory per rank:    ~{:.1} MB", Plan::memory_per_rank(c, ranks) as f64 / 1e6);
    println!("CFL estimate:       {:.3}", validate::cfl_estimate(c));
    let (channels, image) = (c.layers() as i64, c.output_grid() as i64);
    let count = |build: &dyn Fn(&tch::nn::Path)| {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        build(&vs.root());
        crate::nn::parameter_count(&vs)
    };
    let (e, t) = (c.emulator(), c.thermalizer());
    let emulator = count(&|p| drop(crate::nn::unet::Unet::new(p, &e.model.shape(channels))));
    let therm =
        count(&|p| drop(crate::nn::classifier::Thermalizer::new(p, &t.model.shape(channels), image, t.levels as i64)));
    println!(
        "emulator:           {emulator} parameters (hidden {}, dim_mults {:?})",
        e.model.hidden, e.model.dim_mults
    );
    println!("thermalizer:        {therm} parameters (UNet + classifier head, {} levels)", t.levels);
}

/// `thermalizer info` (rank 0): the versions of the build's MPI, HDF5 and libtorch, and what
/// it sees of CUDA and the cores.
pub fn info(world: &World) -> i32 {
    if !world.is_root() {
        return 0;
    }
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
    0
}
