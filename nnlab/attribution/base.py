"""Input-space attribution: which pixels does the target score depend on?

Every method follows one API (Captum users will feel at home)::

    attr = nnlab.Saliency(model).attribute(x, target=None)      # x: (N, C, H, W) -> attr: (N, C, H, W)

| method           | attr                                                   | paper |
|------------------|--------------------------------------------------------|-------|
| `Saliency`       | d score / d x                                          | Simonyan et al., 2014 |
| `GradientXInput` | x * d score / d x                                      | Shrikumar et al., 2016 |
| `SmoothGrad`     | mean of d score / d x over noisy copies of x           | Smilkov et al., 2017 |
| `GuidedBackprop` | gradient with the "guided" ReLU backward rule          | Springenberg et al., 2015 |
| `Deconvnet`      | gradient with the "deconvnet" ReLU backward rule       | Zeiler & Fergus, 2014 |
| `Occlusion`      | drop of the score when a window of x is covered        | Zeiler & Fergus, 2014 |

The layer-map methods (`CAM`, `GradCAM`, `GuidedGradCAM`) live in :mod:`nnlab.cam`. To explain a neuron or a
channel inside the network, wrap the model in `LayerOutput(model, layer)` and pass a callable target.
"""
from __future__ import annotations

import contextlib
import numbers
import warnings
from typing import Callable, Iterator, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from nnlab.hooks import LayerSpec, capture, frozen, layer_name, relu_backward_rule

Target = Union[None, int, Sequence[int], torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


# --------------------------------------------------------------------------- shared helpers
def check_images(x: torch.Tensor) -> torch.Tensor:
    """Raise ``ValueError`` unless ``x`` is a floating-point tensor of shape (N, C, H, W)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        hint = " (add the batch dimension with x[None])" if x.dim() == 3 else ""
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor (images in [0, 1]), got {x.dtype}")
    return x


def target_classes(output: torch.Tensor, target: Target) -> torch.Tensor:
    """The class index of each image, (N,) long: ``target`` as given, or the predicted class when ``None``.

    ``output``: the model's class scores (N, n_classes).
    """
    if output.dim() != 2:
        raise ValueError(f"a class-index target needs a model output of shape (N, n_classes), got "
                         f"{tuple(output.shape)}; pass target=callable(output) -> (N,) scores instead")
    n, n_classes = output.shape
    if target is None:
        return output.detach().argmax(dim=1)
    if isinstance(target, numbers.Integral) or (isinstance(target, torch.Tensor) and target.dim() == 0):
        classes = torch.full((n,), int(target), dtype=torch.long, device=output.device)
    else:
        classes = torch.as_tensor(target, device=output.device).long().flatten()
        if classes.shape != (n,):
            raise ValueError(f"target must be an int or {n} ints (one per image), got {len(classes)} values")
    if classes.numel() and (classes.min() < 0 or classes.max() >= n_classes):
        raise ValueError(f"target classes must lie in [0, {n_classes - 1}], got {classes.tolist()}")
    return classes


def target_scores(output: torch.Tensor, target: Target) -> torch.Tensor:
    """The score that is explained, one number per image: (N,).

    ``target`` int / N ints: ``output[i, target[i]]`` (pre-softmax class scores); ``None``: the predicted class;
    callable: ``target(output)``, which must return (N,) scores (a regression output, a neuron, a channel).
    """
    n = output.shape[0]
    if callable(target):
        scores = target(output)
        if not isinstance(scores, torch.Tensor) or scores.shape != (n,):
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ValueError(f"target(output) must return one score per image, shape ({n},), got {shape}")
        return scores
    classes = target_classes(output, target)
    return output.gather(1, classes[:, None])[:, 0]


def fixed_target(output: torch.Tensor, target: Target) -> Target:
    """``target`` with ``None`` replaced by the predicted classes (to reuse over several passes)."""
    return target if callable(target) else target_classes(output, target)


def model_device(model: nn.Module, default: torch.device) -> torch.device:
    """The device of the model's first parameter or buffer (``default`` for a model without any)."""
    t = next(model.parameters(), None)
    if t is None:
        t = next(model.buffers(), None)
    return default if t is None else t.device


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


class LayerOutput(nn.Module):
    """``model`` seen up to ``layer``: its output is the layer's activation (N, C, h, w), so that any method
    explains a neuron or a channel with a callable target.

    Example::

        unit = Saliency(LayerOutput(model, "relu2")).attribute(x, target=lambda acts: acts[:, 5, 7, 7])
        channel = GuidedBackprop(LayerOutput(model, "relu2")).attribute(x, target=lambda acts: acts[:, 5].sum((1, 2)))
    """

    def __init__(self, model: nn.Module, layer: LayerSpec):
        super().__init__()
        self.model = model
        self.layer = layer_name(model, layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with capture(self.model, [self.layer], detach=False) as acts:
            self.model(x)      # (the layers after `layer` run too; their output is not used)
        return acts[self.layer]


# --------------------------------------------------------------------------- base class
class Attribution:
    """Base class of every attribution method: ``Method(model, ...).attribute(x, target)``.

    Args (shared by every method):
        model: any ``nn.Module`` mapping images (N, C, H, W) to outputs (N, n_classes), or to any output that
            a callable ``target`` reduces to (N,) scores. Used as given: its train/eval mode is respected
            (call ``model.eval()`` yourself for dropout/batch-norm in inference mode), nothing is changed on it.
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
        (N, 1, h, w) for the layer maps of :mod:`nnlab.cam`. Normalise and upsample with :mod:`nnlab.plot`.
    """

    #: ReLU backward rule used by :meth:`input_gradient`: ``None`` (the true gradient), ``"guided"`` or
    #: ``"deconvnet"`` (see :func:`nnlab.hooks.relu_backward_rule`).
    relu_rule: Optional[str] = None

    def __init__(self, model: nn.Module):
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model

    def attribute(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__})"

    # ---- helpers shared by the subclasses
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """A private copy of ``x`` on the model's device (the caller's tensor is never touched)."""
        check_images(x)
        return x.detach().to(model_device(self.model, x.device)).clone()

    def input_gradient(self, x: torch.Tensor, target: Target) -> Tuple[torch.Tensor, torch.Tensor]:
        """Gradient of the target score with respect to the input, with this method's ReLU rule.

        One forward pass (which also gives the predicted class when ``target`` is None) and one backward pass
        to the input only (parameters are frozen, so no weight gradient is computed).
        Returns ``(grads, output)``: grads (N, C, H, W) on the model's device, detached; output detached.
        """
        x = x.detach().requires_grad_(True)
        rule = relu_backward_rule(self.relu_rule) if self.relu_rule else contextlib.nullcontext()
        with torch.enable_grad(), frozen(self.model), buffers_kept(self.model), rule as mode:
            output = self.model(x)
            scores = target_scores(output, target)
            (grads,) = torch.autograd.grad(scores.sum(), x)
        if self.relu_rule and mode.calls == 0:
            warnings.warn(f"{type(self).__name__}: the model ran no ReLU, so the result is the plain gradient",
                          stacklevel=3)
        return grads.detach(), output.detach()


# --------------------------------------------------------------------------- gradient methods
class Saliency(Attribution):
    """Gradient of the target score with respect to the input pixels: attr = d S_c / d x, (N, C, H, W).

    Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks", 2014, https://arxiv.org/abs/1312.6034.
    Signed; the paper's map is ``attr.abs().amax(1)`` (see :func:`nnlab.plot.reduce_channels`).

    Example::

        attr = Saliency(model).attribute(x, target=3)      # (N, C, H, W)
    """

    def attribute(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        x_ = self._prepare(x)
        grads, _ = self.input_gradient(x_, target)
        return grads.to(x.device)


class GuidedBackprop(Saliency):
    """Guided backpropagation: the gradient, except that through every ReLU the backward signal passes only
    where the forward input was positive AND the incoming gradient is positive. attr: (N, C, H, W).

    Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for Simplicity: The All Convolutional Net", 2015,
    https://arxiv.org/abs/1412.6806. Differs from :class:`Saliency` only in ``relu_rule``; the rule reaches
    every ReLU: ``nn.ReLU`` modules (in-place, reused) and functional calls (``F.relu``, ``torch.relu``, ...).

    Example::

        attr = GuidedBackprop(model).attribute(x)           # predicted class
    """

    relu_rule = "guided"


class Deconvnet(Saliency):
    """Zeiler-Fergus deconvnet projection of the target score back to pixel space: the gradient, except that
    the ReLU backward rectifies the incoming signal only (max(g, 0)) and ignores the forward mask.
    attr: (N, C, H, W).

    Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", 2014,
    https://arxiv.org/abs/1311.2901. Transposed convolutions and max-pooling "switches" are exactly what the
    gradient does already, so only ``relu_rule`` differs from :class:`Saliency`.

    Example::

        attr = Deconvnet(model).attribute(x, target=[3, 8])
    """

    relu_rule = "deconvnet"


class GradientXInput(Attribution):
    """Input times gradient: attr = x * d S_c / d x, (N, C, H, W) (a first-order estimate of each pixel's
    contribution relative to a black image).

    Shrikumar, Greenside, Shcherbina & Kundaje, "Not Just a Black Box", 2016, https://arxiv.org/abs/1605.01713.

    Example::

        attr = GradientXInput(model).attribute(x, target=0)
    """

    def attribute(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        x_ = self._prepare(x)
        grads, _ = self.input_gradient(x_, target)
        return (x_ * grads).to(x.device)


class SmoothGrad(Attribution):
    """Mean gradient over noisy copies of the input: attr = 1/n sum_s d S_c / d x (x + eps_s), (N, C, H, W),
    eps_s ~ N(0, sigma^2), sigma = noise_level * (max(x_i) - min(x_i)) for each image i.

    Smilkov, Thorat, Kim, Viegas & Wattenberg, "SmoothGrad: removing noise by adding noise", 2017,
    https://arxiv.org/abs/1706.03825.

    Args:
        n_samples: number of noisy copies (the paper: 50).
        noise_level: sigma relative to each image's value range (the paper: 10-20 %).
        seed: seeds the noise. The same noise pattern eps_s is used for every image of the batch, so the
            result for an image does not depend on the other images in the batch.
        progress: show a progress bar over the samples.

    Example::

        attr = SmoothGrad(model, n_samples=25, noise_level=0.15).attribute(x)
    """

    def __init__(self, model: nn.Module, n_samples: int = 25, noise_level: float = 0.15, seed: int = 0,
                 progress: bool = False):
        super().__init__(model)
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        self.n_samples, self.noise_level, self.seed, self.progress = n_samples, noise_level, seed, progress

    def attribute(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        from tqdm.auto import tqdm

        x_ = self._prepare(x)
        if target is None:  # the prediction for the clean image, not for each noisy copy
            with torch.no_grad(), buffers_kept(self.model):
                target = fixed_target(self.model(x_), None)
        value_range = x_.flatten(1).amax(1) - x_.flatten(1).amin(1)
        sigma = (self.noise_level * value_range).view(-1, 1, 1, 1)
        generator = torch.Generator(device=x_.device).manual_seed(self.seed)
        total = torch.zeros_like(x_)
        for _ in tqdm(range(self.n_samples), desc="SmoothGrad", disable=not self.progress):
            eps = torch.randn((1, *x_.shape[1:]), generator=generator, device=x_.device, dtype=x_.dtype)
            grads, _ = self.input_gradient(x_ + sigma * eps, target)
            total += grads
        return (total / self.n_samples).to(x.device)


# --------------------------------------------------------------------------- occlusion
def _pair(v, name: str) -> Tuple[int, int]:
    pair = (v, v) if isinstance(v, numbers.Integral) else tuple(v)
    if len(pair) != 2 or any(int(p) < 1 for p in pair):
        raise ValueError(f"{name} must be a positive int or a pair (height, width), got {v!r}")
    return int(pair[0]), int(pair[1])


class Occlusion(Attribution):
    """Drop of the target score when a window of the image is covered: for every window position p,
    drop_p = S_c(x) - S_c(x with the window at p replaced by the baseline).

    Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", 2014, section 4.2,
    https://arxiv.org/abs/1311.2901.

    :meth:`drops` returns the drop for each window position, (N, n_rows, n_cols), the definition itself.
    :meth:`attribute` spreads it back to input space, (N, C, H, W): each pixel gets the mean drop of the windows
    that cover it (0 where no window does), the same for every channel (the window covers all channels),
    as Captum's ``Occlusion`` does. Positive = covering it lowers the score = evidence for the target.

    Args:
        window: window size, int or (height, width).
        stride: step between window positions, int or (rows, cols); default: the window size (no overlap).
            Positions are ``0, stride, 2 stride, ...`` while the window fits in the image.
        baseline: what covers the image: a number (0 = black; 0.5 = grey), a tensor broadcastable to
            (N, C, H, W) (a per-channel mean (C, 1, 1), a blurred copy of x, ...).
        batch_size: occluded images per forward pass.
        progress: show a progress bar over the window positions.

    Example::

        attr = Occlusion(model, window=8, stride=4, baseline=0.5).attribute(x, target=3)
    """

    def __init__(self, model: nn.Module, window=8, stride=None, baseline: Union[float, torch.Tensor] = 0.0,
                 batch_size: int = 64, progress: bool = False):
        super().__init__(model)
        self.window = _pair(window, "window")
        self.stride = _pair(stride if stride is not None else window, "stride")
        self.baseline, self.batch_size, self.progress = baseline, batch_size, progress

    def positions(self, height: int, width: int) -> Tuple[list, list]:
        """Top rows and left columns of the window positions for an image of size (height, width)."""
        (wh, ww), (sh, sw) = self.window, self.stride
        if wh > height or ww > width:
            raise ValueError(f"window {self.window} is larger than the image ({height}, {width})")
        return list(range(0, height - wh + 1, sh)), list(range(0, width - ww + 1, sw))

    def drops(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        """Score drop for every window position: (N, n_rows, n_cols), detached, on ``x``'s device."""
        from tqdm.auto import tqdm

        x_ = self._prepare(x)
        n, _, height, width = x_.shape
        rows, cols = self.positions(height, width)
        baseline = torch.as_tensor(self.baseline, dtype=x_.dtype, device=x_.device).expand_as(x_)
        windows = [(r, c) for r in rows for c in cols]
        per_batch = max(1, self.batch_size // n)
        drops = torch.empty(n, len(windows), dtype=x_.dtype, device=x_.device)
        with torch.no_grad(), buffers_kept(self.model):
            output = self.model(x_)
            target = fixed_target(output, target)
            clean = target_scores(output, target)
            for start in tqdm(range(0, len(windows), per_batch), desc="Occlusion", disable=not self.progress):
                chunk = windows[start:start + per_batch]
                covered = []
                for r, c in chunk:
                    xo = x_.clone()
                    window = (slice(None), slice(None), slice(r, r + self.window[0]), slice(c, c + self.window[1]))
                    xo[window] = baseline[window]
                    covered.append(xo)
                # one forward pass for len(chunk) positions x n images; the targets repeat for each position
                chunk_target = target if callable(target) else target.repeat(len(chunk))
                scores = target_scores(self.model(torch.cat(covered)), chunk_target).view(len(chunk), n)
                drops[:, start:start + len(chunk)] = (clean[None, :] - scores).T
        return drops.view(n, len(rows), len(cols)).to(x.device)

    def attribute(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        check_images(x)
        drops = self.drops(x, target)
        n, c, height, width = x.shape
        rows, cols = self.positions(height, width)
        total = torch.zeros(n, 1, height, width, dtype=drops.dtype, device=drops.device)
        count = torch.zeros(1, 1, height, width, dtype=drops.dtype, device=drops.device)
        for i, r in enumerate(rows):
            for j, col in enumerate(cols):
                window = (slice(None), slice(None), slice(r, r + self.window[0]), slice(col, col + self.window[1]))
                total[window] += drops[:, i, j].view(n, 1, 1, 1)
                count[window] += 1
        return (total / count.clamp(min=1)).expand(n, c, height, width).clone()
