"""Time nnlab's attribution methods against Captum and pytorch-grad-cam, side by side.

Two models: torchvision ResNet-18 (random weights, eval mode) and EfficientNet-Lite0 (trained, offline, ReLU6 inside
timm's BatchNormAct2d; the course's default network, fed the course photos). Same batch (8 images 224x224), same
targets, same process. Each timing is the minimum over ``--repeats`` runs after one warm-up run, with the methods
interleaved, so that machine load affects both sides alike. The ratio is nnlab time / peer time
(goal: <= 1.1). The results are also compared numerically.

    python bench/bench_attribution.py [--repeats 5] [--device cpu] [--models resnet18 efficientnet_lite0]

Writes ``bench/results/attribution.md``.
"""
from __future__ import annotations

import argparse
import warnings
import platform
import time
from pathlib import Path

import torch
import torchvision

from nnlab.attribution import Deconvnet, GuidedBackprop, Saliency
from nnlab.attribution import GradCAM

GOAL = 1.1


def peers(model, x, target, layer_name, layer):
    """{row name: (nnlab callable, peer name, peer callable, how to compare the two results)}."""
    import captum.attr as ca
    from pytorch_grad_cam import GradCAM as PGCGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    pgc = PGCGradCAM(model=model, target_layers=[layer])
    pgc_targets = [ClassifierOutputTarget(int(t)) for t in target]

    def pgc_run():
        return torch.from_numpy(pgc(input_tensor=x, targets=pgc_targets))

    def same(a, b):
        return (a - b).abs().max().item() / b.abs().max().item()

    def same_after_pgc_processing(ours, theirs):
        """pytorch-grad-cam upsamples to the input size and scales each map to [0, 1]: do the same to ours."""
        import torch.nn.functional as F

        up = F.interpolate(ours, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        up = up - up.flatten(1).amin(1).view(-1, 1, 1)
        up = up / (up.flatten(1).amax(1).view(-1, 1, 1) + 1e-7)
        return (up - theirs).abs().max().item()

    return {
        "Saliency": (lambda: Saliency(model).attribute(x, target), "captum Saliency(abs=False)",
                     lambda: ca.Saliency(model).attribute(x, target=target, abs=False), same),
        "GuidedBackprop": (lambda: GuidedBackprop(model).attribute(x, target), "captum GuidedBackprop",
                           lambda: ca.GuidedBackprop(model).attribute(x, target=target), same),
        "Deconvnet": (lambda: Deconvnet(model).attribute(x, target), "captum Deconvolution",
                      lambda: ca.Deconvolution(model).attribute(x, target=target), same),
        "GradCAM (captum)": (lambda: GradCAM(model, layer_name).attribute(x, target), "captum LayerGradCam",
                             lambda: ca.LayerGradCam(model, layer).attribute(
                                 x, target=target, relu_attributions=True), same),
        "GradCAM (pytorch-grad-cam)": (lambda: GradCAM(model, layer_name).attribute(x, target),
                                       "pytorch-grad-cam GradCAM", pgc_run, same_after_pgc_processing),
    }, pgc


def measure(rows, repeats, device):
    """({row: (nnlab times, peer times)}, {row: diff}); repeat 0 is the warm-up, methods interleaved."""
    def timed(fn):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start, out

    times = {name: ([], []) for name in rows}
    diffs = {}
    for repeat in range(repeats + 1):
        for name, (ours, _, theirs, compare) in rows.items():
            t_ours, a = timed(ours)
            t_theirs, b = timed(theirs)
            if repeat == 0:
                diffs[name] = compare(a.detach().cpu(), b.detach().cpu())
            else:
                times[name][0].append(t_ours)
                times[name][1].append(t_theirs)
        print(f"repeat {repeat}/{repeats} done", flush=True)
    return times, diffs


def setup(name, batch, device):
    """(model, x (batch, 3, 224, 224), target (batch,), Grad-CAM layer name, layer, description)."""
    torch.manual_seed(0)
    if name == "resnet18":
        model = torchvision.models.resnet18(weights=None).eval().to(device)
        x = torch.rand(batch, 3, 224, 224, device=device)
        target = torch.arange(batch, device=device) * 100       # 8 different classes
        return model, x, target, "layer4", model.layer4, "ResNet-18 (random weights, eval), random images"
    from nnlab.data.images import photos
    from nnlab.models import default_imagenet_model

    model = default_imagenet_model().to(device)
    images = photos(224)
    x = images.images[:batch].to(device)
    with torch.no_grad():
        target = model(x).argmax(1)                              # the predicted classes
    names = ", ".join(images.names[:batch])
    return model, x, target, "model.bn2", model.model.bn2, (
        f"EfficientNet-Lite0 (trained, `nnlab.models.default_imagenet_model()`, ReLU6), the photos {names}, "
        f"predicted classes, Grad-CAM at `model.bn2`")


def relu6_check(model, x, target):
    """What Captum's GuidedBackprop does on a ReLU6 network: its distance to the plain gradient, and nnlab's."""
    import captum.attr as ca
    import torch.nn.functional as F

    plain = Saliency(model).attribute(x, target)
    theirs = ca.GuidedBackprop(model).attribute(x, target=target).detach()
    ours = GuidedBackprop(model).attribute(x, target)

    def rel(a, b):
        return (a - b).abs().max().item() / b.abs().max().item()

    def cos(a, b):
        return F.cosine_similarity(a.flatten(1), b.flatten(1)).mean().item()

    return (f"Captum {ca.GuidedBackprop.__name__} on EfficientNet-Lite0 (ReLU6 only, no nn.ReLU): max |captum - "
            f"plain gradient| / max |plain| = {rel(theirs, plain):.1e}, mean cosine similarity to the plain gradient "
            f"{cos(theirs, plain):.4f}: Captum's guided backprop overrides `nn.ReLU` modules only, so on this "
            f"network it *is* the plain gradient (its Deconvolution likewise). nnlab's GuidedBackprop: cosine "
            f"{cos(ours, plain):.4f} to the plain gradient, relative difference {rel(ours, plain):.1e}. The `diff` "
            f"column of the GuidedBackprop / Deconvnet rows for this model is therefore the difference between the "
            f"two rules, not an error.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["resnet18", "efficientnet_lite0"],
                        choices=["resnet18", "efficientnet_lite0"])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "attribution.md")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="captum")     # "Setting backward hooks on ReLU activations" ...

    tables = []
    for model_name in args.models:
        model, x, target, layer_name, layer, description = setup(model_name, args.batch, args.device)
        rows, pgc = peers(model, x, target, layer_name, layer)
        times, diffs = measure(rows, args.repeats, args.device)
        pgc.activations_and_grads.release()
        note = relu6_check(model, x, target) if model_name == "efficientnet_lite0" else None
        tables.append((description, rows, times, diffs, note))

    import captum
    import pytorch_grad_cam  # noqa: F401
    from importlib.metadata import version

    lines = [
        "# Attribution speed: nnlab vs Captum and pytorch-grad-cam",
        "",
        f"Batch {args.batch} x 3 x 224 x 224, device `{args.device}`, "
        f"min of {args.repeats} runs after a warm-up, methods interleaved in one process. "
        f"torch {torch.__version__}, captum {captum.__version__}, grad-cam {version('grad-cam')}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads. "
        f"Ratio = nnlab / peer (goal <= {GOAL}). `diff`: max |nnlab - peer| relative to the peer's max "
        "(for pytorch-grad-cam: after its upsampling and [0, 1] scaling).",
    ]
    for description, rows, times, diffs, note in tables:
        lines += ["", f"## {description}", "",
                  "| method | peer | nnlab (ms) | peer (ms) | ratio | goal met | diff |",
                  "|---|---|---:|---:|---:|:-:|---:|"]
        for name, (_, peer, _, _) in rows.items():
            ours, theirs = min(times[name][0]) * 1e3, min(times[name][1]) * 1e3
            ratio = ours / theirs
            lines.append(f"| {name.split(' (')[0]} | {peer} | {ours:.0f} | {theirs:.0f} | {ratio:.2f} | "
                         f"{'yes' if ratio <= GOAL else 'NO'} | {diffs[name]:.1e} |")
        if note:
            lines += ["", note]
    lines += ["", "Why nnlab is not slower: one forward pass, `torch.autograd.grad` to the input only, parameters "
              "frozen (no weight gradients); Grad-CAM starts the autograd graph at the layer (nothing before it "
              "is recorded). pytorch-grad-cam also calls `.backward()` (weight gradients) and post-processes "
              "in NumPy/OpenCV.", ""]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
