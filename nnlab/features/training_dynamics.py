"""Features over training: snapshots of filters and projected features at chosen epochs, and how much each
layer still changes per epoch.

Zeiler, M. D. & Fergus, R. (2014). Visualizing and Understanding Convolutional Networks. ECCV, Fig. 4.
https://arxiv.org/abs/1311.2901 -- "the lower layers of the model can be seen to converge within a few epochs.
However, the upper layers only develop after a considerable number of epochs".

:func:`features_over_training` trains a fresh, seeded network (by default the lab's ``MnistCNN``, with batch
normalisation as in its training recipe, on a subset of MNIST) and records

* at each epoch of ``snapshot_epochs`` (0 = the random initialisation): the first-layer filters and, for a few
  features of every conv layer, the deconvnet projection of their strongest activation over a set of probe
  images (as in the paper's figure);
* after every epoch ``e``, two measures of how much each layer still changes:

  - its weights (every conv and linear layer):  ``||W_l(e) - W_l(e-1)||_F / ||W_l(e-1)||_F``
  - what it computes (the followed conv layers): ``1 - CKA(A_l(e-1), A_l(e))``, where ``A_l`` are the layer's
    activations on the probe images and CKA is linear centered kernel alignment (Kornblith et al., 2019,
    https://arxiv.org/abs/1905.00414): 1 for the same representation up to rotation and scale.

  "Earlier layers train earlier" means that these numbers fall sooner for the first layers. With Adam every
  weight moves by about the learning rate, so the weight measure mostly reflects each layer's weight scale; the
  representation measure shows the bottom-up convergence that Raghu et al. (2017, SVCCA) report.

Example::

    dyn = features_over_training(epochs=4, snapshot_epochs=(0, 1, 4))
    dyn.weight_change["conv1"]            # [change in epoch 1, ..., epoch 4]
    dyn.representation_change["conv3"]    # likewise, 1 - CKA between consecutive epochs
    dyn.snapshots[-1].filters.shape       # (16, 1, 5, 5)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Union

import torch
import torch.nn as nn

from nnlab.core.checks import check_finite, check_images, check_index, check_number, check_size
from nnlab.core.hooks import capture, conv_layer_names, eval_mode
from nnlab.features.topk import TopActivations, top_activations


@dataclass
class Snapshot:
    """The network after ``epoch`` epochs (0: at initialisation)."""

    epoch: int
    filters: torch.Tensor                 # (C_out, C_in, k, k) the first conv layer's filters
    top: Dict[str, TopActivations]        # layer -> the strongest activation (k=1) of the chosen features
    accuracy: float                       # on the probe images


@dataclass
class TrainingDynamics:
    """What :func:`features_over_training` records."""

    snapshots: list                               # [Snapshot] at the chosen epochs
    weight_change: Dict[str, list] = field(default_factory=dict)  # layer -> relative weight change, epochs 1, 2, ...
    representation_change: Dict[str, list] = field(default_factory=dict)  # layer -> 1 - CKA, epochs 1, 2, ...
    loss: list = field(default_factory=list)     # mean training loss per epoch
    features: Dict[str, torch.Tensor] = field(default_factory=dict)  # layer -> the features followed


def weights(model: nn.Module) -> Dict[str, torch.Tensor]:
    """A copy of the weight of every conv and linear layer, ``{name: weight}``."""
    return {name: m.weight.detach().clone() for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))}


def relative_change(before: Dict[str, torch.Tensor], after: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """``||W_after - W_before||_F / ||W_before||_F`` for each layer."""
    return {name: ((after[name] - w).norm() / w.norm()).item() for name, w in before.items()}


def linear_cka(X: torch.Tensor, Y: torch.Tensor) -> float:
    """Linear CKA between two representations of the same ``n`` inputs, ``X (n, p)`` and ``Y (n, q)``:
    ``<K, L>_F / (||K||_F ||L||_F)`` with the Gram matrices ``K = X X^T``, ``L = Y Y^T`` of the centered features
    (Kornblith et al., 2019). In [0, 1]; 1 when ``Y`` is ``X`` rotated and scaled."""
    check_finite(X, "X"), check_finite(Y, "Y")
    if X.dim() < 2 or Y.dim() < 2 or len(X) != len(Y) or len(X) < 2:
        raise ValueError(f"X and Y must be (n, p) and (n, q) representations of the same n >= 2 inputs, got "
                         f"{tuple(X.shape)} and {tuple(Y.shape)}")
    X, Y = X.flatten(1).double(), Y.flatten(1).double()
    X, Y = X - X.mean(0), Y - Y.mean(0)
    K, L = X @ X.T, Y @ Y.T
    return ((K * L).sum() / (K.norm() * L.norm())).item()


def activations(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> Dict[str, torch.Tensor]:
    """The outputs of ``layers`` for the images ``x`` (eval mode, no gradients)."""
    check_images(x)
    with torch.no_grad(), eval_mode(model), capture(model, layers) as acts:
        model(x)
    return dict(acts)


def features_over_training(build: Optional[Callable[[], nn.Module]] = None, train=None, probe=None,
                           epochs: int = 4, snapshot_epochs: Sequence[int] = (0, 1, 2, 4),
                           layers: Optional[Sequence[str]] = None, features: Union[int, dict] = 4,
                           lr: float = 3e-3, batch_size: int = 32, seed: int = 0,
                           progress: bool = True) -> TrainingDynamics:
    """Train a fresh seeded network and record its features over training (Zeiler & Fergus, 2014, Fig. 4).

    build:     makes the untrained network (default ``MnistCNN(batch_norm=True)``: batch normalisation makes a few
               epochs on a few thousand digits enough); called after seeding.
    train:     an ImageSet to train on (default: 3,000 MNIST training digits, chosen with ``seed``).
    probe:     an ImageSet for the snapshots and the accuracy (default: 500 MNIST test digits).
    layers:    conv layers to follow (default: all); ``features``: how many randomly chosen features per layer
               (seeded), or ``{layer: [features]}``.
    Training: Adam with a constant learning rate ``lr`` (``models.train_classifier``), ``epochs`` passes.
    Returns a :class:`TrainingDynamics`. The same arguments give the same result (seeded, CPU).
    """
    from nnlab import data, models

    epochs, batch_size = check_size(epochs, "epochs"), check_size(batch_size, "batch_size")
    lr = check_number(lr, "lr", minimum=0)
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    snapshot_epochs = [check_index(e, "snapshot_epochs") for e in snapshot_epochs]
    if not isinstance(features, dict):
        features = check_size(features, "features")
    train = train if train is not None else data.mnist("train", n=3000, seed=seed)
    probe = probe if probe is not None else data.mnist("test", n=500, seed=seed)
    torch.manual_seed(seed)
    model = build() if build is not None else models.MnistCNN(batch_norm=True)
    layers = list(layers or conv_layer_names(model))
    if not isinstance(features, dict):  # the same random features are followed through training
        g = torch.Generator().manual_seed(seed)
        acts = activations(model, probe.images[:1], layers)
        features = {name: torch.randperm(acts[name].shape[1], generator=g)[:features].sort().values
                    for name in layers}
    features = {name: torch.as_tensor(f, dtype=torch.long) for name, f in features.items()}

    def snapshot(epoch: int) -> Snapshot:
        first = dict(model.named_modules())[conv_layer_names(model)[0]]
        top = {name: top_activations(model, probe.images, name, k=1, features=features[name], progress=False)
               for name in layers}
        return Snapshot(epoch, first.weight.detach().clone(), top,
                        models.accuracy(model, probe.images, probe.labels))

    result = TrainingDynamics(snapshots=[], features=features)
    previous, previous_acts = weights(model), activations(model, probe.images, layers)
    if 0 in snapshot_epochs:
        result.snapshots.append(snapshot(0))

    def on_epoch(epoch: int, model: nn.Module) -> None:
        nonlocal previous, previous_acts
        now, acts = weights(model), activations(model, probe.images, layers)
        for name, change in relative_change(previous, now).items():
            result.weight_change.setdefault(name, []).append(change)
        for name in layers:
            result.representation_change.setdefault(name, []).append(1 - linear_cka(previous_acts[name], acts[name]))
        previous, previous_acts = now, acts
        if epoch in snapshot_epochs:
            result.snapshots.append(snapshot(epoch))

    history = models.train_classifier(model, train.images, train.labels, epochs=epochs, lr=lr,
                                      batch_size=batch_size, seed=seed, schedule="constant", progress=progress,
                                      desc="features over training", on_epoch=on_epoch)
    result.loss = history["loss"]
    return result

