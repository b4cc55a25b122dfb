"""Which score is explained: the ``target`` argument of every method, turned into classes or scores.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Sequence, Union

import torch
import torch.nn as nn

from nnlab.core.checks import check_indices, check_scores, check_target, running

Target = Union[None, int, Sequence[int], torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]

#: Which part of a model's output is explained, for models that return a tuple or a dict: ``None`` (the output
#: itself), an int (``output[i]`` of a tuple/list), a key (``output[key]`` of a dict), or a callable
#: ``output -> tensor``.
Output = Union[None, int, Hashable, Callable[[Any], torch.Tensor]]


def select_output(output: Any, selector: Output = None) -> Any:
    """The part of a model's ``output`` picked by ``selector`` (see :data:`Output`); ``None`` keeps it as it is.

    A wrong index or key raises ``ValueError`` listing what the model returned."""
    if selector is None:
        return output
    if callable(selector):
        try:
            return selector(output)
        except (IndexError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"output(model_output) failed on what the model returned, {_kind(output)}: "
                             f"{type(err).__name__}: {err}") from err
    if isinstance(output, (tuple, list)):
        if isinstance(selector, bool) or not isinstance(selector, int) or not -len(output) <= selector < len(output):
            raise ValueError(f"output must be an index in [0, {len(output) - 1}] of the model's "
                             f"{type(output).__name__} of {len(output)} items, got {selector!r}")
        return output[selector]
    if isinstance(output, dict):
        if selector not in output:
            raise ValueError(f"output must be one of the keys the model returns, {list(output)}, got {selector!r}")
        return output[selector]
    raise ValueError(f"output={selector!r} picks a part of a tuple or dict output, but the model returned "
                     f"{_kind(output)}; leave output=None")


def _kind(output: Any) -> str:
    if isinstance(output, torch.Tensor):
        return f"a tensor of shape {tuple(output.shape)}"
    if isinstance(output, dict):
        return f"a dict with keys {list(output)}"
    if isinstance(output, (tuple, list)):
        return f"a {type(output).__name__} of {len(output)} items"
    return f"a {type(output).__name__}"


def _not_scores(output: Any) -> ValueError:
    return ValueError(f"a class-index target needs the model's class scores, a tensor (N, n_classes), but the "
                      f"model returned {_kind(output)}; pick the scores with output=0 (an index), "
                      f"output='logits' (a key) or output=callable, or pass target=callable(output) -> (N,) scores")


def _batch_size(output: Any):
    """N of the first tensor found in a (nested) model output, or None."""
    if isinstance(output, torch.Tensor):
        return output.shape[0] if output.dim() else None
    items = output.values() if isinstance(output, dict) else output if isinstance(output, (tuple, list)) else ()
    for item in items:
        n = _batch_size(item)
        if n is not None:
            return n
    return None


def target_classes(output: torch.Tensor, target: Target) -> torch.Tensor:
    """The class index of each image, (N,) long: ``target`` as given, or the predicted class when ``None``.

    ``output``: the model's class scores (N, n_classes).
    """
    if not isinstance(output, torch.Tensor):
        raise _not_scores(output)
    if output.dim() != 2:
        raise ValueError(f"a class-index target needs a model output of shape (N, n_classes), got "
                         f"{tuple(output.shape)}; pass target=callable(output) -> (N,) scores instead")
    n, n_classes = output.shape
    if target is None:
        check_scores(output, "the model's class scores")      # argmax of NaN scores is a plausible class
        return output.detach().argmax(dim=1)
    target = check_target(target)       # TypeError / ValueError for bool, 3.7, '3', -1 ...
    if callable(target):
        raise ValueError("a callable target gives scores, not classes")
    classes = check_indices(target, "target", upper=n_classes, n=n if isinstance(target, int) else None)
    if classes.shape != (n,):
        raise ValueError(f"target must be an int or {n} ints (one per image), got {len(classes)} values")
    return classes.to(output.device)


def target_scores(output: torch.Tensor, target: Target) -> torch.Tensor:
    """The score that is explained, one number per image: (N,).

    ``target`` int / N ints: ``output[i, target[i]]`` (pre-softmax class scores); ``None``: the predicted class;
    callable: ``target(output)``, which must return (N,) scores (a regression output, a neuron, a channel).
    """
    target = check_target(target)
    if callable(target):
        n = _batch_size(output)
        try:
            scores = target(output)
        except (IndexError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"target(output) failed on what the model returned, {_kind(output)} "
                             f"(a tuple or dict? pick a part with output=...): {type(err).__name__}: {err}") from err
        if not isinstance(scores, torch.Tensor) or scores.dim() != 1 or (n is not None and len(scores) != n):
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ValueError(f"target(output) must return one score per image, shape ({n},), got {shape}")
        if not scores.is_floating_point():
            raise ValueError(f"target(output) must return float scores, got {scores.dtype}")
        return check_scores(scores, "the scores target(output)")
    classes = target_classes(output, target)
    return check_scores(output.gather(1, classes[:, None])[:, 0])


def fixed_target(output: torch.Tensor, target: Target) -> Target:
    """``target`` with ``None`` replaced by the predicted classes (to reuse over several passes)."""
    target = check_target(target)
    return target if callable(target) else target_classes(output, target)


def predicted_target(model: nn.Module, x: torch.Tensor, target: Target, output: Output = None) -> Target:
    """``target`` kept fixed for several passes: a callable or given classes as they are, ``None`` replaced by the
    classes the model predicts for ``x`` (N, C, H, W), computed once without gradients, on x's device. The
    model's batch-norm statistics are left as they were. ``output`` picks the class scores of a model that
    returns a tuple or a dict (see :func:`select_output`)."""
    target = check_target(target)
    if callable(target):
        return target
    from nnlab.core.device import model_device
    from nnlab.core.hooks import buffers_kept

    with torch.no_grad(), buffers_kept(model):
        with running(model, x):
            scores = select_output(model(x.detach().to(model_device(model, x.device))), output)
    return fixed_target(scores, target).to(x.device)
