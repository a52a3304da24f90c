"""Reads a finished ``trajectories.h5`` the way a user would (h5py, xarray/h5netcdf, numpy).

The file under test comes from the environment variable ``THERMALIZER_TRAJECTORIES``;
the Rust test harness sets it after generating a small ensemble. Without it the whole
module is skipped. The same checks cover both systems, chosen by the root attribute
``system``: ``kolmogorov`` (``/vorticity[member, time, y, x]``) and ``qg``
(``/q[member, time, layer, y, x]``). The expected layout is described in
``docs/file-format.md``. The file is also checked as netCDF-4/CF through netCDF-C
(``ncdump``, xarray's ``netcdf4`` engine) beside h5netcdf (``netcdf_checks.py``).

Run by hand with::

    THERMALIZER_TRAJECTORIES=runs/small/trajectories.h5 \
        ~/.local/share/thermalizer/venv/bin/python -m pytest -q tests/python/test_trajectories.py

No test is skipped for being about the other system (the Rust harness treats a skip as a
failure); system-specific checks branch inside the tests instead.
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

import netcdf_checks  # noqa: E402  (tests/python, on sys.path under pytest)

F32_EPS = float(np.finfo(np.float32).eps)

COMMON_ROOT_ATTRS = (
    "system",
    "title",
    "equation",
    "grid",
    "output_grid",
    "domain_length",
    "dt",
    "steps_per_sample",
    "spinup_steps",
    "initial_condition",
    "precision",
    "seed",
    "config",
    "thermalizer_version",
    "git_revision",
    "mpi_ranks",
)

KOLMOGOROV_ATTRS = ("viscosity", "reynolds", "drag", "forcing_wavenumber", "forcing_amplitude")
QG_ATTRS = (
    "L",
    "W",
    "beta",
    "rd",
    "delta",
    "U1",
    "U2",
    "rek",
    "F1",
    "F2",
    "smagorinsky",
    "dealias",
)

# What each system stores: variable, its dimensions, units, and the system's own root
# attributes (the other system's must be absent).
SYSTEMS = {
    "kolmogorov": dict(
        var="vorticity",
        dims=("member", "time", "y", "x"),
        long_name="vorticity",
        units="1",
        length_units="1",
        time_units="1",
        attrs=KOLMOGOROV_ATTRS,
        foreign=QG_ATTRS,
    ),
    "qg": dict(
        var="q",
        dims=("member", "time", "layer", "y", "x"),
        long_name="potential vorticity anomaly",
        units="s-1",
        length_units="m",
        time_units="s",
        attrs=QG_ATTRS,
        foreign=KOLMOGOROV_ATTRS,
    ),
}


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
def system(f):
    assert "system" in f.attrs, "missing root attribute 'system'"
    name = as_str(f.attrs["system"])
    assert name in SYSTEMS, f"unknown system {name!r}"
    return name


@pytest.fixture(scope="module")
def spec(system):
    return SYSTEMS[system]


@pytest.fixture(scope="module")
def var(spec):
    return spec["var"]


@pytest.fixture(scope="module")
def dims(spec):
    return spec["dims"]


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


def member_block(f, var, m):
    """One member as float32 ``[time, layer, y, x]`` (one layer for Kolmogorov)."""
    block = f[var][m]  # the file is contiguous, one member's window is one byte range
    if block.ndim == 3:
        block = block[:, np.newaxis]
    return block


def finite_snapshots(f, var, diverged, limit=None):
    """Yield (member, t, float64 ``[layer, y, x]`` snapshot) of non-diverged members."""
    n = 0
    for m in np.flatnonzero(~diverged):
        block = member_block(f, var, m)
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


def test_datasets_present(f, var, dims):
    for name in (var, *dims, "split", "diverged_at"):
        assert name in f, f"missing dataset /{name}"
        assert isinstance(f[name], h5py.Dataset)
    others = {s["var"] for s in SYSTEMS.values()} - {var}
    for name in others | ({"layer"} - set(dims)):
        assert name not in f, f"/{name} does not belong in a {as_str(f.attrs['system'])} file"


def test_shapes_consistent(f, var, dims):
    field = f[var]
    assert field.ndim == len(dims)
    assert field.shape == tuple(f[name].shape[0] for name in dims)
    for name in (*dims, "split", "diverged_at"):
        assert f[name].ndim == 1, f"/{name} should be one-dimensional"
    assert f["split"].shape == (field.shape[0],)
    assert f["diverged_at"].shape == (field.shape[0],)
    assert f["x"].shape == f["y"].shape, "the grid is square"
    assert all(n > 0 for n in field.shape), f"empty dimension in {field.shape}"


def test_dtypes(f, var, dims):
    assert f[var].dtype == np.float32
    assert f["member"].dtype == np.int64
    assert f["time"].dtype == np.float64
    assert f["y"].dtype == np.float64
    assert f["x"].dtype == np.float64
    if "layer" in dims:
        assert f["layer"].dtype == np.int64
    assert f["split"].dtype == np.int8
    assert f["diverged_at"].dtype == np.int64


def test_field_layout_is_contiguous(f, var):
    # Contiguous row-major storage: one member's time window is one contiguous byte range,
    # and no chunk index exists that a crash could leave half-written.
    field = f[var]
    assert field.chunks is None
    assert field.compression is None


def test_dimension_scales_attached(f, var, dims):
    for name in dims:
        assert h5py.h5ds.is_scale(f[name].id), f"/{name} is not an HDF5 dimension scale"
    field = f[var]
    for axis, name in enumerate(dims):
        assert scale_name(f, field, axis) == "/" + name
    for name in ("split", "diverged_at"):
        assert scale_name(f, f[name], 0) == "/member"


def test_variable_attributes(f, spec):
    field = f[spec["var"]]
    assert as_str(field.attrs["units"]) == spec["units"]
    assert as_str(field.attrs["long_name"]) == spec["long_name"]
    assert as_str(field.attrs["description"]).strip()
    assert as_str(f["time"].attrs["units"]) == spec["time_units"]
    assert as_str(f["time"].attrs["long_name"]) == "simulation time"
    for name in ("x", "y"):
        assert as_str(f[name].attrs["units"]) == spec["length_units"]
        assert as_str(f[name].attrs["long_name"]).strip()
    split = f["split"]
    np.testing.assert_array_equal(np.asarray(split.attrs["flag_values"]).ravel(), [0, 1, 2])
    assert as_str(split.attrs["flag_meanings"]).split() == ["train", "valid", "test"]
    assert as_str(split.attrs["long_name"]).strip()


def test_layer_coordinate(f, dims):
    if "layer" not in dims:
        assert "layer" not in f
        return
    np.testing.assert_array_equal(f["layer"][...], [1, 2])
    assert as_str(f["layer"].attrs["long_name"]) == "layer (1: upper, 2: lower)"


# --------------------------------------------------------------------------- root attributes


def test_root_attributes_present(f, spec):
    missing = [a for a in (*COMMON_ROOT_ATTRS, *spec["attrs"]) if a not in f.attrs]
    assert not missing, f"missing root attributes: {missing}"
    foreign = [a for a in spec["foreign"] if a in f.attrs]
    assert not foreign, f"attributes of the other system: {foreign}"


def test_root_attribute_values(f, system):
    a = f.attrs
    assert as_str(a["precision"]) in ("f64", "f32")
    assert as_str(a["title"]).strip()
    assert as_str(a["equation"]).strip()
    assert as_str(a["initial_condition"]).strip()
    assert as_str(a["thermalizer_version"]).strip()
    assert isinstance(as_str(a["git_revision"]), str)
    grid = int(as_scalar(a["grid"]))
    output_grid = int(as_scalar(a["output_grid"]))
    assert grid > 0 and 0 < output_grid <= grid
    assert output_grid == f["x"].shape[0] == f["y"].shape[0]
    length = float(as_scalar(a["domain_length"]))
    assert float(as_scalar(a["dt"])) > 0
    assert int(as_scalar(a["steps_per_sample"])) >= 1
    spinup = int(as_scalar(a["spinup_steps"]))
    assert spinup >= 0
    if as_str(a["initial_condition"]) != "random":
        assert spinup == 0, "a file initial condition has no spin-up"
    assert int(as_scalar(a["mpi_ranks"])) >= 1
    int(as_scalar(a["seed"]))  # must be an integer
    if system == "kolmogorov":
        assert np.isclose(length, 2 * np.pi, rtol=1e-12)
        nu = float(as_scalar(a["viscosity"]))
        assert nu >= 0
        if nu > 0:
            assert np.isclose(float(as_scalar(a["reynolds"])), 1 / nu, rtol=1e-12)
        assert float(as_scalar(a["drag"])) >= 0
        assert int(as_scalar(a["forcing_wavenumber"])) >= 0
        assert np.isfinite(float(as_scalar(a["forcing_amplitude"])))
    else:
        assert length > 0
        assert float(as_scalar(a["L"])) == length
        assert float(as_scalar(a["W"])) == length
        rd, delta = float(as_scalar(a["rd"])), float(as_scalar(a["delta"]))
        assert rd > 0 and delta > 0
        f1 = 1 / (rd**2 * (1 + delta))
        assert np.isclose(float(as_scalar(a["F1"])), f1, rtol=1e-12)
        assert np.isclose(float(as_scalar(a["F2"])), delta * f1, rtol=1e-12)
        for name in ("beta", "U1", "U2"):
            assert np.isfinite(float(as_scalar(a[name]))), name
        assert float(as_scalar(a["rek"])) >= 0
        assert float(as_scalar(a["smagorinsky"])) >= 0
        assert as_str(a["dealias"]) in ("exponential", "two_thirds")


def test_config_attribute_is_yaml(f, system):
    text = as_str(f.attrs["config"])
    assert re.search(r"^system\s*:", text, re.MULTILINE), "config lacks a 'system:' key"
    kind = re.search(r"^\s+kind\s*:\s*(\S+)\s*$", text, re.MULTILINE)
    assert kind and kind.group(1) == system, "config's system.kind differs from /system"
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
        assert str(cfg["system"]["kind"]) == system


# --------------------------------------------------------------------------- coordinates


def test_member_coordinate(f):
    m = f["member"][...]
    np.testing.assert_array_equal(m, np.arange(m.shape[0]))


def test_xy_coordinates(f):
    length = float(as_scalar(f.attrs["domain_length"]))
    for name in ("x", "y"):
        c = f[name][...]
        n = c.shape[0]
        np.testing.assert_allclose(c, np.arange(n) * (length / n), rtol=0, atol=1e-12 * length)


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


def test_time_values(f):
    """``time[i] = (spinup_steps + i·steps_per_sample)·dt``; spinup_steps is 0 for a file IC."""
    t = f["time"][...]
    dt = float(as_scalar(f.attrs["dt"]))
    sps = int(as_scalar(f.attrs["steps_per_sample"]))
    spinup = int(as_scalar(f.attrs["spinup_steps"]))
    expected = (spinup + np.arange(t.shape[0]) * sps) * dt
    np.testing.assert_allclose(t, expected, rtol=1e-12, atol=1e-12 * dt)


# --------------------------------------------------------------------------- split / divergence


def test_split_values(f):
    s = f["split"][...]
    assert set(np.unique(s).tolist()) <= {0, 1, 2}


def test_diverged_at_values(f):
    d = f["diverged_at"][...]
    assert np.all(d >= -1), "diverged_at is a step index or -1"


def test_diverged_members_nan_suffix(f, var, diverged):
    """A diverged member holds finite snapshots, then all-NaN snapshots to the end."""
    for m in np.flatnonzero(diverged):
        block = f[var][m]
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


def test_non_diverged_members_finite(f, var, diverged):
    for m in np.flatnonzero(~diverged):
        assert np.all(np.isfinite(f[var][m])), f"member {m} never diverged but has non-finite values"


def test_snapshots_not_constant(f, var, diverged):
    # Per snapshot over all layers: a QG lower layer may be identically zero (pyqg's random IC
    # starts it at rest, and an IC-file run stores its t = 0 state).
    checked = 0
    for m, t, w in finite_snapshots(f, var, diverged):
        assert w.std(axis=(-2, -1)).max() > 0, f"member {m} time {t}: constant field"
        checked += 1
    if checked == 0:
        pytest.skip("every member diverged; nothing finite to check")


def test_spatial_mean(f, var, system, diverged):
    """The domain mean (``k = 0``) is conserved: constant in time per member and layer, to the
    float32 rounding of the stored values. Kolmogorov vorticity has zero mean; QG keeps pyqg's
    initial mean PV, which is not zero in general."""
    checked = 0
    for m in np.flatnonzero(~diverged):
        block = member_block(f, var, m).astype(np.float64)  # [time, layer, y, x]
        means = block.mean(axis=(-2, -1))  # [time, layer]
        stds = block.std(axis=(-2, -1))
        scale = np.abs(block).max(axis=(0, 2, 3))  # [layer]
        # Each stored value is rounded by at most eps/2 of its magnitude, so two means differ
        # by at most eps·max|field| (plus the solver's own round-off in f32 precision).
        tol = 4 * F32_EPS * scale
        drift = np.abs(means - means[0]).max(axis=0)
        assert np.all(drift <= tol), (
            f"member {m}: spatial mean drifts by {drift} (tolerance {tol}) per layer"
        )
        if system == "kolmogorov":
            for t in range(block.shape[0]):
                mean, std = means[t, 0], stds[t, 0]
                assert abs(mean) < 1e-3 * std, (
                    f"member {m} time {t}: domain mean {mean:.3e} not ~0 (std {std:.3e})"
                )
        checked += 1
    if checked == 0:
        pytest.skip("every member diverged; nothing finite to check")


def test_no_nyquist_energy(f, var, diverged):
    """The stored field holds only |k|, |l| < N/2: the Nyquist row and column of rfft2 are
    empty (per layer; the k = 0 mode is left out of the total so a large QG mean PV does not
    hide the rest)."""
    checked = 0
    for m, t, w in finite_snapshots(f, var, diverged, limit=4):
        ny, nx = w.shape[-2:]
        for layer, spec in enumerate(np.abs(np.fft.rfft2(w)) ** 2):
            spec[0, 0] = 0.0
            total = spec.sum()
            if total == 0:
                continue  # a constant layer (a QG lower layer at rest)
            nyq = 0.0
            if ny % 2 == 0:
                nyq += spec[ny // 2, :].sum()
            if nx % 2 == 0:
                nyq += spec[:, nx // 2].sum()
                if ny % 2 == 0:
                    nyq -= spec[ny // 2, nx // 2]  # counted twice
            assert nyq / total < 1e-10, (
                f"member {m} time {t} layer index {layer}: Nyquist energy fraction {nyq / total:.3e}"
            )
            checked += 1
    if checked == 0:
        pytest.skip("every member diverged; nothing finite to check")


# --------------------------------------------------------------------------- xarray view


def test_xarray_named_dimensions(xds, var, dims):
    assert var in xds.data_vars
    assert xds[var].dims == dims
    assert xds[var].dtype == np.float32
    assert xds["split"].dims == ("member",)
    assert xds["diverged_at"].dims == ("member",)
    for name in dims:
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


def test_xarray_coordinates_and_attrs(xds, f, system, spec):
    length = float(as_scalar(f.attrs["domain_length"]))
    for name in ("x", "y"):
        n = xds.sizes[name]
        np.testing.assert_allclose(
            xds[name].values, np.arange(n) * length / n, rtol=0, atol=1e-12 * length
        )
        assert xds[name].attrs.get("units") == spec["length_units"]
    np.testing.assert_array_equal(xds["time"].values, f["time"][...])
    assert xds["time"].dtype == np.float64, "time must stay plain floats (not decoded as dates)"
    np.testing.assert_array_equal(xds["member"].values, np.arange(xds.sizes["member"]))
    if "layer" in spec["dims"]:
        np.testing.assert_array_equal(xds["layer"].values, [1, 2])
    assert xds.attrs["system"] == system
    assert "system:" in xds.attrs["config"]
    assert xds[spec["var"]].attrs.get("units") == spec["units"]


def test_xarray_reads_same_values(xds, f, var):
    snap = xds[var].isel(member=0, time=0).values
    np.testing.assert_array_equal(snap, f[var][0, 0])
    # select a split the way users do
    train = xds[var].isel(member=(xds["split"] == 0).values)
    assert train.sizes["member"] == int((f["split"][...] == 0).sum())


# --------------------------------------------------------------------------- netCDF-4 / CF


def test_netcdf_c_and_h5netcdf_read_the_same_file(dims):
    nc = netcdf_checks.assert_netcdf_readers_agree(PATH)
    for name in dims:
        assert name in nc.coords, f"netCDF-C does not see {name} as a coordinate"
    # netCDF-C reads the data too, not only the header.
    out = netcdf_checks.ncdump("-v", ",".join(dims), PATH)
    for name in dims:
        assert re.search(rf"^ {name} = ", out, flags=re.M), f"ncdump -v printed no {name} values"


def test_cf_units_fill_values_and_flags(xds, var):
    netcdf_checks.assert_units_valid(xds)
    netcdf_checks.assert_nan_fill_declared(xds, [var])
    netcdf_checks.assert_never_flag(xds, "diverged_at")
    assert xds["member"].dtype == np.int64


def test_cf_global_attributes(xds, system):
    netcdf_checks.assert_cf_global_attributes(xds, system)
    assert "config" in xds.attrs and "thermalizer_version" in xds.attrs
