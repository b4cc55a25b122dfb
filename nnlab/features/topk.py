"""Top-k activations: for each feature of a layer, the k images of a dataset that excite it most.

Zeiler, M. D. & Fergus, R. (2014). Visualizing and Understanding Convolutional Networks. ECCV, Fig. 2.
https://arxiv.org/abs/1311.2901

For every feature, the 9 strongest activations over a dataset: each one is shown as the image patch the unit
sees (its receptive field) beside the deconvnet projection of that single activation. The scan keeps, per image
and feature, the maximum over all positions (so the k images are different images), and a running top-k
across batches, so memory does not grow with the dataset.

Example::

    top = top_activations(model, mnist("test").images, "conv2", k=9)
    top.values.shape          # (C, 9), strongest first
    top.patches.shape         # (C, 9, 1, h, w): the receptive fields; top.projections likewise
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from nnlab.core.progress import progress_bar as tqdm  # vanishes when done in notebooks

from nnlab.core.checks import check_images, check_indices, check_size, running
from nnlab.core.hooks import LayerSpec, capture, eval_mode, layer_name
from nnlab.features.deconvnet import project
from nnlab.features.receptive_fields import crop, receptive_field


@dataclass
class TopActivations:
    """The ``k`` strongest activations of each feature of ``layer`` over a dataset (``F`` features)."""

    layer: str
    features: torch.Tensor     # (F,)   feature indices
    values: torch.Tensor       # (F, k) activation values, strongest first
    index: torch.Tensor        # (F, k) index of the image in the dataset
    position: torch.Tensor     # (F, k, 2) (row, col) of the unit in the feature map
    boxes: torch.Tensor        # (F, k, 4) its receptive field (left, top, right, bottom), may reach into the padding
    images: torch.Tensor       # (F, k, C, H, W) the whole images
    patches: torch.Tensor      # (F, k, C, h, w) the receptive field cut out of the image (zero outside it)
    projections: Optional[torch.Tensor]  # (F, k, C, h, w) deconvnet projection of that activation alone, same crop


def scan(model: nn.Module, images: torch.Tensor, layer: LayerSpec, k: int = 9,
         features: Union[int, Sequence[int], None] = None, batch_size: int = 1000,
         progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Find the ``k`` images with the strongest activation of each feature: a running top-k over batches.

    images: ``(N, C, H, W)``. Returns ``features (F,)``, ``values (F, k)``, ``index (F, k)`` and
    ``position (F, k, 2)``.
    """
    check_images(images, what="images")
    k, batch_size = check_size(k, "k"), check_size(batch_size, "batch_size")
    if features is not None:
        features = check_indices(features, "features")
    name = layer_name(model, layer)
    N = len(images)
    best_values = best_index = best_where = None
    with torch.no_grad(), eval_mode(model), capture(model, [name]) as acts:
        for start in tqdm(range(0, N, batch_size), desc=f"top-{k} {name}", disable=not progress):
            with running(model, images, "images"):
                model(images[start:start + batch_size])
            act = acts[name]
            if features is None:
                features = torch.arange(act.shape[1])
            features = check_indices(features, "features", upper=act.shape[1])
            act = act[:, features]
            width = act.shape[-1] if act.dim() == 4 else 1
            # The maximum of each feature map in each image, and where it is: (B, F) each.
            maxima, where = act.reshape(act.shape[0], act.shape[1], -1).max(dim=2)
            batch_index = torch.arange(start, start + act.shape[0]).expand(len(features), -1)
            if best_values is None:  # the candidates: the best so far and this batch
                values, index, flat = maxima.T, batch_index, where.T
            else:
                values = torch.cat([best_values, maxima.T], dim=1)
                index = torch.cat([best_index, batch_index], dim=1)
                flat = torch.cat([best_where, where.T], dim=1)
            best_values, order = values.topk(min(k, values.shape[1]), dim=1)
            best_index, best_where = index.gather(1, order), flat.gather(1, order)
    if best_values is None:
        raise ValueError("images is empty: expected (N, C, H, W) with N > 0")
    position = torch.stack([best_where // width, best_where % width], dim=-1)
    return features, best_values, best_index, position


def top_activations(model: nn.Module, images, layer: LayerSpec, k: int = 9,
                    features: Union[int, Sequence[int], None] = None, batch_size: int = 1000,
                    projections: bool = True, progress: bool = True) -> TopActivations:
    """For ``layer`` and each of ``features`` (default: all), the ``k`` strongest activations over ``images``,
    with their images, receptive-field patches and deconvnet projections (Zeiler & Fergus, 2014, Fig. 2).

    images: ``(N, C, H, W)`` or an ``ImageSet``. ``projections=False`` skips the projections.
    Returns a :class:`TopActivations`.
    """
    images = getattr(images, "images", images)
    check_images(images, what="images")
    k, batch_size = check_size(k, "k"), check_size(batch_size, "batch_size")
    name = layer_name(model, layer)
    features, values, index, position = scan(model, images, name, k, features, batch_size, progress)
    F_, k = values.shape
    flat_index, flat_position = index.reshape(-1), position.reshape(-1, 2)
    chosen = images[flat_index]                                          # (F*k, C, H, W)
    boxes = torch.tensor([_box(model, name, p, images.shape) for p in flat_position.tolist()])
    patches = torch.stack([crop(img, box) for img, box in zip(chosen, boxes.tolist())])
    projected = None
    if projections:
        feature_of = features.repeat_interleave(k)
        proj = torch.cat([project(model, chosen[i:i + batch_size], name, feature=feature_of[i:i + batch_size],
                                  keep="max", position=flat_position[i:i + batch_size])
                          for i in range(0, len(chosen), batch_size)])
        projected = torch.stack([crop(p, box) for p, box in zip(proj, boxes.tolist())])
        projected = projected.reshape(F_, k, *projected.shape[1:])
    return TopActivations(
        layer=name, features=features, values=values, index=index, position=position,
        boxes=boxes.reshape(F_, k, 4), images=chosen.reshape(F_, k, *images.shape[1:]),
        patches=patches.reshape(F_, k, *patches.shape[1:]), projections=projected,
    )


def _box(model: nn.Module, layer: str, position, shape) -> tuple:
    """Receptive field of a unit; after global pooling or a linear layer a unit sees the whole image."""
    try:
        return receptive_field(model, layer, position)
    except ValueError:
        return (0, 0, shape[-1], shape[-2])
