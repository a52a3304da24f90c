//! A thin, safe layer over the HDF5 C API (through `hdf5-metno-sys`), for what the stores need:
//! files opened serially or through MPI-IO, contiguous datasets, hyperslab reads and
//! (collective) writes, scalar/array/string attributes, variable-length string datasets,
//! declared fill values and dimension scales (`H5DS`, from `libhdf5_hl`): what netCDF-4 readers
//! (netCDF-C, h5netcdf) need to see a file as netCDF; and groups, string-list attributes and
//! HDF5 booleans for The Well's layout.
//!
//! Every handle closes itself when dropped. Errors name the file and object they concern.
//! In a parallel file every metadata call (create, attribute write, dimension scale) is
//! collective: all ranks must make the same calls with the same values.

use std::ffi::{c_char, c_uint, CStr, CString};
use std::path::Path;
use std::ptr;

use hdf5_sys::h5::{herr_t, hsize_t};
use hdf5_sys::h5a::{H5Aclose, H5Acreate2, H5Aexists, H5Aget_space, H5Aget_type, H5Aopen, H5Aread, H5Awrite};
use hdf5_sys::h5d::{
    H5D_alloc_time_t, H5D_fill_time_t, H5D_layout_t, H5Dclose, H5Dcreate2, H5Dget_space, H5Dget_type, H5Dopen2,
    H5Dread, H5Dwrite,
};
use hdf5_sys::h5e::{H5Eset_auto2, H5E_DEFAULT};
use hdf5_sys::h5f::{H5F_scope_t, H5Fclose, H5Fcreate, H5Fflush, H5Fopen, H5F_ACC_RDONLY, H5F_ACC_RDWR, H5F_ACC_TRUNC};
use hdf5_sys::h5g::{H5Gclose, H5Gcreate2};
use hdf5_sys::h5i::hid_t;
use hdf5_sys::h5l::H5Lexists;
use hdf5_sys::h5p::{
    H5FD_mpio_xfer_t, H5Pclose, H5Pcreate, H5Pset_alloc_time, H5Pset_dxpl_mpio, H5Pset_fapl_mpio, H5Pset_fill_time,
    H5Pset_fill_value, H5Pset_layout, H5P_CLS_DATASET_CREATE, H5P_CLS_DATASET_XFER, H5P_CLS_FILE_ACCESS, H5P_DEFAULT,
};
use hdf5_sys::h5s::{
    H5S_class_t, H5S_seloper_t, H5Sclose, H5Screate, H5Screate_simple, H5Sget_simple_extent_dims,
    H5Sget_simple_extent_ndims, H5Sselect_hyperslab, H5Sselect_none, H5S_ALL,
};
use hdf5_sys::h5t::{
    H5T_cset_t, H5Tclose, H5Tcopy, H5Tenum_create, H5Tenum_insert, H5Tis_variable_str, H5Tset_cset, H5Tset_size,
    H5T_C_S1, H5T_NATIVE_DOUBLE, H5T_NATIVE_FLOAT, H5T_NATIVE_INT64, H5T_NATIVE_INT8, H5T_VARIABLE,
};
use mpi::traits::AsRaw;

use crate::error::{Error, Result};

unsafe extern "C" {
    fn H5DSset_scale(dsid: hid_t, dimname: *const c_char) -> herr_t;
    fn H5DSattach_scale(did: hid_t, dsid: hid_t, idx: c_uint) -> herr_t;
    fn H5free_memory(mem: *mut std::ffi::c_void) -> herr_t;
}

/// Initialises the library once and silences its automatic error-stack printing (we report
/// our own errors with file and object names).
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| unsafe {
        hdf5_sys::h5::H5open();
        H5Eset_auto2(H5E_DEFAULT, None, ptr::null_mut());
    });
}

/// The version of the HDF5 library linked at run time, e.g. `"1.10.8"`.
pub fn library_version() -> String {
    init();
    let (mut a, mut b, mut c) = (0, 0, 0);
    unsafe { hdf5_sys::h5::H5get_libversion(&mut a, &mut b, &mut c) };
    format!("{a}.{b}.{c}")
}

/// Owns one HDF5 identifier and closes it with the matching function on drop.
struct Hid {
    id: hid_t,
    close: unsafe extern "C" fn(hid_t) -> herr_t,
}

impl Drop for Hid {
    fn drop(&mut self) {
        if self.id >= 0 {
            unsafe { (self.close)(self.id) };
        }
    }
}

fn check_id(id: hid_t, close: unsafe extern "C" fn(hid_t) -> herr_t, what: impl FnOnce() -> String) -> Result<Hid> {
    if id < 0 {
        Err(Error::Hdf5(what()))
    } else {
        Ok(Hid { id, close })
    }
}

fn check(status: herr_t, what: impl FnOnce() -> String) -> Result<()> {
    if status < 0 {
        Err(Error::Hdf5(what()))
    } else {
        Ok(())
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("HDF5 names contain no NUL bytes")
}

/// Element types this layer reads and writes, with their native HDF5 type.
pub trait H5Scalar: Copy + Default {
    /// The native HDF5 type id (valid after [`init`]).
    fn type_id() -> hid_t;
}
impl H5Scalar for f64 {
    fn type_id() -> hid_t {
        *H5T_NATIVE_DOUBLE
    }
}
impl H5Scalar for f32 {
    fn type_id() -> hid_t {
        *H5T_NATIVE_FLOAT
    }
}
impl H5Scalar for i64 {
    fn type_id() -> hid_t {
        *H5T_NATIVE_INT64
    }
}
impl H5Scalar for i8 {
    fn type_id() -> hid_t {
        *H5T_NATIVE_INT8
    }
}

/// HDF5's usual boolean, an 8-bit enum {FALSE = 0, TRUE = 1}, which h5py reads as numpy
/// `bool`. A newtype over `i8` rather than `bool`: HDF5 turns an enum value it cannot map into
/// all one bits, which a `bool` must never hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct H5Bool(i8);

impl From<bool> for H5Bool {
    fn from(b: bool) -> H5Bool {
        H5Bool(b as i8)
    }
}

impl H5Bool {
    /// Whether the stored value is TRUE.
    pub fn get(self) -> bool {
        self.0 == 1
    }
}

impl H5Scalar for H5Bool {
    fn type_id() -> hid_t {
        // Created once and kept for the process, like the library's predefined types.
        static ENUM: std::sync::OnceLock<hid_t> = std::sync::OnceLock::new();
        *ENUM.get_or_init(|| unsafe {
            let t = H5Tenum_create(*H5T_NATIVE_INT8);
            for (name, value) in [(c"FALSE", 0i8), (c"TRUE", 1i8)] {
                H5Tenum_insert(t, name.as_ptr(), (&value as *const i8).cast());
            }
            t
        })
    }
}

/// An open group.
pub struct Group {
    hid: Hid,
    what: String,
}

impl Group {
    /// Attributes of this group.
    pub fn attrs(&self) -> Attrs {
        Attrs { loc: self.hid.id, owner: self.what.clone() }
    }
}

/// An open HDF5 file.
pub struct File {
    hid: Hid,
    path: String,
    parallel: bool,
}

/// Set when a write, flush or close of a parallel file failed on this rank: the ranks no
/// longer make the same collective calls, so no parallel file may be closed any more (a close
/// is collective and would wait forever for the other ranks). Such files are abandoned as
/// they drop; the caller's error aborts the job.
static PARALLEL_WRITE_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Abandons every parallel file of this rank as they drop (see [`PARALLEL_WRITE_FAILED`]): for
/// the ranks whose part of a collective write succeeded when another rank's failed.
pub fn abandon_parallel_files() {
    PARALLEL_WRITE_FAILED.store(true, std::sync::atomic::Ordering::Relaxed);
}

impl Drop for File {
    fn drop(&mut self) {
        if self.parallel && PARALLEL_WRITE_FAILED.load(std::sync::atomic::Ordering::Relaxed) {
            self.hid.id = -1;
        }
    }
}

/// Free bytes below which a failed write is put down to a full file system.
const NEARLY_FULL: u64 = 1 << 20;

/// Bytes available to this user on the file system holding `path` (its directory's), if known.
fn free_bytes(path: &Path) -> Option<u64> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let c = CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statvfs buffer of the right type.
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// The error of a failed write into the file `path`; `what` says what failed. Called right
/// after the failure (it reads `errno`): a full file system (ENOSPC, or under
/// [`NEARLY_FULL`] bytes free) or an exhausted quota (EDQUOT) is said first, in those words.
fn write_error(path: &str, what: String) -> Error {
    let errno = std::io::Error::last_os_error().raw_os_error();
    let free = free_bytes(Path::new(path));
    if errno == Some(libc::EDQUOT) {
        return Error::Hdf5(format!("disk quota exceeded writing {path} ({what})"));
    }
    match free {
        Some(f) if errno == Some(libc::ENOSPC) || f < NEARLY_FULL => {
            Error::Hdf5(format!("no space left on device writing {path} ({f} bytes free; {what})"))
        }
        _ => Error::Hdf5(what),
    }
}

/// How a file is accessed.
pub enum Access<'a> {
    /// This process alone (read-only opens may be shared by many processes).
    Serial,
    /// All ranks of the communicator, through MPI-IO; every metadata call is collective.
    Parallel(&'a mpi::topology::SimpleCommunicator),
}

fn fapl(access: &Access) -> Result<Hid> {
    init();
    let p = check_id(unsafe { H5Pcreate(*H5P_CLS_FILE_ACCESS) }, H5Pclose, || "H5Pcreate(fapl)".into())?;
    if let Access::Parallel(comm) = access {
        let info = unsafe { mpi::ffi::RSMPI_INFO_NULL };
        check(unsafe { H5Pset_fapl_mpio(p.id, comm.as_raw(), info) }, || "H5Pset_fapl_mpio".into())?;
    }
    Ok(p)
}

impl File {
    /// Creates (truncating) `path`.
    pub fn create(path: &Path, access: Access) -> Result<File> {
        let fapl = fapl(&access)?;
        let name = path.display().to_string();
        let id = unsafe { H5Fcreate(cstr(&name).as_ptr(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id) };
        if id < 0 {
            return Err(write_error(&name, format!("cannot create {name}")));
        }
        let hid = Hid { id, close: H5Fclose };
        Ok(File { hid, path: name, parallel: matches!(access, Access::Parallel(_)) })
    }

    /// Opens an existing file, read-only or read-write.
    pub fn open(path: &Path, access: Access, writable: bool) -> Result<File> {
        let fapl = fapl(&access)?;
        let name = path.display().to_string();
        let flags = if writable { H5F_ACC_RDWR } else { H5F_ACC_RDONLY };
        let id = unsafe { H5Fopen(cstr(&name).as_ptr(), flags, fapl.id) };
        let hid = check_id(id, H5Fclose, || format!("cannot open {name} (not an HDF5 file, or unreadable)"))?;
        Ok(File { hid, path: name, parallel: matches!(access, Access::Parallel(_)) })
    }

    /// The path the file was opened with.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the file has a dataset (or other link) `name` at the root.
    pub fn has(&self, name: &str) -> bool {
        unsafe { H5Lexists(self.hid.id, cstr(name).as_ptr(), H5P_DEFAULT) > 0 }
    }

    /// Creates a contiguous dataset of `T` with the given shape; its storage is allocated at
    /// creation and never pre-filled, so later writes of raw data touch no metadata (a crash
    /// mid-run leaves the file's structure intact).
    pub fn create_dataset<T: H5Scalar>(&self, name: &str, shape: &[usize]) -> Result<Dataset<'_>> {
        self.create_contiguous::<T>(name, shape, None)
    }

    /// [`File::create_dataset`] with `fill` declared as the netCDF `_FillValue`: both the
    /// dataset's HDF5 fill value (what netCDF-C reports) and a `_FillValue` attribute of the
    /// dataset's own type (what h5netcdf reports; netCDF refuses a mismatched type). Storage is
    /// still never pre-filled: the writer writes every element, `fill` where there is no value.
    pub fn create_filled<T: H5Scalar>(&self, name: &str, shape: &[usize], fill: T) -> Result<Dataset<'_>> {
        let d = self.create_contiguous(name, shape, Some(fill))?;
        d.attrs().set::<T>("_FillValue", &[fill])?;
        Ok(d)
    }

    fn create_contiguous<T: H5Scalar>(&self, name: &str, shape: &[usize], fill: Option<T>) -> Result<Dataset<'_>> {
        let dims: Vec<hsize_t> = shape.iter().map(|&d| d as hsize_t).collect();
        let space =
            check_id(unsafe { H5Screate_simple(dims.len() as i32, dims.as_ptr(), ptr::null()) }, H5Sclose, || {
                format!("{}: dataspace for {name}", self.path)
            })?;
        let dcpl = check_id(unsafe { H5Pcreate(*H5P_CLS_DATASET_CREATE) }, H5Pclose, || "H5Pcreate(dcpl)".into())?;
        unsafe {
            H5Pset_layout(dcpl.id, H5D_layout_t::H5D_CONTIGUOUS);
            H5Pset_alloc_time(dcpl.id, H5D_alloc_time_t::H5D_ALLOC_TIME_EARLY);
            H5Pset_fill_time(dcpl.id, H5D_fill_time_t::H5D_FILL_TIME_NEVER);
        }
        if let Some(v) = fill {
            check(unsafe { H5Pset_fill_value(dcpl.id, T::type_id(), (&v as *const T).cast()) }, || {
                format!("{}: fill value of {name}", self.path)
            })?;
        }
        let id = unsafe {
            H5Dcreate2(self.hid.id, cstr(name).as_ptr(), T::type_id(), space.id, H5P_DEFAULT, dcpl.id, H5P_DEFAULT)
        };
        let hid = check_id(id, H5Dclose, || format!("{}: cannot create dataset {name}", self.path))?;
        Ok(Dataset { hid, file: self, name: name.to_string() })
    }

    /// Creates a 1-D dataset of `len` variable-length UTF-8 strings (netCDF-4 `string`, `str`
    /// in xarray), e.g. a string coordinate. In a parallel file only the creation is
    /// collective: HDF5 1.10 cannot write variable-length data through MPI-IO, so the values
    /// are written afterwards through a serial open ([`Dataset::write_strings`]).
    pub fn create_strings(&self, name: &str, len: usize) -> Result<Dataset<'_>> {
        let dims = [len as hsize_t];
        let space = check_id(unsafe { H5Screate_simple(1, dims.as_ptr(), ptr::null()) }, H5Sclose, || {
            format!("{}: dataspace for {name}", self.path)
        })?;
        let t = string_type()?;
        let id = unsafe {
            H5Dcreate2(self.hid.id, cstr(name).as_ptr(), t.id, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
        };
        let hid = check_id(id, H5Dclose, || format!("{}: cannot create string dataset {name}", self.path))?;
        Ok(Dataset { hid, file: self, name: name.to_string() })
    }

    /// Creates group `name` (a path from the root whose parent exists). Datasets go inside it
    /// by path: `create_dataset("group/name", ..)`.
    pub fn create_group(&self, name: &str) -> Result<Group> {
        let id = unsafe { H5Gcreate2(self.hid.id, cstr(name).as_ptr(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) };
        let hid = check_id(id, H5Gclose, || format!("{}: cannot create group {name}", self.path))?;
        Ok(Group { hid, what: format!("{}:/{name}", self.path) })
    }

    /// Opens dataset `name`.
    pub fn dataset(&self, name: &str) -> Result<Dataset<'_>> {
        if !self.has(name) {
            return Err(Error::Hdf5(format!("{}: no dataset '{name}'", self.path)));
        }
        let id = unsafe { H5Dopen2(self.hid.id, cstr(name).as_ptr(), H5P_DEFAULT) };
        let hid = check_id(id, H5Dclose, || format!("{}: cannot open dataset {name}", self.path))?;
        Ok(Dataset { hid, file: self, name: name.to_string() })
    }

    /// Root attributes.
    pub fn attrs(&self) -> Attrs {
        Attrs { loc: self.hid.id, owner: self.path.clone() }
    }

    /// Flushes buffers to storage (collective in a parallel file).
    pub fn flush(&self) -> Result<()> {
        let status = unsafe { H5Fflush(self.hid.id, H5F_scope_t::H5F_SCOPE_GLOBAL) };
        self.written(status, || format!("{}: flush failed", self.path))
    }

    /// Closes the file, reporting failure (dropping also closes, silently).
    pub fn close(mut self) -> Result<()> {
        let id = std::mem::replace(&mut self.hid.id, -1);
        let status = unsafe { H5Fclose(id) };
        self.written(status, || format!("{}: close failed", self.path))
    }

    /// The outcome of a call that writes to the file: a failure is worded by [`write_error`]
    /// and, in a parallel file, leaves every parallel file to be abandoned rather than closed.
    fn written(&self, status: herr_t, what: impl FnOnce() -> String) -> Result<()> {
        if status >= 0 {
            return Ok(());
        }
        let e = write_error(&self.path, what());
        if self.parallel {
            PARALLEL_WRITE_FAILED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Err(e)
    }
}

/// An open dataset.
pub struct Dataset<'f> {
    hid: Hid,
    file: &'f File,
    name: String,
}

/// A box-shaped selection: `start` and `count` per dimension.
pub struct Hyperslab<'a> {
    pub start: &'a [usize],
    pub count: &'a [usize],
}

impl<'f> Dataset<'f> {
    fn what(&self) -> String {
        format!("{}:/{}", self.file.path, self.name)
    }

    /// The dataset's shape.
    pub fn shape(&self) -> Result<Vec<usize>> {
        let space = check_id(unsafe { H5Dget_space(self.hid.id) }, H5Sclose, || self.what())?;
        let nd = unsafe { H5Sget_simple_extent_ndims(space.id) };
        let mut dims = vec![0 as hsize_t; nd.max(0) as usize];
        unsafe { H5Sget_simple_extent_dims(space.id, dims.as_mut_ptr(), ptr::null_mut()) };
        Ok(dims.into_iter().map(|d| d as usize).collect())
    }

    /// Attributes of this dataset.
    pub fn attrs(&self) -> Attrs {
        Attrs { loc: self.hid.id, owner: self.what() }
    }

    fn spaces(&self, slab: Option<&Hyperslab>) -> Result<(Hid, Hid, usize)> {
        let file_space = check_id(unsafe { H5Dget_space(self.hid.id) }, H5Sclose, || self.what())?;
        match slab {
            None => {
                let n = self.shape()?.iter().product();
                Ok((file_space, Hid { id: H5S_ALL, close: H5Sclose }, n))
            }
            Some(s) => {
                let n: usize = s.count.iter().product();
                let start: Vec<hsize_t> = s.start.iter().map(|&v| v as hsize_t).collect();
                let count: Vec<hsize_t> = s.count.iter().map(|&v| v as hsize_t).collect();
                let mem_dims = [n.max(1) as hsize_t];
                let mem =
                    check_id(unsafe { H5Screate_simple(1, mem_dims.as_ptr(), ptr::null()) }, H5Sclose, || self.what())?;
                if n == 0 {
                    unsafe {
                        H5Sselect_none(file_space.id);
                        H5Sselect_none(mem.id);
                    }
                } else {
                    check(
                        unsafe {
                            H5Sselect_hyperslab(
                                file_space.id,
                                H5S_seloper_t::H5S_SELECT_SET,
                                start.as_ptr(),
                                ptr::null(),
                                count.as_ptr(),
                                ptr::null(),
                            )
                        },
                        || format!("{}: selection {:?}+{:?} out of bounds", self.what(), s.start, s.count),
                    )?;
                }
                Ok((file_space, mem, n))
            }
        }
    }

    fn xfer(&self, collective: bool) -> Result<Hid> {
        let p = check_id(unsafe { H5Pcreate(*H5P_CLS_DATASET_XFER) }, H5Pclose, || "H5Pcreate(dxpl)".into())?;
        if collective && self.file.parallel {
            check(unsafe { H5Pset_dxpl_mpio(p.id, H5FD_mpio_xfer_t::H5FD_MPIO_COLLECTIVE) }, || {
                "H5Pset_dxpl_mpio".into()
            })?;
        }
        Ok(p)
    }

    /// Writes `data` (row-major) into `slab` (or the whole dataset). In a parallel file with
    /// `collective`, every rank must call this, possibly with an empty selection.
    pub fn write<T: H5Scalar>(&self, slab: Option<&Hyperslab>, data: &[T], collective: bool) -> Result<()> {
        let (fs, ms, n) = self.spaces(slab)?;
        assert_eq!(data.len(), n, "{}: buffer/selection size mismatch", self.what());
        let dxpl = self.xfer(collective)?;
        let buf = if data.is_empty() { [T::default()].as_ptr() } else { data.as_ptr() };
        let status = unsafe { H5Dwrite(self.hid.id, T::type_id(), ms.id, fs.id, dxpl.id, buf.cast()) };
        self.file.written(status, || format!("{}: write failed", self.what()))
    }

    /// Collective write of a whole 1-D dataset by rank 0 alone (`root`); other ranks take part
    /// with an empty selection.
    pub fn write_from_root<T: H5Scalar>(&self, data: &[T], root: bool) -> Result<()> {
        let count = [if root { data.len() } else { 0 }];
        self.write(Some(&Hyperslab { start: &[0], count: &count }), if root { data } else { &[] }, true)
    }

    /// Reads `slab` (or the whole dataset), converting to `T`.
    pub fn read<T: H5Scalar>(&self, slab: Option<&Hyperslab>) -> Result<Vec<T>> {
        let (fs, ms, n) = self.spaces(slab)?;
        let mut out = vec![T::default(); n.max(1)];
        let dxpl = self.xfer(false)?;
        check(unsafe { H5Dread(self.hid.id, T::type_id(), ms.id, fs.id, dxpl.id, out.as_mut_ptr().cast()) }, || {
            format!("{}: read failed (wrong type?)", self.what())
        })?;
        out.truncate(n);
        Ok(out)
    }

    /// Writes every element of a dataset made by [`File::create_strings`]; the file must be
    /// open serially (see there).
    pub fn write_strings(&self, values: &[&str]) -> Result<()> {
        if self.file.parallel {
            return Err(Error::Hdf5(format!(
                "{}: variable-length strings need a serial open (HDF5 cannot write them through MPI-IO)",
                self.what()
            )));
        }
        let n: usize = self.shape()?.iter().product();
        assert_eq!(values.len(), n, "{}: buffer/dataset size mismatch", self.what());
        let owned: Vec<CString> = values.iter().map(|v| cstr(v)).collect();
        let ptrs: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
        let t = string_type()?;
        let status = unsafe { H5Dwrite(self.hid.id, t.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.as_ptr().cast()) };
        self.file.written(status, || format!("{}: write failed", self.what()))
    }

    /// Reads every element of a variable-length string dataset.
    pub fn read_strings(&self) -> Result<Vec<String>> {
        let stored = check_id(unsafe { H5Dget_type(self.hid.id) }, H5Tclose, || self.what())?;
        if unsafe { H5Tis_variable_str(stored.id) } <= 0 {
            return Err(Error::Hdf5(format!("{} is not a variable-length string dataset", self.what())));
        }
        let n: usize = self.shape()?.iter().product();
        let mut ptrs: Vec<*mut c_char> = vec![ptr::null_mut(); n.max(1)];
        let t = string_type()?;
        check(unsafe { H5Dread(self.hid.id, t.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.as_mut_ptr().cast()) }, || {
            format!("{}: read failed", self.what())
        })?;
        ptrs.truncate(n);
        Ok(ptrs.into_iter().map(|p| unsafe { take_c_string(p) }).collect())
    }

    /// Makes this 1-D dataset a dimension scale named `dim` (netCDF/xarray dimension name).
    pub fn make_scale(&self, dim: &str) -> Result<()> {
        check(unsafe { H5DSset_scale(self.hid.id, cstr(dim).as_ptr()) }, || format!("{}: H5DSset_scale", self.what()))
    }

    /// Attaches dimension scale `scale` to dimension `index` of this dataset.
    pub fn attach_scale(&self, scale: &Dataset, index: usize) -> Result<()> {
        check(unsafe { H5DSattach_scale(self.hid.id, scale.hid.id, index as c_uint) }, || {
            format!("{}: attach scale {} to dim {index}", self.what(), scale.name)
        })
    }
}

/// Attributes of a file root or dataset.
/// Valid while the object it was taken from is open.
pub struct Attrs {
    loc: hid_t,
    owner: String,
}

impl Attrs {
    fn create(&self, name: &str, type_id: hid_t, shape: Option<usize>) -> Result<Hid> {
        let space = match shape {
            None => unsafe { H5Screate(H5S_class_t::H5S_SCALAR) },
            Some(n) => {
                let d = [n as hsize_t];
                unsafe { H5Screate_simple(1, d.as_ptr(), ptr::null()) }
            }
        };
        let space = check_id(space, H5Sclose, || format!("{}: attribute space", self.owner))?;
        let id = unsafe { H5Acreate2(self.loc, cstr(name).as_ptr(), type_id, space.id, H5P_DEFAULT, H5P_DEFAULT) };
        check_id(id, H5Aclose, || format!("{}: cannot create attribute {name}", self.owner))
    }

    /// Writes a numeric attribute: a scalar for one value, a 1-D array otherwise.
    pub fn set<T: H5Scalar>(&self, name: &str, values: &[T]) -> Result<()> {
        self.write(name, values, if values.len() == 1 { None } else { Some(values.len()) })
    }

    /// Writes a numeric attribute as a 1-D array of any length, also 0 or 1 (a list to readers).
    pub fn set_list<T: H5Scalar>(&self, name: &str, values: &[T]) -> Result<()> {
        self.write(name, values, Some(values.len()))
    }

    fn write<T: H5Scalar>(&self, name: &str, values: &[T], shape: Option<usize>) -> Result<()> {
        let a = self.create(name, T::type_id(), shape)?;
        check(unsafe { H5Awrite(a.id, T::type_id(), values.as_ptr().cast()) }, || {
            format!("{}: write attribute {name}", self.owner)
        })
    }

    /// Writes a variable-length UTF-8 string attribute (h5py and xarray read it as `str`).
    pub fn set_str(&self, name: &str, value: &str) -> Result<()> {
        let t = string_type()?;
        let a = self.create(name, t.id, None)?;
        let c = cstr(value);
        let p: *const c_char = c.as_ptr();
        check(unsafe { H5Awrite(a.id, t.id, (&p as *const *const c_char).cast()) }, || {
            format!("{}: write attribute {name}", self.owner)
        })
    }

    /// Writes a 1-D array of variable-length UTF-8 strings of any length (h5py reads a numpy
    /// array of `str`).
    pub fn set_strs(&self, name: &str, values: &[&str]) -> Result<()> {
        let t = string_type()?;
        let a = self.create(name, t.id, Some(values.len()))?;
        let owned: Vec<CString> = values.iter().map(|v| cstr(v)).collect();
        let pointers: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
        // An empty Vec's pointer is dangling but not null, and nothing is read through it.
        check(unsafe { H5Awrite(a.id, t.id, pointers.as_ptr().cast()) }, || {
            format!("{}: write attribute {name}", self.owner)
        })
    }

    fn open(&self, name: &str) -> Result<Hid> {
        let cname = cstr(name);
        if unsafe { H5Aexists(self.loc, cname.as_ptr()) } <= 0 {
            return Err(Error::Hdf5(format!("{}: no attribute '{name}'", self.owner)));
        }
        check_id(unsafe { H5Aopen(self.loc, cname.as_ptr(), H5P_DEFAULT) }, H5Aclose, || {
            format!("{}: open attribute {name}", self.owner)
        })
    }

    /// Reads a numeric attribute (scalar or 1-D), converting to `T`.
    pub fn get<T: H5Scalar>(&self, name: &str) -> Result<Vec<T>> {
        let a = self.open(name)?;
        let space = check_id(unsafe { H5Aget_space(a.id) }, H5Sclose, || self.owner.clone())?;
        let nd = unsafe { H5Sget_simple_extent_ndims(space.id) }.max(0) as usize;
        let mut dims = vec![0 as hsize_t; nd];
        unsafe { H5Sget_simple_extent_dims(space.id, dims.as_mut_ptr(), ptr::null_mut()) };
        let n = dims.iter().product::<hsize_t>() as usize;
        let mut out = vec![T::default(); n.max(1)];
        check(unsafe { H5Aread(a.id, T::type_id(), out.as_mut_ptr().cast()) }, || {
            format!("{}: attribute {name} is not numeric", self.owner)
        })?;
        Ok(out)
    }

    /// Reads a string attribute written by [`Attrs::set_str`].
    pub fn get_str(&self, name: &str) -> Result<String> {
        let a = self.open(name)?;
        let stored = check_id(unsafe { H5Aget_type(a.id) }, H5Tclose, || self.owner.clone())?;
        if unsafe { H5Tis_variable_str(stored.id) } <= 0 {
            return Err(Error::Hdf5(format!("{}: attribute {name} is not a variable-length string", self.owner)));
        }
        let t = string_type()?;
        let mut p: *mut c_char = ptr::null_mut();
        check(unsafe { H5Aread(a.id, t.id, (&mut p as *mut *mut c_char).cast()) }, || {
            format!("{}: read attribute {name}", self.owner)
        })?;
        Ok(unsafe { take_c_string(p) })
    }
}

/// The string at `p`, allocated by the library for a variable-length read, which it frees
/// (null: the empty string).
unsafe fn take_c_string(p: *mut c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    unsafe { H5free_memory(p.cast()) };
    s
}

fn string_type() -> Result<Hid> {
    let t = check_id(unsafe { H5Tcopy(*H5T_C_S1) }, H5Tclose, || "H5Tcopy".into())?;
    unsafe {
        H5Tset_size(t.id, H5T_VARIABLE);
        H5Tset_cset(t.id, H5T_cset_t::H5T_CSET_UTF8);
    }
    Ok(t)
}
