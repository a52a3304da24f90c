#!/usr/bin/env python3
"""jax-cfd side of `thermalizer bench solver`: median wall ms per time step of jax-cfd's
pseudo-spectral 2D Kolmogorov flow on ONE CPU core, for each (grid, precision).

Setup (same as our Rust solver; adapted from shared/anchors/bench_jaxcfd.py):
  grid N x N on [0, 2pi]^2, vorticity form, spectral.equations.ForcedNavierStokes2D(1e-4, grid,
  smooth=True) = NavierStokes2D + kolmogorov_forcing(k=4) + linear drag 0.1 + 2/3-rule filter;
  stepper spectral.time_stepping.crank_nicolson_rk4 (Carpenter-Kennedy low-storage IMEX RK4);
  dt = cfd.equations.stable_time_step(7, 0.5, nu, grid) = 0.5 dx / 7 (cost per step does not
  depend on dt; it is reported so runs can be matched); IC filtered_velocity_field(key 0, 7, 4),
  curled and rfft'd.
Method: one jitted call = `inner` steps (cfd.funcutils.repeated, a lax.fori_loop), `inner`
  calibrated so a call takes ~--seconds; compile + one warm-up call, then --repeats timed calls;
  report the median (and min) ms per step, CPU ms per step and the 1-minute load average
  (the dev box is shared: rerun when load1 is well above 1).
Threads: XLA:CPU is forced to 1 thread (XLA_FLAGS, set before importing jax) and the process
  pins itself to one core (the lowest in its affinity mask; `taskset -c 0` does the same).
  f64 runs with jax_enable_x64 on, f32 with it off; the state dtype is checked.

Usage (venv from scripts/setup-jaxcfd.sh):
  python scripts/bench_jaxcfd.py --grids 64 128 256 512 --precision f64 f32 [--seconds 1.0] [--json OUT]
JSON: a list of {"code": "jax-cfd", "grid": N, "precision": "f64", "ms_per_step": x, ...extras}.
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
_cores = sorted(os.sched_getaffinity(0))
os.sched_setaffinity(0, {_cores[0]})   # before jax starts its thread pools

import jax  # noqa: E402  (must come after the environment above)


def bench(n, precision, nu, seconds, repeats):
    jax.config.update("jax_enable_x64", precision == "f64")
    import jax.numpy as jnp
    import numpy as np
    import jax_cfd.base as cfd
    import jax_cfd.spectral as spectral

    grid = cfd.grids.Grid((n, n), domain=((0, 2 * jnp.pi), (0, 2 * jnp.pi)))
    dt = cfd.equations.stable_time_step(7.0, 0.5, nu, grid)
    eq = spectral.equations.ForcedNavierStokes2D(nu, grid, smooth=True)
    step = spectral.time_stepping.crank_nicolson_rk4(eq, dt)
    v0 = cfd.initial_conditions.filtered_velocity_field(jax.random.PRNGKey(0), grid, 7.0, 4)
    x = jnp.fft.rfftn(cfd.finite_differences.curl_2d(v0).data)
    want = jnp.complex128 if precision == "f64" else jnp.complex64
    assert x.dtype == want, f"state dtype {x.dtype}, expected {want}"

    def make(inner):
        return jax.jit(cfd.funcutils.repeated(step, inner))

    f10 = make(10)
    x = f10(x).block_until_ready()                      # compile
    t0 = time.perf_counter(); x = f10(x).block_until_ready()
    inner = max(10, int(seconds / ((time.perf_counter() - t0) / 10)))
    f = make(inner)
    x = f(x).block_until_ready()                        # compile
    x = f(x).block_until_ready()                        # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        x = f(x).block_until_ready()
        wall.append((time.perf_counter() - t0) / inner * 1e3)
        cpu.append((time.process_time() - c0) / inner * 1e3)
    assert x.dtype == want, f"result dtype {x.dtype}, expected {want}"
    return dict(code="jax-cfd", grid=n, precision=precision,
                ms_per_step=statistics.median(wall), ms_min=min(wall),
                cpu_ms_per_step=statistics.median(cpu), dt=float(dt), nu=nu,
                steps_per_block=inner, blocks=repeats, threads=1,
                finite=bool(np.all(np.isfinite(np.asarray(x)))),
                load1=float(open("/proc/loadavg").read().split()[0]),
                version=f"jax {jax.__version__}, jax-cfd {_version('jax-cfd')}")


def _version(pkg):
    import importlib.metadata
    return importlib.metadata.version(pkg)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--grids", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--precision", nargs="+", choices=["f64", "f32"], default=["f64", "f32"])
    p.add_argument("--seconds", type=float, default=1.0, help="target wall seconds per timed block")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per configuration")
    p.add_argument("--viscosity", type=float, default=1e-4)
    p.add_argument("--json", default=None)
    a = p.parse_args()

    print(f"# jax {jax.__version__}, jax-cfd {_version('jax-cfd')}, {jax.devices()[0].platform}, "
          f"pinned to core {_cores[0]} (of {_cores}), nu={a.viscosity}", flush=True)
    print(f"{'code':8} {'grid':>5} {'prec':>4} {'ms/step':>9} {'min':>9} {'cpu ms':>9} "
          f"{'dt':>9} {'steps':>6} {'load1':>5} finite", flush=True)
    rows = []
    for n in a.grids:
        for prec in a.precision:
            r = bench(n, prec, a.viscosity, a.seconds, a.repeats)
            rows.append(r)
            print(f"{r['code']:8} {n:5d} {prec:>4} {r['ms_per_step']:9.4f} {r['ms_min']:9.4f} "
                  f"{r['cpu_ms_per_step']:9.4f} {r['dt']:9.3e} {r['steps_per_block']:6d} "
                  f"{r['load1']:5.2f} {r['finite']}", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0 if all(r["finite"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
