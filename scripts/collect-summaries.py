#!/usr/bin/env python3
"""One table of many runs' reports, from their ``report/summary.json`` (``thermalizer report``).

    scripts/collect-summaries.py RUN_DIR [RUN_DIR ...] [--csv] [--modes thermalized,filtered]

A row per run and mode: median, min and max stable horizon (emulator steps; ">=" when most
members were never stopped), surviving fraction, median spectral horizon, time-mean spectrum
error, denoising passes per step, cost against the emulator alone, and the paired sign test of
the mode against the emulator alone when the run has both. A run with only an interim report
(``report --partial``) is read from ``report-interim/`` and marked so. Markdown by default (``--csv``: CSV
with the raw numbers). Sweep scripts (scripts/small-experiment.sh) build their tables with it.
Python's standard library only.
"""

import argparse
import csv
import json
import math
import sys
from pathlib import Path

COLUMNS = (
    "run",
    "mode",
    "median_stable_horizon",
    "min_stable_horizon",
    "max_stable_horizon",
    "surviving_fraction",
    "median_spectral_horizon",
    "time_mean_spectrum_error",
    "denoising_passes_per_step",
    "cost_vs_emulator",
    "vs_emulator",
)


def rows(run: Path, modes):
    path = run / "report" / "summary.json"
    if not path.exists() and (run / "report-interim" / "summary.json").exists():
        path = run / "report-interim" / "summary.json"  # `report --partial` of a rollout in progress
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"collect-summaries.py: {path}: {e} (run `thermalizer report {run}` first)")
    pairs = {(p["a"], p["b"]): p for p in summary["paired"]}
    for m in summary["modes"]:
        if modes and m["mode"] not in modes:
            continue
        p = pairs.get((m["mode"], "emulator"))
        yield {
            **{k: m[k] for k in COLUMNS if k in m},
            "run": f"{run} (interim, step {summary['steps']:.0f})" if summary["interim"] else str(run),
            "median_is_lower_bound": m["median_is_lower_bound"],
            "vs_emulator": None if p is None else f"{p['a_longer']}:{p['b_longer']} (ties {p['ties']}), p={p['p']:.2g}",
        }


def cell(row, key):
    v = row.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if key == "median_stable_horizon":
        return f"{'≥ ' if row['median_is_lower_bound'] else ''}{v:.0f}"
    if key.endswith("horizon"):
        return f"{v:.0f}"
    if key == "surviving_fraction":
        return f"{100 * v:.0f} %"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories with report/summary.json")
    ap.add_argument("--csv", action="store_true", help="CSV with the raw numbers instead of Markdown")
    ap.add_argument("--modes", default="", help="comma-separated modes to keep (default: all)")
    a = ap.parse_args()
    modes = {m for m in a.modes.split(",") if m}
    table = [r for run in a.runs for r in rows(run, modes)]
    if a.csv:
        w = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(table)
        return
    print("| " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---:|" * (len(COLUMNS) - 3) + "---|")
    for r in table:
        print("| " + " | ".join(cell(r, k) for k in COLUMNS) + " |")


if __name__ == "__main__":
    main()
