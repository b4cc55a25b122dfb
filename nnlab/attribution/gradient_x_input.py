"""Gradient x input (Shrikumar et al., 2016).
"""
from __future__ import annotations

import torch

from nnlab.attribution.base import Attribution
from nnlab.core.targets import Target


class GradientXInput(Attribution):
    """Input times gradient: attr = x * d S_c / d x, (N, C, H, W) (a first-order estimate of each pixel's
    contribution relative to a black image).

    Shrikumar, Greenside, Shcherbina & Kundaje, "Not Just a Black Box", 2016, https://arxiv.org/abs/1605.01713.

    Example::

        attr = GradientXInput(model).attribute(x, target=0)
    """

    def attribute(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        x_ = self._prepare(x)
        grads, _ = self.input_gradient(x_, target)
        return (x_ * grads).to(x.device)
