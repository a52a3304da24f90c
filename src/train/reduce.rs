//! Data-parallel communication of training: one trait, one implementation per transport.
//!
//! The gradient buffer is one flat f32 vector (all parameters' gradients, then the rank's
//! share of the loss), summed over ranks in place. Each rank's loss is already divided by the
//! *global* batch size, so the sum is the gradient of the global mean loss whatever the split
//! of the batch over ranks.

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
