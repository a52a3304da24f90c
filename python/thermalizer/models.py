"""The trained models in physical units: ``load_emulator``, ``load_thermalizer``.

**Normalisation.** The networks see each channel (Kolmogorov: the vorticity; two-layer QG:
the PV anomaly of layer 1 and of layer 2) divided by its scale, the file's
``normalisation/scale[c]``: the standard deviation of that channel over every stored state
of the training members, in physical units (nondimensional vorticity; s^-1 for QG PV).
**No mean is subtracted**, and nothing else is applied: ``x_norm[c] = x[c] / scale[c]``,
``x[c] = scale[c] * x_norm[c]``.

- ``Emulator.step(x)``: one emulator step (one stored interval, ``generate.steps_per_sample``
  solver steps) of physical states: ``x + scale * f(x / scale)``, the residual
  parametrisation it was trained with (x_{n+1} = x_n + f(x_n) in normalised units).
- ``Thermalizer.classify(x)``: the predicted noise level of physical states.
- ``Thermalizer.thermalize(x, ...)``: classify, noise to the level, denoise down to s_stop.

``forward`` of both is the bare network on normalised states (``Emulator.forward``: the
normalised increment f; ``Thermalizer.forward``: the predicted noise), and their
``state_dict`` holds exactly the file's weight names (the scale is a non-persistent buffer).
States are ``[batch, channel, y, x]`` or a single ``[channel, y, x]``; float32.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from . import checkpoint
from .checkpoint import ModelFile
from .diffusion import Schedule
from .networks import ThermalizerNet, Unet, UnetShape
from .thermalization import Applied, thermalize_normalised


def infer_shape(weights: Dict[str, Tensor], mf: ModelFile) -> UnetShape:
    """The UNet shape that the weights were made for (read off the tensor shapes)."""

    def get(name: str) -> Tensor:
        if name not in weights:
            raise mf.error(f"tensor '{name}' missing (not a thermalizer UNet?)")
        return weights[name]

    hidden, in_channels = get("image_proj.weight").shape[:2]
    out_channels = get("final.weight").shape[0]
    down = sorted({int(m.group(1)) for k in weights if (m := re.match(r"down\.(\d+)\.", k))})
    is_res = [f"down.{k}.res.conv1.weight" in weights for k in down]
    if not down or not is_res[0] or down != list(range(len(down))):
        raise mf.error("tensors 'down.<k>.*' do not form a UNet encoder")
    blocks = is_res.index(False) if False in is_res else len(is_res)
    levels = (len(down) + 1) // (blocks + 1)
    mults = []
    for i in range(levels):
        w = get(f"down.{i * (blocks + 1)}.res.conv1.weight")
        c_out, c_in = w.shape[:2]
        if c_out % c_in:
            raise mf.error(
                f"tensor 'down.{i * (blocks + 1)}.res.conv1.weight' has shape {tuple(w.shape)}: not a UNet level"
            )
        mults.append(c_out // c_in)
    return UnetShape(int(in_channels), int(out_channels), int(hidden), tuple(mults), blocks)


def _load_strict(net: torch.nn.Module, weights: Dict[str, Tensor], mf: ModelFile) -> None:
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise mf.error(f"weights do not fit the model they describe: {' '.join(first[1:2] or first)}") from None


class _Physical:
    """Normalisation of physical states by the per-channel ``scale`` buffer."""

    scale: Tensor

    def _scale_like(self, x: Tensor) -> Tensor:
        return self.scale.view(-1, 1, 1).to(x)

    def normalise(self, x: Tensor) -> Tensor:
        """Physical -> normalised units: each channel divided by its scale."""
        return x / self._scale_like(x)

    def denormalise(self, x: Tensor) -> Tensor:
        """Normalised -> physical units."""
        return x * self._scale_like(x)

    def _batched(self, x: Tensor, grid: Optional[int] = None) -> Tuple[Tensor, bool]:
        """``x`` as ``[B, C, N, N]``, and whether it was a single ``[C, N, N]`` state; checks
        the channel count (and the grid, for a model that needs one)."""
        channels = self.scale.numel()
        n = x.shape[-1] if x.dim() else 0
        if x.dim() not in (3, 4) or x.shape[-3] != channels or x.shape[-2] != n or (grid and n != grid):
            want = f"{channels}, {grid or 'N'}, {grid or 'N'}"
            raise ValueError(f"states of shape {tuple(x.shape)}: this model takes [batch, {want}] or [{want}]")
        return (x.unsqueeze(0), True) if x.dim() == 3 else (x, False)


class Emulator(_Physical, Unet):
    """The trained emulator (see the module doc for units and the normalisation)."""

    def __init__(self, shape: UnetShape, scale: Tensor, metadata: Optional[Dict[str, str]] = None, path: str = ""):
        Unet.__init__(self, shape)
        self.register_buffer("scale", scale.to(torch.float32), persistent=False)
        self.metadata = dict(metadata or {})
        self.path = path

    @torch.no_grad()
    def step(self, x: Tensor, sigma: float = 0.0, generator: Optional[torch.Generator] = None) -> Tensor:
        """One emulator step of physical states: ``x + scale * f(x / scale)``.

        ``sigma > 0`` adds ``sigma * z`` in normalised units after the step, as the Rust
        rollout does with ``rollout.sigma`` (there by default the emulator's training sigma).
        """
        xb, single = self._batched(x)
        self.check_grid(xb.shape[-1])
        xn = self.normalise(xb)
        xn = xn + self(xn)
        if sigma > 0:
            xn = xn + sigma * torch.randn(xn.shape, generator=generator, dtype=xn.dtype, device=xn.device)
        out = self.denormalise(xn)
        return out[0] if single else out


class Thermalizer(_Physical, ThermalizerNet):
    """The trained thermalizer: denoiser and noise-level classifier, with its schedule."""

    def __init__(
        self,
        shape: UnetShape,
        image: int,
        levels: int,
        scale: Tensor,
        metadata: Optional[Dict[str, str]] = None,
        path: str = "",
    ):
        ThermalizerNet.__init__(self, shape, image, levels)
        self.register_buffer("scale", scale.to(torch.float32), persistent=False)
        self.schedule = Schedule(levels)
        self.metadata = dict(metadata or {})
        self.path = path

    @torch.no_grad()
    def classify(self, x: Tensor) -> Tensor:
        """Predicted noise level (0..T-1, int64) of physical states: ``[B]``, or a scalar."""
        xb, single = self._batched(x, self.image)
        levels = self.noise_level(self.normalise(xb))
        return levels[0] if single else levels

    def thermalize(self, x: Tensor, **thresholds) -> Tuple[Tensor, Applied]:
        """``thermalize(self, x, **thresholds)``: see there."""
        return thermalize(self, x, **thresholds)


def load_emulator(path: "os.PathLike[str] | str", ema: Optional[bool] = None) -> Emulator:
    """The emulator of a training checkpoint or an exported file, in evaluation mode on the CPU.

    ``ema``: None (default) takes the EMA weights when the file has them, else the raw ones,
    as the Rust rollout (the emulator is trained without EMA by default); True/False insist.
    """
    mf = checkpoint.read(path, "emulator")
    weights = mf.weights(ema)
    shape = infer_shape(weights, mf)
    net = Emulator(shape, mf.scale(shape.in_channels), mf.metadata, mf.path)
    _load_strict(net, weights, mf)
    return net.eval()


def load_thermalizer(path: "os.PathLike[str] | str", ema: Optional[bool] = None) -> Thermalizer:
    """The thermalizer of a training checkpoint or an exported file (also ``--thermalizer-only``),
    in evaluation mode on the CPU.

    ``ema``: None (default) takes the EMA weights when the file has them (what a rollout reads
    with its default ``rollout.ema: true``), else the raw ones; True/False insist.
    """
    mf = checkpoint.read(path, "thermalizer")
    weights = mf.weights(ema)
    shape = infer_shape(weights, mf)
    head = {n: weights.get(f"regressor_block.{n}.weight") for n in ("conv2", "linear1", "linear2")}
    missing = [n for n, w in head.items() if w is None]
    if missing:
        raise mf.error(f"tensor 'regressor_block.{missing[0]}.weight' missing (an emulator's weights?)")
    filters = head["conv2"].shape[0]
    flat = head["linear1"].shape[1]
    bottleneck = round((flat / filters) ** 0.5)
    if bottleneck * bottleneck * filters != flat:
        raise mf.error(
            f"tensor 'regressor_block.linear1.weight' has shape {tuple(head['linear1'].shape)}: "
            f"not {filters} filters of a square map"
        )
    image = bottleneck << (len(shape.dim_mults) - 1)
    net = Thermalizer(shape, image, head["linear2"].shape[0], mf.scale(shape.in_channels), mf.metadata, mf.path)
    _load_strict(net, weights, mf)
    return net.eval()


def thermalize(
    model: Thermalizer,
    x: Tensor,
    *,
    s_init: int,
    s_stop: int,
    noise_limit: int,
    forward_noise: bool = True,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Applied]:
    """Thermalizes physical states ``x`` with ``model`` (thermalization.py) with the rollout's
    ``rollout.s_init``, ``s_stop``, ``noise_limit`` and ``forward_noise``; returns the new
    states and what was done to each."""
    xb, single = model._batched(x, model.image)
    xn, applied = thermalize_normalised(
        model,
        model.normalise(xb),
        model.schedule,
        s_init=s_init,
        s_stop=s_stop,
        noise_limit=noise_limit,
        forward_noise=forward_noise,
        generator=generator,
    )
    out = model.denormalise(xn)
    return (out[0] if single else out), applied
