#!/usr/bin/env python3
"""pyqg side of `scripts/bench-solver.sh --system qg`: median wall ms per time step of pyqg's
two-layer QG model (pyqg.QGModel 0.7.2, FFTW via pyfftw, AB3) on ONE CPU core, for each grid.

Setup (the eddy configuration our Rust QG solver uses; adapted from shared/anchors/bench_pyqg.py):
  QGModel(nx=N, L=1e6, beta=1.5e-11, rd=15e3, delta=0.25, U1=0.025, U2=0, rek=5.787e-7,
  dt=3600, ntd=1, log_level=0, tavestart=inf, tmax=inf): no diagnostics are accumulated and
  no status is logged, so a step is invert + advection + friction + AB3 + filter (10 real FFTs).
  IC: small random PV (1e-7, seed 0) plus a 1e-6 cos(2 pi x / L) in the upper layer.
Method: ~50 warm-up calls of m._step_forward() (what m.run() loops over); steps per block
  calibrated so a block lasts ~--seconds; --repeats timed blocks; report the median (and min) ms
  per step, CPU ms per step, the 1-minute load average (the dev box is shared: rerun when load1
  is well above 1). The FFT floor is not measured here: bench-solver.sh takes it from our side.
Threads: OMP_NUM_THREADS=1 (set before importing pyqg), ntd=1, and the process pins itself to
  the lowest core in its affinity mask (`taskset -c 0` does the same).

Usage (venv from scripts/setup-pyqg.sh):
  "$(scripts/setup-pyqg.sh)" scripts/bench_pyqg.py --grids 64 128 256 [--seconds 0.5] [--repeats 5] [--json OUT]
JSON: a list of {"code": "pyqg", "grid": N, "precision": "f64", "ms_per_step": x, ...extras}.
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ["OMP_NUM_THREADS"] = "1"
_cores = sorted(os.sched_getaffinity(0))
os.sched_setaffinity(0, {_cores[0]})   # before pyqg/pyfftw start any threads

import numpy as np  # noqa: E402
import pyfftw  # noqa: E402
import pyqg  # noqa: E402

WARMUP = 50


def _blocks(step, seconds, repeats):
    """Calibrate steps per block to ~seconds, then time `repeats` blocks: (wall ms, cpu ms, steps)."""
    t0 = time.perf_counter()
    for _ in range(5):
        step()
    steps = max(5, int(seconds / ((time.perf_counter() - t0) / 5)))
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        wall.append((time.perf_counter() - t0) / steps * 1e3)
        cpu.append((time.process_time() - c0) / steps * 1e3)
    return wall, cpu, steps


def bench(n, seconds, repeats):
    m = pyqg.QGModel(nx=n, L=1e6, beta=1.5e-11, rd=15e3, delta=0.25, U1=0.025, U2=0.0,
                     rek=5.787e-7, dt=3600.0, ntd=1, log_level=0,
                     tavestart=float("inf"), tmax=float("inf"))
    rng = np.random.default_rng(0)
    m.q = np.stack([1e-7 * rng.standard_normal((n, n)) + 1e-6 * np.cos(2 * np.pi * m.x / m.L),
                    1e-7 * rng.standard_normal((n, n))])
    for _ in range(WARMUP):
        m._step_forward()
    wall, cpu, steps = _blocks(m._step_forward, seconds, repeats)
    return dict(code="pyqg", grid=n, precision="f64",
                ms_per_step=statistics.median(wall), ms_min=min(wall),
                cpu_ms_per_step=statistics.median(cpu), dt=m.dt,
                steps_per_block=steps, blocks=repeats, threads=1,
                finite=bool(np.all(np.isfinite(m.q))),
                load1=float(open("/proc/loadavg").read().split()[0]),
                version=f"pyqg {pyqg.__version__}, pyfftw {pyfftw.__version__}, numpy {np.__version__}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--grids", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--seconds", type=float, default=0.5, help="target wall seconds per timed block")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per grid")
    p.add_argument("--json", default=None)
    a = p.parse_args()

    print(f"# pyqg {pyqg.__version__}, pyfftw {pyfftw.__version__}, numpy {np.__version__}, "
          f"pinned to core {_cores[0]} (of {_cores}), OMP_NUM_THREADS=1, ntd=1", flush=True)
    print(f"{'code':5} {'grid':>5} {'prec':>4} {'ms/step':>9} {'min':>9} {'cpu ms':>9} "
          f"{'steps':>6} {'load1':>5} finite", flush=True)
    rows = []
    for n in a.grids:
        r = bench(n, a.seconds, a.repeats)
        rows.append(r)
        print(f"{r['code']:5} {n:5d} {r['precision']:>4} {r['ms_per_step']:9.4f} {r['ms_min']:9.4f} "
              f"{r['cpu_ms_per_step']:9.4f} {r['steps_per_block']:6d} "
              f"{r['load1']:5.2f} {r['finite']}", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0 if all(r["finite"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
