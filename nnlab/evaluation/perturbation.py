"""Deletion and insertion curves: does taking away the pixels a map points at destroy the prediction?

Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box Models", BMVC 2018,
https://arxiv.org/abs/1806.07421 (section 4.1, "causal metrics").

- **Deletion**: starting from the image, replace its pixels by a baseline (0: black), ``step`` pixels at a time,
  the most important first (by the map), and record the probability of the target class after each step.
  A map that finds the evidence makes the probability fall fast: a *small* area under the curve (AUC).
- **Insertion**: starting from the baseline (a blurred copy in the paper), put the image's pixels back, the most
  important first. A good map makes the probability rise fast: a *large* AUC.
- **Random baseline**: the same with the pixels in random order (``attr=None``).

With ``n_steps = ceil(H * W / step)``, the curve has ``n_steps + 1`` points: after step k, the first
``min(k * step, H * W)`` pixels of the order are changed (in every channel).

Example::

    curve = deletion(model, x, Saliency(model).attribute(x).abs())
    curve.auc                     # (N,) area under each image's curve
    deletion(model, x, None).auc  # the random-order baseline
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlab.core.checks import check_finite, check_images, check_number, check_size, running
from nnlab.core.device import model_device
from nnlab.core.hooks import buffers_kept
from nnlab.core.maps import reduce_channels, upsample
from nnlab.core.targets import Target, predicted_target, target_scores


@dataclass
class PerturbationCurve:
    """One deletion (or insertion) curve per image.

    mode:      "deletion" or "insertion"
    fractions: (S,) share of the pixels changed after each step, from 0 to 1
    scores:    (N, S) probability (or logit) of the target class after each step
    """

    mode: str
    fractions: torch.Tensor
    scores: torch.Tensor

    @property
    def auc(self) -> torch.Tensor:
        """Area under each curve, (N,) (trapezoidal rule over ``fractions``)."""
        return auc(self.fractions, self.scores)

    @property
    def mean_auc(self) -> float:
        """Mean area under the curve over the images."""
        return self.auc.mean().item()

    def __repr__(self) -> str:
        return (f"PerturbationCurve({self.mode}: {self.scores.shape[0]} images x {self.scores.shape[1]} steps, "
                f"mean AUC {self.mean_auc:.3f})")


def auc(fractions: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Area under curves by the trapezoidal rule: sum_k (f_{k+1} - f_k) (s_k + s_{k+1}) / 2.
    fractions: (S,), scores: (N, S) -> (N,)."""
    widths = fractions[1:] - fractions[:-1]
    return ((scores[:, 1:] + scores[:, :-1]) / 2 * widths).sum(1)


def pixel_order(attr: Optional[torch.Tensor], size: Sequence[int], n: Optional[int] = None, reduce: str = "sum",
                seed: int = 0) -> torch.Tensor:
    """The pixels of each image by decreasing map value: (N, H * W) long, flat indices ``row * W + col``.

    attr: maps (N, C, h, w); channels are combined with ``reduce`` (:func:`nnlab.core.maps.reduce_channels`), layer maps
    are upsampled to ``size`` = (H, W) bilinearly. Pass ``attr.abs()`` to rank pixels by magnitude.
    Ties are broken in a random order (seeded), so ``attr=None`` (a constant map, all ties; give ``n``) is a
    random order: the baseline.
    """
    height, width = (check_size(s, "size") for s in size)
    if attr is None:
        if n is None:
            raise ValueError("attr=None (random order) needs the number of images n")
        n = check_size(n, "n")
        maps = torch.zeros(n, height * width)
    else:
        check_finite(attr, "attr")
        attr = attr.detach().cpu().float()
        if attr.dim() != 4:
            raise ValueError(f"attr must have shape (N, C, H, W) or (N, 1, h, w), got {tuple(attr.shape)}")
        maps = upsample(reduce_channels(attr, reduce), (height, width)).flatten(1)
    shuffle = torch.randperm(height * width, generator=torch.Generator().manual_seed(seed))
    ranks = maps[:, shuffle].argsort(dim=1, descending=True, stable=True)   # equal values keep the shuffled order
    return shuffle[ranks]


def perturbation_curve(model: nn.Module, x: torch.Tensor, attr: Optional[torch.Tensor], target: Target = None,
                       mode: str = "deletion", step: Optional[int] = None,
                       baseline: Union[float, torch.Tensor] = 0.0, reduce: str = "sum", score: str = "probability",
                       batch_size: int = 128, seed: int = 0, progress: bool = False) -> PerturbationCurve:
    """Deletion or insertion curves of the maps ``attr`` for the images ``x``.

    Petsiuk et al., "RISE", BMVC 2018, https://arxiv.org/abs/1806.07421.

    Args:
        model: a classifier, used as given (its mode is respected, nothing is changed on it).
        x: images (N, C, H, W); not modified.
        attr: maps (N, C', h, w) that rank the pixels (see :func:`pixel_order`), or None for a random order.
        target: as for ``attribute``; None: the class predicted for the clean image (kept for every step).
        mode: ``"deletion"`` (from x towards the baseline) or ``"insertion"`` (from the baseline towards x).
        step: pixels changed per step (default: the image width, as in the paper's code: 224 for 224x224).
        baseline: what replaces the pixels: a number (0 = black) or a tensor broadcastable to x (a blurred copy).
        score: ``"probability"`` (softmax, as in the paper) or ``"logit"``.
        batch_size: perturbed images per forward pass (about; whole steps of the N images). Moderate batches
            are fastest on a CPU (the activations stay in the cache).
    Returns:
        a :class:`PerturbationCurve`: ``scores`` (N, n_steps + 1), ``fractions`` (n_steps + 1,), ``auc`` (N,).
    """
    from nnlab.core.progress import progress_bar as tqdm  # vanishes when done in notebooks

    check_images(x)
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    if score not in ("probability", "logit"):
        raise ValueError(f"score must be 'probability' or 'logit', got {score!r}")
    n, channels, height, width = x.shape
    n_pixels = height * width
    step = width if step is None else check_size(step, "step")
    batch_size = check_size(batch_size, "batch_size")
    if isinstance(baseline, torch.Tensor):
        check_finite(baseline, "baseline")
    else:
        check_number(baseline, "baseline")
    if attr is not None:
        check_finite(attr, "attr")
    if attr is not None and len(attr) != n:
        raise ValueError(f"attr has {len(attr)} maps for {n} images")
    device = model_device(model, x.device)
    image = x.detach().to(device)
    fill = torch.as_tensor(baseline, dtype=image.dtype, device=device)
    try:
        fill = fill.expand_as(image)
    except RuntimeError:
        raise ValueError(f"baseline of shape {tuple(fill.shape)} does not broadcast to x {tuple(image.shape)}") from None
    start, finish = (image, fill) if mode == "deletion" else (fill, image)

    n_steps = (n_pixels + step - 1) // step
    changed = (torch.arange(n_steps + 1) * step).clamp(max=n_pixels)           # pixels changed after each step
    order = pixel_order(attr, (height, width), n, reduce, seed)                 # (N, H*W)
    when = torch.empty_like(order).scatter_(1, order, torch.arange(n_pixels).expand(n, -1))  # rank of each pixel

    scores = torch.empty(n, n_steps + 1)
    per_batch = max(1, batch_size // n)                                         # steps per forward pass
    with torch.no_grad(), buffers_kept(model):
        target = predicted_target(model, image, target)
        for first in tqdm(range(0, n_steps + 1, per_batch), desc=mode, disable=not progress):
            counts = changed[first:first + per_batch]                           # (s,)
            mask = (when[:, None, :] < counts[None, :, None]).to(device)        # (N, s, H*W): already changed?
            mask = mask.view(n, len(counts), 1, height, width)
            images = torch.where(mask, finish[:, None], start[:, None])          # (N, s, C, H, W)
            with running(model, x):
                output = model(images.reshape(-1, channels, height, width))
            if not isinstance(output, torch.Tensor) or output.dim() != 2:
                raise ValueError(f"deletion/insertion curves need a classifier returning scores (N, n_classes), "
                                 f"the model returned {type(output).__name__} "
                                 f"{tuple(output.shape) if isinstance(output, torch.Tensor) else ''}")
            if score == "probability":
                output = F.softmax(output, dim=1)
            repeated = target if callable(target) else target.repeat_interleave(len(counts))
            scores[:, first:first + len(counts)] = target_scores(output, repeated).view(n, len(counts)).cpu()
    return PerturbationCurve(mode, changed.float() / n_pixels, scores)


def deletion(model: nn.Module, x: torch.Tensor, attr: Optional[torch.Tensor], target: Target = None,
             **kwargs) -> PerturbationCurve:
    """Deletion curves (Petsiuk et al., 2018): the target probability as the most important pixels are replaced by
    the baseline. Lower AUC = better map. See :func:`perturbation_curve` for the arguments.

    Example::

        curve = deletion(model, x, GradCAM(model, "relu3").attribute(x))
    """
    return perturbation_curve(model, x, attr, target, mode="deletion", **kwargs)


def insertion(model: nn.Module, x: torch.Tensor, attr: Optional[torch.Tensor], target: Target = None,
              **kwargs) -> PerturbationCurve:
    """Insertion curves (Petsiuk et al., 2018): the target probability as the most important pixels are put back
    on the baseline. Higher AUC = better map. See :func:`perturbation_curve` for the arguments.

    Example::

        blurred = torchvision.transforms.functional.gaussian_blur(x, 11, 5.0)
        curve = insertion(model, x, attr, baseline=blurred)
    """
    return perturbation_curve(model, x, attr, target, mode="insertion", **kwargs)
