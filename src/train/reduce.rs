//! Data-parallel communication of training: one trait, one implementation per transport.
//!
//! The gradient buffer is one flat f32 vector (all parameters' gradients, then the rank's
//! share of the loss), summed over ranks in place. Each rank's loss is already divided by the
//! *global* batch size, so the sum is the gradient of the global mean loss whatever the split
//! of the batch over ranks. [`for_device`] picks the transport: NCCL for CUDA tensors when the
//! binary is built with the `cuda` feature and NCCL loads (see [`super::nccl`]), MPI otherwise.

use tch::{Device, Kind, Tensor};

use crate::parallel::World;

/// Sums and broadcasts flat f32 tensors across the ranks of a data-parallel job.
pub trait Reducer {
    /// Replaces `flat` by its sum over ranks.
    fn sum_in_place(&self, flat: &mut Tensor);
    /// Replaces `flat` by rank 0's.
    fn broadcast_in_place(&self, flat: &mut Tensor);
}

/// MPI allreduce of host buffers (CPU training, or GPUs without NCCL): the tensor is copied to
/// host memory, reduced with `MPI_Allreduce`, and copied back.
pub struct MpiReducer<'w> {
    pub world: &'w World,
}

fn to_host(t: &Tensor) -> Vec<f32> {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let mut v = vec![0f32; t.numel()];
    t.copy_data(&mut v, t.numel());
    v
}

fn from_host(flat: &mut Tensor, v: &[f32]) {
    let host = Tensor::from_slice(v).to_device(flat.device());
    flat.copy_(&host);
}

impl Reducer for MpiReducer<'_> {
    fn sum_in_place(&self, flat: &mut Tensor) {
        if self.world.size() == 1 {
            return;
        }
        let mut v = to_host(flat);
        self.world.sum_f32(&mut v);
        from_host(flat, &v);
    }

    fn broadcast_in_place(&self, flat: &mut Tensor) {
        if self.world.size() == 1 {
            return;
        }
        let mut v = to_host(flat);
        self.world.broadcast_f32(&mut v);
        from_host(flat, &v);
    }
}

/// The reducer for training on `device`: NCCL on a GPU in a `cuda` build when NCCL can be
/// loaded on every rank, MPI host buffers otherwise (logged either way).
pub fn for_device(world: &World, device: Device) -> Box<dyn Reducer + '_> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(ordinal) = device {
        match super::nccl::NcclReducer::new(world, ordinal) {
            Ok(r) => {
                if world.is_root() {
                    log::info!("gradient allreduce: NCCL on the GPUs");
                }
                return Box::new(r);
            }
            Err(e) => {
                if world.is_root() {
                    log::warn!("gradient allreduce: NCCL not usable ({e}); using MPI through host memory");
                }
            }
        }
    }
    if world.is_root() && world.size() > 1 {
        log::info!("gradient allreduce: MPI (buffers on {device:?}, reduced in host memory)");
    }
    Box::new(MpiReducer { world })
}
