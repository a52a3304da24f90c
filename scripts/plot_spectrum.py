#!/usr/bin/env python3
"""Isotropic kinetic-energy spectrum of the stored vorticity in a trajectories.h5, averaged over
members and stored times: is the flow resolved on this grid?

    plot_spectrum.py TRAJECTORIES.h5 OUT.png [--mark K LABEL]...

Conventions (docs/file-format.md): vorticity[member, time, y, x] on a doubly periodic square of
side L (attribute domain_length), N points per side. With ω̂ = fft2(ω)/N² (so that Parseval
reads mean(ω²) = Σ|ω̂|²), û = i k × ψ̂ gives |û|² = |ω̂|²/|k|², and E(k) sums |û|²/2 over the
shell k − ½ ≤ |k| < k + ½ (k in units of 2π/L): Σ_k E(k) = mean kinetic energy. Prints E(k)
at a few k and the ratio of the energy at the dealiasing cutoff to the peak.
"""
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def spectrum(w):
    n = w.shape[-1]
    what = np.fft.fft2(w, axes=(-2, -1)) / n**2
    k1 = np.fft.fftfreq(n, 1.0 / n)
    kx, ky = np.meshgrid(k1, k1)
    k2 = kx**2 + ky**2
    k2[0, 0] = 1.0
    e = 0.5 * np.abs(what) ** 2 / k2
    e[..., 0, 0] = 0.0
    shell = np.rint(np.sqrt(kx**2 + ky**2)).astype(int)
    energy = e.reshape(-1, n * n).mean(axis=0)
    return np.bincount(shell.ravel(), weights=energy)[: n // 2 + 1]


def main():
    path, out = sys.argv[1], sys.argv[2]
    marks = sys.argv[3:]
    with h5py.File(path, "r") as f:
        w = f["vorticity"][...].astype(np.float64)
        w = w.reshape(-1, w.shape[-2], w.shape[-1])
        n = w.shape[-1]
    e = spectrum(w)
    k = np.arange(len(e))
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.loglog(k[1:], e[1:], "k-", label=f"{n}² solver grid, {w.shape[0]} states")
    for i in range(0, len(marks), 2):
        kk, label = float(marks[i]), marks[i + 1]
        ax.axvline(kk, ls="--", color=f"C{i // 2}", label=label)
    ax.set_ylim(bottom=e[1:].max() * 1e-8)  # the corners beyond the square 2/3 mask are ~0
    ax.set_xlabel("wavenumber k (2π/L)")
    ax.set_ylabel("E(k)")
    ax.legend(fontsize=8)
    ax.set_title("Kinetic-energy spectrum, time and member mean")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    peak = e[1:].max()
    cut = int(n // 3)
    print(f"grid {n}, states {w.shape[0]}, kinetic energy {e.sum():.4g}")
    for kk in (1, 4, 8, 16, 32, cut):
        if kk < len(e):
            print(f"E({kk}) = {e[kk]:.3e}  (/peak {e[kk] / peak:.1e})")


if __name__ == "__main__":
    main()
