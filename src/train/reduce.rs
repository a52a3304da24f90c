//! Data-parallel communication of training: one trait, one implementation per transport.
//!
//! The gradient buffer is one flat f32 vector (all parameters' gradients, then the rank's
//! share of the loss), summed over ranks in place. Each rank's loss is already divided by the
//! *global* batch size, so the sum is the gradient of the global mean loss whatever the split
//! of the batch over ranks. [`for_device`] picks the transport as [`Allreduce`] says: NCCL for
//! CUDA tensors when the binary is built with the `cuda` feature and NCCL loads (see
//! [`super::nccl`]), MPI otherwise.

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
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

/// The transport of the gradient sum (`--allreduce`, as the backend of PyTorch DDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Allreduce {
    /// NCCL when training on GPUs and every rank can join it, MPI otherwise.
    #[default]
    Auto,
    /// NCCL or an error: needs the `cuda` build, `--device cuda` and one GPU per rank.
    Nccl,
    /// MPI through host memory on any device.
    Mpi,
}

impl Allreduce {
    /// Parses `auto`, `nccl` or `mpi`.
    pub fn parse(name: &str) -> Result<Allreduce> {
        match name {
            "auto" => Ok(Allreduce::Auto),
            "nccl" => Ok(Allreduce::Nccl),
            "mpi" => Ok(Allreduce::Mpi),
            other => Err(Error::Input(format!("--allreduce {other}: use auto, nccl or mpi"))),
        }
    }

    /// Whether this choice can work on `device` in this build (checked before any compute; an
    /// input error if not).
    pub fn check(self, device: Device) -> Result<()> {
        match (self, device) {
            (Allreduce::Nccl, _) if !cfg!(feature = "cuda") => {
                Err(Error::input("--allreduce nccl: this binary was built without the `cuda` feature"))
            }
            (Allreduce::Nccl, Device::Cpu) => Err(Error::input("--allreduce nccl needs --device cuda")),
            _ => Ok(()),
        }
    }
}

/// The reducer for training on `device` (collective: every rank calls it and gets the same
/// kind): NCCL on a GPU in a `cuda` build when `choice` allows it and every rank can join,
/// MPI host buffers otherwise (logged either way); an input error only when `choice` is
/// [`Allreduce::Nccl`] and NCCL is not usable.
pub fn for_device(world: &World, device: Device, choice: Allreduce) -> Result<Box<dyn Reducer + '_>> {
    choice.check(device)?;
    #[cfg(feature = "cuda")]
    if let (Device::Cuda(ordinal), Allreduce::Auto | Allreduce::Nccl) = (device, choice) {
        match super::nccl::NcclReducer::new(world, ordinal) {
            Ok(r) => {
                if world.is_root() {
                    log::info!("gradient allreduce: NCCL on the GPUs");
                }
                return Ok(Box::new(r));
            }
            Err(e) if choice == Allreduce::Nccl => {
                return Err(Error::Input(format!("--allreduce nccl: NCCL not usable ({e})")))
            }
            Err(e) => {
                if world.is_root() {
                    log::warn!("gradient allreduce: NCCL not usable ({e}); using MPI through host memory");
                }
            }
        }
    }
    if world.is_root() && (world.size() > 1 || choice == Allreduce::Mpi) {
        log::info!("gradient allreduce: MPI (buffers on {device:?}, reduced in host memory)");
    }
    Ok(Box::new(MpiReducer { world }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allreduce_choices_parse_and_nccl_is_refused_where_it_cannot_work() {
        assert_eq!(Allreduce::parse("mpi").unwrap(), Allreduce::Mpi);
        assert_eq!(Allreduce::parse("auto").unwrap(), Allreduce::Auto);
        assert!(Allreduce::parse("gloo").unwrap_err().to_string().contains("auto, nccl or mpi"));
        let err = Allreduce::Nccl.check(Device::Cpu).unwrap_err().to_string();
        assert!(err.contains(if cfg!(feature = "cuda") { "--device cuda" } else { "`cuda` feature" }), "{err}");
        assert!(Allreduce::Auto.check(Device::Cpu).is_ok());
        assert!(Allreduce::Mpi.check(Device::Cpu).is_ok());
    }
}
