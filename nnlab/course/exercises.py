"""Self-checking exercises for the labs.

Each exercise is registered once, here, with its reference solution and fixed inputs::

    exercise("0.1", "flatten an image into a vector", function="flatten",
             reference=_flatten_reference, cases=lambda: [(torch.rand(2, 1, 28, 28),)],
             hint="use x.reshape(N, -1)")

In a lab, after the student's function, a check cell runs::

    flatten = nnlab.course.exercises.check("0.1", flatten)

It calls the student's function and the reference on the same inputs and prints a verdict: passed, what differs
(with a hint), or "not done yet" when the function still raises ``NotImplementedError``. Unless it passed, it
returns the reference, so the rest of the lab runs with a correct function (and says so).

Grading (:mod:`nnlab.course.grade`) uses :func:`verify`, which returns the verdict instead of printing it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

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


# Lab 01: images as vectors and templates ----------------------------------------------------------------
def _cosine_similarity_reference(a, b):
    """All cosines a_i . b_j / (|a_i| |b_j|): a (N, D), b (M, D) -> (N, M) (nnlab.templates)."""
    from nnlab.templates.similarity import cosine_similarity

    return cosine_similarity(a, b)


def _lab01_cosine_cases():
    g = torch.Generator().manual_seed(10)
    return [(torch.tensor([[3.0, 4.0], [1.0, 0.0]]), torch.tensor([[6.0, 8.0], [0.0, 2.0], [-1.0, 0.0]])),
            (torch.randn(5, 20, generator=g), torch.randn(7, 20, generator=g)),
            (torch.rand(4, 2576, generator=g), torch.rand(6, 2576, generator=g))]


def _nearest_neighbour_reference(train_x, train_labels, x, similarity):
    """Label of the most similar training vector: train_x (M, D), train_labels (M,), x (N, D) -> (N,)."""
    from nnlab.templates.similarity import nearest_neighbour_predict

    return nearest_neighbour_predict(train_x, train_labels, x, similarity)


def _lab01_nearest_neighbour_cases():
    from nnlab.templates.similarity import VECTOR_SIMILARITIES

    g = torch.Generator().manual_seed(11)
    train_x, train_labels = torch.randn(40, 12, generator=g), torch.randint(0, 5, (40,), generator=g)
    x = torch.randn(15, 12, generator=g)
    return [(train_x, train_labels, x, VECTOR_SIMILARITIES["euclidean"]), (train_x, train_labels, x, VECTOR_SIMILARITIES["cosine"]),
            (train_x, train_labels, 3 * train_x[:6], VECTOR_SIMILARITIES["cosine"])]


exercise("1.1", "cosine similarity", "cosine_similarity", _cosine_similarity_reference, _lab01_cosine_cases,
         hint="divide each row by its length (a.norm(dim=1, keepdim=True)), then one matrix product a @ b.T "
              "gives all N x M cosines.")
exercise("1.2", "the 1-nearest-neighbour classifier", "nearest_neighbour_predict", _nearest_neighbour_reference,
         _lab01_nearest_neighbour_cases,
         hint="scores = similarity(x, train_x) has shape (N, M); the most similar training item is the argmax "
              "of each row (dim=1), and its label is train_labels[that index].")


def _contrast_normalise_reference(x):
    """Every row of x (N, D) minus its mean, divided by its standard deviation (D - 1) -> (N, D)."""
    x = x - x.mean(dim=1, keepdim=True)
    return x / x.std(dim=1, keepdim=True)


def _lab01_contrast_cases():
    g = torch.Generator().manual_seed(13)
    x = torch.rand(6, 2576, generator=g)
    return [(torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]]),), (torch.randn(5, 20, generator=g),), (x,),
            (0.6 * x + 0.3,)]


exercise("1.3", "contrast normalisation", "contrast_normalise", _contrast_normalise_reference, _lab01_contrast_cases,
         hint="x.mean(dim=1, keepdim=True) and x.std(dim=1, keepdim=True) are (N, 1): they broadcast over the D "
              "pixels of each row.")


# Lab 02: hidden units -----------------------------------------------------------------------------------
def _top_hidden_units_reference(weights, target, k):
    """weights (n_classes, hidden) = W2; the k hidden units with the largest weight to class target, largest
    first: indices (k,) (nnlab.templates.top_hidden_units)."""
    return weights[target].topk(k).indices


def _lab02_cases():
    g = torch.Generator().manual_seed(12)
    return [(torch.tensor([[0.5, -1.0, 2.0, 0.1], [0.0, 3.0, -2.0, 1.0]]), 0, 2),
            (torch.randn(40, 300, generator=g), 7, 5), (torch.randn(10, 50, generator=g), 3, 10)]


exercise("2.1", "top hidden units of a class", "top_hidden_units", _top_hidden_units_reference, _lab02_cases,
         hint="row `target` of the weights holds every hidden unit's weight to that class; "
              "weights[target].topk(k) returns the values and the indices of the k largest.")


def _unit_contributions_reference(W1, b1, W2, x, target):
    """Mean contribution W2[target, j] * mean_n relu(W1 x_n + b1)_j of every hidden unit -> (hidden,)
    (nnlab.templates.top_hidden_units with x)."""
    return W2[target] * torch.relu(x @ W1.T + b1).mean(0)


def _lab02_contribution_cases():
    g = torch.Generator().manual_seed(14)
    return [(torch.tensor([[1.0, -1.0], [0.5, 0.5], [-1.0, 0.0]]), torch.tensor([0.0, -1.0, 0.5]),
             torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]]), 0),
            (torch.randn(30, 20, generator=g), torch.randn(30, generator=g), torch.randn(5, 30, generator=g),
             torch.rand(7, 20, generator=g), 3)]


exercise("2.2", "the contribution of each hidden unit to a class score", "unit_contributions",
         _unit_contributions_reference, _lab02_contribution_cases,
         hint="h = torch.relu(x @ W1.T + b1) is (N, hidden); W2[target] is (hidden,): multiply it by h.mean(0).")


# Lab 03: feature maps -----------------------------------------------------------------------------------
def _receptive_field_reference(layers):
    """[(kernel, stride, padding), ...] from the input up -> (size, jump, start) of the last layer's units:
    size R += (k-1) J, start S -= p J, jump J *= s, from R = J = 1, S = 0 (nnlab.features.receptive_fields)."""
    size, jump, start = 1, 1, 0
    for kernel, stride, padding in layers:
        size += (kernel - 1) * jump
        start -= padding * jump
        jump *= stride
    return size, jump, start


def _lab03_cases():
    mnist_cnn = [(5, 1, 2), (2, 2, 0), (3, 1, 1), (2, 2, 0), (3, 1, 1)]
    return [([(3, 1, 0)],), ([(3, 1, 1), (3, 1, 1)],), (mnist_cnn[:3],), (mnist_cnn,),
            ([(7, 2, 3), (3, 2, 1), (3, 1, 1), (3, 1, 1)],)]


exercise("3.1", "receptive field of a stack of conv/pool layers", "receptive_field_stack",
         _receptive_field_reference, _lab03_cases,
         hint="go from the input up, starting from size 1, jump 1, start 0; a layer adds (k-1) * jump to the size, "
              "moves the start by -padding * jump, and multiplies the jump by its stride.")


# Lab 04: deconvnet --------------------------------------------------------------------------------------
def _max_unpool_reference(r, switches, size):
    """Max-unpooling: r (N, C, h, w) placed at the flat positions ``switches`` (N, C, h, w) of a zero
    (N, C, H, W) map, size = (H, W); equal to F.max_unpool2d for non-overlapping pooling windows."""
    N, C = r.shape[:2]
    out = torch.zeros(N, C, size[0] * size[1], dtype=r.dtype)
    out.scatter_(2, switches.flatten(2), r.flatten(2))
    return out.reshape(N, C, *size)


def _lab04_cases():
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(4)
    cases = []
    for shape in [(1, 1, 4, 4), (2, 3, 8, 8), (1, 2, 7, 9)]:
        _, switches = F.max_pool2d(torch.randn(*shape, generator=g), 2, return_indices=True)
        r = torch.randn(*switches.shape, generator=g)
        cases.append(((r, switches, shape[-2:]), {}))
    return cases


exercise("4.1", "max-unpooling with switches", "max_unpool", _max_unpool_reference, _lab04_cases,
         hint="start from zeros of shape (N, C, H*W) and put each value of r at its switch: "
              "out.scatter_(2, switches.flatten(2), r.flatten(2)); then reshape to (N, C, H, W).")


def _deconvnet_projection_reference(model, x, layer, feature):
    """The deconvnet projection (Zeiler & Fergus, 2014) of feature ``feature`` (an int, whole map kept) of
    ``layer`` for x (N, C, H, W) -> (N, C, H, W): unpool with the switches, rectify, transposed filter, layer after
    layer (nnlab.features.project)."""
    from nnlab.features.deconvnet import project

    return project(model, x, layer, feature=feature)


def _lab04_projection_cases():
    from nnlab.models.architectures import MnistCNN

    g = torch.Generator().manual_seed(40)
    cases = []
    # Random-weight copies of the lab's CNN (no cached model needed); features alive on these inputs.
    for seed, layer, feature, n in [(0, "conv3", 5, 2), (1, "conv2", 7, 3), (2, "conv1", 3, 1), (3, "relu3", 41, 2)]:
        with torch.random.fork_rng():                     # leave the caller's random state alone
            torch.manual_seed(seed)
            model = MnistCNN().eval()
        cases.append((model, torch.rand(n, 1, 28, 28, generator=g), layer, feature))
    return cases


exercise("4.2", "the deconvnet projection, layer by layer", "deconvnet_projection", _deconvnet_projection_reference,
         _lab04_projection_cases, atol=1e-7,
         hint="forward through layers_up_to(model, layer) recording sizes and max-pool switches; keep channel "
              "`feature` rectified, zero elsewhere; then in reverse: MaxPool2d -> F.max_unpool2d with its switches, "
              "ReLU -> clamp(min=0) (not the forward mask), Conv2d -> F.conv_transpose2d(r, m.weight, None, "
              "m.stride, m.padding).")


# Lab 05: saliency and guided backpropagation ------------------------------------------------------------
def _saliency_reference(model, x, target):
    """Gradient of the pre-softmax score out[i, target[i]] with respect to x (N, C, H, W) -> (N, C, H, W)
    (nnlab.attribution.Saliency)."""
    x = x.clone().requires_grad_(True)
    scores = model(x)[torch.arange(len(x)), target]
    (grads,) = torch.autograd.grad(scores.sum(), x)
    return grads


def _lab05_saliency_cases():
    import torch.nn as nn

    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 3)).eval()
    g = torch.Generator().manual_seed(5)
    return [(model, torch.rand(2, 1, 8, 8, generator=g), torch.tensor([0, 2])),
            (model, torch.rand(3, 1, 8, 8, generator=g), torch.tensor([1, 1, 0]))]


def _guided_relu_backward_reference(x, grad_out):
    """Guided backpropagation through a ReLU: grad_out * [x > 0] * [grad_out > 0] (Springenberg et al., 2015)."""
    return grad_out * (x > 0) * (grad_out > 0)


def _lab05_guided_cases():
    g = torch.Generator().manual_seed(6)
    return [(torch.tensor([-1.0, 2.0, 3.0, 0.0]), torch.tensor([5.0, -1.0, 4.0, 2.0])),
            (torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g))]


exercise("5.1", "the saliency map", "saliency", _saliency_reference, _lab05_saliency_cases,
         hint="x = x.clone().requires_grad_(); scores = model(x)[torch.arange(len(x)), target] (one pre-softmax "
              "score per image); torch.autograd.grad(scores.sum(), x)[0]. Summing is fine: image i's score depends "
              "only on image i.")
exercise("5.2", "the guided ReLU backward rule", "guided_relu_backward", _guided_relu_backward_reference,
         _lab05_guided_cases,
         hint="keep grad_out only where the forward input was positive (x > 0) AND grad_out itself is positive; "
              "multiply by the two boolean masks.")


def _fool_reference(model, x, target, step, steps):
    """A fooling image (CS231n): from a copy of x (1, C, H, W), at most ``steps`` times: stop if the model predicts
    ``target``, else x <- clamp(x + step * g / ||g||, 0, 1) with g = d model(x)[0, target] / dx (L2 norm over all
    pixels). Returns the final image (1, C, H, W)."""
    x = x.clone()
    for _ in range(steps):
        with torch.no_grad():
            if int(model(x).argmax(1)[0]) == target:
                break
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(model(x)[0, target], x)
        x = (x.detach() + step * g / g.norm()).clamp(0, 1)
    return x.detach()


def _lab05_fool_cases():
    g = torch.Generator().manual_seed(50)
    x0 = (0.3 + 0.2 * torch.randn(2, 1, 12, 12, generator=g)).clamp(0, 1)
    return [(_tiny_classifier(0), x0[:1], 2, 0.1, 50),       # fooled after a few steps: the stop matters
            (_tiny_classifier(1), x0[1:], 1, 0.1, 50),
            (_tiny_classifier(0), x0[:1], 2, 0.05, 4),       # not fooled within 4 steps: all 4 are taken
            (_tiny_classifier(1), x0[1:], 3, 0.1, 10)]       # already predicted: returned unchanged


exercise("5.3", "a fooling image", "fool", _fool_reference, _lab05_fool_cases,
         hint="x = x.clone(); for _ in range(steps): first, under torch.no_grad(), break if "
              "model(x).argmax(1)[0] == target; then x.requires_grad_(True), g = torch.autograd.grad(model(x)[0, "
              "target], x)[0], and x = (x.detach() + step * g / g.norm()).clamp(0, 1) (normalise by the L2 norm of "
              "the whole gradient). Return x.detach().", atol=1e-4)


# Lab 06: class activation maps --------------------------------------------------------------------------
def _class_activation_map_reference(acts, fc_weight, classes):
    """CAM_c = sum_k W[c, k] A_k: acts (N, K, h, w), fc_weight (n_classes, K), classes (N,) -> (N, 1, h, w)
    (nnlab.attribution.cam.CAM)."""
    weights = fc_weight[classes]                                       # (N, K)
    return (weights[:, :, None, None] * acts).sum(dim=1, keepdim=True)


def _lab06_cases():
    g = torch.Generator().manual_seed(60)
    return [(torch.tensor([[[[1.0, 2.0]], [[3.0, -4.0]]]]), torch.tensor([[2.0, 1.0], [0.0, -1.0]]), torch.tensor([0])),
            (torch.rand(3, 64, 8, 8, generator=g), torch.randn(10, 64, generator=g), torch.tensor([3, 0, 9]))]


exercise("6.1", "CAM from the feature maps and the linear weights", "class_activation_map",
         _class_activation_map_reference, _lab06_cases,
         hint="pick the weight row of each image's class: fc_weight[classes] is (N, K); reshape it to (N, K, 1, 1), "
              "multiply with acts (N, K, h, w) and sum over the channel dimension with keepdim=True.")


def _grad_cam_reference(acts, grads):
    """Grad-CAM = ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of the gradient d S_c / d A_k:
    acts, grads (N, K, h, w) -> (N, 1, h, w) (nnlab.attribution.cam.GradCAM, Selvaraju et al., 2017)."""
    alpha = grads.mean(dim=(2, 3))                                      # (N, K)
    return (alpha[:, :, None, None] * acts).sum(dim=1, keepdim=True).clamp(min=0)


def _lab06_gradcam_cases():
    """Fixed cases whose weighted sums are negative in places (a missing ReLU fails) and whose maps have
    h * w > 1 and non-square shapes (a sum instead of the mean fails); the last one is captured from a small
    conv net with nnlab.GradCAM's own layer hook."""
    g = torch.Generator().manual_seed(61)
    hand_acts = torch.tensor([[[[1.0, 0.0], [2.0, 1.0]], [[0.0, 3.0], [1.0, 0.0]]]])     # (1, 2, 2, 2)
    hand_grads = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]], [[-2.0, -1.0], [-1.0, 0.0]]]])  # alpha = (1, -1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(6, 5, 3),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(5, 3))
    torch.manual_seed(61)
    for m in net:
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    x = torch.rand(2, 1, 7, 9, generator=g)
    acts = net[:4](x).detach().requires_grad_()
    scores = net[4:](acts)[torch.arange(2), torch.tensor([0, 2])]
    (grads,) = torch.autograd.grad(scores.sum(), acts)
    return [(hand_acts, hand_grads),
            (torch.randn(3, 8, 4, 3, generator=g), torch.randn(3, 8, 4, 3, generator=g)),
            (acts.detach(), grads.detach())]


exercise("6.2", "Grad-CAM from the feature maps and their gradients", "grad_cam", _grad_cam_reference,
         _lab06_gradcam_cases,
         hint="alpha = grads.mean(dim=(2, 3)) is (N, K) (the mean, not the sum, over the h x w positions); "
              "weight the maps: (alpha[:, :, None, None] * acts).sum(dim=1, keepdim=True); then the ReLU: "
              ".clamp(min=0).")


# Lab 07: activation maximisation ------------------------------------------------------------------------
def _total_variation_reference(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """TV of images x (N, C, H, W) -> (N,): mean over (c, i, j) of (dy^2 + dx^2)^(beta/2), forward differences
    on the (H-1) x (W-1) top-left pixels (nnlab.featurevis.objectives.total_variation_of)."""
    from nnlab.featurevis.objectives import total_variation_of

    return total_variation_of(x, beta)


def _lab07_cases():
    g = torch.Generator().manual_seed(7)
    step = torch.tensor([[[[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [2.0, 2.0, 2.0]]]])
    return [((step,), {}), ((torch.rand(3, 1, 28, 28, generator=g),), {}),
            ((torch.rand(2, 3, 9, 7, generator=g),), {"beta": 1.0})]


exercise("7.1", "total variation of an image", "total_variation_of", _total_variation_reference, _lab07_cases,
         hint="dy = x[:, :, 1:, :-1] - x[:, :, :-1, :-1] and dx = x[:, :, :-1, 1:] - x[:, :, :-1, :-1] (both "
              "(N, C, H-1, W-1)); then ((dy**2 + dx**2) ** (beta / 2)).mean(dim=(1, 2, 3)).", atol=1e-4)


def _gradient_ascent_reference(model, classes, x0, steps: int = 20, lr: float = 0.05, tv_weight: float = 0.0):
    """The images (N, C, H, W) after ``steps`` Adam steps of ascent on logit(classes) - tv_weight * TV, clamped to
    [0, 1] after each step, started from ``x0`` (nnlab.featurevis.maximize with init=x0 and clamp(0, 1))."""
    from nnlab.featurevis.maximize import maximize
    from nnlab.featurevis.objectives import logit, total_variation
    from nnlab.featurevis.transforms import clamp

    objective = logit(list(classes)) - tv_weight * total_variation()
    return maximize(model, objective, shape=x0.shape, steps=steps, lr=lr, init=x0, transforms=[clamp(0.0, 1.0)],
                    threads=torch.get_num_threads(), progress=False).images


def _tiny_classifier(seed: int):
    """A small seeded conv net (N, 1, 12, 12) -> logits (N, 4): fixed, hand-built, no training, no data."""
    import torch.nn as nn

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10 * 10, 4))
    return net.eval()


def _lab07_ascent_cases():
    g = torch.Generator().manual_seed(70)
    x0 = (0.2 + 0.1 * torch.randn(3, 1, 12, 12, generator=g)).clamp(0, 1)
    return [((_tiny_classifier(0), [0, 1, 3], x0), {"steps": 15, "lr": 0.05, "tv_weight": 0.0}),
            ((_tiny_classifier(1), [2, 2, 0], x0), {"steps": 15, "lr": 0.1, "tv_weight": 5.0})]


exercise("7.2", "the gradient-ascent loop", "gradient_ascent", _gradient_ascent_reference, _lab07_ascent_cases,
         hint="x = x0.clone().requires_grad_(True); optimizer = torch.optim.Adam([x], lr=lr); at each step: "
              "score = model(x)[torch.arange(N), classes] - tv_weight * total_variation_of(x); zero the gradients, "
              "(-score.sum()).backward() (ascent: minimise the negative), optimizer.step(), then "
              "with torch.no_grad(): x.clamp_(0, 1). Return x.detach().", rtol=1e-3, atol=1e-4)


# Lab 08: t-SNE ------------------------------------------------------------------------------------------
def _perplexity_search_reference(d2: torch.Tensor, perplexity: float, tol: float = 1e-5, max_steps: int = 100):
    """Binary search of the precision beta = 1 / (2 sigma^2) of one point's Gaussian so that 2^H(p) = perplexity.

    d2: (M,) squared distances from the point to the M other points. Returns (p (M,), beta): p_j = exp(-beta d2_j)
    normalised, H(p) = -sum p_j log2 p_j within ``tol`` bits of log2(perplexity).
    """
    import math

    target = math.log2(perplexity)
    beta, beta_min, beta_max = 1.0, 0.0, math.inf
    for _ in range(max_steps):
        e = torch.exp(-beta * (d2 - d2.min()))        # (subtracting the smallest distance cancels in p)
        p = e / e.sum()
        H = float(-torch.special.xlogy(p, p).sum()) / math.log(2)
        if abs(H - target) <= tol:
            break
        if H > target:                                # too flat: a narrower Gaussian (larger beta)
            beta_min = beta
            beta = beta * 2 if beta_max == math.inf else (beta + beta_max) / 2
        else:                                         # too peaked: a wider Gaussian (smaller beta)
            beta_max = beta
            beta = beta / 2 if beta_min == 0.0 else (beta + beta_min) / 2
    return p, beta


def _lab08_search_cases():
    g = torch.Generator().manual_seed(8)
    near = torch.rand(60, generator=g, dtype=torch.float64) * 10
    far = torch.rand(200, generator=g, dtype=torch.float64) * 300 + 50
    return [((near, 5.0), {}), ((far, 30.0), {}), ((near, 20.0), {})]


def _tsne_gradient_reference(P: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """dKL(P||Q)/dy_i = 4 sum_j (p_ij - q_ij)(y_i - y_j)(1 + |y_i - y_j|^2)^-1, for P (N, N) and Y (N, 2)."""
    from nnlab.embedding.tsne import kl_gradient

    return kl_gradient(P, Y)


def _lab08_gradient_cases():
    from nnlab.embedding.affinities import joint_probabilities

    g = torch.Generator().manual_seed(8)
    X = torch.randn(30, 5, generator=g, dtype=torch.float64)
    P = joint_probabilities(X, 5.0)
    return [((P, torch.randn(30, 2, generator=g, dtype=torch.float64)), {}),
            ((P, 1e-2 * torch.randn(30, 2, generator=g, dtype=torch.float64)), {})]


exercise("8.1", "perplexity binary search", "perplexity_search", _perplexity_search_reference, _lab08_search_cases,
         hint="compute p = exp(-beta * d2) / sum, H = -sum p log2 p; if H is too high (too flat) increase beta: "
              "double it while no upper bound is known, else bisect between the bounds; the other way round when "
              "H is too low. Return (p, beta) with beta a float.", rtol=1e-3, atol=1e-7)
exercise("8.2", "gradient of the t-SNE KL divergence", "tsne_gradient", _tsne_gradient_reference,
         _lab08_gradient_cases,
         hint="w = 1 / (1 + squared distances) with w_ii = 0, Q = w / w.sum(), W = (P - Q) * w; then "
              "grad_i = 4 * (W.sum(1)[i] * y_i - (W @ Y)[i]).", rtol=1e-6, atol=1e-10)


# Lab 09: trusting explanations --------------------------------------------------------------------------
def _deletion_curve_reference(model, x, attr, target, step):
    """Deletion curve (Petsiuk et al., 2018): probability of class target[i] as the pixels of x (N, C, H, W) are set
    to 0, ``step`` at a time, by decreasing attr (N, 1, H, W) -> (N, ceil(H*W / step) + 1) (nnlab.evaluation.perturbation)."""
    from nnlab.evaluation.perturbation import deletion

    return deletion(model, x, attr, target, step=step).scores


def _lab09_cases():
    import torch.nn as nn

    with torch.random.fork_rng():
        torch.manual_seed(9)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()
    g = torch.Generator().manual_seed(9)
    return [((model, torch.rand(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g),
              torch.tensor([0, 2]), 16), {}),
            ((model, torch.rand(3, 1, 8, 8, generator=g), torch.randn(3, 1, 8, 8, generator=g),
              torch.tensor([1, 1, 0]), 5), {})]


exercise("9.1", "the deletion curve", "deletion_curve", _deletion_curve_reference, _lab09_cases,
         hint="order = attr.flatten(1).argsort(dim=1, descending=True); for k = 0 .. ceil(H*W / step), set the first "
              "min(k * step, H*W) pixels of the order to 0 in a copy of x (every channel), and record "
              "softmax(model(copy))[i, target[i]]; stack the k + 1 columns into (N, n_steps + 1).")
