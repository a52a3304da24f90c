//! HDF5 files: their schema (names, dimensions, attributes), collective writers, readers, and
//! the `.partial` → final rename that keeps half-written files from looking done.

pub mod cf;
pub mod checkpoint;
pub mod h5;
pub mod lock;
pub mod trajectories;
pub mod well;

use std::path::{Path, PathBuf};

/// `<path>.partial`: the name a file has while it is being written.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}
