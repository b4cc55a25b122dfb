"""Zeiler-Fergus projections: hand-computed values on a tiny conv-ReLU-pool-conv net, autograd == step by step."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlab.features import keep_feature, project, project_steps, strongest_feature, unpool
from nnlab.core import assert_no_hooks, relu_backward_rule

# 4x4 input; 2x2 max-pooling picks one switch per quadrant: 3 at (0,1), 4 at (1,2), 5 at (2,1), 6 at (3,3).
X = torch.tensor([[1., 3., -1., 0.],
                  [2., 0., 4., -2.],
                  [-3., 5., 1., 1.],
                  [0., 1., 2., 6.]])[None, None]


class Tiny(nn.Module):
    """conv1 (1x1, weight 2) -> relu1 -> pool1 (2x2) -> conv2 (2x2 kernel, 2 features) -> (N, 2, 1, 1)."""

    def __init__(self, conv2_kernel=2):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(1, 2, conv2_kernel)
        with torch.no_grad():
            self.conv1.weight.fill_(2.0)
            self.conv1.bias.fill_(0.0)
            if conv2_kernel == 2:
                self.conv2.weight[0, 0] = torch.tensor([[1., -1.], [2., 0.5]])
                self.conv2.weight[1, 0] = torch.tensor([[0., 1.], [-1., 1.]])
            else:
                self.conv2.weight[:, 0] = torch.tensor([0.5, -1.0]).view(2, 1, 1)
            self.conv2.bias.fill_(0.25)  # the deconvnet ignores biases

    def forward(self, x):
        return self.conv2(self.pool1(self.relu1(self.conv1(x))))


def test_hand_computed_projection_with_switches():
    model = Tiny()
    # pool1 = 2 * [[3, 4], [5, 6]]; feature 0 = 6 - 8 + 20 + 6 + 0.25 = 24.25 (the kept value, bias included).
    # Down: filter 24.25 * [[1, -1], [2, .5]] -> unpool to the switches -> rectify (drops -24.25) -> filter (x2).
    expected = torch.zeros(4, 4)
    expected[0, 1], expected[2, 1], expected[3, 3] = 2 * 24.25, 2 * 48.5, 2 * 12.125
    proj = project(model, X, "conv2", feature=0)
    assert torch.allclose(proj[0, 0], expected)
    # Plain gradient would pass the negative value through the ReLU at (1, 2); the deconvnet rectifies it.
    assert proj[0, 0, 1, 2] == 0
    steps = project_steps(model, X, "conv2", feature=0)
    assert [(s.layer, s.op) for s in steps] == [("conv2", "keep"), ("conv2", "filter"), ("pool1", "unpool"),
                                                ("relu1", "rectify"), ("conv1", "filter")]
    assert steps[2].out[0, 0, 1, 2] == -24.25 and steps[3].out[0, 0, 1, 2] == 0
    assert torch.allclose(steps[-1].out, proj)


def test_keep_all_versus_keep_max():
    model = Tiny(conv2_kernel=1)  # conv2: (N, 2, 2, 2); feature 0 = 0.5 * pool1 + 0.25 = [[3.25, 4.25], [5.25, 6.25]]
    proj_all = project(model, X, "conv2", feature=0, keep="all")
    proj_max = project(model, X, "conv2", feature=0, keep="max")
    expected_all = torch.zeros(4, 4)
    for (i, j), v in zip([(0, 1), (1, 2), (2, 1), (3, 3)], [3.25, 4.25, 5.25, 6.25]):
        expected_all[i, j] = 2 * 0.5 * v
    expected_max = torch.zeros(4, 4)
    expected_max[3, 3] = 2 * 0.5 * 6.25
    assert torch.allclose(proj_all[0, 0], expected_all)
    assert torch.allclose(proj_max[0, 0], expected_max)
    # a chosen unit instead of the maximum
    proj_at = project(model, X, "conv2", feature=0, keep="max", position=(1, 0))
    assert torch.allclose(proj_at[0, 0, 2, 1], torch.tensor(5.25)) and proj_at.count_nonzero() == 1
    # feature 1 is negative everywhere: its rectified map is zero, and so is its projection
    assert project(model, X, "conv2", feature=1).abs().sum() == 0


def test_keep_feature_zeroes_the_other_features():
    acts = torch.randn(3, 5, 4, 4)
    seed = keep_feature(acts, feature=[0, 2, 4])
    for n, c in enumerate([0, 2, 4]):
        assert torch.equal(seed[n, c], acts[n, c].clamp(min=0))
        assert seed[n].abs().sum() == seed[n, c].abs().sum()
    strongest = strongest_feature(acts)
    seed = keep_feature(acts, None, keep="max")
    assert torch.equal(seed.flatten(1).max(1).values, acts.flatten(1).max(1).values.clamp(min=0))
    assert torch.equal(seed.flatten(2).abs().sum(2).argmax(1), strongest)
    with pytest.raises(ValueError, match="feature"):
        keep_feature(acts, feature=5)
    with pytest.raises(ValueError, match="keep"):
        keep_feature(acts, feature=0, keep="mean")


def test_strongest_feature_is_the_default():
    model = Tiny()
    assert torch.equal(project(model, X, "conv2"), project(model, X, "conv2", feature=0))  # 24.25 > feature 1


class Chain(nn.Module):
    """A random conv/ReLU/max-pool chain with strides, padding, dilation and overlapping pooling."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.pool1 = nn.MaxPool2d(3, stride=2, padding=1)  # overlapping windows share switches
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2)
        self.relu2 = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(6, 5, 2)
        self.relu3 = nn.ReLU()
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.drop(self.relu2(self.conv2(x))))
        x = self.relu3(self.conv3(x))
        return self.head(x.mean((2, 3)))


@pytest.mark.parametrize("layer", ["conv1", "pool1", "conv2", "pool2", "conv3", "relu3"])
@pytest.mark.parametrize("keep", ["all", "max"])
def test_step_by_step_equals_autograd(layer, keep):
    torch.manual_seed(0)
    model = Chain().train()  # dropout must be off in both
    x = torch.rand(3, 2, 19, 17)
    steps = project_steps(model, x, layer, feature=[1, 0, 3], keep=keep)
    proj = project(model, x, layer, feature=[1, 0, 3], keep=keep)
    assert proj.shape == x.shape and proj.abs().sum() > 0
    assert torch.allclose(steps[-1].out, proj, atol=1e-5)
    assert model.training and model.drop.training


def test_projection_is_the_gradient_under_the_deconvnet_rule():
    torch.manual_seed(1)
    model = Chain()
    x = torch.rand(2, 2, 16, 16)
    with relu_backward_rule("deconvnet"):
        xg = x.clone().requires_grad_()
        acts = model.pool1(model.relu1(model.conv1(xg)))
        acts.backward(keep_feature(acts.detach(), feature=2))
    assert torch.allclose(project(model, x, "pool1", feature=2), xg.grad, atol=1e-6)


def test_unpool_matches_max_unpool2d_and_autograd():
    torch.manual_seed(2)
    h = torch.randn(2, 3, 8, 8, requires_grad=True)
    pool = nn.MaxPool2d(2)
    pooled, switches = F.max_pool2d(h, 2, return_indices=True)
    r = torch.randn_like(pooled)
    out = unpool(r, switches, pool, h.shape)
    assert torch.equal(out, F.max_unpool2d(r, switches, 2, output_size=(8, 8)))
    (grad,) = torch.autograd.grad(pooled, h, r)
    assert torch.allclose(out, grad)
    # overlapping windows: a pixel that is the max of two windows receives the sum, as in autograd
    pool = nn.MaxPool2d(3, stride=1)
    pooled, switches = F.max_pool2d(h, 3, stride=1, return_indices=True)
    r = torch.randn_like(pooled)
    (grad,) = torch.autograd.grad(pooled, h, r)
    assert torch.allclose(unpool(r, switches, pool, h.shape), grad, atol=1e-6)


def test_model_and_input_unchanged_no_hooks_left():
    torch.manual_seed(3)
    model = Chain().train()
    flags = [p.requires_grad for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 2, 16, 16)
    x0 = x.clone()
    project(model, x, "conv2", feature=0)
    project_steps(model, x, "conv2", feature=0)
    assert torch.equal(x, x0) and not x.requires_grad and x.grad is None
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert_no_hooks(model)
    with pytest.raises(ValueError, match="candidates"):
        project(model, x, "conv9")
    assert_no_hooks(model)


def test_project_steps_refuses_what_it_cannot_follow():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 2, 3)
            self.conv2 = nn.Conv2d(2, 2, 3)

        def forward(self, x):
            return self.conv2(F.relu(self.conv1(x)) - 0.5)

    model = Functional()
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="project\\(\\)"):
        project_steps(model, x, "conv2", feature=0)
    assert project(model, x, "conv2", feature=0).shape == x.shape  # the autograd version follows anything
    with pytest.raises(ValueError, match="N, C, H, W"):
        project(model, x[0], "conv2")


def test_capture_any_set_of_layers_leaves_no_hook():
    from nnlab.core import capture

    torch.manual_seed(4)
    model = Chain()
    x = torch.rand(2, 2, 16, 16)
    with capture(model, ["conv1", "relu1", "pool2", "head"]) as acts:
        model(x)
    assert {k: tuple(v.shape) for k, v in acts.items()} == {
        "conv1": (2, 4, 16, 16), "relu1": (2, 4, 16, 16), "pool2": (2, 6, 2, 2), "head": (2, 3)}
    # relu1 is in place: the captured conv1 output is still the signed one
    assert (acts["conv1"] < 0).any() and torch.equal(acts["relu1"], acts["conv1"].clamp(min=0))
    assert_no_hooks(model)
    with pytest.raises(RuntimeError):
        with capture(model, ["conv1", "conv2"]):
            model(torch.rand(2, 3, 16, 16))  # wrong number of channels
    assert_no_hooks(model)
