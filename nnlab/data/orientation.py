"""Photos and crops rotated by 0, 90, 180, 270 degrees: the data of the 'which way is up' model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nnlab.data.datasets import faces as att_faces
from nnlab.data.images import photos as course_photos


def orientation_crops(images: torch.Tensor, n: int, size: int = 32, seed: int = 0):
    """``n`` random square crops of ``images`` (N, 3, 4 size, 4 size), each covering 1/2 to all of the image
    width, resized to ``size``, flipped left-right at random, then rotated by k x 90 degrees counter-clockwise.

    Returns ``(x (n, 3, size, size), k (n,))``: k in 0..3 is the label of :class:`OrientationCNN`.
    """
    g = torch.Generator().manual_seed(seed)
    scales = [int(size * f) for f in (1.0, 1.25, 1.5, 2.0)]           # crop = size / scale of the image
    pyramid = {s: F.interpolate(images, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
               for s in scales}
    x = torch.empty(n, images.shape[1], size, size)
    k = torch.randint(0, 4, (n,), generator=g)
    which = torch.randint(0, len(images), (n,), generator=g)
    scale = torch.randint(0, len(scales), (n,), generator=g)
    for i in range(n):
        s = scales[scale[i]]
        top, left = (int(v) for v in torch.randint(0, s - size + 1, (2,), generator=g))
        crop = pyramid[s][which[i], :, top:top + size, left:left + size]
        if torch.rand(1, generator=g) < 0.5:
            crop = crop.flip(-1)
        x[i] = torch.rot90(crop, int(k[i]), dims=(1, 2))
    return x, k


#: photographs kept out of the orientation model's training set; faces of subjects s1..s5 too
ORIENTATION_TEST_PHOTOS = ("plane", "taxis", "chelsea")


def orientation_images(split: str = "train", size: int = 128) -> torch.Tensor:
    """The upright images the orientation task is cut from, (N, 3, size, size): photographs (:func:`nnlab.data.photos`)
    and AT&T faces (grey, as RGB). ``"test"``: the photos ``ORIENTATION_TEST_PHOTOS`` and subjects s1..s5."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    photos = course_photos(size=size)
    keep = [(name in ORIENTATION_TEST_PHOTOS) == (split == "test") for name in photos.names]
    faces = att_faces()
    top = (faces.images.shape[2] - faces.images.shape[3]) // 2                       # square crop of the face
    square = faces.images[:, :, top:top + faces.images.shape[3], :].expand(-1, 3, -1, -1)
    square = square[(faces.labels < 5) == (split == "test")]
    square = F.interpolate(square, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return torch.cat([photos.images[torch.tensor(keep)], square])
