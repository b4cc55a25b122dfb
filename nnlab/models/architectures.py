"""The lab architectures, and trained copies of them from a verified cache.

``pretrained(name)`` returns a trained lab model. The first call trains it (seeded, with a progress bar) and saves
the weights under ``data/models`` (see :func:`nnlab.data.cache_dir`) with a sidecar JSON holding the file's
SHA-256 and the architecture's parameter shapes. Later calls load the weights with
``torch.load(weights_only=True)`` after checking both; a corrupt or stale file is retrained, never trusted.

ImageNet models come from torchvision's weights API (:func:`imagenet_model`): downloaded when online, read from
the ``$TORCH_HOME/hub/checkpoints`` cache offline.
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
from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlab import data as nndata


def _check_input(x: torch.Tensor, channels: int, model: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{model} expects images of shape (N, {channels}, H, W), got {shape}"
                         + (" (add a batch dimension with x[None])" if getattr(x, "ndim", 0) == 3 else ""))


# --------------------------------------------------------------------------- architectures
class LogisticRegression(nn.Module):
    """Multinomial logistic regression on pixels: ``logits = W x + b``, one weight image ("template") per class.

    in_shape: the image shape (C, H, W); the input (N, C, H, W) is flattened to (N, C*H*W).
    """

    def __init__(self, in_shape: Sequence[int] = (1, 28, 28), n_classes: int = 10):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.fc = nn.Linear(int(torch.tensor(in_shape).prod()), n_classes)

    def forward(self, x):
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}")
        return self.fc(x.flatten(1))

    def templates(self) -> torch.Tensor:
        """The class templates: the weight rows as images, (n_classes, C, H, W)."""
        return self.fc.weight.detach().reshape(-1, *self.in_shape)


class MLP(nn.Module):
    """One hidden layer: ``logits = W2 relu(W1 x + b1) + b2``.

    Each hidden unit's input weights (a row of W1) are an image: the unit's template; its outgoing weights
    (a column of W2) say which classes it votes for.
    """

    def __init__(self, in_shape: Sequence[int] = (1, 28, 28), hidden: int = 300, n_classes: int = 10):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.fc1 = nn.Linear(int(torch.tensor(in_shape).prod()), hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, n_classes)

    def forward(self, x):
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}")
        return self.fc2(self.relu(self.fc1(x.flatten(1))))

    def templates(self) -> torch.Tensor:
        """The hidden units' input weights as images, (hidden, C, H, W)."""
        return self.fc1.weight.detach().reshape(-1, *self.in_shape)


class MnistCNN(nn.Module):
    """A small CNN for 28x28 digits, with named layers and a CAM-ready head.

    conv1 (1->16, 5x5) relu1 pool1 | conv2 (16->32, 3x3) relu2 pool2 | conv3 (32->64, 3x3) relu3 | gap | fc (64->10)

    ``batch_norm=True`` adds batch normalisation after each conv (``bn1``..``bn3``; Ioffe & Szegedy, 2015), which
    makes training several times faster; :func:`fold_batch_norm` then folds it into the conv weights, so the lab
    models are plain conv-ReLU-pool networks (``bn*`` are identities there).

    Shapes for x (N, 1, 28, 28): conv1 (N,16,28,28), pool1 (N,16,14,14), conv2 (N,32,14,14), pool2 (N,32,7,7),
    conv3 (N,64,7,7), gap -> (N,64), fc -> logits (N,10). Global average pooling + one linear layer after the
    last conv layer is the architecture CAM needs (Zhou et al., 2016).
    """

    def __init__(self, n_classes: int = 10, in_channels: int = 1, batch_norm: bool = False):
        super().__init__()
        self.in_channels = in_channels
        norm = nn.BatchNorm2d if batch_norm else (lambda channels: nn.Identity())
        self.conv1 = nn.Conv2d(in_channels, 16, 5, padding=2)
        self.bn1 = norm(16)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = norm(32)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn3 = norm(64)
        self.relu3 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, n_classes)

    def feature_maps(self, x):
        """The last conv layer's rectified maps, (N, 64, h, w)."""
        _check_input(x, self.in_channels, type(self).__name__)
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        return self.relu3(self.bn3(self.conv3(x)))

    def features(self, x):
        """The hidden features the classifier sees: the GAP vector (N, 64)."""
        return self.gap(self.feature_maps(x)).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))


class ClutteredCNN(nn.Module):
    """A CAM-ready CNN for 64x64 cluttered MNIST.

    conv1 (1->16) relu1 pool1 | conv2 (16->32) relu2 pool2 | conv3 (32->64) relu3 pool3 | conv4 (64->64) relu4 |
    gap | fc (64->10). All kernels 3x3 with padding 1. For x (N,1,64,64): conv4 maps are (N,64,8,8).
    ``batch_norm``: as in :class:`MnistCNN`.
    """

    def __init__(self, n_classes: int = 10, batch_norm: bool = False):
        super().__init__()
        self.in_channels = 1
        norm = nn.BatchNorm2d if batch_norm else (lambda channels: nn.Identity())
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = norm(16)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = norm(32)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn3 = norm(64)
        self.relu3 = nn.ReLU()
        self.pool3 = nn.MaxPool2d(2)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.bn4 = norm(64)
        self.relu4 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, n_classes)

    def feature_maps(self, x):
        """The last conv layer's rectified maps, (N, 64, h, w)."""
        _check_input(x, 1, type(self).__name__)
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = self.pool3(self.relu3(self.bn3(self.conv3(x))))
        return self.relu4(self.bn4(self.conv4(x)))

    def features(self, x):
        """The GAP vector (N, 64) before the classifier."""
        return self.gap(self.feature_maps(x)).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))


class BoxRegressor(nn.Module):
    """Regresses the bounding box of the digit in a 64x64 cluttered-MNIST image (a regression, no classes).

    conv1 (1->16) relu1 | conv2 (16->32) relu2 | conv3 (32->32) relu3 | flatten | fc1 (2048->64) relu4 | fc2 (64->4).
    Convolutions 4x4, stride 2, padding 1: (N,1,64,64) -> (N,16,32,32) -> (N,32,16,16) -> (N,32,8,8). (A kernel size
    divisible by the stride keeps gradient maps free of checkerboard artefacts, Odena et al., 2016.)
    Output (N, 4) in pixels, in the order of ``outputs`` = (left, top, right, bottom), as ``ImageSet.boxes``.
    No global pooling: where the evidence lies matters, and the fully connected layer keeps it.
    """

    outputs = ("left", "top", "right", "bottom")

    def __init__(self, canvas: int = 64):
        super().__init__()
        self.canvas = canvas
        self.in_shape = (1, canvas, canvas)
        self.conv1 = nn.Conv2d(1, 16, 4, stride=2, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 4, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(32, 32, 4, stride=2, padding=1)
        self.relu3 = nn.ReLU()
        self.fc1 = nn.Linear(32 * (canvas // 8) ** 2, 64)
        self.relu4 = nn.ReLU()
        self.fc2 = nn.Linear(64, 4)

    def forward(self, x):
        _check_input(x, 1, type(self).__name__)
        x = self.relu3(self.conv3(self.relu2(self.conv2(self.relu1(self.conv1(x))))))
        return self.canvas * self.fc2(self.relu4(self.fc1(x.flatten(1))))   # trained on boxes / canvas


class OrientationCNN(nn.Module):
    """Which way is up? Classifies a 32x32 RGB crop as rotated by 0, 90, 180 or 270 degrees counter-clockwise
    (``classes``). Trained on rotated crops of the offline photographs and faces (:func:`orientation_crops`).

    conv1 (3->16) relu1 | conv2 (16->32) relu2 | conv3 (32->32) relu3 | flatten | fc1 (512->64) relu4 | fc2 (64->4).
    Convolutions 4x4, stride 2, padding 1: (N,3,32,32) -> (N,16,16,16) -> (N,32,8,8) -> (N,32,4,4). No global
    pooling: "sky at the top" is a statement about position. ``batch_norm``: as in :class:`MnistCNN`.
    """

    classes = ["0°", "90°", "180°", "270°"]

    def __init__(self, batch_norm: bool = False):
        super().__init__()
        self.in_shape = (3, 32, 32)
        norm = nn.BatchNorm2d if batch_norm else (lambda channels: nn.Identity())
        self.conv1 = nn.Conv2d(3, 16, 4, stride=2, padding=1)
        self.bn1 = norm(16)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 4, stride=2, padding=1)
        self.bn2 = norm(32)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(32, 32, 4, stride=2, padding=1)
        self.bn3 = norm(32)
        self.relu3 = nn.ReLU()
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.relu4 = nn.ReLU()
        self.fc2 = nn.Linear(64, 4)

    def forward(self, x):
        _check_input(x, 3, type(self).__name__)
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        return self.fc2(self.relu4(self.fc1(x.flatten(1))))


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
    photos = nndata.photos(size=size)
    keep = [(name in ORIENTATION_TEST_PHOTOS) == (split == "test") for name in photos.names]
    faces = nndata.faces()
    top = (faces.images.shape[2] - faces.images.shape[3]) // 2                       # square crop of the face
    square = faces.images[:, :, top:top + faces.images.shape[3], :].expand(-1, 3, -1, -1)
    square = square[(faces.labels < 5) == (split == "test")]
    square = F.interpolate(square, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return torch.cat([photos.images[torch.tensor(keep)], square])


# --------------------------------------------------------------------------- training
def fold_batch_norm(model: nn.Module, plain: nn.Module) -> nn.Module:
    """Copy a model trained with batch normalisation into ``plain`` (the same architecture without it).

    In eval mode BN is the affine map ``y = gamma (z - mu) / sqrt(var + eps) + beta`` per channel, so with
    ``s = gamma / sqrt(var + eps)`` the conv that feeds it becomes ``W' = s W`` and ``b' = s (b - mu) + beta``:
    the same function, with no BN layer left. Each ``convK`` is folded with its ``bnK``.
    """
    state = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            conv = getattr(model, name.replace("bn", "conv"))
            s = module.weight.detach() / torch.sqrt(module.running_var + module.eps)
            state[name.replace("bn", "conv") + ".weight"] = conv.weight.detach() * s.view(-1, 1, 1, 1)
            state[name.replace("bn", "conv") + ".bias"] = s * (conv.bias.detach() - module.running_mean) \
                + module.bias.detach()
    for key, value in model.state_dict().items():
        if key not in state and key in plain.state_dict():
            state[key] = value
    plain.load_state_dict(state)
    return plain.eval()


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Share of ``images`` whose predicted class (argmax of the logits) equals ``labels``."""
    from nnlab.hooks import eval_mode

    correct = 0
    with torch.no_grad(), eval_mode(model):
        for i in range(0, len(images), batch_size):
            correct += (model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum().item()
    return correct / max(len(images), 1)


def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int = 3,
                     lr: float = 1e-3, batch_size: int = 128, weight_decay: float = 0.0, seed: int = 0,
                     loss_fn: Callable = F.cross_entropy, schedule: str = "onecycle", progress: bool = True,
                     desc: Optional[str] = None,
                     on_epoch: Optional[Callable[[int, nn.Module], None]] = None) -> Dict[str, list]:
    """Train ``model`` in place with Adam on ``(images, labels)``, mini-batches reshuffled each epoch.

    Seeded and reproducible. ``weight_decay`` is an L2 penalty on the weights. ``schedule``: "onecycle" (warm up
    then anneal the learning rate; fast convergence) or "constant". Returns the history ``{"loss": [...]}``
    of the mean training loss per epoch. ``on_epoch(epoch, model)``, if given, runs after each epoch (1, 2, ...).
    """
    from tqdm.auto import tqdm

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
            loss = loss_fn(model(images[idx]), labels[idx])
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


# --------------------------------------------------------------------------- ImageNet models (torchvision)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """Images (N, 3, H, W) in [0, 1] -> the normalised input torchvision's ImageNet models expect."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def imagenet_denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`imagenet_normalize`."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return x * std + mean


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names, as torchvision's weights metadata gives them (no download needed)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.DEFAULT.meta["categories"])


def imagenet_weights_available(name: str = "resnet18", weights: str = "DEFAULT") -> bool:
    """True when the checkpoint for ``name``/``weights`` is already in ``$TORCH_HOME/hub/checkpoints``."""
    from torchvision.models import get_model_weights

    w = get_model_weights(name)[weights] if isinstance(weights, str) and weights != "DEFAULT" else \
        get_model_weights(name).DEFAULT
    return (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)).exists()


def imagenet_model(name: str = "resnet18", weights: Optional[str] = "DEFAULT", progress: bool = True) -> nn.Module:
    """A torchvision ImageNet classifier in eval mode (inputs: :func:`imagenet_normalize` of images in [0, 1]).

    ``weights``: "DEFAULT", a weights name such as "IMAGENET1K_V1", or None for random weights. Weights are
    downloaded by torchvision when online and read from ``$TORCH_HOME/hub/checkpoints`` offline. Offline with no
    checkpoint there, raises ``FileNotFoundError`` naming the file to put there. ``model.classes`` holds the class
    names.
    """
    import torchvision
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(name)
    except (ValueError, KeyError) as err:
        raise ValueError(f"unknown torchvision model {name!r}; e.g. resnet18, vgg11, densenet121") from err
    if weights is None:
        model = torchvision.models.get_model(name, weights=None)
        classes = imagenet_classes()
    else:
        w = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
        checkpoint = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)
        try:
            model = torchvision.models.get_model(name, weights=w, progress=progress)
        except Exception as err:
            if checkpoint.exists():
                raise ValueError(f"the checkpoint {checkpoint} could not be loaded ({err}); delete it and retry") from err
            raise FileNotFoundError(
                f"ImageNet weights {w} for {name} are not available offline: put {os.path.basename(w.url)} "
                f"(from {w.url}) in {checkpoint.parent} (set TORCH_HOME to choose the folder)") from err
        classes = list(w.meta["categories"])
    model.eval()
    model.classes = classes
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


if __name__ == "__main__":
    main()
