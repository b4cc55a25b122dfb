"""Objectives: exact values on hand-made activations, and the algebra (+, -, scalar *, sum())."""
import pytest
import torch

from nnlab.featurevis import Objective, channel, logit, lp_norm, lp_norm_of, neuron, total_variation, total_variation_of


@pytest.fixture
def acts():
    g = torch.Generator().manual_seed(0)
    return {
        "input": torch.rand(3, 1, 4, 4, generator=g),
        "logits": torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]),
        "conv": torch.arange(3 * 2 * 3 * 3, dtype=torch.float32).reshape(3, 2, 3, 3),
        "fc": torch.tensor([[1.0, -1.0], [2.0, -2.0], [3.0, -3.0]]),
    }


def test_logit_is_the_score_before_softmax(acts):
    assert torch.equal(logit(2)(acts), torch.tensor([3.0, 6.0, 9.0]))
    assert logit(2).name == "logit(2)"
    assert logit(2).layers == ("logits",)


def test_channel_and_neuron_exact(acts):
    conv = acts["conv"]
    assert torch.allclose(channel("conv", 1)(acts), conv[:, 1].mean(dim=(1, 2)))
    assert torch.equal(neuron("conv", 1)(acts), conv[:, 1, 1, 1])          # centre by default
    assert torch.equal(neuron("conv", 0, 0, 2)(acts), conv[:, 0, 0, 2])
    # fully connected layer: channel and neuron are the unit's value
    assert torch.equal(channel("fc", 1)(acts), torch.tensor([-1.0, -2.0, -3.0]))
    assert torch.equal(neuron("fc", 0)(acts), torch.tensor([1.0, 2.0, 3.0]))
    assert channel("conv", 1).layers == ("conv",)


def test_batch_addresses_images(acts):
    assert torch.equal(logit(0, batch=1)(acts), torch.tensor([0.0, 4.0, 0.0]))
    assert torch.equal(logit(0, batch=[0, 2])(acts), torch.tensor([1.0, 0.0, 7.0]))
    assert logit(0, batch=1).name == "logit(0, batch=1)"
    per_image = sum(logit(c, batch=c) for c in range(3))
    assert torch.equal(per_image(acts), torch.tensor([1.0, 5.0, 9.0]))   # the diagonal


def test_algebra_values_and_names(acts):
    obj = logit(1) + logit(2)
    assert torch.equal(obj(acts), torch.tensor([5.0, 11.0, 17.0]))
    assert obj.name == "logit(1) + logit(2)"
    obj = 2 * logit(1) - 0.5 * logit(0)
    assert torch.allclose(obj(acts), 2 * acts["logits"][:, 1] - 0.5 * acts["logits"][:, 0])
    assert obj.name == "2 * logit(1) - 0.5 * logit(0)"
    assert (-logit(1)).name == "-logit(1)"
    assert torch.equal((logit(1) / 2)(acts), acts["logits"][:, 1] / 2)
    assert torch.equal(sum([logit(0), logit(1), logit(2)])(acts), acts["logits"].sum(1))
    # the same term twice: weights add up
    assert list((logit(1) + logit(1)).terms) == ["logit(1)"]
    assert torch.equal((logit(1) + logit(1))(acts), 2 * acts["logits"][:, 1])
    # layers are the union, in order
    assert (channel("conv", 0) + logit(1) - total_variation()).layers == ("conv", "logits", "input")
    # composing never changes the operands
    a = logit(1)
    _ = 3 * a + a
    assert a.terms["logit(1)"][1] == 1.0


def test_regularised_objective_and_term_values(acts):
    obj = logit(2) - 10 * total_variation() - 0.5 * lp_norm(6)
    assert obj.name == "logit(2) - 10 * total_variation(2) - 0.5 * lp_norm(6)"
    values = obj.term_values(acts)
    assert set(values) == {"logit(2)", "total_variation(2)", "lp_norm(6)"}
    expected = acts["logits"][:, 2] - 10 * total_variation_of(acts["input"]) - 0.5 * lp_norm_of(acts["input"], 6)
    assert torch.allclose(obj(acts), expected)
    # a zero weight keeps the term (so that tv_weight=0 still records the total variation)
    assert "total_variation(2)" in (logit(2) - 0 * total_variation()).terms


def test_total_variation_exact():
    x = torch.tensor([[[[0.0, 1.0, 0.0],
                        [0.0, 1.0, 0.0],
                        [2.0, 2.0, 2.0]]]])
    # differences at the 2x2 top-left positions: (dy, dx) = (0, 1), (0, -1), (2, 1), (1, -1)
    squared = torch.tensor([1.0, 1.0, 5.0, 2.0])
    assert torch.allclose(total_variation_of(x), squared.mean().reshape(1))
    assert torch.allclose(total_variation_of(x, beta=1.0), squared.sqrt().mean().reshape(1), atol=1e-6)
    assert torch.equal(total_variation_of(torch.full((2, 3, 5, 5), 0.7)), torch.zeros(2))
    # a noisy image has a larger total variation than a smooth one
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(1, 1, 16, 16, generator=g)
    ramp = torch.linspace(0, 1, 16).repeat(16, 1)[None, None]
    assert total_variation_of(noise) > 10 * total_variation_of(ramp)


def test_lp_norm_exact():
    x = torch.tensor([[[[1.0, -1.0], [0.0, 0.0]]]])
    assert torch.allclose(lp_norm_of(x, 2), torch.tensor([0.5 ** 0.5]))
    assert torch.allclose(lp_norm_of(x, 6), torch.tensor([0.5 ** (1 / 6)]))


def test_gradients_stay_finite_at_a_black_image():
    x = torch.zeros(2, 1, 4, 4, requires_grad=True)
    lp_norm_of(x, 6).sum().backward()
    assert torch.isfinite(x.grad).all()
    # a term of weight 0 is recorded but sends no gradient (here sqrt, whose gradient at 0 is infinite)
    x.grad = None
    root = Objective("root", lambda a: a["input"].sqrt().mean(dim=(1, 2, 3)), layers=["input"])
    ink = Objective("ink", lambda a: a["input"].sum(dim=(1, 2, 3)), layers=["input"])
    (ink - 0 * root)({"input": x}).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_custom_objective_and_errors(acts):
    brightness = Objective("brightness", lambda a: a["input"].mean(dim=(1, 2, 3)), layers=["input"])
    assert torch.allclose((logit(0) + brightness)(acts), acts["logits"][:, 0] + acts["input"].mean(dim=(1, 2, 3)))
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        Objective("bad", lambda a: a["conv"], layers=["conv"])(acts)
    with pytest.raises(ValueError, match="no activation 'conv9'"):
        channel("conv9", 0)(acts)
    with pytest.raises(TypeError):
        logit(0) + 1.5
    with pytest.raises(TypeError):
        logit(0) * logit(1)


# --------------------------------------------------------------------------- priors: L2 decay, diversity
def test_l2_exact(acts):
    from nnlab.featurevis import l2, l2_of

    x = acts["input"]
    assert torch.allclose(l2_of(x), (x ** 2).mean(dim=(1, 2, 3)))
    assert torch.allclose(l2(batch=1)(acts), torch.tensor([0.0, l2_of(x)[1].item(), 0.0]))
    assert (logit(0) - 10 * l2()).name == "logit(0) - 10 * l2()"


def test_gram_similarity_exact():
    """Same features in every image: similarity 1; features on disjoint channels: Gram matrices orthogonal, 0."""
    from nnlab.featurevis import diversity, gram_similarity_of

    a = torch.rand(1, 3, 4, 4).repeat(3, 1, 1, 1)
    assert torch.allclose(gram_similarity_of(a), torch.ones(3), atol=1e-6)
    b = torch.zeros(2, 2, 4, 4)
    b[0, 0] = torch.rand(4, 4) + 0.1
    b[1, 1] = torch.rand(4, 4) + 0.1
    assert torch.allclose(gram_similarity_of(b), torch.zeros(2), atol=1e-6)
    # by hand for 2 images, 1 channel, 2 positions: G_i = mean(a_i^2) scalars -> cosine 1 unless one is 0
    assert torch.allclose(gram_similarity_of(torch.tensor([[[1.0, 2.0]], [[3.0, 1.0]]])), torch.ones(2))
    assert gram_similarity_of(torch.rand(1, 3, 4, 4)).item() == 0.0          # alone: nothing to differ from
    term = diversity("conv")
    assert term.name == "diversity(conv)" and term.layers == ("conv",)
    with pytest.raises(ValueError, match="conv9"):
        diversity("conv9")({"conv": a})


def test_objectives_follow_the_device_of_the_activations():
    """Masks, index tensors and weights are made on the activations' device (meta: shapes only, no CPU mixing)."""
    acts = {"input": torch.rand(3, 1, 4, 4, device="meta"), "logits": torch.rand(3, 5, device="meta"),
            "conv": torch.rand(3, 2, 3, 3, device="meta")}
    objective = (logit([0, 1, 2]) + logit(3, batch=[0, 2]) + channel("conv", [1, 0, 1]) - 2 * total_variation()
                 - lp_norm(6) - 0.5 * __import__("nnlab.featurevis", fromlist=["diversity"]).diversity("conv"))
    value = objective(acts)
    assert value.device.type == "meta" and value.shape == (3,)


def test_negative_or_non_integral_indices_are_refused():
    """-1 must not silently mean the last class or channel; bools, floats and strings are not indices."""
    import pytest as _pytest
    from nnlab.featurevis.objectives import channel, logit, neuron
    for bad, error in ((-1, ValueError), (True, TypeError), (3.7, TypeError), ("3", TypeError), ([1, -2], ValueError)):
        with _pytest.raises(error, match="target"):
            logit(bad)
        with _pytest.raises(error, match="feature"):
            channel("conv1", bad)
        with _pytest.raises(error, match="feature"):
            neuron("conv1", bad)
    acts = {"logits": torch.zeros(2, 10), "input": torch.zeros(2, 1, 4, 4)}
    with _pytest.raises(ValueError, match="out of range"):
        logit(10)(acts)
