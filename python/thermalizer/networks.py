"""The networks of src/nn/ in PyTorch, with the checkpoints' own parameter names.

Both work on *normalised* states ``[batch, channel, y, x]`` (each channel divided by its
``normalisation/scale``; see ``thermalizer.models`` for the physical-unit wrappers).

- ``Unet``: the "ModernUnet" (src/nn/unet.rs): 3x3 input projection, per level ``blocks``
  pre-activation residual blocks (GELU -> conv3x3 -> GELU -> conv3x3, plus a 1x1 shortcut
  when the width changes; no normalisation layers, no attention, no time embedding), a
  stride-2 3x3 downsampling conv between levels, two middle blocks, a decoder fed the
  concatenation ``[current, skip]`` with ``blocks + 1`` blocks per level and a 4x4 stride-2
  transposed conv between levels, then GELU -> 3x3 conv. Every 3x3 conv pads circularly by
  one point (the domain is doubly periodic); the transposed conv crops one point per side
  (``padding=1``), as the authors' model. GELU is the exact (erf) one.
- ``ThermalizerNet``: the same UNet predicting the noise of a noised state (blind: no level
  input) plus ``regressor_block``, a classifier head on the bottleneck giving one logit per
  diffusion level (src/nn/classifier.rs).

Parameter names (``image_proj.weight``, ``down.0.res.conv1.weight``, ``down.1.conv.bias``,
``middle.res1.conv2.weight``, ``up.3.conv.weight``, ``final.bias``,
``regressor_block.linear1.weight``, ...) are the state-dict keys of the checkpoints, so
``load_state_dict(weights, strict=True)`` takes a checkpoint's weights as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Size of the flattened vector the classifier head aims for (the authors' ``mlp_max``).
MLP_MAX = 4096


@dataclass(frozen=True)
class UnetShape:
    """Shape of a UNet: the ``model`` section of a config, plus its channel counts."""

    in_channels: int
    out_channels: int
    hidden: int
    dim_mults: Tuple[int, ...]
    blocks: int

    @property
    def bottleneck_channels(self) -> int:
        return self.hidden * math.prod(self.dim_mults)


def periodic_conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Conv2d:
    """A kxk convolution on the torus: circular padding by k//2, then a valid convolution."""
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, padding_mode="circular")


class ResidualBlock(nn.Module):
    """``conv2(GELU(conv1(GELU(x)))) + shortcut(x)``; the shortcut a 1x1 conv when widths differ."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = periodic_conv(c_in, c_out, 3)
        self.conv2 = periodic_conv(c_out, c_out, 3)
        self.shortcut = periodic_conv(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.gelu(self.conv1(F.gelu(x))))
        return h + (self.shortcut(x) if self.shortcut is not None else x)


class _Res(nn.Module):
    """A residual layer of ``down``/``up`` (its parameters live under ``<k>.res.``)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.res = ResidualBlock(c_in, c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.res(x)


class _Resample(nn.Module):
    """A down- or upsampling layer of ``down``/``up`` (parameters under ``<k>.conv.``)."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class _Middle(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.res1 = ResidualBlock(c, c)
        self.res2 = ResidualBlock(c, c)

    def forward(self, x: Tensor) -> Tensor:
        return self.res2(self.res1(x))


class Unet(nn.Module):
    """The UNet: ``[B, C_in, N, N]`` -> ``[B, C_out, N, N]``, normalised units.

    N must be a multiple of ``2**(len(dim_mults) - 1)`` with at least 2 points left at the
    bottleneck, as the Rust code checks.
    """

    def __init__(self, shape: UnetShape):
        super().__init__()
        self.shape = shape
        s = shape
        self.image_proj = periodic_conv(s.in_channels, s.hidden, 3)
        levels = len(s.dim_mults)
        self.down = nn.ModuleList()
        c_in = s.hidden
        for i, m in enumerate(s.dim_mults):
            c_out = c_in * m
            for _ in range(s.blocks):
                self.down.append(_Res(c_in, c_out))
                c_in = c_out
            if i + 1 < levels:
                self.down.append(_Resample(periodic_conv(c_in, c_in, 3, stride=2)))
        self.middle = _Middle(c_in)
        self.up = nn.ModuleList()
        for i in reversed(range(levels)):
            for _ in range(s.blocks):
                self.up.append(_Res(2 * c_in, c_in))
            c_out = c_in // s.dim_mults[i]
            self.up.append(_Res(c_in + c_out, c_out))
            c_in = c_out
            if i > 0:
                self.up.append(_Resample(nn.ConvTranspose2d(c_in, c_in, 4, stride=2, padding=1)))
        # ``final`` is the checkpoints' name of the output projection.
        self.final = periodic_conv(c_in, s.out_channels, 3)

    def check_grid(self, n: int) -> None:
        """Raises ValueError when an ``n``-point grid cannot pass the levels of this UNet."""
        levels = len(self.shape.dim_mults)
        factor = 1 << (levels - 1)
        if n % factor != 0 or n // factor < 2:
            raise ValueError(
                f"a {n}x{n} grid cannot pass {levels} levels (needs a multiple of {factor}, at least {2 * factor})"
            )

    def encode(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """Encoder and middle blocks: the bottleneck map and the skips for the decoder."""
        x = self.image_proj(x)
        skips = [x]
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        return self.middle(x), skips

    def decode(self, x: Tensor, skips: List[Tensor]) -> Tensor:
        """Decoder (each residual layer takes ``[current, last unused skip]``) and output."""
        skips = list(skips)
        for layer in self.up:
            if isinstance(layer, _Res):
                x = layer(torch.cat([x, skips.pop()], dim=1))
            else:
                x = layer(x)
        return self.final(F.gelu(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(*self.encode(x))


class _Head(nn.Module):
    """``regressor_block``: GELU -> conv3x3 -> GELU -> conv1x1 to ``filters`` -> flatten ->
    Linear to T -> GELU -> Linear T -> T."""

    def __init__(self, channels: int, bottleneck: int, levels: int):
        super().__init__()
        filters = max(1, round(MLP_MAX / (bottleneck * bottleneck)))
        self.conv1 = periodic_conv(channels, channels, 3)
        self.conv2 = periodic_conv(channels, filters, 1)
        self.linear1 = nn.Linear(filters * bottleneck * bottleneck, levels)
        self.linear2 = nn.Linear(levels, levels)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.gelu(self.conv1(F.gelu(x)))).flatten(1)
        return self.linear2(F.gelu(self.linear1(h)))


class ThermalizerNet(Unet):
    """Blind denoiser plus noise-level classifier, for ``image``-point grids and T = ``levels``.

    ``forward`` is the predicted noise; ``logits`` the classifier's ``[B, T]`` logits from
    the encoder, middle blocks and head only.
    """

    def __init__(self, shape: UnetShape, image: int, levels: int):
        super().__init__(shape)
        self.check_grid(image)
        self.image = image
        self.levels = levels
        bottleneck = image >> (len(shape.dim_mults) - 1)
        self.regressor_block = _Head(shape.bottleneck_channels, bottleneck, levels)

    def forward_both(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Predicted noise and logits from one pass."""
        bottleneck, skips = self.encode(x)
        return self.decode(bottleneck, skips), self.regressor_block(bottleneck)

    def logits(self, x: Tensor) -> Tensor:
        return self.regressor_block(self.encode(x)[0])

    def noise_level(self, x: Tensor) -> Tensor:
        """Most likely noise level per sample, ``[B]`` int64 (argmax of the logits)."""
        return self.logits(x).argmax(-1)
