"""Reads a finished ``trajectories.h5`` the way a user would (h5py, xarray/h5netcdf, numpy).

The file under test comes from the environment variable ``THERMALIZER_TRAJECTORIES``;
the Rust test harness sets it after generating a small ensemble. Without it the whole
module is skipped. The expected layout is described in ``docs/file-format.md``.

Run by hand with::

    THERMALIZER_TRAJECTORIES=runs/small/trajectories.h5 \
        ~/.local/share/thermalizer/venv/bin/python -m pytest -q tests/python
"""

import os
import re

import pytest

PATH = os.environ.get("THERMALIZER_TRAJECTORIES")
if not PATH:
    pytest.skip(
        "THERMALIZER_TRAJECTORIES is not set (the Rust test harness sets it)",
        allow_module_level=True,
    )

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

DIMS = ("member", "time", "y", "x")

ROOT_ATTRS = (
    "system",
    "grid",
    "output_grid",
    "dt",
    "viscosity",
    "drag",
    "forcing_wavenumber",
    "forcing_amplitude",
    "domain_length",
    "steps_per_sample",
    "spinup_steps",
    "precision",
    "seed",
    "config",
    "thermalizer_version",
    "git_revision",
    "mpi_ranks",
    "title",
)


# --------------------------------------------------------------------------- helpers


def as_str(value):
    """HDF5 strings come back as str (variable length) or bytes (fixed length)."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.size == 1:
        return as_str(value.reshape(()).item())
    return str(value)


def as_scalar(value):
    arr = np.asarray(value)
    assert arr.size == 1, f"expected a scalar attribute, got shape {arr.shape}"
    return arr.reshape(()).item()


def scale_name(h5file, ds, axis):
    """Path of the single dimension scale attached to ``ds`` along ``axis``."""
    scales = list(ds.dims[axis].values())
    assert len(scales) == 1, (
        f"{ds.name} axis {axis}: expected exactly one dimension scale, got {len(scales)}"
    )
    return scales[0].name


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def f():
    assert os.path.isfile(PATH), f"THERMALIZER_TRAJECTORIES={PATH!r} is not a file"
    with h5py.File(PATH, "r") as h5:
        yield h5


@pytest.fixture(scope="module")
def diverged(f):
    """Boolean per member: True where /diverged_at records a blow-up."""
    return np.asarray(f["diverged_at"][...]) >= 0


@pytest.fixture(scope="module")
def xds():
    ds = xr.open_dataset(PATH, engine="h5netcdf")
    try:
        yield ds
    finally:
        ds.close()


def finite_snapshots(f, diverged, limit=None):
    """Yield (member, t, 2-D float64 snapshot) for snapshots of non-diverged members."""
    vort = f["vorticity"]
    n = 0
    for m in np.flatnonzero(~diverged):
        block = vort[m]  # one member: (time, y, x); the file is chunked by member
        for t in range(block.shape[0]):
            yield int(m), t, block[t].astype(np.float64)
            n += 1
            if limit is not None and n >= limit:
                return


# --------------------------------------------------------------------------- file & layout


def test_file_is_complete_run_output():
    assert not PATH.endswith(".partial"), "a .partial file is an unfinished run"
    directory = os.path.dirname(os.path.abspath(PATH))
    assert not os.path.exists(os.path.join(directory, "trajectories.h5.partial"))
    assert not os.path.exists(os.path.join(directory, "trajectories.checkpoint.h5")), (
        "a checkpoint next to the output means the run was interrupted"
    )


def test_datasets_present(f):
    for name in ("vorticity", "member", "time", "y", "x", "split", "diverged_at"):
        assert name in f, f"missing dataset /{name}"
        assert isinstance(f[name], h5py.Dataset)


def test_shapes_consistent(f):
    vort = f["vorticity"]
    assert vort.ndim == 4
    expected = (f["member"].shape[0], f["time"].shape[0], f["y"].shape[0], f["x"].shape[0])
    assert vort.shape == expected
    for name in ("member", "time", "y", "x", "split", "diverged_at"):
        assert f[name].ndim == 1, f"/{name} should be one-dimensional"
    assert f["split"].shape == (vort.shape[0],)
    assert f["diverged_at"].shape == (vort.shape[0],)
    assert all(n > 0 for n in vort.shape), f"empty dimension in {vort.shape}"


def test_dtypes(f):
    assert f["vorticity"].dtype == np.float32
    assert f["member"].dtype == np.int64
    assert f["time"].dtype == np.float64
    assert f["y"].dtype == np.float64
    assert f["x"].dtype == np.float64
    assert f["split"].dtype == np.int8
    assert f["diverged_at"].dtype == np.int64


def test_vorticity_layout_is_contiguous(f):
    # Contiguous row-major [member, time, y, x]: one member's time window is one contiguous
    # byte range, and no chunk index exists that a crash could leave half-written.
    vort = f["vorticity"]
    assert vort.chunks is None
    assert vort.compression is None


def test_dimension_scales_attached(f):
    for name in DIMS:
        assert h5py.h5ds.is_scale(f[name].id), f"/{name} is not an HDF5 dimension scale"
    vort = f["vorticity"]
    for axis, name in enumerate(DIMS):
        assert scale_name(f, vort, axis) == "/" + name
    for name in ("split", "diverged_at"):
        assert scale_name(f, f[name], 0) == "/member"


def test_variable_attributes(f):
    vort = f["vorticity"]
    assert as_str(vort.attrs["units"]) == "1"
    assert as_str(vort.attrs["long_name"]) == "vorticity"
    assert as_str(f["time"].attrs["units"]) == "1"
    assert as_str(f["time"].attrs["long_name"]) == "simulation time"
    for name in ("x", "y"):
        assert as_str(f[name].attrs["units"]) == "1"
        assert as_str(f[name].attrs["long_name"]).strip()
    split = f["split"]
    np.testing.assert_array_equal(np.asarray(split.attrs["flag_values"]).ravel(), [0, 1, 2])
    assert as_str(split.attrs["flag_meanings"]).split() == ["train", "valid", "test"]
    assert as_str(split.attrs["long_name"]).strip()


# --------------------------------------------------------------------------- root attributes


def test_root_attributes_present(f):
    missing = [a for a in ROOT_ATTRS if a not in f.attrs]
    assert not missing, f"missing root attributes: {missing}"


def test_root_attribute_values(f):
    a = f.attrs
    assert as_str(a["system"]) == "kolmogorov"
    assert as_str(a["precision"]) in ("f64", "f32")
    assert as_str(a["title"]).strip()
    assert as_str(a["thermalizer_version"]).strip()
    assert isinstance(as_str(a["git_revision"]), str)
    grid = int(as_scalar(a["grid"]))
    output_grid = int(as_scalar(a["output_grid"]))
    assert grid > 0 and 0 < output_grid <= grid
    assert output_grid == f["x"].shape[0] == f["y"].shape[0]
    assert np.isclose(float(as_scalar(a["domain_length"])), 2 * np.pi, rtol=1e-12)
    assert float(as_scalar(a["dt"])) > 0
    assert float(as_scalar(a["viscosity"])) >= 0
    assert float(as_scalar(a["drag"])) >= 0
    assert int(as_scalar(a["forcing_wavenumber"])) >= 0
    assert np.isfinite(float(as_scalar(a["forcing_amplitude"])))
    assert int(as_scalar(a["steps_per_sample"])) >= 1
    assert int(as_scalar(a["spinup_steps"])) >= 0
    assert int(as_scalar(a["mpi_ranks"])) >= 1
    int(as_scalar(a["seed"]))  # must be an integer


def test_config_attribute_is_yaml(f):
    text = as_str(f.attrs["config"])
    assert re.search(r"^\s*system\s*:", text, re.MULTILINE), "config lacks a 'system:' key"
    try:
        import yaml
    except ImportError:
        # No YAML parser available: at least every non-blank, non-comment line must look
        # like YAML (a mapping entry, a list item, or a continuation of either).
        for line in text.splitlines():
            s = line.strip()
            if not s or s.startswith("#") or s == "---":
                continue
            assert ":" in s or s.startswith("- ") or line[:1].isspace(), (
                f"config line does not look like YAML: {line!r}"
            )
    else:
        cfg = yaml.safe_load(text)
        assert isinstance(cfg, dict)
        assert str(cfg["system"]) == "kolmogorov"


# --------------------------------------------------------------------------- coordinates


def test_member_coordinate(f):
    m = f["member"][...]
    np.testing.assert_array_equal(m, np.arange(m.shape[0]))


def test_xy_coordinates(f):
    for name in ("x", "y"):
        c = f[name][...]
        n = c.shape[0]
        np.testing.assert_allclose(c, np.arange(n) * (2 * np.pi / n), rtol=0, atol=1e-12)


def test_time_strictly_increasing(f):
    t = f["time"][...]
    assert np.all(np.isfinite(t))
    if t.shape[0] > 1:
        assert np.all(np.diff(t) > 0), "time must be strictly increasing"


def test_time_spacing_matches_sampling(f):
    t = f["time"][...]
    if t.shape[0] < 2:
        pytest.skip("a single sample has no spacing")
    dt = float(as_scalar(f.attrs["dt"]))
    sps = int(as_scalar(f.attrs["steps_per_sample"]))
    np.testing.assert_allclose(
        np.diff(t), dt * sps, rtol=1e-6, atol=1e-9 * max(1.0, float(np.abs(t).max()))
    )


# --------------------------------------------------------------------------- split / divergence


def test_split_values(f):
    s = f["split"][...]
    assert set(np.unique(s).tolist()) <= {0, 1, 2}


def test_diverged_at_values(f):
    d = f["diverged_at"][...]
    assert np.all(d >= -1), "diverged_at is a step index or -1"


def test_diverged_members_nan_suffix(f, diverged):
    """A diverged member holds finite snapshots, then all-NaN snapshots to the end."""
    vort = f["vorticity"]
    for m in np.flatnonzero(diverged):
        block = vort[m]
        finite = np.isfinite(block).reshape(block.shape[0], -1)
        all_finite = finite.all(axis=1)
        all_nan = np.isnan(block).reshape(block.shape[0], -1).all(axis=1)
        assert np.all(all_finite | all_nan), (
            f"member {m}: snapshots must be fully finite or fully NaN"
        )
        assert not all_finite[-1], f"member {m} is marked diverged but ends finite"
        first_nan = int(np.argmax(all_nan))
        assert np.all(all_nan[first_nan:]), f"member {m}: finite snapshot after NaN"


# --------------------------------------------------------------------------- field content


def test_non_diverged_members_finite(f, diverged):
    vort = f["vorticity"]
    for m in np.flatnonzero(~diverged):
        assert np.all(np.isfinite(vort[m])), f"member {m} never diverged but has non-finite values"


def test_spatial_mean_zero_and_std_positive(f, diverged):
    checked = 0
    for m, t, w in finite_snapshots(f, diverged):
        std = w.std()
        assert std > 0, f"member {m} time {t}: constant vorticity field"
        mean = w.mean()
        assert abs(mean) < 1e-3 * std, (
            f"member {m} time {t}: domain mean {mean:.3e} not ~0 (std {std:.3e})"
        )
        checked += 1
    if checked == 0:
        pytest.skip("every member diverged; nothing finite to check")


def test_band_limited_no_nyquist_energy(f, diverged):
    """The stored field has only |k| < N/2: the Nyquist row and column of rfft2 are empty."""
    checked = 0
    for m, t, w in finite_snapshots(f, diverged, limit=4):
        ny, nx = w.shape
        spec = np.abs(np.fft.rfft2(w)) ** 2
        total = spec.sum()
        assert total > 0
        nyq = 0.0
        if ny % 2 == 0:
            nyq += spec[ny // 2, :].sum()
        if nx % 2 == 0:
            nyq += spec[:, nx // 2].sum()
            if ny % 2 == 0:
                nyq -= spec[ny // 2, nx // 2]  # counted twice
        assert nyq / total < 1e-10, (
            f"member {m} time {t}: Nyquist energy fraction {nyq / total:.3e}"
        )
        checked += 1
    if checked == 0:
        pytest.skip("every member diverged; nothing finite to check")


# --------------------------------------------------------------------------- xarray view


def test_xarray_named_dimensions(xds):
    assert "vorticity" in xds.data_vars
    assert xds["vorticity"].dims == DIMS
    assert xds["vorticity"].dtype == np.float32
    assert xds["split"].dims == ("member",)
    assert xds["diverged_at"].dims == ("member",)
    for name in DIMS:
        assert name in xds.coords, f"{name} is not a coordinate in xarray"
    phony = [d for d in xds.dims if str(d).startswith("phony_dim")]
    assert not phony, f"unnamed HDF5 dimensions: {phony}"


def test_xarray_phony_dims_sort_finds_none():
    # With phony_dims="sort" h5netcdf opens files with unlabelled axes instead of raising;
    # this makes the failure message name the variables that lack dimension scales.
    with xr.open_dataset(PATH, engine="h5netcdf", phony_dims="sort") as ds:
        bad = {
            name: var.dims
            for name, var in ds.variables.items()
            if any(str(d).startswith("phony_dim") for d in var.dims)
        }
        assert not bad, f"variables with unnamed dimensions: {bad}"


def test_xarray_coordinates_and_attrs(xds, f):
    n = xds.sizes["x"]
    np.testing.assert_allclose(xds["x"].values, np.arange(n) * 2 * np.pi / n, atol=1e-12)
    n = xds.sizes["y"]
    np.testing.assert_allclose(xds["y"].values, np.arange(n) * 2 * np.pi / n, atol=1e-12)
    np.testing.assert_array_equal(xds["time"].values, f["time"][...])
    assert xds["time"].dtype == np.float64, "time must stay plain floats (not decoded as dates)"
    np.testing.assert_array_equal(xds["member"].values, np.arange(xds.sizes["member"]))
    assert xds.attrs["system"] == "kolmogorov"
    assert "system:" in xds.attrs["config"]
    assert xds["vorticity"].attrs.get("units") == "1"


def test_xarray_reads_same_values(xds, f):
    snap = xds["vorticity"].isel(member=0, time=0).values
    np.testing.assert_array_equal(snap, f["vorticity"][0, 0])
    # select a split the way users do
    train = xds["vorticity"].isel(member=(xds["split"] == 0).values)
    assert train.sizes["member"] == int((f["split"][...] == 0).sum())
