"""The HDF5 outputs as xarray datasets (h5netcdf engine), with their coded values named.

- ``open_trajectories(path)``: ``trajectories.h5`` (docs/file-format.md), plus a coordinate
  ``split_name`` (``train``/``valid``/``test`` per member) decoded from ``split``'s
  ``flag_values``/``flag_meanings``.
- ``open_rollout(path)``: ``rollout.h5`` (docs/rollout.md) with ``mode`` as string labels
  (``emulator``, ``thermalized``, ...) and ``member`` as integers. Files whose ``mode`` is a
  numeric index with a ``flag_meanings`` attribute (``"emulator thermalized"``: label i is
  word i) and files that store the labels themselves both give the same dataset.
"""

from __future__ import annotations

import os

import numpy as np
import xarray as xr


def _words(attr) -> list:
    if isinstance(attr, bytes):
        attr = attr.decode()
    return str(attr).split()


def _as_str(values) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel()])


def _integral(ds: xr.Dataset, name: str, path: str) -> xr.Dataset:
    v = ds[name].values
    if np.issubdtype(v.dtype, np.floating):
        if not np.all(np.isfinite(v) & (v == np.round(v))):
            raise ValueError(f"{path}: coordinate '{name}' = {v.tolist()}: expected whole numbers")
        ds = ds.assign_coords({name: (name, v.astype(np.int64), ds[name].attrs)})
    return ds


def _labels(ds: xr.Dataset, name: str, path: str) -> np.ndarray:
    """String labels of coordinate ``name``: stored strings, or indices named by flag_meanings."""
    coord = ds[name]
    if coord.dtype.kind in "OSU":
        return _as_str(coord.values)
    meanings = coord.attrs.get("flag_meanings")
    if meanings is None:
        raise ValueError(f"{path}: coordinate '{name}' is numeric ({coord.values.tolist()}) without 'flag_meanings'")
    words = _words(meanings)
    flags = coord.attrs.get("flag_values")
    codes = np.asarray(flags).ravel().tolist() if flags is not None else list(range(len(words)))
    if len(codes) != len(words):
        raise ValueError(f"{path}: coordinate '{name}': {len(codes)} flag_values for flag_meanings {meanings!r}")
    lookup = dict(zip(codes, words))
    out = []
    for v in coord.values.tolist():
        if v not in lookup:
            raise ValueError(
                f"{path}: coordinate '{name}' has value {v}, which flag_meanings {meanings!r} does not name"
            )
        out.append(lookup[v])
    return np.array(out)


def open_trajectories(path: "os.PathLike[str] | str") -> xr.Dataset:
    """``trajectories.h5`` as an xarray dataset (lazy), with ``split_name`` per member."""
    path = os.fspath(path)
    ds = xr.open_dataset(path, engine="h5netcdf")
    split = ds["split"]
    meanings = split.attrs.get("flag_meanings")
    if meanings is not None:
        words = _words(meanings)
        codes = np.asarray(split.attrs.get("flag_values", np.arange(len(words)))).ravel().tolist()
        lookup = dict(zip(codes, words))
        names = [lookup.get(v, "unknown") for v in split.values.tolist()]
        ds = ds.assign_coords(split_name=("member", np.array(names)))
    return ds


def open_rollout(path: "os.PathLike[str] | str") -> xr.Dataset:
    """``rollout.h5`` as an xarray dataset (lazy), ``mode`` labelled by name, ``member`` integer."""
    path = os.fspath(path)
    ds = xr.open_dataset(path, engine="h5netcdf")
    attrs = {k: v for k, v in ds["mode"].attrs.items() if k not in ("flag_meanings", "flag_values")}
    ds = ds.assign_coords(mode=("mode", _labels(ds, "mode", path), attrs))
    return _integral(ds, "member", path)
