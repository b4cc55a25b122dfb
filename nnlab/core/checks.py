"""Input checks shared by every entry point: a clear ``ValueError`` that names the argument, what was expected
and what came, raised by nnlab before torch sees the input."""
from __future__ import annotations

from typing import Optional, Sequence

import torch


def check_images(x: torch.Tensor, channels: Optional[int] = None, size: Optional[Sequence[int]] = None,
                 what: str = "x") -> torch.Tensor:
    """Raise ``ValueError`` unless ``x`` is a floating-point tensor (N, C, H, W); ``channels`` and ``size`` (H, W),
    when given, must match too. Returns ``x`` unchanged."""
    expected = f"(N, {channels if channels else 'C'}, {size[0] if size else 'H'}, {size[1] if size else 'W'})"
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor of shape {expected}, got {type(x).__name__}")
    if x.ndim != 4 or (channels and x.shape[1] != channels) or (size and tuple(x.shape[2:]) != tuple(size)):
        hint = " (add the batch dimension with x[None])" if x.ndim == 3 else ""
        raise ValueError(f"{what} must have shape {expected}, got {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise ValueError(f"{what} must be a floating-point tensor (images in [0, 1]), got {x.dtype}")
    return x
