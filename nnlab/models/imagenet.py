"""ImageNet classifiers: torchvision's weights API, the 1,000 class names, and normalisation inside the model.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

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


class Normalized(nn.Module):
    """``model(normalize(x))``: takes images in [0, 1] so that attributions are with respect to the pixels.
    The wrapped model is ``.model`` (its layers are ``model.layer4`` ...)."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return self.model((x - self.mean) / self.std)
