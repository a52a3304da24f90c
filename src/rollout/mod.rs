//! Long emulator rollouts, alone and thermalized: the algorithm ([`thermalize`]), the
//! statistics of states ([`stats`]) and the recorded series ([`records`]); the loop is
//! [`crate::stages::rollout`].

pub mod records;
pub mod stats;
pub mod thermalize;
