"""Deletion and insertion curves (Petsiuk et al., 2018): exact values on a hand-built model, the same numbers as
the paper's per-step loop, the caller's model and input never changed, and better-than-random maps on MNIST."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlab.attribution import GradientXInput
from nnlab.evaluation import PerturbationCurve, auc, deletion, insertion, perturbation_curve, pixel_order


class WeightedSum(nn.Module):
    """x (N, 1, 2, 2) -> logits [sum_i w_i x_i, 0] with w = [4, 3, 2, 1]: p(class 0) = sigmoid(w . x)."""

    def forward(self, x):
        w = torch.tensor([4., 3, 2, 1])
        s = (x.flatten(1) * w).sum(1)
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def sigmoid(values):
    return torch.sigmoid(torch.tensor(values))


ONES = torch.ones(1, 1, 2, 2)
BY_WEIGHT = torch.tensor([4., 3, 2, 1]).view(1, 1, 2, 2)        # the perfect map: the pixels' weights


def test_deletion_and_insertion_exact_values_on_a_weighted_sum():
    model = WeightedSum()
    curve = deletion(model, ONES, BY_WEIGHT, target=0, step=1)
    # removing the pixels by decreasing weight: scores 10, 6, 3, 1, 0
    assert torch.allclose(curve.scores[0], sigmoid([10., 6, 3, 1, 0]))
    assert torch.allclose(curve.fractions, torch.tensor([0, .25, .5, .75, 1]))
    curve = insertion(model, ONES, BY_WEIGHT, target=0, step=1)
    assert torch.allclose(curve.scores[0], sigmoid([0., 4, 7, 9, 10]))
    worst = deletion(model, ONES, -BY_WEIGHT, target=0, step=1)            # least important first
    assert torch.allclose(worst.scores[0], sigmoid([10., 9, 7, 4, 0]))
    assert curve.mode == "insertion" and isinstance(curve, PerturbationCurve)


def test_a_partial_last_step_and_the_logit_score():
    curve = deletion(WeightedSum(), ONES, BY_WEIGHT, target=0, step=3, score="logit")
    assert torch.allclose(curve.fractions, torch.tensor([0, .75, 1]))     # ceil(4 / 3) = 2 steps
    assert torch.allclose(curve.scores[0], torch.tensor([10., 1, 0]))


def test_baseline_tensor_replaces_the_pixels():
    blurred = torch.full((1, 1, 2, 2), 0.5)
    curve = deletion(WeightedSum(), ONES, BY_WEIGHT, target=0, step=2, baseline=blurred, score="logit")
    assert torch.allclose(curve.scores[0], torch.tensor([10., 6.5, 5]))


def test_auc_is_the_trapezoidal_rule():
    fractions = torch.tensor([0., .25, .5, .75, 1])
    scores = torch.tensor([[1., 1, 0, 0, 0], [1., 1, 1, 1, 1]])
    assert torch.allclose(auc(fractions, scores), torch.tensor([0.375, 1.0]))
    curve = deletion(WeightedSum(), ONES, BY_WEIGHT, target=0, step=1)
    assert curve.auc.item() == pytest.approx(float(auc(curve.fractions, curve.scores)))
    assert curve.mean_auc == pytest.approx(curve.auc.item())


# --------------------------------------------------------------------------- the pixel order
def test_pixel_order_sorts_by_decreasing_value_and_breaks_ties_at_random():
    attr = torch.tensor([[[[0.1, 0.9], [0.5, 0.3]]]])
    assert pixel_order(attr, (2, 2)).tolist() == [[1, 2, 3, 0]]
    constant = torch.zeros(1, 1, 4, 4)
    a, b = pixel_order(constant, (4, 4), seed=0), pixel_order(constant, (4, 4), seed=1)
    assert sorted(a[0].tolist()) == list(range(16)) and not torch.equal(a, b)
    assert torch.equal(pixel_order(None, (4, 4), n=1, seed=0), a)          # attr=None: the random order
    with pytest.raises(ValueError, match="needs the number of images"):
        pixel_order(None, (4, 4))


def test_layer_maps_are_upsampled_and_channels_summed():
    layer_map = torch.tensor([[[[0., 1], [3, 2]]]])                      # (1, 1, 2, 2) for an 8x8 image
    order = pixel_order(layer_map, (8, 8))
    upsampled = F.interpolate(layer_map, size=(8, 8), mode="bilinear", align_corners=False).flatten()
    assert (upsampled[order[0]].diff() <= 0).all()
    two_channels = torch.stack([BY_WEIGHT[:, 0], -2 * BY_WEIGHT[:, 0]], dim=1)   # sums to -BY_WEIGHT
    assert pixel_order(two_channels, (2, 2)).tolist() == [[3, 2, 1, 0]]


# --------------------------------------------------------------------------- against the paper's loop
class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.conv(x))).flatten(1))


def loop_deletion(model, x, attr, target, step):
    """The RISE reference loop (Petsiuk et al.'s CausalMetric, deletion with a black substrate), one image."""
    height, width = x.shape[-2:]
    order = attr.sum(0).flatten().argsort(descending=True)
    n_steps = (height * width + step - 1) // step
    current = x.clone()
    scores = []
    for i in range(n_steps + 1):
        with torch.no_grad():
            scores.append(F.softmax(model(current[None]), 1)[0, target])
        coords = order[step * i: step * (i + 1)]
        current.view(x.shape[0], -1)[:, coords] = 0
    return torch.stack(scores)


def test_same_numbers_as_the_per_step_loop_of_the_paper_for_colour_images():
    torch.manual_seed(0)
    model = SmallCNN().eval()
    g = torch.Generator().manual_seed(1)
    x, attr = torch.rand(3, 3, 6, 6, generator=g), torch.randn(3, 3, 6, 6, generator=g)
    curve = deletion(model, x, attr, target=[0, 2, 4], step=5, batch_size=7)
    for i, t in enumerate([0, 2, 4]):
        assert torch.allclose(curve.scores[i], loop_deletion(model, x[i], attr[i], t, 5), atol=1e-6)


def test_never_changes_the_model_or_the_input_and_uses_the_predicted_class():
    torch.manual_seed(0)
    model = SmallCNN().train()                                     # batch norm in training mode
    state = copy.deepcopy(model.state_dict())
    x = torch.rand(2, 3, 6, 6)
    x_before, attr = x.clone(), torch.randn(2, 1, 6, 6)
    deletion(model, x, attr, step=9)
    assert torch.equal(x, x_before) and model.training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    model.eval()
    predicted = model(x).argmax(1)
    assert torch.allclose(deletion(model, x, attr, step=9).scores,
                          deletion(model, x, attr, target=predicted, step=9).scores)


def test_bad_arguments_raise_value_error():
    model = WeightedSum()
    with pytest.raises(ValueError, match="mode"):
        perturbation_curve(model, ONES, BY_WEIGHT, mode="remove")
    with pytest.raises(ValueError, match="step"):
        deletion(model, ONES, BY_WEIGHT, step=0)
    with pytest.raises(ValueError, match="maps for"):
        deletion(model, ONES, BY_WEIGHT.repeat(2, 1, 1, 1))
    with pytest.raises(ValueError, match="score"):
        deletion(model, ONES, BY_WEIGHT, score="softmax")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        deletion(model, ONES[0], BY_WEIGHT)


# --------------------------------------------------------------------------- on the MNIST CNN
def test_gradient_times_input_beats_the_random_order_on_mnist():
    """On 32 test digits, deleting pixels in the order of abs(gradient x input) destroys the prediction faster
    than a random order (mean deletion AUC lower by > 0.2) and inserting them restores it faster (insertion AUC
    higher by > 0.2)."""
    from nnlab import data
    from nnlab.models import pretrained

    model = pretrained("mnist_cnn", progress=False)
    x = data.mnist("test").images[:32]
    attr = GradientXInput(model).attribute(x).abs()
    assert deletion(model, x, attr).mean_auc < deletion(model, x, None).mean_auc - 0.2
    assert insertion(model, x, attr).mean_auc > insertion(model, x, None).mean_auc + 0.2
