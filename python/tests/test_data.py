"""The xarray readers on the real files (no torch needed: run with either venv)."""

import numpy as np
import pytest
import xarray as xr

from thermalizer import open_rollout, open_trajectories

# tests/configs/tiny-train.yaml's rollout.modes.
MODES = ["emulator", "thermalized"]


def test_rollout_modes_are_labelled_and_members_integer(tiny):
    ds = open_rollout(tiny / "rollout.h5")
    assert ds["mode"].values.tolist() == MODES
    assert ds["member"].dtype == np.int64 and ds["member"].values.tolist() == [0, 1, 2, 3]
    # Labels select as names, and the data are the file's.
    raw = xr.open_dataset(tiny / "rollout.h5", engine="h5netcdf")
    np.testing.assert_array_equal(ds["mse"].sel(mode="thermalized").values, raw["mse"].values[1])


def recoded(tiny, tmp_path, name, mode, member):
    """The real rollout.h5's mse and noise_level with `mode` and `member` stored as given."""
    raw = xr.open_dataset(tiny / "rollout.h5", engine="h5netcdf")[["mse", "noise_level"]]
    path = tmp_path / f"{name}.h5"
    raw.assign_coords(mode=mode, member=member).to_netcdf(path, engine="h5netcdf")
    return path, raw


def test_both_mode_layouts_read_the_same(tiny, tmp_path):
    # The layout of the first releases: `mode` an index named by flag_meanings, `member` float;
    # and the newer one: `mode` stored as strings, `member` as integers.
    index = ("mode", np.arange(2.0), {"flag_meanings": " ".join(MODES), "units": "1"})
    layouts = [
        ("indexed", index, ("member", np.arange(4.0))),
        ("strings", ("mode", np.array(MODES, dtype=object)), ("member", np.arange(4))),
    ]
    for name, mode, member in layouts:
        path, raw = recoded(tiny, tmp_path, name, mode, member)
        ds = open_rollout(path)
        assert ds["mode"].values.tolist() == MODES, name
        assert ds["member"].dtype == np.int64 and ds["member"].values.tolist() == [0, 1, 2, 3], name
        np.testing.assert_array_equal(ds["mse"].sel(mode="thermalized").values, raw["mse"].values[1])


def test_a_numeric_mode_without_meanings_is_refused(tiny, tmp_path):
    path, _ = recoded(tiny, tmp_path, "bare", ("mode", np.arange(2.0)), ("member", np.arange(4)))
    with pytest.raises(ValueError, match="flag_meanings") as e:
        open_rollout(path)
    assert str(path) in str(e.value)


def test_trajectories_splits_are_named(tiny):
    ds = open_trajectories(tiny / "trajectories.h5")
    names = {0: "train", 1: "valid", 2: "test"}
    assert ds["split_name"].values.tolist() == [names[int(s)] for s in ds["split"].values]
    assert ds["vorticity"].dims == ("member", "time", "y", "x")
