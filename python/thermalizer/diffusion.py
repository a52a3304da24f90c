"""DDPM with the cosine schedule (Nichol & Dhariwal 2021), as src/nn/diffusion.rs.

Levels are 0-indexed, t = 0..T-1: f(t) = cos^2(((t/T + s)/(1+s)) * pi/2), s = 0.008,
beta_t = min(1 - f(t+1)/f(t), 0.999), alpha_t = 1 - beta_t, alpha_bar_t = prod_{k<=t} alpha_k.
Forward noising: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps. Reverse (ancestral)
step: x_{t-1} = (x_t - beta_t/sqrt(1 - alpha_bar_t) eps_hat)/sqrt(alpha_t) + sigma_t z with
sigma_t^2 = beta_t (1 - alpha_bar_{t-1})/(1 - alpha_bar_t), sigma_0 = 0.

The schedule is held in float64 on the host; the coefficients meet the states in the states'
dtype, as in the Rust code.
"""

from __future__ import annotations

import math
from typing import List, Sequence

import torch
from torch import Tensor

COSINE_OFFSET = 0.008
MAX_BETA = 0.999


class Schedule:
    """The cosine schedule of ``levels`` = T levels."""

    def __init__(self, levels: int):
        f = lambda t: math.cos(((t / levels + COSINE_OFFSET) / (1.0 + COSINE_OFFSET)) * math.pi / 2) ** 2
        self.beta: List[float] = [min(max(1.0 - f(t + 1) / f(t), 0.0), MAX_BETA) for t in range(levels)]
        self.alpha_bar: List[float] = []
        acc = 1.0
        for b in self.beta:
            acc *= 1.0 - b
            self.alpha_bar.append(acc)

    @property
    def levels(self) -> int:
        return len(self.beta)

    def noise_std(self, t: int) -> float:
        """sqrt(1 - alpha_bar_t): the noise amplitude of level t in normalised units."""
        return math.sqrt(1.0 - self.alpha_bar[t])

    def noised(self, x0: Tensor, t: Sequence[int], eps: Tensor) -> Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps with one level per sample."""
        shape = (len(t),) + (1,) * (x0.dim() - 1)
        a = torch.tensor([math.sqrt(self.alpha_bar[k]) for k in t], dtype=torch.float64).view(shape)
        b = torch.tensor([self.noise_std(k) for k in t], dtype=torch.float64).view(shape)
        return x0 * a.to(x0) + eps * b.to(x0)

    def reverse_step(self, x_t: Tensor, t: int, eps_hat: Tensor, z: Tensor) -> Tensor:
        """One ancestral step from level ``t`` (the whole batch) given eps_hat and fresh z."""
        beta = self.beta[t]
        mean = (x_t - eps_hat * (beta / self.noise_std(t))) / math.sqrt(1.0 - beta)
        if t == 0:
            return mean
        var = beta * (1.0 - self.alpha_bar[t - 1]) / (1.0 - self.alpha_bar[t])
        return mean + z * math.sqrt(var)
