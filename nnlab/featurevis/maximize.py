"""Activation maximisation: find the input image that a unit, a channel or a class responds to most.

Gradient *ascent* on the image ``x`` (the model's weights are fixed)::

    x* = argmax_x  objective(x)        e.g.  logit_7(x) - tv_weight * TV(x) - lp_weight * ||x||_6

The pieces, each small and replaceable:

* an **objective** (:mod:`nnlab.featurevis.objectives`): what to maximise, regularisers included;
* an **image parameterisation**: :class:`PixelImage` (the pixels themselves, grey or RGB) or
  :class:`FourierImage` (a decorrelated Fourier spectrum, for ImageNet models);
* **transforms**: :func:`jitter` (random shifts, applied before each forward pass),
  :func:`blur` (every few steps) and :func:`clamp` (to the valid pixel range), applied to the pixels after a step;
* :func:`maximize` runs the optimisation and records every named term of the objective at every step;
* :func:`visualize_activation` is the keras-vis style shortcut (``filter_indices``, ``tv_weight``, ``lp_norm_weight``).

Example::

    from nnlab.featurevis.objectives import logit, total_variation
    model = nnlab.models.pretrained("mnist_cnn")
    objective = logit(range(10)) - 30 * total_variation()      # image i maximises class i
    images, history = maximize(model, objective, shape=(10, 1, 28, 28), steps=256)
    history["logit([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])"][:, 3]    # the class-3 score of image 3 at every step

References: Erhan et al. (2009); Simonyan, Vedaldi & Zisserman (2014), https://arxiv.org/abs/1312.6034;
Yosinski et al. (2015), "Understanding neural networks through deep visualization",
https://arxiv.org/abs/1506.06579 (blur, clipping); Olah, Mordvintsev & Schubert (2017), "Feature Visualization",
https://distill.pub/2017/feature-visualization/ (jitter, decorrelated Fourier parameterisation);
Mordvintsev et al. (2018), "Differentiable Image Parameterizations",
https://distill.pub/2018/differentiable-parameterizations/.
"""
from __future__ import annotations

import numbers
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from nnlab.core.device import model_device
from nnlab.core.hooks import capture, eval_mode, frozen, layer_names
from nnlab.featurevis.objectives import (
    INPUT,
    LOGITS,
    Objective,
    channel,
    logit,
    lp_norm,
    total_variation,
)
from nnlab.featurevis.param import FourierImage, PixelImage
from nnlab.featurevis.transforms import Transform, blur, clamp, decay, jitter
from nnlab.models.imagenet import IMAGENET_MEAN, IMAGENET_STD


# --------------------------------------------------------------------------- the renderer
class Rendering(NamedTuple):
    """What :func:`maximize` returns.

    ``images``: ``(N, C, H, W)`` in ``[0, 1]`` (detached). ``history``: ``{term name: (steps, N)}``, the value of
    every named term of the objective (unweighted) before each step, plus ``"objective"`` (the weighted sum).
    """
    images: torch.Tensor
    history: Dict[str, torch.Tensor]


def _as_normalize(normalize, device: torch.device) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """``(mean, std)`` as ``(1, C, 1, 1)`` tensors on ``device``, or None."""
    if normalize is None:
        return None
    if isinstance(normalize, str):
        if normalize != "imagenet":
            raise ValueError(f"normalize must be None, 'imagenet' or (mean, std); got {normalize!r}")
        normalize = (IMAGENET_MEAN, IMAGENET_STD)
    mean, std = normalize
    return (torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1),
            torch.as_tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1))


def _as_shape(shape: Sequence[int]) -> Tuple[int, int, int, int]:
    """``(N, C, H, W)`` from ``(N, C, H, W)`` or ``(C, H, W)``; else ``ValueError``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4:
        raise ValueError(f"shape must be (N, C, H, W) or (C, H, W), got {shape}")
    return shape


def _make_image(param, shape, generator, init, device):
    """The image parameterisation: a :class:`PixelImage` (optionally started from ``init``), a
    :class:`FourierImage`, or the caller's object."""
    if isinstance(init, torch.Tensor) and init.dim() == 3:
        init = init[None]
    if init is not None and param != "pixels":
        raise ValueError("init= starts a pixel image; use param='pixels'")
    if param == "pixels":
        return PixelImage(shape, generator, init=init, device=device)
    if param == "fourier":
        return FourierImage(shape, generator, device=device)
    if isinstance(param, str):
        raise ValueError(f"param must be 'pixels', 'fourier' or a parameterisation object, got {param!r}")
    return param


def _split_transforms(transforms, image) -> Tuple[List[Transform], List[Transform]]:
    """The transforms before each forward pass and those after each step (default: ``[clamp(0, 1)]`` for pixels)."""
    if transforms is None:
        transforms = [clamp(0.0, 1.0)] if isinstance(image, PixelImage) else []
    forward = [t for t in transforms if t.when == "forward"]
    after_step = [t for t in transforms if t.when == "after_step"]
    if after_step and not isinstance(image, PixelImage):
        raise ValueError(f"{after_step} act on pixels; use param='pixels' (a Fourier image is already in (0, 1))")
    return forward, after_step


def _layers_read(model: nn.Module, objective: Objective) -> List[str]:
    """The model layers the objective reads (hooked during the run); ``ValueError`` naming the candidates."""
    layers = [name for name in objective.layers if name not in (INPUT, LOGITS)]
    modules = dict(model.named_modules())
    for name in layers:
        if name not in modules:
            raise ValueError(f"objective reads layer {name!r}, which the model does not have; "
                             f"candidates: {', '.join(layer_names(model))}")
    return layers


def maximize(model: nn.Module, objective: Objective, shape: Sequence[int], steps: int = 256, lr: float = 0.05,
             seed: int = 0, param: Union[str, PixelImage, FourierImage] = "pixels",
             transforms: Optional[Sequence[Transform]] = None, normalize=None,
             init: Optional[Union[str, torch.Tensor]] = None, threads: Optional[int] = None,
             progress: bool = True) -> Rendering:
    """Maximise ``objective`` by gradient ascent on the image (Adam on the image parameters).

    model: maps images ``(N, C, H, W)`` to logits ``(N, K)``; used in eval mode, its weights frozen, both restored.
        The image is built on the model's device (:func:`nnlab.core.device.model_device`).
    objective: an :class:`nnlab.featurevis.objectives.Objective` (one value per image; the renderer minimises ``-sum``).
        Negative optimisation, what *minimises* a class, is ``-logit(7)``.
    shape: ``(N, C, H, W)``, or ``(C, H, W)`` for one image. Batched: one target per image (``logit(range(N))``),
        or address image ``i`` with ``batch=i``.
    param: ``"pixels"`` (:class:`PixelImage`), ``"fourier"`` (:class:`FourierImage`) or a parameterisation object.
    transforms: list of :func:`jitter`, :func:`blur`, :func:`decay`, :func:`clamp`; default ``[clamp(0, 1)]`` for
        pixels, none for Fourier images (already in (0, 1)).
    normalize: ``None`` (the model takes ``[0, 1]`` images), ``"imagenet"`` or ``(mean, std)``: the image stays in
        ``[0, 1]`` and is normalised inside, just before the model.
    init: start the pixel image from ``"dark"`` (the default), ``"grey"``, ``"mean"`` (the mean MNIST digit) or
        from images ``(N, C, H, W)`` in ``[0, 1]`` (copied; e.g. a real digit).
    seed: seeds the initial image and the jitter (a private CPU generator; the global RNG is untouched).
    threads: CPU threads used inside (torch's setting is restored afterwards). ``None``: one thread for images up to
        64x64 (tiny convolutions are fastest on one thread, several times faster on a busy machine), else torch's.

    Returns a :class:`Rendering` ``(images, history)``, on the model's device.

    Example::

        images, history = maximize(model, logit(7) - 30 * total_variation(), shape=(1, 1, 28, 28))
    """
    if not isinstance(objective, Objective):
        raise ValueError(f"objective must be an nnlab.featurevis.objectives.Objective, got {type(objective).__name__}")
    shape = _as_shape(shape)
    device = model_device(model, torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    image = _make_image(param, shape, generator, init, device)
    forward_transforms, step_transforms = _split_transforms(transforms, image)
    norm = _as_normalize(normalize, device)
    layers = _layers_read(model, objective)

    saved_threads = torch.get_num_threads()
    if threads is None:
        threads = 1 if shape[2] * shape[3] <= 64 * 64 else saved_threads
    torch.set_num_threads(threads)
    try:
        return _optimise(model, objective, image, steps, lr, generator, forward_transforms, step_transforms, norm,
                         layers, progress)
    finally:
        torch.set_num_threads(saved_threads)


def _forward(model, image, acts, step, generator, forward_transforms, norm) -> None:
    """One forward pass: the image, its transforms and normalisation, the model; fills ``acts``."""
    x = image()
    x_in = x
    for t in forward_transforms:
        x_in = t(x_in, step, generator)
    if norm is not None:
        x_in = (x_in - norm[0]) / norm[1]
    acts[LOGITS] = model(x_in)
    acts[INPUT] = x


def _after_step(image, step, generator, step_transforms) -> None:
    """The after-step transforms (blur, decay, clamp), in place on the pixels."""
    if step_transforms:
        with torch.no_grad():
            pixels = image.pixels
            for t in step_transforms:
                pixels.copy_(t(pixels, step, generator))


def _optimise(model, objective, image, steps, lr, generator, forward_transforms, step_transforms, norm, layers,
              progress) -> Rendering:
    """The loop of :func:`maximize`: forward, record the terms, ascend, apply the after-step transforms."""
    optimizer = torch.optim.Adam(image.parameters(), lr=lr)
    records: Dict[str, List[torch.Tensor]] = {name: [] for name in objective.terms}
    records["objective"] = []
    bar = tqdm(range(steps), disable=not progress, desc="maximize", leave=False)
    with eval_mode(model), frozen(model), capture(model, layers, detach=False) as acts:
        for step in bar:
            _forward(model, image, acts, step, generator, forward_transforms, norm)
            values = objective.term_values(acts)
            total = objective.combine(values)
            optimizer.zero_grad()
            (-total.sum()).backward()  # the only place where the sign flips: ascent on the objective
            optimizer.step()
            _after_step(image, step, generator, step_transforms)
            for name, value in values.items():
                records[name].append(value.detach())
            records["objective"].append(total.detach())
            if progress and (step % 16 == 0 or step == steps - 1):
                bar.set_postfix(objective=f"{total.mean().item():.3g}", refresh=False)
    with torch.no_grad():
        images = image().detach().clone()
    history = {name: torch.stack(values) if values else torch.empty(0, images.shape[0], device=images.device)
               for name, values in records.items()}
    return Rendering(images, history)


# --------------------------------------------------------------------------- keras-vis style shortcut
def _is_torchvision(model: nn.Module) -> bool:
    return type(model).__module__.startswith("torchvision.models")


def _unit(layer: Optional[str], feature, batch=None) -> Objective:
    """The class score for ``layer`` None / "logits", else the channel (or fully connected unit) of ``layer``."""
    return logit(feature, batch=batch) if layer in (None, LOGITS) else channel(layer, feature, batch=batch)


def _default_shape(model: nn.Module) -> Tuple[int, int, int]:
    """The ``(C, H, W)`` of one input image for the lab models and torchvision models; else ``ValueError``."""
    from nnlab import models

    if getattr(model, "in_shape", None) is not None:
        return tuple(model.in_shape)
    if isinstance(model, models.ClutteredCNN):
        return (1, 64, 64)
    if isinstance(model, models.MnistCNN):
        return (model.conv1.in_channels, 28, 28)
    if isinstance(model, models.DenseCNN):
        return (1, 28, 28)
    if _is_torchvision(model):
        return (3, 224, 224)
    raise ValueError(f"pass shape=(C, H, W): the input shape of a {type(model).__name__} is not known")


# The priors of :func:`visualize_activation` for the lab models, chosen by recognisability
# (bench/bench_featurevis.py, bench/results/featurevis.md); other models get the first row's keras-vis values.
DEFAULT_PRIORS = {
    "other": dict(tv_weight=100.0, lp_norm_weight=0.0, p=6.0, jitter_pixels=0, blur_sigma=0.0, decay_rate=0.0,
                  seed_input=None),
    "MnistCNN": dict(tv_weight=100.0, lp_norm_weight=0.0, p=6.0, jitter_pixels=0, blur_sigma=0.0, decay_rate=0.0,
                     seed_input=None),
    # TV 100 + L1 100 (sparse ink, as in a real digit) from the mean digit: 10, 9, 9 of 10 recognised (seeds 0-2)
    "DenseCNN": dict(tv_weight=100.0, lp_norm_weight=100.0, p=1.0, jitter_pixels=0, blur_sigma=0.0, decay_rate=0.0,
                     seed_input="mean"),
}


def default_priors(model: nn.Module) -> dict:
    """The measured default priors of :func:`visualize_activation` for ``model`` (a copy of a ``DEFAULT_PRIORS`` row)."""
    return dict(DEFAULT_PRIORS.get(type(model).__name__, DEFAULT_PRIORS["other"]))


_AUTO = object()  # "the model's measured default" (see DEFAULT_PRIORS)


def visualize_activation(model: nn.Module, layer: Optional[str], filter_indices, tv_weight=_AUTO,
                         lp_norm_weight=_AUTO, p=_AUTO, act_max_weight: float = 1.0,
                         shape: Optional[Sequence[int]] = None, steps: int = 256, lr: float = 0.05, seed: int = 0,
                         param: str = "auto", jitter_pixels=_AUTO, blur_sigma=_AUTO,
                         blur_every: int = 4, decay_rate=_AUTO, normalize="auto", seed_input=_AUTO,
                         negative: bool = False, progress: bool = True) -> Rendering:
    """Maximise units of ``layer`` with total-variation and Lp regularisers, in keras-vis's words
    (``vis.visualization.visualize_activation``)::

        objective = act_max_weight * sum(channel(layer, i) for i in group)
                    - tv_weight * total_variation() - lp_norm_weight * lp_norm(p)

    layer: a layer name (``"conv2"``, ``"fc"``); ``None`` or ``"logits"`` for the class scores (model output).
    tv_weight, lp_norm_weight, p: the regularisers' weights and the Lp norm's ``p`` (``p=1``: an L1 penalty, sparse
        ink). The total variation is a mean over pixels: for the MNIST
        CNN's class scores (logits of 10 to 80) 30 is mild, 100 smooth, 1000 too strong; a channel of
        ``conv2`` (values around 1) needs about 1. Scale the weight with the objective.
    filter_indices: an int (one image), a list of ints (one image maximising their *sum*, like keras-vis), or a
        list of lists (one image per group, in one batched run): ``[[1, 7], [0, 1]]`` gives 2 images.
    shape: ``(C, H, W)`` of one image; known for the lab models ((1, 28, 28) for the MNIST CNNs, (1, 64, 64) for
        the cluttered-MNIST CNN) and torchvision models (3, 224, 224).
    param, normalize: ``"auto"`` = ``"fourier"`` and ``"imagenet"`` for torchvision models, else ``"pixels"`` and
        ``None`` (see :func:`maximize`).
    jitter_pixels, blur_sigma/blur_every, decay_rate: the :func:`jitter`, :func:`blur` and :func:`decay` transforms
        (0 = off).
    seed_input: the start, ``"dark"``, ``"grey"``, ``"mean"`` or images ``(N, C, H, W)`` / ``(C, H, W)``
        (keras-vis's name; the ``init`` of :func:`maximize`).
    negative: minimise the units instead (what the class is *not*; ``act_max_weight`` is negated).
    Unset ``tv_weight``, ``lp_norm_weight``, ``p``, ``jitter_pixels``, ``blur_sigma``, ``decay_rate``, ``seed_input``
    take the model's measured defaults (:data:`DEFAULT_PRIORS`, chosen by :func:`nnlab.featurevis.recognisability`
    on class scores; for a hidden ``layer`` the unset Lp weight is 0).

    Returns a :class:`Rendering` with one image per group.

    Example::

        images, history = visualize_activation(model, "fc", [1, 7], tv_weight=100)   # classes 1 and 7 in one image
    """
    priors = default_priors(model)
    if layer not in (None, LOGITS):       # the L1 default is measured on class scores (logits of 10 to 80)
        priors.update(lp_norm_weight=0.0, p=6.0)
    given = dict(tv_weight=tv_weight, lp_norm_weight=lp_norm_weight, p=p, jitter_pixels=jitter_pixels,
                 blur_sigma=blur_sigma, decay_rate=decay_rate, seed_input=seed_input)
    priors.update({k: v for k, v in given.items() if v is not _AUTO})
    tv_weight, lp_norm_weight, p, jitter_pixels, blur_sigma, decay_rate, seed_input = (
        priors[k] for k in ("tv_weight", "lp_norm_weight", "p", "jitter_pixels", "blur_sigma", "decay_rate",
                            "seed_input"))
    if negative:
        act_max_weight = -act_max_weight
    if isinstance(filter_indices, numbers.Integral):
        groups = [[filter_indices]]
    else:
        filter_indices = list(filter_indices)
        if not filter_indices:
            raise ValueError("filter_indices is empty; pass an int, a list of ints or a list of lists")
        if all(isinstance(i, numbers.Integral) for i in filter_indices):
            groups = [filter_indices]
        else:
            groups = [[g] if isinstance(g, numbers.Integral) else list(g) for g in filter_indices]
    shape = tuple(shape) if shape is not None else _default_shape(model)
    if normalize == "auto":
        normalize = "imagenet" if _is_torchvision(model) else None
    if param == "auto":
        param = "fourier" if _is_torchvision(model) else "pixels"
    if len(shape) != 3:
        raise ValueError(f"shape must be (C, H, W) of one image, got {shape}")
    if len(groups) == 1:          # one image: the sum of the units
        units = sum(_unit(layer, i) for i in groups[0])
    elif all(len(g) == 1 for g in groups):  # one unit per image: a list of targets, image b gets groups[b]
        units = _unit(layer, [g[0] for g in groups])
    else:                         # image b maximises the sum of the units in groups[b]
        units = sum(_unit(layer, i, batch=b) for b, group in enumerate(groups) for i in group)
    objective = act_max_weight * units
    objective = objective - tv_weight * total_variation() - lp_norm_weight * lp_norm(p)
    transforms: List[Transform] = [clamp(0.0, 1.0)] if param == "pixels" else []
    if jitter_pixels:
        transforms.insert(0, jitter(jitter_pixels))
    if blur_sigma and param == "pixels":
        transforms.insert(0, blur(blur_sigma, blur_every))
    if decay_rate and param == "pixels":
        transforms.insert(0, decay(decay_rate))
    return maximize(model, objective, (len(groups),) + shape, steps=steps, lr=lr, seed=seed, param=param,
                    transforms=transforms, normalize=normalize, init=seed_input, progress=progress)


