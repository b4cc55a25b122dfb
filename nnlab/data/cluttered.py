"""Cluttered MNIST (after Mnih et al., 2014): a digit among fragments of other digits, with its box.
"""
from __future__ import annotations

import numpy as np
import torch

from nnlab.data.datasets import MNIST_CLASSES, ImageSet, mnist


# --------------------------------------------------------------------------- cluttered MNIST
def digit_box(image, threshold: float = 0.1) -> tuple:
    """Tight bounding box ``(left, top, right, bottom)`` (right/bottom exclusive) of the pixels above ``threshold``
    in a ``(H, W)`` image (tensor or array)."""
    mask = np.asarray(image) > threshold
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return (0, 0, 0, 0)
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def cluttered_mnist(n: int, canvas: int = 64, n_clutter: int = 6, clutter_size: int = 8,
                    split: str = "train", seed: int = 0) -> ImageSet:
    """Cluttered MNIST (after Mnih et al., 2014): one digit at a random place on a ``canvas x canvas`` image,
    plus ``n_clutter`` fragments (``clutter_size`` squares) cut from other digits.

    Returns an ImageSet ``(n, 1, canvas, canvas)`` whose ``.boxes`` (n, 4) give the digit's bounding box
    ``(left, top, right, bottom)``: the ground truth for localisation. Deterministic for a ``seed``.
    """
    if canvas < 28:
        raise ValueError(f"canvas must be at least 28 pixels (an MNIST digit), got {canvas}")
    source = mnist(split)
    rng = np.random.default_rng(seed)
    digits = rng.integers(len(source), size=n)
    others = rng.integers(len(source), size=(n, n_clutter))
    cut_at = rng.integers(28 - clutter_size + 1, size=(n, n_clutter, 2))        # where a fragment is cut
    put_at = rng.integers(canvas - clutter_size + 1, size=(n, n_clutter, 2))    # where it is pasted
    digit_at = rng.integers(canvas - 28 + 1, size=(n, 2))
    pixels = source.images[:, 0].numpy()
    images = np.zeros((n, canvas, canvas), dtype=np.float32)
    boxes = np.zeros((n, 4), dtype=np.float32)
    s = clutter_size
    for i in range(n):
        for k in range(n_clutter):  # clutter first, the digit is drawn on top
            (sy, sx), (ty, tx) = cut_at[i, k], put_at[i, k]
            region = images[i, ty:ty + s, tx:tx + s]
            np.maximum(region, pixels[others[i, k], sy:sy + s, sx:sx + s], out=region)
        y, x = digit_at[i]
        region = images[i, y:y + 28, x:x + 28]
        np.maximum(region, pixels[digits[i]], out=region)
        left, top, right, bottom = digit_box(pixels[digits[i]])
        boxes[i] = (x + left, y + top, x + right, y + bottom)
    images, boxes, digits = torch.from_numpy(images).unsqueeze(1), torch.from_numpy(boxes), torch.from_numpy(digits)
    return ImageSet(images=images, labels=source.labels[digits].clone(), classes=list(MNIST_CLASSES),
                    source=f"cluttered MNIST ({n} x {canvas}x{canvas}, {n_clutter} fragments, seed {seed}) "
                           f"built from {source.source}", boxes=boxes)
