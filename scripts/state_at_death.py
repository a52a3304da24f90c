#!/usr/bin/env python3
"""How the members of a rollout died: the failure mode seen, not assumed.

    state_at_death.py ROLLOUT.h5 [--split K] [--before STEPS]

For every mode of a rollout.h5 (docs/rollout.md) and every member stopped before the end
(diverged_at >= 0): the classifier's noise level and the mean square of the normalised state at
the last scalar record at least STEPS (default 50) emulator steps before the stop, and at the
last spectrum record that far back, the member's kinetic energy at small scales (k >= K,
default 8) and at large scales (1 <= k < K), each as a ratio to the truth's time mean. A drift
the noise-level classifier is built to see raises the small scales first (small/large >> 1,
level above s_init); a large-scale runaway raises the large scales with a clean level.
Prints medians over the stopped members of each mode, and the same for the surviving members
at the end, as one table.
"""
import argparse

import h5py
import numpy as np


def last_before(steps, limit):
    """Index of the last record at or before `limit` (None when there is none)."""
    idx = np.searchsorted(steps, limit, side="right") - 1
    return int(idx) if idx >= 0 else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("rollout")
    p.add_argument("--split", type=int, default=8, help="first small-scale wavenumber K")
    p.add_argument("--before", type=int, default=50, help="emulator steps before the stop")
    a = p.parse_args()
    f = h5py.File(a.rollout, "r")
    # `mode` holds the names (older files: indices named by `flag_meanings`).
    mode = f["mode"]
    modes = mode.attrs["flag_meanings"].split() if "flag_meanings" in mode.attrs else list(mode.asstr()[:])
    steps, steps_spec = f["step"][:], f["spectrum_step"][:]
    k = f["k"][:]
    small, large = k >= a.split, (k >= 1) & (k < a.split)
    truth = np.nanmean(f["truth_spectrum_mean"][:], axis=0)
    print(f"s_init = {np.atleast_1d(f.attrs['s_init'])[0]:.0f} ({f.attrs['s_init_source'] if 's_init_source' in f.attrs else 'config'})")
    print(f"| mode | members | when | level (median) | mean square (median) | E(k >= {a.split}) / truth | E(1 <= k < {a.split}) / truth |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for i, mode in enumerate(modes):
        died = f["diverged_at"][i]
        rows = {"stopped": [], "surviving (end)": []}
        for m, d in enumerate(died):
            when = d - a.before if d >= 0 else steps[-1]
            r, s = last_before(steps, when), last_before(steps_spec, when)
            if r is None or s is None:
                continue
            e = f["spectrum"][i, m, s]
            rows["stopped" if d >= 0 else "surviving (end)"].append(
                (
                    f["noise_level"][i, m, r],
                    f["mean_square"][i, m, r],
                    e[small].sum() / truth[small].sum(),
                    e[large].sum() / truth[large].sum(),
                )
            )
        for label, v in rows.items():
            if not v:
                continue
            med = np.nanmedian(np.array(v), axis=0)
            when = f"{a.before} steps before the stop" if label == "stopped" else "at the end"
            print(f"| {mode} | {len(v)} {label} | {when} | {med[0]:.0f} | {med[1]:.2f} | {med[2]:.2f} | {med[3]:.2f} |")


if __name__ == "__main__":
    main()
