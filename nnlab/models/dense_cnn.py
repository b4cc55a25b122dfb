"""The keras-vis-like MNIST CNN: conv, conv, max-pool, flatten, dense, dense (keras' ``mnist_cnn`` example).

Beside the lab's GAP CNN (:class:`nnlab.models.MnistCNN`) it is the model that shows *strokes* under activation
maximisation: its dense layers read every position, so the class optimum is a digit at a place, while global
average pooling throws position away and its optimum is a texture.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from nnlab.models.architectures import _check_input


class DenseCNN(nn.Module):
    """conv1 (1->8, 3x3) relu1 | conv2 (8->16, 3x3) relu2 pool | flatten | fc1 (2304->64) relu3 dropout | fc2 (64->10)

    Keras' ``mnist_cnn`` example (Chollet, 2015; the network of the keras-vis MNIST notebook, Kotikalapudi, 2017)
    with 8/16 filters and 64 hidden units instead of 32/64 and 128, so that the weights are 0.6 MB and it trains
    in minutes on two CPU cores.
    ``batch_norm=True`` adds ``bn1``, ``bn2`` after the convs for training; :func:`nnlab.models.fold_batch_norm`
    folds them into the conv weights.

    Shapes for x (N, 1, 28, 28): conv1 (N,8,26,26), conv2 (N,16,24,24), pool (N,16,12,12), flatten (N,2304),
    fc1 (N,64), fc2 -> logits (N,10).
    """

    in_shape = (1, 28, 28)

    def __init__(self, n_classes: int = 10, batch_norm: bool = False, dropout: float = 0.25):
        super().__init__()
        norm = nn.BatchNorm2d if batch_norm else (lambda channels: nn.Identity())
        self.conv1 = nn.Conv2d(1, 8, 3)
        self.bn1 = norm(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.bn2 = norm(16)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * 12 * 12, 64)
        self.relu3 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, 1, type(self).__name__)
        if tuple(x.shape[2:]) != (28, 28):
            raise ValueError(f"DenseCNN expects images of shape (N, 1, 28, 28), got {tuple(x.shape)}")
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.pool(self.relu2(self.bn2(self.conv2(x))))
        return self.fc2(self.dropout(self.relu3(self.fc1(self.flatten(x)))))
