"""Images as vectors, nearest neighbours, and the weight templates of linear classifiers.

A grey image of ``H x W`` pixels is a vector of ``D = H*W`` numbers (:func:`flatten`). Three ways to compare two
vectors ``a`` and ``b``:

    dot product          a . b = sum_i a_i b_i
    Euclidean distance   |a - b| = sqrt(|a|^2 - 2 a.b + |b|^2)
    cosine similarity    cos(a, b) = a . b / (|a| |b|)          (the angle; blind to the length: cos(a, alpha b) =
                                                                  cos(a, b) for alpha > 0)

The **1-nearest-neighbour classifier** (Cover & Hart, 1967, https://doi.org/10.1109/TIT.1967.1053964) gives a
test image the label of the most similar training image (:func:`nearest_neighbour_predict`).

**Multinomial logistic regression** scores class ``c`` by ``s_c(x) = w_c . x + b_c``: a dot product of the image
with one weight vector per class. Seen as an image, ``w_c`` is the class's *template*: the picture the class is
matched against (:meth:`nnlab.models.LogisticRegression.templates`). With one hidden layer
(``s = W2 relu(W1 x + b1) + b2``) every hidden unit has a template (a row of ``W1``) and votes for the classes with
its outgoing weights (a column of ``W2``; :func:`outgoing_weights`, :func:`top_hidden_units`).

An L2 penalty ``lambda |W|^2`` (``weight_decay``) keeps the templates small, and smooth: without it, long training
fits the few training images with high-frequency noise (:func:`template_noise`).

Example::

    from nnlab import templates as T
    train, test = T.lab_faces()                                   # 280 / 120 faces, 56x46
    pred = T.nearest_neighbour_predict(train.images, train.labels, test.images, similarity="cosine")
    model = T.train_logistic_regression(train.images, train.labels, weight_decay=1e-3)
    model.templates().shape                                       # (40, 1, 56, 46)
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F

__all__ = [
    "flatten", "unflatten", "dot_product", "euclidean_distance", "cosine_similarity", "SIMILARITIES",
    "similarity", "standardise", "nearest_neighbours", "nearest_neighbour_predict", "NearestNeighbour",
    "NearestNeighbor", "downsample", "split_per_class", "lab_faces", "lab_digits", "train_logistic_regression",
    "train_hidden_layer", "total_variation", "template_noise", "outgoing_weights", "top_hidden_units",
]


# =========================================================================== images as vectors
def flatten(x: torch.Tensor) -> torch.Tensor:
    """Images ``(N, C, H, W)`` (or any ``(N, ...)``) -> vectors ``(N, C*H*W)``, pixels row after row."""
    return x.reshape(x.shape[0], -1)


def unflatten(v: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Vectors ``(N, D)`` -> images ``(N, *shape)``, with ``shape = (C, H, W)`` and ``D = C*H*W``."""
    return v.reshape(v.shape[0], *shape)


def _vectors(x: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        raise ValueError(f"{what} must be vectors (N, D) or images (N, C, H, W), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    return flatten(x).float()


# =========================================================================== comparing vectors
def dot_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All dot products ``a_i . b_j``: a ``(N, D)``, b ``(M, D)`` -> ``(N, M)``."""
    return a @ b.T


def euclidean_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All distances ``|a_i - b_j|``: a ``(N, D)``, b ``(M, D)`` -> ``(N, M)``.

    Written as ``sqrt(|a|^2 - 2 a.b + |b|^2)``: one matrix product instead of ``N*M`` differences (rounding can
    make the squared distance slightly negative; it is clamped at 0).
    """
    squared = (a * a).sum(1, keepdim=True) - 2 * a @ b.T + (b * b).sum(1)[None, :]
    return squared.clamp(min=0).sqrt()


def cosine_similarity(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """All cosines ``a_i . b_j / (|a_i| |b_j|)``: a ``(N, D)``, b ``(M, D)`` -> ``(N, M)``, in ``[-1, 1]``.

    Each vector is divided by its length first (a zero vector stays zero: its cosine with anything is 0).
    """
    a = a / a.norm(dim=1, keepdim=True).clamp(min=eps)
    b = b / b.norm(dim=1, keepdim=True).clamp(min=eps)
    return a @ b.T


def _negative_euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``-|a_i - b_j|``: a similarity (larger = more alike) made from the Euclidean distance."""
    return -euclidean_distance(a, b)


#: Similarities by name, each ``(a (N, D), b (M, D)) -> (N, M)``, larger = more alike (the Euclidean one is the
#: negative distance, so that the nearest neighbour is always the *argmax*).
SIMILARITIES = {"euclidean": _negative_euclidean, "cosine": cosine_similarity, "dot": dot_product}

Similarity = Union[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


def _similarity_fn(kind: Similarity) -> Callable:
    if callable(kind):
        return kind
    if kind not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {sorted(SIMILARITIES)} or a function (a, b) -> (N, M), "
                         f"got {kind!r}")
    return SIMILARITIES[kind]


def similarity(a: torch.Tensor, b: torch.Tensor, kind: Similarity = "euclidean") -> torch.Tensor:
    """Similarity of every row of ``a`` with every row of ``b``, larger = more alike: ``(N, M)``.

    a: ``(N, D)`` vectors or ``(N, C, H, W)`` images; b: ``(M, D)`` or ``(M, C, H, W)``.
    kind: "euclidean" (``-|a - b|``), "cosine", "dot", or a function ``(a, b) -> (N, M)``.
    """
    return _similarity_fn(kind)(_vectors(a, "a"), _vectors(b, "b"))


def standardise(x: torch.Tensor, reference: Optional[torch.Tensor] = None, eps: float = 1e-6) -> torch.Tensor:
    """Per-feature z-scores ``(x - mean) / std``, with the mean and standard deviation of each pixel (feature)
    measured over ``reference`` (the training set; default: ``x`` itself). Same shape as ``x``.

    Why: a dot product, a distance or a gradient-descent step treats all features alike, so a feature with
    values 100 times larger dominates them all. After standardising, every feature has mean 0 and standard
    deviation 1 on the training set. Always take the statistics from the training set, also for the test set.
    Features constant on the reference (std < eps) are only centred.
    """
    reference = x if reference is None else reference
    if tuple(reference.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(f"reference must have the shape of x's items (M, {', '.join(map(str, x.shape[1:]))}), "
                         f"got {tuple(reference.shape)}")
    mean = reference.mean(0, keepdim=True)
    std = reference.std(0, keepdim=True)
    return (x - mean) / torch.where(std < eps, torch.ones_like(std), std)


# =========================================================================== 1-nearest neighbour
def nearest_neighbours(train_x: torch.Tensor, x: torch.Tensor, similarity: Similarity = "euclidean", k: int = 1,
                       batch_size: int = 1024):
    """The ``k`` training items most similar to each item of ``x``: ``(scores, indices)``, both ``(N, k)``,
    most similar first.

    train_x: ``(M, D)`` or ``(M, C, H, W)``; x: ``(N, D)`` or ``(N, C, H, W)``. ``similarity``: see
    :func:`similarity`. ``x`` is processed ``batch_size`` rows at a time, so memory stays ``batch_size x M``.
    """
    train_v, v = _vectors(train_x, "train_x"), _vectors(x, "x")
    if train_v.shape[1] != v.shape[1]:
        raise ValueError(f"train_x has {train_v.shape[1]} features per item but x has {v.shape[1]}")
    if not 1 <= k <= len(train_v):
        raise ValueError(f"k must be between 1 and the number of training items ({len(train_v)}), got {k}")
    fn = _similarity_fn(similarity)
    scores, indices = [], []
    for start in range(0, len(v), batch_size):
        s, i = fn(v[start:start + batch_size], train_v).topk(k, dim=1)
        scores.append(s)
        indices.append(i)
    return torch.cat(scores), torch.cat(indices)


def nearest_neighbour_predict(train_x: torch.Tensor, train_labels: torch.Tensor, x: torch.Tensor,
                              similarity: Similarity = "euclidean", batch_size: int = 1024) -> torch.Tensor:
    """1-NN classification: each item of ``x`` gets the label of its most similar training item. Returns ``(N,)``.

    train_x ``(M, D)`` or ``(M, C, H, W)``, train_labels ``(M,)``, x ``(N, D)`` or ``(N, C, H, W)``.
    ``similarity``: "euclidean", "cosine", "dot" or a function ``(a, b) -> (N, M)`` (larger = more alike).

    Cover & Hart (1967), Nearest neighbor pattern classification, https://doi.org/10.1109/TIT.1967.1053964

    Example::

        pred = nearest_neighbour_predict(train.images, train.labels, test.images, "cosine")
        accuracy = (pred == test.labels).float().mean()
    """
    if len(train_labels) != len(train_x):
        raise ValueError(f"train_labels (length {len(train_labels)}) must have one label per item of train_x "
                         f"({len(train_x)})")
    _, indices = nearest_neighbours(train_x, x, similarity, k=1, batch_size=batch_size)
    return train_labels[indices[:, 0]]


class NearestNeighbour:
    """The 1-nearest-neighbour classifier with a scikit-learn-like interface (``fit``, ``predict``, ``score``).

    Example::

        nn = NearestNeighbour("cosine").fit(train.images, train.labels)
        nn.score(test.images, test.labels)     # accuracy in [0, 1]
    """

    def __init__(self, similarity: Similarity = "euclidean", batch_size: int = 1024):
        _similarity_fn(similarity)
        self.similarity = similarity
        self.batch_size = batch_size

    def fit(self, train_x: torch.Tensor, train_labels: torch.Tensor) -> "NearestNeighbour":
        """Remember the training set (that is all the "training" 1-NN does)."""
        self.train_x, self.train_labels = _vectors(train_x, "train_x"), torch.as_tensor(train_labels)
        return self

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Labels ``(N,)`` of the most similar training items."""
        return nearest_neighbour_predict(self.train_x, self.train_labels, x, self.similarity, self.batch_size)

    def score(self, x: torch.Tensor, labels: torch.Tensor) -> float:
        """Accuracy: the share of ``x`` whose predicted label equals ``labels``."""
        return (self.predict(x) == torch.as_tensor(labels)).float().mean().item()


NearestNeighbor = NearestNeighbour  # the American spelling, as in scikit-learn


# =========================================================================== the lab data: faces, split per person
def downsample(images: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Average ``factor x factor`` blocks of pixels: ``(N, C, H, W)`` -> ``(N, C, H // factor, W // factor)``."""
    return images if factor == 1 else F.avg_pool2d(images, factor)


def split_per_class(data, n_train: int = 7, seed: int = 0, n_test: Optional[int] = None):
    """Split an ImageSet into ``(train, test)`` with ``n_train`` random images of each class in ``train`` and the
    rest (or only ``n_test`` of them) in ``test``: for the faces, 7 and 3 photos of each person. Reproducible for
    a ``seed``."""
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in range(len(data.classes)):
        members = torch.nonzero(data.labels == c).flatten()
        if len(members) <= n_train:
            raise ValueError(f"class {data.classes[c]!r} has {len(members)} images; n_train={n_train} leaves none "
                             f"for the test set")
        members = members[torch.randperm(len(members), generator=g)]
        train_idx.append(members[:n_train])
        test_idx.append(members[n_train:] if n_test is None else members[n_train:n_train + n_test])
    return data.subset(torch.cat(train_idx).sort().values), data.subset(torch.cat(test_idx).sort().values)


def lab_faces(n_train: int = 7, factor: int = 2, seed: int = 0, fallback: bool = True):
    """The data of labs 01-02: ``(train, test)`` ImageSets of the AT&T/ORL faces, ``n_train`` photos of each of
    the 40 people for training, the others for testing, downsampled ``factor`` times (112x92 -> 56x46).

    Without the faces (no ``$NNLAB_DATA``, offline) and with ``fallback=True``: MNIST digits instead (100 training
    and 50 test digits of each class), and ``.source`` and ``.extra["fallback"]`` say so.
    """
    from dataclasses import replace

    from nnlab import data as nndata

    try:
        faces = nndata.faces()
    except FileNotFoundError as err:
        if not fallback:
            raise
        train, test = lab_digits(n_train=100, n_test=50, seed=seed)
        note = (f"FALLBACK: the faces were not found ({str(err).split('(')[0].strip()}), so this lab runs on MNIST "
                f"digits instead (the 10 classes play the part of the people)")
        return (replace(train, source=f"{note}; {train.source}", extra={"fallback": True}),
                replace(test, source=f"{note}; {test.source}", extra={"fallback": True}))
    images = downsample(faces.images, factor)
    size = "x".join(map(str, images.shape[2:]))
    faces = replace(faces, images=images, extra={"fallback": False},
                    source=faces.source + (f", downsampled {factor}x to {size}" if factor > 1 else ""))
    train, test = split_per_class(faces, n_train, seed)
    train.source += f"; train: {n_train} photos per person (seed {seed})"
    test.source += f"; test: the other {10 - n_train} photos per person"
    return train, test


def lab_digits(n_train: int = 1000, n_test: int = 200, seed: int = 0):
    """MNIST digits for labs 01-02: ``(train, test)`` with ``n_train`` and ``n_test`` random digits of each class.

    Both MNIST splits are pooled before drawing, so that every class is in both sets whatever the source's order
    (the 5,000-digit offline sample is sorted by digit). When the source has fewer digits of a class than
    ``n_train + n_test``, both numbers are scaled down, and ``.source`` says so. Reproducible for a ``seed``.
    """
    from dataclasses import replace

    from nnlab import data as nndata

    parts = [nndata.mnist("train"), nndata.mnist("test")]
    pool = replace(parts[0], images=torch.cat([p.images for p in parts]), labels=torch.cat([p.labels for p in parts]))
    available = int(torch.bincount(pool.labels, minlength=len(pool.classes)).min())
    note = ""
    if available < n_train + n_test:
        scaled = available * n_train // (n_train + n_test)
        n_train, n_test = scaled, available - scaled
        note = f" (all the source has: {available} of the rarest class)"
    train, test = split_per_class(pool, n_train, seed, n_test)
    source = (f"MNIST digits, {n_train} train / {n_test} test of each class{note} (seed {seed}), drawn from "
              f"{parts[0].source} and {parts[1].source}")
    return replace(train, source=source), replace(test, source=source)


# =========================================================================== training (nnlab.models.train_classifier)
def _fit(model, images, labels, epochs, lr, batch_size, weight_decay, seed, schedule, progress, desc):
    from nnlab.models import train_classifier

    model.history = train_classifier(model, images, labels, epochs=epochs, lr=lr, batch_size=batch_size,
                                     weight_decay=weight_decay, seed=seed, schedule=schedule, progress=progress,
                                     desc=desc)
    return model


def train_logistic_regression(images: torch.Tensor, labels: torch.Tensor, n_classes: Optional[int] = None,
                              epochs: int = 100, lr: float = 1e-2, batch_size: int = 128,
                              weight_decay: float = 0.0, seed: int = 0, schedule: str = "onecycle",
                              progress: bool = True):
    """Multinomial logistic regression (no hidden layer) trained on ``images (N, C, H, W)``, ``labels (N,)``.

    Cross-entropy with Adam through :func:`nnlab.models.train_classifier`; ``weight_decay`` is the L2 penalty
    (``lambda`` in ``loss + lambda/2 |W|^2``); ``batch_size=len(images)``: full-batch steps (fastest on the 280
    faces). Seeded (initial weights and mini-batch order). Returns a :class:`nnlab.models.LogisticRegression` in
    eval mode, with ``.history`` (the loss per epoch) and ``.templates()`` ``(n_classes, C, H, W)``.
    """
    from nnlab.models import LogisticRegression

    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    torch.manual_seed(seed)
    model = LogisticRegression(images.shape[1:], n_classes)
    return _fit(model, images, labels, epochs, lr, batch_size, weight_decay, seed, schedule, progress,
                "training logistic regression")


def train_hidden_layer(images: torch.Tensor, labels: torch.Tensor, hidden: int = 300,
                       n_classes: Optional[int] = None, epochs: int = 100, lr: float = 3e-3, batch_size: int = 128,
                       weight_decay: float = 0.0, seed: int = 0, schedule: str = "onecycle", progress: bool = True):
    """A network with one hidden layer of ``hidden`` ReLU units, trained like :func:`train_logistic_regression`.

    Returns a :class:`nnlab.models.MLP` in eval mode: ``.templates()`` ``(hidden, C, H, W)`` are the hidden units'
    input weights, :func:`outgoing_weights` ``(n_classes, hidden)`` their votes for each class.
    """
    from nnlab.models import MLP

    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    torch.manual_seed(seed)
    model = MLP(images.shape[1:], hidden, n_classes)
    return _fit(model, images, labels, epochs, lr, batch_size, weight_decay, seed, schedule, progress,
                f"training {hidden} hidden units")


# =========================================================================== reading the templates
def total_variation(templates: torch.Tensor) -> torch.Tensor:
    """Total variation of each template: the sum of absolute differences between neighbouring pixels,
    ``sum |t[i+1, j] - t[i, j]| + |t[i, j+1] - t[i, j]|`` (over channels too). templates ``(N, C, H, W)`` -> ``(N,)``.

    Rudin, Osher & Fatemi (1992), https://doi.org/10.1016/0167-2789(92)90242-F
    """
    if templates.ndim != 4:
        raise ValueError(f"templates must have shape (N, C, H, W), got {tuple(templates.shape)}")
    down = (templates[:, :, 1:, :] - templates[:, :, :-1, :]).abs().flatten(1).sum(1)
    right = (templates[:, :, :, 1:] - templates[:, :, :, :-1]).abs().flatten(1).sum(1)
    return down + right


def template_noise(templates: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """How noisy each template is, whatever its scale: ``total_variation(t) / sum |t|``. ``(N, C, H, W)`` -> ``(N,)``.

    The mean jump between neighbouring pixels relative to the mean pixel magnitude: about 0 for a smooth picture,
    about 2.8 for white noise. Dividing by ``sum |t|`` makes it blind to the scale (``t`` and ``10 t`` score the
    same), so an L2 penalty cannot lower it just by shrinking the weights.
    """
    return total_variation(templates) / templates.abs().flatten(1).sum(1).clamp(min=eps)


def outgoing_weights(model) -> torch.Tensor:
    """The hidden-to-class weights of a one-hidden-layer net: ``(n_classes, hidden)``; column ``j`` says how much
    hidden unit ``j`` votes for each class."""
    if not hasattr(model, "fc2"):
        raise ValueError(f"expected a one-hidden-layer network with layers fc1 and fc2 (nnlab.models.MLP), got "
                         f"{type(model).__name__}")
    return model.fc2.weight.detach()


def top_hidden_units(model, target: int, k: int = 5, x: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The ``k`` hidden units most tied to class ``target``: indices ``(k,)``, strongest first.

    Without ``x``: ranked by their outgoing weight to the class, ``W2[target, j]`` (the units that vote most for it).
    With images ``x (N, C, H, W)`` (e.g. the class's own images): ranked by their mean contribution to the class
    score on ``x``, ``W2[target, j] * mean_n relu(W1 x_n + b1)_j``, which also counts how active the unit is.
    """
    weights = outgoing_weights(model)[target]
    if x is not None:
        with torch.no_grad():
            acts = model.relu(model.fc1(flatten(x)))
        weights = weights * acts.mean(0)
    return weights.topk(k).indices
