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
