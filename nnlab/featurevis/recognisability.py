"""Recognisability: would an independent reader see the class in a class image?

Activation maximisation reaches probability 1.0 on images that a person does not read as the class (fooling
images; Nguyen, Yosinski & Clune, 2015, https://arxiv.org/abs/1412.1897). A measured stand-in for "a person
recognises it": an *independent* classifier, trained on raw pixels of real digits and never optimised against,
reads each class image. Logistic regression on pixels (about 92 % on MNIST test digits) is a simple reader: it
agrees only when the image puts ink where digits of that class have it.

Example::

    reader = pixel_classifier()                                   # seconds, seeded
    images, _ = maximize(model, logit(range(10)) - 30 * total_variation(), shape=(10, 1, 28, 28))
    score = recognisability(images, range(10), reader, model)
    score.count                                                    # classes recognised with target prob >= 0.9
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlab.core.device import model_device
from nnlab.core.hooks import eval_mode


class Recognisability(NamedTuple):
    """What :func:`recognisability` returns, one entry per image ``(N,)``.

    ``reader_class``: the independent classifier's class; ``reader_prob``: its probability of the intended class;
    ``target_prob``: the studied model's probability of the intended class (NaN without a model);
    ``recognised``: reader's class == intended class and (with a model) target_prob >= ``min_target_prob``;
    ``count``: how many images are recognised.
    """
    reader_class: torch.Tensor
    reader_prob: torch.Tensor
    target_prob: torch.Tensor
    recognised: torch.Tensor
    count: int


def pixel_classifier(epochs: int = 2, seed: int = 0, progress: bool = True) -> nn.Module:
    """The independent reader: multinomial logistic regression on raw MNIST pixels, seeded, trained in seconds.

    Returns a :class:`nnlab.models.LogisticRegression` in eval mode with ``.metrics = {"test_accuracy": ...}``.
    """
    from nnlab.data.datasets import mnist
    from nnlab.models.architectures import LogisticRegression
    from nnlab.models.training import accuracy, train_classifier

    train, test = mnist("train"), mnist("test")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        reader = LogisticRegression((1, 28, 28), 10)
    train_classifier(reader, train.images, train.labels, epochs=epochs, lr=1e-2, batch_size=256, seed=seed,
                     progress=progress, desc="training the pixel reader")
    reader.metrics = {"test_accuracy": accuracy(reader, test.images, test.labels)}
    return reader.eval()


def _probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), eval_mode(model):
        return F.softmax(model(images.to(model_device(model, images.device))), dim=1).cpu()


def recognisability(images: torch.Tensor, classes: Sequence[int], classifier: nn.Module,
                    model: Optional[nn.Module] = None, min_target_prob: float = 0.9) -> Recognisability:
    """Score class images ``images (N, 1, 28, 28)`` in ``[0, 1]``, image ``i`` meant to show ``classes[i]``.

    classifier: the independent reader (:func:`pixel_classifier`); model: the model the images were made for
        (its probability of the class is reported beside; an image counts only if it is >= ``min_target_prob``).

    Returns a :class:`Recognisability` (per image, and the ``count`` recognised).
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor (N, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if not isinstance(classifier, nn.Module):
        raise TypeError(f"classifier must be a torch.nn.Module (e.g. pixel_classifier()), got {type(classifier).__name__}")
    classes = torch.as_tensor(list(classes), dtype=torch.long)
    if classes.shape != (images.shape[0],):
        raise ValueError(f"classes must give one class per image: {images.shape[0]} images, got {len(classes)} classes")
    images = images.detach()
    read = _probabilities(classifier, images)
    if classes.min() < 0 or classes.max() >= read.shape[1]:
        raise ValueError(f"classes must be in [0, {read.shape[1]}), got {classes.tolist()}")
    rows = torch.arange(len(classes))
    reader_class = read.argmax(dim=1)
    recognised = reader_class == classes
    if model is not None:
        target_prob = _probabilities(model, images)[rows, classes]
        recognised = recognised & (target_prob >= min_target_prob)
    else:
        target_prob = torch.full((len(classes),), float("nan"))
    return Recognisability(reader_class, read[rows, classes], target_prob, recognised, int(recognised.sum()))
