//! NCCL allreduce of device buffers (feature `cuda`): one rank per GPU, the gradient summed
//! where it lives, without the host round trip of [`MpiReducer`](super::reduce::MpiReducer).
//!
//! NCCL is the `libnccl.so.2` that libtorch_cuda already loaded (its soname makes `dlopen`
//! return that copy; it is searched on the library path only when libtorch did not load one).
//! A second NCCL in the process would not do: the two copies' exported symbols interpose on
//! each other and NCCL then reports "corrupted comm object" at the first collective (seen on
//! an H200 when another loader picked a system `libnccl.so`, 2.28.3 beside torch's 2.28.9).
//! The CUDA driver comes through cudarc. [`NcclReducer::new`] returns an error (and training
//! keeps the MPI reducer unless NCCL was required) when either cannot be loaded. The
//! communicator is built the standard way: rank 0 draws the unique id, MPI broadcasts it, every
//! rank joins with its CUDA device made current (the primary context, the one libtorch uses).
//! Collectives go on the legacy default stream, so they are ordered after the libtorch kernels
//! that produced the gradient and before those that consume it.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use cudarc::driver::result as driver;
use tch::{Device, Kind, Tensor};

use super::reduce::Reducer;
use crate::error::{Error, Result};
use crate::parallel::World;

/// `ncclComm_t`: an opaque handle.
type Comm = *mut c_void;
/// `ncclResult_t`, kept as an integer (0 = success) so that any code NCCL returns is valid.
type Status = c_int;
/// `ncclUniqueId`: 128 opaque bytes.
#[repr(C)]
#[derive(Clone, Copy)]
struct UniqueId([u8; 128]);

/// `ncclFloat32` and `ncclSum` (stable values of NCCL 2's `nccl.h`).
const FLOAT32: c_int = 7;
const SUM: c_int = 0;

/// The NCCL entry points this reducer calls.
struct Nccl {
    get_unique_id: unsafe extern "C" fn(*mut UniqueId) -> Status,
    comm_init_rank: unsafe extern "C" fn(*mut Comm, c_int, UniqueId, c_int) -> Status,
    all_reduce: unsafe extern "C" fn(*const c_void, *mut c_void, usize, c_int, c_int, Comm, *mut c_void) -> Status,
    broadcast: unsafe extern "C" fn(*const c_void, *mut c_void, usize, c_int, c_int, Comm, *mut c_void) -> Status,
    comm_destroy: unsafe extern "C" fn(Comm) -> Status,
    error_string: unsafe extern "C" fn(Status) -> *const c_char,
    last_error: unsafe extern "C" fn(Comm) -> *const c_char,
}

/// NCCL from `libnccl.so.2` (loaded once; the error says why it could not be).
// Each transmute's target type is its field's, declared in `Nccl` with nccl.h's signature.
#[allow(clippy::missing_transmute_annotations)]
fn nccl() -> Result<&'static Nccl> {
    static LIB: OnceLock<Result<Nccl>> = OnceLock::new();
    LIB.get_or_init(|| {
        // Safety: dlopen/dlsym with NUL-terminated names; each symbol is cast to the signature
        // that nccl.h declares for it. The library is never closed.
        unsafe {
            let handle = libc::dlopen(c"libnccl.so.2".as_ptr(), libc::RTLD_NOW);
            if handle.is_null() {
                return Err(Error::failure(
                    "libnccl.so.2 cannot be loaded (not in libtorch's process nor on the library path)",
                ));
            }
            let symbol = |name: &CStr| {
                let f = libc::dlsym(handle, name.as_ptr());
                if f.is_null() {
                    Err(Error::Failure(format!("libnccl.so.2 has no {}", name.to_string_lossy())))
                } else {
                    Ok(f)
                }
            };
            Ok(Nccl {
                get_unique_id: std::mem::transmute::<*mut c_void, _>(symbol(c"ncclGetUniqueId")?),
                comm_init_rank: std::mem::transmute::<*mut c_void, _>(symbol(c"ncclCommInitRank")?),
                all_reduce: std::mem::transmute::<*mut c_void, _>(symbol(c"ncclAllReduce")?),
                broadcast: std::mem::transmute::<*mut c_void, _>(symbol(c"ncclBroadcast")?),
                comm_destroy: std::mem::transmute::<*mut c_void, _>(symbol(c"ncclCommDestroy")?),
                error_string: std::mem::transmute::<*mut c_void, _>(symbol(c"ncclGetErrorString")?),
                last_error: std::mem::transmute::<*mut c_void, _>(symbol(c"ncclGetLastError")?),
            })
        }
    })
    .as_ref()
    .map_err(|e| Error::Failure(e.to_string()))
}

impl Nccl {
    /// `Ok` for success, else "`what`: NCCL's error string (its last error message)".
    fn check(&self, what: &str, status: Status, comm: Comm) -> Result<()> {
        if status == 0 {
            return Ok(());
        }
        // Safety: NCCL returns static NUL-terminated strings (the last error may be empty).
        let text = |p: *const c_char| {
            if p.is_null() {
                String::new()
            } else {
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            }
        };
        let detail = text(unsafe { (self.last_error)(comm) });
        Err(Error::Failure(format!(
            "{what}: {} (code {status}){}",
            text(unsafe { (self.error_string)(status) }),
            if detail.is_empty() { String::new() } else { format!(": {detail}") }
        )))
    }
}

/// Sums and broadcasts flat f32 CUDA tensors with NCCL.
pub struct NcclReducer {
    lib: &'static Nccl,
    comm: Comm,
}

impl NcclReducer {
    /// Joins every rank of `world` into one NCCL communicator on CUDA device `device`
    /// (collective: all ranks call it, and all get an error if any cannot load NCCL or join).
    pub fn new(world: &World, device: usize) -> Result<NcclReducer> {
        // Safety: the probe only tries to load the driver library.
        let driver_present = unsafe { cudarc::driver::sys::is_culib_present() };
        let lib =
            if driver_present { nccl() } else { Err(Error::failure("the CUDA driver (libcuda) cannot be loaded")) };
        if world.any(lib.is_err()) {
            return Err(lib
                .err()
                .unwrap_or_else(|| Error::failure("NCCL or the CUDA driver cannot be loaded on another rank")));
        }
        let lib = lib?;
        let mut id = vec![0f32; 32]; // 128 bytes of ncclUniqueId, carried as f32 words
        let mut uid = UniqueId([0; 128]);
        let drawn = if world.is_root() {
            // Safety: NCCL writes 128 bytes into `uid`.
            lib.check("ncclGetUniqueId", unsafe { (lib.get_unique_id)(&mut uid) }, std::ptr::null_mut())
        } else {
            Ok(())
        };
        if world.any(drawn.is_err()) {
            return Err(drawn.err().unwrap_or_else(|| Error::failure("ncclGetUniqueId failed on rank 0")));
        }
        // Safety (both copies): 128 plain bytes each way.
        unsafe { std::ptr::copy_nonoverlapping(uid.0.as_ptr(), id.as_mut_ptr().cast::<u8>(), 128) };
        world.broadcast_f32(&mut id);
        unsafe { std::ptr::copy_nonoverlapping(id.as_ptr().cast::<u8>(), uid.0.as_mut_ptr(), 128) };
        // Safety: driver calls on a device ordinal libtorch reported; the primary context is the
        // one the CUDA runtime (and so libtorch) uses. NCCL writes the handle into `comm`.
        let joined = unsafe {
            (|| {
                driver::init().map_err(|e| Error::Failure(format!("cuInit: {e:?}")))?;
                let dev = driver::device::get(device as i32)
                    .map_err(|e| Error::Failure(format!("cuDeviceGet({device}): {e:?}")))?;
                let ctx = driver::primary_ctx::retain(dev)
                    .map_err(|e| Error::Failure(format!("cuDevicePrimaryCtxRetain: {e:?}")))?;
                driver::ctx::set_current(ctx).map_err(|e| Error::Failure(format!("cuCtxSetCurrent: {e:?}")))?;
                let mut comm: Comm = std::ptr::null_mut();
                let status = (lib.comm_init_rank)(&mut comm, world.size() as c_int, uid, world.rank() as c_int);
                lib.check("ncclCommInitRank", status, comm)?;
                Ok::<_, Error>(comm)
            })()
        };
        // All ranks take the same reducer: if any rank could not join, those that did leave.
        match (world.any(joined.is_err()), joined) {
            (false, Ok(comm)) => Ok(NcclReducer { lib, comm }),
            (_, Err(e)) => Err(e),
            (true, Ok(comm)) => {
                // Safety: the communicator was just created and is not used.
                unsafe { (lib.comm_destroy)(comm) };
                Err(Error::failure("another rank could not join the NCCL communicator"))
            }
        }
    }

    /// Checks that `flat` is a live contiguous f32 CUDA buffer and returns its pointer and length.
    fn buffer(flat: &mut Tensor) -> (*mut c_void, usize) {
        assert!(matches!(flat.device(), Device::Cuda(_)), "NCCL reduces CUDA tensors");
        assert_eq!(flat.kind(), Kind::Float, "NCCL reducer: f32 buffers");
        assert!(flat.is_contiguous(), "NCCL reducer: contiguous buffers");
        (flat.data_ptr(), flat.numel())
    }
}

// The collectives run in place on the legacy default stream (null). On one rank NCCL leaves
// the buffer as it is; the call is still made, so that a one-GPU job runs the same path as many.
// A failure here is a broken GPU or interconnect in the middle of a step: it panics, and the
// panic hook aborts the whole job (no rank can continue alone).
impl Reducer for NcclReducer {
    fn sum_in_place(&self, flat: &mut Tensor) {
        let (p, count) = Self::buffer(flat);
        // Safety: `p` holds `count` f32 values on the device, sent and received in place.
        let status = unsafe { (self.lib.all_reduce)(p, p, count, FLOAT32, SUM, self.comm, std::ptr::null_mut()) };
        self.lib.check("ncclAllReduce", status, self.comm).unwrap_or_else(|e| panic!("{e}"));
    }

    fn broadcast_in_place(&self, flat: &mut Tensor) {
        let (p, count) = Self::buffer(flat);
        // Safety: as above, from rank 0.
        let status = unsafe { (self.lib.broadcast)(p, p, count, FLOAT32, 0, self.comm, std::ptr::null_mut()) };
        self.lib.check("ncclBroadcast", status, self.comm).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for NcclReducer {
    fn drop(&mut self) {
        // Safety: the communicator was created by `new` and is not used after this.
        unsafe { (self.lib.comm_destroy)(self.comm) };
    }
}
