"""Objectives for activation maximisation: what to maximise, and the regularisers that keep images natural.

An **objective** is a named function of the activations that returns one number per image, to be *maximised*.
Objectives compose like numbers: ``+``, ``-``, multiplication by a scalar and the built-in ``sum()``. Every
composition is a weighted sum of named *terms*, so the renderer (:func:`nnlab.featurevis.maximize`) can record
each term at every step. Regularisers are objectives on the input image, subtracted with a weight::

    from nnlab.featurevis.objectives import logit, channel, total_variation, lp_norm

    objective = logit(7) - 10 * total_variation() - 1 * lp_norm(6)
    objective.name           # 'logit(7) - 10 * total_variation(2) - 1 * lp_norm(6)'
    logit(1) + logit(7)      # two classes in one image (keras-vis ``filter_indices=[1, 7]``)
    logit(range(10))         # one image per class in one batched run: image i maximises class i
    logit(1, batch=0) + logit(7, batch=0) + logit(0, batch=1)   # image 0: classes 1 and 7; image 1: class 0

The activations ``acts`` an objective reads form a dict filled by the renderer:

* ``acts["input"]``  the image ``(N, C, H, W)`` in ``[0, 1]``, before transforms and normalisation;
* ``acts["logits"]`` the model output ``(N, K)`` (class scores before the softmax);
* ``acts[layer]``    the output of the named layer, ``(N, C, H, W)`` or ``(N, C)``.

``batch=`` addresses images of the batch: ``None`` (all images), an index, or a list of indices; the term is
zero for the other images. A list of N targets (``logit([3, 7])``) gives image ``i`` its own target.

References: Erhan, Bengio, Courville & Vincent (2009), "Visualizing higher-layer features of a deep network";
Simonyan, Vedaldi & Zisserman (2014), https://arxiv.org/abs/1312.6034 (class score, before the softmax);
Mahendran & Vedaldi (2015), https://arxiv.org/abs/1412.0035 (total variation, alpha-norm);
Olah, Mordvintsev & Schubert (2017), "Feature Visualization", https://distill.pub/2017/feature-visualization/.
"""
from __future__ import annotations

import functools
import numbers
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch

from nnlab.core.checks import check_index, check_indices

Acts = Dict[str, torch.Tensor]
Batch = Optional[Union[int, Sequence[int]]]
Index = Union[int, Sequence[int]]

INPUT = "input"    # the key of the image in ``acts``
LOGITS = "logits"  # the key of the model output in ``acts``


class Objective:
    """A weighted sum of named terms; each term maps ``acts`` to a tensor ``(N,)`` (one number per image).

    ``Objective(name, fn, layers)`` makes a single term: ``fn(acts) -> (N,)`` reads ``acts[layer]`` for the
    ``layers`` it names. Larger is better: the renderer maximises ``objective(acts).sum()``.

    Example::

        brightness = Objective("brightness", lambda acts: acts["input"].mean(dim=(1, 2, 3)), layers=["input"])
        objective = logit(3) + 0.5 * brightness
    """

    def __init__(self, name: str, fn: Callable[[Acts], torch.Tensor], layers: Sequence[str] = ()):
        self.terms: Dict[str, Tuple[Callable[[Acts], torch.Tensor], float]] = {name: (fn, 1.0)}
        self.layers: Tuple[str, ...] = tuple(dict.fromkeys(layers))

    # ---------------------------------------------------------------- evaluation
    def term_values(self, acts: Acts) -> Dict[str, torch.Tensor]:
        """The value ``(N,)`` of every term (unweighted), by name."""
        values = {}
        for name, (fn, _) in self.terms.items():
            value = fn(acts)
            if value.dim() != 1:
                raise ValueError(f"term {name!r} must return one number per image, shape (N,); "
                                 f"got shape {tuple(value.shape)}")
            values[name] = value
        return values

    def combine(self, values: Dict[str, torch.Tensor]) -> torch.Tensor:
        """The objective ``(N,)`` from the term values: ``sum(weight * value)``."""
        # (terms, N); a term of weight 0 is only recorded: detached, so that it cannot send a NaN gradient
        stacked = torch.stack([values[name] if w != 0 else values[name].detach()
                               for name, (_, w) in self.terms.items()])
        weights = torch.tensor([w for _, w in self.terms.values()], dtype=stacked.dtype, device=stacked.device)
        return weights @ stacked                                                # one matrix product: fast

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.combine(self.term_values(acts))

    @property
    def name(self) -> str:
        """A readable formula, e.g. ``'logit(7) - 10 * total_variation(2)'``."""
        text = ""
        for i, (name, (_, w)) in enumerate(self.terms.items()):
            sign = "-" if w < 0 else "+"
            coef = "" if abs(w) == 1 else f"{abs(w):g} * "
            text += (("-" if sign == "-" else "") if i == 0 else f" {sign} ") + coef + name
        return text

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    # ---------------------------------------------------------------- algebra
    @classmethod
    def _from_terms(cls, terms, layers) -> "Objective":
        obj = cls.__new__(cls)
        obj.terms = dict(terms)  # zero weights are kept: the renderer still records the term (tv_weight=0)
        obj.layers = tuple(dict.fromkeys(layers))
        return obj

    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:  # so that the built-in sum() works
            return self
        if not isinstance(other, Objective):
            return NotImplemented
        terms = dict(self.terms)
        for name, (fn, w) in other.terms.items():  # same name = same term: the weights add up
            terms[name] = (fn, terms[name][1] + w) if name in terms else (fn, w)
        return Objective._from_terms(terms, self.layers + other.layers)

    __radd__ = __add__

    def __mul__(self, scalar):
        if isinstance(scalar, torch.Tensor) and scalar.numel() == 1:
            scalar = scalar.item()
        if not isinstance(scalar, (int, float)):
            return NotImplemented
        return Objective._from_terms({n: (fn, w * float(scalar)) for n, (fn, w) in self.terms.items()},
                                     self.layers)

    __rmul__ = __mul__

    def __truediv__(self, scalar):
        return self * (1.0 / scalar)

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self
        if not isinstance(other, Objective):
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return -self
        return NotImplemented


# --------------------------------------------------------------------------- helpers
def _as_batch(batch: Batch) -> Batch:
    """None, an int, or a tuple of ints."""
    if batch is None:
        return None
    if isinstance(batch, numbers.Integral) or (isinstance(batch, torch.Tensor) and batch.dim() == 0):
        return int(batch)
    return tuple(int(b) for b in batch)


def _select(values: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Keep ``values (N,)`` for the images in ``batch`` (None = all), zero elsewhere."""
    if batch is None:
        return values
    return values * _batch_mask(values.shape[0], batch).to(values.device)  # the values' device


@functools.lru_cache(maxsize=1024)
def _batch_mask(n: int, batch) -> torch.Tensor:
    """``(n,)`` float mask: 1 for the images in ``batch``, 0 elsewhere (cached: built once, not at every step)."""
    mask = torch.zeros(n)
    mask[torch.as_tensor(batch, dtype=torch.long).reshape(-1)] = 1.0
    return mask


def _as_index(index: Index, what: str = "index") -> Union[int, torch.Tensor]:
    """An int stays an int; a sequence of ints becomes a long tensor (built once, not at every step). Negative
    indices, bools, floats and strings are rejected (``-1`` does not mean the last class here)."""
    if isinstance(index, torch.Tensor) and index.dim() == 0:
        return check_index(index, what)
    if isinstance(index, numbers.Integral) or isinstance(index, (bool, float, str)):
        return check_index(index, what)
    return check_indices(list(index) if not isinstance(index, torch.Tensor) else index, what)


def _text(index: Union[int, torch.Tensor]) -> str:
    return str(index) if isinstance(index, int) else str(index.tolist())


def _suffix(batch: Batch) -> str:
    if batch is None:
        return ""
    return f", batch={batch if isinstance(batch, int) else list(batch)}"  # batch: from _as_batch


def _pick(a: torch.Tensor, index: Union[int, torch.Tensor]) -> torch.Tensor:
    """``a[:, index]`` for an int; for a tensor of N ints, ``a[i, index[i]]`` for every image ``i``."""
    top = int(index) if isinstance(index, int) else int(index.max())
    if a.dim() < 2 or top >= a.shape[1]:
        raise ValueError(f"index {top} is out of range: the activation has shape {tuple(a.shape)} "
                         f"({a.shape[1] if a.dim() >= 2 else 0} classes or channels)")
    if isinstance(index, int):
        return a[:, index]
    if index.shape != (a.shape[0],):
        raise ValueError(f"a list of indices needs one index per image: got {len(index)} for {a.shape[0]} images")
    return a[torch.arange(a.shape[0], device=a.device), index.to(a.device)]


def _read(acts: Acts, layer: str) -> torch.Tensor:
    if layer not in acts:
        raise ValueError(f"no activation {layer!r}; available: {', '.join(acts)}")
    return acts[layer]


# --------------------------------------------------------------------------- what to maximise
def logit(target: Index, batch: Batch = None) -> Objective:
    """The class score of ``target``: the model output *before* the softmax, ``acts["logits"][:, target]``.

    ``target``: a class index, or a list of N class indices (image ``i`` maximises class ``target[i]``:
    ``logit(range(10))`` renders the ten classes in one batched run).

    Maximise the logit, never the probability: the probability can rise by lowering the other classes,
    which does not show what the class looks like (Simonyan et al., 2014, section 2).
    """
    target = _as_index(target, "target")
    batch = _as_batch(batch)

    def fn(acts):
        return _select(_pick(_read(acts, LOGITS), target), batch)
    return Objective(f"logit({_text(target)}{_suffix(batch)})", fn, layers=[LOGITS])


def channel(layer: str, feature: Index, batch: Batch = None) -> Objective:
    """The mean over positions of feature map ``feature`` of ``layer``: ``acts[layer][:, feature].mean((h, w))``.

    For a fully connected layer (output ``(N, C)``) it is the unit's value. ``feature``: a channel, or a list of N
    channels (one per image).
    """
    feature = _as_index(feature, "feature")
    batch = _as_batch(batch)

    def fn(acts):
        a = _pick(_read(acts, layer), feature)
        return _select(a.reshape(a.shape[0], -1).mean(dim=1), batch)
    return Objective(f"channel({layer}, {_text(feature)}{_suffix(batch)})", fn, layers=[layer])


def neuron(layer: str, feature: Index, row: Optional[int] = None, col: Optional[int] = None,
           batch: Batch = None) -> Objective:
    """One position ``(row, col)`` of feature map ``feature`` of ``layer``: ``acts[layer][:, feature, row, col]``.

    ``row``, ``col`` default to the centre of the map (``h // 2``, ``w // 2``). ``feature``: a channel, or a list
    of N channels (one per image).
    """
    feature = _as_index(feature, "feature")
    batch = _as_batch(batch)

    def fn(acts):
        a = _pick(_read(acts, layer), feature)
        if a.dim() == 1:  # fully connected layer: the unit itself
            return _select(a, batch)
        h, w = a.shape[-2:]
        r = h // 2 if row is None else row
        c = w // 2 if col is None else col
        return _select(a[:, r, c], batch)
    where = "" if row is None and col is None else f", {row}, {col}"
    return Objective(f"neuron({layer}, {_text(feature)}{where}{_suffix(batch)})", fn, layers=[layer])


# --------------------------------------------------------------------------- regularisers (on the input)
def total_variation_of(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Total variation of images ``x (N, C, H, W)`` -> ``(N,)``, averaged over pixels (Mahendran & Vedaldi, 2015):

        TV(x) = mean over c, i, j of ((x[c, i+1, j] - x[c, i, j])^2 + (x[c, i, j+1] - x[c, i, j])^2)^(beta / 2)

    Large for noisy images, small for smooth ones. ``beta=2`` is smooth (squared differences); ``beta=1`` is the
    classic (isotropic) total variation.
    """
    dy = x[:, :, 1:, :-1] - x[:, :, :-1, :-1]
    dx = x[:, :, :-1, 1:] - x[:, :, :-1, :-1]
    squared = dy ** 2 + dx ** 2
    if beta != 2.0:
        squared = squared + 1e-8  # the gradient of sqrt is infinite at 0
    return (squared ** (beta / 2)).mean(dim=(1, 2, 3))


def lp_norm_of(x: torch.Tensor, p: float = 6.0) -> torch.Tensor:
    """Lp norm of images ``x (N, C, H, W)`` -> ``(N,)``, normalised by the number of pixels:
    ``(mean |x|^p)^(1/p)``. A large ``p`` penalises the brightest pixels most (Simonyan et al. use p=2,
    Mahendran & Vedaldi p=6)."""
    return ((x.abs() ** p).mean(dim=(1, 2, 3)) + 1e-12) ** (1.0 / p)  # + 1e-12: finite gradient at x = 0


def total_variation(beta: float = 2.0, batch: Batch = None) -> Objective:
    """Total variation of the input image (:func:`total_variation_of`), as an objective to *subtract*:
    ``logit(7) - tv_weight * total_variation()``."""
    batch = _as_batch(batch)

    def fn(acts):
        return _select(total_variation_of(_read(acts, INPUT), beta), batch)
    return Objective(f"total_variation({beta:g}{_suffix(batch)})", fn, layers=[INPUT])


def lp_norm(p: float = 6.0, batch: Batch = None) -> Objective:
    """Lp norm of the input image (:func:`lp_norm_of`), as an objective to *subtract*:
    ``logit(7) - lp_weight * lp_norm(6)``."""
    batch = _as_batch(batch)

    def fn(acts):
        return _select(lp_norm_of(_read(acts, INPUT), p), batch)
    return Objective(f"lp_norm({p:g}{_suffix(batch)})", fn, layers=[INPUT])


def l2_of(x: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel of images ``x (N, C, H, W)`` -> ``(N,)``: the L2 decay of Simonyan et al. (2014) and
    Yosinski et al. (2015), which keeps the pixels the class does not need at the background (0)."""
    return (x ** 2).mean(dim=(1, 2, 3))


def l2(batch: Batch = None) -> Objective:
    """L2 decay of the input image (:func:`l2_of`), as an objective to *subtract*: ``logit(7) - 10 * l2()``."""
    batch = _as_batch(batch)

    def fn(acts):
        return _select(l2_of(_read(acts, INPUT)), batch)
    return Objective(f"l2({_suffix(batch)[2:]})", fn, layers=[INPUT])


def gram_similarity_of(a: torch.Tensor) -> torch.Tensor:
    """For activations ``a (N, C, H, W)`` (or ``(N, C)``), the mean cosine similarity ``(N,)`` of each image's Gram
    matrix ``G_i = A_i A_i^T / (H W)`` (``A_i``: ``(C, H*W)``) to those of the *other* images of the batch.

    1 when all images have the same style of features, lower when they differ (Olah, Mordvintsev & Schubert, 2017,
    "Feature Visualization", section Diversity, https://distill.pub/2017/feature-visualization/; Gram matrices from
    Gatys, Ecker & Bethge, 2015). One image alone: 0.
    """
    n = a.shape[0]
    flat = a.reshape(n, a.shape[1], -1)
    gram = flat @ flat.transpose(1, 2) / flat.shape[2]                     # (N, C, C)
    g = torch.nn.functional.normalize(gram.reshape(n, -1), dim=1, eps=1e-8)  # (N, C*C), unit rows
    cosine = g @ g.T                                                       # (N, N)
    off = cosine.sum(dim=1) - cosine.diagonal()
    return off / max(n - 1, 1)


def diversity(layer: str) -> Objective:
    """Diversity of a batch at ``layer`` (:func:`gram_similarity_of`), as an objective to *subtract*:
    ``logit([7] * 4) - 100 * diversity("conv2")`` gives four *different* 7s in one batch, each image pushed away
    from the Gram matrices (the feature "style") of the others (Olah, Mordvintsev & Schubert, 2017)."""

    def fn(acts):
        return gram_similarity_of(_read(acts, layer))
    return Objective(f"diversity({layer})", fn, layers=[layer])


__all__ = ["Objective", "logit", "channel", "neuron", "total_variation", "lp_norm", "l2", "diversity",
           "total_variation_of", "lp_norm_of", "l2_of", "gram_similarity_of"]
