"""Sanity checks (Adebayo et al., 2018): rank correlation and SSIM against scipy / by definition, the cascading
and independent orders on a tiny net, the caller's model never changed, and the paper's finding on the MNIST CNN."""
import copy

import pytest
import torch
import torch.nn as nn
from scipy.stats import rankdata, spearmanr

from nnlab.attribution import GuidedBackprop, Saliency
from nnlab.attribution import GradCAM
from nnlab.core import assert_no_hooks
from nnlab.models import MnistCNN
from nnlab.evaluation import data_randomisation, model_randomisation, randomisable_layers, randomise_layers, rank, reinitialise, similarities, spearman, spearman_abs, spearman_signed, ssim


class TinyCNN(nn.Module):
    """conv1 -> ReLU -> conv2 -> ReLU -> global average pooling -> fc (3 classes), for (N, 1, 8, 8) inputs."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.relu2(self.conv2(self.relu1(self.conv1(x)))).mean(dim=(2, 3)))


def tiny_cnn(seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return TinyCNN().eval()


def images(n=4, seed=0, size=8):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- similarity measures
def test_rank_gives_tied_values_their_mean_rank_like_scipy():
    values = torch.tensor([[3., 1, 2, 2, 5, 1], [0, 0, 0, 1, 1, 2]])
    assert torch.equal(rank(values), torch.from_numpy(rankdata(values.numpy(), axis=1) - 1))


def test_spearman_matches_scipy_with_and_without_ties():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 50, generator=g), torch.randn(5, 50, generator=g)
    a[:, :20] = 0                                   # many ties, as in a rectified map
    b = (b * 2).round() / 2                          # more ties
    ours = spearman(a, b)
    for i in range(5):
        assert ours[i].item() == pytest.approx(spearmanr(a[i].numpy(), b[i].numpy())[0], abs=1e-12)


def test_spearman_of_a_constant_map_is_zero_by_convention():
    assert spearman(torch.zeros(1, 10), torch.arange(10.)[None]).item() == 0.0


def test_similarity_of_a_map_with_itself_and_with_its_negative():
    attr = torch.randn(3, 2, 9, 9, generator=torch.Generator().manual_seed(1))
    same = similarities(attr, attr, ("spearman_abs", "spearman", "ssim"))
    for measure, values in same.items():
        assert torch.allclose(values, torch.ones(3, dtype=values.dtype)), measure
    assert torch.allclose(spearman_abs(attr, -attr), torch.ones(3, dtype=torch.float64))     # magnitudes agree
    assert torch.allclose(spearman_signed(attr, -attr), -torch.ones(3, dtype=torch.float64))  # signs disagree
    assert torch.allclose(ssim(attr, -attr), torch.ones(3, dtype=torch.float64))


def test_ssim_is_lower_for_a_different_map_and_works_on_small_layer_maps():
    g = torch.Generator().manual_seed(2)
    a = torch.rand(4, 1, 7, 7, generator=g)
    assert (ssim(a, torch.rand(4, 1, 7, 7, generator=g)) < 0.5).all()
    small = torch.rand(2, 1, 4, 4, generator=g)
    assert torch.allclose(ssim(small, small), torch.ones(2, dtype=torch.float64))   # window shrunk to 3x3
    with pytest.raises(ValueError, match="3x3"):
        ssim(torch.rand(2, 1, 2, 2), torch.rand(2, 1, 2, 2))
    with pytest.raises(ValueError, match="unknown similarity"):
        similarities(a, a, ["hog"])


# --------------------------------------------------------------------------- randomising layers
def test_randomisable_layers_are_the_layers_with_weights_in_order():
    assert randomisable_layers(MnistCNN()) == ["conv1", "conv2", "conv3", "fc"]
    assert randomisable_layers(TinyCNN()) == ["conv1", "conv2", "fc"]


def test_reinitialise_is_seeded_and_leaves_the_global_random_state_alone():
    a, b = nn.Linear(5, 3), nn.Linear(5, 3)
    state = torch.random.get_rng_state()
    reinitialise(a, seed=7)
    reinitialise(b, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    with pytest.raises(ValueError, match="reset_parameters"):
        reinitialise(nn.ReLU(), seed=0)


def _changed_layers(model, original):
    return [name for name in ("conv1", "conv2", "fc")
            if not torch.equal(getattr(model, name).weight, getattr(original, name).weight)]


def test_cascading_randomises_from_the_top_down_and_accumulates():
    original = tiny_cnn()
    model = copy.deepcopy(original)
    seen = []
    for name in randomise_layers(model, "cascading", seed=0):
        seen.append(name)
        assert sorted(_changed_layers(model, original)) == sorted(seen)
    assert seen == ["fc", "conv2", "conv1"]


def test_independent_randomises_one_layer_alone_with_the_same_weights_as_cascading():
    original = tiny_cnn()
    independent, cascading = copy.deepcopy(original), copy.deepcopy(original)
    steps = zip(randomise_layers(independent, "independent"), randomise_layers(cascading, "cascading"))
    for name, same_name in steps:
        assert name == same_name
        assert _changed_layers(independent, original) == [name]
        assert torch.equal(getattr(independent, name).weight, getattr(cascading, name).weight)
    with pytest.raises(ValueError, match="order"):
        next(randomise_layers(copy.deepcopy(original), "bottom_up"))
    with pytest.raises(ValueError, match="candidates"):
        next(randomise_layers(copy.deepcopy(original), layers=["conv9"]))


# --------------------------------------------------------------------------- the checks
def test_model_randomisation_never_changes_the_model_the_method_or_the_input():
    model = tiny_cnn()
    model.train()                                       # any mode is respected and restored
    model.conv1.weight.requires_grad_(False)
    state = copy.deepcopy(model.state_dict())
    method = GradCAM(model, "conv2")
    x = images()
    x_before = x.clone()
    result = model_randomisation(method, x, order="cascading", measures=("spearman_abs", "spearman", "ssim"))
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert model.training and not model.conv1.weight.requires_grad and model.conv2.weight.requires_grad
    assert method.model is model and method.layer is model.conv2
    assert torch.equal(x, x_before)
    assert_no_hooks(model)
    assert result.steps == ["original", "fc", "conv2", "conv1"]
    for measure, values in result.similarity.items():
        assert values.shape == (4, 4)
        assert torch.allclose(values[0], torch.ones(4, dtype=values.dtype)), measure


def test_each_step_is_the_method_on_the_randomised_copy_with_the_original_target():
    model = tiny_cnn()
    x = images(6)
    predicted = model(x).argmax(1)
    result = model_randomisation(Saliency(model), x, order="independent", seed=3)
    copy_ = copy.deepcopy(model)
    for name in randomise_layers(copy_, "independent", seed=3):
        expected = Saliency(copy_).attribute(x, predicted)
        assert torch.allclose(result.maps[name], expected)
        assert torch.allclose(result.similarity["spearman_abs"][result.steps.index(name)],
                              spearman_abs(result.maps["original"], expected))
    again = model_randomisation(Saliency(model), x, order="independent", seed=3)
    assert all(torch.equal(again.maps[s], result.maps[s]) for s in result.steps)      # seeded


def test_data_randomisation_compares_the_two_models_with_the_same_method_settings():
    model, other = tiny_cnn(0), tiny_cnn(1)
    x = images()
    same = data_randomisation(Saliency(model), copy.deepcopy(model), x)
    assert torch.allclose(same.mean("spearman_abs"), torch.ones(2, dtype=torch.float64))
    result = data_randomisation(GradCAM(model, "conv2"), other, x, target=1)
    assert result.steps == ["original", "shuffled labels"]
    assert torch.allclose(result.maps["shuffled labels"], GradCAM(other, "conv2").attribute(x, 1))
    assert torch.equal(model.fc.weight, tiny_cnn(0).fc.weight)
    with pytest.raises(ValueError, match="architecture"):
        data_randomisation(Saliency(model), nn.Linear(3, 3), x)


# --------------------------------------------------------------------------- the paper's finding
@pytest.fixture(scope="module")
def mnist_batch():
    from nnlab import data
    from nnlab.models import pretrained

    return pretrained("mnist_cnn", progress=False), data.mnist("test").images[:16]


def test_gradient_maps_change_under_cascading_randomisation_but_guided_backprop_maps_stay_similar(mnist_batch):
    """Adebayo et al., figure 2: on the trained MNIST CNN (16 test digits, mean Spearman rank correlation of
    abs(attr) with the original maps), randomising only the top layer already decorrelates the gradient
    (< 0.5; < 0.2 once every layer is random) while guided backpropagation keeps > 0.6 after the top layer and
    > 0.5 after the top two layers; guided backpropagation stays more similar than the gradient by > 0.3 while
    only the top three layers are random, and more similar at every step."""
    model, x = mnist_batch
    gradient = model_randomisation(Saliency(model), x, order="cascading").mean("spearman_abs")
    guided = model_randomisation(GuidedBackprop(model), x, order="cascading").mean("spearman_abs")
    # steps: original, fc, conv3, conv2, conv1
    assert gradient[1] < 0.5 and gradient[-1] < 0.2
    assert guided[1] > 0.6 and guided[2] > 0.5
    assert (guided[1:4] - gradient[1:4] > 0.3).all()
    assert (guided[1:] > gradient[1:]).all()


def test_data_randomisation_changes_gradient_maps_on_mnist(mnist_batch):
    """The gradient of the model trained on shuffled labels is not the gradient of the true model: mean
    Spearman rank correlation of abs(attr) < 0.5 on 16 test digits."""
    from nnlab.models import pretrained

    model, x = mnist_batch
    result = data_randomisation(Saliency(model), pretrained("mnist_cnn_shuffled", progress=False), x)
    assert result.mean("spearman_abs")[1] < 0.5
