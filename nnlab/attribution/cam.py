"""Class activation maps: where, in a layer's feature maps, is the evidence for the target?

A map is a weighted sum of the layer's feature maps A_k (N, K, h, w)::

    map = sum_k w_k A_k            (N, 1, h, w)

and the methods differ only in the weights w_k, computed by one small function, ``cam_weights``
(as ``get_cam_weights`` in pytorch-grad-cam):

| method    | w_k                                                     | paper |
|-----------|---------------------------------------------------------|-------|
| `CAM`     | the final linear layer's weights for class c, W[c, k]   | Zhou et al., 2016 |
| `GradCAM` | alpha_k = spatial mean of d S_c / d A_k, then a ReLU     | Selvaraju et al., 2017 |

`GuidedGradCAM` multiplies the upsampled Grad-CAM map with guided backpropagation (input space).

Example::

    attr = GradCAM(model, layer="layer4").attribute(x, target=3)     # (N, 1, 7, 7) for ResNet at 224 x 224
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlab.attribution.base import Attribution
from nnlab.attribution.guided_backprop import GuidedBackprop
from nnlab.core.hooks import (
    LayerSpec,
    buffers_kept,
    frozen,
    get_layer,
    layer_name,
    layer_names,
)
from nnlab.core.targets import Output, Target, fixed_target, target_scores


@contextlib.contextmanager
def _layer_output(layer: nn.Module, requires_grad: bool) -> Iterator[Dict[str, torch.Tensor]]:
    """Record the output A of ``layer`` as a new leaf of the autograd graph: ``box["acts"]``.

    The rest of the forward pass runs on a copy of A, so gradients with respect to A cost only the layers
    after it (nothing before the layer is recorded), and an in-place operation after the layer
    (``ReLU(inplace=True)``) cannot change A. If the layer runs several times, the last call wins.
    """
    box: Dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ValueError(f"a CAM layer must output feature maps (N, K, h, w), got {shape}")
        box["acts"] = output.detach().requires_grad_(requires_grad)
        return box["acts"].clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield box
    finally:
        handle.remove()


class BaseCAM(Attribution):
    """Base class of the CAM family: map = [ReLU] (sum_k w_k A_k), (N, 1, h, w), with A = the output of ``layer``.

    Args (besides ``model``, see :class:`nnlab.attribution.Attribution`):
        layer: the layer whose feature maps are weighted, a module of ``model`` or a dotted name
            (``"layer4"``, ``"features.28"``); a wrong name raises ``ValueError`` listing the candidates.
        relu: keep only the positive part of the map (``None``: the method's default).
        output: which part of a tuple / dict output is explained (see :class:`Attribution`).

    Subclasses override :meth:`cam_weights` only (and set ``uses_gradients = False`` when they need no
    gradient). The map is raw: at the layer's resolution (h, w), not normalised; see :mod:`nnlab.viz.images`.
    """

    uses_gradients = True
    relu = False

    def __init__(self, model: nn.Module, layer: LayerSpec, relu: Optional[bool] = None, output: Output = None):
        super().__init__(model, output)
        self.layer = get_layer(model, layer)
        self.layer_name = layer_name(model, self.layer)
        if relu is not None:
            self.relu = relu

    def cam_weights(self, acts: torch.Tensor, grads: Optional[torch.Tensor], target: Target) -> torch.Tensor:
        """The weight w_k of each feature map, (N, K).

        acts: the layer's output A (N, K, h, w); grads: d score / d A (N, K, h, w), or None when the method
        does not use gradients; target: the class indices (N,) or the target callable.
        """
        raise NotImplementedError

    def check(self, acts: torch.Tensor, output: torch.Tensor) -> None:
        """Raise ``ValueError`` when the method does not apply to this model (default: always applies)."""

    def attribute(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        return self.attribute_with_target(x, target)[0]

    def attribute_with_target(self, x: torch.Tensor, target: Target = None) -> Tuple[torch.Tensor, Target]:
        """The map (N, 1, h, w) on x's device, and the target it explains (``None`` replaced by the predicted
        classes), so that a second method can explain the same classes (as :class:`GuidedGradCAM` does)."""
        x_ = self._prepare(x)
        grad_mode = torch.enable_grad() if self.uses_gradients else torch.no_grad()
        with grad_mode, frozen(self.model), buffers_kept(self.model), \
                _layer_output(self.layer, self.uses_gradients) as box:
            output = self.forward(x_)
            if "acts" not in box:
                raise ValueError(f"layer {self.layer_name!r} did not run in the model's forward pass")
            acts = box["acts"]
            target = fixed_target(output, target)
            grads = None
            if self.uses_gradients:
                scores = target_scores(output, target)
                (grads,) = torch.autograd.grad(scores.sum(), acts, allow_unused=True)
                if grads is None:
                    raise ValueError(f"the target score does not depend on layer {self.layer_name!r}")
        acts = acts.detach()
        output = output.detach() if isinstance(output, torch.Tensor) else output
        if not bool(torch.isfinite(acts).all()):
            raise ValueError(f"the feature maps of layer {self.layer_name!r} are not finite (NaN or inf): the "
                             f"model's weights or its computation overflow")
        self.check(acts, output)
        weights = self.cam_weights(acts, grads, target)                    # (N, K)
        cam = (weights[:, :, None, None] * acts).sum(dim=1, keepdim=True)  # (N, 1, h, w)
        if self.relu:
            cam = cam.clamp(min=0)
        return cam.to(x.device), target


class CAM(BaseCAM):
    """Class activation map: CAM_c = sum_k W[c, k] A_k, (N, 1, h, w), signed.

    Zhou, Khosla, Lapedriza, Oliva & Torralba, "Learning Deep Features for Discriminative Localization", 2016,
    https://arxiv.org/abs/1512.04150.

    Needs the architecture of the paper: ``layer`` -> global average pooling -> one linear layer giving the
    output (ResNet's ``layer4``; the lab CNNs). Then S_c = mean(CAM_c) + b_c, so the map shows where the
    score comes from. Any other model raises ``ValueError`` suggesting :class:`GradCAM`.

    Args:
        fc: the final linear layer (module or dotted name); default: the model's last ``nn.Linear``.

    Example::

        attr = CAM(model, layer="layer4").attribute(x, target=207)
    """

    uses_gradients = False

    def __init__(self, model: nn.Module, layer: LayerSpec, fc: Optional[LayerSpec] = None,
                 relu: Optional[bool] = None, output: Output = None):
        super().__init__(model, layer, relu, output)
        if fc is None:
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            fc = linears[-1] if linears else None
        else:
            fc = get_layer(model, fc)
        if not isinstance(fc, nn.Linear):
            raise ValueError(f"CAM needs a final linear layer after global average pooling, and "
                             f"{type(model).__name__} has none; use GradCAM(model, layer=...), which works on "
                             f"any architecture")
        self.fc = fc

    def check(self, acts: torch.Tensor, output: torch.Tensor) -> None:
        """The model's output must be fc(global average of the layer's maps)."""
        hint = (f"CAM applies only to '{self.layer_name}' -> global average pooling -> one linear layer; "
                f"use GradCAM(model, layer={self.layer_name!r}) instead, which works on any architecture")
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"CAM needs the class scores (N, n_classes); the model returned "
                             f"{type(output).__name__}: pick them with output=0, a key or a callable")
        if not bool(torch.isfinite(output).all()):
            raise ValueError("the model's output is not finite (NaN or inf): CAM cannot compare it with "
                             "fc(global average of the layer)")
        if acts.shape[1] != self.fc.in_features:
            raise ValueError(f"layer {self.layer_name!r} has {acts.shape[1]} channels but the final linear layer "
                             f"takes {self.fc.in_features} features. {hint}")
        expected = F.linear(acts.mean(dim=(2, 3)), self.fc.weight, self.fc.bias)
        tolerance = 1e-4 * (1 + output.abs().max().item()) if output.numel() else 0
        if expected.shape != output.shape or not torch.allclose(expected, output, rtol=1e-3, atol=tolerance):
            raise ValueError(f"the model's output is not fc(global average of {self.layer_name!r}). {hint}")

    def cam_weights(self, acts, grads, target):
        if callable(target):
            raise ValueError("CAM explains a class (the weights of the final linear layer); for a callable "
                             "target use GradCAM")
        return self.fc.weight.detach()[target]       # (N, K): row c of W for each image


class GradCAM(BaseCAM):
    """Gradient-weighted class activation map: Grad-CAM = ReLU(sum_k alpha_k A_k), (N, 1, h, w),
    alpha_k = (1 / hw) sum_ij d S_c / d A_k[i, j] (the spatial mean of the gradient).

    Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra, "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", 2017, https://arxiv.org/abs/1610.02391.

    Works on any architecture and any target. On a global-average-pooling + linear network,
    alpha_k = W[c, k] / (hw), so Grad-CAM = ReLU(CAM) / (hw). ``relu=False`` gives the signed map.

    Example::

        attr = GradCAM(model, layer="layer4").attribute(x, target=3)
    """

    relu = True

    def cam_weights(self, acts, grads, target):
        return grads.mean(dim=(2, 3))                 # alpha_k, (N, K)


class GuidedGradCAM(Attribution):
    """Guided Grad-CAM = upsample(Grad-CAM) * guided backpropagation, (N, C, H, W).

    Selvaraju et al., 2017, https://arxiv.org/abs/1610.02391 (section 3.1): the coarse, class-discriminative
    Grad-CAM map (bilinearly upsampled to the input size) times the fine-grained guided backpropagation.

    Args:
        layer: as for :class:`GradCAM`.
        interpolate_mode: how the map is upsampled (``"bilinear"`` as in the paper, ``"nearest"``, ...).

    Example::

        attr = GuidedGradCAM(model, layer="layer4").attribute(x, target=3)
    """

    def __init__(self, model: nn.Module, layer: LayerSpec, interpolate_mode: str = "bilinear",
                 output: Output = None):
        super().__init__(model, output)
        self.gradcam = GradCAM(model, layer, output=output)
        self.guided = GuidedBackprop(model, output)
        self.interpolate_mode = interpolate_mode

    def attribute(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        cam, target = self.gradcam.attribute_with_target(x, target)      # the same classes for both passes
        guided = self.guided.attribute(x, target)
        options = {"align_corners": False} if self.interpolate_mode in ("bilinear", "bicubic") else {}
        cam = F.interpolate(cam, size=x.shape[-2:], mode=self.interpolate_mode, **options)
        return cam * guided


def last_feature_layer(model: nn.Module, x: torch.Tensor) -> str:
    """Dotted name of the last module (in forward order) whose output is a feature map (N, C, h, w) with
    h * w > 1, adaptive pooling excluded: the usual ``layer`` for Grad-CAM (``"layer4"`` for a ResNet).
    Runs one forward pass on ``x`` (N, C, H, W)."""
    order = []
    handles = []

    def record(name):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[2] * output.shape[3] > 1:
                order.append(name)
        return hook

    try:
        for name, m in model.named_modules():
            if name and not isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                handles.append(m.register_forward_hook(record(name)))
        with torch.no_grad(), buffers_kept(model):
            model(x.detach().to(next(iter(model.parameters()), x).device))
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise ValueError(f"no layer of the model outputs feature maps (N, C, h, w); candidates: "
                         f"{', '.join(layer_names(model))}")
    return order[-1]
