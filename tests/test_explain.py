"""``nnlab explain`` (command line) and the attribution plots of ``nnlab.viz.images``."""
import csv
from pathlib import Path

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
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "5"] + [""] + ["1", "2", "3", "4", "5"]
    assert [r["image"] for r in rows] == [str(a)] * 5 + [str(text)] + [str(b)] * 5
    assert "not an image" in rows[5]["error"] and all(r["error"] == "" for r in rows if r["rank"])
    rows = [r for r in rows if r["rank"]]
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
    assert rc == 1 and "conv_head" in capsys.readouterr().err         # the candidates are listed
    with pytest.raises(SystemExit):
        main(["explain", str(a), "--method", "nope", "--out", str(tmp_path / "o3")])


def test_explain_default_is_the_trained_efficientnet_with_one_overlay_per_method(tmp_path, capsys):
    import skimage.data
    from PIL import Image

    Image.fromarray(skimage.data.chelsea()).save(tmp_path / "chelsea.png")
    out = tmp_path / "out"
    assert main(["explain", str(tmp_path / "chelsea.png"), "--method", "gradcam", "guided_backprop",
                 "--out", str(out), "--no-progress"]) == 0
    assert "RANDOM" not in capsys.readouterr().err
    rows = read_csv(out / "top5.csv")
    assert len(rows) == 5 and rows[0]["class"] in ("Egyptian cat", "tabby", "tiger cat")
    assert float(rows[0]["probability"]) > 0.3
    assert sorted(p.name for p in out.glob("*.png")) == ["chelsea_gradcam.png", "chelsea_guided_backprop.png"]


def test_same_named_files_get_distinct_outputs(tmp_path):
    from nnlab.cli.explain import output_names

    assert output_names([Path("x/a/cat.png"), Path("x/b/cat.png"), Path("dog.jpg")]) == ["a_cat", "b_cat", "dog"]
    assert output_names([Path("p/a/cat.png"), Path("q/a/cat.png")]) == ["p_a_cat", "q_a_cat"]
    assert output_names([Path("cat.png"), Path("cat.png")]) == ["cat", "cat_2"]
    assert output_names([Path("a/cat.png"), Path("a/cat.jpg")]) == ["cat", "cat_2"]


def test_explain_keeps_same_named_files_apart(tmp_path):
    from PIL import Image

    for sub, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (tmp_path / sub).mkdir()
        Image.new("RGB", (40, 30), colour).save(tmp_path / sub / "cat.png")
    out = tmp_path / "out"
    assert main(["explain", str(tmp_path / "a" / "cat.png"), str(tmp_path / "b" / "cat.png"), "--model", "resnet18",
                 "--weights", "none", "--method", "saliency", "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["a_cat_saliency.png", "b_cat_saliency.png"]
    assert [r["output"] for r in read_csv(out / "top5.csv")] == ["a_cat"] * 5 + ["b_cat"] * 5


def test_16_bit_palette_and_alpha_images_decode(tmp_path):
    from PIL import Image

    from nnlab.cli.explain import read_image

    grey16 = np.array([[0, 65535], [32896, 65535]], dtype=np.uint16)        # 32896 / 65535 * 255 = 128.0
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    x = read_image(tmp_path / "g16.png", 3, 2)
    assert torch.equal(x[0, 0] * 255, torch.tensor([[0.0, 255.0], [128.0, 255.0]])) and torch.equal(x[0, 0], x[0, 2])
    pal = Image.new("P", (2, 2))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0, 1, 1, 0])
    pal.save(tmp_path / "pal.png")
    x = read_image(tmp_path / "pal.png", 3, 2)
    assert torch.equal(x[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0])) and torch.equal(x[0, :, 0, 1], torch.tensor([0.0, 0.0, 1.0]))
    Image.new("RGBA", (2, 2), (0, 0, 0, 0)).save(tmp_path / "clear.png")          # transparent -> white
    assert torch.equal(read_image(tmp_path / "clear.png", 3, 2), torch.ones(1, 3, 2, 2))
    assert read_image(tmp_path / "g16.png", 1, 2).shape == (1, 1, 2, 2)


def test_huge_images_are_reduced_while_decoding_and_capped(tmp_path, capsys):
    from PIL import Image

    from nnlab.cli.explain import decode_image

    Image.new("RGB", (4000, 3000), (10, 200, 30)).save(tmp_path / "big.jpg", quality=90)
    img = decode_image(tmp_path / "big.jpg", 224)
    assert img.size == (500, 375)                                  # JPEG draft at 1/8: decoded small
    Image.new("RGB", (1200, 900), (10, 200, 30)).save(tmp_path / "big.png")
    assert decode_image(tmp_path / "big.png", 224).size == (300, 225)     # reduce(4)
    with pytest.raises(ValueError, match="1,080,000 pixels, more than the cap of 100,000"):
        decode_image(tmp_path / "big.png", 224, max_pixels=100_000)
    out = tmp_path / "out"
    Image.new("RGB", (64, 64)).save(tmp_path / "small.png")
    assert main(["explain", str(tmp_path / "big.png"), str(tmp_path / "small.png"), "--model", "resnet18",
                 "--weights", "none", "--method", "saliency", "--max-pixels", "100000", "--out", str(out),
                 "--no-progress"]) == 0
    rows = read_csv(out / "top5.csv")
    assert "more than the cap" in rows[0]["error"] and rows[1]["image"] == str(tmp_path / "small.png")


def test_weights_that_are_not_a_state_dict_give_a_clean_error(files, tmp_path, capsys):
    (a, _), _ = files
    for weights, message in ((str(a), "not a PyTorch state-dict file"), (str(tmp_path / "no.pt"), "no such file")):
        assert main(["explain", str(a), "--model", "resnet18", "--weights", weights, "--out", str(tmp_path / "o")]) == 1
        err = capsys.readouterr().err
        assert message in err and "weights_only=False" not in err and "Traceback" not in err
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "wrong.pt")
    assert main(["explain", str(a), "--model", "resnet18", "--weights", str(tmp_path / "wrong.pt"),
                 "--out", str(tmp_path / "o")]) == 1
    assert "does not fit resnet18" in capsys.readouterr().err
    assert main(["explain", str(a), "--target", "1000", "--weights", "none", "--out", str(tmp_path / "o")]) == 1
    assert "--target must be a class index in [0, 1000)" in capsys.readouterr().err


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
