"""The lab architectures: logistic regression, one hidden layer, the MNIST and cluttered-MNIST CNNs, the
box regressor and the orientation CNN. Each checks its input shape and says what it expected.

Trained copies come from the zoo (:func:`nnlab.models.pretrained`); training is in :mod:`nnlab.models.training`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


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
    divisible by the stride avoids the uneven overlap of Odena et al., 2016, but the gradient maps still show the
    grid of the strides as a checkerboard: lab 05, section 5, averages it out over shifted copies of the image.)
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
