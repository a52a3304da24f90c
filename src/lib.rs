//! thermalizer: stable long-horizon neural emulation of 2D turbulence (Pedersen, Zanna & Bruna,
//! ICML 2025) as an MPI + parallel-HDF5 + libtorch pipeline.
//!
//! Stages ([`stages`]): `generate` (pseudo-spectral ensembles of Kolmogorov flow or two-layer QG
//! into parallel HDF5), `train emulator|thermalizer` (libtorch, data-parallel), `calibrate`,
//! `rollout` (alone and thermalized, into `rollout.h5`) and `report` (figures, `summary.md`,
//! `summary.json`); `status` and `export-well` read a run directory. Every stage runs on all MPI
//! ranks; a run without `mpirun` is a world of one rank ([`parallel`]). The module map and its
//! layering: docs/architecture.md.

// `!(x <= limit)` is how numeric code says "over the limit, or NaN": NaN fails every comparison.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod bench;
pub mod config;
pub mod diagnostics;
pub mod error;
pub mod nn;
pub mod parallel;
pub mod report;
pub mod rng;
pub mod rollout;
pub mod solver;
pub mod stages;
pub mod store;
pub mod train;
