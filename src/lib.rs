//! thermalizer: stable long-horizon neural emulation of 2D turbulence (Pedersen, Zanna & Bruna,
//! ICML 2025) as an MPI + parallel-HDF5 + libtorch pipeline.
//!
//! Stages ([`stages`]): `generate` (pseudo-spectral ensembles into parallel HDF5), then training,
//! rollout and report (later). Every stage runs on all MPI ranks; a run without `mpirun` is a
//! world of one rank ([`parallel`]).

pub mod bench;
pub mod config;
pub mod diagnostics;
pub mod nn;
pub mod parallel;
pub mod report;
pub mod rng;
pub mod rollout;
pub mod solver;
pub mod stages;
pub mod store;
pub mod train;
