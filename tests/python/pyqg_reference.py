#!/usr/bin/env python3
"""pyqg side of the two-layer QG reference test: integrates ``pyqg.QGModel`` (pyqg 0.7.2, float64,
AB3 with pyqg's exponential filter) from given initial PV fields and saves the PV at the sample
times.

Runs in the venv made by ``scripts/setup-pyqg.sh``; it needs only numpy besides, so the initial
condition comes as ``.npy``, not HDF5.

Usage::

    python pyqg_reference.py IC.npy OUT.npz --L 1e6 --beta 1.5e-11 --rd 15e3 --delta 0.25 \
        --U1 0.025 --U2 0 --rek 5.787e-7 --dt 3600 --samples S --steps-per-sample K \
        [--H1 500] [--filterfac 23.6] [--smagorinsky CS]

``IC.npy``: float64 ``[member, layer=2, y, x]``, PV anomaly on the ``N × N`` grid (pyqg places
points at ``x_i = (i + 1/2)·L/N``; irrelevant for the dynamics). ``OUT.npz``:

- ``q``: float64 ``[member, S, layer, y, x]``; sample 0 is the initial condition exactly as given
  (pyqg's ``q`` setter stores it as is and sets ``qh = rfft2(q)``), sample ``s`` is after
  ``s·K`` calls of ``Model._step_forward`` — exactly what ``Model.run`` does per step;
- ``time``: ``s·K·dt``;
- ``filtr``: pyqg's exponential filter, ``[l, k]`` (rfft layout, ``l`` in FFT order);
- ``kk``, ``ll``: pyqg's wavenumbers (``ll[N/2]`` is ``-N/2·2π/L``); ``Qy``: ``[Qy1, Qy2]``.

Guarding against pyqg's own state: ``QGModel.__init__`` sets a random initial PV; assigning
``m.q`` overwrites ``q`` and ``qh`` entirely, the stored AB tendencies are still zero and
``ablevel`` is 0 (forward Euler first), and one fresh model is made per member, so nothing of
that random IC (or of another member) leaks in. Diagnostics are never accumulated
(``tavestart = inf``) and logging/CFL checks are off (``log_level = 0``); neither would change
``q`` anyway. ``ntd = 1``: one FFTW / OpenMP thread.
"""
import argparse
import sys
import warnings

import numpy as np
import pyqg
import pyqg.kernel


def make_model(n, a):
    kw = dict(nx=n, L=a.L, beta=a.beta, rd=a.rd, delta=a.delta, H1=a.H1, U1=a.U1, U2=a.U2,
              rek=a.rek, dt=a.dt, filterfac=a.filterfac, ntd=1, log_level=0,
              tavestart=np.inf, tmax=np.inf)
    if a.smagorinsky is not None:
        kw["uv_parameterization"] = pyqg.parameterizations.Smagorinsky(constant=a.smagorinsky)
    with warnings.catch_warnings():  # __init__ uses the deprecated set_q for its random IC
        warnings.simplefilter("ignore", DeprecationWarning)
        return pyqg.QGModel(**kw)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ic", help="initial PV, float64 .npy [member, 2, N, N]")
    ap.add_argument("out", help="output .npz")
    for name in ("L", "beta", "rd", "delta", "U1", "U2", "rek", "dt"):
        ap.add_argument(f"--{name}", type=float, required=True)
    ap.add_argument("--H1", type=float, default=500.0, help="upper layer depth (no effect on q)")
    ap.add_argument("--filterfac", type=float, default=23.6, help="pyqg's default 23.6")
    ap.add_argument("--smagorinsky", type=float, default=None, metavar="CS",
                    help="add pyqg.parameterizations.Smagorinsky(CS) as uv_parameterization")
    ap.add_argument("--samples", type=int, required=True, help="S, counting the initial state")
    ap.add_argument("--steps-per-sample", type=int, required=True)
    a = ap.parse_args(argv)

    if not hasattr(pyqg.kernel, "pyfftw"):
        sys.exit("pyqg was built without pyfftw (use scripts/setup-pyqg.sh)")
    ic = np.load(a.ic)
    if ic.ndim != 4 or ic.shape[1] != 2 or ic.shape[2] != ic.shape[3] or ic.dtype != np.float64:
        sys.exit(f"{a.ic}: expected float64 [member, 2, N, N], got {ic.dtype} {ic.shape}")
    members, n = ic.shape[0], ic.shape[2]

    out = np.empty((members, a.samples, 2, n, n))
    for mem in range(members):
        m = make_model(n, a)
        m.q = np.ascontiguousarray(ic[mem])  # kernel setter: copies into q, qh = rfft2(q)
        assert m.ablevel == 0 and m.tc == 0 and np.array_equal(m.q, ic[mem])
        assert not np.any(m.dqhdt_p) and not np.any(m.dqhdt_pp)
        for s in range(a.samples):
            if s:
                for _ in range(a.steps_per_sample):
                    m._step_forward()
            out[mem, s] = m.q
        assert m.tc == (a.samples - 1) * a.steps_per_sample
    np.savez(a.out, q=out, time=np.arange(a.samples) * a.steps_per_sample * a.dt,
             filtr=np.asarray(m.filtr), kk=m.kk, ll=m.ll, Qy=np.asarray(m.Qy))


if __name__ == "__main__":
    main()
