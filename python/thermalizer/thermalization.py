"""Thermalization in PyTorch: the reference of src/rollout/thermalize.rs (paper.md section 5).

After an emulator step, for a batch of (normalised) states:

1. the classifier estimates each state's noise level s_i (one encoder + head pass);
2. states with s_init < s_i <= noise_limit are selected (the others are left alone; states
   above noise_limit are reported in ``over_limit``: the Rust rollout stops those members);
3. with ``forward_noise``, each selected state is noised forward to its level:
   x <- sqrt(alpha_bar_{s_i}) x + sqrt(1 - alpha_bar_{s_i}) eps;
4. for t = max s_i down to s_stop + 1, the states with s_i >= t take one DDPM reverse step at
   level t (one noise prediction over just those states).

A state at level s gets s - s_stop reverse steps and ends at level s_stop (every state starts
at its own level; the authors' loop started the highest one a level lower).

The Rust code draws eps and z from each member's ChaCha8 stream; here they come from
``generator`` (``torch.Generator``, or the global one), so the levels and pass counts equal
the Rust ones for the same input, the denoised states only in distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor

from .diffusion import Schedule
from .networks import ThermalizerNet


@dataclass
class Applied:
    """What happened to each state of the batch."""

    levels: List[int]
    """Predicted level before thermalization."""
    passes: List[int]
    """Reverse (denoising) passes applied."""
    over_limit: List[bool]
    """Level above noise_limit: not thermalized (the rollout stops such a member)."""


@torch.no_grad()
def thermalize_normalised(
    net: ThermalizerNet,
    x: Tensor,
    schedule: Schedule,
    *,
    s_init: int,
    s_stop: int,
    noise_limit: int,
    forward_noise: bool = True,
    generator: Optional[torch.Generator] = None,
):
    """Thermalizes the normalised states ``x`` ``[B, C, N, N]``; returns ``(new x, Applied)``."""
    levels = net.noise_level(x).tolist()
    over = [s > noise_limit for s in levels]
    passes = [0] * len(levels)
    selected = [i for i, s in enumerate(levels) if s > s_init and not over[i]]
    x = x.clone()
    if selected:
        xs = x[selected]
        ss = [min(levels[i], schedule.levels - 1) for i in selected]
        if forward_noise:
            eps = torch.randn(xs.shape, generator=generator, dtype=xs.dtype, device=xs.device)
            xs = schedule.noised(xs, ss, eps)
        for t in range(max(ss), s_stop, -1):
            at = [p for p, s in enumerate(ss) if s >= t]
            sub = xs[at]
            z = torch.randn(sub.shape, generator=generator, dtype=sub.dtype, device=sub.device)
            xs[at] = schedule.reverse_step(sub, t, net(sub), z)
            for p in at:
                passes[selected[p]] += 1
        x[selected] = xs
    return x, Applied(levels, passes, over)
