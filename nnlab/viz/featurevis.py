"""Figures for activation maximisation (lab 07): rendered images, the history of each term, a unit beside its
top-9 patches. Plotting only; the computations live in :mod:`nnlab.featurevis` and :mod:`nnlab.featurevis.objectives`.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch

from nnlab.viz.featuremaps import mosaic


def _pixels(image: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] -> an array for imshow: ``(H, W)`` grey or ``(H, W, 3)`` RGB."""
    image = image.detach().float().cpu().clamp(0, 1)
    return image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()


def show_images(images: torch.Tensor, titles: Optional[Sequence[str]] = None, ncols: int = 10, size: float = 1.2,
                suptitle: Optional[str] = None):
    """A row (or grid) of rendered images ``(N, C, H, W)`` in ``[0, 1]``, grey from black 0 to white 1."""
    import matplotlib.pyplot as plt

    n = len(images)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    title_room = 0.25 if titles is not None else 0.0      # inches per row for an 8-pt title above each image
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(size * ncols, (size + title_room) * nrows + (0.4 if suptitle else 0.15)))
    for ax in axes.flat:
        ax.set_axis_off()
    for i, image in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(_pixels(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def plot_term_history(history: Dict[str, torch.Tensor], image: int = 0, terms: Optional[Sequence[str]] = None,
                 ax=None, title: Optional[str] = None):
    """The value of each named term (and the objective) of image ``image`` at every step of :func:`maximize`,
    one curve per term. Terms that are zero for this image all along (another image's target) are left out."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    names = list(terms) if terms is not None else list(history)
    for name in names:
        curve = history[name][:, image]
        if name != "objective" and torch.all(curve == 0):
            continue
        ax.plot(curve.numpy(), label=name, lw=2 if name == "objective" else 1)
    ax.set_xlabel("step")
    ax.set_ylabel("value")
    ax.legend(fontsize=7)
    ax.set_title(title or f"image {image}", fontsize=9)
    return ax


def show_units_and_patches(rendered: torch.Tensor, patches: torch.Tensor, features: Sequence[int], layer: str,
                           size: float = 1.3, suptitle: Optional[str] = None):
    """For each feature: the maximised unit cropped to its receptive field (``rendered (F, C, h, w)``) beside a
    3x3 mosaic of its top-9 patches (``patches (F, 9, C, h, w)``, e.g. ``TopActivations.patches``), both on the
    shared scale 0 = black, 1 = white. Constrained layout keeps every title clear of the row above."""
    import matplotlib.pyplot as plt

    n = len(features)
    fig, axes = plt.subplots(2, n, figsize=(size * n, 2 * size + 0.8), squeeze=False, layout="constrained")
    for i, f in enumerate(features):
        axes[0, i].imshow(_pixels(rendered[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0, i].set_title(f"#{f} maximised", fontsize=8)
        tiles = patches[i, :9]
        tiles = tiles[:, 0] if tiles.shape[1] == 1 else tiles
        axes[1, i].imshow(mosaic(tiles, 3), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[1, i].set_title(f"#{f} top-9 patches", fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(suptitle or f"{layer}: maximised centre unit (its receptive field) vs. the dataset's top-9 patches",
                 fontsize=10)
    return fig
