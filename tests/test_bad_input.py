"""Issue 18: the explicit bad inputs of the issue, one row each, at every entry point they reach.

Each case says what must happen: ``"error"`` (a ValueError / TypeError raised by nnlab's own code, whose message
names the argument) or ``"finite"`` (a result with every value finite). Whatever happens, the model (parameters,
buffers, train/eval mode, hooks) and the input must be unchanged. The tally (tried / clear error / finite /
other) is printed by ``test_tally``. Cases of rooms this suite does not own are marked xfail with the owner.

The harness (``outcome``, ``TinyCNN`` ...) is shared with ``tests/test_properties.py``.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import nnlab
from nnlab.attribution import (CAM, Deconvnet, GradCAM, GradientXInput, GuidedBackprop, GuidedGradCAM, Occlusion,
                               Saliency, SmoothGrad)
from nnlab.core.checks import check_images, check_index, check_indices, check_size, check_target
from nnlab.core.hooks import assert_no_hooks
from nnlab.evaluation import deletion, insertion, model_randomisation, pointing_game, spearman_abs
from nnlab.features import keep_feature, project, receptive_field, top_activations
from nnlab.templates import (nearest_neighbour_predict, nearest_neighbours, roughness, similarity, standardise,
                             top_hidden_units)

NNLAB_DIR = str(Path(nnlab.__file__).parent)


# --------------------------------------------------------------------------- the harness
class TinyCNN(nn.Module):
    """conv -> ReLU -> global average -> linear: 3 classes, CAM's architecture; 1 x 8 x 8 images."""

    def __init__(self, in_channels: int = 1, n_classes: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, n_classes)

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


class TupleCNN(TinyCNN):
    """Returns ``(logits, features)``, as detection / multi-head models do."""

    def forward(self, x):
        acts = self.relu(self.conv(x))
        return self.fc(self.pool(acts).flatten(1)), acts


class DictCNN(TinyCNN):
    """Returns ``{"logits": ..., "features": ...}`` (Hugging Face style)."""

    def forward(self, x):
        acts = self.relu(self.conv(x))
        return {"logits": self.fc(self.pool(acts).flatten(1)), "features": acts}


class MLP(nn.Module):
    """The one-hidden-layer net of the templates labs (layers fc1, relu, fc2)."""

    def __init__(self, d: int = 64, hidden: int = 5, n_classes: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.relu, self.fc2 = nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x.flatten(1))))


def images(n: int = 2, c: int = 1, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def nan_pixel(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[0, 0, 3, 4] = float("nan")
    return x


def tensors_in(value):
    """Every tensor / array / float in a result (tensors, tuples, dicts, dataclasses, floats)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, np.ndarray):
        yield torch.as_tensor(value)
    elif isinstance(value, float):
        yield torch.tensor(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from tensors_in(v)
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from tensors_in(v)
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from tensors_in(getattr(value, f.name))


def is_finite(value) -> bool:
    return all(bool(torch.isfinite(t.float()).all()) for t in tensors_in(value)
               if t.is_floating_point() or t.is_complex())


def clear_error(err: BaseException) -> bool:
    """A ValueError / TypeError raised by nnlab's own code (the last frame of the traceback is in nnlab/)."""
    if not isinstance(err, (ValueError, TypeError)):
        return False
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(NNLAB_DIR) and len(str(err)) > 10


def state(model: nn.Module):
    """What must not change on the caller's model."""
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()],
            [p.requires_grad for p in model.parameters()])


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a.isnan(), b.isnan())) and \
        bool(torch.equal(a.nan_to_num(), b.nan_to_num()))


def outcome(fn, model: nn.Module = None, inputs=()):
    """Run ``fn()``; return ``("error" | "finite" | "other", detail)``, and assert that ``model`` and ``inputs``
    (tensors) came back unchanged."""
    before = state(model) if model is not None else None
    copies = [t.clone() for t in inputs if isinstance(t, torch.Tensor)]
    try:
        result = fn()
        kind, detail = ("finite", "") if is_finite(result) else ("other", "non-finite result")
    except Exception as err:     # noqa: BLE001 -- the point is to classify it
        frame = traceback.extract_tb(err.__traceback__)[-1]
        kind = "error" if clear_error(err) else "other"
        detail = f"{type(err).__name__}: {err} [{Path(frame.filename).name}:{frame.lineno}]"
    if model is not None:
        params, modes, grads = state(model)
        assert modes == before[1], "the model's train/eval mode changed"
        assert grads == before[2], "requires_grad of the model's parameters changed"
        assert all(same_tensor(params[k], before[0][k]) for k in params), "the model's weights changed"
        assert_no_hooks(model)
    for t, c in zip([t for t in inputs if isinstance(t, torch.Tensor)], copies):
        assert same_tensor(t, c), "the input was modified"
    return kind, detail


# --------------------------------------------------------------------------- the cases of the issue
MODEL, X = TinyCNN(), images()
TUPLE, DICT = TupleCNN(), DictCNN()
BAD_TARGETS = {"True": True, "3.7": 3.7, "tensor(3.7)": torch.tensor(3.7), "tensor([1.5, 2.5])": torch.tensor([1.5, 2.5]),
               "'3'": "3", "-1": -1, "[0, -1]": [0, -1], "class 3 of 3": 3, "[[0], [1]]": [[0], [1]]}
ATTRIBUTIONS = {
    "Saliency": lambda m, **kw: Saliency(m, **kw),
    "GradientXInput": lambda m, **kw: GradientXInput(m, **kw),
    "SmoothGrad": lambda m, **kw: SmoothGrad(m, n_samples=2, **kw),
    "GuidedBackprop": lambda m, **kw: GuidedBackprop(m, **kw),
    "Deconvnet": lambda m, **kw: Deconvnet(m, **kw),
    "Occlusion": lambda m, **kw: Occlusion(m, window=4, **kw),
    "CAM": lambda m, **kw: CAM(m, "relu", **kw),
    "GradCAM": lambda m, **kw: GradCAM(m, "relu", **kw),
    "GuidedGradCAM": lambda m, **kw: GuidedGradCAM(m, "relu", **kw),
}
EMBEDDING = "embedding (t-SNE): not this suite's room"
FEATUREVIS = "featurevis (objectives): not this suite's room"


def _tsne(X_):
    return nnlab.TSNE(max_iter=250, perplexity=2.0, random_state=0).fit_transform(X_)


def _case_list():
    """(id, fn, model, inputs, expected, xfail reason or None)."""
    cases = []
    nan_x = nan_pixel(X)
    for name, make in ATTRIBUTIONS.items():
        cases.append((f"{name}: one NaN pixel", lambda make=make: make(MODEL).attribute(nan_x), MODEL, (nan_x,),
                      "error", None))
        cases.append((f"{name}: inf pixel", lambda make=make: make(MODEL).attribute(X.masked_fill(X > 0.9, math.inf)),
                      MODEL, (X,), "error", None))
        cases.append((f"{name}: empty batch", lambda make=make: make(MODEL).attribute(X[:0]), MODEL, (X,),
                      "error", None))
        for tname, t in BAD_TARGETS.items():
            cases.append((f"{name}: target {tname}", lambda make=make, t=t: make(MODEL).attribute(X, t), MODEL, (X,),
                          "error", None))
        cases.append((f"{name}: tuple-returning model, no output=", lambda make=make: make(TUPLE).attribute(X, 1),
                      TUPLE, (X,), "error", None))
        cases.append((f"{name}: tuple-returning model, output=0",
                      lambda make=make: make(TUPLE, output=0).attribute(X, 1), TUPLE, (X,), "finite", None))
        cases.append((f"{name}: dict-returning model, output='logits'",
                      lambda make=make: make(DICT, output="logits").attribute(X), DICT, (X,), "finite", None))
        if name != "CAM":   # CAM explains classes only
            cases.append((f"{name}: tuple-returning model, callable target",
                          lambda make=make: make(TUPLE).attribute(X, lambda out: out[0][:, 2]), TUPLE, (X,),
                          "finite", None))
        cases.append((f"{name}: good input", lambda make=make: make(MODEL).attribute(X, [0, 2]), MODEL, (X,),
                      "finite", None))
    cases += [
        ("Saliency: output=2.5", lambda: Saliency(TUPLE, output=2.5), None, (), "error", None),
        ("Saliency: output=5 of a pair", lambda: Saliency(TUPLE, output=5).attribute(X), TUPLE, (X,), "error", None),
        ("Saliency: output='nope' of a dict", lambda: Saliency(DICT, output="nope").attribute(X), DICT, (X,),
         "error", None),
        ("Saliency: x int64", lambda: Saliency(MODEL).attribute((X * 255).long()), MODEL, (), "error", None),
        ("Saliency: x without batch axis", lambda: Saliency(MODEL).attribute(X[0]), MODEL, (X,), "error", None),
        ("Saliency: x a numpy array", lambda: Saliency(MODEL).attribute(X.numpy()), MODEL, (), "error", None),
        ("Occlusion: window 0", lambda: Occlusion(MODEL, window=0), None, (), "error", None),
        ("Occlusion: window 2.5", lambda: Occlusion(MODEL, window=2.5), None, (), "error", None),
        ("Occlusion: stride (2, 0)", lambda: Occlusion(MODEL, window=2, stride=(2, 0)), None, (), "error", None),
        ("Occlusion: window larger than image", lambda: Occlusion(MODEL, window=9).attribute(X), MODEL, (X,),
         "error", None),
        ("Occlusion: batch_size 0", lambda: Occlusion(MODEL, batch_size=0), None, (), "error", None),
        ("Occlusion: NaN baseline", lambda: Occlusion(MODEL, baseline=float("nan")), None, (), "error", None),
        ("SmoothGrad: n_samples 0", lambda: SmoothGrad(MODEL, n_samples=0), None, (), "error", None),
        ("SmoothGrad: noise_level NaN", lambda: SmoothGrad(MODEL, noise_level=float("nan")), None, (), "error", None),
        ("top_activations: NaN image", lambda: top_activations(MODEL, nan_x, "conv", k=1, progress=False), MODEL,
         (nan_x,), "error", None),
        ("top_activations: k=0", lambda: top_activations(MODEL, X, "conv", k=0, progress=False), MODEL, (X,),
         "error", None),
        ("top_activations: batch_size=0",
         lambda: top_activations(MODEL, X, "conv", k=1, batch_size=0, progress=False), MODEL, (X,), "error", None),
        ("top_activations: empty batch", lambda: top_activations(MODEL, X[:0], "conv", k=1, progress=False), MODEL,
         (X,), "error", None),
        ("top_activations: feature -1",
         lambda: top_activations(MODEL, X, "conv", k=1, features=[-1], progress=False), MODEL, (X,), "error", None),
        ("top_activations: feature 3.7",
         lambda: top_activations(MODEL, X, "conv", k=1, features=3.7, progress=False), MODEL, (X,), "error", None),
        ("top_activations: feature 4 of 4",
         lambda: top_activations(MODEL, X, "conv", k=1, features=[4], progress=False), MODEL, (X,), "error", None),
        ("top_activations: k larger than N", lambda: top_activations(MODEL, X, "conv", k=5, progress=False), MODEL,
         (X,), "finite", None),
        ("top_activations: wrong layer", lambda: top_activations(MODEL, X, "conv9", k=1, progress=False), MODEL,
         (X,), "error", None),
        ("project: NaN pixel", lambda: project(MODEL, nan_x, "conv", feature=0), MODEL, (nan_x,), "error", None),
        ("project: feature -1", lambda: project(MODEL, X, "conv", feature=-1), MODEL, (X,), "error", None),
        ("project: feature True", lambda: project(MODEL, X, "conv", feature=True), MODEL, (X,), "error", None),
        ("project: feature tensor(1.5)", lambda: project(MODEL, X, "conv", feature=torch.tensor(1.5)), MODEL, (X,),
         "error", None),
        ("project: position (-1, 0)", lambda: project(MODEL, X, "conv", 0, "max", position=(-1, 0)), MODEL, (X,),
         "error", None),
        ("project: position (8, 0)", lambda: project(MODEL, X, "conv", 0, "max", position=(8, 0)), MODEL, (X,),
         "error", None),
        ("keep_feature: NaN acts", lambda: keep_feature(nan_x, 0), None, (nan_x,), "error", None),
        ("receptive_field: position (-1, 0)", lambda: receptive_field(MODEL, "conv", (-1, 0)), MODEL, (), "error",
         None),
        ("receptive_field: position (1.5, 0)", lambda: receptive_field(MODEL, "conv", (1.5, 0)), MODEL, (), "error",
         None),
        ("nearest_neighbours: k = N + 1", lambda: nearest_neighbours(X, X, k=3), None, (X,), "error", None),
        ("nearest_neighbours: k = N", lambda: nearest_neighbours(X, X, k=2), None, (X,), "finite", None),
        ("nearest_neighbours: k = 0", lambda: nearest_neighbours(X, X, k=0), None, (X,), "error", None),
        ("nearest_neighbours: k = 1.5", lambda: nearest_neighbours(X, X, k=1.5), None, (X,), "error", None),
        ("nearest_neighbours: NaN item", lambda: nearest_neighbours(X, nan_x), None, (nan_x,), "error", None),
        ("nearest_neighbours: empty train", lambda: nearest_neighbours(X[:0], X), None, (X,), "error", None),
        ("nearest_neighbours: batch_size 0", lambda: nearest_neighbours(X, X, batch_size=0), None, (X,), "error",
         None),
        ("nearest_neighbour_predict: 2-d labels",
         lambda: nearest_neighbour_predict(X, torch.zeros(2, 1), X), None, (X,), "error", None),
        ("similarity: NaN", lambda: similarity(nan_x, X, "cosine"), None, (nan_x,), "error", None),
        ("standardise: NaN reference", lambda: standardise(X, nan_x), None, (X, nan_x), "error", None),
        ("roughness: NaN", lambda: roughness(nan_x), None, (nan_x,), "error", None),
        ("top_hidden_units: target -1", lambda: top_hidden_units(MLP(), -1), None, (), "error", None),
        ("top_hidden_units: k = 0", lambda: top_hidden_units(MLP(), 0, k=0), None, (), "error", None),
        ("top_hidden_units: k > hidden", lambda: top_hidden_units(MLP(), 0, k=6), None, (), "error", None),
        ("deletion: NaN pixel", lambda: deletion(MODEL, nan_x, None), MODEL, (nan_x,), "error", None),
        ("deletion: empty batch", lambda: deletion(MODEL, X[:0], None), MODEL, (X,), "error", None),
        ("deletion: NaN map", lambda: deletion(MODEL, X, nan_x), MODEL, (X, nan_x), "error", None),
        ("deletion: step 2.5", lambda: deletion(MODEL, X, None, step=2.5), MODEL, (X,), "error", None),
        ("deletion: batch_size 0", lambda: deletion(MODEL, X, None, batch_size=0), MODEL, (X,), "error", None),
        ("insertion: target -1", lambda: insertion(MODEL, X, X, target=-1), MODEL, (X,), "error", None),
        ("insertion: target 3.7", lambda: insertion(MODEL, X, X, target=3.7), MODEL, (X,), "error", None),
        ("deletion: good input", lambda: deletion(MODEL, X, X, target=[0, 1]), MODEL, (X,), "finite", None),
        ("pointing_game: NaN map", lambda: pointing_game(nan_x, torch.tensor([[0, 0, 4, 4]] * 2)), None, (nan_x,),
         "error", None),
        ("pointing_game: NaN box", lambda: pointing_game(X, torch.tensor([[0, 0, float("nan"), 4]] * 2)), None,
         (X,), "error", None),
        ("pointing_game: negative tolerance",
         lambda: pointing_game(X, torch.tensor([[0, 0, 4, 4]] * 2), tolerance=-1), None, (X,), "error", None),
        ("spearman_abs: NaN map", lambda: spearman_abs(nan_x, X), None, (nan_x, X), "error", None),
        ("model_randomisation: NaN pixel", lambda: model_randomisation(Saliency(MODEL), nan_x), MODEL, (nan_x,),
         "error", None),
        ("model_randomisation: target True", lambda: model_randomisation(Saliency(MODEL), X, True), MODEL, (X,),
         "error", None),
        ("model_randomisation: not a method", lambda: model_randomisation(MODEL, X), MODEL, (X,), "error", None),
        ("model_randomisation: tuple model, output=0",
         lambda: model_randomisation(Saliency(TUPLE, output=0), X, measures=("spearman_abs",)), TUPLE, (X,),
         "finite", None),
        ("check_target: numpy bool", lambda: check_target(np.bool_(True)), None, (), "error", None),
        ("check_index: 3.0", lambda: check_index(3.0, "feature"), None, (), "error", None),
        ("check_indices: empty", lambda: check_indices([], "features"), None, (), "error", None),
        ("check_size: True", lambda: check_size(True, "k"), None, (), "error", None),
        ("check_images: (0, 1, 8, 8)", lambda: check_images(X[:0]), None, (), "error", None),
        # other rooms: reported, not fixed here
        ("TSNE: NaN data", lambda: _tsne(torch.rand(20, 5).masked_fill(torch.eye(20, 5) > 0, math.nan)), None, (),
         "error", EMBEDDING),
        ("TSNE: inf data", lambda: _tsne(torch.rand(20, 5).masked_fill(torch.eye(20, 5) > 0, math.inf)), None, (),
         "error", EMBEDDING),
        ("TSNE: identical points", lambda: _tsne(torch.ones(20, 5)), None, (), "finite", EMBEDDING),
        ("TSNE: n_components 0", lambda: nnlab.TSNE(n_components=0).fit_transform(torch.rand(20, 5)), None, (),
         "error", EMBEDDING),
        ("knn_accuracy: k >= N", lambda: nnlab.embedding.knn_accuracy(torch.rand(5, 2), torch.arange(5), k=5),
         None, (), "error", EMBEDDING),
        ("logit(-1)", lambda: nnlab.featurevis.objectives.logit(-1), None, (), "error", FEATUREVIS),
        ("channel('conv', -1)", lambda: nnlab.featurevis.objectives.channel("conv", -1), None, (), "error",
         FEATUREVIS),
        ("logit(3.7)", lambda: nnlab.featurevis.objectives.logit(3.7), None, (), "error", FEATUREVIS),
    ]
    return cases


CASES = _case_list()


@pytest.mark.parametrize("name, fn, model, inputs, expected, owner", CASES, ids=[c[0] for c in CASES])
def test_case(name, fn, model, inputs, expected, owner):
    kind, detail = outcome(fn, model, inputs)
    if owner is not None and kind != expected:
        pytest.xfail(f"{owner}: got {kind} ({detail})")
    assert kind == expected, f"{name}: expected {expected}, got {kind}: {detail}"


def test_tally(capsys):
    """The tally of the issue's explicit cases; 0 'other' (silent wrong answers, crashes inside torch) in the
    rooms this suite owns."""
    tally, ours, report = Counter(), Counter(), []
    for name, fn, model, inputs, expected, owner in CASES:
        kind, detail = outcome(fn, model, inputs)
        tally["tried"] += 1
        tally[kind] += 1
        wrong = kind != expected
        if owner is None:
            ours[kind] += 1
            ours["not as expected"] += wrong
        elif wrong:
            report.append(f"  {name} [{owner.split(':')[0]}]: expected {expected}, got {kind}: {detail[:120]}")
    with capsys.disabled():
        print(f"\nexplicit cases: tried {tally['tried']}, clear error {tally['error']}, finite {tally['finite']}, "
              f"other {tally['other']}; in the owned rooms: clear error {ours['error']}, finite {ours['finite']}, "
              f"other {ours['other']}, not as expected {ours['not as expected']}")
        if report:
            print("other rooms, not as expected:\n" + "\n".join(report))
    assert ours["other"] == 0 and ours["not as expected"] == 0


def test_error_messages_name_the_argument():
    """The message says which argument, what was expected and what came."""
    with pytest.raises(ValueError, match=r"x must be finite images .*nan at index \(0, 0, 3, 4\)"):
        Saliency(MODEL).attribute(nan_pixel(X))
    with pytest.raises(TypeError, match=r"target must be an int or a sequence of ints >= 0, got bool True"):
        Saliency(MODEL).attribute(X, True)
    with pytest.raises(TypeError, match=r"target must hold integers >= 0, got .*float32"):
        Saliency(MODEL).attribute(X, torch.tensor([1.5, 2.5]))
    with pytest.raises(TypeError, match=r"target must be an int or a sequence of ints >= 0, got float 3.7"):
        Saliency(MODEL).attribute(X, 3.7)
    with pytest.raises(TypeError, match=r"target must be an int or a sequence of ints >= 0, got str '3'"):
        Saliency(MODEL).attribute(X, "3")
    with pytest.raises(ValueError, match=r"target must be >= 0 \(a negative index does not count from the end"):
        Saliency(MODEL).attribute(X, -1)
    with pytest.raises(ValueError, match=r"model returned a tuple of 2 items; pick the scores with output=0"):
        Saliency(TUPLE).attribute(X)
    with pytest.raises(ValueError, match=r"x is an empty batch"):
        Occlusion(MODEL).attribute(X[:0])
    with pytest.raises(ValueError, match=r"k must be an int >= 1, got 0"):
        top_activations(MODEL, X, "conv", k=0, progress=False)
    with pytest.raises(ValueError, match=r"k must be between 1 and the number of training items \(2\), got 3"):
        nearest_neighbours(X, X, k=3)
    with pytest.raises(ValueError, match=r"x must be finite"):       # not "atol must be >= 0"
        CAM(MODEL, "relu").attribute(nan_pixel(X))


def test_output_selector_explains_the_same_scores():
    """output=0 of (logits, acts), output='logits' of a dict and a callable target on the tuple all give the map of
    the plain model."""
    plain = Saliency(MODEL).attribute(X, [0, 2])
    TUPLE.load_state_dict(MODEL.state_dict()), DICT.load_state_dict(MODEL.state_dict())
    torch.testing.assert_close(Saliency(TUPLE, output=0).attribute(X, [0, 2]), plain)
    torch.testing.assert_close(Saliency(DICT, output="logits").attribute(X, [0, 2]), plain)
    torch.testing.assert_close(Saliency(TUPLE, output=lambda out: out[0]).attribute(X, [0, 2]), plain)
    picked = Saliency(TUPLE).attribute(X, lambda out: out[0].gather(1, torch.tensor([[0], [2]]))[:, 0])
    torch.testing.assert_close(picked, plain)
    torch.testing.assert_close(GradCAM(TUPLE, "relu", output=0).attribute(X, 1), GradCAM(MODEL, "relu").attribute(X, 1))
    torch.testing.assert_close(CAM(DICT, "relu", output="logits").attribute(X, 1), CAM(MODEL, "relu").attribute(X, 1))


def test_index_targets_still_work():
    """What must keep working: numpy / torch ints, N ints, a long tensor, a 1-element tensor."""
    expected = Saliency(MODEL).attribute(X, [1, 1])
    for target in (1, np.int64(1), torch.tensor(1), torch.tensor([1, 1]), (1, 1), np.array([1, 1])):
        torch.testing.assert_close(Saliency(MODEL).attribute(X, target), expected)
