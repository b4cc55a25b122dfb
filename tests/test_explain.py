"""``nnlab explain`` (command line) and the attribution plots of ``nnlab.viz.images``."""
import csv

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from nnlab.viz import images as plot  # noqa: E402
from nnlab.cli import main  # noqa: E402


@pytest.fixture()
def files(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for name, size in (("a.png", (120, 90)), ("b.jpg", (64, 80))):
        Image.fromarray(rng.integers(0, 255, size=(*size, 3), dtype=np.uint8)).save(tmp_path / name)
        paths.append(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    return paths, tmp_path / "notes.txt"


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("method", ["gradcam", "guided_backprop"])
def test_explain_writes_overlays_and_top5(files, tmp_path, capsys, method):
    (a, b), text = files
    out = tmp_path / "out"
    rc = main(["explain", str(a), str(text), str(b), "--model", "resnet18", "--weights", "none",
               "--method", method, "--out", str(out), "--device", "cpu"])
    assert rc == 0
    assert (out / f"a_{method}.png").stat().st_size > 1000 and (out / f"b_{method}.png").exists()
    assert not list(out.glob("notes*"))
    err = capsys.readouterr().err
    assert "skipped" in err and "notes.txt" in err and "2 image(s) explained, 1 skipped" in err
    rows = read_csv(out / "top5.csv")
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "5"] * 2
    assert [r["image"] for r in rows] == [str(a)] * 5 + [str(b)] * 5
    probs = [float(r["probability"]) for r in rows[:5]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1
    from nnlab.models import imagenet_classes
    assert all(r["class"] == imagenet_classes()[int(r["class_index"])] for r in rows)


def test_explain_with_a_lab_model(files, tmp_path, capsys):
    (a, _), _ = files
    out = tmp_path / "lab"
    assert main(["explain", str(a), "--model", "orientation_cnn", "--method", "gradcam", "--out", str(out),
                 "--no-progress"]) == 0
    rows = read_csv(out / "top5.csv")
    assert sorted(r["class"] for r in rows) == ["0°", "180°", "270°", "90°"]     # only 4 classes: a top-4
    assert (out / "a_gradcam.png").exists()
    assert main(["explain", str(a), "--model", "box_regressor", "--out", str(out)]) == 1
    assert "not a classifier" in capsys.readouterr().err


def test_explain_errors(files, tmp_path, capsys):
    (a, _), text = files
    assert main(["explain", str(text), "--weights", "none", "--out", str(tmp_path / "o1")]) == 1
    rc = main(["explain", str(a), "--weights", "none", "--method", "gradcam", "--layer", "layer9",
               "--out", str(tmp_path / "o2")])
    assert rc == 1 and "layer4" in capsys.readouterr().err            # the candidates are listed
    with pytest.raises(SystemExit):
        main(["explain", str(a), "--method", "nope", "--out", str(tmp_path / "o3")])


# --------------------------------------------------------------------------- attribution plots
def test_reduce_normalize_upsample():
    attr = torch.tensor([[[[1., -4.]], [[-2., 1.]]]])          # (1, 2, 1, 2)
    assert torch.equal(plot.reduce_channels(attr, "sum"), torch.tensor([[[[-1., -3.]]]]))
    assert torch.equal(plot.reduce_channels(attr, "abs_max"), torch.tensor([[[[2., 4.]]]]))
    assert torch.equal(plot.reduce_channels(attr, "abs_sum"), torch.tensor([[[[3., 5.]]]]))
    m = torch.tensor([[[[2., -4.], [1., 0.]]]])
    assert torch.equal(plot.normalize(m, "signed", 100), m / 4)
    assert torch.equal(plot.normalize(m, "abs", 100), m.abs() / 4)
    assert torch.equal(plot.normalize(m, "positive", 100), torch.tensor([[[[1., 0.], [.5, 0.]]]]))
    assert torch.equal(plot.normalize(m, "rgb", 100), 0.5 + m / 8)
    # each image on its own scale; a percentile clips the extremes
    two = torch.stack([m[0], 10 * m[0]])
    assert torch.equal(plot.normalize(two, "abs", 100)[0], plot.normalize(two, "abs", 100)[1])
    assert plot.normalize(torch.arange(100.).view(1, 1, 10, 10), "abs", 50).max() == 1
    up = plot.upsample(torch.tensor([[[[1., 2.], [3., 4.]]]]), (4, 4), "nearest")
    assert up.shape == (1, 1, 4, 4) and up[0, 0, 3, 3] == 4
    with pytest.raises(ValueError, match="mode"):
        plot.normalize(m, "log")


def test_overlay_show_map_and_gallery():
    import matplotlib.pyplot as plt

    images = torch.rand(2, 3, 16, 16)
    attrs = {"gradient": torch.randn(2, 3, 16, 16), "Grad-CAM": torch.rand(2, 1, 4, 4)}
    fig = plot.gallery(images, attrs, mode={"gradient": "signed", "Grad-CAM": "positive"},
                       kind={"gradient": "map", "Grad-CAM": "overlay"})
    axes = fig.axes
    assert len(axes) == 6
    assert axes[1].get_title() == "gradient\n(signed)" and axes[2].get_title() == "Grad-CAM\n(positive)"
    heat = axes[2].get_images()[-1].get_array()
    assert heat.shape == (16, 16)                                    # upsampled to the image size
    plt.close(fig)
    fig, ax = plt.subplots()
    plot.show_map(attrs["gradient"][0], ax, mode="rgb")
    assert ax.get_images()[0].get_array().shape == (16, 16, 3)
    with pytest.raises(ValueError, match="rgb"):
        plot.overlay(images[0], attrs["gradient"][0], ax, mode="rgb")
    plt.close(fig)
    with pytest.raises(ValueError, match="1 maps for 2 images"):
        plot.gallery(images, {"x": torch.rand(1, 1, 4, 4)})
