"""Checks shared by the readers' tests of ``trajectories.h5`` and ``rollout.h5``: each file is
netCDF-4 as netCDF-C's tools (``ncdump``, xarray's ``netcdf4`` engine) and h5netcdf see it, and
follows CF-1.8 (docs/file-format.md, "netCDF-4 and CF").

``ncdump`` (Debian ``netcdf-bin``) and ``udunits2`` (``udunits-bin``) come from
scripts/setup.sh; a missing tool fails the test rather than skipping it.
"""

import datetime
import re
import shutil
import subprocess

import numpy as np
import xarray as xr

CF_GLOBAL_ATTRS = ("Conventions", "history", "references", "source", "date_created")
PAPER = "arXiv:2503.18731"
SOLVER_REFERENCE = {"kolmogorov": "jax-cfd", "qg": "pyqg"}


def tool(name):
    path = shutil.which(name)
    assert path, f"{name} is not on PATH (scripts/setup.sh installs it)"
    return path


def ncdump(*args):
    """Output of ``ncdump ARGS``, asserting it succeeded."""
    out = subprocess.run([tool("ncdump"), *args], capture_output=True, text=True)
    assert out.returncode == 0, f"ncdump {' '.join(args)} failed ({out.returncode}):\n{out.stderr}"
    return out.stdout


def ncdump_variables(path):
    """Names of the variables ``ncdump -h`` lists (``<type> <name>(<dims>) ;`` lines)."""
    header = ncdump("-h", path)
    body = header.split("variables:", 1)[1].split("// global attributes:", 1)[0]
    names = re.findall(r"^\s+[a-z0-9]+ ([A-Za-z_][A-Za-z0-9_]*)(?:\(.*\))? ;$", body, flags=re.M)
    assert names, f"ncdump -h {path} lists no variables:\n{header}"
    return set(names)


def open_both(path):
    """The file through netCDF-C (engine netcdf4) and through h5netcdf, loaded."""
    return tuple(xr.open_dataset(path, engine=e).load() for e in ("netcdf4", "h5netcdf"))


def assert_netcdf_readers_agree(path):
    """ncdump, netcdf4 and h5netcdf see the same variables; the two engines the same values,
    coordinates and attributes."""
    nc, h5 = open_both(path)
    assert ncdump_variables(path) == set(nc.variables) == set(h5.variables)
    xr.testing.assert_identical(nc, h5)
    phony = [d for d in nc.dims if str(d).startswith("phony_dim")]
    assert not phony, f"netCDF-C found dimensions without a scale: {phony}"
    return nc


def unit_is_udunits(unit):
    args = [tool("udunits2"), "-H", unit, "-W", ""]
    run = subprocess.run(args, capture_output=True, stdin=subprocess.DEVNULL)
    return run.returncode == 0


def assert_units_valid(ds):
    """Every ``units`` attribute parses with UDUNITS-2 (what CF requires)."""
    units = {name: v.attrs["units"] for name, v in ds.variables.items() if "units" in v.attrs}
    assert units, "no variable has units"
    bad = {name: u for name, u in units.items() if not unit_is_udunits(u)}
    assert not bad, f"units UDUNITS-2 does not parse: {bad}"


def assert_cf_global_attributes(ds, system):
    missing = [a for a in CF_GLOBAL_ATTRS if a not in ds.attrs]
    assert not missing, f"missing global attributes {missing}"
    assert ds.attrs["Conventions"] == "CF-1.8"
    created = datetime.datetime.strptime(ds.attrs["date_created"], "%Y-%m-%dT%H:%M:%SZ")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert datetime.datetime(2020, 1, 1) < created <= now + datetime.timedelta(minutes=1)
    history = ds.attrs["history"]
    assert history.startswith(ds.attrs["date_created"] + ": "), history
    assert "thermalizer" in history, f"history does not name the command: {history}"
    refs = ds.attrs["references"]
    assert PAPER in refs and "Pedersen" in refs, refs
    assert SOLVER_REFERENCE[system] in refs, refs
    assert "thermalizer" in ds.attrs["source"]


def assert_nan_fill_declared(ds, names):
    """The float variables ``names`` declare NaN as their ``_FillValue``, in their own type."""
    for name in names:
        fill = ds[name].encoding.get("_FillValue")
        assert fill is not None and np.isnan(fill), f"{name}: _FillValue {fill!r}, expected NaN"
        kind = np.asarray(fill).dtype
        assert kind == ds[name].dtype, f"{name}: _FillValue of type {kind}, not {ds[name].dtype}"


def assert_never_flag(ds, name):
    """``name`` marks "never" with -1, declared as a CF flag; the other values are steps."""
    v = ds[name]
    assert np.atleast_1d(v.attrs["flag_values"]).tolist() == [-1], v.attrs.get("flag_values")
    assert v.attrs["flag_meanings"].strip(), f"{name}: empty flag_meanings"
    values = v.values[np.isfinite(v.values)] if v.dtype.kind == "f" else v.values
    assert ((values == -1) | (values >= 0)).all(), f"{name}: values other than -1 below 0"
