"""Occlusion: how much the target score drops when a window of the input is covered (Zeiler & Fergus, 2014).
"""
from __future__ import annotations

import numbers
from typing import Tuple, Union

import torch
import torch.nn as nn

from nnlab.attribution.base import Attribution
from nnlab.core.checks import check_finite, check_images, check_number, check_size
from nnlab.core.hooks import buffers_kept
from nnlab.core.targets import Output, Target, fixed_target, target_scores


# --------------------------------------------------------------------------- occlusion
def _pair(v, name: str) -> Tuple[int, int]:
    """A positive int or a pair of them -> (rows, cols); bool, floats, strings and zero raise."""
    if isinstance(v, (numbers.Integral, torch.Tensor)) and not isinstance(v, bool):
        side = check_size(v, name)
        return side, side
    if not isinstance(v, (tuple, list)) or len(v) != 2:
        raise TypeError(f"{name} must be a positive int or a pair (height, width), got {type(v).__name__} {v!r}")
    return check_size(v[0], f"{name}[0]"), check_size(v[1], f"{name}[1]")


class Occlusion(Attribution):
    """Drop of the target score when a window of the image is covered: for every window position p,
    drop_p = S_c(x) - S_c(x with the window at p replaced by the baseline).

    Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", 2014, section 4.2,
    https://arxiv.org/abs/1311.2901.

    :meth:`drops` returns the drop for each window position, (N, n_rows, n_cols), the definition itself.
    :meth:`attribute` spreads it back to input space (:meth:`spread`), (N, C, H, W): each pixel gets the mean
    drop of the windows that cover it (0 where no window does), the same for every channel (the window covers
    all channels), as Captum's ``Occlusion`` does. Positive = covering it lowers the score = evidence for the target.

    Args:
        window: window size, int or (height, width).
        stride: step between window positions, int or (rows, cols); default: the window size (no overlap).
            Positions are ``0, stride, 2 stride, ...`` while the window fits in the image.
        baseline: what covers the image: a number (0 = black; 0.5 = grey), a tensor broadcastable to
            (N, C, H, W) (a per-channel mean (C, 1, 1), a blurred copy of x, ...).
        batch_size: occluded images per forward pass.
        progress: show a progress bar over the window positions.
        output: which part of a tuple / dict output is explained (see :class:`Attribution`).

    Example::

        attr = Occlusion(model, window=8, stride=4, baseline=0.5).attribute(x, target=3)
    """

    def __init__(self, model: nn.Module, window=8, stride=None, baseline: Union[float, torch.Tensor] = 0.0,
                 batch_size: int = 64, progress: bool = False, output: Output = None):
        super().__init__(model, output)
        self.window = _pair(window, "window")
        self.stride = _pair(stride if stride is not None else window, "stride")
        if isinstance(baseline, torch.Tensor):
            check_finite(baseline, "baseline")
        else:
            check_number(baseline, "baseline")
        self.baseline, self.batch_size, self.progress = baseline, check_size(batch_size, "batch_size"), progress

    def positions(self, height: int, width: int) -> Tuple[list, list]:
        """Top rows and left columns of the window positions for an image of size (height, width)."""
        (wh, ww), (sh, sw) = self.window, self.stride
        if wh > height or ww > width:
            raise ValueError(f"window {self.window} is larger than the image ({height}, {width})")
        return list(range(0, height - wh + 1, sh)), list(range(0, width - ww + 1, sw))

    def drops(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        """Score drop for every window position: (N, n_rows, n_cols), detached, on ``x``'s device."""
        from nnlab.core.progress import progress_bar as tqdm  # vanishes when done in notebooks

        x_ = self._prepare(x)
        n, _, height, width = x_.shape
        rows, cols = self.positions(height, width)
        baseline = torch.as_tensor(self.baseline, dtype=x_.dtype, device=x_.device)
        try:
            baseline = baseline.expand_as(x_)
        except RuntimeError:
            raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to x "
                             f"{tuple(x_.shape)}") from None
        windows = [(r, c) for r in rows for c in cols]
        per_batch = max(1, self.batch_size // n)
        drops = torch.empty(n, len(windows), dtype=x_.dtype, device=x_.device)
        with torch.no_grad(), buffers_kept(self.model):
            output = self.forward(x_)
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
                scores = target_scores(self.forward(torch.cat(covered)), chunk_target).view(len(chunk), n)
                drops[:, start:start + len(chunk)] = (clean[None, :] - scores).T
        return drops.view(n, len(rows), len(cols)).to(x.device)

    def attribute(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        check_images(x)
        return self.spread(self.drops(x, target), x.shape)

    def spread(self, drops: torch.Tensor, shape) -> torch.Tensor:
        """The drops (N, n_rows, n_cols) of :meth:`drops` spread back to input space, (N, C, H, W) for ``shape``
        = (N, C, H, W): each pixel gets the mean drop of the windows that cover it (0 where no window does).
        No forward pass: reuse drops already computed instead of calling :meth:`attribute`.

        Example::

            drops = occ.drops(x, 3)
            attr = occ.spread(drops, x.shape)        # = occ.attribute(x, 3)
        """
        if len(shape) != 4:
            raise ValueError(f"shape: expected (N, C, H, W), got {tuple(shape)}")
        n, c, height, width = (int(v) for v in shape)
        rows, cols = self.positions(height, width)
        if drops.dim() != 3 or tuple(drops.shape) != (n, len(rows), len(cols)):
            raise ValueError(f"drops: expected shape {(n, len(rows), len(cols))} (N, rows, columns of the window "
                             f"positions) for an image of shape {(n, c, height, width)}, got {tuple(drops.shape)}")
        total = torch.zeros(n, 1, height, width, dtype=drops.dtype, device=drops.device)
        count = torch.zeros(1, 1, height, width, dtype=drops.dtype, device=drops.device)
        for i, r in enumerate(rows):
            for j, col in enumerate(cols):
                window = (slice(None), slice(None), slice(r, r + self.window[0]), slice(col, col + self.window[1]))
                total[window] += drops[:, i, j].view(n, 1, 1, 1)
                count[window] += 1
        return (total / count.clamp(min=1)).expand(n, c, height, width).clone()
