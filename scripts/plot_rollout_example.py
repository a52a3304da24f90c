#!/usr/bin/env python3
"""Reproduce the report's MSE figure from rollout.h5 with xarray and matplotlib.

    python scripts/plot_rollout_example.py runs/quickstart/rollout.h5 mse.png

The file opens in xarray as is (named dimensions, coordinates): `mse` is
(mode, member, step); `mode` is a string coordinate ("emulator", "thermalized", ...), so
`ds.mse.sel(mode="thermalized")` picks a mode (files written before it was one held indices
named by `flag_meanings`).
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402

path, out = sys.argv[1], sys.argv[2]
ds = xr.open_dataset(path, engine="h5netcdf")
modes = ds["mode"]
names = modes.attrs["flag_meanings"].split() if "flag_meanings" in modes.attrs else [str(m) for m in modes.values]
fig, ax = plt.subplots(figsize=(8, 5))
for i, name in enumerate(names):
    mse = ds.mse.isel(mode=i)                       # (member, step)
    for m in range(ds.sizes["member"]):
        ax.plot(ds.step, mse.isel(member=m), color=f"C{i}", alpha=0.3, lw=0.8)
    ax.plot(ds.step, mse.median("member", skipna=True), color=f"C{i}", lw=2.5, label=f"{name} (median)")
ax.set_yscale("log")
ax.set_xlabel("emulator step")
ax.set_ylabel("MSE against the solver's truth (normalised units)")
ax.set_title("MSE against the solver's truth")
ax.legend()
fig.tight_layout()
fig.savefig(out, dpi=100)
print(out)
