"""Input-space attribution: exact values on hand-built nets, the definitions on real architectures, and
the promise never to change the caller's model or input."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import nnlab
from nnlab.attribution import Deconvnet, GradientXInput, GuidedBackprop, LayerOutput, Occlusion, Saliency, SmoothGrad
from nnlab.core import target_scores
from nnlab.core import assert_no_hooks


# --------------------------------------------------------------------------- tiny hand-built nets
RELU_KINDS = {
    "module": lambda: nn.ReLU(),
    "module_inplace": lambda: nn.ReLU(inplace=True),
    "F.relu": lambda: F.relu,
    "F.relu_inplace": lambda: (lambda h: F.relu(h, inplace=True)),
    "F.relu_": lambda: F.relu_,
    "torch.relu": lambda: torch.relu,
    "torch.relu_": lambda: torch.relu_,
    "Tensor.relu": lambda: (lambda h: h.relu()),
    "Tensor.relu_": lambda: (lambda h: h.relu_()),
}


class TinyNet(nn.Module):
    """x (N,1,2,2) -> flatten -> W1 (4 hidden) -> ReLU -> W2 (2 classes).

    For x = [1, 2, 3, 4]: hidden pre-activations h = W1 x = [1, -2, 3, 5]; class 0 weights v = [2, 5, -3, 1].
    gradient:   d S0/d h = v * [h > 0]            = [2, 0, -3, 1]  -> d S0/d x = W1^T (.) = [3, 0, -3, 1]
    guided:     v * [h > 0] * [v > 0]             = [2, 0,  0, 1]  -> [3, 0, 0, 1]
    deconvnet:  max(v, 0)                         = [2, 5,  0, 1]  -> [3, -5, 0, 1]
    """

    def __init__(self, relu):
        super().__init__()
        self.fc1 = nn.Linear(4, 4, bias=False)
        self.fc2 = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1., 0, 0, 0], [0, -1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]]))
            self.fc2.weight.copy_(torch.tensor([[2., 5, -3, 1], [1, 1, 1, 1]]))
        self.relu = relu

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x.flatten(1))))


X_TINY = torch.tensor([1., 2, 3, 4]).view(1, 1, 2, 2)
EXPECTED = {
    Saliency: [3., 0, -3, 1],
    GuidedBackprop: [3., 0, 0, 1],
    Deconvnet: [3., -5, 0, 1],
    GradientXInput: [3., 0, -9, 4],
}


@pytest.mark.parametrize("kind", list(RELU_KINDS))
@pytest.mark.parametrize("method", list(EXPECTED), ids=lambda m: m.__name__)
def test_exact_values_on_tiny_net_for_every_relu_kind(method, kind):
    model = TinyNet(RELU_KINDS[kind]())
    attr = method(model).attribute(X_TINY, target=0)
    assert attr.shape == (1, 1, 2, 2)
    assert torch.equal(attr.flatten(), torch.tensor(EXPECTED[method]))


class TwoReLUNet(nn.Module):
    """One ``nn.ReLU`` module used twice, then a functional ReLU: every call must follow the rule."""

    def __init__(self, functional_last=True):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.conv3 = nn.Conv2d(6, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(4 * 4, 5)
        self.functional_last = functional_last

    def forward(self, x):
        h = self.relu(self.conv1(x))
        h = F.max_pool2d(self.relu(self.conv2(h)), 2)
        h = F.relu(self.conv3(h)) if self.functional_last else self.relu(self.conv3(h))
        return self.fc(h.mean(1).flatten(1))


class FunctionalNet(nn.Module):
    """Only functional ReLUs (no nn.ReLU module anywhere)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        h = F.relu(self.conv1(x))
        h = torch.relu(self.conv2(h)) + h.relu()
        return self.fc(F.relu(h).mean((2, 3)))


# --------------------------------------------------------------------------- an independent reference
class _ReferenceReLU(torch.autograd.Function):
    """The definitions, written out: guided = g * [x > 0] * [g > 0]; deconvnet = max(g, 0)."""

    @staticmethod
    def forward(ctx, x, rule):
        ctx.save_for_backward(x)
        ctx.rule = rule
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if ctx.rule == "guided":
            return g * (x > 0) * (g > 0), None
        return g.clamp(min=0), None


def reference(model, x, target, rule, monkeypatch):
    """Gradient with every ReLU replaced by the reference rule: ``F.relu`` (which ``nn.ReLU`` modules call),
    ``torch.relu`` and ``Tensor.relu`` are patched for the duration of one forward/backward pass. The patched
    ReLU is never in-place (the models use the returned value)."""
    relu = lambda h, inplace=False: _ReferenceReLU.apply(h, rule)  # noqa: E731
    with monkeypatch.context() as m:
        m.setattr(F, "relu", relu)
        m.setattr(torch, "relu", lambda h: _ReferenceReLU.apply(h, rule))
        m.setattr(torch.Tensor, "relu", lambda h: _ReferenceReLU.apply(h, rule))
        x = x.clone().requires_grad_()
        out = model(x)
        out[torch.arange(len(x)), target].sum().backward()
    return x.grad


def plain_gradient(model, x, target):
    x = x.clone().requires_grad_()
    out = model(x)
    out[torch.arange(len(x)), target].sum().backward()
    return x.grad


@pytest.mark.parametrize("rule,method", [("guided", GuidedBackprop), ("deconvnet", Deconvnet)])
def test_functional_relus_are_not_missed(rule, method, monkeypatch):
    model = FunctionalNet().eval()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 1, 2])
    attr = method(model).attribute(x, target)
    assert not torch.allclose(attr, plain_gradient(model, x, target), atol=1e-6)   # what the peers return
    torch.testing.assert_close(attr, reference(model, x, target, rule, monkeypatch))


@pytest.mark.parametrize("functional_last", [True, False])
@pytest.mark.parametrize("rule,method", [("guided", GuidedBackprop), ("deconvnet", Deconvnet)])
def test_reused_inplace_module_and_functional_relu(rule, method, functional_last, monkeypatch):
    model = TwoReLUNet(functional_last).eval()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([3, 1])
    attr = method(model).attribute(x, target)
    torch.testing.assert_close(attr, reference(model, x, target, rule, monkeypatch))


@pytest.fixture(scope="module")
def torchvision_models():
    import torchvision

    torch.manual_seed(0)
    return {name: getattr(torchvision.models, name)(weights=None).eval()
            for name in ("resnet18", "vgg11", "densenet121")}


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "densenet121"])
def test_torchvision_models_match_the_definition(name, torchvision_models, monkeypatch):
    model = torchvision_models[name]
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([7])
    for rule, method in (("guided", GuidedBackprop), ("deconvnet", Deconvnet)):
        attr = method(model).attribute(x, target)
        assert not torch.allclose(attr, plain_gradient(model, x, target))
        torch.testing.assert_close(attr, reference(model, x, target, rule, monkeypatch), rtol=1e-4, atol=1e-6)
    assert_no_hooks(model)
    assert torch._C._len_torch_function_stack() == 0


# --------------------------------------------------------------------------- saliency and targets
def small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 5)).eval()


X = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))


def test_saliency_is_the_autograd_gradient():
    model = small_cnn()
    target = torch.tensor([0, 4, 2, 2])
    torch.testing.assert_close(Saliency(model).attribute(X, target), plain_gradient(model, X, target))


def test_target_forms():
    model = small_cnn()
    predicted = model(X).argmax(1)
    sal = Saliency(model)
    torch.testing.assert_close(sal.attribute(X), plain_gradient(model, X, predicted))            # None
    torch.testing.assert_close(sal.attribute(X, 2), plain_gradient(model, X, torch.full((4,), 2)))
    torch.testing.assert_close(sal.attribute(X, [1, 2, 3, 4]), plain_gradient(model, X, torch.tensor([1, 2, 3, 4])))
    torch.testing.assert_close(sal.attribute(X, torch.tensor(3)), plain_gradient(model, X, torch.full((4,), 3)))
    # a callable: here the difference of two logits (a "regression" output)
    x = X.clone().requires_grad_()
    out = model(x)
    (out[:, 1] - out[:, 0]).sum().backward()
    torch.testing.assert_close(sal.attribute(X, lambda out: out[:, 1] - out[:, 0]), x.grad)


def test_bad_input_and_target_give_clear_errors():
    model = small_cnn()
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*x\[None\]"):
        Saliency(model).attribute(X[0])
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        Saliency(model).attribute(X, 5)
    with pytest.raises(ValueError, match="4 ints"):
        Saliency(model).attribute(X, [1, 2])
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        Saliency(model).attribute(X, lambda out: out.sum())
    with pytest.raises(ValueError, match="nn.Module"):
        Saliency(lambda x: x)


def test_target_scores_are_pre_softmax_logits():
    out = torch.tensor([[1., 5., -2.], [0., 0., 3.]])
    assert torch.equal(target_scores(out, None), torch.tensor([5., 3.]))
    assert torch.equal(target_scores(out, [2, 0]), torch.tensor([-2., 0.]))


def test_layer_output_explains_a_neuron():
    model = small_cnn()
    unit = lambda acts: acts[:, 2, 1, 2]  # noqa: E731  channel 2 of the second conv, row 1, column 2
    attr = Saliency(LayerOutput(model, "3")).attribute(X, unit)
    x = X.clone().requires_grad_()
    model[3](model[2](model[1](model[0](x))))[:, 2, 1, 2].sum().backward()
    torch.testing.assert_close(attr, x.grad)
    # its receptive field (8x8 pixels, jump 2, start -3): rows -1..6 and columns 1..8, clipped to the image
    seen = attr.abs().sum((0, 1)) > 0
    assert seen.any() and not seen[:, 0].any() and not seen[7, :].any()
    assert_no_hooks(model)


def test_gradient_x_input():
    model = small_cnn()
    torch.testing.assert_close(GradientXInput(model).attribute(X, 1), X * plain_gradient(model, X, torch.full((4,), 1)))


def test_guided_backprop_warns_when_the_model_has_no_relu():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with pytest.warns(UserWarning, match="no ReLU"):
        attr = GuidedBackprop(model).attribute(X_TINY, 0)
    torch.testing.assert_close(attr.flatten(), model[1].weight[0].detach())


# --------------------------------------------------------------------------- SmoothGrad
def test_smoothgrad_of_a_linear_model_is_its_gradient():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    attr = SmoothGrad(model, n_samples=5).attribute(X, 1)
    torch.testing.assert_close(attr, model[1].weight[1].detach().view(1, 3, 8, 8).expand(4, 3, 8, 8))


def test_smoothgrad_is_the_mean_of_noisy_gradients():
    model = small_cnn()
    target = torch.tensor([0, 1, 2, 3])
    assert torch.allclose(SmoothGrad(model, noise_level=0.0, n_samples=2).attribute(X, target),
                          plain_gradient(model, X, target))
    a = SmoothGrad(model, n_samples=4, seed=1).attribute(X, target)
    assert torch.equal(a, SmoothGrad(model, n_samples=4, seed=1).attribute(X, target))      # seeded
    assert not torch.allclose(a, SmoothGrad(model, n_samples=4, seed=2).attribute(X, target))
    # by hand: the same noise draws
    g = torch.Generator().manual_seed(1)
    sigma = 0.15 * (X.flatten(1).amax(1) - X.flatten(1).amin(1)).view(-1, 1, 1, 1)
    manual = sum(plain_gradient(model, X + sigma * torch.randn((1, 3, 8, 8), generator=g), target) for _ in range(4)) / 4
    torch.testing.assert_close(a, manual)


# --------------------------------------------------------------------------- occlusion
def linear_model(weight):
    model = nn.Sequential(nn.Flatten(), nn.Linear(weight.numel(), 1, bias=True))
    with torch.no_grad():
        model[1].weight.copy_(weight.flatten()[None])
        model[1].bias.fill_(0.5)
    return model


def test_occlusion_drops_on_a_linear_model():
    """For a linear score w . x, covering a window with 0 drops the score by the window's sum of w * x."""
    w = torch.arange(16.).view(1, 1, 4, 4) - 5
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(4))
    drops = Occlusion(linear_model(w), window=2).drops(x, 0)
    expected = (w * x).view(2, 2, 2, 2, 2).sum((2, 4))        # (N, block row, block col)
    torch.testing.assert_close(drops, expected)
    # a grey baseline: the drop is sum of w * (x - 0.5)
    drops = Occlusion(linear_model(w), window=2, baseline=0.5).drops(x, 0)
    torch.testing.assert_close(drops, (w * (x - 0.5)).view(2, 2, 2, 2, 2).sum((2, 4)))


def test_occlusion_matches_brute_force_with_overlapping_windows():
    model = small_cnn()
    x = X[:2]
    occ = Occlusion(model, window=(3, 2), stride=(2, 3), baseline=0.25, batch_size=5)
    drops = occ.drops(x, [1, 3])
    attr = occ.attribute(x, [1, 3])
    rows, cols = occ.positions(8, 8)
    assert (rows, cols) == ([0, 2, 4], [0, 3, 6])
    with torch.no_grad():
        clean = model(x)[[0, 1], [1, 3]]
        total, count = torch.zeros(2, 1, 8, 8), torch.zeros(1, 1, 8, 8)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                xo = x.clone()
                xo[:, :, r:r + 3, c:c + 2] = 0.25
                drop = clean - model(xo)[[0, 1], [1, 3]]
                torch.testing.assert_close(drops[:, i, j], drop)
                total[:, :, r:r + 3, c:c + 2] += drop.view(2, 1, 1, 1)
                count[:, :, r:r + 3, c:c + 2] += 1
    torch.testing.assert_close(attr, (total / count.clamp(min=1)).expand(2, 3, 8, 8))
    assert attr.shape == x.shape
    # spread() turns drops already computed into the same map, without a forward pass
    torch.testing.assert_close(occ.spread(drops, x.shape), attr)
    with pytest.raises(ValueError, match="drops: expected shape"):
        occ.spread(drops[:, :2], x.shape)


def test_occlusion_with_a_callable_target_and_bad_window():
    model = small_cnn()
    occ = Occlusion(model, window=4)
    torch.testing.assert_close(occ.drops(X, lambda out: out[:, 2]), occ.drops(X, 2))
    with pytest.raises(ValueError, match="larger than the image"):
        Occlusion(model, window=9).attribute(X)
    with pytest.raises(ValueError, match="window"):
        Occlusion(model, window=0)


# --------------------------------------------------------------------------- never change the caller's model or input
ALL_METHODS = {
    "Saliency": lambda m: Saliency(m),
    "GradientXInput": lambda m: GradientXInput(m),
    "SmoothGrad": lambda m: SmoothGrad(m, n_samples=3),
    "GuidedBackprop": lambda m: GuidedBackprop(m),
    "Deconvnet": lambda m: Deconvnet(m),
    "Occlusion": lambda m: Occlusion(m, window=4, stride=2),
}


class BNNet(nn.Module):
    """With batch norm and dropout (mode-dependent), an in-place ReLU and an optional failure."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(6, 4)
        self.fail = False

    def forward(self, x):
        h = self.relu(self.bn(self.conv(x)))
        if self.fail:
            raise RuntimeError("boom")
        return self.fc(h.mean((2, 3)))


def snapshot(model, x):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: m.training for n, m in model.named_modules()},
            {n: p.requires_grad for n, p in model.named_parameters()},
            x.clone(), x.requires_grad)


def assert_unchanged(model, x, before):
    state, modes, flags, x_values, x_flag = before
    after = model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state), "parameters or buffers changed"
    assert {n: m.training for n, m in model.named_modules()} == modes, "train/eval mode changed"
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags, "requires_grad changed"
    assert all(p.grad is None for p in model.parameters()), "parameter gradients were written"
    assert torch.equal(x, x_values) and x.requires_grad == x_flag and x.grad is None, "input changed"
    assert_no_hooks(model)
    assert torch._C._len_torch_function_stack() == 0, "a TorchFunctionMode is still active"


@pytest.mark.parametrize("name", list(ALL_METHODS))
@pytest.mark.parametrize("training", [False, True])
def test_model_and_input_unchanged_after_success(name, training):
    model = BNNet().train(training)
    model.bn.eval() if not training else None
    model.conv.bias.requires_grad_(False)   # a mix of flags, to be restored as they were
    x = X.clone()
    before = snapshot(model, x)
    attr = ALL_METHODS[name](model).attribute(x, None)
    assert attr.shape == x.shape and not attr.requires_grad
    assert_unchanged(model, x, before)


@pytest.mark.parametrize("name", list(ALL_METHODS))
def test_model_and_input_unchanged_after_an_error(name):
    model = BNNet().train()
    model.conv.bias.requires_grad_(False)
    model.fail = True
    x = X.clone().requires_grad_()
    before = snapshot(model, x)
    with pytest.raises(RuntimeError, match="boom"):
        ALL_METHODS[name](model).attribute(x, 1)
    assert_unchanged(model, x, before)


def test_predicted_class_comes_from_the_model_in_the_callers_mode():
    class ModeDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3 * 8 * 8, 2)

        def forward(self, x):
            out = self.fc(x.flatten(1))
            return out + torch.tensor([10., 0.]) if self.training else out + torch.tensor([0., 10.])

    model = ModeDependent().train()
    w = model.fc.weight.detach()
    torch.testing.assert_close(Saliency(model).attribute(X[:1]).flatten(), w[0])     # training: class 0
    assert model.training
    torch.testing.assert_close(Saliency(model.eval()).attribute(X[:1]).flatten(), w[1])


@pytest.mark.parametrize("name", list(ALL_METHODS))
def test_batch_equals_one_at_a_time(name):
    model = BNNet().eval()
    method = ALL_METHODS[name](model)
    batch = method.attribute(X, [0, 1, 2, 3])
    single = torch.cat([method.attribute(X[i:i + 1], i) for i in range(4)])
    torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-6)


def test_works_inside_no_grad_and_exports():
    model = small_cnn()
    with torch.no_grad():
        attr = nnlab.Saliency(model).attribute(X, 1)
    torch.testing.assert_close(attr, plain_gradient(model, X, torch.full((4,), 1)))
    for name in ("Saliency", "GradientXInput", "SmoothGrad", "GuidedBackprop", "Deconvnet", "Occlusion", "LayerOutput"):
        assert getattr(nnlab, name) is getattr(nnlab.attribution, name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(ALL_METHODS))
def test_cuda_matches_cpu(name):
    model = BNNet().eval()
    cpu = ALL_METHODS[name](model).attribute(X, [0, 1, 2, 3])
    gpu_model = copy.deepcopy(model).cuda()
    gpu = ALL_METHODS[name](gpu_model).attribute(X.cuda(), [0, 1, 2, 3])
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-5)
    # a CPU input to a CUDA model: computed on the model's device, returned on the input's
    assert ALL_METHODS[name](gpu_model).attribute(X, [0, 1, 2, 3]).device.type == "cpu"
