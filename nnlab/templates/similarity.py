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

from nnlab.core.checks import check_finite, check_size


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
    if x.shape[0] == 0 or x[0].numel() == 0:
        raise ValueError(f"{what} must hold at least one item of at least one value, got shape {tuple(x.shape)}")
    check_finite(x, what)
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
VECTOR_SIMILARITIES = {"euclidean": _negative_euclidean, "cosine": cosine_similarity, "dot": dot_product}


Similarity = Union[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


def _similarity_fn(kind: Similarity) -> Callable:
    if callable(kind):
        return kind
    if kind not in VECTOR_SIMILARITIES:
        raise ValueError(f"similarity must be one of {sorted(VECTOR_SIMILARITIES)} or a function (a, b) -> (N, M), "
                         f"got {kind!r}")
    return VECTOR_SIMILARITIES[kind]


def similarity(a: torch.Tensor, b: torch.Tensor, kind: Similarity = "euclidean") -> torch.Tensor:
    """Similarity of every row of ``a`` with every row of ``b``, larger = more alike: ``(N, M)``.

    a: ``(N, D)`` vectors or ``(N, C, H, W)`` images; b: ``(M, D)`` or ``(M, C, H, W)``.
    kind: "euclidean" (``-|a - b|``), "cosine", "dot", or a function ``(a, b) -> (N, M)``.
    """
    fn = _similarity_fn(kind)
    a, b = _vectors(a, "a"), _vectors(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same number of values per item, got {a.shape[1]} and {b.shape[1]}")
    return fn(a, b)


def standardise(x: torch.Tensor, reference: Optional[torch.Tensor] = None, eps: float = 1e-6) -> torch.Tensor:
    """Per-feature z-scores ``(x - mean) / std``, with the mean and standard deviation of each pixel (feature)
    measured over ``reference`` (the training set; default: ``x`` itself). Same shape as ``x``.

    Why: a dot product, a distance or a gradient-descent step treats all features alike, so a feature with
    values 100 times larger dominates them all. After standardising, every feature has mean 0 and standard
    deviation 1 on the training set. Always take the statistics from the training set, also for the test set.
    Features constant on the reference (std < eps) are only centred.
    """
    _vectors(x, "x")
    x = x if x.is_floating_point() else x.float()
    reference = x if reference is None else reference
    reference = reference if not isinstance(reference, torch.Tensor) or reference.is_floating_point() else \
        reference.float()
    if len(_vectors(reference, "reference")) < 2:
        raise ValueError(f"reference must hold at least 2 items to measure a standard deviation, got "
                         f"{len(reference)}")
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
    k, batch_size = check_size(k, "k"), check_size(batch_size, "batch_size")
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
    train_labels = torch.as_tensor(train_labels)
    if train_labels.dim() != 1:
        raise ValueError(f"train_labels must have shape (M,), got {tuple(train_labels.shape)}")
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
        self.batch_size = check_size(batch_size, "batch_size")

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
