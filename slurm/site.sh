# slurm/site.sh - the ONE site-specific block of the Slurm templates: modules and paths.
# Sourced (bash) by slurm/lib/step.sh at the start of every job of slurm/*.sbatch and jobs/*.sh.
# Edit it once per cluster; the templates themselves have nothing site-specific.
# shellcheck shell=bash

# ==== site-specific block: modules and paths ==================================================
# Environment modules that provide the MPI, parallel HDF5 and libtorch the binary was built
# against (the same ones as at build time). Examples:
# module load openmpi/4.1 hdf5/1.12-parallel
# module load cuda/12.4            # GPU partitions
# source "$HOME/.local/share/thermalizer/env.sh"   # LIBTORCH etc. as written by scripts/setup.sh

# The thermalizer binary (default: the release build of the checkout the job was submitted from).
THERMALIZER=${THERMALIZER:-$THERMALIZER_SRC/target/release/thermalizer}

# HDF5 on Lustre/GPFS/NFS: no POSIX file locks (they fail or hang there; the files are written
# collectively by one job at a time anyway). Set to TRUE on a local file system if you prefer.
export HDF5_USE_FILE_LOCKING=${HDF5_USE_FILE_LOCKING:-FALSE}

# How srun starts the MPI ranks. PMIx is what Open MPI >= 4 and Slurm's mpi/pmix plugin speak;
# check with `srun --mpi=list`. Use pmix_v4/pmix_v5 to pin a version, or pmi2 for MPICH builds.
THERMALIZER_SRUN_MPI=${THERMALIZER_SRUN_MPI:-pmix}

# Extra srun options for every step (e.g. --cpu-bind=cores, --gpu-bind=closest).
THERMALIZER_SRUN_ARGS=${THERMALIZER_SRUN_ARGS:-}

# Requeue at most this many times (a safety net against a job that checkpoints but never ends).
THERMALIZER_MAX_RESTARTS=${THERMALIZER_MAX_RESTARTS:-50}
# ==============================================================================================
