"""The gallery's fault checker: each check fails on a deliberately bad figure and passes on a good one; the viz
functions draw fault-free figures on small synthetic inputs; every figure of test-output/gallery/ is fault-free."""
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from nnlab.course import gallery as G  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _faults(fig, word):
    return [f for f in G.figure_faults(fig) if word in f]


# --------------------------------------------------------------------------- each check: bad fails, good passes
def test_near_uniform_image_is_a_fault():
    bad, ax = plt.subplots()
    ax.imshow(np.full((20, 20), 0.3), cmap="gray", vmin=0, vmax=1)
    assert _faults(bad, "near-uniform")
    good, ax = plt.subplots()
    ax.imshow(np.linspace(0, 1, 400).reshape(20, 20), cmap="gray")
    assert G.figure_faults(good) == []


def test_blank_figure_is_a_fault():
    assert _faults(plt.figure(), "blank")
    assert G.pixel_faults(np.ones((30, 40, 3))) and G.pixel_faults(np.full((30, 40, 4), 255, np.uint8))
    assert G.pixel_faults(np.random.default_rng(0).random((30, 40, 3))) == []
    with pytest.raises(ValueError, match="rgb"):
        G.pixel_faults(np.ones((30, 40)))


def test_jet_is_a_fault():
    data = np.random.default_rng(0).random((10, 10))
    bad, ax = plt.subplots()
    ax.imshow(data, cmap="jet")
    assert _faults(bad, "jet colour map")
    bad, ax = plt.subplots()
    ax.scatter(*data[:2], c=data[2], cmap="jet")
    assert _faults(bad, "jet colour map")
    good, ax = plt.subplots()
    ax.imshow(data, cmap="inferno")
    assert G.figure_faults(good) == []


def test_title_overlapping_axes_is_a_fault():
    data = np.random.default_rng(0).random((10, 10))
    bad, axes = plt.subplots(2, 1, figsize=(3, 3), gridspec_kw={"hspace": 0})
    for ax in axes:
        ax.imshow(data)
        ax.set_axis_off()
    axes[1].set_title("a long title that runs into the panel above", fontsize=14)
    assert _faults(bad, "overlaps axes")
    good, axes = plt.subplots(2, 1, figsize=(3, 5))
    for ax in axes:
        ax.imshow(data)
        ax.set_axis_off()
        ax.set_title("short", fontsize=9)
    good.tight_layout()
    assert G.figure_faults(good) == []


def test_overlapping_tick_labels_are_a_fault():
    names = [f"person number {i}" for i in range(40)]
    bad, ax = plt.subplots(figsize=(4, 2))
    ax.bar(range(40), np.arange(40.0))
    ax.set_xticks(range(40))
    ax.set_xticklabels(names)
    assert _faults(bad, "tick labels overlap")
    good, ax = plt.subplots(figsize=(4, 2))
    ax.bar(range(4), np.arange(4.0))
    ax.set_xticks(range(4))
    ax.set_xticklabels(["a", "b", "c", "d"])
    assert G.figure_faults(good) == []


def test_several_series_without_a_legend_are_a_fault():
    t = np.linspace(0, 1, 20)
    bad, ax = plt.subplots()
    ax.plot(t, t, label="CAM")
    ax.plot(t, t ** 2, label="Grad-CAM")
    assert _faults(bad, "without a legend")
    bad, ax = plt.subplots()
    ax.scatter(t, t, c=np.arange(20) % 3, cmap="tab10")          # classes by colour, no legend
    assert _faults(bad, "without a legend")
    good, ax = plt.subplots()
    ax.plot(t, t, label="CAM")
    ax.plot(t, t ** 2, label="Grad-CAM")
    ax.legend()
    assert G.figure_faults(good) == []
    multiples, axes = plt.subplots(1, 2)                          # one legend for both panels' classes
    for ax in axes:
        ax.plot(t, t, label="CAM")
        ax.plot(t, t ** 2, label="Grad-CAM")
    axes[1].legend()
    assert G.figure_faults(multiples) == []
    axes[0].plot(t, t ** 3, label="occlusion")                    # a series no legend names
    assert _faults(multiples, "without a legend")
    single, ax = plt.subplots()
    ax.plot(t, t)
    ax.axhline(0.5)                                              # a reference line is no series
    assert G.figure_faults(single) == []


def test_the_checker_rejects_what_is_not_a_figure():
    with pytest.raises(ValueError, match="fig: expected a matplotlib Figure"):
        G.figure_faults(np.zeros((3, 3)))


def test_png_faults_read_back_what_the_kernel_recorded(tmp_path):
    G.install_checker()
    G.install_checker()                                          # idempotent
    bad, ax = plt.subplots()
    ax.imshow(np.random.default_rng(0).random((10, 10)), cmap="jet")
    bad.savefig(tmp_path / "bad.png")
    good, ax = plt.subplots()
    ax.imshow(np.random.default_rng(0).random((10, 10)), cmap="magma")
    good.savefig(tmp_path / "good.png")
    assert any("jet" in f for f in G.png_faults(tmp_path / "bad.png"))
    assert G.png_faults(tmp_path / "good.png") == []


def test_figures_of_an_executed_notebook_carry_their_sentence():
    import nbformat

    nb = nbformat.v4.new_notebook()
    png = "iVBORw0KGgo="
    nb.cells = [nbformat.v4.new_markdown_cell("# Lab\nSome words. The map shows the digit."),
                nbformat.v4.new_code_cell("plot()", outputs=[nbformat.v4.new_output(
                    "display_data", data={"image/png": png, "text/plain": "<Figure>"})])]
    (fig,) = G.figures_of(nb)
    assert fig["cell"] == 1 and fig["sentence"] == "The map shows the digit." and fig["png"] == png


# --------------------------------------------------------------------------- the viz functions draw fault-free figures
def _figure(result):
    return result if isinstance(result, matplotlib.figure.Figure) else result.figure


def _viz_figures():
    from nnlab import models, viz

    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 28, 28, generator=g)
    photos = torch.rand(2, 3, 32, 32, generator=g)
    signed = torch.randn(3, 1, 28, 28, generator=g)
    cam = torch.rand(3, 1, 7, 7, generator=g)
    yield "show_image", lambda: viz.show_image(images[0], plt.subplots()[1], title="a digit")
    yield "show_map signed", lambda: viz.show_map(signed[0], plt.subplots()[1], mode="signed", contour=images[0],
                                                  colorbar=True, title="gradient")
    yield "show_map abs", lambda: viz.show_map(signed[0], plt.subplots()[1], mode="abs", colorbar=True)
    yield "overlay", lambda: viz.overlay(photos[0], cam[0], plt.subplots()[1], colorbar=True, title="Grad-CAM")
    yield "gallery", lambda: viz.gallery(images, {"gradient": signed, "CAM (signed)": cam, "CAM": cam},
                                         mode={"gradient": "signed", "CAM (signed)": "signed", "CAM": "positive"},
                                         kind={"gradient": "map", "CAM (signed)": "map", "CAM": "overlay"},
                                         contour=True)
    yield "gallery shared", lambda: viz.gallery(images, {"gradient": signed, "CAM": cam},
                                                mode={"gradient": "abs", "CAM": "positive"}, scale="shared",
                                                colorbar=True)
    model = models.MnistCNN().eval()
    yield "show_filters", lambda: viz.show_filters(model)
    yield "show_feature_maps", lambda: viz.show_feature_maps(model, images[:1])
    yield "show_feature_maps panel", lambda: viz.show_feature_maps(model, images[:1], scale="panel")
    yield "show_random_feature_maps", lambda: viz.show_random_feature_maps(model, images[:1], "conv2", n=8)
    from types import SimpleNamespace

    top = SimpleNamespace(features=torch.arange(8), values=torch.rand(8, 9, generator=g), layer="conv1",
                          projections=torch.randn(8, 9, 1, 5, 5, generator=g), patches=torch.rand(8, 9, 1, 5, 5, generator=g))
    yield "show_top_activations", lambda: viz.show_top_activations(top)
    Y = torch.randn(60, 2, generator=g)
    labels = torch.arange(60) % 3
    yield "plot_embedding", lambda: viz.plot_embedding(Y, labels, ["a", "b", "c"], title="t-SNE")


@pytest.mark.parametrize("name,draw", list(_viz_figures()), ids=lambda v: v if isinstance(v, str) else "")
def test_viz_functions_draw_fault_free_figures(name, draw):
    fig = _figure(draw())
    assert G.figure_faults(fig) == [], name


def test_the_hidden_unit_chart_labels_every_person_legibly():
    from nnlab import models, viz

    torch.manual_seed(0)
    mlp = models.MLP(in_shape=(1, 8, 8), hidden=4, n_classes=40)
    fig = viz.show_hidden_unit(mlp, 0, classes=[f"s{i}" for i in range(1, 41)])
    labels = [t for t in fig.axes[1].get_xticklabels() if t.get_text()]
    assert len(labels) == 40 and min(t.get_fontsize() for t in labels) >= 8
    assert G.figure_faults(fig) == []


# --------------------------------------------------------------------------- no jet in the package
def test_no_jet_in_the_package():
    pattern = re.compile(r"""["'](jet|jet_r|rainbow|hsv|nipy_spectral|gist_rainbow)["']""")
    offenders = []
    for path in (ROOT / "nnlab").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and not line.startswith("BANNED_CMAPS"):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
    from nnlab.viz import images

    with pytest.warns(UserWarning, match="cmap: expected a perceptual colour map"):
        ax = images.show_map(torch.rand(1, 4, 4), plt.subplots()[1], mode="abs", cmap="jet")
    assert G.figure_faults(ax.figure) == []


# --------------------------------------------------------------------------- the gallery on disk
GALLERY = ROOT / "test-output" / "gallery"
PNGS = sorted(GALLERY.glob("*/*.png")) if GALLERY.is_dir() else []


@pytest.mark.skipif(not PNGS, reason="no test-output/gallery/ (run `make gallery` first)")
@pytest.mark.parametrize("png", PNGS, ids=[str(p.relative_to(GALLERY)) for p in PNGS])
def test_every_gallery_figure_is_fault_free(png):
    assert G.png_faults(png) == []


@pytest.mark.skipif(not (GALLERY / "faults.json").is_file(), reason="no test-output/gallery/faults.json")
def test_every_lab_ran_in_the_gallery():
    summary = json.loads((GALLERY / "faults.json").read_text())
    assert summary["errors"] == []
    assert (GALLERY / "index.html").is_file() and summary["figures"] == len(PNGS)


def test_stray_reprs_are_found_and_reported():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("torch.manual_seed(0)", outputs=[nbformat.v4.new_output(
                    "execute_result", data={"text/plain": "<torch._C.Generator at 0x7f00deadbeef>"}, execution_count=1)]),
                nbformat.v4.new_code_cell("1 + 1", outputs=[nbformat.v4.new_output(
                    "execute_result", data={"text/plain": "2"}, execution_count=2)])]
    assert G.stray_reprs(nb) == [{"cell": 0, "text": "<torch._C.Generator at 0x7f00deadbeef>"}]
    text = G.report({"figures": 2, "faults": 1, "errors": [], "stray_reprs": [{"lab": "00", **G.stray_reprs(nb)[0]}],
                     "faulty": [{"png": "00/cell01_0.png", "faults": ["jet colour map in axes 0"]}]})
    assert "figures: **2**" in text and "00/cell01_0.png" in text and "torch._C.Generator" in text
