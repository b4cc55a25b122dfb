"""Pictures of the evaluation of saliency maps: randomisation curves and maps, deletion / insertion curves,
pointing-game scores and points.

Companion of :mod:`nnlab.evaluation.sanity_checks`, :mod:`nnlab.evaluation.perturbation` and :mod:`nnlab.evaluation.pointing` (which return raw
results; everything visual is here).

Example::

    from nnlab.viz.evaluation import plot_similarity, show_randomised_maps, plot_curves, plot_pointing_game
    results = {"gradient": model_randomisation(Saliency(model), x), "guided": model_randomisation(GuidedBackprop(model), x)}
    plot_similarity(results)                       # Adebayo et al.'s figure: similarity per randomised layer
    show_randomised_maps(results["gradient"], x)   # the maps as the layers become random
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import torch

from nnlab.evaluation.perturbation import PerturbationCurve, pixel_order
from nnlab.evaluation.pointing import PointingResult
from nnlab.evaluation.sanity_checks import RandomisationResult
from nnlab.viz.images import overlay, show_image, show_map

MEASURE_NAMES = {"spearman_abs": "Spearman rank correlation of |attr|", "spearman": "Spearman rank correlation",
                 "ssim": "SSIM of the normalised maps"}


def _colors(n: int) -> list:
    """n distinct colours (matplotlib's tab10 without its grey, kept for baselines, then tab20)."""
    import matplotlib.pyplot as plt

    palette = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7] + list(plt.get_cmap("tab20").colors)
    return [palette[i % len(palette)] for i in range(n)]


def _axes(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


# --------------------------------------------------------------------------- sanity checks
def plot_similarity(results: Dict[str, RandomisationResult], measure: str = "spearman_abs", ax=None,
                    title: Optional[str] = None, band: bool = True, legend: bool = True):
    """Mean similarity to the original maps after each randomisation step, one line per method (± one standard
    deviation over the images as a band), as in Adebayo et al.'s figures; the legend (if ``legend``) to the right
    of the axes. Returns the axes.

    results: ``{method name: RandomisationResult}`` with the same steps.
    """
    ax = _axes(ax, (6, 3.5))
    steps = None
    for (name, result), color in zip(results.items(), _colors(len(results))):
        if measure not in result.similarity:
            raise ValueError(f"{name}: no {measure!r} similarity; it has {list(result.similarity)}")
        steps = steps or result.steps
        if result.steps != steps:
            raise ValueError(f"{name} has the steps {result.steps}, expected {steps}")
        mean, std = result.mean(measure).numpy(), result.std(measure).numpy()
        line, = ax.plot(range(len(steps)), mean, marker="o", label=name, color=color)
        if band:
            ax.fill_between(range(len(steps)), mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(steps)))
    ax.set_xticklabels(steps, rotation=30 if len(steps) > 6 else 0)
    first = next(iter(results.values()))
    ax.set_xlabel({"cascading": "layers randomised from the top, cumulatively",
                   "independent": "layer randomised (alone)", "data": "model"}.get(first.order, "step"))
    ax.set_ylabel(MEASURE_NAMES.get(measure, measure))
    ax.set_ylim(-0.3, 1.05)
    if legend:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if title:
        ax.set_title(title)
    return ax


def show_randomised_maps(result: RandomisationResult, images: Optional[torch.Tensor] = None,
                         index: Sequence[int] = (0, 1, 2), mode: str = "abs", size: float = 1.5,
                         percentile: float = 99.0):
    """The maps of some images after each randomisation step: one row per image, one column per step (the image
    first when ``images`` (N, C, H, W) is given). Each map is normalised on its own (``mode``, ``percentile``,
    see :func:`nnlab.core.maps.normalize`); layer maps are upsampled to the image size. Returns the figure."""
    import matplotlib.pyplot as plt

    extra = 1 if images is not None else 0
    n_cols = extra + len(result.steps)
    fig, axes = plt.subplots(len(index), n_cols, figsize=(size * n_cols, size * len(index)), squeeze=False)
    for row, i in enumerate(index):
        if images is not None:
            show_image(images[i], axes[row, 0], title="image" if row == 0 else None)
        for col, step in enumerate(result.steps, start=extra):
            attr = result.maps[step][i]
            show_map(attr, axes[row, col], mode=mode, percentile=percentile,
                     size=images.shape[-2:] if images is not None else None,
                     title=step if row == 0 else None)
    fig.suptitle(f"{result.method}: {result.order} randomisation", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- deletion / insertion
def plot_curves(curves: Dict[str, PerturbationCurve], ax=None, title: Optional[str] = None, band: bool = False):
    """Mean deletion (or insertion) curve of each method, its mean AUC in the legend; a method whose name contains
    "random" is drawn dashed grey (the baseline). Returns the axes."""
    ax = _axes(ax, (5, 3.5))
    modes = set()
    for (name, curve), color in zip(curves.items(), _colors(len(curves))):
        modes.add(curve.mode)
        mean, std = curve.scores.mean(0).numpy(), curve.scores.std(0).numpy()
        style = {"color": "grey", "ls": "--"} if "random" in name.lower() else {"color": color}
        line, = ax.plot(curve.fractions.numpy(), mean, label=f"{name} (AUC {curve.mean_auc:.2f})", **style)
        if band:
            ax.fill_between(curve.fractions.numpy(), mean - std, mean + std, color=line.get_color(), alpha=0.1)
    ax.set_ylabel("probability of the target class")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    if modes == {"deletion"}:
        ax.set_xlabel("share of pixels deleted")
        title = title or "deletion curves (lower AUC is better)"
    elif modes == {"insertion"}:
        ax.set_xlabel("share of pixels inserted")
        title = title or "insertion curves (higher AUC is better)"
    else:
        ax.set_xlabel("share of pixels changed")
    if title:
        ax.set_title(title)
    return ax


def show_perturbation_steps(x: torch.Tensor, attr: Optional[torch.Tensor], fractions=(0, 0.05, 0.1, 0.2, 0.4),
                            mode: str = "deletion", baseline: Union[float, torch.Tensor] = 0.0, index: int = 0,
                            size: float = 1.5, seed: int = 0, title: Optional[str] = None):
    """What the model sees along a deletion (or insertion) curve: image ``index`` of ``x`` with the given shares
    of its pixels deleted (inserted) in the order of ``attr`` (None: random order). Returns the figure."""
    import matplotlib.pyplot as plt

    image = x[index:index + 1].detach().cpu()
    height, width = image.shape[-2:]
    order = pixel_order(None if attr is None else attr[index:index + 1], (height, width), n=1, seed=seed)[0]
    fill = torch.as_tensor(baseline, dtype=image.dtype).expand_as(image)
    start, finish = (image, fill) if mode == "deletion" else (fill, image)
    fig, axes = plt.subplots(1, len(fractions), figsize=(size * len(fractions), size * 1.2), squeeze=False)
    for ax, share in zip(axes[0], fractions):
        k = round(share * height * width)
        changed = torch.zeros(height * width, dtype=torch.bool)
        changed[order[:k]] = True
        shown = torch.where(changed.view(1, 1, height, width), finish, start)[0]
        show_image(shown, ax, title=f"{share:.0%} {'deleted' if mode == 'deletion' else 'inserted'}")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.85) if title else None)
    return fig


# --------------------------------------------------------------------------- pointing game
def plot_pointing_game(results: Dict[str, Union[PointingResult, float]], baseline: Optional[float] = None, ax=None,
                       title: str = "pointing game"):
    """Share of hits per method as horizontal bars, the random baseline as a dashed line. Returns the axes."""
    ax = _axes(ax, (5, 0.4 * len(results) + 1))
    names = list(results)
    scores = [r.accuracy if isinstance(r, PointingResult) else float(r) for r in results.values()]
    bars = ax.barh(range(len(names)), scores, color="tab:blue")
    for bar, score in zip(bars, scores):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"{score:.2f}", va="center", fontsize=8)
    if baseline is not None:
        ax.axvline(baseline, color="grey", ls="--", label=f"random point ({baseline:.2f})")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.3)
    ax.set_xlabel("share of images whose map maximum falls in the digit's box")
    ax.set_title(title)
    return ax


def show_pointing(images: torch.Tensor, attr: torch.Tensor, boxes: torch.Tensor, result: PointingResult,
                  index: Sequence[int] = range(6), mode: str = "positive", size: float = 1.8,
                  title: Optional[str] = None):
    """Maps over their images with the true box (white) and the map's maximum (a green cross for a hit, red for
    a miss). Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    index = list(index)
    fig, axes = plt.subplots(1, len(index), figsize=(size * len(index), size * 1.1), squeeze=False)
    for ax, i in zip(axes[0], index):
        overlay(images[i], attr[i], ax, mode=mode)
        left, top, right, bottom = boxes[i].tolist()
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, ec="white", lw=1.2))
        row, col = result.points[i].tolist()
        hit = bool(result.hits[i])
        ax.plot(col, row, marker="x", ms=9, mew=2.5, color="lime" if hit else "red")
        ax.set_title("hit" if hit else "miss", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
