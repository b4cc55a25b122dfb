"""The lab-model zoo: each lab model's recipe, and trained copies of them from a verified cache.

``pretrained(name)`` returns a trained lab model. The first call trains it (seeded, with a progress bar) and saves
the weights under ``data/models`` (see :func:`nnlab.data.cache_dir`) with a sidecar JSON holding the file's
SHA-256 and the architecture's parameter shapes. Later calls load the weights with
``torch.load(weights_only=True)`` after checking both; a corrupt or stale file is retrained, never trusted.
``python -m nnlab.models`` trains (or checks) them all.
"""
from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlab import data as nndata
from nnlab.data.orientation import (
    ORIENTATION_TEST_PHOTOS,
    orientation_crops,
    orientation_images,
)
from nnlab.models.architectures import (
    BoxRegressor,
    ClutteredCNN,
    MnistCNN,
    OrientationCNN,
    fold_batch_norm,
)
from nnlab.models.training import accuracy, train_classifier


# --------------------------------------------------------------------------- the registry of trained lab models
@dataclass
class ModelSpec:
    """How to build and train one lab model. ``train(model, progress)`` trains in place and returns metrics."""

    build: Callable[[], nn.Module]
    train: Callable[[nn.Module, bool], dict]
    description: str = ""
    version: str = "1"  # bump when the training recipe changes: cached files of another version are retrained


REGISTRY: Dict[str, ModelSpec] = {}


def register(name: str, build: Callable[[], nn.Module], train: Callable[[nn.Module, bool], dict],
             description: str = "", version: str = "1") -> None:
    """Add a trainable lab model to :func:`pretrained`.

    ``build()`` returns the untrained architecture; ``train(model, progress)`` trains it in place (seeded) and
    returns metrics such as ``{"test_accuracy": ...}``. Bump ``version`` when the recipe changes.
    """
    REGISTRY[name] = ModelSpec(build, train, description, version)


def seeded(build: Callable, *args, seed: int = 0, **kwargs) -> nn.Module:
    """``build(*args, **kwargs)`` with the random initial weights fixed by ``seed`` (the global RNG is restored):
    together with the seeded training loop, the same trained model on every run."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build(*args, **kwargs)


def _train_mnist_cnn(model, progress, dataset=nndata.mnist):
    train, test = dataset("train"), dataset("test")
    start = time.perf_counter()
    with_bn = seeded(MnistCNN, batch_norm=True)
    train_classifier(with_bn, train.images, train.labels, epochs=5, lr=1e-2, batch_size=128, progress=progress,
                     desc="training the MNIST CNN")
    fold_batch_norm(with_bn, model)
    return {"test_accuracy": accuracy(model, test.images, test.labels),
            "train_seconds": round(time.perf_counter() - start, 1), "data": train.source}


def _train_cluttered_cnn(model, progress):
    train = nndata.cluttered_mnist(30000, split="train", seed=0)
    test = nndata.cluttered_mnist(5000, split="test", seed=1)
    start = time.perf_counter()
    with_bn = seeded(ClutteredCNN, batch_norm=True)
    train_classifier(with_bn, train.images, train.labels, epochs=3, lr=3e-3, batch_size=128, progress=progress,
                     desc="training the cluttered-MNIST CNN")
    fold_batch_norm(with_bn, model)
    return {"test_accuracy": accuracy(model, test.images, test.labels),
            "train_seconds": round(time.perf_counter() - start, 1), "data": train.source}


register("mnist_cnn", MnistCNN, _train_mnist_cnn, "MnistCNN trained 5 epochs on MNIST (BN folded)", "6")


register("fashion_cnn", MnistCNN, lambda model, progress: _train_mnist_cnn(model, progress, nndata.fashion_mnist),
         "MnistCNN trained 5 epochs on Fashion-MNIST (BN folded; needs its files)", "3")


register("cluttered_cnn", ClutteredCNN, _train_cluttered_cnn, "ClutteredCNN trained on 30,000 cluttered digits", "2")


def _train_box_regressor(model, progress):
    train = nndata.cluttered_mnist(10000, split="train", seed=0)
    test = nndata.cluttered_mnist(2000, split="test", seed=1)
    start = time.perf_counter()
    loss = lambda out, boxes: F.smooth_l1_loss(out / model.canvas, boxes / model.canvas)  # noqa: E731
    train_classifier(model, train.images, train.boxes, epochs=4, lr=3e-3, batch_size=128, loss_fn=loss,
                     progress=progress, desc="training the box regressor")
    with torch.no_grad():
        error = (model(test.images) - test.boxes).abs().mean(0)
    return {"test_mean_abs_error_pixels": dict(zip(model.outputs, [round(e, 2) for e in error.tolist()])),
            "train_seconds": round(time.perf_counter() - start, 1), "data": train.source}


def _train_orientation_cnn(model, progress):
    upright = orientation_images("train")
    n_photos = len(upright) - int((nndata.faces().labels >= 5).sum())
    photos_x, photos_k = orientation_crops(upright[:n_photos], 8000, seed=0)    # 2/3 photos, 1/3 faces
    faces_x, faces_k = orientation_crops(upright[n_photos:], 4000, seed=4)
    x, k = torch.cat([photos_x, faces_x]), torch.cat([photos_k, faces_k])
    start = time.perf_counter()
    with_bn = seeded(OrientationCNN, batch_norm=True)
    train_classifier(with_bn, x, k, epochs=8, lr=1e-2, batch_size=64, progress=progress,
                     desc="training the orientation CNN")
    fold_batch_norm(with_bn, model)
    test = orientation_images("test")
    n_photos = len(ORIENTATION_TEST_PHOTOS)
    photos_x, photos_k = orientation_crops(test[:n_photos], 1200, seed=1)
    faces_x, faces_k = orientation_crops(test[n_photos:], 1200, seed=2)
    return {"train_accuracy": accuracy(model, x, k),
            "test_accuracy_photos": accuracy(model, photos_x, photos_k),
            "test_accuracy_faces": accuracy(model, faces_x, faces_k),
            "train_seconds": round(time.perf_counter() - start, 1),
            "data": "rotated crops of 10 photographs and the faces of 35 people (AT&T)"}


register("box_regressor", BoxRegressor, _train_box_regressor,
         "BoxRegressor: the digit's box in 64x64 cluttered MNIST, trained on 10,000 images", "2")


register("orientation_cnn", OrientationCNN, _train_orientation_cnn,
         "OrientationCNN: 0/90/180/270 degrees, trained on 12,000 rotated crops of photos and faces (BN folded)", "4")


def _train_mnist_cnn_shuffled(model, progress):
    """Adebayo et al.'s data randomisation (2018): 1,000 MNIST digits with their labels shuffled, memorised."""
    train, test = nndata.mnist("train").sample(1000, seed=0), nndata.mnist("test")
    shuffled = train.labels[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))]
    start = time.perf_counter()
    with_bn = seeded(MnistCNN, batch_norm=True)
    train_classifier(with_bn, train.images, shuffled, epochs=30, lr=1e-2, batch_size=128, progress=progress,
                     desc="training the MNIST CNN on shuffled labels")
    fold_batch_norm(with_bn, model)
    return {"train_accuracy_shuffled_labels": accuracy(model, train.images, shuffled),
            "test_accuracy": accuracy(model, test.images, test.labels),
            "train_seconds": round(time.perf_counter() - start, 1), "data": train.source + ", labels shuffled"}


register("mnist_cnn_shuffled", MnistCNN, _train_mnist_cnn_shuffled,
         "MnistCNN trained on 1,000 MNIST digits with shuffled labels (data randomisation; BN folded)", "1")


# --------------------------------------------------------------------------- the keras-vis-like MNIST CNN (featurevis)
from nnlab.models.dense_cnn import DenseCNN  # noqa: E402  (kept with its recipe)


def _train_mnist_dense_cnn(model, progress):
    """Keras' mnist_cnn shape (conv, conv, pool, dense, dense), 3 epochs on full MNIST with BN, folded."""
    train, test = nndata.mnist("train"), nndata.mnist("test")
    start = time.perf_counter()
    with_bn = seeded(DenseCNN, batch_norm=True)
    train_classifier(with_bn, train.images, train.labels, epochs=3, lr=3e-3, batch_size=128, progress=progress,
                     desc="training the keras-vis-like MNIST CNN")
    fold_batch_norm(with_bn, model)
    return {"test_accuracy": accuracy(model, test.images, test.labels),
            "train_seconds": round(time.perf_counter() - start, 1), "data": train.source}


register("mnist_dense_cnn", DenseCNN, _train_mnist_dense_cnn,
         "DenseCNN (keras' mnist_cnn shape) trained 3 epochs on MNIST (BN folded)", "1")


def _signature(model: nn.Module) -> dict:
    """What a cached file must match: every parameter/buffer name with its shape."""
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def model_path(name: str) -> Path:
    return nndata.cache_dir() / "models" / f"{name}.pt"


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive file lock, so that two processes (e.g. parallel notebooks) train a model only once."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _load_verified(model: nn.Module, path: Path, version: str) -> Optional[dict]:
    """Load ``path`` into ``model`` if its checksum and parameter shapes match its sidecar; else None."""
    meta_path = path.with_suffix(".json")
    if not path.exists() or not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("sha256") != nndata.sha256(path):
            raise ValueError("checksum mismatch")
        if meta.get("signature") != _signature(model) or meta.get("version") != version:
            raise ValueError("stale: the architecture or the training recipe changed")
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return meta
    except Exception as err:  # corrupt JSON, corrupt pickle, wrong shapes...
        warnings.warn(f"cached model {path} is not usable ({err}); it will be retrained")
        return None


def pretrained(name: str, progress: bool = True, retrain: bool = False) -> nn.Module:
    """A trained lab model in eval mode: loaded from the verified cache, else trained (seeded) and cached.

    ``name``: one of ``nnlab.models.REGISTRY`` ("mnist_cnn", "cluttered_cnn", ...). The training metrics are in
    ``model.metrics`` (e.g. ``{"test_accuracy": 0.991, ...}``).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown lab model {name!r}; available: {', '.join(sorted(REGISTRY))}")
    spec = REGISTRY[name]
    path = model_path(name)
    with _lock(path):
        model = spec.build()
        meta = None if retrain else _load_verified(model, path, spec.version)
        if meta is None:
            model = spec.build()
            metrics = spec.train(model, progress)
            buffer = io.BytesIO()
            torch.save(model.state_dict(), buffer)
            nndata.atomic_write_bytes(path, buffer.getvalue())
            meta = {"name": name, "version": spec.version, "sha256": nndata.sha256(path),
                    "signature": _signature(model),
                    "metrics": metrics, "torch": torch.__version__}
            nndata.atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=1).encode())
    model.eval()
    model.metrics = meta.get("metrics", {})
    return model


def main(argv=None) -> None:
    """``python -m nnlab.models [NAME ...]``: train (or verify the cache of) the lab models, all by default."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m nnlab.models", description=main.__doc__)
    parser.add_argument("names", nargs="*", help=f"models to prepare (default: all of {', '.join(REGISTRY)})")
    parser.add_argument("--retrain", action="store_true", help="ignore the cache and train again")
    args = parser.parse_args(argv)
    for name in args.names or list(REGISTRY):
        start = time.perf_counter()
        try:
            model = pretrained(name, retrain=args.retrain)
        except FileNotFoundError as err:  # e.g. Fashion-MNIST files absent: the labs run without that model
            print(f"{name}: skipped, its data is missing ({err})", flush=True)
            continue
        print(f"{name}: {model.metrics} (ready in {time.perf_counter() - start:.1f} s)", flush=True)


