//! Long emulator rollouts, alone and thermalized: the algorithm ([`thermalize`]) and its
//! threshold calibrated on clean states ([`calibration`]), a defect for a positive control
//! ([`defect`]), the members a rank rolls out ([`ensemble`]), the runaway guard beyond the paper ([`guard`]), the
//! statistics of states ([`stats`]) and what is derived from the recorded series at the end
//! ([`window`]; the series: [`crate::store::series`]); the loop is [`crate::stages::rollout`].

pub mod calibration;
pub mod defect;
pub mod ensemble;
pub mod guard;
pub mod stats;
pub mod thermalize;
pub mod window;
