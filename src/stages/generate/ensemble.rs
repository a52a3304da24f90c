//! One rank's share of the stage: its members, how they are stepped (on the rank's threads or
//! as one batch on a device), stored, agreed on and checkpointed.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use ndarray::{Array4, ArrayViewMut3};
use rayon::prelude::*;
use tch::Device;

use super::initial::{initial_states, resumed_states};
use super::{layout, Plan};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::parallel::signals::StopFlag;
use crate::parallel::World;
use crate::solver::batched::BatchedDynamics;
use crate::solver::real::Real;
use crate::solver::resize::{DownsampleWork, Downsampler};
use crate::solver::Dynamics;
use crate::store::member_states;
use crate::store::resume::{Decision, Outcome, StageFiles};
use crate::store::trajectories::TrajectoryWriter;

/// Advances the live members of a segment together: a batched solver on a device.
pub(super) trait Segment<S> {
    /// Steps every member not yet diverged from solver step `from` to `to`, marking those whose
    /// CFL number exceeds `max_cfl` (or turns non-finite) at the step it happens.
    fn advance(&self, members: &mut [Member<S>], from: u64, to: u64, max_cfl: f64);
}

impl<S, B: BatchedDynamics<S>> Segment<S> for B {
    fn advance(&self, members: &mut [Member<S>], from: u64, to: u64, max_cfl: f64) {
        let live: Vec<usize> = (0..members.len()).filter(|&i| members[i].diverged_at.is_none()).collect();
        if live.is_empty() {
            return;
        }
        let states: Vec<&S> = live.iter().map(|&i| &members[i].state).collect();
        let mut w = self.load(&states);
        let mut diverged: Vec<Option<u64>> = vec![None; live.len()];
        for s in from..to {
            let cfl = Vec::<f64>::try_from(self.step(&mut w).to_kind(tch::Kind::Double).to_device(Device::Cpu))
                .expect("CFL numbers");
            for (j, &c) in cfl.iter().enumerate() {
                if diverged[j].is_none() && !(c <= max_cfl) {
                    log::warn!("member {} diverged at solver step {s} (CFL number {c:.3})", members[live[j]].index);
                    diverged[j] = Some(s);
                }
            }
        }
        for (j, &i) in live.iter().enumerate() {
            match diverged[j] {
                Some(s) => members[i].diverged_at = Some(s),
                None => members[i].state = self.unload(&w, j as i64),
            }
        }
    }
}

/// One member on this rank.
pub(super) struct Member<S> {
    pub(super) index: usize,
    pub(super) state: S,
    pub(super) diverged_at: Option<u64>,
}

/// The solver of a run: native (`solver`, stepped on the rank's threads), or batched on a device
/// (`batch`, when given: `solver` then still holds the states and their sizes).
pub(super) type Solvers<'a, D, S> = (&'a D, Option<&'a dyn Segment<S>>);

/// The clocks of the sample loop.
pub(super) struct Clock {
    pub(super) start: Instant,
    pub(super) checkpointed: Instant,
    pub(super) logged: Instant,
    /// Solver step at `start` (0, or where a resumed run continues).
    pub(super) first_step: u64,
}

impl Clock {
    pub(super) fn start(first_step: u64) -> Clock {
        let now = Instant::now();
        Clock { start: now, checkpointed: now, logged: now, first_step }
    }
}

/// What the ranks agreed after a segment.
pub(super) struct Agreed {
    pub(super) stop: bool,
    pub(super) checkpoint: bool,
    /// Members diverged so far, over all ranks.
    pub(super) diverged: u64,
}

/// One rank's share of the stage: its members, their solver and the open output file.
pub(super) struct Generation<'a, T: Real, D: Dynamics<T>> {
    c: &'a Config,
    world: &'a World,
    solver: &'a D,
    batch: Option<&'a dyn Segment<D::State>>,
    down: &'a Downsampler<T>,
    paths: StageFiles,
    pub(super) plan: Plan,
    /// This rank's members (global indices), in order.
    local: Range<usize>,
    members: Vec<Member<D::State>>,
    /// Solver steps taken from the initial condition.
    pub(super) step: u64,
    writer: TrajectoryWriter,
    /// The threads of this rank, and per thread the solver's and the downsampler's scratch.
    pool: rayon::ThreadPool,
    works: Vec<Mutex<(D::Work, DownsampleWork<T>)>>,
    /// One stored time of the local members, `[member, layer, y, x]` on the output grid.
    frame: Array4<f32>,
    /// Resolved config YAML (stored in checkpoints).
    yaml: String,
    /// Seconds spent storing samples (downsampling and HDF5 writes).
    io_time: f64,
}

impl<'a, T: Real, D: Dynamics<T>> Generation<'a, T, D> {
    /// This rank's members and the output file: new ones for a fresh run, from the checkpoint
    /// and the partial file for a resumed one.
    pub(super) fn set_up(
        c: &'a Config,
        world: &'a World,
        (solver, batch): Solvers<'a, D, D::State>,
        down: &'a Downsampler<T>,
        paths: StageFiles,
        decision: Decision,
    ) -> Result<Self> {
        let plan = Plan::of(c);
        let local = world.members(plan.members);
        let threads = c.threads_per_rank(world.size());
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| Error::failure(e.to_string()))?;
        let (members, step, writer) = if decision == Decision::Resume {
            let (members, step) = resumed_states(solver, &paths.checkpoint, local.clone())?;
            (members, step, TrajectoryWriter::reopen(&paths.partial, world, c)?)
        } else {
            let members = initial_states(c, solver, local.clone())?;
            (members, 0, TrajectoryWriter::create(&paths.partial, world, &layout(c, &plan), c)?)
        };
        let works = (0..threads).map(|_| Mutex::new((solver.work(), down.work()))).collect();
        let m_out = c.output_grid();
        let frame = Array4::zeros((local.len(), solver.layers(), m_out, m_out));
        let yaml = c.to_yaml();
        Ok(Generation {
            c,
            world,
            solver,
            batch,
            down,
            paths,
            plan,
            local,
            members,
            step,
            writer,
            pool,
            works,
            frame,
            yaml,
            io_time: 0.0,
        })
    }

    /// The outcome of a collective write, agreed by the ranks: a failure seen by some of them (a
    /// full disk) is reported once and ends every rank alike, without aborting (see
    /// `Error::Collective`).
    fn collective(&self, r: Result<()>) -> Result<()> {
        self.world.agree(r).inspect_err(|_| crate::store::h5::abandon_parallel_files())
    }

    pub(super) fn log_start(&self) {
        log::info!(
            "generate: {} members ({} per rank on {} rank(s), {} thread(s) each), {}² → {}², {} solver steps, {} stored states",
            self.plan.members,
            self.local.len(),
            self.world.size(),
            self.pool.current_num_threads(),
            self.c.system.grid,
            self.c.output_grid(),
            self.plan.total_steps,
            self.plan.samples
        );
    }

    /// Steps every live member to the end of the segment: the next stored time, or during the
    /// spin-up `steps_per_sample` steps at most (the spin-up need not be a multiple of them).
    pub(super) fn advance_segment(&mut self) {
        let (step, k, spinup) = (self.step, self.c.generate.steps_per_sample as u64, self.plan.spinup_steps);
        let next = if step < spinup { (step + k).min(spinup) } else { step + k };
        let max_cfl = self.c.generate.max_cfl;
        match self.batch {
            Some(b) => b.advance(&mut self.members, step, next, max_cfl),
            None => self.step_on_threads(next, max_cfl),
        }
        self.step = next;
    }

    /// The native solver's segment: members spread over the rank's threads, each stepped to
    /// `next` unless its CFL number exceeds `max_cfl` (or turns non-finite) first.
    fn step_on_threads(&mut self, next: u64, max_cfl: f64) {
        let (from, solver, works) = (self.step, self.solver, &self.works);
        self.pool.install(|| {
            self.members.par_iter_mut().for_each(|m| {
                if m.diverged_at.is_some() {
                    return;
                }
                let mut work = works[rayon::current_thread_index().unwrap_or(0)].lock().unwrap();
                for s in from..next {
                    let cfl = solver.step(&mut m.state, &mut work.0);
                    if !(cfl <= max_cfl) {
                        log::warn!("member {} diverged at solver step {s} (CFL number {cfl:.3})", m.index);
                        m.diverged_at = Some(s);
                        break;
                    }
                }
            })
        });
    }

    /// The stored time reached, if the step is past the spin-up.
    pub(super) fn stored_index(&self) -> Option<usize> {
        let k = self.c.generate.steps_per_sample as u64;
        (self.step >= self.plan.spinup_steps).then(|| ((self.step - self.plan.spinup_steps) / k) as usize)
    }

    /// Downsamples every local member to the output grid and writes them as stored time `t`
    /// (collective); a diverged member's state is NaN.
    pub(super) fn store(&mut self, t: usize) -> Result<()> {
        let t0 = Instant::now();
        let (solver, down, works) = (self.solver, self.down, &self.works);
        let (spec_len, m_out) = (solver.grid().spec_len(), self.c.output_grid());
        let mut rows: Vec<ArrayViewMut3<f32>> = self.frame.outer_iter_mut().collect();
        self.pool.install(|| {
            rows.par_iter_mut().zip(self.members.par_iter()).for_each(|(out, m)| {
                if m.diverged_at.is_some() {
                    out.fill(f32::NAN);
                    return;
                }
                let mut work = works[rayon::current_thread_index().unwrap_or(0)].lock().unwrap();
                let mut real = vec![T::zero(); m_out * m_out];
                let spectra = solver.fields(&m.state).chunks_exact(spec_len);
                for (mut layer, spectrum) in out.outer_iter_mut().zip(spectra) {
                    down.apply(spectrum, &mut real, &mut work.1);
                    layer.iter_mut().zip(&real).for_each(|(o, r)| *o = r.to64() as f32);
                }
            })
        });
        self.collective(self.writer.write_sample(t, self.frame.view()))?;
        self.io_time += t0.elapsed().as_secs_f64();
        Ok(())
    }

    /// The ranks' agreement after a segment: stop (requested on any rank), checkpoint (due on any
    /// rank, unless this was the last segment), and the members diverged so far.
    pub(super) fn agree(&self, stop: &StopFlag, clock: &Clock) -> Agreed {
        let diverged = self.members.iter().filter(|m| m.diverged_at.is_some()).count() as u64;
        let due = clock.checkpointed.elapsed().as_secs_f64() >= self.c.run.checkpoint_interval
            && self.step < self.plan.total_steps;
        let agreed = self.world.sum(&[stop.requested() as u64, due as u64, diverged]);
        Agreed { stop: agreed[0] > 0, checkpoint: agreed[1] > 0, diverged: agreed[2] }
    }

    /// Rank 0's progress line, every `run.log_interval` seconds and at the last step.
    pub(super) fn log_progress(&self, clock: &mut Clock, diverged: u64) {
        let (step, plan, c) = (self.step, &self.plan, self.c);
        if !self.world.is_root()
            || (clock.logged.elapsed().as_secs_f64() < c.run.log_interval && step != plan.total_steps)
        {
            return;
        }
        let elapsed = clock.start.elapsed().as_secs_f64();
        let rate = (step - clock.first_step) as f64 * plan.members as f64 / elapsed.max(1e-9);
        let eta = (plan.total_steps - step) as f64 * plan.members as f64 / rate.max(1e-9);
        let stored = self.stored_index().map_or(0, |t| t as u64 + 1);
        log::info!(
            "step {step}/{} t={:.4} stored {stored}/{} members {} ({} diverged) {:.1} member-steps/s ETA {:.0}s",
            plan.total_steps,
            step as f64 * c.system.dt,
            plan.samples,
            plan.members,
            diverged,
            rate,
            eta
        );
        clock.logged = Instant::now();
    }

    /// `diverged_at` of each local member: the solver step of its blow-up, −1 if none.
    fn diverged_at(&self) -> Vec<i64> {
        self.members.iter().map(|m| m.diverged_at.map_or(-1, |s| s as i64)).collect()
    }

    /// Flushes the samples written so far and writes every member's state (collective).
    pub(super) fn checkpoint(&self) -> Result<()> {
        self.collective(self.writer.flush())?;
        let data = member_states::CheckpointData {
            step: self.step,
            states: self.members.iter().map(|m| self.solver.save(&m.state)).collect(),
            diverged_at: self.diverged_at(),
        };
        let (path, total) = (&self.paths.checkpoint, self.plan.members);
        self.collective(member_states::write(path, self.world, &self.yaml, total, self.local.clone(), &data))?;
        log::debug!("checkpoint at solver step {}: {}", self.step, path.display());
        Ok(())
    }

    /// Writes `diverged_at` and closes the file, publishes it, and reports the write rate.
    pub(super) fn finish(self, clock: &Clock) -> Result<Outcome<PathBuf>> {
        let diverged = self.diverged_at();
        self.writer.finish(&diverged)?;
        self.paths.publish(self.world)?;
        let io_max = self.world.max_f64(&[self.io_time])[0];
        if self.world.is_root() {
            let mb = self.plan.output_bytes as f64 / 1e6;
            log::info!(
                "wrote {} ({:.1} MB) in {:.1}s; HDF5 writes {:.2}s ({:.1} MB/s)",
                self.paths.output.display(),
                mb,
                clock.start.elapsed().as_secs_f64(),
                io_max,
                mb / io_max.max(1e-9)
            );
        }
        Ok(Outcome::Complete { result: self.paths.output, already: false })
    }
}
