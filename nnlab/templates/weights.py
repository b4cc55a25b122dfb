"""Reading the weights of the template models: roughness, noise, outgoing weights, top hidden units.
"""
from __future__ import annotations

from typing import Optional

import torch

from nnlab.core.checks import check_images, check_index, check_size
from nnlab.templates.similarity import flatten


# =========================================================================== reading the templates
def roughness(templates: torch.Tensor) -> torch.Tensor:
    """Roughness of each template, its anisotropic (L1) total variation: the sum of absolute differences between neighbouring pixels,
    ``sum |t[i+1, j] - t[i, j]| + |t[i, j+1] - t[i, j]|`` (over channels too). templates ``(N, C, H, W)`` -> ``(N,)``.

    Rudin, Osher & Fatemi (1992), https://doi.org/10.1016/0167-2789(92)90242-F
    """
    check_images(templates, what="templates")
    down = (templates[:, :, 1:, :] - templates[:, :, :-1, :]).abs().flatten(1).sum(1)
    right = (templates[:, :, :, 1:] - templates[:, :, :, :-1]).abs().flatten(1).sum(1)
    return down + right


def template_noise(templates: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """How noisy each template is, whatever its scale: ``roughness(t) / sum |t|``. ``(N, C, H, W)`` -> ``(N,)``.

    The mean jump between neighbouring pixels relative to the mean pixel magnitude: about 0 for a smooth picture,
    about 2.8 for white noise. Dividing by ``sum |t|`` makes it blind to the scale (``t`` and ``10 t`` score the
    same), so an L2 penalty cannot lower it just by shrinking the weights.
    """
    return roughness(templates) / templates.abs().flatten(1).sum(1).clamp(min=eps)


def outgoing_weights(model) -> torch.Tensor:
    """The hidden-to-class weights of a one-hidden-layer net: ``(n_classes, hidden)``; column ``j`` says how much
    hidden unit ``j`` votes for each class."""
    if not hasattr(model, "fc2"):
        raise ValueError(f"expected a one-hidden-layer network with layers fc1 and fc2 (nnlab.models.MLP), got "
                         f"{type(model).__name__}")
    return model.fc2.weight.detach()


def top_hidden_units(model, target: int, k: int = 5, x: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The ``k`` hidden units most tied to class ``target``: indices ``(k,)``, strongest first.

    Without ``x``: ranked by their outgoing weight to the class, ``W2[target, j]`` (the units that vote most for it).
    With images ``x (N, C, H, W)`` (e.g. the class's own images): ranked by their mean contribution to the class
    score on ``x``, ``W2[target, j] * mean_n relu(W1 x_n + b1)_j``, which also counts how active the unit is.
    """
    weights = outgoing_weights(model)
    target = check_index(target, "target", upper=weights.shape[0])
    k = check_size(k, "k")
    if k > weights.shape[1]:
        raise ValueError(f"k must be at most the number of hidden units ({weights.shape[1]}), got {k}")
    weights = weights[target]
    if x is not None:
        check_images(x)
        with torch.no_grad():
            acts = model.relu(model.fc1(flatten(x)))
        weights = weights * acts.mean(0)
    return weights.topk(k).indices
