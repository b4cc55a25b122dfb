"""Training and evaluating a classifier: seeded mini-batch Adam with a progress bar, and accuracy.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Share of ``images`` whose predicted class (argmax of the logits) equals ``labels``."""
    from nnlab.core.hooks import eval_mode

    correct = 0
    with torch.no_grad(), eval_mode(model):
        for i in range(0, len(images), batch_size):
            correct += (model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum().item()
    return correct / max(len(images), 1)


def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int = 3,
                     lr: float = 1e-3, batch_size: int = 128, weight_decay: float = 0.0, seed: int = 0,
                     loss_fn: Callable = F.cross_entropy, schedule: str = "onecycle", progress: bool = True,
                     desc: Optional[str] = None,
                     on_epoch: Optional[Callable[[int, nn.Module], None]] = None,
                     augment: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None
                     ) -> Dict[str, list]:
    """Train ``model`` in place with Adam on ``(images, labels)``, mini-batches reshuffled each epoch.

    Seeded and reproducible. ``weight_decay`` is an L2 penalty on the weights. ``schedule``: "onecycle" (warm up
    then anneal the learning rate; fast convergence) or "constant". Returns the history ``{"loss": [...]}``
    of the mean training loss per epoch. ``on_epoch(epoch, model)``, if given, runs after each epoch (1, 2, ...).
    ``augment(images, generator)``, if given, returns a randomly changed copy of each mini-batch (N, C, H, W) before
    the forward pass, drawing from the training loop's seeded generator (e.g. :func:`random_shift`).
    """
    from nnlab.core.progress import progress_bar as tqdm  # vanishes when done in notebooks

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = (len(images) + batch_size - 1) // batch_size
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
             if schedule == "onecycle" else None)
    history = {"loss": []}
    model.train()
    bar = tqdm(total=epochs * steps_per_epoch, desc=desc or f"training {type(model).__name__}",
               disable=not progress, leave=False)
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=g)
        total = 0.0
        for i in range(0, len(images), batch_size):
            idx = order[i:i + batch_size]
            batch = images[idx] if augment is None else augment(images[idx], g)
            loss = loss_fn(model(batch), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += loss.item() * len(idx)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)  # drawn at the next update
        history["loss"].append(total / len(images))
        if on_epoch is not None:
            on_epoch(epoch + 1, model)
    bar.close()
    model.eval()
    return history


def random_shift(pixels: int = 2) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """An ``augment`` for :func:`train_classifier`: each image (N, C, H, W) moved by a random whole number of pixels,
    ``-pixels..pixels`` in x and in y, the uncovered border filled with 0 (black, the MNIST background)."""
    if not isinstance(pixels, int) or pixels < 1:
        raise ValueError(f"pixels must be a positive int, got {pixels!r}")

    def shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if images.dim() != 4:
            raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
        n, _, h, w = images.shape
        d = pixels
        padded = F.pad(images, (d, d, d, d))
        dy = torch.randint(0, 2 * d + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * d + 1, (n,), generator=generator)
        rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1).expand(n, images.shape[1], h, w + 2 * d)
        picked = padded.gather(2, rows)                                          # (N, C, H, W + 2d)
        cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w).expand(n, images.shape[1], h, w)
        return picked.gather(3, cols)

    return shift
