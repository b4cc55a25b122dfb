"""nnlab.core.hooks: layer lookup, activation capture and ReLU backward rules leave nothing behind."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlab.core import hooks as hooks


class Functional(nn.Module):
    """Uses every kind of ReLU call once."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c, self.d = (nn.Linear(2, 2, bias=False) for _ in range(4))
        self.relu = nn.ReLU(inplace=True)
        for i, lin in enumerate((self.a, self.b, self.c, self.d)):
            lin.weight.data = torch.tensor([[1.0, -1.0], [-2.0, 1.0]]) * (i + 1)

    def forward(self, x):
        x = F.relu(self.a(x))
        x = torch.relu(self.b(x)).neg() + 1
        x = self.c(x).relu_()
        return self.relu(self.d(x))


def test_get_layer_by_name_or_module_and_a_clear_error():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(2, 2, 1)))
    assert hooks.get_layer(model, "2.0") is model[2][0]
    assert hooks.get_layer(model, model[0]) is model[0]
    assert hooks.layer_name(model, model[2][0]) == "2.0"
    with pytest.raises(ValueError, match=r"no layer named 'layer4'.*candidates: 0, 2, 2\.0"):
        hooks.get_layer(model, "layer4")
    with pytest.raises(ValueError, match="not a sub-module"):
        hooks.get_layer(model, nn.Linear(1, 1))
    assert hooks.conv_layer_names(model) == ["0", "2.0"]


def test_capture_records_pre_inplace_values_and_removes_its_hooks():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(inplace=True))
    model[0].weight.data = -torch.eye(2)
    model[0].bias.data.zero_()
    x = torch.tensor([[1.0, -1.0]])
    for detach in (True, False):
        with hooks.capture(model, ["0"], detach=detach) as acts:
            out = model(x)
        assert torch.equal(acts["0"].detach(), torch.tensor([[-1.0, 1.0]]))  # before the in-place ReLU
        assert torch.equal(out, torch.tensor([[0.0, 1.0]]))
        hooks.assert_no_hooks(model)
    with pytest.raises(RuntimeError):
        with hooks.capture(model, ["0"]):
            raise RuntimeError("boom")
    hooks.assert_no_hooks(model)


def _grad(model, x, rule=None):
    x = x.clone().requires_grad_()
    if rule is None:
        model(x).sum().backward()
    else:
        with hooks.relu_backward_rule(rule) as mode:
            model(x).sum().backward()
        assert mode.calls == 4  # F.relu, torch.relu, Tensor.relu_, nn.ReLU(inplace=True)
    return x.grad


def _manual(model, x, rule):
    """The same backward pass written out by hand."""
    a = model.a.weight @ x
    h1 = a.clamp(min=0)
    b = model.b.weight @ h1
    h2 = 1 - b.clamp(min=0)
    c = model.c.weight @ h2
    h3 = c.clamp(min=0)
    d = model.d.weight @ h3

    def relu_back(g, pre):
        if rule == "guided":
            return g.clamp(min=0) * (pre > 0)
        return g.clamp(min=0)

    g = relu_back(torch.ones(2), d)
    g = relu_back(model.d.weight.T @ g, c)
    g = model.c.weight.T @ g
    g = relu_back(-g, b)
    g = relu_back(model.b.weight.T @ g, a)
    return model.a.weight.T @ g


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_relu_rules_on_functional_relus_match_the_hand_computed_backward(rule):
    model = Functional()
    torch.manual_seed(0)
    for x in torch.randn(6, 2):
        got = _grad(model, x[None], rule)[0]
        torch.testing.assert_close(got, _manual(model, x, rule).detach())
    x = torch.tensor([[0.3, -0.7]])
    assert torch.equal(model(x), Functional()(x))  # forward values unchanged


def test_relu_rule_is_gone_after_the_block_even_on_error():
    model = Functional()
    x = torch.tensor([[0.5, -1.0]])
    plain = _grad(model, x)
    with pytest.raises(ZeroDivisionError):
        with hooks.relu_backward_rule("guided"):
            1 / 0
    torch.testing.assert_close(_grad(model, x), plain)
    with pytest.raises(ValueError, match="'guided' or 'deconvnet'"):
        with hooks.relu_backward_rule("lrp"):
            pass


def test_eval_mode_and_frozen_restore_each_flag():
    model = nn.Sequential(nn.Linear(1, 1), nn.Dropout(), nn.Linear(1, 1))
    model.train()
    model[1].eval()
    model[2].weight.requires_grad_(False)
    with hooks.eval_mode(model), hooks.frozen(model):
        assert not any(m.training for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
    assert [m.training for m in model.modules()] == [True, True, False, True]
    assert [p.requires_grad for p in model.parameters()] == [True, True, False, True]
