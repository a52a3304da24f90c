#!/usr/bin/env python3
"""jax-cfd side of ``test_against_jaxcfd.py``: integrates the Kolmogorov flow with jax-cfd's
``spectral.equations.ForcedNavierStokes2D`` and ``spectral.time_stepping.crank_nicolson_rk4``
in float64, from a given initial vorticity, and saves the states at the sample times.

Runs in a Python environment with jax and jax-cfd (``scripts/setup-jaxcfd.sh`` makes one); it
needs only numpy besides, so the initial condition comes as ``.npy``, not HDF5.

Usage::

    python jaxcfd_reference.py IC.npy OUT.npz --viscosity NU --drag ALPHA \
        --forcing-wavenumber KF --dt DT --samples S --steps-per-sample K

``IC.npy``: float64 ``[member, y, x]`` on the ``N × N`` grid ``x_i = i·2π/N`` (thermalizer's
layout). ``OUT.npz``:

- ``vorticity``: float64 ``[member, S, y, x]``; sample 0 is the initial condition as jax-cfd
  sees it (after ``rfftn``/``irfftn``), sample ``s`` is after ``s·K`` steps;
- ``time``: ``s·K·dt``;
- ``filter``: jax-cfd's 2/3-rule mask for this grid, ``[kx, ky ≥ 0]`` (jax-cfd's rfft layout);
- ``forcing``: the vorticity forcing jax-cfd applies, ``[y, x]`` (``explicit_terms`` of a zero
  state, transformed back).

Conventions bridged here: jax-cfd indexes arrays ``[x, y]`` (``grid.mesh`` uses
``indexing='ij'``, the rfft axis is the last one, ``y``), thermalizer ``[y, x]``; so fields are
transposed on the way in and out. ``ForcedNavierStokes2D`` hard-codes drag 0.1, forcing
wavenumber 4 and amplitude 1, and samples the forcing at offsets ``(0, 0)`` (the grid points
``y_j = j·2π/N``, no half-cell shift); the ``--drag``/``--forcing-wavenumber`` arguments are
checked against what it actually does, so a mismatch fails loudly instead of comparing different
equations.
"""
import argparse
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import jax_cfd.base as cfd  # noqa: E402
import jax_cfd.spectral as spectral  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ic", help="initial vorticity, float64 .npy [member, y, x]")
    ap.add_argument("out", help="output .npz")
    ap.add_argument("--viscosity", type=float, required=True)
    ap.add_argument("--drag", type=float, required=True)
    ap.add_argument("--forcing-wavenumber", type=int, required=True)
    ap.add_argument("--dt", type=float, required=True)
    ap.add_argument("--samples", type=int, required=True)
    ap.add_argument("--steps-per-sample", type=int, required=True)
    a = ap.parse_args(argv)

    ic = np.load(a.ic)
    if ic.ndim != 3 or ic.shape[1] != ic.shape[2] or ic.dtype != np.float64:
        sys.exit(f"{a.ic}: expected float64 [member, N, N], got {ic.dtype} {ic.shape}")
    members, n = ic.shape[0], ic.shape[1]

    grid = cfd.grids.Grid((n, n), domain=((0, 2 * np.pi), (0, 2 * np.pi)))
    eq = spectral.equations.ForcedNavierStokes2D(a.viscosity, grid, smooth=True)
    step = spectral.time_stepping.crank_nicolson_rk4(eq, a.dt)
    advance = jax.jit(cfd.funcutils.repeated(step, a.steps_per_sample))

    # What the equation really is, checked against the arguments.
    if not np.isclose(eq.drag, a.drag, rtol=1e-15, atol=0):
        sys.exit(f"ForcedNavierStokes2D has drag {eq.drag}, the test asked for {a.drag}")
    zero = jnp.zeros((n, n // 2 + 1), jnp.complex128)
    forcing = np.asarray(jnp.fft.irfftn(eq.explicit_terms(zero), s=(n, n))).T  # [y, x]
    y = np.arange(n) * 2 * np.pi / n
    kf = a.forcing_wavenumber
    want = np.broadcast_to((-kf * np.cos(kf * y))[:, None], (n, n))  # -A kf cos(kf y), A = 1
    if not np.allclose(forcing, want, rtol=0, atol=1e-12 * kf):
        sys.exit("ForcedNavierStokes2D's forcing is not -kf cos(kf y) with kf = "
                 f"{kf} (max deviation {np.abs(forcing - want).max():.3g})")

    out = np.empty((members, a.samples, n, n))
    for m in range(members):
        state = jnp.fft.rfftn(jnp.asarray(ic[m].T))  # [x, y] for jax-cfd
        assert state.dtype == jnp.complex128, state.dtype
        for s in range(a.samples):
            if s:
                state = advance(state)
            out[m, s] = np.asarray(jnp.fft.irfftn(state, s=(n, n))).T
    np.savez(a.out, vorticity=out,
             time=np.arange(a.samples) * a.steps_per_sample * a.dt,
             filter=np.asarray(eq.filter_), forcing=forcing)


if __name__ == "__main__":
    main()
