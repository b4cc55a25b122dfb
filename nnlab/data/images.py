"""Image files and the course photographs, as float tensors in [0, 1].
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from nnlab.data.datasets import ImageSet, data_dirs

# --------------------------------------------------------------------------- photographs
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def _to_tensor(pil_image, size: Optional[int]) -> torch.Tensor:
    """PIL image -> (3, H, W) float in [0, 1]; with ``size``: shorter side resized to ``size``, centre crop."""
    image = pil_image.convert("RGB")
    if size is not None:
        w, h = image.size
        scale = size / min(w, h)
        image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), resample=3)  # bicubic
        w, h = image.size
        left, top = (w - size) // 2, (h - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)


def load_image(path, size: Optional[int] = None) -> torch.Tensor:
    """Read an image file as a ``(3, H, W)`` float tensor in [0, 1] (``size``: resize + centre-crop to a square).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not an image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    try:
        with Image.open(path) as img:
            return _to_tensor(img, size)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path} is not an image file PIL can read ({err})") from err


def photos(size: int = 224) -> ImageSet:
    """Photographs for the ImageNet labs: the images of ``$NNLAB_DATA/photos`` plus scikit-image's samples
    (chelsea the cat, coffee, rocket, astronaut). ``(N, 3, size, size)`` in [0, 1]; ``.names`` are file names."""
    import skimage.data
    from PIL import Image

    tensors, names, where = [], [], []
    for root in data_dirs():
        folder = root / "photos"
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        for path in files:
            try:
                tensors.append(load_image(path, size))
                names.append(path.stem)
            except ValueError:
                continue  # not an image: skipped
        if files:
            where.append(str(folder))
    for name in ("chelsea", "coffee", "rocket", "astronaut"):
        tensors.append(_to_tensor(Image.fromarray(getattr(skimage.data, name)()), size))
        names.append(name)
    where.append("scikit-image's sample images")
    return ImageSet(images=torch.stack(tensors), labels=torch.full((len(tensors),), -1, dtype=torch.long),
                    classes=[], source=f"{len(tensors)} photographs from " + " and ".join(where), names=names)
