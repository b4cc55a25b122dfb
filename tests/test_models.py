"""nnlab.models: architectures, the verified cache of trained lab models, torchvision's weights API offline."""
import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from nnlab import models

SHARED = os.environ.get("NNLAB_DATA")


def test_architectures_give_logits_and_named_layers():
    x = torch.rand(2, 1, 28, 28)
    assert models.LogisticRegression().forward(x).shape == (2, 10)
    assert models.MLP(hidden=7).forward(x).shape == (2, 10)
    cnn = models.MnistCNN()
    assert cnn(x).shape == (2, 10) and cnn.features(x).shape == (2, 64)
    names = dict(cnn.named_modules())
    assert {"conv1", "conv2", "conv3", "pool1", "pool2", "gap", "fc"} <= set(names)
    cluttered = models.ClutteredCNN()
    assert cluttered(torch.rand(2, 1, 64, 64)).shape == (2, 10)
    assert cluttered.feature_maps(torch.rand(2, 1, 64, 64)).shape == (2, 64, 8, 8)
    assert models.LogisticRegression((1, 4, 4), 3).templates().shape == (3, 1, 4, 4)
    assert models.MLP((1, 4, 4), 5, 3).templates().shape == (5, 1, 4, 4)


def test_wrong_shapes_name_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\).*x\[None\]"):
        models.MnistCNN()(torch.rand(1, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        models.LogisticRegression()(torch.rand(2, 1, 20, 20))


def test_fold_batch_norm_keeps_the_function():
    torch.manual_seed(0)
    with_bn = models.MnistCNN(batch_norm=True)
    with_bn.train()
    with torch.no_grad():  # give the BN layers non-trivial statistics
        for _ in range(3):
            with_bn(torch.rand(16, 1, 28, 28) * 3)
        for m in with_bn.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 2)
                m.bias.uniform_(-1, 1)
    with_bn.eval()
    plain = models.fold_batch_norm(with_bn, models.MnistCNN())
    x = torch.rand(4, 1, 28, 28)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    torch.testing.assert_close(plain(x), with_bn(x), rtol=1e-4, atol=1e-5)


def _tiny_spec(calls):
    def build():
        return models.LogisticRegression((1, 2, 2), 2)

    def train(model, progress):
        calls.append(1)
        x = torch.tensor([[[[1.0, 0], [0, 0]]], [[[0, 0], [0, 1.0]]]])
        models.train_classifier(model, x, torch.tensor([0, 1]), epochs=20, lr=0.5, batch_size=2, schedule="constant",
                               progress=False)
        return {"test_accuracy": models.accuracy(model, x, torch.tensor([0, 1]))}

    return build, train


@pytest.fixture
def tiny_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLAB_CACHE", str(tmp_path))
    calls = []
    build, train = _tiny_spec(calls)
    monkeypatch.setitem(models.REGISTRY, "tiny", models.ModelSpec(build, train, "tiny", "1"))
    return tmp_path, calls


def test_pretrained_trains_once_then_loads_the_verified_cache(tiny_registry):
    root, calls = tiny_registry
    first = models.pretrained("tiny", progress=False)
    second = models.pretrained("tiny", progress=False)
    assert calls == [1]
    assert not first.training and second.metrics["test_accuracy"] == 1.0
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
    meta = json.loads((root / "models" / "tiny.json").read_text())
    assert len(meta["sha256"]) == 64 and meta["signature"] == {"fc.weight": [2, 4], "fc.bias": [2]}


@pytest.mark.parametrize("damage", ["truncate", "garbage_json", "stale_version", "wrong_shapes"])
def test_a_corrupt_or_stale_cache_is_retrained_not_trusted(tiny_registry, monkeypatch, damage):
    root, calls = tiny_registry
    models.pretrained("tiny", progress=False)
    pt, meta = root / "models" / "tiny.pt", root / "models" / "tiny.json"
    if damage == "truncate":
        pt.write_bytes(pt.read_bytes()[:20])
    elif damage == "garbage_json":
        meta.write_text("{not json")
    elif damage == "stale_version":
        monkeypatch.setitem(models.REGISTRY, "tiny", models.ModelSpec(*_tiny_spec(calls), "tiny", "2"))
    else:
        monkeypatch.setitem(models.REGISTRY, "tiny", models.ModelSpec(
            lambda: models.LogisticRegression((1, 2, 2), 3), _tiny_spec(calls)[1], "tiny", "1"))
    with pytest.warns(UserWarning, match="retrained"):
        models.pretrained("tiny", progress=False)
    assert calls == [1, 1]
    models.pretrained("tiny", progress=False)  # and the rebuilt cache is trusted again
    assert calls == [1, 1]


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(ValueError, match="mnist_cnn"):
        models.pretrained("resnet1000")


def test_training_is_seeded_and_reproducible():
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    a, b = models.MnistCNN(), models.MnistCNN()
    b.load_state_dict(a.state_dict())
    models.train_classifier(a, x, y, epochs=1, batch_size=16, seed=3, progress=False)
    models.train_classifier(b, x, y, epochs=1, batch_size=16, seed=3, progress=False)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


@pytest.mark.skipif(not SHARED or not Path(SHARED, "MNIST").exists(), reason="needs full MNIST (NNLAB_DATA)")
def test_the_mnist_cnn_reaches_99_percent():
    model = models.pretrained("mnist_cnn")
    from nnlab import data

    test = data.mnist("test")
    assert models.accuracy(model, test.images, test.labels) >= 0.99


def test_imagenet_weights_api_offline_with_a_local_checkpoint(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd.pth"):
        models.imagenet_model("resnet18", progress=False)
    assert not models.imagenet_weights_available("resnet18")
    torch.manual_seed(0)
    reference = torchvision.models.resnet18()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    assert models.imagenet_weights_available("resnet18")
    model = models.imagenet_model("resnet18", progress=False)
    assert not model.training and len(model.classes) == 1000 and model.classes[281] == "tabby"
    x = models.imagenet_normalize(torch.rand(1, 3, 64, 64))
    reference.eval()
    torch.testing.assert_close(model(x), reference(x))
    torch.testing.assert_close(models.imagenet_normalize(models.imagenet_denormalize(x)), x)


def test_imagenet_random_weights_and_unknown_names():
    model = models.imagenet_model("resnet18", weights=None)
    assert len(model.classes) == 1000
    with pytest.raises(ValueError, match="unknown torchvision model"):
        models.imagenet_model("not_a_net")
