"""Pictures of templates: class templates as a grid of images, one hidden unit's template beside its votes for
each class, the hidden units most tied to a class, and a test image beside its nearest neighbours.

Companion of :mod:`nnlab.templates` (which returns raw tensors; everything visual is here). Templates are signed:
they are drawn with a diverging colour map, red where a bright pixel raises the score, blue where it lowers it,
white for 0, each template scaled by its own largest magnitude (``shared=True``: one scale for all).

Example::

    from nnlab import templates as T, templates_plot as TP
    model = T.train_logistic_regression(train.images, train.labels)
    TP.show_templates(model.templates(), titles=train.classes)
    mlp = T.train_hidden_layer(train.images, train.labels, hidden=300, weight_decay=1e-2)
    TP.show_hidden_unit(mlp, unit=7, classes=train.classes)
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from nnlab.core.maps import normalize
from nnlab.viz.images import SIGNED_CMAP, show_image


def _scaled(templates: torch.Tensor, shared: bool) -> torch.Tensor:
    """Templates (N, C, H, W) -> the same in [-1, 1] (0 stays 0), each on its own scale unless ``shared``."""
    templates = templates.detach().float()
    if shared:
        return templates / templates.abs().max().clamp(min=1e-12)
    return normalize(templates, "signed", percentile=100)


def show_template(template: torch.Tensor, ax=None, title: Optional[str] = None, cmap: str = SIGNED_CMAP,
                  scale: Optional[float] = None):
    """One template (C, H, W) as a signed image (channels summed): red +, blue -, white 0, scaled by its largest
    magnitude (or by ``scale``). Returns the axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    t = template.detach().float()
    t = t.sum(0) if t.dim() == 3 else t
    s = float(scale) if scale is not None else float(t.abs().max().clamp(min=1e-12))
    ax.imshow((t / s).numpy(), cmap=cmap, vmin=-1, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def show_templates(templates: torch.Tensor, titles: Optional[Sequence[str]] = None, ncols: int = 10,
                   size: float = 1.1, shared: bool = False, cmap: str = SIGNED_CMAP, suptitle: Optional[str] = None):
    """A grid of templates ``(N, C, H, W)`` (the class templates of logistic regression, hidden units' input
    weights...). ``shared=False``: each on its own scale (the shape shows); ``True``: one scale (sizes compare).
    Returns the figure."""
    import matplotlib.pyplot as plt

    if templates.dim() != 4:
        raise ValueError(f"templates must have shape (N, C, H, W), got {tuple(templates.shape)}")
    n = len(templates)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    h, w = templates.shape[-2:]
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * h / w + 0.25 * nrows),
                             squeeze=False)
    scaled = _scaled(templates.sum(1, keepdim=True), shared)
    for i, ax in enumerate(axes.flat):
        if i < n:
            show_template(scaled[i], ax, title=None if titles is None else str(titles[i]), cmap=cmap, scale=1.0)
        else:
            ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def show_hidden_unit(model, unit: int, classes: Optional[Sequence[str]] = None, axes=None, highlight=None,
                     cmap: str = SIGNED_CMAP):
    """Hidden unit ``unit`` of a one-hidden-layer net: its template (input weights, a row of ``W1``) as an image,
    beside a bar chart of its outgoing weights to each class (a column of ``W2``): what it looks for, and whom it
    votes for. ``highlight``: a class index drawn in a different colour (default: the class it votes for most).
    Returns the figure."""
    import matplotlib.pyplot as plt

    from nnlab.templates.weights import outgoing_weights

    templates, votes = model.templates(), outgoing_weights(model)[:, unit]
    if not 0 <= unit < len(templates):
        raise ValueError(f"unit must be in [0, {len(templates) - 1}], got {unit}")
    n_classes = len(votes)
    classes = [str(c) for c in range(n_classes)] if classes is None else list(classes)
    best = int(votes.argmax())
    highlight = best if highlight is None else int(highlight)
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(max(9, 2.5 + 0.2 * n_classes), 2.6 if n_classes <= 10 else 3.2),
                                 gridspec_kw={"width_ratios": [1, 3.2]})
    fig = axes[0].figure
    show_template(templates[unit], axes[0], title=f"hidden unit {unit}: its template", cmap=cmap)
    colors = ["tab:red" if v > 0 else "tab:blue" for v in votes.tolist()]
    colors[highlight] = "black"
    axes[1].bar(range(n_classes), votes.numpy(), color=colors)
    axes[1].axhline(0, color="grey", lw=0.6)
    axes[1].set_xticks(range(n_classes))                        # every class labelled, none skipped
    axes[1].set_xticklabels(classes, fontsize=8, rotation=90 if n_classes > 10 else 0)
    axes[1].set_xlim(-0.6, n_classes - 0.4)
    axes[1].set_ylabel("outgoing weight")
    axes[1].set_title(f"its votes for each class (black: {classes[highlight]}; largest: {classes[best]})",
                      fontsize=9)
    fig.tight_layout()
    return fig


def show_top_units(model, target: int, k: int = 6, x: Optional[torch.Tensor] = None,
                   classes: Optional[Sequence[str]] = None, examples: Optional[torch.Tensor] = None,
                   units: Optional[Sequence[int]] = None, size: float = 1.4, cmap: str = SIGNED_CMAP):
    """The ``k`` hidden units most tied to class ``target`` (see :func:`nnlab.templates.top_hidden_units`; ``x``
    ranks by contribution instead of weight), each template titled with its outgoing weight to the class.
    ``units``: show these hidden units instead (e.g. your own ranking). ``examples (M, C, H, W)``: images of the
    class shown first. Returns the figure."""
    import matplotlib.pyplot as plt

    from nnlab.templates.weights import outgoing_weights, top_hidden_units

    units = top_hidden_units(model, target, k, x) if units is None else torch.as_tensor(units).flatten()
    k = len(units)
    weights = outgoing_weights(model)[target]
    n_examples = 0 if examples is None else len(examples)
    fig, axes = plt.subplots(1, n_examples + k, figsize=(size * (n_examples + k), size * 1.5), squeeze=False)
    for i in range(n_examples):
        show_image(examples[i], axes[0, i], title="an example" if i == 0 else None)
    scaled = _scaled(model.templates()[units].sum(1, keepdim=True), shared=False)
    for j, unit in enumerate(units.tolist()):
        show_template(scaled[j], axes[0, n_examples + j], title=f"unit {unit}\nw={weights[unit]:.2f}", cmap=cmap,
                      scale=1.0)
    name = str(target) if classes is None else classes[target]
    how = " (by contribution)" if x is not None else ""
    fig.suptitle(f"the {k} hidden units that vote most for {name}{how}", fontsize=10)
    fig.tight_layout()
    return fig


def show_neighbours(x: torch.Tensor, train, label: Optional[int] = None,
                    similarities: Sequence[str] = ("euclidean", "cosine", "dot"), size: float = 1.6):
    """A test image ``x (C, H, W)`` and its nearest training image under each similarity, titled with the
    neighbour's class (green: right, red: wrong, when ``label`` is given). ``train``: an ImageSet.
    Returns the figure."""
    import matplotlib.pyplot as plt

    from nnlab.templates.similarity import nearest_neighbours

    fig, axes = plt.subplots(1, 1 + len(similarities), figsize=(size * (1 + len(similarities)), size * 1.4))
    show_image(x, axes[0], title="test image" + ("" if label is None else f"\n{train.classes[label]}"))
    for ax, kind in zip(axes[1:], similarities):
        score, index = nearest_neighbours(train.images, x[None], kind)
        i = int(index[0, 0])
        neighbour_label = int(train.labels[i])
        show_image(train.images[i], ax, title=f"{kind}\n{train.classes[neighbour_label]}")
        if label is not None:
            ax.title.set_color("green" if neighbour_label == label else "red")
    fig.tight_layout()
    return fig
