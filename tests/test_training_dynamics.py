"""Features over training: seeded and reproducible, snapshots at the chosen epochs, the change measure by hand."""
import pytest
import torch
import torch.nn as nn

from nnlab.data import ImageSet
from nnlab.features import features_over_training, linear_cka, relative_change, weights


def bars(n, seed):
    """Horizontal (class 0) or vertical (class 1) bars on 12x12 noise."""
    g = torch.Generator().manual_seed(seed)
    images = 0.2 * torch.rand(n, 1, 12, 12, generator=g)
    labels = torch.randint(0, 2, (n,), generator=g)
    where = torch.randint(1, 11, (n,), generator=g)
    for i in range(n):
        if labels[i] == 0:
            images[i, 0, where[i], :] = 1.0
        else:
            images[i, 0, :, where[i]] = 1.0
    return ImageSet(images=images, labels=labels, classes=["horizontal", "vertical"], source="bars")


def tiny_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(6, 2))


def run(seed=0):
    return features_over_training(build=tiny_cnn, train=bars(256, 1), probe=bars(64, 2), epochs=3,
                                  snapshot_epochs=(0, 1, 3), features=2, lr=0.1, batch_size=32, seed=seed,
                                  progress=False)


def test_snapshots_change_and_reproducibility():
    dyn = run()
    assert [s.epoch for s in dyn.snapshots] == [0, 1, 3]
    assert set(dyn.weight_change) == {"0", "3", "7"} and all(len(c) == 3 for c in dyn.weight_change.values())
    assert all(c > 0 for cs in dyn.weight_change.values() for c in cs)
    assert set(dyn.representation_change) == {"0", "3"}
    assert all(0 <= c <= 1 and len(cs) == 3 for cs in dyn.representation_change.values() for c in cs)
    assert set(dyn.features) == {"0", "3"} and all(len(f) == 2 for f in dyn.features.values())
    # epoch 0 is the seeded initialisation
    torch.manual_seed(0)
    assert torch.equal(dyn.snapshots[0].filters, tiny_cnn()[0].weight.detach())
    assert not torch.equal(dyn.snapshots[0].filters, dyn.snapshots[-1].filters)
    # the projections follow the same features at every snapshot
    for s in dyn.snapshots:
        assert torch.equal(s.top["3"].features, dyn.features["3"])
        assert s.top["3"].projections.shape == (2, 1, 1, 8, 8)  # (features, k=1, C, receptive field 8x8)
    # it learns: lower loss, better accuracy than at the start
    assert dyn.loss[-1] < dyn.loss[0]
    assert dyn.snapshots[-1].accuracy > max(dyn.snapshots[0].accuracy, 0.8)
    # seeded: the same run again gives exactly the same numbers; another seed does not
    again = run()
    assert again.weight_change == dyn.weight_change and again.loss == dyn.loss
    assert again.representation_change == dyn.representation_change
    assert all(torch.equal(a.filters, b.filters) for a, b in zip(again.snapshots, dyn.snapshots))
    assert all(torch.equal(a.top["3"].projections, b.top["3"].projections)
               for a, b in zip(again.snapshots, dyn.snapshots))
    assert run(seed=1).weight_change != dyn.weight_change


def test_linear_cka():
    torch.manual_seed(0)
    X = torch.randn(50, 8)
    Q, _ = torch.linalg.qr(torch.randn(8, 8))
    assert linear_cka(X, X) == pytest.approx(1.0)
    assert linear_cka(X, 3 * X @ Q + 1) == pytest.approx(1.0)  # rotation, scale and shift do not count
    assert linear_cka(X, torch.randn(50, 8)) < 0.5
    # by hand: 1-d features, CKA is the squared correlation
    x, y = torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[1.0], [3.0], [2.0]])
    assert linear_cka(x, y) == pytest.approx(0.25)


def test_relative_change_by_hand():
    before = {"a": torch.tensor([3.0, 4.0]), "b": torch.ones(2, 2)}
    after = {"a": torch.tensor([3.0, 5.0]), "b": torch.ones(2, 2)}
    assert relative_change(before, after) == pytest.approx({"a": 1 / 5, "b": 0.0})
    w = weights(tiny_cnn())
    assert list(w) == ["0", "3", "7"] and w["0"].shape == (4, 1, 3, 3)
