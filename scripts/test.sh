#!/usr/bin/env bash
# The whole test suite, on a fresh Debian/Ubuntu machine or an existing checkout:
#   scripts/test.sh
# installs what is missing (scripts/setup.sh), builds the release binary, and runs every test:
# unit tests, physics checks, multi-rank (mpirun) end-to-end tests, and the Python readers
# (h5py, xarray) on a generated file, the Slurm templates and jobs/ scripts on a throw-away
# one-node Slurm cluster (tests/slurm.rs), and the comparisons with jax-cfd (Kolmogorov) and pyqg
# (two-layer QG) from the same initial states. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# shellcheck disable=SC1091
source "${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}/env.sh"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# jax-cfd, the independent reference the solver is compared with (tests/python/test_against_jaxcfd.py)
THERMALIZER_JAX_PYTHON=$(scripts/setup-jaxcfd.sh)
# pyqg 0.7.2, the reference of the two-layer QG model (tests/qg_vs_pyqg.rs)
THERMALIZER_PYQG_PYTHON=$(scripts/setup-pyqg.sh)
export THERMALIZER_JAX_PYTHON THERMALIZER_PYQG_PYTHON
cargo build --release --locked
cargo test --release --locked "$@"
# The MPI end-to-end tests again, built against MPICH 4 (Debian's mpich and libhdf5-mpich-dev,
# launched by its hydra mpiexec) in a target directory of their own (docs/cluster.md,
# MPICH-family MPIs), with the run-directory safety tests (locks, and a full disk reported in
# one line under hydra too). Only on a full run: extra arguments select Open MPI tests.
if [ $# -eq 0 ]; then
  HDF5_DIR='' THERMALIZER_MPI=mpich scripts/setup.sh
  (
    # shellcheck disable=SC1091
    source "${THERMALIZER_HOME:-$HOME/.local/share/thermalizer}/env-mpich.sh"
    cargo test --release --locked --test generate_mpi --test train_rollout_mpi --test run_dir_safety
  )
fi
