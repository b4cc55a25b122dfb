"""The base class of every attribution method: ``Method(model, ...).attribute(x, target)``.

The methods themselves live one per file beside this one (see :mod:`nnlab.attribution`); each overrides one
small function. Hooks and backward rules exist only inside ``attribute()``, and the caller's model comes back as
it was.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Optional, Tuple

import torch
import torch.nn as nn

from nnlab.core.checks import check_images, running
from nnlab.core.device import model_device
from nnlab.core.hooks import buffers_kept, frozen, relu_backward_rule
from nnlab.core.targets import Output, Target, select_output, target_scores


# --------------------------------------------------------------------------- base class
class Attribution:
    """Base class of every attribution method: ``Method(model, ...).attribute(x, target)``.

    Args (shared by every method):
        model: any ``nn.Module`` mapping images (N, C, H, W) to outputs (N, n_classes), or to any output that
            a callable ``target`` reduces to (N,) scores. Used as given: its train/eval mode is respected
            (call ``model.eval()`` yourself for dropout/batch-norm in inference mode), nothing is changed on it.
        output: for a model that returns a tuple or a dict, which part is explained: an int (``out[0]``), a
            key (``out["logits"]``) or a callable ``out -> tensor``. ``None`` (default): the output as it is;
            then a class-index target needs a tensor (N, n_classes) and raises ``ValueError`` naming
            ``output=`` otherwise, while a callable target receives the whole tuple / dict, e.g.
            ``target=lambda out: out[0][:, 3]``.
    ``attribute(x, target=None)``:
        x: images (N, C, H, W), float. Not modified. Moved to the model's device; the result comes back on
            ``x``'s device.
        target: what is explained, one scalar per image. ``int``: that class for every image; a sequence or
            tensor of N ints: one class per image; ``None``: the class the model predicts for each image (in the
            model's current mode); a callable ``output -> (N,)`` tensor: anything else, e.g.
            ``lambda out: out[:, 2]`` for a regression output. Class scores are the pre-softmax logits (the
            model's output), as in the papers: the softmax would mix in the other classes.
    Returns:
        a detached tensor, signed and not normalised: (N, C, H, W) for the input-space methods (this file),
        (N, 1, h, w) for the layer maps of :mod:`nnlab.attribution.cam`. Normalise and upsample with :mod:`nnlab.viz.images`.
    """

    #: ReLU backward rule used by :meth:`input_gradient`: ``None`` (the true gradient), ``"guided"`` or
    #: ``"deconvnet"`` (see :func:`nnlab.core.hooks.relu_backward_rule`).
    relu_rule: Optional[str] = None

    def __init__(self, model: nn.Module, output: Output = None):
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(output, (bool, float)) or (output is not None and not callable(output)
                                                 and not isinstance(output, (int, str))):
            raise TypeError(f"output must be None, an int index, a str key or a callable, got "
                            f"{type(output).__name__} {output!r}")
        self.model = model
        self.output = output

    def attribute(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__})"

    # ---- helpers shared by the subclasses
    def forward(self, x: torch.Tensor):
        """The model's output for ``x``, with ``output`` applied (the part that is explained)."""
        with running(self.model, x):
            output = self.model(x)
        return select_output(output, self.output)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """A private copy of ``x`` on the model's device (the caller's tensor is never touched)."""
        check_images(x)
        param = next(self.model.parameters(), None)
        dtype = param.dtype if param is not None and param.is_floating_point() else x.dtype
        return x.detach().to(model_device(self.model, x.device), dtype).clone()

    def input_gradient(self, x: torch.Tensor, target: Target) -> Tuple[torch.Tensor, torch.Tensor]:
        """Gradient of the target score with respect to the input, with this method's ReLU rule.

        One forward pass (which also gives the predicted class when ``target`` is None) and one backward pass
        to the input only (parameters are frozen, so no weight gradient is computed).
        Returns ``(grads, output)``: grads (N, C, H, W) on the model's device, detached; output detached.
        """
        x = x.detach().requires_grad_(True)
        rule = relu_backward_rule(self.relu_rule) if self.relu_rule else contextlib.nullcontext()
        with torch.enable_grad(), frozen(self.model), buffers_kept(self.model), rule as mode:
            output = self.forward(x)
            scores = target_scores(output, target)
            if not scores.requires_grad:
                raise ValueError("the target score does not depend on x (no gradient flows back to the input); "
                                 "a callable target must compute the scores from the model's output")
            (grads,) = torch.autograd.grad(scores.sum(), x, allow_unused=True)
            if grads is None:
                raise ValueError("the target score does not depend on x (no gradient flows back to the input)")
        if self.relu_rule and mode.calls == 0:
            warnings.warn(f"{type(self).__name__}: the model ran no ReLU, so the result is the plain gradient",
                          stacklevel=3)
        return grads.detach(), _detached(output)


def _detached(output):
    """``output`` detached, also inside a tuple / list / dict."""
    if isinstance(output, torch.Tensor):
        return output.detach()
    if isinstance(output, (tuple, list)):
        return type(output)(_detached(o) for o in output)
    if isinstance(output, dict):
        return {k: _detached(v) for k, v in output.items()}
    return output
