"""``nnlab.evaluation`` re-exports the three checks, and the pictures of :mod:`nnlab.viz.evaluation` draw what the
results hold (headless)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import nnlab  # noqa: E402
import nnlab.evaluation.perturbation
from nnlab import evaluation as evaluate
from nnlab.viz import evaluation as evaluate_plot
import nnlab.evaluation.pointing
from nnlab.evaluation import sanity_checks  # noqa: E402
from nnlab.attribution import Saliency  # noqa: E402


def test_evaluate_re_exports_the_three_checks():
    assert evaluate.model_randomisation is sanity_checks.model_randomisation
    assert evaluate.data_randomisation is sanity_checks.data_randomisation
    assert evaluate.deletion is nnlab.evaluation.perturbation.deletion and evaluate.insertion is nnlab.evaluation.perturbation.insertion
    assert evaluate.pointing_game is nnlab.evaluation.pointing.pointing_game
    assert all(hasattr(evaluate, name) for name in evaluate.__all__)
    assert nnlab.evaluation is evaluate


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return Tiny().eval(), torch.rand(3, 1, 8, 8)


def test_randomisation_plots_show_one_line_per_method_and_one_map_per_step(tiny):
    model, x = tiny
    results = {"a": evaluate.model_randomisation(Saliency(model), x),
               "b": evaluate.model_randomisation(Saliency(model), x, seed=1)}
    ax = evaluate_plot.plot_similarity(results, "ssim")
    assert len(ax.lines) == 2 + 1                                   # two methods and the zero line
    assert [t.get_text() for t in ax.get_xticklabels()] == ["original", "fc", "conv"]
    assert ax.lines[0].get_ydata().tolist() == pytest.approx(results["a"].mean("ssim").tolist())
    fig = evaluate_plot.show_randomised_maps(results["a"], x, index=[0, 2])
    assert len(fig.axes) == 2 * (1 + 3)
    with pytest.raises(ValueError, match="similarity"):
        evaluate_plot.plot_similarity(results, "hog")
    plt.close("all")


def test_curve_and_pointing_plots(tiny):
    model, x = tiny
    attr = Saliency(model).attribute(x, 0)
    curves = {"gradient": evaluate.deletion(model, x, attr, step=8),
              "random": evaluate.deletion(model, x, None, step=8)}
    ax = evaluate_plot.plot_curves(curves)
    assert "AUC" in ax.get_legend().get_texts()[0].get_text() and ax.lines[1].get_linestyle() == "--"
    fig = evaluate_plot.show_perturbation_steps(x, attr, fractions=(0, 0.5, 1))
    shown = fig.axes[2].images[0].get_array()
    assert float(abs(shown).sum()) == 0.0                            # everything deleted: the black baseline
    boxes = torch.tensor([[0., 0, 4, 4]] * 3)
    result = evaluate.pointing_game(attr.abs(), boxes)
    ax = evaluate_plot.plot_pointing_game({"gradient": result, "other": 0.5},
                                          baseline=evaluate.random_baseline(boxes, (8, 8)))
    assert [p.get_width() for p in ax.patches] == pytest.approx([result.accuracy, 0.5])
    fig = evaluate_plot.show_pointing(x, attr, boxes, result, index=[0, 1])
    assert [a.get_title() for a in fig.axes] == ["hit" if h else "miss" for h in result.hits[:2].tolist()]
    plt.close("all")
