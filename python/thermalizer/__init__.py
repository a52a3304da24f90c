"""PyTorch and xarray companion of the thermalizer pipeline (the Rust ``thermalizer`` binary).

- ``load_emulator(path)``, ``load_thermalizer(path)``: the trained models of a training
  checkpoint (``<run.dir>/<model>/{latest,best}.safetensors``) or of ``thermalizer export``
  (float32 or ``--half``, with or without ``--thermalizer-only``), as ``torch.nn.Module``s
  whose ``state_dict`` keys are the files' own, stepping and classifying physical states.
- ``thermalize(model, x, ...)``: the rollout's thermalization step (src/rollout/thermalize.rs).
- ``open_trajectories(path)``, ``open_rollout(path)``: the HDF5 outputs as xarray datasets.

The readers need no PyTorch: the model names are imported (with torch) on first use.
Conventions (units, normalisation, axis order) are in python/README.md.
"""

from importlib import import_module

from .data import open_rollout, open_trajectories

# Name -> module of the names that need torch.
_TORCH = {
    "Applied": "thermalization",
    "Emulator": "models",
    "ModelFileError": "checkpoint",
    "Schedule": "diffusion",
    "Thermalizer": "models",
    "ThermalizerNet": "networks",
    "Unet": "networks",
    "UnetShape": "networks",
    "load_emulator": "models",
    "load_thermalizer": "models",
    "thermalize": "models",
}

__all__ = sorted(["open_rollout", "open_trajectories", *_TORCH])


def __getattr__(name):
    if name in _TORCH:
        return getattr(import_module(f".{_TORCH[name]}", __name__), name)
    raise AttributeError(f"module 'thermalizer' has no attribute {name!r}")
