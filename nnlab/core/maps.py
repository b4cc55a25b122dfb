"""Map maths shared by attribution, evaluation and plotting: reduce channels, upsample, normalise.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

# =========================================================================== attribution maps
#: How a map is normalised for display (see :func:`normalize`).
MODES = ("signed", "abs", "positive", "rgb")


#: How the channels of an input-space map (N, C, H, W) become one map (see :func:`reduce_channels`).
REDUCTIONS = ("sum", "abs_sum", "abs_max", "max")


def reduce_channels(attr: torch.Tensor, how: str = "sum") -> torch.Tensor:
    """(N, C, H, W) -> (N, 1, H, W).

    ``"sum"``: signed sum over channels (keeps the sign); ``"abs_sum"``: sum of magnitudes;
    ``"abs_max"``: largest magnitude over channels (Simonyan et al.'s saliency map); ``"max"``: signed max.
    """
    if attr.dim() != 4:
        raise ValueError(f"attr must have shape (N, C, H, W), got {tuple(attr.shape)}")
    if how == "sum":
        return attr.sum(1, keepdim=True)
    if how == "abs_sum":
        return attr.abs().sum(1, keepdim=True)
    if how == "abs_max":
        return attr.abs().amax(1, keepdim=True)
    if how == "max":
        return attr.amax(1, keepdim=True)
    raise ValueError(f"how must be one of {REDUCTIONS}, got {how!r}")


def upsample(maps: torch.Tensor, size: Sequence[int], mode: str = "bilinear") -> torch.Tensor:
    """Resize maps (N, C, h, w) to ``size`` = (H, W): ``"bilinear"`` (smooth, as in Grad-CAM), ``"nearest"``
    (shows the layer's cells), ``"bicubic"``, or ``"none"`` (unchanged; the plot stretches the cells)."""
    if mode == "none" or tuple(maps.shape[-2:]) == tuple(size):
        return maps
    options = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(maps.float(), size=tuple(size), mode=mode, **options)


def map_scale(maps: torch.Tensor, mode: str = "signed", percentile: float = 99.0, shared: bool = False) -> torch.Tensor:
    """The divisor ``s`` that :func:`normalize` uses: the ``percentile`` of |m| (of max(m, 0) for ``"positive"``),
    one per map (N,) or, with ``shared=True``, one over the whole batch (a scalar tensor), for panels that must be
    compared on one scale."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    maps = torch.as_tensor(maps).detach().float()
    values = maps.clamp(min=0) if mode == "positive" else maps.abs()
    flat = values.reshape(1, -1) if shared else values.flatten(1)
    scale = torch.quantile(flat, percentile / 100, dim=1) if percentile < 100 else flat.amax(1)
    return scale.clamp(min=1e-12)[0] if shared else scale.clamp(min=1e-12)


def normalize(maps: torch.Tensor, mode: str = "signed", percentile: float = 99.0, scale=None) -> torch.Tensor:
    """Scale each map of a batch (N, ...) for display.

    ``mode``: ``"signed"``: m / s in [-1, 1] (0 stays 0: white in a diverging colour map);
    ``"abs"``: |m| / s in [0, 1]; ``"positive"``: max(m, 0) / s in [0, 1] (only the evidence for the target);
    ``"rgb"``: 0.5 + m / (2 s) in [0, 1] per channel (the usual look of guided backpropagation images).

    Percentile stretch, an explicit choice: by default (``scale=None``) ``s`` is the ``percentile`` of |m| (or of
    max(m, 0)) over each image on its own (*per-panel*: shows each map's pattern; a few extreme pixels above it are
    clipped; ``percentile=100`` divides by the maximum). Pass ``scale`` (a number, or
    ``map_scale(maps, mode, percentile, shared=True)``) to put every map on one *shared* scale, when the point is
    to compare their strengths.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    maps = maps.detach().float()
    values = maps.clamp(min=0) if mode == "positive" else maps.abs()
    if scale is None:
        scale = map_scale(maps, mode, percentile)
    scale = torch.as_tensor(scale, dtype=torch.float32).clamp(min=1e-12)
    scale = scale.view(-1, *([1] * (maps.dim() - 1))) if scale.dim() else scale
    if mode == "signed":
        return (maps / scale).clamp(-1, 1)
    if mode == "rgb":
        return (0.5 + maps / (2 * scale)).clamp(0, 1)
    return (values / scale).clamp(0, 1)
