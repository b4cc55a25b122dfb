"""Zeiler-Fergus deconvnet: project one feature of a layer back to pixel space.

Zeiler, M. D. & Fergus, R. (2014). Visualizing and Understanding Convolutional Networks. ECCV.
https://arxiv.org/abs/1311.2901

Present an image, choose a layer and a feature, keep that feature map (all of it, or only its maximum), set
every other feature of the layer to zero, and go back down to the input, layer by layer:

    unpool   put each value back where the maximum came from (the *switches* recorded by max-pooling)
    rectify  max(0, .)
    filter   transposed convolution with the same filters (no bias)

That is the backward pass of the network with one change: a ReLU passes ``max(grad, 0)`` down instead of
``grad * [x > 0]`` (max-pooling's backward already routes to the switches, a convolution's backward already is the
transposed convolution). So :func:`project` is autograd under ``hooks.relu_backward_rule("deconvnet")``, and
:func:`project_steps` does the same steps one by one, for the lab; the tests check that both agree.

Example::

    proj = project(model, x, "conv2", feature=5)                 # (N, 1, 28, 28), raw and signed
    proj = project(model, x, "conv3", feature=None, keep="max")  # strongest feature, only its maximum
    for step in project_steps(model, x[:1], "conv2", feature=5):
        print(step.layer, step.op, tuple(step.out.shape))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlab.core.checks import check_finite, check_images, check_indices, running
from nnlab.core.hooks import (
    LayerSpec,
    capture,
    eval_mode,
    frozen,
    layer_name,
    relu_backward_rule,
)
from nnlab.features.receptive_fields import conv_arithmetic, layers_up_to

Features = Union[int, Sequence[int], torch.Tensor, None]


# --------------------------------------------------------------------------- keep one feature, zero the others
def strongest_feature(acts: torch.Tensor) -> torch.Tensor:
    """``(N,)`` index of the feature with the largest activation (anywhere in its map), per image.
    ``acts``: ``(N, C, H, W)`` or ``(N, C)``."""
    return acts.reshape(acts.shape[0], acts.shape[1], -1).amax(dim=2).argmax(dim=1)


def _features(acts: torch.Tensor, feature: Features) -> torch.Tensor:
    N, C = acts.shape[:2]
    if feature is None:
        return strongest_feature(acts)
    feature = check_indices(feature, "feature", upper=C)      # no bool, no 3.7, no -1
    if feature.numel() == 1:
        feature = feature.expand(N)
    if feature.shape != (N,):
        raise ValueError(f"feature must be an int or {N} ints in [0, {C}), got {feature.tolist()}")
    return feature.to(acts.device)


def keep_feature(acts: torch.Tensor, feature: Features = None, keep: str = "all",
                 position: Optional[Union[Sequence[int], torch.Tensor]] = None) -> torch.Tensor:
    """Keep one feature map per image and set all the other features of the layer to zero.

    acts:     ``(N, C, H, W)`` activations of a layer (``(N, C)`` works too).
    feature:  an int, ``N`` ints, or ``None`` for the strongest feature of each image.
    keep:     ``"all"`` keeps the whole map, ``"max"`` only its maximum (or the unit at ``position``: a
              ``(row, col)`` pair, or ``(N, 2)``).
    Returns ``(N, C, H, W)``: zero everywhere except the kept map, rectified (the deconvnet works on rectified
    activity; for a layer after a ReLU this changes nothing).
    """
    if keep not in ("all", "max"):
        raise ValueError(f"keep must be 'all' or 'max', got {keep!r}")
    check_finite(acts, "acts")
    if acts.dim() not in (2, 4) or acts.shape[0] == 0:
        raise ValueError(f"acts must have shape (N, C, H, W) or (N, C) with N >= 1, got {tuple(acts.shape)}")
    N = acts.shape[0]
    rows = torch.arange(N)
    feature = _features(acts, feature)
    maps = acts[rows, feature].clamp(min=0).reshape(N, -1)          # (N, H*W)
    if keep == "max":
        if position is None:
            where = maps.argmax(dim=1)
        else:
            if acts.dim() != 4:
                raise ValueError(f"position needs feature maps (N, C, H, W), got acts of shape {tuple(acts.shape)}")
            flat = check_indices(position.reshape(-1) if isinstance(position, torch.Tensor) else
                                 [p for pair in position for p in pair] if isinstance(position[0], (list, tuple))
                                 else position, "position")
            if len(flat) not in (2, 2 * N):
                raise ValueError(f"position must be a (row, col) pair or (N, 2) = ({N}, 2), got {len(flat)} values")
            position = flat.reshape(-1, 2).expand(N, 2)
            if int(position[:, 0].max()) >= acts.shape[-2] or int(position[:, 1].max()) >= acts.shape[-1]:
                raise ValueError(f"position (row, col) must lie in the feature map of size "
                                 f"{tuple(acts.shape[-2:])}, got {position.tolist()}")
            where = position[:, 0] * acts.shape[-1] + position[:, 1]
        only_max = torch.zeros_like(maps)
        only_max[rows, where] = maps[rows, where]
        maps = only_max
    seed = torch.zeros_like(acts)
    seed[rows, feature] = maps.reshape(acts[rows, feature].shape)
    return seed


# --------------------------------------------------------------------------- projection through autograd
def project(model: nn.Module, x: torch.Tensor, layer: LayerSpec, feature: Features = None, keep: str = "all",
            position=None) -> torch.Tensor:
    """Project one feature of ``layer`` back to pixel space with the deconvnet (Zeiler & Fergus, 2014).

    x:        ``(N, C, H, W)`` images.
    layer:    a layer name (``"conv2"``) or module; its output is the layer's activation.
    feature, keep, position: which feature map to keep, see :func:`keep_feature`.
    Returns ``(N, C, H, W)``, the raw (signed, unnormalised) projection; ``plot.py`` normalises for display.

    The backward pass from the kept map, with the deconvnet ReLU rule (``hooks.relu_backward_rule``): the
    backward of max-pooling is unpooling with the switches, that of a ReLU is "rectify", that of a convolution
    is the transposed convolution. The model's mode, parameters and ``x`` are left as they were.
    """
    check_images(x)
    name = layer_name(model, layer)
    with eval_mode(model), frozen(model), torch.enable_grad(), relu_backward_rule("deconvnet"), \
            capture(model, [name], detach=False) as acts:
        x = x.detach().clone().requires_grad_(True)
        with running(model, x):
            model(x)
        act = acts[name]
        seed = keep_feature(act.detach(), feature, keep, position)
        (projection,) = torch.autograd.grad(act, x, grad_outputs=seed)
    return projection


# --------------------------------------------------------------------------- the same, step by step
@dataclass
class Step:
    """One step of the way down: ``op`` ("keep", "unpool", "rectify" or "filter") applied at ``layer``;
    ``out`` is the reconstruction after it, ``(N, C, H, W)`` in the space below ``layer``."""

    layer: str
    op: str
    out: torch.Tensor


def unpool(r: torch.Tensor, switches: torch.Tensor, pool: nn.MaxPool2d, size: Sequence[int]) -> torch.Tensor:
    """Max-unpooling: put each value of ``r (N, C, h, w)`` back at the position its maximum came from.

    ``switches (N, C, h, w)`` are the flat indices from ``F.max_pool2d(..., return_indices=True)``; ``size`` is
    the shape before pooling ``(N, C, H, W)``. All other positions are zero.
    """
    kernel, stride, _, _ = conv_arithmetic(pool)
    if all(k <= s for k, s in zip(kernel, stride)):
        return F.max_unpool2d(r, switches, pool.kernel_size, pool.stride, pool.padding, output_size=size[-2:])
    # Overlapping windows can share a switch; max_unpool2d would keep one of the two values, autograd adds them.
    out = r.new_zeros(r.shape[0], r.shape[1], size[-2] * size[-1])
    out.scatter_add_(2, switches.flatten(2), r.flatten(2))
    return out.reshape(size)


def filter_down(r: torch.Tensor, conv: nn.Conv2d, size: Sequence[int]) -> torch.Tensor:
    """Apply the transposed filters of ``conv`` to ``r (N, C_out, h, w)``, giving ``size = (N, C_in, H, W)``."""
    kernel, stride, padding, dilation = conv_arithmetic(conv)
    # A strided convolution maps several input sizes to the same output size: output_padding picks ours.
    output_padding = tuple(size[2 + a] - ((r.shape[2 + a] - 1) * stride[a] - 2 * padding[a]
                                          + dilation[a] * (kernel[a] - 1) + 1) for a in (0, 1))
    return F.conv_transpose2d(r, conv.weight, None, stride, padding, output_padding, conv.groups, dilation)


PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout2d)  # identities at test time


def project_steps(model: nn.Module, x: torch.Tensor, layer: LayerSpec, feature: Features = None,
                  keep: str = "all", position=None) -> list[Step]:
    """The deconvnet projection of :func:`project`, written out layer by layer, with every intermediate.

    For a model whose layers up to ``layer`` are ``Conv2d``, ``ReLU`` and ``MaxPool2d`` modules run in the order
    they are defined (the lab CNNs). Returns the list of :class:`Step`; ``steps[-1].out`` is the projection
    ``(N, C, H, W)``, equal to ``project(model, x, layer, feature, keep)``.
    """
    check_images(x)
    name = layer_name(model, layer)
    chain = layers_up_to(model, name)
    for n, m in chain:
        if not isinstance(m, (nn.Conv2d, nn.ReLU, nn.MaxPool2d) + PASS_THROUGH):
            raise ValueError(f"project_steps handles Conv2d, ReLU and MaxPool2d layers; {n!r} is a "
                             f"{type(m).__name__}: use project() instead")
    # Forward, recording what the way down needs: each layer's input size and each max-pool's switches.
    record = []
    with torch.no_grad(), eval_mode(model):
        h = x
        for n, m in chain:
            size, switches = h.shape, None
            if isinstance(m, nn.MaxPool2d):
                h, switches = F.max_pool2d(h, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode,
                                           return_indices=True)
            else:
                h = m(h)
            record.append((n, m, size, switches))
        with capture(model, [name]) as acts:
            model(x)
    if h.shape != acts[name].shape or not torch.allclose(h, acts[name], rtol=1e-4, atol=1e-5):
        raise ValueError(f"running the modules up to {name!r} one after the other does not give the model's "
                         f"activation (functional ReLUs, or a forward order other than the definition order?); "
                         f"use project() instead")
    # Down: keep one feature, then unpool, rectify, filter, layer by layer.
    r = keep_feature(h, feature, keep, position)
    steps = [Step(name, "keep", r)]
    with torch.no_grad():
        for n, m, size, switches in reversed(record):
            if isinstance(m, nn.MaxPool2d):
                r = unpool(r, switches, m, size)
                steps.append(Step(n, "unpool", r))
            elif isinstance(m, nn.ReLU):
                r = r.clamp(min=0)
                steps.append(Step(n, "rectify", r))
            elif isinstance(m, nn.Conv2d):
                r = filter_down(r, m, size)
                steps.append(Step(n, "filter", r))
    return steps
