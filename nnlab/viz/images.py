"""Plotting helpers shared by the labs: images, attribution maps, overlays, galleries.

Every normalisation and upsampling choice is an explicit argument, so that a figure says what it shows.
The algorithms return raw tensors; this module is the only place where they are normalised or upsampled.

Sections: style | images | attribution maps (``overlay``, ``show_map``, ``gallery``). Add new sections below.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

from nnlab.core.maps import normalize, reduce_channels, upsample


# =========================================================================== style
#: Matplotlib settings of the course (applied by :func:`style`): no text under 8 pt, perceptual default colour map.
RC = {
    "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 8, "figure.titlesize": 11, "image.cmap": "inferno", "image.interpolation": "nearest",
    "axes.spines.top": False, "axes.spines.right": False, "savefig.bbox": "tight",
}


def style(retina: bool = True) -> dict:
    """Apply the course's figure style: :data:`RC` (fonts >= 8 pt, ``inferno`` as the default image colour map)
    and, inside a Jupyter kernel, retina (2x) PNG output of the inline backend. Idempotent.

    Called once when :mod:`nnlab.viz` is first imported (every lab imports it, through ``nnlab.course.widgets``),
    so the labs need no set-up cell; call it again after ``plt.rcdefaults()`` or ``%matplotlib inline`` if those
    come later. Returns the settings applied.
    """
    import matplotlib

    matplotlib.rcParams.update(RC)
    if retina:
        try:
            from IPython import get_ipython

            shell = get_ipython()
            if shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell":
                from matplotlib_inline.backend_inline import set_matplotlib_formats

                set_matplotlib_formats("retina")
        except ImportError:  # no IPython: plain scripts keep matplotlib's defaults for output
            pass
    return dict(RC)


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


#: Colour maps of the course: perceptual ones for magnitudes, a diverging one (red +, white 0, blue -) for signs.
MAGNITUDE_CMAP = "inferno"
SIGNED_CMAP = "RdBu_r"
#: Colour maps never used: not perceptually ordered, they draw bands that are not in the data.
BANNED_CMAPS = ("jet", "jet_r", "rainbow", "rainbow_r", "hsv", "gist_rainbow", "nipy_spectral")


def _display_map(attr: torch.Tensor, size, mode: str, reduce: str, upsample_mode: str, percentile: float,
                 scale=None):
    """One map (C, h, w) or (1, C, h, w) -> the normalised array to show, (H, W) or (H, W, 3) for "rgb"."""
    attr = torch.as_tensor(attr).detach().cpu().float()
    if attr.dim() == 3:
        attr = attr[None]
    if attr.dim() != 4 or attr.shape[0] != 1:
        raise ValueError(f"attr: expected one map (C, h, w), got shape {tuple(attr.shape)}")
    if mode == "rgb":
        if attr.shape[1] != 3:
            raise ValueError(f"mode 'rgb' needs a 3-channel map, got {attr.shape[1]} channel(s)")
    elif attr.shape[1] != 1:
        attr = reduce_channels(attr, reduce)
    if size is not None:
        attr = upsample(attr, size, upsample_mode)
    shown = normalize(attr, mode, percentile, scale=scale)[0]
    return shown.permute(1, 2, 0).numpy() if mode == "rgb" else shown[0].numpy()


def _cmap(mode: str, cmap: Optional[str]) -> str:
    default = SIGNED_CMAP if mode == "signed" else MAGNITUDE_CMAP
    cmap = cmap or default
    if getattr(cmap, "name", cmap) in BANNED_CMAPS:   # a warning, not an error: a lab asking for it still runs
        import warnings

        warnings.warn(f"cmap: expected a perceptual colour map (e.g. {MAGNITUDE_CMAP!r} for magnitudes, "
                      f"{SIGNED_CMAP!r} for signed maps), got {getattr(cmap, 'name', cmap)!r}; drawing with "
                      f"{default!r} instead", UserWarning, stacklevel=3)
        cmap = default
    return cmap


def _limits(mode: str):
    return (-1, 1) if mode == "signed" else (0, 1)


def _colorbar(ax, mappable, mode: str, scale=None):
    """A colour bar beside ``ax`` labelled in the map's units when the scale is known (shared), else in the
    normalised units."""
    import matplotlib.pyplot as plt

    bar = plt.colorbar(mappable, ax=ax, fraction=0.046, pad=0.04)
    if scale is not None:
        s = float(scale)
        lo, hi = _limits(mode)
        bar.set_ticks([lo, 0, hi] if lo < 0 else [0, 0.5, 1])
        bar.set_ticklabels([f"{v * s:.2g}" for v in ([lo, 0, hi] if lo < 0 else [0, 0.5, 1])])
    bar.ax.tick_params(labelsize=8)
    return bar


def draw_contour(ax, image: torch.Tensor, color: str = "0.25", linewidth: float = 0.6):
    """Draw the outline of ``image`` (C, H, W) in [0, 1] on ``ax``: the iso-line halfway between its darkest and
    brightest grey, so that a signed map can be read against the shape of the input."""
    picture = to_numpy_image(image)
    grey = picture.mean(2) if picture.ndim == 3 else picture
    lo, hi = float(np.nanmin(grey)), float(np.nanmax(grey))
    if hi - lo < 1e-6:
        return ax
    ax.contour(grey, levels=[(lo + hi) / 2], colors=color, linewidths=linewidth)
    return ax


def show_map(attr: torch.Tensor, ax=None, mode: str = "signed", reduce: str = "sum", percentile: float = 99.0,
             size: Optional[Sequence[int]] = None, upsample_mode: str = "bilinear", cmap: Optional[str] = None,
             title: Optional[str] = None, colorbar: bool = False, contour: Optional[torch.Tensor] = None,
             scale=None):
    """Show one attribution map (C, h, w) alone.

    Channels are combined with ``reduce`` (see :func:`reduce_channels`; not for ``mode="rgb"``), the map is
    resized to ``size`` with ``upsample_mode`` (see :func:`upsample`; default: not resized) and scaled with
    ``mode`` and ``percentile`` (see :func:`normalize`): per panel by default, or by the given ``scale`` (e.g.
    ``map_scale(maps, mode, shared=True)``, one scale for several panels). Signed maps use a diverging colour map
    centred at zero with symmetric limits (``RdBu_r``: red +, white 0, blue -); magnitudes (``"abs"``,
    ``"positive"``) a perceptual one (``inferno``). ``contour``: an image (C, H, W) whose outline is drawn over
    the map. Returns the axes.
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    shown = _display_map(attr, size, mode, reduce, upsample_mode, percentile, scale)
    vmin, vmax = _limits(mode)
    im = ax.imshow(shown, cmap=None if mode == "rgb" else _cmap(mode, cmap), vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    if contour is not None:
        draw_contour(ax, contour)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar and mode != "rgb":
        _colorbar(ax, im, mode, scale)
    return ax


def overlay(image: torch.Tensor, attr: torch.Tensor, ax=None, mode: str = "positive", reduce: str = "sum",
            percentile: float = 99.0, upsample_mode: str = "bilinear", alpha: float = 0.8,
            cmap: Optional[str] = None, title: Optional[str] = None, colorbar: bool = False, scale=None):
    """A heat map over an image: ``image`` (C, H, W) in [0, 1], ``attr`` (C', h, w) (an input-space map or a
    layer map such as Grad-CAM's (1, 7, 7)).

    The map is combined over channels with ``reduce``, upsampled to the image size with ``upsample_mode``,
    scaled with ``mode`` / ``percentile`` (see :func:`normalize`; or a shared ``scale``), then drawn with an
    opacity that follows the map: ``alpha * |value|``, so zero is see-through and the photo stays visible where
    the map says nothing (no veil). Colours: ``inferno`` for ``"positive"`` / ``"abs"``, ``RdBu_r`` centred at
    zero for ``"signed"``. The image is shown in grey under the map so that the colours stay readable.
    Returns the axes.
    """
    import matplotlib.pyplot as plt

    if mode == "rgb":
        raise ValueError("mode: an overlay needs 'signed', 'abs' or 'positive', got 'rgb' (that is for show_map)")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha: expected a number in [0, 1], got {alpha!r}")
    ax = ax or plt.gca()
    picture = to_numpy_image(image)
    if picture.ndim == 3:
        picture = picture.mean(2)
    ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
    shown = _display_map(attr, picture.shape[:2], mode, reduce, upsample_mode, percentile, scale)
    vmin, vmax = _limits(mode)
    mappable = ax.imshow(shown, cmap=_cmap(mode, cmap), vmin=vmin, vmax=vmax, interpolation="nearest",
                         alpha=alpha * np.abs(shown))                # opacity follows the value: 0 is see-through
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        _colorbar(ax, mappable, mode, scale)
    return ax


def _column_title(name: str, mode: str) -> str:
    """``name`` and its normalisation, once: "CAM (signed)" stays as it is, "CAM" becomes "CAM\n(signed)"."""
    return name if mode in name else f"{name}\n({mode})"


def gallery(images: torch.Tensor, attrs: Dict[str, torch.Tensor], mode: Union[str, Dict[str, str]] = "positive",
            kind: Union[str, Dict[str, str]] = "overlay", reduce: str = "sum", percentile: float = 99.0,
            upsample_mode: str = "bilinear", row_titles: Optional[Sequence[str]] = None, size: float = 2.0,
            alpha: float = 0.8, scale: str = "panel", colorbar: bool = False,
            contour: Union[bool, Dict[str, bool]] = False):
    """Several methods side by side for several images: one row per image, the image then one column per method.

    images: (N, C, H, W) in [0, 1]; attrs: ``{method name: attr (N, C', h, w)}``. ``mode``, ``kind``
    (``"overlay"`` or ``"map"``) and ``contour`` (draw the image's outline on a ``"map"``) are one value for all
    methods or a dict per method name; the column title says which normalisation was used.

    ``scale``: ``"panel"`` (default) stretches each map to its own ``percentile`` (to show each map's pattern);
    ``"shared"`` puts all maps of a method (a column) on one scale, the ``percentile`` over the column (to
    compare strengths between images). ``colorbar=True`` adds a colour bar per panel (per-panel scale) or one
    labelled in the map's units under each column (shared scale). Returns the figure.

    Example::

        gallery(x, {"gradient": Saliency(model).attribute(x), "Grad-CAM": GradCAM(model, "conv3").attribute(x)},
                mode={"gradient": "abs", "Grad-CAM": "positive"})
    """
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from nnlab.core.maps import map_scale

    if scale not in ("panel", "shared"):
        raise ValueError(f"scale: expected 'panel' or 'shared', got {scale!r}")
    n = len(images)
    for name, attr in attrs.items():
        if len(attr) != n:
            raise ValueError(f"attrs[{name!r}]: expected one map per image, got {len(attr)} maps for {n} images")
    pick = lambda option, name: option[name] if isinstance(option, dict) else option  # noqa: E731
    shared_bars = colorbar and scale == "shared"
    fig, axes = plt.subplots(n, 1 + len(attrs), figsize=(size * (1 + len(attrs)), size * n + (0.5 if shared_bars else 0)),
                             squeeze=False, layout="constrained" if colorbar else None)
    scales = {}
    for name, attr in attrs.items():
        method_mode = pick(mode, name)
        if scale == "shared":
            a = torch.as_tensor(attr).detach().float()
            if method_mode != "rgb" and a.shape[1] != 1:
                a = reduce_channels(a, reduce)
            scales[name] = map_scale(a, method_mode, percentile, shared=True)
    for i in range(n):
        show_image(images[i], axes[i, 0], title="image" if i == 0 else None)
        if row_titles is not None:
            axes[i, 0].set_title(row_titles[i], fontsize=9)
        for j, (name, attr) in enumerate(attrs.items(), start=1):
            method_mode, method_kind = pick(mode, name), pick(kind, name)
            title = _column_title(name, method_mode) if i == 0 else None
            bar = colorbar and not shared_bars
            if method_kind == "overlay":
                overlay(images[i], attr[i], axes[i, j], mode=method_mode, reduce=reduce, percentile=percentile,
                        upsample_mode=upsample_mode, alpha=alpha, title=title, colorbar=bar, scale=scales.get(name))
            elif method_kind == "map":
                show_map(attr[i], axes[i, j], mode=method_mode, reduce=reduce, percentile=percentile,
                         size=images.shape[-2:], upsample_mode=upsample_mode, title=title, colorbar=bar,
                         contour=images[i] if pick(contour, name) else None, scale=scales.get(name))
            else:
                raise ValueError(f"kind: expected 'overlay' or 'map', got {method_kind!r}")
    if shared_bars:
        for j, name in enumerate(attrs, start=1):
            method_mode = pick(mode, name)
            if method_mode == "rgb":
                continue
            mappable = ScalarMappable(Normalize(*_limits(method_mode)), plt.get_cmap(_cmap(method_mode, None)))
            bar = fig.colorbar(mappable, ax=list(axes[:, j]), location="bottom", shrink=0.9)
            s = float(scales[name])
            ticks = [-1, 0, 1] if method_mode == "signed" else [0, 0.5, 1]
            bar.set_ticks(ticks)
            bar.set_ticklabels([f"{t * s:.2g}" for t in ticks])
            bar.ax.tick_params(labelsize=8)
    if not colorbar:
        fig.tight_layout()
    return fig
