"""Where a model lives: the one place nnlab decides on which device to build tensors.
"""
from __future__ import annotations

import torch
import torch.nn as nn


def model_device(model: nn.Module, default: torch.device) -> torch.device:
    """The device of the model's first parameter or buffer (``default`` for a model without any)."""
    t = next(model.parameters(), None)
    if t is None:
        t = next(model.buffers(), None)
    return default if t is None else t.device
