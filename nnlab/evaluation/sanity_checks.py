"""Sanity checks for saliency maps: does a map change when the model it claims to explain changes?

Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim, "Sanity Checks for Saliency Maps", NeurIPS 2018,
https://arxiv.org/abs/1810.03292.

- **Model randomisation**: re-initialise the weights of the layers from the top (the logits) down and recompute the
  maps. ``"cascading"``: the randomised layers accumulate (after step k the top k layers are random);
  ``"independent"``: one layer alone is random at each step. A map that barely changes although the weights that
  made the decision are now random does not explain the model: it shows the image.
- **Data randomisation**: the same architecture trained on shuffled labels (it can only memorise): a map that
  explains the model must differ from the map of the model trained on the true labels.

Similarity to the original maps, one number per image (:data:`MAP_SIMILARITIES`):

| name           | what is compared                                                              |
|----------------|-------------------------------------------------------------------------------|
| `spearman_abs` | Spearman rank correlation of abs(attr) (summed over channels), as in the paper |
| `spearman`     | Spearman rank correlation of the signed maps (summed over channels)           |
| `ssim`         | structural similarity (SSIM) of the maps as shown: abs(attr) scaled to [0, 1]    |

The caller's model is never changed: every randomisation happens on a private copy.

Example::

    result = model_randomisation(Saliency(model), x, order="cascading")
    result.steps                   # ['original', 'fc', 'conv3', 'conv2', 'conv1']
    result.mean("spearman_abs")    # (5,) the mean similarity after each step
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence

import torch
import torch.nn as nn

from nnlab.core.checks import check_finite, check_images, check_number
from nnlab.core.hooks import get_layer
from nnlab.core.maps import normalize, reduce_channels
from nnlab.core.targets import Target, predicted_target


# --------------------------------------------------------------------------- similarity of two maps
def rank(values: torch.Tensor) -> torch.Tensor:
    """Rank of each value in its row, (N, D) -> (N, D) float64, 0-based; tied values share the mean of their ranks
    (``scipy.stats.rankdata(values, axis=1) - 1``)."""
    values = values.detach().cpu().double()
    order = values.argsort(dim=1)
    sorted_values = values.gather(1, order)
    ranks = torch.empty_like(values)
    for i in range(values.shape[0]):
        _, group, counts = torch.unique_consecutive(sorted_values[i], return_inverse=True, return_counts=True)
        last = counts.cumsum(0) - 1          # rank of the last member of each group of equal values
        first = last - counts + 1
        ranks[i, order[i]] = ((first + last) / 2).double()[group]
    return ranks


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b``: (N, D), (N, D) -> (N,).
    A constant row has no correlation with anything: 0 (by convention)."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    norms = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(norms > 0, (a * b).sum(1) / norms.clamp(min=1e-300), torch.zeros_like(norms))


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each pair of maps: the Pearson correlation of their ranks.
    a, b: (N, ...) -> (N,) float64 in [-1, 1]."""
    check_finite(a, "a"), check_finite(b, "b")
    if a.shape != b.shape or a.dim() < 2 or a.shape[0] == 0:
        raise ValueError(f"the two batches of maps must have the same shape (N, ...) with N >= 1, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return pearson(rank(a.flatten(1)), rank(b.flatten(1)))


def _as_maps(attr: torch.Tensor) -> torch.Tensor:
    """attr (N, C, h, w) -> (N, 1, h, w) (channels summed); a (N, h, w) batch gets its channel axis."""
    check_finite(attr, "attr")
    attr = attr.detach().cpu().float()
    if attr.dim() == 3:
        attr = attr[:, None]
    if attr.dim() != 4 or 0 in attr.shape:
        raise ValueError(f"attr must have shape (N, C, H, W) or (N, 1, h, w) with N, C, H, W >= 1, got "
                         f"{tuple(attr.shape)}")
    return attr


def spearman_abs(attr_a: torch.Tensor, attr_b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of the magnitudes abs(attr) summed over channels, (N,)."""
    return spearman(reduce_channels(_as_maps(attr_a), "abs_sum"), reduce_channels(_as_maps(attr_b), "abs_sum"))


def spearman_signed(attr_a: torch.Tensor, attr_b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of the signed maps summed over channels, (N,)."""
    return spearman(reduce_channels(_as_maps(attr_a), "sum"), reduce_channels(_as_maps(attr_b), "sum"))


def ssim(attr_a: torch.Tensor, attr_b: torch.Tensor, percentile: float = 99.0) -> torch.Tensor:
    """Structural similarity (Wang et al., 2004) of the maps as shown, (N,) float64.

    Each map is abs(attr) summed over channels, scaled to [0, 1] by its ``percentile`` (values above are clipped;
    :func:`nnlab.core.maps.normalize` with mode "abs"), then compared with ``skimage.metrics.structural_similarity``
    (window 7x7, or the largest odd size that fits a small layer map).
    """
    from skimage.metrics import structural_similarity

    percentile = check_number(percentile, "percentile", minimum=0)
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must lie in (0, 100], got {percentile}")

    a = normalize(reduce_channels(_as_maps(attr_a), "abs_sum"), "abs", percentile)[:, 0].double().numpy()
    b = normalize(reduce_channels(_as_maps(attr_b), "abs_sum"), "abs", percentile)[:, 0].double().numpy()
    if a.shape != b.shape:
        raise ValueError(f"the two batches of maps must have the same shape, got {a.shape} and {b.shape}")
    side = min(a.shape[1:])
    if side < 3:
        raise ValueError(f"SSIM needs maps of at least 3x3 pixels, got {a.shape[1:]}")
    window = min(7, side if side % 2 else side - 1)
    return torch.tensor([structural_similarity(a[i], b[i], data_range=1.0, win_size=window)
                         for i in range(len(a))], dtype=torch.float64)


#: name -> function (attr_a, attr_b) -> (N,) similarity of each pair of maps.
MAP_SIMILARITIES = {"spearman_abs": spearman_abs, "spearman": spearman_signed, "ssim": ssim}


def _check_measures(measures: Sequence[str]) -> None:
    unknown = [m for m in measures if m not in MAP_SIMILARITIES]
    if unknown:
        raise ValueError(f"unknown similarity {unknown}; choose from {list(MAP_SIMILARITIES)}")


def similarities(attr_a: torch.Tensor, attr_b: torch.Tensor,
                 measures: Sequence[str] = ("spearman_abs", "ssim")) -> Dict[str, torch.Tensor]:
    """``{measure: (N,) similarity of each pair of maps}`` for the named ``measures`` (see :data:`MAP_SIMILARITIES`)."""
    _check_measures(measures)
    return {m: MAP_SIMILARITIES[m](attr_a, attr_b) for m in measures}


# --------------------------------------------------------------------------- randomising layers
def randomisable_layers(model: nn.Module) -> List[str]:
    """Dotted names of the sub-modules that own parameters, in definition order (input to output for the lab
    models: ``['conv1', 'conv2', 'conv3', 'fc']`` for ``MnistCNN``)."""
    return [name for name, m in model.named_modules() if name and next(m.parameters(recurse=False), None) is not None]


def reinitialise(module: nn.Module, seed: int) -> None:
    """Draw new weights for ``module`` in place with PyTorch's default initialisation (``reset_parameters()``),
    seeded, leaving the global random state as it was."""
    if not hasattr(module, "reset_parameters"):
        raise ValueError(f"{type(module).__name__} has no reset_parameters(); pass layers=[...] with the layers "
                         f"to randomise (e.g. randomisable_layers(model))")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module.reset_parameters()


ORDERS = ("cascading", "independent")


def randomise_layers(model: nn.Module, order: str = "cascading", layers: Optional[Sequence[str]] = None,
                     seed: int = 0) -> Iterator[str]:
    """Randomise the layers of ``model`` **in place**, one step at a time; yield the name of the layer randomised.

    Changes ``model``: give it a copy (``copy.deepcopy(model)``). ``layers``: the order of randomisation
    (default: every layer with parameters, from the output back to the input, as in the paper).
    ``"cascading"``: the random layers accumulate; ``"independent"``: before each step the original weights are
    put back, so only the current layer is random. Layer k gets the seed ``seed + k`` in both orders.

    Example::

        copy_ = copy.deepcopy(model)
        for name in randomise_layers(copy_, "cascading"):
            print(name, accuracy(copy_, x, y))
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    layers = list(reversed(randomisable_layers(model))) if layers is None else list(layers)
    modules = [get_layer(model, name) for name in layers]  # ValueError listing the candidates for a wrong name
    original = copy.deepcopy(model.state_dict())
    for step, (name, module) in enumerate(zip(layers, modules)):
        if order == "independent":
            model.load_state_dict(original)
        reinitialise(module, seed + step)
        yield name


# --------------------------------------------------------------------------- the checks
@dataclass
class RandomisationResult:
    """The maps of a method after each randomisation step and their similarity to the original maps.

    steps:      ``["original", step 1, step 2, ...]`` (layer names, or "shuffled labels")
    maps:       ``{step: attr}`` the raw maps (N, C, H, W) or (N, 1, h, w) after each step
    similarity: ``{measure: (n_steps, N)}`` similarity of each image's map to its original map (row 0: 1)
    """

    method: str
    order: str
    steps: List[str]
    maps: Dict[str, torch.Tensor]
    similarity: Dict[str, torch.Tensor] = field(default_factory=dict)

    def mean(self, measure: str = "spearman_abs") -> torch.Tensor:
        """Mean similarity over the images after each step, (n_steps,)."""
        return self.similarity[measure].mean(1)

    def std(self, measure: str = "spearman_abs") -> torch.Tensor:
        """Standard deviation over the images after each step, (n_steps,)."""
        return self.similarity[measure].std(1)

    def table(self) -> str:
        """The mean (± std) similarity per step and measure, as a text table."""
        lines = [f"{self.method} ({self.order})", f"{'step':>16} " + " ".join(f"{m:>15}" for m in self.similarity)]
        for i, step in enumerate(self.steps):
            cells = [f"{self.similarity[m][i].mean():>8.3f} ± {self.similarity[m][i].std():.2f}"
                     for m in self.similarity]
            lines.append(f"{step:>16} " + " ".join(f"{c:>15}" for c in cells))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table()


def _check_method(method) -> None:
    if not isinstance(getattr(method, "model", None), nn.Module) or not callable(getattr(method, "attribute", None)):
        raise TypeError(f"method must be an attribution method bound to its model, e.g. Saliency(model) (an object "
                        f"with .model and .attribute(x, target)), got {type(method).__name__}")


def _method_name(method) -> str:
    return type(method).__name__


def model_randomisation(method, x: torch.Tensor, target: Target = None, order: str = "cascading",
                        layers: Optional[Sequence[str]] = None,
                        measures: Sequence[str] = ("spearman_abs", "ssim"), seed: int = 0,
                        progress: bool = False) -> RandomisationResult:
    """Model-parameter randomisation test: the maps of ``method`` as the layers of its model are re-initialised
    from the top down, and their similarity to the original maps.

    Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, https://arxiv.org/abs/1810.03292.

    Args:
        method: an attribution method bound to its model, e.g. ``Saliency(model)`` or ``GradCAM(model, "conv3")``
            (any object with ``.model`` and ``.attribute(x, target)``). It is deep-copied with its model, and only
            the copy is randomised: the caller's model and method are never changed.
        x: images (N, C, H, W).
        target: as for ``attribute``; ``None``: the class the *original* model predicts, kept for every step.
        order: ``"cascading"`` or ``"independent"`` (see :func:`randomise_layers`); layers, seed: idem.
        measures: names from :data:`MAP_SIMILARITIES`.
    Returns:
        a :class:`RandomisationResult`: steps ``["original", *layers]``, the maps, and ``similarity[measure]``
        of shape (1 + n_layers, N).

    Example::

        result = model_randomisation(GuidedBackprop(model), x, order="cascading")
        print(result.table())
    """
    from nnlab.core.progress import progress_bar as tqdm  # vanishes when done in notebooks

    check_images(x)
    _check_method(method)
    _check_measures(measures)
    private = copy.deepcopy(method)          # the method's model and layers are copied together
    layers = list(reversed(randomisable_layers(private.model))) if layers is None else list(layers)
    target = predicted_target(private.model, x, target, getattr(method, "output", None))
    original = private.attribute(x, target)
    result = RandomisationResult(_method_name(method), order, ["original"], {"original": original})
    steps = randomise_layers(private.model, order, layers, seed)
    for name in tqdm(steps, total=len(layers), desc=f"{order} randomisation", disable=not progress):
        result.steps.append(name)
        result.maps[name] = private.attribute(x, target)
    for measure in measures:
        compare = MAP_SIMILARITIES[measure]
        result.similarity[measure] = torch.stack([compare(original, result.maps[s]) for s in result.steps])
    return result


def data_randomisation(method, shuffled_model: nn.Module, x: torch.Tensor, target: Target = None,
                       measures: Sequence[str] = ("spearman_abs", "ssim")) -> RandomisationResult:
    """Data randomisation test: the maps of ``method`` for its model (trained on the true labels) and for the same
    architecture trained on shuffled labels, and their similarity.

    Adebayo et al., 2018, https://arxiv.org/abs/1810.03292, section 4.

    Args:
        method: an attribution method bound to the model trained on the true labels, e.g. ``Saliency(model)``.
        shuffled_model: the same architecture trained on shuffled labels (``pretrained("mnist_cnn_shuffled")``);
            its weights are loaded into a private copy of ``method``, so the same method settings (layer, ...) are
            used for both.
        target: as for ``attribute``; ``None``: the class the true-label model predicts (used for both models).
    Returns:
        a :class:`RandomisationResult` with steps ``["original", "shuffled labels"]``.

    Example::

        result = data_randomisation(Saliency(model), pretrained("mnist_cnn_shuffled"), x)
        result.mean("spearman_abs")[1]
    """
    check_images(x)
    _check_method(method)
    if not isinstance(shuffled_model, nn.Module):
        raise TypeError(f"shuffled_model must be a torch.nn.Module, got {type(shuffled_model).__name__}")
    _check_measures(measures)
    other = copy.deepcopy(method)
    try:
        other.model.load_state_dict(shuffled_model.state_dict())
    except RuntimeError as err:
        raise ValueError(f"shuffled_model must have the architecture of the method's model "
                         f"({type(method.model).__name__}): {err}") from err
    target = predicted_target(method.model, x, target, getattr(method, "output", None))
    original = method.attribute(x, target)
    shuffled = other.attribute(x, target)
    result = RandomisationResult(_method_name(method), "data", ["original", "shuffled labels"],
                                 {"original": original, "shuffled labels": shuffled})
    for measure in measures:
        compare = MAP_SIMILARITIES[measure]
        result.similarity[measure] = torch.stack([compare(original, original), compare(original, shuffled)])
    return result
