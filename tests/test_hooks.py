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


# --------------------------------------------------------------------------- ReLU6, hardtanh(0, m), and no-rule activations
X = torch.tensor([-1.0, 0.5, 3.0, 7.0, 2.0])
C = torch.tensor([1.0, -1.0, 2.0, 1.0, 3.0])          # the incoming gradient: d(sum(C * act(x))) / d act
EXPECTED = {  # by hand: guided = max(C, 0) * [0 < x < 6]; deconvnet = max(C, 0); plain = C * [0 < x < 6]
    "guided": torch.tensor([0.0, 0.0, 2.0, 0.0, 3.0]),
    "deconvnet": torch.tensor([1.0, 0.0, 2.0, 1.0, 3.0]),
    None: torch.tensor([0.0, -1.0, 2.0, 0.0, 3.0]),
}
RELU6_CALLS = {
    "nn.ReLU6": lambda z: nn.ReLU6()(z),
    "nn.ReLU6(inplace)": lambda z: nn.ReLU6(inplace=True)(z * 1),
    "F.relu6": lambda z: F.relu6(z),
    "F.relu6(inplace)": lambda z: F.relu6(z * 1, inplace=True),
    "F.hardtanh(0, 6)": lambda z: F.hardtanh(z, 0.0, 6.0),
    "F.hardtanh(kwargs)": lambda z: F.hardtanh(z, min_val=0.0, max_val=6.0),
    "F.hardtanh_": lambda z: F.hardtanh_(z * 1, 0.0, 6.0),
    "nn.Hardtanh(0, 6)": lambda z: nn.Hardtanh(0.0, 6.0)(z),
}


def _act_grad(act, rule, x=X, c=C):
    x = x.clone().requires_grad_()
    if rule is None:
        (grad,) = torch.autograd.grad((act(x) * c).sum(), x)
        return grad, None
    with hooks.relu_backward_rule(rule) as mode:
        out = act(x)
        (grad,) = torch.autograd.grad((out * c).sum(), x)
    torch.testing.assert_close(out.detach(), X.clamp(0, 6))          # forward unchanged
    return grad, mode.calls


@pytest.mark.parametrize("rule", ["guided", "deconvnet", None])
@pytest.mark.parametrize("call", sorted(RELU6_CALLS))
def test_relu6_rules_exact_values(call, rule):
    grad, calls = _act_grad(RELU6_CALLS[call], rule)
    assert torch.equal(grad, EXPECTED[rule])
    assert calls in (None, 1)


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_hardtanh_with_another_upper_clip(rule):
    # hardtanh(0, 2.5): x = 3 and 7 are clipped, so guided passes only x = 0.5 (gradient -1 -> 0) and x = 2
    x = X.clone().requires_grad_()
    with hooks.relu_backward_rule(rule):
        (grad,) = torch.autograd.grad((F.hardtanh(x, 0.0, 2.5) * C).sum(), x)
    want = torch.tensor([0.0, 0.0, 0.0, 0.0, 3.0]) if rule == "guided" else C.clamp(min=0)
    assert torch.equal(grad, want)


def test_relu6_rule_through_two_layers_by_hand():
    # y = sum(v * relu6(W x)); guided: W^T (max(v, 0) * [0 < Wx < 6]); a negative v is blocked even where open
    w = torch.tensor([[2.0, 1.0], [1.0, -1.0], [4.0, 4.0]])
    v = torch.tensor([1.0, -2.0, 5.0])
    x = torch.tensor([1.0, -0.5], requires_grad=True)          # W x = [1.5, 1.5, 2.0]: all three open
    with hooks.relu_backward_rule("guided"):
        (grad,) = torch.autograd.grad((v * nn.ReLU6()(w @ x)).sum(), x)
    assert torch.equal(grad, torch.tensor([2.0 + 20.0, 1.0 + 20.0]))
    x2 = torch.tensor([1.0, 1.0], requires_grad=True)          # W x = [3, 0, 8]: the third is clipped at 6
    with hooks.relu_backward_rule("guided"):
        (grad,) = torch.autograd.grad((v * nn.ReLU6()(w @ x2)).sum(), x2)
    assert torch.equal(grad, torch.tensor([2.0, 1.0]))


class NormAct(nn.BatchNorm1d):
    """Applies its activation inside its own forward, as timm's BatchNormAct2d does."""

    def __init__(self, n, act):
        super().__init__(n)
        self.act = act

    def forward(self, x):
        return self.act(super().forward(x))


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_activations_inside_modules_are_caught(rule):
    import timm.layers

    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5)
    layers = {6.0: timm.layers.BatchNormAct2d(3, act_layer=nn.ReLU6), float("inf"): timm.layers.BatchNormAct2d(3)}
    for upper, layer in layers.items():
        layer.eval()
        with torch.no_grad():
            layer.weight.uniform_(1, 4)                    # some pre-activations above 6
        c = torch.randn(4, 3, 5, 5)
        xx = x.clone().requires_grad_()
        with hooks.relu_backward_rule(rule) as mode:
            (grad,) = torch.autograd.grad((layer(xx) * c).sum(), xx)
        assert mode.calls == 1
        # the same by hand: the eval-mode norm is affine, scale = weight / sqrt(var + eps); then the rule
        pre = nn.functional.batch_norm(x, layer.running_mean, layer.running_var, layer.weight, layer.bias,
                                       False, 0.0, layer.eps).detach()
        assert upper == float("inf") or (pre > 6).any()
        g = c.clamp(min=0)
        if rule == "guided":
            g = g * ((pre > 0) & (pre < upper))
        scale = (layer.weight / (layer.running_var + layer.eps).sqrt()).view(1, 3, 1, 1)
        torch.testing.assert_close(grad, (g * scale).detach())
    inside = nn.Sequential(nn.Flatten(), NormAct(75, nn.ReLU6(inplace=True))).eval()
    xx = x.clone().requires_grad_()
    with hooks.relu_backward_rule(rule) as mode:
        inside(xx).sum().backward()
    assert mode.calls == 1


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
@pytest.mark.parametrize("act, name", [(nn.SiLU(), "SiLU"), (nn.GELU(), "GELU"), (nn.LeakyReLU(), "LeakyReLU"),
                                       (nn.ELU(), "ELU"), (nn.Hardswish(), "Hardswish"), (nn.Mish(), "Mish"),
                                       (nn.Hardtanh(), "min_val=-1")])
def test_an_activation_without_a_rule_raises_naming_it(act, name, rule):
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3), act)
    x = torch.randn(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match=name):
        with hooks.relu_backward_rule(rule):
            model(x)
    model(x).sum().backward()                                  # and the mode is gone afterwards


def test_sigmoid_gates_keep_their_plain_gradient():
    # the documented choice: sigmoid / tanh are gates (squeeze-excitation), not rectifiers
    model = nn.Sequential(nn.Linear(3, 3), nn.Sigmoid(), nn.Linear(3, 2), nn.Tanh())
    x = torch.randn(2, 3, requires_grad=True)
    (plain,) = torch.autograd.grad(model(x).sum(), x)
    with hooks.relu_backward_rule("guided") as mode:
        (got,) = torch.autograd.grad(model(x).sum(), x)
    assert mode.calls == 0 and torch.equal(got, plain)


# --------------------------------------------------------------------------- real architectures
class _GuidedFn(torch.autograd.Function):
    """An independent guided rectifier for the reference below (module swap, not a torch-function mode)."""

    @staticmethod
    def forward(ctx, x, upper):
        ctx.save_for_backward(x)
        ctx.upper = upper
        return x.clamp(0, upper)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.clamp(min=0) * ((x > 0) & (x < (ctx.upper or float("inf")))), None


class _GuidedAct(nn.Module):
    def __init__(self, upper):
        super().__init__()
        self.upper = upper

    def forward(self, x):
        return _GuidedFn.apply(x, self.upper)


def _swap_acts(model):
    """Replace (in place: the test's own model) every ReLU / ReLU6 module with the reference guided one."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, _GuidedAct(6.0))
            elif isinstance(child, nn.ReLU):
                setattr(parent, name, _GuidedAct(None))
    return model


def _input_grad(model, x, target, rule=None):
    x = x.clone().requires_grad_()
    ctx = hooks.relu_backward_rule(rule) if rule else __import__("contextlib").nullcontext()
    with ctx as mode:
        (grad,) = torch.autograd.grad(model(x)[:, target].sum(), x)
    return grad, getattr(mode, "calls", None)


def _count_act_calls(model, x):
    calls = []
    handles = [m.register_forward_hook(lambda *a: calls.append(1)) for m in model.modules()
               if isinstance(m, (nn.ReLU, nn.ReLU6))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return len(calls)


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "densenet121", "efficientnet_lite0"])
def test_guided_rule_reaches_every_activation_of_real_networks(name):
    import torchvision

    from nnlab.attribution import GuidedBackprop, Saliency

    torch.manual_seed(0)
    if name == "efficientnet_lite0":
        from nnlab.models import efficientnet_lite0
        model = efficientnet_lite0(pretrained=False)
    else:
        model = torchvision.models.get_model(name, weights=None).eval()
    x = torch.rand(1, 3, 64, 64)
    guided, calls = _input_grad(model, x, 3, "guided")
    # every activation module's call, plus DenseNet's functional F.relu after its last block
    assert calls == _count_act_calls(model, x) + (name == "densenet121")
    assert calls == {"resnet18": 17, "vgg11": 10, "densenet121": 121, "efficientnet_lite0": 33}[name]
    plain, _ = _input_grad(model, x, 3)
    cos = F.cosine_similarity(guided.flatten(), plain.flatten(), dim=0)
    assert cos < 0.9, f"guided backprop on {name} is (nearly) the plain gradient (cos {cos:.3f})"
    if name == "efficientnet_lite0":     # the attribution classes see the same thing
        torch.testing.assert_close(GuidedBackprop(model).attribute(x, 3), guided)
        torch.testing.assert_close(Saliency(model).attribute(x, 3), plain)
    if name != "densenet121":      # the module swap cannot reach DenseNet's functional F.relu
        reference, _ = _input_grad(_swap_acts(model), x, 3)
        torch.testing.assert_close(guided, reference)


class FunctionalOnly(nn.Module):
    """Only F.relu calls, no ReLU module: module hooks would miss every one."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


def test_guided_on_an_f_relu_only_net_matches_a_module_version():
    model = FunctionalOnly()

    class Modules(FunctionalOnly):
        def forward(self, x):
            act = _GuidedAct(None)
            return self.fc(act(self.conv2(act(self.conv1(x)))).mean((2, 3)))

    reference = Modules()
    reference.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 8, 8)
    guided, calls = _input_grad(model, x, 1, "guided")
    want, _ = _input_grad(reference, x, 1)
    assert calls == 2
    torch.testing.assert_close(guided, want)
    assert not torch.allclose(guided, _input_grad(model, x, 1)[0])
