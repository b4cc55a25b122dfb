"""The small data sets of labs 01-02: faces (or digits) split per class, downsampled.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from nnlab.core.checks import check_images, check_size


# =========================================================================== the lab data: faces, split per person
def downsample(images: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Average ``factor x factor`` blocks of pixels: ``(N, C, H, W)`` -> ``(N, C, H // factor, W // factor)``."""
    check_images(images, what="images")
    factor = check_size(factor, "factor")
    if factor > min(images.shape[-2:]):
        raise ValueError(f"factor must be at most the image size {tuple(images.shape[-2:])}, got {factor}")
    return images if factor == 1 else F.avg_pool2d(images, factor)


def split_per_class(data, n_train: int = 7, seed: int = 0, n_test: Optional[int] = None):
    """Split an ImageSet into ``(train, test)`` with ``n_train`` random images of each class in ``train`` and the
    rest (or only ``n_test`` of them) in ``test``: for the faces, 7 and 3 photos of each person. Reproducible for
    a ``seed``."""
    n_train = check_size(n_train, "n_train")
    if n_test is not None:
        n_test = check_size(n_test, "n_test")
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in range(len(data.classes)):
        members = torch.nonzero(data.labels == c).flatten()
        if len(members) <= n_train:
            raise ValueError(f"class {data.classes[c]!r} has {len(members)} images; n_train={n_train} leaves none "
                             f"for the test set")
        members = members[torch.randperm(len(members), generator=g)]
        train_idx.append(members[:n_train])
        test_idx.append(members[n_train:] if n_test is None else members[n_train:n_train + n_test])
    return data.subset(torch.cat(train_idx).sort().values), data.subset(torch.cat(test_idx).sort().values)


def lab_faces(n_train: int = 7, factor: int = 2, seed: int = 0, fallback: bool = True):
    """The data of labs 01-02: ``(train, test)`` ImageSets of the AT&T/ORL faces, ``n_train`` photos of each of
    the 40 people for training, the others for testing, downsampled ``factor`` times (112x92 -> 56x46).

    Without the faces (no ``$NNLAB_DATA``, offline) and with ``fallback=True``: MNIST digits instead (100 training
    and 50 test digits of each class), and ``.source`` and ``.extra["fallback"]`` say so.
    """
    from dataclasses import replace

    from nnlab import data as nndata

    try:
        faces = nndata.faces()
    except FileNotFoundError as err:
        if not fallback:
            raise
        train, test = lab_digits(n_train=100, n_test=50, seed=seed)
        note = (f"FALLBACK: the faces were not found ({str(err).split('(')[0].strip()}), so this lab runs on MNIST "
                f"digits instead (the 10 classes play the part of the people)")
        return (replace(train, source=f"{note}; {train.source}", extra={"fallback": True}),
                replace(test, source=f"{note}; {test.source}", extra={"fallback": True}))
    images = downsample(faces.images, factor)
    size = "x".join(map(str, images.shape[2:]))
    faces = replace(faces, images=images, extra={"fallback": False},
                    source=faces.source + (f", downsampled {factor}x to {size}" if factor > 1 else ""))
    train, test = split_per_class(faces, n_train, seed)
    train.source += f"; train: {n_train} photos per person (seed {seed})"
    test.source += f"; test: the other {10 - n_train} photos per person"
    return train, test


def lab_digits(n_train: int = 1000, n_test: int = 200, seed: int = 0):
    """MNIST digits for labs 01-02: ``(train, test)`` with ``n_train`` and ``n_test`` random digits of each class.

    Both MNIST splits are pooled before drawing, so that every class is in both sets whatever the source's order
    (the 5,000-digit offline sample is sorted by digit). When the source has fewer digits of a class than
    ``n_train + n_test``, both numbers are scaled down, and ``.source`` says so. Reproducible for a ``seed``.
    """
    from dataclasses import replace

    from nnlab import data as nndata

    parts = [nndata.mnist("train"), nndata.mnist("test")]
    pool = replace(parts[0], images=torch.cat([p.images for p in parts]), labels=torch.cat([p.labels for p in parts]))
    available = int(torch.bincount(pool.labels, minlength=len(pool.classes)).min())
    note = ""
    if available < n_train + n_test:
        scaled = available * n_train // (n_train + n_test)
        n_train, n_test = scaled, available - scaled
        note = f" (all the source has: {available} of the rarest class)"
    train, test = split_per_class(pool, n_train, seed, n_test)
    source = (f"MNIST digits, {n_train} train / {n_test} test of each class{note} (seed {seed}), drawn from "
              f"{parts[0].source} and {parts[1].source}")
    return replace(train, source=source), replace(test, source=source)
