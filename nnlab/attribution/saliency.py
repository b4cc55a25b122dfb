"""Saliency: the gradient of the target score with respect to the input (Simonyan et al., 2014).
"""
from __future__ import annotations

import torch

from nnlab.attribution.base import Attribution
from nnlab.core.targets import Target


# --------------------------------------------------------------------------- gradient methods
class Saliency(Attribution):
    """Gradient of the target score with respect to the input pixels: attr = d S_c / d x, (N, C, H, W).

    Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks", 2014, https://arxiv.org/abs/1312.6034.
    Signed; the paper's map is ``attr.abs().amax(1)`` (see :func:`nnlab.core.maps.reduce_channels`).

    Example::

        attr = Saliency(model).attribute(x, target=3)      # (N, C, H, W)
    """

    def attribute(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        x_ = self._prepare(x)
        grads, _ = self.input_gradient(x_, target)
        return grads.to(x.device)
