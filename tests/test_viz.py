"""The plotting defaults: perceptual and diverging colour maps, zero-centred signed maps, see-through zeros in
overlays, per-panel vs shared scales, colour bars, titles said once, the course style."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from nnlab import viz  # noqa: E402
from nnlab.core.maps import map_scale, normalize  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_magnitudes_are_perceptual_signed_maps_diverge_around_zero():
    attr = torch.tensor([[[-2.0, 0.0], [1.0, 2.0]]])
    ax = viz.show_map(attr, plt.subplots()[1], mode="signed", percentile=100)
    image = ax.get_images()[0]
    assert image.get_cmap().name == "RdBu_r" and image.get_clim() == (-1, 1)     # symmetric limits
    assert image.get_array()[0, 1] == 0 and image.get_array()[0, 0] == -1
    ax = viz.show_map(attr, plt.subplots()[1], mode="abs")
    assert ax.get_images()[0].get_cmap().name == "inferno"
    assert viz.MAGNITUDE_CMAP in ("inferno", "magma", "gray")


def test_a_signed_map_can_carry_the_contour_of_its_input():
    digit = torch.zeros(1, 8, 8)
    digit[0, 2:6, 2:6] = 1
    ax = viz.show_map(torch.randn(1, 8, 8), plt.subplots()[1], contour=digit)
    assert len(ax.collections) == 1                                   # the iso-line of the digit
    ax = viz.show_map(torch.randn(1, 8, 8), plt.subplots()[1])
    assert len(ax.collections) == 0


def test_overlay_opacity_follows_the_map_so_zero_is_see_through():
    photo = torch.rand(3, 8, 8)
    attr = torch.zeros(1, 8, 8)
    attr[0, :4] = 1.0                                                  # top half hot, bottom half zero
    ax = viz.overlay(photo, attr, plt.subplots()[1], mode="positive", alpha=0.8, percentile=100)
    background, heat = ax.get_images()
    assert background.get_cmap().name == "gray"                       # photo in grey under the colours
    alpha = np.asarray(heat.get_alpha())
    assert alpha.shape == (8, 8) and alpha[4:].max() == 0 and np.allclose(alpha[:4], 0.8)
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay(photo, attr, plt.subplots()[1], alpha=2)


def test_per_panel_and_shared_scales_are_explicit():
    maps = torch.stack([torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), 4.0)])
    maps[:, :, 0, 0] = 0
    per_panel = normalize(maps, "abs", 100)
    assert per_panel[0].max() == per_panel[1].max() == 1              # each panel stretched to its own max
    s = map_scale(maps, "abs", 100, shared=True)
    shared = normalize(maps, "abs", 100, scale=s)
    assert float(s) == 4 and shared[0].max() == 0.25 and shared[1].max() == 1
    with pytest.raises(ValueError, match="percentile"):
        map_scale(maps, "abs", 0)
    images = torch.rand(2, 1, 2, 2)
    fig = viz.gallery(images, {"m": maps}, mode="abs", kind="map", scale="shared", percentile=100)
    assert fig.axes[1].get_images()[0].get_array().max() == 0.25 and fig.axes[3].get_images()[0].get_array().max() == 1
    with pytest.raises(ValueError, match="scale: expected 'panel' or 'shared'"):
        viz.gallery(images, {"m": maps}, scale="global")


def test_colorbars_per_panel_or_one_per_column_in_map_units():
    images = torch.rand(2, 1, 4, 4)
    maps = {"gradient": torch.randn(2, 1, 4, 4)}
    fig = viz.gallery(images, maps, mode="signed", kind="map", colorbar=True)
    assert len(fig.axes) == 4 + 2                                      # 4 panels + a bar beside each map
    fig = viz.gallery(images, maps, mode="signed", kind="map", colorbar=True, scale="shared", percentile=100)
    bars = fig.axes[4:]
    assert len(bars) == 1
    top = float(maps["gradient"].abs().max())
    assert bars[0].get_xticklabels()[-1].get_text() == f"{top:.2g}"


def test_the_mode_is_said_once_in_a_column_title():
    images = torch.rand(1, 1, 4, 4)
    cam = torch.rand(1, 1, 2, 2)
    fig = viz.gallery(images, {"CAM (signed)": cam, "CAM": cam}, mode={"CAM (signed)": "signed", "CAM": "positive"})
    assert fig.axes[1].get_title() == "CAM (signed)" and fig.axes[2].get_title() == "CAM\n(positive)"


def test_banned_colour_maps_are_replaced_with_a_warning():
    with pytest.warns(UserWarning, match="cmap: expected a perceptual colour map .* got 'jet'; drawing with 'inferno'"):
        ax = viz.overlay(torch.rand(1, 4, 4), torch.rand(1, 4, 4), plt.subplots()[1], cmap="jet")
    assert ax.get_images()[-1].get_cmap().name == "inferno"
    with pytest.warns(UserWarning, match="'RdBu_r' instead"):
        ax = viz.show_map(torch.randn(1, 4, 4), plt.subplots()[1], mode="signed", cmap=plt.get_cmap("jet"))
    assert ax.get_images()[0].get_cmap().name == "RdBu_r"


def test_the_course_style_keeps_text_legible():
    import matplotlib as mpl

    applied = viz.style(retina=False)
    sizes = [mpl.rcParams[k] for k in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize",
                                        "ytick.labelsize", "legend.fontsize")]
    assert min(sizes) >= 8 and mpl.rcParams["image.cmap"] == "inferno" and applied == viz.RC


def test_the_hidden_unit_chart_labels_every_class():
    from nnlab import models

    torch.manual_seed(0)
    mlp = models.MLP(in_shape=(1, 4, 4), hidden=3, n_classes=40)
    fig = viz.show_hidden_unit(mlp, 1, classes=[f"s{i}" for i in range(1, 41)])
    labels = [t.get_text() for t in fig.axes[1].get_xticklabels()]
    assert labels == [f"s{i}" for i in range(1, 41)]                  # none skipped
    assert min(t.get_fontsize() for t in fig.axes[1].get_xticklabels()) >= 8


def test_feature_maps_scale_per_layer_or_per_panel():
    from nnlab import models

    model = models.MnistCNN().eval()
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    fig = viz.show_feature_maps(model, x, ["conv1"], scale="panel")
    assert "each on its own scale" in fig.axes[1].get_title()
    with pytest.raises(ValueError, match="scale"):
        viz.show_feature_maps(model, x, ["conv1"], scale="image")


def test_history_small_multiples_have_one_legend_of_the_classes():
    from types import SimpleNamespace

    history = [SimpleNamespace(iteration=i, kl=float("nan"), embedding=torch.randn(30, 2)) for i in range(0, 40, 10)]
    fig = viz.plot_embedding_history(history, torch.arange(30) % 3, ["a", "b", "c"], ncols=2)
    assert len(fig.legends) == 1 and [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b", "c"]
