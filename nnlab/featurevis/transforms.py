"""Transforms applied during activation maximisation: jitter, blur, L2 decay, clamp.

Each works on the device of the image it gets; the random shifts come from a CPU generator (seeded, the same on
every device).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


# --------------------------------------------------------------------------- transforms
class Transform:
    """A transform of the image. ``when="forward"``: applied (differentiably) to the image before each forward pass;
    ``when="after_step"``: applied in place to the pixels after an optimiser step (pixel images only)."""
    when = "forward"

    def __call__(self, x: torch.Tensor, step: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


class jitter(Transform):
    """Shift the image by a random ``(dy, dx)`` in ``[-pixels, pixels]`` at every step (edges replicated),
    so that the image cannot rely on exact pixel positions (Olah et al., 2017)."""
    when = "forward"

    def __init__(self, pixels: int = 2):
        self.pixels = int(pixels)

    def __call__(self, x, step, generator):
        d = self.pixels
        if d <= 0:
            return x
        dy, dx = torch.randint(0, 2 * d + 1, (2,), generator=generator).tolist()  # CPU generator: ints only
        padded = F.pad(x, (d, d, d, d), mode="replicate")
        return padded[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]

    def __repr__(self):
        return f"jitter({self.pixels})"


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur images ``x (N, C, H, W)`` with a Gaussian of standard deviation ``sigma`` pixels
    (separable, edges reflected)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-t ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    x = F.pad(x, (radius, radius, radius, radius), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


class blur(Transform):
    """Every ``every`` steps, blur the pixels with a Gaussian of ``sigma`` pixels (Yosinski et al., 2015)."""
    when = "after_step"

    def __init__(self, sigma: float = 0.5, every: int = 4):
        self.sigma, self.every = float(sigma), int(every)

    def __call__(self, x, step, generator):
        if self.every > 0 and self.sigma > 0 and (step + 1) % self.every == 0:
            return gaussian_blur(x, self.sigma)
        return x

    def __repr__(self):
        return f"blur({self.sigma:g}, every={self.every})"


class decay(Transform):
    """Multiply the pixels by ``1 - rate`` after every step: L2 decay as a step (Yosinski et al., 2015,
    https://arxiv.org/abs/1506.06579), pulling what the class does not need back to the black background."""
    when = "after_step"

    def __init__(self, rate: float = 0.01):
        if not 0 <= rate < 1:
            raise ValueError(f"decay rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def __call__(self, x, step, generator):
        return x * (1.0 - self.rate)

    def __repr__(self):
        return f"decay({self.rate:g})"


class clamp(Transform):
    """Clip the pixels to the valid range ``[low, high]`` after every step."""
    when = "after_step"

    def __init__(self, low: float = 0.0, high: float = 1.0):
        self.low, self.high = low, high

    def __call__(self, x, step, generator):
        return x.clamp(self.low, self.high)

    def __repr__(self):
        return f"clamp({self.low:g}, {self.high:g})"
