//! HDF5 files: their schema (names, dimensions, attributes), collective writers, readers, and
//! the `.partial` → final rename that keeps half-written files from looking done.

pub mod cf;
pub mod h5;
pub mod lock;
pub mod member_states;
pub mod resume;
pub mod rollout;
pub mod series;
pub mod trajectories;
pub mod well;

use std::path::{Path, PathBuf};

use crate::error::Result;

/// The resolved config (YAML) that every file of a run stores in its root attribute `config`:
/// `trajectories.h5`, the stages' checkpoints and `rollout.h5`, finished or `.partial`. Read
/// serially, by whichever ranks need it.
pub fn stored_config(path: &Path) -> Result<String> {
    h5::File::open(path, h5::Access::Serial, false)?.attrs().get_str("config")
}

/// `<path>.partial`: the name a file has while it is being written.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}
