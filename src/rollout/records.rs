//! What a rollout records, held per rank for its members and written collectively to
//! `rollout.h5` (see docs/rollout.md for the layout).
//!
//! Every series is a float64 array `[(mode,) member, record, inner...]` (NaN where nothing was
//! recorded: after a member diverged, or beyond the truth's horizon); a summary series (one
//! value per member, e.g. a time mean) has no record dimension. A rank holds the rows
//! of its members; at each checkpoint the rows are written whole (collective, idempotent), so
//! a resumed run reads them back and continues.

use std::ops::Range;

use crate::error::Result;
use crate::store::h5::{File, Hyperslab};

/// One recorded quantity.
pub struct Series {
    /// Dataset name, e.g. `mse`.
    pub name: String,
    /// Index along the dataset's leading `mode` dimension (None: no mode dimension).
    pub mode: Option<usize>,
    /// Records per member (1 for a summary series).
    pub records: usize,
    /// Whether the dataset has a record dimension (false: a summary series).
    pub timed: bool,
    /// Shape of one record (empty for a scalar).
    pub inner: Vec<usize>,
    /// `[local member][record][inner]`, row-major.
    pub data: Vec<f64>,
    /// Dimension names after `member`: the record dimension's (unless a summary series), then
    /// the inner ones.
    pub dims: Vec<&'static str>,
    pub units: &'static str,
    pub long_name: String,
}

impl Series {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        mode: Option<usize>,
        local: usize,
        records: usize,
        inner: &[usize],
        dims: &[&'static str],
        units: &'static str,
        long_name: &str,
    ) -> Series {
        let per: usize = inner.iter().product::<usize>() * records;
        let timed = dims.len() == inner.len() + 1;
        assert!(timed || (dims.len() == inner.len() && records == 1), "{name}: dims do not match the shape");
        Series {
            name: name.to_string(),
            mode,
            records,
            timed,
            inner: inner.to_vec(),
            data: vec![f64::NAN; local * per],
            dims: dims.to_vec(),
            units,
            long_name: long_name.to_string(),
        }
    }

    fn record_len(&self) -> usize {
        self.inner.iter().product()
    }

    /// Sets record `r` of local member `m`.
    pub fn set(&mut self, m: usize, r: usize, values: &[f64]) {
        let n = self.record_len();
        assert_eq!(values.len(), n, "{}: record size", self.name);
        let at = (m * self.records + r) * n;
        self.data[at..at + n].copy_from_slice(values);
    }

    /// Record `r` of local member `m`.
    pub fn get(&self, m: usize, r: usize) -> &[f64] {
        let n = self.record_len();
        let at = (m * self.records + r) * n;
        &self.data[at..at + n]
    }

    /// Global shape `[(modes,) members, (records,) inner...]`.
    pub fn shape(&self, modes: usize, members: usize) -> Vec<usize> {
        let mut s = if self.mode.is_some() { vec![modes] } else { vec![] };
        s.push(members);
        if self.timed {
            s.push(self.records);
        }
        s.extend(&self.inner);
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
            count.push(self.records);
        }
        start.extend(self.inner.iter().map(|_| 0));
        count.extend(&self.inner);
        (start, count)
    }

    /// Writes this rank's rows (collective: every rank calls it).
    pub fn write(&self, f: &File, local: &Range<usize>) -> Result<()> {
        let (start, count) = self.slab(local);
        f.dataset(&self.name)?.write(Some(&Hyperslab { start: &start, count: &count }), &self.data, true)
    }

    /// Reads this rank's rows back (resume).
    pub fn read(&mut self, f: &File, local: &Range<usize>) -> Result<()> {
        let (start, count) = self.slab(local);
        self.data = f.dataset(&self.name)?.read(Some(&Hyperslab { start: &start, count: &count }))?;
        Ok(())
    }
}
