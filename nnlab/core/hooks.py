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
    """A rectifier clamp(x, 0, upper) (ReLU: upper = inf; ReLU6: upper = 6; hardtanh(0, m): upper = m) whose
    forward is unchanged and whose backward follows a chosen rule.

    rule "guided"    (Springenberg et al., 2015): grad_in = grad_out * [0 < x < upper] * [grad_out > 0]
                     (for ReLU6 the gradient passes only where 0 < x < 6, where the unit is not clipped)
    rule "deconvnet" (Zeiler & Fergus, 2014):     grad_in = max(grad_out, 0)   (the forward mask, lower and
                     upper clip alike, is ignored: the deconvnet rectifies the backward signal only)
    """

    @staticmethod
    def forward(ctx, x, rule, inplace, upper):
        if inplace:
            ctx.mark_dirty(x)
            out = x.clamp_(min=0, max=upper)
        else:
            out = x.clamp(min=0, max=upper)
        ctx.rule = rule
        ctx.upper = upper
        if rule == "guided":
            ctx.save_for_backward(out)  # 0 < out < upper exactly where 0 < x < upper
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.rule == "deconvnet":
            return grad_out.clamp(min=0), None, None, None
        (out,) = ctx.saved_tensors
        mask = out > 0
        if ctx.upper is not None:
            mask &= out < ctx.upper
        return grad_out.clamp(min=0) * mask.to(grad_out.dtype), None, None, None


_RELU_FUNCTIONS = {
    F.relu: "F.relu", torch.relu: "torch.relu", torch.relu_: "torch.relu_", F.relu_: "F.relu_",
    torch.Tensor.relu: "Tensor.relu", torch.Tensor.relu_: "Tensor.relu_",
}
_INPLACE = {torch.relu_, F.relu_, torch.Tensor.relu_}
_RELU6_FUNCTIONS = {F.relu6: "F.relu6"}                      # nn.ReLU6 calls F.hardtanh(x, 0, 6)
_HARDTANH_FUNCTIONS = {F.hardtanh: "F.hardtanh", F.hardtanh_: "F.hardtanh_"}

#: activations with no guided / deconvnet rule: inside a rule block they raise (a plain gradient through them
#: would be passed off as guided backpropagation). Saturating gates (sigmoid, tanh, softmax, e.g. in
#: squeeze-excitation blocks) are not rectifiers and keep their plain gradient: a documented choice.
_NO_RULE = {
    F.silu: "SiLU / swish (F.silu)", F.gelu: "GELU (F.gelu)", F.elu: "ELU (F.elu)", F.selu: "SELU (F.selu)",
    F.celu: "CELU (F.celu)", F.leaky_relu: "LeakyReLU (F.leaky_relu)", F.prelu: "PReLU (F.prelu)",
    F.rrelu: "RReLU (F.rrelu)", F.mish: "Mish (F.mish)", F.hardswish: "Hardswish (F.hardswish)",
    F.softplus: "Softplus (F.softplus)", F.hardsigmoid: "Hardsigmoid (F.hardsigmoid)",
    F.glu: "GLU (F.glu)", F.logsigmoid: "LogSigmoid (F.logsigmoid)", F.threshold: "Threshold (F.threshold)",
}
for _name in ("elu_", "leaky_relu_", "rrelu_", "celu_", "selu_", "threshold_"):
    if hasattr(F, _name):
        _NO_RULE[getattr(F, _name)] = f"{_name.rstrip('_')} (F.{_name})"


def _arg(args, kwargs, i, name, default):
    return args[i] if len(args) > i else kwargs.get(name, default)


class _ReLURuleMode(TorchFunctionMode):
    """Intercepts every rectifier call and routes it through :class:`_RuleReLU`: ReLU (``nn.ReLU`` modules call
    ``F.relu``; ``torch.relu``, ``Tensor.relu`` and the in-place variants), ReLU6 (``nn.ReLU6`` modules call
    ``F.hardtanh(x, 0, 6)``; ``F.relu6``) and ``F.hardtanh`` with ``min_val=0``. Being a torch-function mode it
    sees calls made anywhere, also inside modules such as timm's ``BatchNormAct2d``. An activation with no rule
    (:data:`_NO_RULE`: SiLU, GELU, ..., or hardtanh with ``min_val != 0``) raises ``ValueError`` naming it."""

    def __init__(self, rule: str):
        super().__init__()
        self.rule = rule
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU_FUNCTIONS or func in _RELU6_FUNCTIONS or func in _HARDTANH_FUNCTIONS:
            x = args[0] if args else kwargs["input"]
            upper = None
            if func in _RELU_FUNCTIONS:
                inplace = func in _INPLACE or bool(_arg(args, kwargs, 1, "inplace", False))
            elif func in _RELU6_FUNCTIONS:
                inplace, upper = bool(_arg(args, kwargs, 1, "inplace", False)), 6.0
            else:
                low = float(_arg(args, kwargs, 1, "min_val", -1.0))
                upper = float(_arg(args, kwargs, 2, "max_val", 1.0))
                inplace = func is F.hardtanh_ or bool(_arg(args, kwargs, 3, "inplace", False))
                if low != 0:
                    raise ValueError(f"relu_backward_rule({self.rule!r}): the model runs F.hardtanh with "
                                     f"min_val={low:g}, max_val={upper:g}, which has no {self.rule} rule (only "
                                     f"min_val=0: ReLU6 and clipped ReLUs); the result would be the plain gradient")
            self.calls += 1
            return _RuleReLU.apply(x, self.rule, inplace, upper)
        if func in _NO_RULE:
            raise ValueError(f"relu_backward_rule({self.rule!r}): the model runs the activation {_NO_RULE[func]}, "
                             f"which has no {self.rule} rule (defined for ReLU, ReLU6 and hardtanh(0, m) only); "
                             f"the result would be the plain gradient through it. Use Saliency, or a model "
                             f"with ReLU-family activations")
        return func(*args, **kwargs)


@contextlib.contextmanager
def relu_backward_rule(rule: str) -> Iterator[_ReLURuleMode]:
    """Change the backward pass of every rectifier (ReLU, ReLU6, hardtanh(0, m)) run inside the block.

    ``rule``: ``"guided"`` (guided backpropagation, Springenberg et al., 2015: the gradient passes where the
    forward input was in the open linear range, 0 < x (< 6 for ReLU6), and the incoming gradient is positive) or
    ``"deconvnet"`` (Zeiler & Fergus, 2014: the incoming gradient rectified, max(g, 0), the forward input
    ignored; the same for ReLU6). The forward values are unchanged. Works for ``nn.ReLU`` / ``nn.ReLU6`` /
    ``nn.Hardtanh(0, m)`` modules (in-place or not, reused, applied inside another module's forward such as timm's
    ``BatchNormAct2d``), and for functional calls (``F.relu``, ``torch.relu``, ``Tensor.relu``, ``F.relu6``,
    ``F.hardtanh`` and in-place variants), which module hooks would miss.
    An activation with no such rule (SiLU, GELU, ELU, LeakyReLU, Hardswish, hardtanh with min_val != 0, ...)
    raises ``ValueError`` naming it, rather than silently giving its plain gradient. Sigmoid, tanh and softmax
    (gates) keep their plain gradient. Yields the mode object; its ``.calls`` counts the rectifiers it rerouted.
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
