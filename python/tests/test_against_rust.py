"""The PyTorch models against the Rust rollout's own output (rollout.h5, sigma = 0, a snapshot
every step): the emulator's step, the classifier's levels and thermalization's pass counts."""

import numpy as np
import torch

from thermalizer import load_emulator, load_thermalizer, open_rollout, open_trajectories


def initial_states(run):
    """The rollout members' initial states, physical units ``[member, channel, y, x]``."""
    r, t = open_rollout(run / "rollout.h5"), open_trajectories(run / "trajectories.h5")
    field = t["q"] if "q" in t else t["vorticity"].expand_dims("layer", axis=2)
    states = [field.values[m, s] for m, s in zip(r["initial_member"].values, r["initial_state"].values)]
    return torch.from_numpy(np.stack(states)).float()


def snapshots(run, mode):
    """``snapshot`` of ``mode``: ``[member, snapshot_step, layer, y, x]`` as float32."""
    return torch.from_numpy(open_rollout(run / "rollout.h5")["snapshot"].sel(mode=mode).values).float()


def relative(a, b):
    return float((a - b).abs().max() / b.abs().max())


def check_steps(run, emulator):
    x0 = initial_states(run)
    snap = snapshots(run, "emulator")
    assert relative(x0, snap[:, 0]) < 1e-6, "snapshot 0 is the initial state"
    first = emulator.step(x0)
    assert relative(first, snap[:, 1]) <= 1e-5
    # Far above float32 round-off: a wrong layer would not pass.
    assert relative(x0, snap[:, 1]) > 1e-4
    for k in range(2, snap.shape[1]):
        assert relative(emulator.step(snap[:, k - 1]), snap[:, k]) <= 1e-5, f"step {k}"


def test_tiny_emulator_steps_as_the_rollout(tiny):
    check_steps(tiny, load_emulator(tiny / "emulator" / "latest.safetensors"))


def test_tiny_classifier_rates_the_initial_states_as_the_rollout(tiny):
    levels = open_rollout(tiny / "rollout.h5")["noise_level"].sel(step=0).values
    th = load_thermalizer(tiny / "thermalizer" / "latest.safetensors")
    ours = th.classify(initial_states(tiny)).numpy()
    for mode_levels in levels:
        np.testing.assert_array_equal(ours, mode_levels)


def test_shipped_emulator_steps_as_the_rollout(shipped_run, shipped):
    check_steps(shipped_run, load_emulator(shipped / "kolmogorov-small" / "emulator.safetensors"))


def test_shipped_classifier_and_thermalization_as_the_rollout(shipped_run, shipped):
    emulator = load_emulator(shipped / "kolmogorov-small" / "emulator.safetensors")
    th = load_thermalizer(shipped / "kolmogorov-small" / "thermalizer.safetensors")
    r = open_rollout(shipped_run / "rollout.h5")
    # Every recorded level of the emulator alone: the classifier on that step's state.
    snap = snapshots(shipped_run, "emulator")
    rust = r["noise_level"].sel(mode="emulator").values
    ours = np.stack([th.classify(snap[:, k]).numpy() for k in range(snap.shape[1])], axis=1)
    np.testing.assert_array_equal(ours, rust)
    assert len(np.unique(rust)) >= 3, f"levels {rust.tolist()}: too few distinct levels to test the classifier"
    # Thermalized mode: the level after each emulator step and the reverse passes it took.
    cfg = {k: int(r.attrs[k]) for k in ("s_init", "s_stop", "noise_limit")}
    snap = snapshots(shipped_run, "thermalized")
    levels = r["noise_level"].sel(mode="thermalized").values
    passes = r["denoising_passes"].sel(mode="thermalized").values
    alive = r["diverged_at"].sel(mode="thermalized").values < 0
    assert alive.all(), "the test needs every thermalized member alive"
    for k in range(1, snap.shape[1]):
        _, applied = th.thermalize(emulator.step(snap[:, k - 1]), **cfg)
        assert applied.levels == levels[:, k].astype(int).tolist(), f"step {k}"
        assert applied.passes == passes[:, k].astype(int).tolist(), f"step {k}"
    assert passes.max() > 0, "no member was thermalized: the pass counts were not tested"
