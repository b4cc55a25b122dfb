"""Receptive fields: the exact input region a unit of a conv/pool layer sees.

A unit at position ``u`` of a layer with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d`` sees the
units ``u*s - p ... u*s - p + d*(k-1)`` of the layer below. Going from the input up, layer by layer, every unit
of layer ``l`` sees an input interval of the same length, so three numbers per axis describe the whole layer:

    size   R_l = R_{l-1} + d*(k-1) * J_{l-1}          (how many input pixels a unit sees)
    jump   J_l = J_{l-1} * s                          (input pixels between two neighbouring units)
    start  S_l = S_{l-1} - p * J_{l-1}                (first input pixel seen by unit 0; < 0 means padding)

starting from the input itself: ``R_0 = 1, J_0 = 1, S_0 = 0``. Unit ``u`` then sees the input pixels
``S + u*J ... S + u*J + R - 1``; near the border part of that interval lies in the zero padding.

Araujo, Norris & Sim (2019), Computing Receptive Fields of Convolutional Neural Networks, Distill.
https://distill.pub/2019/computing-receptive-fields/

Example::

    receptive_field(model, "conv2", position=(0, 0))                    # (left, top, right, bottom), unclipped
    receptive_field(model, "conv2", position=(0, 0), input_size=(28, 28))   # clipped to the image
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlab.core.checks import check_index, check_size
from nnlab.core.hooks import LayerSpec, get_layer

# Layers that change the geometry, and layers that act pixel by pixel (the receptive field goes through them).
GEOMETRIC = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
               nn.Identity, nn.BatchNorm2d, nn.Dropout, nn.Dropout2d)


class Geometry(NamedTuple):
    """Receptive-field geometry of a layer, one ``(rows, cols)`` pair per quantity."""

    size: tuple   # (R_h, R_w)  input pixels seen by one unit
    jump: tuple   # (J_h, J_w)  input pixels between neighbouring units (product of the strides)
    start: tuple  # (S_h, S_w)  first input pixel seen by unit (0, 0); negative inside the padding


def layers_up_to(model: nn.Module, layer: LayerSpec) -> list[tuple[str, nn.Module]]:
    """The model's leaf modules ``(name, module)`` in definition order, up to and including ``layer``.

    Assumes that the forward pass runs the layers in the order they are defined (true for the lab CNNs and
    for ``nn.Sequential``). When ``layer`` is a block, all of its leaves are included.
    """
    target = get_layer(model, layer)
    target_leaves = [m for m in target.modules() if not list(m.children())]
    chain = []
    for name, m in model.named_modules():
        if list(m.children()):
            continue
        chain.append((name, m))
        if m is target_leaves[-1]:
            return chain
    raise AssertionError("unreachable: the layer is a sub-module of the model")


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def conv_arithmetic(module: nn.Module) -> tuple[tuple, tuple, tuple, tuple]:
    """``(kernel, stride, padding, dilation)`` of a Conv2d / MaxPool2d / AvgPool2d as ``(rows, cols)`` pairs."""
    kernel, stride = _pair(module.kernel_size), _pair(module.stride)
    dilation = _pair(getattr(module, "dilation", 1))
    padding = module.padding
    if padding == "valid":
        padding = 0
    elif padding == "same":
        if any(d * (k - 1) % 2 for k, d in zip(kernel, dilation)):
            raise ValueError("padding='same' with an even kernel pads unevenly; give the padding as numbers")
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    return kernel, stride, _pair(padding), dilation


def receptive_field_geometry(model: nn.Module, layer: LayerSpec) -> Geometry:
    """Size, jump and start of the receptive fields of ``layer`` (a conv/pool layer, or a pixel-wise layer after one).

    Raises ``ValueError`` when a layer on the way mixes all positions (``Linear``, global pooling ...): its units
    see the whole image.
    """
    size, jump, start = [1, 1], [1, 1], [0, 0]
    for name, m in layers_up_to(model, layer):
        if isinstance(m, ELEMENTWISE):
            continue
        if not isinstance(m, GEOMETRIC):
            raise ValueError(f"layer {name!r} ({type(m).__name__}) is not a conv/pool layer: units after it see "
                             f"the whole image; pick a layer among: {', '.join(_geometric_names(model))}")
        kernel, stride, padding, dilation = conv_arithmetic(m)
        for axis in (0, 1):
            size[axis] += dilation[axis] * (kernel[axis] - 1) * jump[axis]
            start[axis] -= padding[axis] * jump[axis]
            jump[axis] *= stride[axis]
    return Geometry(tuple(size), tuple(jump), tuple(start))


def _geometric_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, GEOMETRIC)]


def receptive_field(model: nn.Module, layer: LayerSpec, position: Sequence[int],
                    input_size: Optional[Sequence[int]] = None) -> tuple[int, int, int, int]:
    """The input box ``(left, top, right, bottom)`` (right/bottom exclusive) seen by the unit at
    ``position = (row, col)`` of ``layer``.

    Without ``input_size`` the box is the full receptive field and may reach into the padding (negative
    coordinates, or beyond the image). With ``input_size = (H, W)`` it is clipped to the image.
    """
    size, jump, start = receptive_field_geometry(model, layer)
    if isinstance(position, torch.Tensor):
        position = position.reshape(-1).tolist() if not position.is_floating_point() else position
    if isinstance(position, (str, bytes)) or not hasattr(position, "__len__") or len(position) != 2:
        raise TypeError(f"position must be a pair (row, col) of ints >= 0, got {position!r}")
    row, col = check_index(position[0], "position[0] (row)"), check_index(position[1], "position[1] (col)")
    if input_size is not None:
        input_size = [check_size(s, "input_size") for s in list(input_size)[-2:]]
    top, left = start[0] + row * jump[0], start[1] + col * jump[1]
    box = (left, top, left + size[1], top + size[0])
    if input_size is None:
        return box
    H, W = input_size[-2:]
    return (max(box[0], 0), max(box[1], 0), min(box[2], W), min(box[3], H))


def crop(image: torch.Tensor, box: Sequence[int]) -> torch.Tensor:
    """Cut ``box = (left, top, right, bottom)`` out of ``image (C, H, W)``; parts outside the image are zero
    (the padding the network saw). Returns ``(C, bottom - top, right - left)``."""
    if image.dim() != 3:
        raise ValueError(f"image must have shape (C, H, W), got {tuple(image.shape)}")
    left, top, right, bottom = (int(b) for b in box)
    if right <= left or bottom <= top:
        raise ValueError(f"box (left, top, right, bottom) must have right > left and bottom > top, got {tuple(box)}")
    H, W = image.shape[-2:]
    pad_left, pad_top = max(-left, 0), max(-top, 0)
    padded = F.pad(image, (pad_left, max(right - W, 0), pad_top, max(bottom - H, 0)))
    return padded[..., top + pad_top:bottom + pad_top, left + pad_left:right + pad_left]
