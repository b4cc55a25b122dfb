"""Plots for feature maps, filters and Zeiler-Fergus projections (labs 03 and 04).

Every function takes raw tensors (from ``nnlab.features.deconvnet``, ``nnlab.features.topk``, ``nnlab.features.training_dynamics``) and does
the display scaling itself, saying which in the figure. Signed projections are shown as ``0.5 + p / (2 max|p|)``
(grey = 0), each on its own scale, the usual look of deconvnet images. Returns the matplotlib figure.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch

from nnlab.core.hooks import capture, conv_layer_names, eval_mode, get_layer, layer_name
from nnlab.core.maps import normalize
from nnlab.viz.images import SIGNED_CMAP, show_image, to_numpy_image


# --------------------------------------------------------------------------- mosaics of small maps
def mosaic(maps: torch.Tensor, ncols: Optional[int] = None, gap: int = 1) -> np.ndarray:
    """Tile ``maps (N, h, w)`` (or ``(N, 3, h, w)``) into one array, row by row, with ``gap`` NaN pixels between
    tiles (drawn in the background colour)."""
    maps = torch.as_tensor(maps).detach().float().cpu()
    n = len(maps)
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    rgb = maps.dim() == 4
    h, w = maps.shape[-2:]
    shape = (nrows * (h + gap) - gap, ncols * (w + gap) - gap) + ((3,) if rgb else ())
    out = np.full(shape, np.nan, dtype=np.float32)
    for i, m in enumerate(maps):
        r, c = divmod(i, ncols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = \
            m.permute(1, 2, 0).numpy() if rgb else m.numpy()
    return out


def _show(ax, array, cmap="gray", vmin=None, vmax=None, title=None):
    import matplotlib.pyplot as plt

    if array.ndim == 3:  # RGB: gaps white
        array = np.where(np.isnan(array), 1.0, array)
    cmap = plt.get_cmap(cmap).with_extremes(bad="white")
    image = ax.imshow(array, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return image


def _display(images: torch.Tensor) -> torch.Tensor:
    """Signed images (N, C, H, W) -> 0.5 + x / (2 max|x|) in [0, 1], each on its own scale, as (N, H, W) for one
    channel or (N, 3, H, W)."""
    shown = normalize(images, mode="rgb", percentile=100)
    return shown[:, 0] if shown.shape[1] == 1 else shown


def _pixels(images: torch.Tensor) -> torch.Tensor:
    return images[:, 0] if images.shape[1] == 1 else images


# --------------------------------------------------------------------------- filters and feature maps
def show_filters(model, layer=None, ncols: int = 8, size: float = 0.8, colorbar: bool = True):
    """The filters of a conv layer (default: the first) as images, each on the same symmetric scale
    (red positive, white 0, blue negative, with a colour bar of the weights if ``colorbar``; RGB filters as
    0.5 + w / (2 max|w|))."""
    import matplotlib.pyplot as plt

    layer = layer or conv_layer_names(model)[0]
    weight = get_layer(model, layer).weight.detach()                  # (C_out, C_in, k, k)
    n = len(weight)
    fig, ax = plt.subplots(figsize=(size * min(n, ncols), size * int(np.ceil(n / ncols)) + 0.4))
    if weight.shape[1] == 3:
        shown = (0.5 + weight / (2 * weight.abs().max())).clamp(0, 1)
        _show(ax, mosaic(shown, ncols), cmap="gray")
    else:
        shown = weight.sum(1) if weight.shape[1] > 1 else weight[:, 0]
        vmax = shown.abs().max().item() or 1.0
        image = _show(ax, mosaic(shown, ncols), cmap=SIGNED_CMAP, vmin=-vmax, vmax=vmax)
        if colorbar:
            bar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
            bar.ax.tick_params(labelsize=8)
            bar.set_label("weight", fontsize=8)
    ax.set_title(f"{layer_name(model, layer)}: {n} filters {tuple(weight.shape[1:])}"
                 + (" (summed over input channels)" if weight.shape[1] not in (1, 3) else ""), fontsize=9)
    fig.tight_layout()
    return fig


def _maps(model, x, layers):
    with torch.no_grad(), eval_mode(model), capture(model, layers) as acts:
        model(x)
    return acts


def show_feature_maps(model, x: torch.Tensor, layers: Optional[Sequence[str]] = None, ncols: int = 16,
                      size: float = 0.6, scale: str = "layer"):
    """All feature maps of one image ``x (1, C, H, W)`` for every layer in ``layers`` (default: the conv layers),
    one block per layer: grey from 0 for rectified maps, red/blue around 0 for signed ones.

    ``scale``: ``"layer"`` (default): the maps of a layer share one scale, its maximum (so weak maps look weak:
    the point is to compare them); ``"panel"``: each map is stretched to its own maximum (the point is each
    map's pattern; the block title says so)."""
    import matplotlib.pyplot as plt

    layers = list(layers or conv_layer_names(model))
    acts = _maps(model, x[:1], layers)
    heights = [int(np.ceil(acts[name].shape[1] / ncols)) for name in layers]
    fig, axes = plt.subplots(len(layers) + 1, 1, figsize=(size * ncols, size * (sum(heights) + 2) + 0.5 * len(layers)),
                             gridspec_kw={"height_ratios": [2] + heights}, squeeze=False)
    show_image(x[0], axes[0, 0], title="image")
    if scale not in ("layer", "panel"):
        raise ValueError(f"scale: expected 'layer' or 'panel', got {scale!r}")
    for ax, name in zip(axes[1:, 0], layers):
        maps = acts[name][0]
        signed = bool((maps < 0).any())
        if scale == "panel":
            maps = maps / maps.flatten(1).abs().amax(1).clamp(min=1e-12)[:, None, None]
        vmax = maps.abs().max().item() or 1.0
        note = ", each on its own scale" if scale == "panel" else ", one scale"
        _show(ax, mosaic(maps, ncols), cmap=SIGNED_CMAP if signed else "gray", vmin=-vmax if signed else 0, vmax=vmax,
              title=f"{name}: {maps.shape[0]} maps {tuple(maps.shape[1:])}{note}")
    fig.tight_layout()
    return fig


def show_random_feature_maps(model, x: torch.Tensor, layer, n: int = 16, seed: int = 0, ncols: int = 8,
                             size: float = 1.2):
    """``n`` randomly chosen (seeded) feature maps of ``layer`` for one image ``x (1, C, H, W)``, each titled
    with its index, on one shared scale."""
    import matplotlib.pyplot as plt

    name = layer_name(model, layer)
    maps = _maps(model, x[:1], [name])[name][0]
    chosen = torch.randperm(len(maps), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    vmax = maps[chosen].abs().max().item() or 1.0
    nrows = int(np.ceil(len(chosen) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, c in zip(axes.flat, chosen.tolist()):
        ax.imshow(maps[c].numpy(), cmap="gray", vmin=min(0.0, maps[chosen].min().item()), vmax=vmax)
        ax.set_title(f"#{c}", fontsize=8)
    fig.suptitle(f"{name}: {len(chosen)} of {len(maps)} feature maps", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- Zeiler-Fergus figures
def show_top_activations(top, features: Optional[Sequence[int]] = None, ncols: int = 4, grid: int = 3,
                         size: float = 1.1):
    """The Zeiler-Fergus figure: for each feature, a ``grid x grid`` block of the projections of its strongest
    activations (left) beside the image patches they come from (right). ``top``: a ``TopActivations``;
    ``features``: which of ``top.features`` to show (default: all)."""
    import matplotlib.pyplot as plt

    if top.projections is None:
        raise ValueError("top has no projections: call top_activations(..., projections=True)")
    rows_of = {int(f): i for i, f in enumerate(top.features)}
    features = list(top.features.tolist() if features is None else features)
    missing = [f for f in features if f not in rows_of]
    if missing:
        raise ValueError(f"features {missing} were not scanned; available: {top.features.tolist()}")
    k = min(grid * grid, top.values.shape[1])
    nrows = int(np.ceil(len(features) / ncols))
    fig, axes = plt.subplots(nrows, 2 * ncols, figsize=(2 * ncols * size * grid / 3 * 1.05, nrows * size * grid / 3 * 1.2 + 0.25 * nrows),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, f in enumerate(features):
        r, c = divmod(i, ncols)
        row = rows_of[f]
        _show(axes[r, 2 * c], mosaic(_display(top.projections[row, :k]), grid), title=f"#{f} projections")
        _show(axes[r, 2 * c + 1], mosaic(_pixels(top.patches[row, :k]), grid), vmin=0, vmax=1, title="patches")
    fig.suptitle(f"{top.layer}: top-{k} activations per feature", fontsize=10)
    fig.tight_layout()
    return fig


def show_projection_steps(steps, image: Optional[torch.Tensor] = None, max_channels: int = 8, width: float = 8.0):
    """The deconvnet's way down, one row per step (from ``deconvnet.project_steps``): the kept feature map, then
    the first ``max_channels`` channels of the reconstruction after each step; red +, blue -, white 0, one
    shared scale per step."""
    import matplotlib.pyplot as plt

    rows = []  # (title, mosaic, vmax)
    for step in steps:
        out = step.out[0]
        if step.op == "keep":  # show the kept feature map only
            kept = int(out.flatten(1).abs().sum(1).argmax())
            shown, note = out[kept:kept + 1], f" (feature {kept}, the others are 0)"
        else:
            shown = out[:max_channels]
            note = f" (first {len(shown)} of {len(out)} channels)" if len(out) > len(shown) else ""
        rows.append((f"{step.op} at {step.layer} -> {tuple(out.shape)}{note}",
                     mosaic(shown, max_channels if len(shown) > 1 else 1), out.abs().max().item() or 1.0))
    ratios = [min(a.shape[0] / a.shape[1], 0.25) for _, a, _ in rows]
    if image is not None:
        ratios = [0.25] + ratios
    fig, axes = plt.subplots(len(ratios), 1, figsize=(width, width * sum(ratios) + 0.3 * len(ratios)),
                             gridspec_kw={"height_ratios": ratios}, squeeze=False)
    axes = list(axes[:, 0])
    if image is not None:
        show_image(image[0] if image.dim() == 4 else image, axes.pop(0), title="image")
    for ax, (title, array, vmax) in zip(axes, rows):
        _show(ax, array, cmap=SIGNED_CMAP, vmin=-vmax, vmax=vmax, title=title)
    fig.tight_layout()
    return fig


def show_projections(x: torch.Tensor, projections: Dict[str, torch.Tensor], size: float = 1.6):
    """Images ``x (N, C, H, W)`` and their projections ``{layer: (N, C, H, W)}``: one row per image, one column
    per layer, each projection on its own scale (grey = 0)."""
    import matplotlib.pyplot as plt

    n = len(x)
    fig, axes = plt.subplots(n, 1 + len(projections), figsize=(size * (1 + len(projections)), size * n),
                             squeeze=False)
    for i in range(n):
        show_image(x[i], axes[i, 0], title="image" if i == 0 else None)
        for j, (name, proj) in enumerate(projections.items(), start=1):
            axes[i, j].imshow(to_numpy_image(normalize(proj[i:i + 1], "rgb", 100)[0]), cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_axis_off()
            if i == 0:
                axes[i, j].set_title(name, fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- features over training
def plot_layer_change(dyn):
    """How much each layer still changes per epoch (from ``training_dynamics.features_over_training``): the
    relative weight change (left) and the representation change 1 - CKA (right), one line per layer."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, changes, label in [(axes[0], dyn.weight_change, "||W(e) - W(e-1)|| / ||W(e-1)||"),
                               (axes[1], dyn.representation_change, "1 - CKA(acts(e-1), acts(e))")]:
        for name, change in changes.items():
            ax.plot(range(1, len(change) + 1), change, marker="o", label=name)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label, fontsize=9)
        ax.legend(fontsize=8)
    axes[0].set_title("weights", fontsize=10)
    axes[1].set_title("what the layer computes (probe images)", fontsize=10)
    fig.tight_layout()
    return fig


def show_features_over_training(dyn, size: float = 1.0):
    """Zeiler & Fergus, Fig. 4: one row per snapshot epoch; the first-layer filters, then for each followed
    layer the projections of the chosen features' strongest activations over the probe images."""
    import matplotlib.pyplot as plt

    layers = list(dyn.features)
    snaps = dyn.snapshots
    fig, axes = plt.subplots(len(snaps), 1 + len(layers), squeeze=False,
                             figsize=(size * 3 * (1 + len(layers)), size * 1.0 * len(snaps) + 0.3))
    for r, snap in enumerate(snaps):
        f = snap.filters
        vmax = f.abs().max().item()
        _show(axes[r, 0], mosaic(f.sum(1) if f.shape[1] != 3 else (0.5 + f / (2 * vmax)).clamp(0, 1), 8),
              cmap=SIGNED_CMAP, vmin=-vmax, vmax=vmax)
        axes[r, 0].set_title(f"epoch {snap.epoch} (acc {snap.accuracy:.0%}): filters" if r == 0 else
                             f"epoch {snap.epoch} (acc {snap.accuracy:.0%})", fontsize=8)
        for c, name in enumerate(layers, start=1):
            proj = snap.top[name].projections[:, 0]                     # (F, C, h, w)
            _show(axes[r, c], mosaic(_display(proj), len(proj)), title=name if r == 0 else None)
    fig.tight_layout()
    return fig
