"""Input checks shared by every entry point: a clear ``ValueError`` (a wrong value) or ``TypeError`` (a wrong kind
of thing) that names the argument, what was expected and what came, raised by nnlab before torch sees the input.

| check               | accepts                                                                          |
|---------------------|----------------------------------------------------------------------------------|
| :func:`check_images`  | a float tensor (N, C, H, W), N, H, W > 0, every value finite                    |
| :func:`check_finite`  | a float tensor of any shape (maps, vectors, data matrices), every value finite  |
| :func:`check_target`  | None, a callable, an int >= 0, a sequence or tensor of ints >= 0 (no bool, no 3.7, no '3') |
| :func:`check_index`   | one int >= 0 (a class, a feature = a channel, a row or a col), below ``upper``   |
| :func:`check_indices` | an int or a sequence / tensor of ints >= 0, below ``upper``                      |
| :func:`check_size`    | an int >= ``minimum`` (k, batch_size, a window side, a number of steps)         |
| :func:`check_number`  | a finite real number, optionally >= ``minimum``                                  |

A negative index is rejected, not read Python's way: ``target=-1`` must not quietly mean "the last class".
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence

import torch


def _describe(value: Any) -> str:
    """A short description of what came: the type, and the value or shape."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _first_bad(x: torch.Tensor) -> str:
    """Where the first non-finite value of ``x`` is, and how many there are."""
    bad = ~torch.isfinite(x)
    where = tuple(int(i) for i in bad.nonzero()[0])
    return f"{int(bad.sum())} non-finite value(s), the first {x[where].item()} at index {where}"


def check_finite(x: torch.Tensor, what: str = "x") -> torch.Tensor:
    """Raise unless ``x`` is a real tensor with every value finite (no NaN, no inf). Returns ``x`` unchanged.

    A single NaN pixel makes every logit NaN, and then every map is either NaN or plausible nonsense."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {_describe(x)}")
    if x.is_complex():
        raise TypeError(f"{what} must be a real tensor, got {x.dtype}")
    if x.dtype == torch.bool:
        raise TypeError(f"{what} must be a numeric tensor, got {x.dtype}")
    if x.is_floating_point() and x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what} must be finite (no NaN or inf), got {_first_bad(x)}")
    return x


def check_images(x: torch.Tensor, channels: Optional[int] = None, size: Optional[Sequence[int]] = None,
                 what: str = "x") -> torch.Tensor:
    """Raise ``ValueError`` unless ``x`` is a floating-point tensor (N, C, H, W) with N, C, H, W > 0 and every
    value finite; ``channels`` and ``size`` (H, W), when given, must match too. Returns ``x`` unchanged."""
    expected = f"(N, {channels if channels else 'C'}, {size[0] if size else 'H'}, {size[1] if size else 'W'})"
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor of shape {expected}, got {type(x).__name__}")
    if x.ndim != 4 or (channels and x.shape[1] != channels) or (size and tuple(x.shape[2:]) != tuple(size)):
        hint = " (add the batch dimension with x[None])" if x.ndim == 3 else ""
        raise ValueError(f"{what} must have shape {expected}, got {tuple(x.shape)}{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch: expected {expected} with N >= 1, got {tuple(x.shape)}")
    if 0 in x.shape[1:]:
        raise ValueError(f"{what} must have C, H, W >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{what} must be a floating-point tensor (images in [0, 1]), got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what} must be finite images (no NaN or inf), got {_first_bad(x)}")
    return x


def _integral(value: Any) -> bool:
    """An integer of Python, numpy or torch (a 0-d integer tensor), bool excluded."""
    if isinstance(value, bool) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        return False
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 and not value.is_floating_point() and not value.is_complex()
    if type(value).__name__ == "bool_":          # numpy.bool_ is not an Integral, but be explicit
        return False
    return isinstance(value, numbers.Integral)


def check_index(value: Any, what: str = "index", upper: Optional[int] = None) -> int:
    """One index, an int in ``[0, upper)`` (``upper=None``: no upper bound). Returns it as an ``int``.

    Rejected with ``TypeError``: bool (``True`` is not class 1), floats (also 3.0 and ``tensor(3.)``), strings.
    Rejected with ``ValueError``: negative values (``-1`` is not "the last one") and values >= ``upper``."""
    if not _integral(value):
        raise TypeError(f"{what} must be an int >= 0, got {_describe(value)}")
    index = int(value)
    if index < 0:
        raise ValueError(f"{what} must be >= 0 (a negative index does not count from the end here), got {index}")
    if upper is not None and index >= upper:
        raise ValueError(f"{what} must lie in [0, {upper - 1}], got {index}")
    return index


def check_indices(value: Any, what: str = "indices", upper: Optional[int] = None,
                  n: Optional[int] = None) -> torch.Tensor:
    """An int, or a sequence / 1-d tensor of ints, each in ``[0, upper)``: returned as a long tensor ``(K,)``
    (``(1,)`` for one int). ``n``, when given, is the number of indices expected (one int is repeated ``n``
    times). Same rejections as :func:`check_index`; an empty sequence is rejected too."""
    if _integral(value):
        indices = torch.tensor([check_index(value, what, upper)])
        return indices.expand(n).clone() if n is not None else indices
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
            raise TypeError(f"{what} must hold integers >= 0, got {_describe(value)}")
        indices = value.detach().cpu().long().reshape(-1)
    elif isinstance(value, (str, bytes)) or not isinstance(value, Sequence) and not hasattr(value, "__array__"):
        raise TypeError(f"{what} must be an int or a sequence of ints >= 0, got {_describe(value)}")
    else:
        items = list(value.tolist() if hasattr(value, "tolist") else value)
        for i, item in enumerate(items):
            if isinstance(item, (list, tuple)) or not _integral(item):
                raise TypeError(f"{what} must hold integers >= 0, got {_describe(item)} at position {i}")
        indices = torch.tensor([int(i) for i in items], dtype=torch.long)
    if indices.numel() == 0:
        raise ValueError(f"{what} must hold at least one index, got an empty {type(value).__name__}")
    if int(indices.min()) < 0:
        raise ValueError(f"{what} must be >= 0 (a negative index does not count from the end here), got "
                         f"{indices.tolist()}")
    if upper is not None and int(indices.max()) >= upper:
        raise ValueError(f"{what} must lie in [0, {upper - 1}], got {indices.tolist()}")
    if n is not None and len(indices) != n:
        raise ValueError(f"{what} must be an int or {n} ints (one per image), got {len(indices)} values")
    return indices


def check_target(target: Any, what: str = "target") -> Any:
    """The ``target`` argument of every method, checked before any forward pass: ``None``, a callable, an int
    >= 0, or a sequence / tensor of ints >= 0 (returned as a long tensor). Bool, non-integral numbers
    (``3.7``, ``tensor(3.7)``, ``tensor([1.5, 2.5])``), strings (``'3'``) and negative classes raise."""
    if target is None or callable(target):
        return target
    if _integral(target):
        return check_index(target, what)
    return check_indices(target, what)


def check_size(value: Any, what: str = "size", minimum: int = 1) -> int:
    """An int >= ``minimum`` (``k``, ``batch_size``, a window side ...), returned as ``int``; bool, floats (2.5,
    also 2.0) and strings raise ``TypeError``, smaller values ``ValueError``."""
    if not _integral(value):
        raise TypeError(f"{what} must be an int >= {minimum}, got {_describe(value)}")
    if int(value) < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {int(value)}")
    return int(value)


def check_number(value: Any, what: str = "value", minimum: Optional[float] = None) -> float:
    """A finite real number (int or float, not bool), ``>= minimum`` when given; returned as ``float``."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a real number, got {_describe(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {number}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {number}")
    return number


class ModelRunError(ValueError, RuntimeError):
    """The model could not run on the input: a ``ValueError`` (bad input for this model) that is still the
    ``RuntimeError`` torch raised, for code that catches that."""


class running:
    """``with running(model, x):`` around a forward pass: an error torch raises inside the model (a wrong number of
    channels, a wrong dtype, an image too small for its layers) becomes a ``ValueError`` that says which input the
    model could not run on, with torch's message; the original error is chained (``__cause__``)."""

    def __init__(self, model, x: torch.Tensor, what: str = "x"):
        self.model, self.x, self.what = model, x, what

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if kind is not None and issubclass(kind, RuntimeError) and not issubclass(kind, NotImplementedError):
            shape = tuple(self.x.shape) if isinstance(self.x, torch.Tensor) else type(self.x).__name__
            dtype = f" {self.x.dtype}" if isinstance(self.x, torch.Tensor) else ""
            first = str(err).strip().splitlines()[0] if str(err).strip() else kind.__name__
            raise ModelRunError(f"{type(self.model).__name__} cannot run on {self.what} of shape {shape}{dtype} "
                             f"(wrong number of channels, dtype or image size for this model?): {first}") from err
        return False


def check_scores(scores: torch.Tensor, what: str = "the target scores") -> torch.Tensor:
    """Raise ``ValueError`` when the model's scores are not finite: an input with huge values or a broken model
    would otherwise give a NaN map or, worse, a plausible one."""
    if not bool(torch.isfinite(scores.detach()).all()):
        raise ValueError(f"{what} are not finite ({_first_bad(scores.detach())}): the model's output overflows "
                         f"or is NaN for this input (values too large? NaN weights?)")
    return scores
