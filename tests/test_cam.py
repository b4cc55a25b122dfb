"""CAM, Grad-CAM, Guided Grad-CAM: exact values, the CAM = Grad-CAM identity on GAP + linear networks, errors."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import nnlab
from nnlab.attribution import GuidedBackprop
from nnlab.attribution import CAM, GradCAM, GuidedGradCAM, last_feature_layer
from nnlab.core import assert_no_hooks


def gap_net(seed=0, in_channels=3, k=6, n_classes=5):
    """features (conv, ReLU) -> global average pooling -> fc: the architecture CAM needs."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                       nn.Conv2d(8, k, 3, padding=1), nn.ReLU()),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(k, n_classes)).eval()


X = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def test_cam_exact_values_on_a_hand_built_net():
    """A_0 = x, A_1 = -x (a 1x1 conv), W[c] = [2, 1]: CAM = 2 x - x = x; and mean(CAM) + b = the score."""
    conv = nn.Conv2d(1, 2, 1, bias=False)
    fc = nn.Linear(2, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1., -1.]).view(2, 1, 1, 1))
        fc.weight.copy_(torch.tensor([[2., 1.], [0., 1.], [-1., 0.]]))
        fc.bias.copy_(torch.tensor([0.5, 0., 0.]))
    model = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc)
    x = torch.tensor([[1., 2.], [3., -4.]]).view(1, 1, 2, 2)
    assert torch.equal(CAM(model, layer="0").attribute(x, 0), x)
    assert torch.equal(CAM(model, layer=conv).attribute(x, 1), -x)
    assert torch.equal(CAM(model, layer="0").attribute(x, 2), -x)          # signed, no ReLU
    cam = CAM(model, "0").attribute(x, 0)
    assert torch.allclose(cam.mean() + 0.5, model(x)[0, 0])


def reference_gradcam(model, layer, x, classes):
    """Grad-CAM by the definition: alpha_k = mean over space of d S_c / d A_k; ReLU(sum_k alpha_k A_k)."""
    store = {}
    handle = layer.register_forward_hook(lambda m, i, out: store.update(acts=out))
    try:
        out = model(x)
        (grads,) = torch.autograd.grad(out[torch.arange(len(x)), classes].sum(), store["acts"])
    finally:
        handle.remove()
    alpha = grads.mean((2, 3))
    return F.relu((alpha[:, :, None, None] * store["acts"]).sum(1, keepdim=True)).detach()


def test_gradcam_is_the_definition():
    model = gap_net()
    layer = model[0][3]      # a conv layer (its output is then rectified, so not CAM's case)
    classes = torch.tensor([0, 3, 4])
    attr = GradCAM(model, layer="0.3").attribute(X, classes)
    assert attr.shape == (3, 1, 4, 4)
    torch.testing.assert_close(attr, reference_gradcam(model, layer, X, classes))
    # signed version
    signed = GradCAM(model, "0.3", relu=False).attribute(X, classes)
    assert (signed < 0).any() and torch.equal(signed.clamp(min=0), attr)


def test_gradcam_equals_cam_up_to_a_positive_factor_on_gap_linear_nets():
    model = gap_net(1)
    for target in (None, 2, [0, 1, 4]):
        cam = CAM(model, "0").attribute(X, target)
        grad_cam = GradCAM(model, "0").attribute(X, target)
        h, w = cam.shape[-2:]
        torch.testing.assert_close(grad_cam, cam.clamp(min=0) / (h * w))
        torch.testing.assert_close(GradCAM(model, "0", relu=False).attribute(X, target), cam / (h * w))


@pytest.fixture(scope="module")
def resnet():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def test_resnet18_cam_gradcam_identity_and_default_layer(resnet):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    cam = CAM(resnet, "layer4").attribute(x, [1, 2])
    grad_cam = GradCAM(resnet, resnet.layer4).attribute(x, [1, 2])
    assert cam.shape == (2, 1, 2, 2)
    torch.testing.assert_close(grad_cam, cam.clamp(min=0) / 4, rtol=1e-4, atol=1e-6)
    assert last_feature_layer(resnet, x) == "layer4"
    assert_no_hooks(resnet)


def test_wrong_layer_name_lists_the_candidates(resnet):
    with pytest.raises(ValueError, match="layer4.*"):
        GradCAM(resnet, layer="layer5")
    with pytest.raises(ValueError, match="not a sub-module"):
        GradCAM(resnet, layer=nn.Conv2d(1, 1, 1))


def test_cam_on_a_model_without_gap_linear_suggests_gradcam():
    torch.manual_seed(0)
    no_linear = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="GradCAM"):
        CAM(no_linear, "0")
    two_linears = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3)).eval()
    with pytest.raises(ValueError, match="GradCAM"):
        CAM(two_linears, "1").attribute(X)
    # the conv output is rectified before the pooling: CAM needs the ReLU's output
    model = gap_net()
    with pytest.raises(ValueError, match=r"GradCAM\(model, layer='0.3'\)"):
        CAM(model, "0.3").attribute(X)
    CAM(model, "0.4").attribute(X)
    with pytest.raises(ValueError, match="callable"):
        CAM(model, "0").attribute(X, lambda out: out[:, 0])
    assert_no_hooks(model)


def test_vgg_cam_error_and_gradcam_before_an_inplace_relu():
    """VGG's conv layers are followed by ReLU(inplace=True): Grad-CAM must use the conv output before it."""
    import torchvision

    torch.manual_seed(0)
    vgg = torchvision.models.vgg11(weights=None).eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with pytest.raises(ValueError, match="GradCAM"):
        CAM(vgg, "features").attribute(x)
    attr = GradCAM(vgg, "features.16", relu=False).attribute(x, 5)
    for m in vgg.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    ref = reference_gradcam(vgg, vgg.features[16], x, torch.tensor([5]))
    torch.testing.assert_close(attr.clamp(min=0), ref, rtol=1e-4, atol=1e-7)
    assert (attr < 0).any()


def test_gradcam_with_a_callable_target():
    model = gap_net()
    attr = GradCAM(model, "0.3").attribute(X, lambda out: out[:, 1] - out[:, 0])
    store = {}
    h = model[0][3].register_forward_hook(lambda m, i, o: store.update(a=o))
    out = model(X)
    h.remove()
    (g,) = torch.autograd.grad((out[:, 1] - out[:, 0]).sum(), store["a"])
    expected = F.relu((g.mean((2, 3))[:, :, None, None] * store["a"]).sum(1, keepdim=True))
    torch.testing.assert_close(attr, expected.detach())


def test_guided_gradcam_is_upsampled_gradcam_times_guided_backprop():
    model = gap_net(2)
    attr = GuidedGradCAM(model, "0.4").attribute(X)
    predicted = model(X).argmax(1)
    cam = GradCAM(model, "0.4").attribute(X, predicted)
    up = F.interpolate(cam, size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(attr, up * GuidedBackprop(model).attribute(X, predicted))
    assert attr.shape == X.shape


class BNGapNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(6, 4)
        self.fail = False

    def forward(self, x):
        a = self.relu(self.bn(self.conv(x)))
        if self.fail:
            raise RuntimeError("boom")
        return self.fc(a.mean((2, 3)))


METHODS = {
    "CAM": lambda m: CAM(m, "relu"),
    "GradCAM": lambda m: GradCAM(m, "conv"),
    "GuidedGradCAM": lambda m: GuidedGradCAM(m, "bn"),
}


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("fail", [False, True])
def test_model_and_input_unchanged(name, fail):
    model = BNGapNet().train()
    model.conv.bias.requires_grad_(False)
    model.fail = fail
    x = X.clone()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    if fail:
        with pytest.raises(RuntimeError, match="boom"):
            METHODS[name](model).attribute(x, 1)
    else:
        attr = METHODS[name](model).attribute(x)
        assert not attr.requires_grad
        assert attr.shape == ((3, 3, 8, 8) if name == "GuidedGradCAM" else (3, 1, 8, 8))
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert model.training and model.bn.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(x, X) and not x.requires_grad
    assert_no_hooks(model)
    assert torch._C._len_torch_function_stack() == 0


@pytest.mark.parametrize("name", list(METHODS))
def test_batch_equals_one_at_a_time(name):
    model = BNGapNet().eval()
    method = METHODS[name](model)
    batch = method.attribute(X, [0, 1, 3])
    single = torch.cat([method.attribute(X[i:i + 1], t) for i, t in enumerate([0, 1, 3])])
    torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-6)


def test_layer_that_does_not_run_and_exports():
    model = BNGapNet().eval()
    model.unused = nn.Conv2d(1, 1, 1)     # registered, never called in forward
    with pytest.raises(ValueError, match="did not run"):
        GradCAM(model, "unused").attribute(X)
    for name in ("CAM", "GradCAM", "GuidedGradCAM"):
        assert getattr(nnlab, name) is getattr(nnlab.attribution.cam, name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(METHODS))
def test_cuda_matches_cpu(name):
    model = BNGapNet().eval()
    cpu = METHODS[name](model).attribute(X, [0, 1, 3])
    gpu = METHODS[name](model.cuda()).attribute(X.cuda(), [0, 1, 3])
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-5)
