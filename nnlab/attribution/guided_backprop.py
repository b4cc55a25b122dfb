"""Guided backpropagation (Springenberg et al., 2015) and the deconvnet (Zeiler & Fergus, 2014):
the gradient with another ReLU backward rule, nothing else differs.
"""
from __future__ import annotations

from nnlab.attribution.saliency import Saliency


class GuidedBackprop(Saliency):
    """Guided backpropagation: the gradient, except that through every ReLU the backward signal passes only
    where the forward input was positive AND the incoming gradient is positive. attr: (N, C, H, W).

    Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for Simplicity: The All Convolutional Net", 2015,
    https://arxiv.org/abs/1412.6806. Differs from :class:`Saliency` only in ``relu_rule``; the rule reaches
    every ReLU: ``nn.ReLU`` modules (in-place, reused) and functional calls (``F.relu``, ``torch.relu``, ...).

    Example::

        attr = GuidedBackprop(model).attribute(x)           # predicted class
    """

    relu_rule = "guided"


class Deconvnet(Saliency):
    """Zeiler-Fergus deconvnet projection of the target score back to pixel space: the gradient, except that
    the ReLU backward rectifies the incoming signal only (max(g, 0)) and ignores the forward mask.
    attr: (N, C, H, W).

    Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", 2014,
    https://arxiv.org/abs/1311.2901. Transposed convolutions and max-pooling "switches" are exactly what the
    gradient does already, so only ``relu_rule`` differs from :class:`Saliency`.

    Example::

        attr = Deconvnet(model).attribute(x, target=[3, 8])
    """

    relu_rule = "deconvnet"
