"""Image parameterisations for activation maximisation: pixels, or a decorrelated Fourier basis (Olah et al., 2017).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch


# --------------------------------------------------------------------------- image parameterisations
class PixelImage:
    """The image is its own parameter: pixels ``(N, C, H, W)``.

    Initialised to ``init`` (a tensor ``(N, C, H, W)`` in ``[0, 1]``, copied) or to ``mean + std * noise``: by
    default a dark image with a little noise, like the MNIST background (a grey start lets ink-hungry classes
    such as 8 win over the target). Keep the pixels in ``[0, 1]`` with the :func:`clamp` transform (on by
    default in :func:`maximize`).
    """

    def __init__(self, shape: Sequence[int], generator: Optional[torch.Generator] = None,
                 mean: float = 0.0, std: float = 0.1, init: Optional[torch.Tensor] = None):
        if init is not None:
            if tuple(init.shape) != tuple(shape):
                raise ValueError(f"init must have shape {tuple(shape)}, got {tuple(init.shape)}")
            self.pixels = init.detach().clone().float()
        else:
            self.pixels = (mean + std * torch.randn(tuple(shape), generator=generator)).clamp(0, 1)
        self.pixels.requires_grad_(True)

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
                 std: float = 0.01, decay_power: float = 1.0, decorrelate: bool = True):
        n, c, h, w = shape
        self.shape = (n, c, h, w)
        fy = torch.fft.fftfreq(h)[:, None]
        fx = torch.fft.rfftfreq(w)[None, :]
        frequency = torch.sqrt(fx ** 2 + fy ** 2)
        self.scale = 1.0 / frequency.clamp(min=1.0 / max(h, w)) ** decay_power  # (h, w // 2 + 1)
        self.spectrum = (std * torch.randn(n, c, h, w // 2 + 1, 2, generator=generator)).requires_grad_(True)
        self.decorrelate = decorrelate and c == 3

    def parameters(self) -> List[torch.Tensor]:
        return [self.spectrum]

    def __call__(self) -> torch.Tensor:
        """The image ``(N, C, H, W)`` in ``(0, 1)``."""
        n, c, h, w = self.shape
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        x = torch.fft.irfft2(spectrum, s=(h, w), norm="ortho") / 4.0  # /4: Lucid's constant, keeps sigmoid unsaturated
        if self.decorrelate:
            mix = _COLOR_CORRELATION_SQRT / _COLOR_CORRELATION_SQRT.norm(dim=0).max()
            x = torch.einsum("ij,njhw->nihw", mix, x)
        return torch.sigmoid(x)
