"""The xarray readers on the real files (no torch needed: run with either venv)."""

import numpy as np
import pytest
import xarray as xr

from thermalizer import open_rollout, open_trajectories


def test_rollout_modes_are_labelled_and_members_integer(tiny):
    ds = open_rollout(tiny / "rollout.h5")
    assert ds["mode"].values.tolist() == ["emulator", "thermalized"]
    assert ds["member"].dtype == np.int64 and ds["member"].values.tolist() == [0, 1, 2, 3]
    # Labels select as names, and the data are the file's.
    raw = xr.open_dataset(tiny / "rollout.h5", engine="h5netcdf")
    np.testing.assert_array_equal(ds["mse"].sel(mode="thermalized").values, raw["mse"].values[1])


def test_rollout_with_string_modes_reads_the_same(tiny, tmp_path):
    # The coming layout: `mode` stored as strings, `member` as integers.
    raw = xr.open_dataset(tiny / "rollout.h5", engine="h5netcdf")[["mse", "noise_level"]]
    labels = raw["mode"].attrs["flag_meanings"].split()
    coded = raw.assign_coords(
        mode=("mode", np.array(labels, dtype=object), {"long_name": "rollout mode"}),
        member=("member", raw["member"].values.astype(np.int64)),
    )
    path = tmp_path / "rollout-strings.h5"
    coded.to_netcdf(path, engine="h5netcdf")
    assert xr.open_dataset(path, engine="h5netcdf")["mode"].dtype.kind in "OSU"
    ds = open_rollout(path)
    assert ds["mode"].values.tolist() == labels
    assert ds["member"].values.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(ds["mse"].values, open_rollout(tiny / "rollout.h5")["mse"].values)


def test_a_numeric_mode_without_meanings_is_refused(tiny, tmp_path):
    raw = xr.open_dataset(tiny / "rollout.h5", engine="h5netcdf")[["mse"]]
    raw["mode"].attrs.pop("flag_meanings")
    path = tmp_path / "rollout-bare.h5"
    raw.to_netcdf(path, engine="h5netcdf")
    with pytest.raises(ValueError, match="flag_meanings") as e:
        open_rollout(path)
    assert str(path) in str(e.value)


def test_trajectories_splits_are_named(tiny):
    ds = open_trajectories(tiny / "trajectories.h5")
    names = {0: "train", 1: "valid", 2: "test"}
    assert ds["split_name"].values.tolist() == [names[int(s)] for s in ds["split"].values]
    assert ds["vorticity"].dims == ("member", "time", "y", "x")
