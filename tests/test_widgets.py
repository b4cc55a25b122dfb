"""Widgets build headless and re-render in place when a control changes."""
import matplotlib

matplotlib.use("Agg")
import torch  # noqa: E402

from nnlab import models
from nnlab.course import widgets as W  # noqa: E402


def test_explorer_renders_once_then_on_every_change():
    calls = []
    index = W.image_picker(torch.zeros(5, 1, 4, 4))
    weight = W.float_slider("tv_weight", 0.1, 1e-3, 10.0, log=True)
    explorer = W.Explorer(lambda index, tv_weight: calls.append((index, tv_weight)), dict(index=index, tv_weight=weight))
    assert calls == [(0, 0.1)]
    index.value = 3
    weight.value = 1.0
    assert calls[-1] == (3, 1.0) and explorer.renders == 3


def test_pickers_list_what_the_lab_needs():
    model = models.MnistCNN()
    assert W.layer_picker(model).options == ("conv1", "conv2", "conv3")
    picker = W.class_picker(["cat", "dog"])
    assert [value for _, value in picker.options] == [0, 1]
    assert W.image_picker(list(range(7))).max == 6
    assert W.classes_picker(["a", "b", "c"], value=(0, 2)).value == (0, 2)


def test_bad_widget_arguments_are_clear_errors():
    import pytest

    with pytest.raises(ValueError, match="at least one image"):
        W.image_picker([])
    with pytest.raises(ValueError, match="log slider"):
        W.float_slider("w", 0.0, 0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="Conv2d"):
        W.layer_picker(models.LogisticRegression())


def test_explorer_opens_on_the_chosen_case():
    import pytest

    calls = []
    picker = W.image_picker(torch.zeros(9, 1, 4, 4))
    W.Explorer(lambda index: calls.append(index), dict(index=picker), initial={"index": 7})
    assert calls == [7] and picker.value == 7
    with pytest.raises(ValueError, match="initial: 'idx' is not a control"):
        W.Explorer(lambda index: None, dict(index=W.image_picker(torch.zeros(3, 1, 4, 4))), initial={"idx": 1})
    with pytest.raises(ValueError, match=r"initial\['index'\]: expected a value in \[0, 2\], got 5"):
        W.Explorer(lambda index: None, dict(index=W.image_picker(torch.zeros(3, 1, 4, 4))), initial={"index": 5})
    with pytest.raises(ValueError, match=r"initial\['layer'\]"):
        W.Explorer(lambda layer: None, dict(layer=W.layer_picker(models.MnistCNN())), initial={"layer": "fc9"})


def test_explorer_draws_its_own_figures_and_leaves_the_others_open():
    import matplotlib.pyplot as plt

    plt.close("all")
    mine = plt.figure()                                      # a figure the lab drew before the explorer
    W.Explorer(lambda index: plt.subplots(), dict(index=W.image_picker([0, 1])))
    assert plt.get_fignums() == [mine.number]                # the explorer's figure shown and closed, not the lab's
    plt.close("all")


def test_an_error_in_the_first_render_fails_the_cell():
    import pytest

    def broken(index):
        raise RuntimeError("the render is broken")

    with pytest.raises(RuntimeError, match="the render is broken"):
        W.Explorer(broken, dict(index=W.image_picker([0, 1])))


def test_progress_bars_vanish_in_notebooks_only(monkeypatch):
    from nnlab.core import progress as P

    assert P.in_notebook() is False
    bar = P.progress_bar(range(3), desc="x", disable=True)
    assert bar.leave is True and list(bar) == [0, 1, 2]       # a terminal keeps the finished bar as a log line
    monkeypatch.setattr(P, "in_notebook", lambda: True)
    assert P.progress_bar(range(3), disable=True).leave is False
    assert P.progress_bar(range(3), disable=True, leave=True).leave is True


def test_a_later_render_error_is_shown_in_the_output_area_not_captured():
    picker = W.image_picker([0, 1, 2])

    def render(index):
        if index == 2:
            raise RuntimeError("no such digit")

    explorer = W.Explorer(render, dict(index=picker))
    assert explorer.output.outputs == () and explorer.output.msg_id == ""   # nothing captured, state set directly
    picker.value = 2
    (shown,) = explorer.output.outputs
    assert shown["name"] == "stderr" and "RuntimeError: no such digit" in shown["text"]
    assert explorer.output.msg_id == ""                     # never a `with output:` capture (see update's docstring)
