"""Top-k activations: the running top-k equals a brute-force scan; patches and projections at the right place."""
import pytest
import torch
import torch.nn as nn

from nnlab.features import project
from nnlab.core import assert_no_hooks
from nnlab.features import crop, receptive_field
from nnlab.features import scan, top_activations


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))


def brute_force(model, images, layer, k):
    acts = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: acts.update(a=o))
    with torch.no_grad():
        model(images)
    handle.remove()
    maxima = acts["a"].flatten(2).amax(2)                     # (N, C)
    values, index = maxima.T.topk(k, dim=1)                   # (C, k)
    return values, index


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_running_topk_equals_brute_force(batch_size):
    model = small_cnn()
    images = torch.rand(30, 1, 12, 12)
    features, values, index, position = scan(model, images, "3", k=5, batch_size=batch_size, progress=False)
    expected_values, expected_index = brute_force(model, images, "3", 5)
    assert torch.equal(features, torch.arange(6))
    assert torch.allclose(values, expected_values, atol=1e-6)
    assert torch.equal(index, expected_index)
    # the position is where the maximum is
    with torch.no_grad():
        acts = model[:4](images)
    for f in range(6):
        for j in range(5):
            r, c = position[f, j]
            assert torch.isclose(acts[index[f, j], f, r, c], values[f, j], atol=1e-6)


def test_identity_layer_hand_checked():
    """A 1x1 conv with weight 1: the activation is the image, the field one pixel, the projection that pixel."""
    model = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False))
    nn.init.constant_(model[0].weight, 1.0)
    images = torch.zeros(4, 1, 5, 5)
    images[0, 0, 1, 2], images[1, 0, 4, 0], images[2, 0, 3, 3], images[3, 0, 0, 0] = 0.3, 0.9, 0.5, 0.1
    top = top_activations(model, images, "0", k=3, progress=False)
    assert torch.equal(top.index, torch.tensor([[1, 2, 0]]))
    assert torch.allclose(top.values, torch.tensor([[0.9, 0.5, 0.3]]))
    assert torch.equal(top.position, torch.tensor([[[4, 0], [3, 3], [1, 2]]]))
    assert torch.equal(top.boxes, torch.tensor([[[0, 4, 1, 5], [3, 3, 4, 4], [2, 1, 3, 2]]]))
    assert torch.allclose(top.patches.flatten(), torch.tensor([0.9, 0.5, 0.3]))
    assert torch.allclose(top.projections.flatten(), torch.tensor([0.9, 0.5, 0.3]))
    assert torch.equal(top.images[0, 0], images[1])


def test_patches_and_projections_of_a_cnn():
    model = small_cnn(1)
    images = torch.rand(30, 1, 12, 12)
    model(images[:1])  # materialise the lazy layer
    top = top_activations(model, images, "3", k=4, features=[1, 5], batch_size=8, progress=False)
    assert top.values.shape == (2, 4) and torch.equal(top.features, torch.tensor([1, 5]))
    assert top.patches.shape == (2, 4, 1, 8, 8) and top.projections.shape == (2, 4, 1, 8, 8)  # R = 3, 4, 8
    for i, f in enumerate([1, 5]):
        for j in range(4):
            n, (r, c) = top.index[i, j], top.position[i, j].tolist()
            box = receptive_field(model, "3", (r, c))
            assert top.boxes[i, j].tolist() == list(box)
            assert torch.equal(top.patches[i, j], crop(images[n], box))
            full = project(model, images[n:n + 1], "3", feature=f, keep="max", position=(r, c))[0]
            assert torch.allclose(top.projections[i, j], crop(full, box), atol=1e-6)
            # the projection of one unit lies inside its receptive field
            assert torch.isclose(crop(full, box).abs().sum(), full.abs().sum(), rtol=1e-5)
    assert_no_hooks(model)


def test_accepts_an_imageset_and_checks_input():
    from nnlab.data import ImageSet

    model = small_cnn()
    images = torch.rand(6, 1, 12, 12)
    data = ImageSet(images=images, labels=torch.zeros(6, dtype=torch.long), classes=["a"], source="test")
    top = top_activations(model, data, "0", k=9, projections=False, progress=False)
    assert top.values.shape == (4, 6) and top.projections is None  # k is capped at the number of images
    with pytest.raises(ValueError, match="N, C, H, W"):
        top_activations(model, images[0], "0")
    model.train()
    top_activations(model, images, "0", k=2, progress=False)
    assert model.training
