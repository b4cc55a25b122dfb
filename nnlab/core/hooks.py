"""Temporary access to a model's insides: find a layer, capture activations, change the ReLU backward rule.

Everything here is a context manager: hooks and overrides exist only inside the ``with`` block and are
removed on exit, also when the block raises. The caller's model is never changed for good.

Example::

    with capture(model, ["conv1", "conv2"]) as acts:
        model(x)
    acts["conv1"].shape            # (N, C, H, W)

    with relu_backward_rule("guided"):
        x = x.clone().requires_grad_()
        model(x)[:, 3].sum().backward()   # guided backpropagation
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterable, Iterator, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

LayerSpec = Union[str, nn.Module]


# --------------------------------------------------------------------------- finding layers
def layer_names(model: nn.Module, kinds=(nn.Conv2d, nn.MaxPool2d, nn.Linear, nn.Sequential)) -> list[str]:
    """Dotted names of the model's sub-modules of the given kinds (the candidates for ``layer=``)."""
    names = [name for name, m in model.named_modules() if name and isinstance(m, kinds)]
    return names or [name for name, _ in model.named_modules() if name]


def conv_layer_names(model: nn.Module) -> list[str]:
    """Dotted names of the model's ``nn.Conv2d`` layers, in forward-definition order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def get_layer(model: nn.Module, layer: LayerSpec) -> nn.Module:
    """Return the sub-module named by ``layer`` (a dotted name such as ``"layer4"`` or ``"features.28"``),
    or ``layer`` itself when it is already a module of ``model``.

    Raises ``ValueError`` listing the model's candidate layers when the name does not exist.
    """
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError(f"layer {type(layer).__name__} is not a sub-module of the model; "
                             f"pass one of: {', '.join(layer_names(model))}")
        return layer
    if not isinstance(layer, str):
        raise ValueError(f"layer must be a module or a dotted name like 'layer4', got {type(layer).__name__}")
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        raise ValueError(f"model has no layer named {layer!r}; candidates: {', '.join(layer_names(model))}")
    return modules[layer]


def layer_name(model: nn.Module, layer: LayerSpec) -> str:
    """The dotted name of ``layer`` inside ``model``."""
    module = get_layer(model, layer)
    for name, m in model.named_modules():
        if m is module:
            return name
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- capturing activations
@contextlib.contextmanager
def capture(model: nn.Module, layers: Iterable[LayerSpec], detach: bool = True) -> Iterator[Dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` during the forward passes run inside the block.

    Yields a dict ``{layer name: activation (N, C, H, W)}`` filled by every forward pass (the last one wins).
    With ``detach=False`` the activations stay in the autograd graph (for gradients w.r.t. a layer).
    The output is stored as a clone, so that a later in-place operation (``ReLU(inplace=True)``) cannot change it.
    """
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    acts: Dict[str, torch.Tensor] = {}
    handles = []
    try:
        for spec in layers:
            name = layer_name(model, spec)
            module = get_layer(model, spec)

            def hook(_module, _inputs, output, name=name):
                if not isinstance(output, torch.Tensor):
                    raise ValueError(f"layer {name!r} returns {type(output).__name__}, expected a tensor")
                if detach:
                    acts[name] = output.detach().clone()
                else:
                    # Return a copy downstream: an in-place op after the layer then changes the copy, not ours.
                    acts[name] = output
                    return output.clone()

            handles.append(module.register_forward_hook(hook))
        yield acts
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode inside the block and restore every sub-module's own mode afterwards."""
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        yield model
    finally:
        for m, training in modes.items():
            m.training = training


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Set ``requires_grad=False`` on every parameter inside the block (we only need input gradients);
    each parameter's own flag is restored afterwards."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def assert_no_hooks(model: nn.Module) -> None:
    """Raise ``AssertionError`` if any forward/backward hook is registered on the model (used by the tests)."""
    for name, m in model.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            if getattr(m, attr, None):
                raise AssertionError(f"hook left on {name or 'model'} ({attr})")


# --------------------------------------------------------------------------- ReLU backward rules
class _RuleReLU(torch.autograd.Function):
    """ReLU whose forward is the usual max(0, x) and whose backward follows a chosen rule.

    rule "guided"    (Springenberg et al., 2015): grad_in = grad_out * [x > 0] * [grad_out > 0]
    rule "deconvnet" (Zeiler & Fergus, 2014):     grad_in = max(grad_out, 0)   (forward mask ignored)
    """

    @staticmethod
    def forward(ctx, x, rule, inplace):
        if inplace:
            ctx.mark_dirty(x)
            out = x.clamp_(min=0)
        else:
            out = x.clamp(min=0)
        ctx.rule = rule
        if rule == "guided":
            ctx.save_for_backward(out)  # out > 0 exactly where x > 0
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.rule == "deconvnet":
            return grad_out.clamp(min=0), None, None
        (out,) = ctx.saved_tensors
        return grad_out.clamp(min=0) * (out > 0).to(grad_out.dtype), None, None


_RELU_FUNCTIONS = {
    F.relu: "F.relu", torch.relu: "torch.relu", torch.relu_: "torch.relu_", F.relu_: "F.relu_",
    torch.Tensor.relu: "Tensor.relu", torch.Tensor.relu_: "Tensor.relu_",
}
_INPLACE = {torch.relu_, F.relu_, torch.Tensor.relu_}


class _ReLURuleMode(TorchFunctionMode):
    """Intercepts every ReLU call (``nn.ReLU`` modules call ``F.relu``; ``torch.relu``, ``Tensor.relu`` and the
    in-place variants too) and routes it through :class:`_RuleReLU`."""

    def __init__(self, rule: str):
        super().__init__()
        self.rule = rule
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU_FUNCTIONS:
            x = args[0] if args else kwargs["input"]
            inplace = func in _INPLACE or bool(kwargs.get("inplace", args[1] if len(args) > 1 else False))
            self.calls += 1
            return _RuleReLU.apply(x, self.rule, inplace)
        return func(*args, **kwargs)


@contextlib.contextmanager
def relu_backward_rule(rule: str) -> Iterator[_ReLURuleMode]:
    """Change the backward pass of every ReLU run inside the block.

    ``rule``: ``"guided"`` (guided backpropagation) or ``"deconvnet"`` (Zeiler-Fergus deconvnet). The forward
    values are unchanged. Works for ``nn.ReLU`` modules (in-place or not, reused), and for functional calls
    (``F.relu``, ``torch.relu``, ``Tensor.relu`` and in-place variants), which module hooks would miss.
    Yields the mode object; its ``.calls`` counts the ReLUs it rerouted.
    """
    if rule not in ("guided", "deconvnet"):
        raise ValueError(f"rule must be 'guided' or 'deconvnet', got {rule!r}")
    mode = _ReLURuleMode(rule)
    with mode:
        yield mode


@contextlib.contextmanager
def buffers_kept(model: nn.Module) -> Iterator[None]:
    """Restore the buffers of the sub-modules in training mode on exit: a forward pass in training mode
    updates batch-norm running statistics, and ``attribute()`` must leave the caller's model as it was."""
    saved = [(b, b.detach().clone()) for m in model.modules() if m.training for b in m.buffers(recurse=False)]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)
