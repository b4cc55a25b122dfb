"""SmoothGrad: the gradient averaged over noisy copies of the input (Smilkov et al., 2017).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from nnlab.attribution.base import Attribution
from nnlab.core.checks import check_number, check_size
from nnlab.core.targets import Output, Target, predicted_target


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
        output: which part of a tuple / dict output is explained (see :class:`Attribution`).

    Example::

        attr = SmoothGrad(model, n_samples=25, noise_level=0.15).attribute(x)
    """

    def __init__(self, model: nn.Module, n_samples: int = 25, noise_level: float = 0.15, seed: int = 0,
                 progress: bool = False, output: Output = None):
        super().__init__(model, output)
        n_samples = check_size(n_samples, "n_samples")
        noise_level = check_number(noise_level, "noise_level", minimum=0)
        self.n_samples, self.noise_level, self.seed, self.progress = n_samples, noise_level, seed, progress

    def attribute(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        from nnlab.core.progress import progress_bar as tqdm  # vanishes when done in notebooks

        x_ = self._prepare(x)
        target = predicted_target(self.model, x_, target, self.output)  # for the clean image, not for each noisy copy
        value_range = x_.flatten(1).amax(1) - x_.flatten(1).amin(1)
        sigma = (self.noise_level * value_range).view(-1, 1, 1, 1)
        generator = torch.Generator(device=x_.device).manual_seed(self.seed)
        total = torch.zeros_like(x_)
        for _ in tqdm(range(self.n_samples), desc="SmoothGrad", disable=not self.progress):
            eps = torch.randn((1, *x_.shape[1:]), generator=generator, device=x_.device, dtype=x_.dtype)
            grads, _ = self.input_gradient(x_ + sigma * eps, target)
            total += grads
        return (total / self.n_samples).to(x.device)
