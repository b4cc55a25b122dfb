"""Which score is explained: the ``target`` argument of every method, turned into classes or scores.
"""
from __future__ import annotations

import numbers
from typing import Callable, Sequence, Union

import torch
import torch.nn as nn

Target = Union[None, int, Sequence[int], torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


def target_classes(output: torch.Tensor, target: Target) -> torch.Tensor:
    """The class index of each image, (N,) long: ``target`` as given, or the predicted class when ``None``.

    ``output``: the model's class scores (N, n_classes).
    """
    if output.dim() != 2:
        raise ValueError(f"a class-index target needs a model output of shape (N, n_classes), got "
                         f"{tuple(output.shape)}; pass target=callable(output) -> (N,) scores instead")
    n, n_classes = output.shape
    if target is None:
        return output.detach().argmax(dim=1)
    if isinstance(target, numbers.Integral) or (isinstance(target, torch.Tensor) and target.dim() == 0):
        classes = torch.full((n,), int(target), dtype=torch.long, device=output.device)
    else:
        classes = torch.as_tensor(target, device=output.device).long().flatten()
        if classes.shape != (n,):
            raise ValueError(f"target must be an int or {n} ints (one per image), got {len(classes)} values")
    if classes.numel() and (classes.min() < 0 or classes.max() >= n_classes):
        raise ValueError(f"target classes must lie in [0, {n_classes - 1}], got {classes.tolist()}")
    return classes


def target_scores(output: torch.Tensor, target: Target) -> torch.Tensor:
    """The score that is explained, one number per image: (N,).

    ``target`` int / N ints: ``output[i, target[i]]`` (pre-softmax class scores); ``None``: the predicted class;
    callable: ``target(output)``, which must return (N,) scores (a regression output, a neuron, a channel).
    """
    n = output.shape[0]
    if callable(target):
        scores = target(output)
        if not isinstance(scores, torch.Tensor) or scores.shape != (n,):
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ValueError(f"target(output) must return one score per image, shape ({n},), got {shape}")
        return scores
    classes = target_classes(output, target)
    return output.gather(1, classes[:, None])[:, 0]


def fixed_target(output: torch.Tensor, target: Target) -> Target:
    """``target`` with ``None`` replaced by the predicted classes (to reuse over several passes)."""
    return target if callable(target) else target_classes(output, target)


def predicted_target(model: nn.Module, x: torch.Tensor, target: Target) -> Target:
    """``target`` kept fixed for several passes: a callable or given classes as they are, ``None`` replaced by the
    classes the model predicts for ``x`` (N, C, H, W), computed once without gradients, on x's device. The
    model's batch-norm statistics are left as they were."""
    if callable(target):
        return target
    from nnlab.core.device import model_device
    from nnlab.core.hooks import buffers_kept

    with torch.no_grad(), buffers_kept(model):
        output = model(x.detach().to(model_device(model, x.device)))
    return fixed_target(output, target).to(x.device)
