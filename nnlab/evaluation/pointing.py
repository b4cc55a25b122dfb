"""The pointing game: does the maximum of the map fall on the object?

Zhang, Lin, Brandt, Shen & Sclaroff, "Top-down Neural Attention by Excitation Backprop", ECCV 2016,
https://arxiv.org/abs/1608.00507 (section 5.1).

For each image, take the pixel where the map is largest; it is a *hit* when it lies inside the object's bounding
box (or within ``tolerance`` pixels of it; the paper uses 15 pixels on full-size images), a *miss* otherwise.
The score is the share of hits. A point drawn uniformly at random hits with probability (box area) / (image
area): :func:`random_baseline` is what a map must beat.

Example::

    data = nnlab.data.cluttered_mnist(100, split="test")
    attr = GradCAM(model, "relu4").attribute(data.images, data.labels)      # (N, 1, 8, 8)
    result = pointing_game(attr, data.boxes, size=(64, 64))
    result.accuracy, random_baseline(data.boxes, (64, 64))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from nnlab.core.checks import check_finite, check_number, check_size
from nnlab.core.maps import reduce_channels, upsample


@dataclass
class PointingResult:
    """points: (N, 2) long, (row, col) of each map's maximum in image pixels; hits: (N,) bool."""

    points: torch.Tensor
    hits: torch.Tensor

    @property
    def accuracy(self) -> float:
        """Share of hits: hits / (hits + misses)."""
        return self.hits.float().mean().item()

    def __repr__(self) -> str:
        return f"PointingResult({int(self.hits.sum())} hits of {len(self.hits)}: accuracy {self.accuracy:.3f})"


def _check_boxes(boxes: torch.Tensor) -> torch.Tensor:
    if not isinstance(boxes, torch.Tensor):
        try:
            boxes = torch.as_tensor(boxes, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"boxes must be a tensor (N, 4) = (left, top, right, bottom), got "
                            f"{type(boxes).__name__}") from None
    check_finite(boxes, "boxes")
    boxes = boxes.float()
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) = (left, top, right, bottom), got {tuple(boxes.shape)}")
    return boxes


def box_masks(boxes: torch.Tensor, size: Sequence[int], tolerance: float = 0.0) -> torch.Tensor:
    """Which pixels count as hits: (N, H, W) bool, True within ``tolerance`` pixels (Euclidean distance) of the box.

    boxes: (N, 4) = (left, top, right, bottom) in pixels, right and bottom exclusive (``ImageSet.boxes``).
    """
    boxes = _check_boxes(boxes)
    height, width = (check_size(s, "size") for s in size)
    tolerance = check_number(tolerance, "tolerance", minimum=0)
    rows = torch.arange(height, dtype=torch.float32).view(1, height, 1)
    cols = torch.arange(width, dtype=torch.float32).view(1, 1, width)
    left, top, right, bottom = (boxes[:, k].view(-1, 1, 1) for k in range(4))
    dx = (left - cols).clamp(min=0) + (cols - (right - 1)).clamp(min=0)      # 0 inside [left, right - 1]
    dy = (top - rows).clamp(min=0) + (rows - (bottom - 1)).clamp(min=0)
    return dx ** 2 + dy ** 2 <= tolerance ** 2


def max_points(attr: torch.Tensor, size: Optional[Sequence[int]] = None, reduce: str = "sum") -> torch.Tensor:
    """(row, col) of the maximum of each map, (N, 2) long.

    attr: (N, C, h, w); channels are combined with ``reduce`` (:func:`nnlab.core.maps.reduce_channels`; pass
    ``attr.abs()`` for magnitudes), then the map is upsampled bilinearly to ``size`` = (H, W) (default: its own).
    On ties, the first maximum in row-major order wins.
    """
    check_finite(attr, "attr")
    attr = attr.detach().cpu().float()
    if attr.dim() != 4 or 0 in attr.shape:
        raise ValueError(f"attr must have shape (N, C, H, W) or (N, 1, h, w), got {tuple(attr.shape)}")
    maps = reduce_channels(attr, reduce)
    if size is not None:
        maps = upsample(maps, size)
    width = maps.shape[-1]
    flat = maps.flatten(1).argmax(dim=1)
    return torch.stack([flat // width, flat % width], dim=1)


def pointing_game(attr: torch.Tensor, boxes: torch.Tensor, size: Optional[Sequence[int]] = None,
                  tolerance: float = 0.0, reduce: str = "sum") -> PointingResult:
    """Score maps by the pointing game (Zhang et al., 2016): a hit when the map's maximum falls in the box.

    Args:
        attr: maps (N, C, h, w), input-space or layer maps (upsampled to ``size``, see :func:`max_points`).
        boxes: (N, 4) = (left, top, right, bottom), right/bottom exclusive (``cluttered_mnist(...).boxes``).
        size: the image size (H, W); default: the maps' own size.
        tolerance: a point within this distance (pixels) of the box is a hit too (the paper: 15).
    Returns:
        a :class:`PointingResult` with the points, the hits and ``accuracy``.
    """
    boxes = _check_boxes(boxes)
    check_finite(attr, "attr")
    if len(attr) != len(boxes):
        raise ValueError(f"{len(attr)} maps for {len(boxes)} boxes")
    size = tuple(size) if size is not None else tuple(attr.shape[-2:])
    points = max_points(attr, size, reduce)
    masks = box_masks(boxes, size, tolerance)
    hits = masks[torch.arange(len(points)), points[:, 0], points[:, 1]]
    return PointingResult(points, hits)


def random_baseline(boxes: torch.Tensor, size: Sequence[int], tolerance: float = 0.0) -> float:
    """Expected pointing-game score of a point drawn uniformly at random: the mean share of the image covered by
    the box (grown by ``tolerance``)."""
    return box_masks(boxes, size, tolerance).float().mean().item()
