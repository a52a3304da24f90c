//! What a rollout records, held per rank for its members and written collectively to
//! `rollout.h5` (the schema: [`crate::store::rollout`]).
//!
//! Every series is a float64 array `[(mode,) member, record, inner...]` (NaN where nothing was
//! recorded: after a member diverged, or beyond the truth's horizon); a summary series (one
//! value per member, e.g. a time mean) has no record dimension. A rank holds the rows
//! of its members; at each checkpoint the rows are written whole (collective, idempotent), so
//! a resumed run reads them back and continues.

use std::ops::Range;

use ndarray::{s, Array3, ArrayView1, ArrayView3};

use crate::error::Result;
use crate::store::h5::{File, Hyperslab};

/// The dimensions of a series after `member`.
pub struct Dims {
    /// Records per member (1 for a summary series).
    pub records: usize,
    /// Shape of one record (empty for a scalar).
    pub inner: Vec<usize>,
    /// Dimension names: the record dimension's (unless a summary series), then the inner ones.
    pub names: Vec<&'static str>,
}

/// One recorded quantity.
pub struct Series {
    /// Dataset name, e.g. `mse`.
    pub name: &'static str,
    /// Index along the dataset's leading `mode` dimension (None: no mode dimension).
    pub mode: Option<usize>,
    /// Whether the dataset has a record dimension (false: a summary series).
    pub timed: bool,
    pub dims: Dims,
    /// `[local member, record, value]`: the values of one record (its inner shape, row-major)
    /// along the last axis.
    pub data: Array3<f64>,
    pub units: &'static str,
    pub long_name: String,
}

impl Series {
    /// A series of `local` members, NaN until recorded.
    pub fn new(
        name: &'static str,
        mode: Option<usize>,
        local: usize,
        dims: Dims,
        units: &'static str,
        long_name: &str,
    ) -> Series {
        let timed = dims.names.len() == dims.inner.len() + 1;
        assert!(
            timed || (dims.names.len() == dims.inner.len() && dims.records == 1),
            "{name}: dims do not match the shape"
        );
        let data = Array3::from_elem((local, dims.records, dims.inner.iter().product()), f64::NAN);
        Series { name, mode, timed, dims, data, units, long_name: long_name.to_string() }
    }

    /// Sets record `r` of local member `m`.
    pub fn set(&mut self, m: usize, r: usize, values: &[f64]) {
        self.data.slice_mut(s![m, r, ..]).assign(&ArrayView1::from(values));
    }

    /// The records of every local member, `[member, record, value]`.
    pub fn view(&self) -> ArrayView3<'_, f64> {
        self.data.view()
    }

    /// The data in row-major order, as stored.
    pub fn flat(&self) -> &[f64] {
        self.data.as_slice().expect("a standard-layout array")
    }

    /// Global shape `[(modes,) members, (records,) inner...]`.
    pub fn shape(&self, modes: usize, members: usize) -> Vec<usize> {
        let mut s = if self.mode.is_some() { vec![modes] } else { vec![] };
        s.push(members);
        if self.timed {
            s.push(self.dims.records);
        }
        s.extend(&self.dims.inner);
        s
    }

    fn slab(&self, local: &Range<usize>) -> (Vec<usize>, Vec<usize>) {
        let (mut start, mut count) = match self.mode {
            Some(i) => (vec![i], vec![1]),
            None => (vec![], vec![]),
        };
        start.push(local.start);
        count.push(local.len());
        if self.timed {
            start.push(0);
            count.push(self.dims.records);
        }
        start.extend(self.dims.inner.iter().map(|_| 0));
        count.extend(&self.dims.inner);
        (start, count)
    }

    /// Writes this rank's rows (collective: every rank calls it).
    pub fn write(&self, f: &File, local: &Range<usize>) -> Result<()> {
        let (start, count) = self.slab(local);
        f.dataset(self.name)?.write(Some(&Hyperslab { start: &start, count: &count }), self.flat(), true)
    }

    /// Reads this rank's rows back (resume).
    pub fn read(&mut self, f: &File, local: &Range<usize>) -> Result<()> {
        let (start, count) = self.slab(local);
        let flat = f.dataset(self.name)?.read(Some(&Hyperslab { start: &start, count: &count }))?;
        self.data = Array3::from_shape_vec(self.data.raw_dim(), flat).expect("the slab's size");
        Ok(())
    }
}
