"""Self-checking exercises for the labs.

Each exercise is registered once, here, with its reference solution and fixed inputs::

    exercise("0.1", "flatten an image into a vector", function="flatten",
             reference=_flatten_reference, cases=lambda: [(torch.rand(2, 1, 28, 28),)],
             hint="use x.reshape(N, -1)")

In a lab, after the student's function, a check cell runs::

    flatten = nnlab.exercises.check("0.1", flatten)

It calls the student's function and the reference on the same inputs and prints a verdict: passed, what differs
(with a hint), or "not done yet" when the function still raises ``NotImplementedError``. Unless it passed, it
returns the reference, so the rest of the lab runs with a correct function (and says so).

Grading (:mod:`nnlab.grade`) uses :func:`verify`, which returns the verdict instead of printing it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch


@dataclass
class Exercise:
    id: str                       # "N.k": lab N, exercise k
    title: str
    function: str                 # the name of the student's function in the lab
    reference: Callable
    cases: Callable[[], list]     # () -> [args tuple or (args tuple, kwargs dict), ...], fixed (seeded) inputs
    hint: str = ""
    points: float = 1.0
    rtol: float = 1e-4
    atol: float = 1e-5


@dataclass
class Verdict:
    id: str
    status: str                   # "passed", "failed", "not attempted"
    message: str
    points: float = 0.0
    max_points: float = 1.0


EXERCISES: Dict[str, Exercise] = {}
RESULTS: Dict[str, Verdict] = {}  # the last verdict of each exercise checked in this kernel


def exercise(id: str, title: str, function: str, reference: Callable, cases: Callable[[], list], hint: str = "",
             points: float = 1.0, rtol: float = 1e-4, atol: float = 1e-5) -> Exercise:
    """Register an exercise (see the module docstring)."""
    EXERCISES[id] = Exercise(id, title, function, reference, cases, hint, points, rtol, atol)
    return EXERCISES[id]


def lab_exercises(lab: str) -> List[Exercise]:
    """The exercises of lab ``lab`` ("05" or "5"), in order."""
    number = str(int(lab))
    return [e for k, e in sorted(EXERCISES.items(), key=lambda kv: [int(p) for p in kv[0].split(".")])
            if k.split(".")[0] == number]


# --------------------------------------------------------------------------- comparing results
def _describe(value) -> str:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    return type(value).__name__


def compare(got, expected, rtol: float = 1e-4, atol: float = 1e-5, where: str = "result") -> Optional[str]:
    """None when ``got`` matches ``expected`` (tensors/arrays elementwise within tolerance, recursively through
    tuples, lists and dicts); else a sentence saying what differs."""
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        if not isinstance(got, (torch.Tensor, np.ndarray)):
            return f"{where} should be a {_describe(expected)}, got {_describe(got)}"
        got_t = torch.as_tensor(np.asarray(got.detach().cpu() if isinstance(got, torch.Tensor) else got))
        exp_t = torch.as_tensor(np.asarray(expected.detach().cpu() if isinstance(expected, torch.Tensor) else expected))
        if tuple(got_t.shape) != tuple(exp_t.shape):
            return f"{where} has shape {tuple(got_t.shape)}, expected {tuple(exp_t.shape)}"
        got_t, exp_t = got_t.double(), exp_t.double()
        if not torch.allclose(got_t, exp_t, rtol=rtol, atol=atol, equal_nan=True):
            diff = (got_t - exp_t).abs()
            index = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), tuple(diff.shape))) if diff.ndim else ()
            return (f"{where} differs: largest difference {diff.max().item():.3g} at index {index} "
                    f"(got {got_t[index].item():.4g}, expected {exp_t[index].item():.4g})")
        return None
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"{where} should be a sequence of {len(expected)} items, got {_describe(got)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            problem = compare(g, e, rtol, atol, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            return f"{where} should be a dict with keys {sorted(expected)}, got {_describe(got)}"
        for k in expected:
            problem = compare(got[k], expected[k], rtol, atol, f"{where}[{k!r}]")
            if problem:
                return problem
        return None
    if isinstance(expected, float) or isinstance(got, float):
        try:
            ok = bool(np.isclose(float(got), float(expected), rtol=rtol, atol=atol))
        except (TypeError, ValueError):
            ok = False
        return None if ok else f"{where} is {got!r}, expected {expected!r}"
    return None if got == expected else f"{where} is {got!r}, expected {expected!r}"


def _clone(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (tuple, list)):
        return type(value)(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- checking
def verify(id: str, student_fn: Optional[Callable]) -> Verdict:
    """Run ``student_fn`` against the reference on the exercise's fixed inputs; return the verdict."""
    if id not in EXERCISES:
        raise ValueError(f"unknown exercise {id!r}; registered: {', '.join(sorted(EXERCISES))}")
    ex = EXERCISES[id]
    if student_fn is None:
        return Verdict(id, "not attempted", f"no function named {ex.function}() was found", 0.0, ex.points)
    cases = ex.cases()
    for number, case in enumerate(cases, 1):
        args, kwargs = case if (len(case) == 2 and isinstance(case[1], dict) and isinstance(case[0], tuple)) \
            else (case, {})
        expected = ex.reference(*_clone(args), **_clone(kwargs))
        inputs = _clone(args), _clone(kwargs)
        try:
            got = student_fn(*inputs[0], **inputs[1])
        except NotImplementedError:
            return Verdict(id, "not attempted", "not done yet (it raises NotImplementedError)", 0.0, ex.points)
        except Exception as err:  # the student's code crashed: say how
            return Verdict(id, "failed", f"case {number} of {len(cases)} raised {type(err).__name__}: {err}",
                           0.0, ex.points)
        problem = compare(got, expected, ex.rtol, ex.atol)
        if problem is None:
            problem = compare(inputs, (args, kwargs), 0, 0, "your function's input")
            if problem:
                problem = "it changed its input in place (" + problem + ")"
        if problem:
            return Verdict(id, "failed", f"case {number} of {len(cases)}: {problem}", 0.0, ex.points)
    return Verdict(id, "passed", f"all {len(cases)} cases match the reference", ex.points, ex.points)


def check(id: str, student_fn: Optional[Callable]) -> Callable:
    """Check a student's function, print the verdict, and return the function the lab should go on with:
    the student's own when it passed, else the reference (the lab keeps running either way)."""
    verdict = verify(id, student_fn)
    RESULTS[id] = verdict
    ex = EXERCISES[id]
    if verdict.status == "passed":
        print(f"✅ Exercise {id} ({ex.title}): passed. {verdict.message}.")
        return student_fn
    if verdict.status == "not attempted":
        print(f"⏳ Exercise {id} ({ex.title}): {verdict.message}. The lab continues with the reference solution.")
    else:
        print(f"❌ Exercise {id} ({ex.title}): {verdict.message}.")
        if ex.hint:
            print(f"   Hint: {ex.hint}")
        print("   The lab continues with the reference solution; fix your function and run this cell again.")
    return ex.reference


# =========================================================================== the exercises of every lab
# Lab 00: getting started --------------------------------------------------------------------------------
def _flatten_reference(x: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) -> vectors (N, C*H*W), row-major."""
    return x.reshape(x.shape[0], -1)


def _unflatten_reference(v: torch.Tensor, shape) -> torch.Tensor:
    """Vectors (N, C*H*W) -> images (N, *shape)."""
    return v.reshape(v.shape[0], *shape)


def _lab00_cases():
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(3, 1, 28, 28, generator=g),), (torch.rand(2, 3, 5, 4, generator=g),)]


def _lab00_unflatten_cases():
    g = torch.Generator().manual_seed(1)
    return [((torch.rand(3, 784, generator=g), (1, 28, 28)), {}), ((torch.rand(2, 60, generator=g), (3, 5, 4)), {})]


exercise("0.1", "flatten images into vectors", "flatten", _flatten_reference, _lab00_cases,
         hint="x has shape (N, C, H, W); keep N and merge the rest: x.reshape(N, -1).")
exercise("0.2", "vectors back into images", "unflatten", _unflatten_reference, _lab00_unflatten_cases,
         hint="the inverse of flatten: v.reshape(N, *shape).")
