"""Image parameterisations for activation maximisation: pixels, or a decorrelated Fourier basis (Olah et al., 2017).
"""
from __future__ import annotations

import functools
from typing import List, Optional, Sequence, Union

import torch

STARTS = ("dark", "grey", "mean")  # the named starting images of :func:`start_image`


@functools.lru_cache(maxsize=4)
def mean_digit(size: int = 28) -> torch.Tensor:
    """The mean MNIST training digit ``(1, 1, size, size)`` in ``[0, 1]`` (a blurry blob: a neutral start)."""
    from nnlab.data.datasets import mnist

    images = mnist("train").images.mean(dim=0, keepdim=True)
    if size != images.shape[-1]:
        images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images


def start_image(start: Union[str, torch.Tensor], shape: Sequence[int], generator: Optional[torch.Generator] = None,
                std: float = 0.1) -> torch.Tensor:
    """The first image ``(N, C, H, W)`` of a pixel optimisation, on the CPU.

    start: ``"dark"`` (black plus a little noise, like the MNIST background), ``"grey"`` (0.5 plus noise),
        ``"mean"`` (the mean MNIST digit plus noise: a start from the prior "a digit is in the middle"),
        or images ``(N, C, H, W)`` in ``[0, 1]`` (copied).
    """
    shape = tuple(shape)
    if isinstance(start, torch.Tensor):
        if tuple(start.shape) != shape:
            raise ValueError(f"init must have shape {shape}, got {tuple(start.shape)}")
        return start.detach().float().cpu().clone()
    if not isinstance(start, str) or start not in STARTS:
        raise ValueError(f"init must be one of {STARTS} or a tensor of shape {shape}, got {start!r}")
    noise = std * torch.randn(shape, generator=generator)
    if start == "dark":
        base = torch.zeros(())
    elif start == "grey":
        base = torch.full((), 0.5)
    else:
        if shape[1] != 1 or shape[2] != shape[3]:
            raise ValueError(f"init='mean' is the mean MNIST digit: needs square grey images, got shape {shape}")
        base = mean_digit(shape[-1])
    return (base + noise).clamp(0, 1)


# --------------------------------------------------------------------------- image parameterisations
class PixelImage:
    """The image is its own parameter: pixels ``(N, C, H, W)``.

    Initialised to ``init`` (a tensor ``(N, C, H, W)`` in ``[0, 1]``, copied, or a name of :func:`start_image`:
    ``"dark"``, ``"grey"``, ``"mean"``) or to ``mean + std * noise``: by
    default a dark image with a little noise, like the MNIST background (a grey start lets ink-hungry classes
    such as 8 win over the target). Keep the pixels in ``[0, 1]`` with the :func:`clamp` transform (on by
    default in :func:`maximize`).
    """

    def __init__(self, shape: Sequence[int], generator: Optional[torch.Generator] = None,
                 mean: float = 0.0, std: float = 0.1, init: Optional[Union[str, torch.Tensor]] = None,
                 device: Optional[torch.device] = None):
        if init is not None:
            pixels = start_image(init, shape, generator, std)
        else:
            pixels = (mean + std * torch.randn(tuple(shape), generator=generator)).clamp(0, 1)
        self.pixels = pixels.to(device or "cpu").requires_grad_(True)  # drawn on the CPU: the same on every device

    def parameters(self) -> List[torch.Tensor]:
        return [self.pixels]

    def __call__(self) -> torch.Tensor:
        """The image ``(N, C, H, W)``."""
        return self.pixels


# Square root of the colour correlation of ImageNet pixels (rows: R, G, B), as in Lucid / Olah et al. (2017):
# sampling in this decorrelated colour space and mixing back gives natural colour statistics.
_COLOR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                        [0.27, 0.00, -0.05],
                                        [0.27, -0.09, 0.03]])


class FourierImage:
    """Image parameterised by its 2-D Fourier spectrum, scaled by ``1 / frequency^decay_power`` (Olah et al., 2017).

    Gradient steps on the spectrum favour low frequencies, which removes the high-frequency noise that pixel
    optimisation produces on ImageNet models. For RGB images the colours are decorrelated (ImageNet colour
    statistics); a sigmoid maps the result into ``(0, 1)``. Shape ``(N, C, H, W)``, ``C`` = 1 or 3.
    """

    def __init__(self, shape: Sequence[int], generator: Optional[torch.Generator] = None,
                 std: float = 0.01, decay_power: float = 1.0, decorrelate: bool = True,
                 device: Optional[torch.device] = None):
        n, c, h, w = shape
        device = torch.device(device or "cpu")
        self.shape = (n, c, h, w)
        fy = torch.fft.fftfreq(h)[:, None]
        fx = torch.fft.rfftfreq(w)[None, :]
        frequency = torch.sqrt(fx ** 2 + fy ** 2)
        self.scale = (1.0 / frequency.clamp(min=1.0 / max(h, w)) ** decay_power).to(device)  # (h, w // 2 + 1)
        spectrum = std * torch.randn(n, c, h, w // 2 + 1, 2, generator=generator)  # CPU draw: same on every device
        self.spectrum = spectrum.to(device).requires_grad_(True)
        self.decorrelate = decorrelate and c == 3

    def parameters(self) -> List[torch.Tensor]:
        return [self.spectrum]

    def __call__(self) -> torch.Tensor:
        """The image ``(N, C, H, W)`` in ``(0, 1)``."""
        n, c, h, w = self.shape
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        x = torch.fft.irfft2(spectrum, s=(h, w), norm="ortho") / 4.0  # /4: Lucid's constant, keeps sigmoid unsaturated
        if self.decorrelate:
            mix = (_COLOR_CORRELATION_SQRT / _COLOR_CORRELATION_SQRT.norm(dim=0).max()).to(x.device)
            x = torch.einsum("ij,njhw->nihw", mix, x)
        return torch.sigmoid(x)
