"""Reads a finished ``rollout.h5`` the way users do: as netCDF-4/CF through netCDF-C (``ncdump``,
xarray's ``netcdf4`` engine) and through h5netcdf (layout in docs/rollout.md, CF attributes in
docs/file-format.md).

The file comes from ``THERMALIZER_ROLLOUT``, set by tests/train_rollout_mpi.rs after a rollout;
the ``trajectories.h5`` beside it gives the expected time step. The name does not start with
``test_`` so that a pytest run over tests/python (tests/generate_mpi.rs, which has no rollout)
does not collect it; run it by naming the file::

    THERMALIZER_ROLLOUT=runs/quickstart/rollout.h5 \\
        ~/.local/share/thermalizer/venv/bin/python -m pytest -q tests/python/check_rollout.py
"""

import os

import pytest

PATH = os.environ.get("THERMALIZER_ROLLOUT")
if not PATH:
    pytest.skip(
        "THERMALIZER_ROLLOUT is not set (the Rust test harness sets it)", allow_module_level=True
    )

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

import netcdf_checks  # noqa: E402  (tests/python, on sys.path under pytest)

# Each step dimension and its physical-time coordinate.
TIMES = {"step": "time", "spectrum_step": "spectrum_time", "snapshot_step": "snapshot_time"}


@pytest.fixture(scope="module")
def ds():
    assert os.path.isfile(PATH), f"THERMALIZER_ROLLOUT={PATH!r} is not a file"
    return netcdf_checks.assert_netcdf_readers_agree(PATH)


@pytest.fixture(scope="module")
def trajectories():
    path = os.path.join(os.path.dirname(os.path.abspath(PATH)), "trajectories.h5")
    with h5py.File(path, "r") as f:
        yield f


def test_ncdump_reads_the_string_coordinate(ds):
    out = netcdf_checks.ncdump("-v", "mode", PATH)
    assert "string mode(mode) ;" in out
    for name in ds["mode"].values:
        assert f'"{name}"' in out, f"ncdump -v mode does not print {name!r}:\n{out}"


def test_mode_is_a_string_coordinate(ds):
    modes = [str(m) for m in ds["mode"].values]
    assert ds["mode"].dtype.kind in "UO" and modes, ds["mode"].dtype
    assert len(set(modes)) == len(modes)
    for i, name in enumerate(modes):
        assert f"{name}_surviving_fraction" in ds.attrs, f"mode {name!r} has no summary attributes"
        xr.testing.assert_identical(ds.mse.sel(mode=name), ds.mse.isel(mode=i))
    assert "flag_meanings" not in ds["mode"].attrs


def test_integer_coordinates(ds):
    np.testing.assert_array_equal(ds["member"].values, np.arange(ds.sizes["member"]))
    for name in ("member", "k", "initial_member", "initial_state", "diverged_at", *TIMES):
        if name in ds.variables:
            assert ds[name].dtype == np.int64, f"{name} is {ds[name].dtype}"


def test_physical_time_coordinates(ds, trajectories):
    attrs = trajectories.attrs
    dt = float(np.asarray(attrs["dt"]).item()) * int(np.asarray(attrs["steps_per_sample"]).item())
    units = trajectories["time"].attrs["units"]
    units = units.decode() if isinstance(units, bytes) else units
    assert "snapshot" not in ds or "snapshot_time" in ds.coords
    for step, time in TIMES.items():
        if step not in ds.dims:
            continue
        t = ds[time]
        assert t.dims == (step,) and t.dtype == np.float64
        np.testing.assert_allclose(t.values, ds[step].values * dt, rtol=1e-12, atol=0)
        assert t.attrs["units"] == units, f"{time} in {t.attrs['units']!r}, trajectories in {units!r}"
        assert netcdf_checks.unit_is_udunits(t.attrs["units"])
    # A series carries its time coordinate, so it can be put on the time axis.
    assert ds.mse.coords["time"].dims == ("step",)
    assert ds.spectrum.coords["spectrum_time"].dims == ("spectrum_step",)
    assert ds.mse.swap_dims(step="time").dims == ("mode", "member", "time")


def test_units_fill_values_and_sentinels(ds):
    netcdf_checks.assert_units_valid(ds)
    floats = [name for name, v in ds.data_vars.items() if v.dtype == np.float64]
    assert "mse" in floats and "spectrum" in floats
    netcdf_checks.assert_nan_fill_declared(ds, floats)
    netcdf_checks.assert_never_flag(ds, "diverged_at")
    netcdf_checks.assert_never_flag(ds, "spectral_horizon")


def test_global_attributes(ds, trajectories):
    system = trajectories.attrs["system"]
    system = system.decode() if isinstance(system, bytes) else system
    netcdf_checks.assert_cf_global_attributes(ds, system)
    for kept in ("config", "identity", "version", "git_revision", "s_init", "s_init_source"):
        assert kept in ds.attrs, f"global attribute {kept} is gone"
