"""Reading the model files of thermalizer: training checkpoints and exported models.

Both are safetensors files with metadata ``format = "thermalizer-checkpoint-1"`` and
``model`` (``emulator`` or ``thermalizer``); see src/train/weights_file.rs and
src/stages/models.rs. Their tensors:

- the weights under the PyTorch names (``image_proj.weight``, ...);
- ``ema/<name>``: the exponential moving average of each weight (a model trained with EMA,
  the thermalizer by default);
- ``optimizer/exp_avg``, ``optimizer/exp_avg_sq``: AdamW's moments (training checkpoints);
- ``normalisation/scale``: one value per channel (layer), physical units per normalised unit.

An exported file (``thermalizer export``, metadata ``exported_from``) keeps only what a rollout
reads: the emulator's weights, the thermalizer's ``ema/*`` weights (or its raw weights with
``rollout.ema: false``; metadata ``ema`` says which: ``true``, ``false`` or ``none``) and the
scale. ``--half`` stores the weights in float16; everything is widened to float32 here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import Tensor

FORMAT = "thermalizer-checkpoint-1"
SCALE = "normalisation/scale"
EMA = "ema/"


class ModelFileError(ValueError):
    """A model file that cannot be used: the message names the file, the key and the value."""


@dataclass
class ModelFile:
    """A model file in memory: its float32 tensors and string metadata."""

    path: str
    tensors: Dict[str, Tensor]
    metadata: Dict[str, str]

    def error(self, what: str) -> ModelFileError:
        return ModelFileError(f"model file {self.path}: {what}")

    @property
    def model(self) -> str:
        """Which model the file holds: ``emulator`` or ``thermalizer``."""
        return self.metadata["model"]

    @property
    def exported(self) -> bool:
        return "exported_from" in self.metadata

    @property
    def has_ema(self) -> bool:
        return any(k.startswith(EMA) for k in self.tensors)

    @property
    def has_raw(self) -> bool:
        return any("/" not in k for k in self.tensors)

    def scale(self, channels: int) -> Tensor:
        """``normalisation/scale`` as float32 ``[channels]``, checked finite and positive."""
        s = self.tensors.get(SCALE)
        if s is None:
            raise self.error(f"tensor '{SCALE}' missing")
        if tuple(s.shape) != (channels,):
            raise self.error(f"tensor '{SCALE}' has shape {tuple(s.shape)}, the model has {channels} channels")
        if not bool(torch.all(torch.isfinite(s) & (s > 0))):
            raise self.error(f"tensor '{SCALE}' = {s.tolist()}: expected finite positive values")
        return s

    def weights(self, ema: Optional[bool] = None) -> Dict[str, Tensor]:
        """The network's weights under their plain names (a strict ``load_state_dict`` takes them).

        ``ema=None`` picks what the Rust rollout reads with its default ``rollout.ema: true``:
        the EMA weights when the file holds them, else the raw weights. ``ema=True`` insists on
        the EMA weights, ``ema=False`` on the raw ones.
        """
        use_ema = self.has_ema if ema is None else ema
        if use_ema and not self.has_ema:
            raise self.error(
                f"ema=True but the file holds no '{EMA}*' weights (metadata ema = {self.metadata.get('ema')!r})"
            )
        if not use_ema and not self.has_raw:
            raise self.error(
                f"ema=False but the file holds only '{EMA}*' weights (metadata ema = {self.metadata.get('ema')!r}; "
                "export with rollout.ema=false for the raw weights)"
            )
        if use_ema:
            return {k[len(EMA) :]: t for k, t in self.tensors.items() if k.startswith(EMA)}
        return {k: t for k, t in self.tensors.items() if "/" not in k}


def read(path: "os.PathLike[str] | str", model: Optional[str] = None) -> ModelFile:
    """Reads a thermalizer model file; ``model`` (``emulator``/``thermalizer``) checks what it holds."""
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"model file {path}: no such file")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"model file {path}: not a safetensors file ({e})") from None
    mf = ModelFile(path, {}, metadata)
    if metadata.get("format") != FORMAT:
        raise mf.error(f"metadata 'format' is {metadata.get('format')!r}, expected {FORMAT!r}: not a thermalizer model")
    if "model" not in metadata:
        raise mf.error("metadata 'model' missing")
    if model is not None and metadata["model"] != model:
        raise mf.error(f"metadata 'model' is {metadata['model']!r}: holds the {metadata['model']}, not the {model}")
    for k, t in tensors.items():
        if not t.is_floating_point():
            raise mf.error(f"tensor '{k}' is {t.dtype}, expected float32 or float16")
        mf.tensors[k] = t.to(torch.float32)
    return mf
