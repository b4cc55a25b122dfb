"""Pictures of t-SNE: embeddings coloured by class (optionally with image thumbnails), the optimisation over time,
and one point's neighbourhood distribution ``p_{j|i}``.

Companion of :mod:`nnlab.embedding` (which returns raw arrays; everything visual is here).

Example::

    from nnlab.embedding import TSNE
    from nnlab.viz.tsne import plot_embedding, plot_embedding_history
    t = TSNE(history_every=10, random_state=0)
    Y = t.fit_transform(x)                                     # x: (N, 1, 28, 28) digits
    plot_embedding(Y, labels, classes, images=x)               # scatter + thumbnails
    plot_embedding_history(t.history_, labels, classes, [0, 50, 250, 1000])
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch


def class_colors(n_classes: int):
    """One colour per class: matplotlib's ``tab10`` (``tab20`` for more than 10 classes)."""
    import matplotlib.pyplot as plt
    cmap = plt.get_cmap("tab10" if n_classes <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n_classes)]


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _thumbnail(image) -> np.ndarray:
    image = _np(image)
    if image.ndim == 3:                                   # (C, H, W)
        image = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))
    return np.clip(image, 0, 1)


def spread_out(Y: np.ndarray, k: int, min_distance: Optional[float] = None) -> list:
    """Indices of up to ``k`` points of ``Y (N, 2)`` far enough from each other (greedy, in index order) to show
    thumbnails without overlap; ``min_distance`` defaults to 6% of the embedding's extent."""
    Y = _np(Y)
    if min_distance is None:
        min_distance = 0.06 * float(np.ptp(Y, axis=0).max() or 1)
    chosen = []
    for i in np.random.RandomState(0).permutation(len(Y)):
        if all(np.sum((Y[i] - Y[j]) ** 2) >= min_distance ** 2 for j in chosen):
            chosen.append(int(i))
            if len(chosen) == k:
                break
    return chosen


def plot_embedding(Y, labels, classes: Optional[Sequence[str]] = None, *, ax=None, images=None,
                   thumbnails: int = 40, zoom: float = 0.55, title: Optional[str] = None, s: float = 6,
                   legend: bool = True):
    """Scatter of an embedding ``Y (N, 2)`` coloured by ``labels (N,)``, with a legend of class names.

    ``images (N, C, H, W)``: draw ``thumbnails`` of them (spread out, see :func:`spread_out`) at their points,
    framed in their class colour. Returns the axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    Y, labels = _np(Y), _np(labels).astype(int)
    if Y.ndim != 2 or Y.shape[1] != 2 or len(Y) != len(labels):
        raise ValueError(f"expected Y of shape (N, 2) and labels (N,), got {Y.shape} and {labels.shape}")
    n_classes = int(labels.max()) + 1 if classes is None else len(classes)
    classes = [str(c) for c in range(n_classes)] if classes is None else list(classes)
    colors = class_colors(n_classes)
    ax = ax or plt.subplots(figsize=(6.5, 6))[1]
    for c in range(n_classes):
        mask = labels == c
        if mask.any():
            ax.scatter(Y[mask, 0], Y[mask, 1], s=s, color=colors[c], label=classes[c], alpha=0.8, linewidths=0)
    if images is not None and thumbnails:
        for i in spread_out(Y, thumbnails):
            box = OffsetImage(_thumbnail(images[i]), zoom=zoom, cmap="gray_r" if _thumbnail(images[i]).ndim == 2
                              else None)
            ax.add_artist(AnnotationBbox(box, Y[i], frameon=True, pad=0.05,
                                         bboxprops=dict(edgecolor=colors[labels[i]], linewidth=1.2)))
    if legend:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=3, frameon=False, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def plot_embedding_history(history, labels, classes: Optional[Sequence[str]] = None, iterations: Optional[Sequence[int]] = None,
                 ncols: int = 4, size: float = 3.0):
    """Small multiples of the optimisation: the frames of ``TSNE.history_`` at ``iterations`` (default: 8 frames
    spread over the run), each titled with its iteration and KL. Returns the figure."""
    import matplotlib.pyplot as plt

    frames = {h.iteration: h for h in history}
    if iterations is None:
        keys = sorted(frames)
        iterations = [keys[int(round(i))] for i in np.linspace(0, len(keys) - 1, min(8, len(keys)))]
    missing = [i for i in iterations if i not in frames]
    if missing:
        raise ValueError(f"iterations {missing} are not in the history; recorded: {sorted(frames)[:5]} ...")
    nrows = -(-len(iterations) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax, it in zip(axes.flat, iterations):
        h = frames[it]
        kl = "" if np.isnan(h.kl) else f", KL {h.kl:.3f}"
        plot_embedding(h.embedding, labels, classes, ax=ax, legend=False, s=3, title=f"iteration {it}{kl}")
    for ax in axes.flat[len(iterations):]:
        ax.set_axis_off()
    handles, names = axes.flat[0].get_legend_handles_labels()    # one legend of the classes for all panels
    if handles:
        fig.legend(handles, names, loc="lower center", ncol=min(len(names), 10), markerscale=3, frameon=False,
                   fontsize=9)
    fig.tight_layout(rect=(0, 0.07 if nrows == 1 else 0.04, 1, 1) if handles else None)
    return fig


def animate_history(history, labels, classes: Optional[Sequence[str]] = None, interval: int = 80):
    """A matplotlib animation over ``TSNE.history_`` (each frame rescaled to fit). In a notebook:
    ``from IPython.display import HTML; HTML(animate_history(...).to_jshtml())``."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    labels = _np(labels).astype(int)
    n_classes = int(labels.max()) + 1 if classes is None else len(classes)
    colors = np.array(class_colors(n_classes))[labels]
    fig, ax = plt.subplots(figsize=(5, 5))
    scatter = ax.scatter(*history[0].embedding.T, s=4, c=colors)
    ax.set_xticks([])
    ax.set_yticks([])

    def draw(k):
        h = history[k]
        scatter.set_offsets(h.embedding)
        lo, hi = h.embedding.min(0), h.embedding.max(0)
        pad = 0.05 * (hi - lo).max()
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(lo[1] - pad, hi[1] + pad)
        ax.set_title(f"iteration {h.iteration}" + ("" if np.isnan(h.kl) else f", KL {h.kl:.3f}"))
        return (scatter,)

    animation = FuncAnimation(fig, draw, frames=len(history), interval=interval, blit=False)
    plt.close(fig)
    return animation



def plot_neighbourhood(P_cond, i: int, images=None, k: int = 8, ax=None):
    """Row ``i`` of the conditional affinities: ``p_{j|i}`` of the ``k`` most likely neighbours (bars, with their
    thumbnails and the image of point ``i`` when ``images`` is given) and the row's perplexity. Returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    row = _np(P_cond[i]).astype(float)
    order = np.argsort(-row)[:k]
    perplexity = 2 ** (-np.sum(row[row > 0] * np.log2(row[row > 0])))
    ax = ax or plt.subplots(figsize=(7, 2.6))[1]
    ax.bar(range(k), row[order], color="tab:blue")
    ax.set_xticks(range(k))
    ax.set_xticklabels([f"j={j}" for j in order], fontsize=8)
    ax.set_ylabel("$p_{j|i}$")
    ax.set_title(f"point {i}: its {k} nearest neighbours hold {row[order].sum():.0%} of $P_i$; "
                 f"perplexity {perplexity:.1f}", fontsize=10)
    if images is not None:
        inset = ax.inset_axes([-0.2, 0.25, 0.14, 0.6])          # the point itself, left of the bars
        inset.imshow(_thumbnail(images[i]), cmap="gray_r")
        inset.set_title(f"point {i}", fontsize=8)
        inset.set_axis_off()
        top = row[order].max()
        ax.set_ylim(0, top * 1.45)
        for b, j in enumerate(order):
            ax.add_artist(AnnotationBbox(OffsetImage(_thumbnail(images[j]), zoom=0.8, cmap="gray_r"),
                                         (b, row[j] + 0.2 * top), frameon=False))
    return ax
