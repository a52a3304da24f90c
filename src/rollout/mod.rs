//! Long emulator rollouts, alone and thermalized: the algorithm ([`thermalize`]) and its
//! threshold calibrated on clean states ([`calibration`]), a defect for a positive control
//! ([`defect`]), the members a rank rolls out ([`ensemble`]), the runaway guard beyond the paper ([`guard`]), the
//! statistics of states ([`stats`]), the recorded series ([`records`]) and what is derived
//! from them at the end ([`window`]); the loop is [`crate::stages::rollout`].

pub mod calibration;
pub mod defect;
pub mod ensemble;
pub mod guard;
pub mod records;
pub mod stats;
pub mod thermalize;
pub mod window;
