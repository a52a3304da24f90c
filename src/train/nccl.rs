//! NCCL allreduce of device buffers (feature `cuda`): one rank per GPU, the gradient summed
//! where it lives, without the host round trip of [`MpiReducer`](super::reduce::MpiReducer).
//!
//! NCCL and the CUDA driver are loaded at run time through cudarc; [`NcclReducer::new`]
//! returns an error (and training keeps the MPI reducer) when they cannot be loaded. The
//! communicator is built the standard way: rank 0 draws the unique id, MPI broadcasts it, every
//! rank joins with its CUDA device made current (the primary context, the one libtorch uses).
//! Collectives go on the legacy default stream, so they are ordered after the libtorch kernels
//! that produced the gradient and before those that consume it.

use std::ffi::c_void;

use cudarc::driver::result as driver;
use cudarc::nccl::{result as nccl, sys};
use tch::{Device, Kind, Tensor};

use super::reduce::Reducer;
use crate::parallel::World;

/// Sums and broadcasts flat f32 CUDA tensors with NCCL.
pub struct NcclReducer {
    comm: sys::ncclComm_t,
    size: usize,
}

impl NcclReducer {
    /// Joins every rank of `world` into one NCCL communicator on CUDA device `device`
    /// (collective: all ranks call it, and all get an error if any cannot load NCCL or join).
    pub fn new(world: &World, device: usize) -> Result<NcclReducer, String> {
        // Safety: the probes only try to load the shared libraries.
        let present = unsafe { cudarc::driver::sys::is_culib_present() && sys::is_culib_present() };
        if world.any(!present) {
            return Err("NCCL or the CUDA driver cannot be loaded on every rank".into());
        }
        let mut id = vec![0f32; 32]; // 128 bytes of ncclUniqueId, carried as f32 words
        if world.is_root() {
            let uid = nccl::get_uniqueid().map_err(|e| format!("ncclGetUniqueId: {e:?}"))?;
            // Safety: both are 128 plain bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(uid.internal.as_ptr().cast::<u8>(), id.as_mut_ptr().cast::<u8>(), 128)
            };
        }
        world.broadcast_f32(&mut id);
        let mut uid = sys::ncclUniqueId { internal: [0; 128] };
        // Safety: as above.
        unsafe { std::ptr::copy_nonoverlapping(id.as_ptr().cast::<u8>(), uid.internal.as_mut_ptr().cast::<u8>(), 128) };
        // Safety: driver calls on a device ordinal libtorch reported; the primary context is the
        // one the CUDA runtime (and so libtorch) uses.
        let joined = unsafe {
            (|| {
                driver::init().map_err(|e| format!("cuInit: {e:?}"))?;
                let dev = driver::device::get(device as i32).map_err(|e| format!("cuDeviceGet({device}): {e:?}"))?;
                let ctx = driver::primary_ctx::retain(dev).map_err(|e| format!("cuDevicePrimaryCtxRetain: {e:?}"))?;
                driver::ctx::set_current(ctx).map_err(|e| format!("cuCtxSetCurrent: {e:?}"))?;
                let mut comm: sys::ncclComm_t = std::ptr::null_mut();
                nccl::comm_init_rank(&mut comm, world.size() as i32, uid, world.rank() as i32)
                    .map_err(|e| format!("ncclCommInitRank: {e:?}"))?;
                Ok::<_, String>(comm)
            })()
        };
        // All ranks take the same reducer: if any rank could not join, those that did leave.
        match (world.any(joined.is_err()), joined) {
            (false, Ok(comm)) => Ok(NcclReducer { comm, size: world.size() }),
            (_, Err(e)) => Err(e),
            (true, Ok(comm)) => {
                // Safety: the communicator was just created and is not used.
                let _ = unsafe { nccl::comm_destroy(comm) };
                Err("another rank could not join the NCCL communicator".into())
            }
        }
    }

    /// Runs `collective(buffer, count, comm)` in place on `flat`, a live contiguous f32 CUDA
    /// buffer, on the legacy default stream (null); a no-op on one rank.
    fn in_place(
        &self,
        flat: &mut Tensor,
        what: &str,
        collective: impl FnOnce(*mut c_void, usize, sys::ncclComm_t) -> Result<nccl::NcclStatus, nccl::NcclError>,
    ) {
        if self.size == 1 {
            return;
        }
        assert!(matches!(flat.device(), Device::Cuda(_)), "NCCL reduces CUDA tensors");
        assert_eq!(flat.kind(), Kind::Float, "NCCL reducer: f32 buffers");
        assert!(flat.is_contiguous(), "NCCL reducer: contiguous buffers");
        collective(flat.data_ptr(), flat.numel(), self.comm).unwrap_or_else(|e| panic!("{what}: {e:?}"));
    }
}

impl Reducer for NcclReducer {
    fn sum_in_place(&self, flat: &mut Tensor) {
        // Safety (both collectives): `p` holds `count` f32 values on the device, sent and
        // received in place; the stream is the legacy default one.
        self.in_place(flat, "ncclAllReduce", |p, count, comm| unsafe {
            nccl::all_reduce(p, p, count, FLOAT, sys::ncclRedOp_t::ncclSum, comm, std::ptr::null_mut())
        });
    }

    fn broadcast_in_place(&self, flat: &mut Tensor) {
        self.in_place(flat, "ncclBroadcast", |p, count, comm| unsafe {
            nccl::broadcast(p, p, count, FLOAT, 0, comm, std::ptr::null_mut())
        });
    }
}

const FLOAT: sys::ncclDataType_t = sys::ncclDataType_t::ncclFloat32;

impl Drop for NcclReducer {
    fn drop(&mut self) {
        // Safety: the communicator was created by `new` and is not used after this.
        let _ = unsafe { nccl::comm_destroy(self.comm) };
    }
}
