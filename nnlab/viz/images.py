"""Plotting helpers shared by the labs: images, attribution maps, overlays, galleries.

Every normalisation and upsampling choice is an explicit argument, so that a figure says what it shows.
The algorithms return raw tensors; this module is the only place where they are normalised or upsampled.

Sections: images | attribution maps (``overlay``, ``show_map``, ``gallery``). Add new sections below.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

from nnlab.core.maps import normalize, reduce_channels, upsample


# =========================================================================== images
def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """An image tensor (C, H, W) or (1, C, H, W) in [0, 1] -> a NumPy array for ``imshow``: (H, W) for one
    channel, (H, W, 3) for three."""
    image = torch.as_tensor(image).detach().cpu().float()
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() == 2:
        return image.numpy()
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected an image (C, H, W) with C = 1 or 3, got {tuple(image.shape)}")
    return image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).clamp(0, 1).numpy()


def show_image(image: torch.Tensor, ax=None, title: Optional[str] = None):
    """Show one image (C, H, W) in [0, 1] (grey for one channel) without axes. Returns the axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    array = to_numpy_image(image)
    ax.imshow(array, cmap="gray" if array.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def _display_map(attr: torch.Tensor, size, mode: str, reduce: str, upsample_mode: str, percentile: float):
    """One map (C, h, w) or (1, C, h, w) -> the normalised array to show, (H, W) or (H, W, 3) for "rgb"."""
    attr = torch.as_tensor(attr).detach().cpu().float()
    if attr.dim() == 3:
        attr = attr[None]
    if attr.dim() != 4 or attr.shape[0] != 1:
        raise ValueError(f"expected one map (C, h, w), got {tuple(attr.shape)}")
    if mode == "rgb":
        if attr.shape[1] != 3:
            raise ValueError(f"mode 'rgb' needs a 3-channel map, got {attr.shape[1]} channel(s)")
    elif attr.shape[1] != 1:
        attr = reduce_channels(attr, reduce)
    if size is not None:
        attr = upsample(attr, size, upsample_mode)
    shown = normalize(attr, mode, percentile)[0]
    return shown.permute(1, 2, 0).numpy() if mode == "rgb" else shown[0].numpy()


def _cmap(mode: str, cmap: Optional[str]) -> str:
    return cmap or ("bwr" if mode == "signed" else "jet")


def _limits(mode: str):
    return (-1, 1) if mode == "signed" else (0, 1)


def show_map(attr: torch.Tensor, ax=None, mode: str = "signed", reduce: str = "sum", percentile: float = 99.0,
             size: Optional[Sequence[int]] = None, upsample_mode: str = "bilinear", cmap: Optional[str] = None,
             title: Optional[str] = None, colorbar: bool = False):
    """Show one attribution map (C, h, w) alone.

    Channels are combined with ``reduce`` (see :func:`reduce_channels`; not for ``mode="rgb"``), the map is
    resized to ``size`` with ``upsample_mode`` (see :func:`upsample`; default: not resized) and scaled with
    ``mode`` and ``percentile`` (see :func:`normalize`). Signed maps use a diverging colour map (red +,
    blue -, white 0). Returns the axes.
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    shown = _display_map(attr, size, mode, reduce, upsample_mode, percentile)
    vmin, vmax = _limits(mode)
    im = ax.imshow(shown, cmap=None if mode == "rgb" else _cmap(mode, cmap), vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar and mode != "rgb":
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def overlay(image: torch.Tensor, attr: torch.Tensor, ax=None, mode: str = "positive", reduce: str = "sum",
            percentile: float = 99.0, upsample_mode: str = "bilinear", alpha: float = 0.5,
            cmap: Optional[str] = None, title: Optional[str] = None, colorbar: bool = False):
    """A heat map over an image: ``image`` (C, H, W) in [0, 1], ``attr`` (C', h, w) (an input-space map or a
    layer map such as Grad-CAM's (1, 7, 7)).

    The map is combined over channels with ``reduce``, upsampled to the image size with ``upsample_mode``,
    scaled with ``mode`` / ``percentile`` (see :func:`normalize`), then drawn with transparency ``alpha``:
    ``"jet"`` for ``"positive"`` / ``"abs"`` (as in the Grad-CAM paper), ``"bwr"`` for ``"signed"``.
    The image is shown in grey under a signed map so that red and blue stay readable. Returns the axes.
    """
    import matplotlib.pyplot as plt

    if mode == "rgb":
        raise ValueError("mode 'rgb' is for show_map; an overlay needs 'signed', 'abs' or 'positive'")
    ax = ax or plt.gca()
    picture = to_numpy_image(image)
    if mode == "signed" and picture.ndim == 3:
        picture = picture.mean(2)
    ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1)
    shown = _display_map(attr, picture.shape[:2], mode, reduce, upsample_mode, percentile)
    vmin, vmax = _limits(mode)
    im = ax.imshow(shown, cmap=_cmap(mode, cmap), vmin=vmin, vmax=vmax, alpha=alpha, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def gallery(images: torch.Tensor, attrs: Dict[str, torch.Tensor], mode: Union[str, Dict[str, str]] = "positive",
            kind: Union[str, Dict[str, str]] = "overlay", reduce: str = "sum", percentile: float = 99.0,
            upsample_mode: str = "bilinear", row_titles: Optional[Sequence[str]] = None, size: float = 2.0,
            alpha: float = 0.5):
    """Several methods side by side for several images: one row per image, the image then one column per method.

    images: (N, C, H, W) in [0, 1]; attrs: ``{method name: attr (N, C', h, w)}``. ``mode`` and ``kind``
    (``"overlay"`` or ``"map"``) are one value for all methods or a dict per method name; the column title
    says which normalisation was used. Returns the figure.

    Example::

        gallery(x, {"gradient": Saliency(model).attribute(x), "Grad-CAM": GradCAM(model, "conv3").attribute(x)},
                mode={"gradient": "abs", "Grad-CAM": "positive"})
    """
    import matplotlib.pyplot as plt

    n = len(images)
    for name, attr in attrs.items():
        if len(attr) != n:
            raise ValueError(f"attrs[{name!r}] has {len(attr)} maps for {n} images")
    pick = lambda option, name: option[name] if isinstance(option, dict) else option  # noqa: E731
    fig, axes = plt.subplots(n, 1 + len(attrs), figsize=(size * (1 + len(attrs)), size * n), squeeze=False)
    for i in range(n):
        show_image(images[i], axes[i, 0], title="image" if i == 0 else None)
        if row_titles is not None:
            axes[i, 0].set_title(row_titles[i], fontsize=9)
        for j, (name, attr) in enumerate(attrs.items(), start=1):
            method_mode, method_kind = pick(mode, name), pick(kind, name)
            title = f"{name}\n({method_mode})" if i == 0 else None
            if method_kind == "overlay":
                overlay(images[i], attr[i], axes[i, j], mode=method_mode, reduce=reduce, percentile=percentile,
                        upsample_mode=upsample_mode, alpha=alpha, title=title)
            elif method_kind == "map":
                show_map(attr[i], axes[i, j], mode=method_mode, reduce=reduce, percentile=percentile,
                         size=images.shape[-2:], upsample_mode=upsample_mode, title=title)
            else:
                raise ValueError(f"kind must be 'overlay' or 'map', got {method_kind!r}")
    fig.tight_layout()
    return fig
