"""A model seen up to one of its layers, so that any method explains a neuron or a channel.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from nnlab.core.hooks import LayerSpec, capture, layer_name


class LayerOutput(nn.Module):
    """``model`` seen up to ``layer``: its output is the layer's activation (N, C, h, w), so that any method
    explains a neuron or a channel with a callable target.

    Example::

        unit = Saliency(LayerOutput(model, "relu2")).attribute(x, target=lambda acts: acts[:, 5, 7, 7])
        channel = GuidedBackprop(LayerOutput(model, "relu2")).attribute(x, target=lambda acts: acts[:, 5].sum((1, 2)))
    """

    def __init__(self, model: nn.Module, layer: LayerSpec):
        super().__init__()
        self.model = model
        self.layer = layer_name(model, layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with capture(self.model, [self.layer], detach=False) as acts:
            self.model(x)      # (the layers after `layer` run too; their output is not used)
        return acts[self.layer]
