"""Training the linear and one-hidden-layer models of labs 01-02 (seeded).
"""
from __future__ import annotations

from typing import Optional

import torch

from nnlab.core.checks import check_images, check_indices, check_number, check_size


def _check_training(images, labels, n_classes, epochs, lr, batch_size, weight_decay):
    """Checked ``(labels (N,) long, n_classes)`` for the template models."""
    check_images(images, what="images")
    labels = check_indices(labels, "labels", upper=None if n_classes is None else check_size(n_classes, "n_classes"))
    if len(labels) != len(images):
        raise ValueError(f"labels must hold one label per image ({len(images)}), got {len(labels)}")
    check_size(epochs, "epochs"), check_size(batch_size, "batch_size")
    if not check_number(lr, "lr") > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    check_number(weight_decay, "weight_decay", minimum=0)
    return labels, int(labels.max()) + 1 if n_classes is None else int(n_classes)


# =========================================================================== training (nnlab.models.train_classifier)
def _fit(model, images, labels, epochs, lr, batch_size, weight_decay, seed, schedule, progress, desc):
    from nnlab.models.training import train_classifier

    model.history = train_classifier(model, images, labels, epochs=epochs, lr=lr, batch_size=batch_size,
                                     weight_decay=weight_decay, seed=seed, schedule=schedule, progress=progress,
                                     desc=desc)
    return model


def train_logistic_regression(images: torch.Tensor, labels: torch.Tensor, n_classes: Optional[int] = None,
                              epochs: int = 100, lr: float = 1e-2, batch_size: int = 128,
                              weight_decay: float = 0.0, seed: int = 0, schedule: str = "onecycle",
                              progress: bool = True):
    """Multinomial logistic regression (no hidden layer) trained on ``images (N, C, H, W)``, ``labels (N,)``.

    Cross-entropy with Adam through :func:`nnlab.models.train_classifier`; ``weight_decay`` is the L2 penalty
    (``lambda`` in ``loss + lambda/2 |W|^2``); ``batch_size=len(images)``: full-batch steps (fastest on the 280
    faces). Seeded (initial weights and mini-batch order). Returns a :class:`nnlab.models.LogisticRegression` in
    eval mode, with ``.history`` (the loss per epoch) and ``.templates()`` ``(n_classes, C, H, W)``.
    """
    from nnlab.models.architectures import LogisticRegression

    labels, n_classes = _check_training(images, labels, n_classes, epochs, lr, batch_size, weight_decay)
    torch.manual_seed(seed)
    model = LogisticRegression(images.shape[1:], n_classes)
    return _fit(model, images, labels, epochs, lr, batch_size, weight_decay, seed, schedule, progress,
                "training logistic regression")


def train_hidden_layer(images: torch.Tensor, labels: torch.Tensor, hidden: int = 300,
                       n_classes: Optional[int] = None, epochs: int = 100, lr: float = 3e-3, batch_size: int = 128,
                       weight_decay: float = 0.0, seed: int = 0, schedule: str = "onecycle", progress: bool = True):
    """A network with one hidden layer of ``hidden`` ReLU units, trained like :func:`train_logistic_regression`.

    Returns a :class:`nnlab.models.MLP` in eval mode: ``.templates()`` ``(hidden, C, H, W)`` are the hidden units'
    input weights, :func:`outgoing_weights` ``(n_classes, hidden)`` their votes for each class.
    """
    from nnlab.models.architectures import MLP

    labels, n_classes = _check_training(images, labels, n_classes, epochs, lr, batch_size, weight_decay)
    hidden = check_size(hidden, "hidden")
    torch.manual_seed(seed)
    model = MLP(images.shape[1:], hidden, n_classes)
    return _fit(model, images, labels, epochs, lr, batch_size, weight_decay, seed, schedule, progress,
                f"training {hidden} hidden units")
