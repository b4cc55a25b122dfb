"""``nnlab explain``: attribution maps for image files, from the command line.

    nnlab explain photos/*.jpg --model resnet18 --method gradcam --out maps/

For each image: ``DIR/<name>_<method>.png`` (the image, the map overlaid, the top-1 class); for all images:
``DIR/top5.csv`` (image, rank, class index, class name, probability). A file that is not an image is reported
and skipped. ``--model`` is a torchvision ImageNet model (``resnet18``, ``vgg11``, ``densenet121``, ...; see
``--weights``) or a trained lab model (``mnist_cnn``, ``cluttered_cnn``, ...; see ``nnlab.models.REGISTRY``).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlab.models.imagenet import Normalized

#: method name on the command line -> (how to build it, display mode of its overlay)
METHODS = {
    "saliency": ("Saliency", "abs"),
    "gradient_x_input": ("GradientXInput", "abs"),
    "smoothgrad": ("SmoothGrad", "abs"),
    "guided_backprop": ("GuidedBackprop", "abs"),
    "deconvnet": ("Deconvnet", "abs"),
    "occlusion": ("Occlusion", "positive"),
    "cam": ("CAM", "positive"),
    "gradcam": ("GradCAM", "positive"),
    "guided_gradcam": ("GuidedGradCAM", "abs"),
}


LAYER_METHODS = {"cam", "gradcam", "guided_gradcam"}


def load_model(name: str, weights: str = "DEFAULT"):
    """``(model taking images in [0, 1], inner model (whose layer names --layer uses), class names,
    input (channels, size))`` for a lab model name or a torchvision model name."""
    from nnlab import models

    if name in models.REGISTRY:
        model = models.pretrained(name)
        if hasattr(model, "outputs"):
            raise ValueError(f"{name} is a regression model (outputs {', '.join(model.outputs)}), not a classifier")
        in_shape = getattr(model, "in_shape", None)
        channels, size = (in_shape[0], in_shape[-1]) if in_shape else \
            {"mnist_cnn": (1, 28), "fashion_cnn": (1, 28), "cluttered_cnn": (1, 64)}.get(name, (1, 28))
        classes = getattr(model, "classes", None)
        if classes is None:
            with torch.no_grad():
                n_classes = model(torch.zeros(1, channels, size, size)).shape[1]
            classes = [str(i) for i in range(n_classes)]
        return model, model, list(classes), (channels, size)
    if weights.lower() == "none":
        inner = models.imagenet_model(name, weights=None)
    elif Path(weights).is_file():
        inner = models.imagenet_model(name, weights=None)
        inner.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    else:
        inner = models.imagenet_model(name, weights=weights)
    model = Normalized(inner, models.IMAGENET_MEAN, models.IMAGENET_STD).eval()
    return model, inner, list(inner.classes), (3, 224)


def read_image(path: Path, channels: int, size: int) -> torch.Tensor:
    """An image file -> (1, channels, size, size) in [0, 1]; ``ValueError`` when the file is not an image."""
    from nnlab.data.images import load_image

    x = load_image(path, size=size if channels == 3 else None)[None]
    if channels == 1:
        x = x.mean(1, keepdim=True)
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def build_method(method: str, model: nn.Module, layer):
    from nnlab import attribution
    from nnlab.attribution import cam as cam

    cls = getattr(cam if method in LAYER_METHODS else attribution, METHODS[method][0])
    if method in LAYER_METHODS:
        return cls(model, layer=layer)
    if method == "occlusion":
        return cls(model, window=16, stride=8, baseline=0.5)
    return cls(model)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``explain`` sub-command to an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser("explain", help="write attribution overlays and top-5 predictions for images",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", type=Path, help="image files")
    p.add_argument("--model", default="resnet18", help="torchvision ImageNet model or lab model (default resnet18)")
    p.add_argument("--weights", default="DEFAULT",
                   help="ImageNet weights: DEFAULT, a torchvision weights name, a state-dict file, or 'none' "
                        "(random weights, for trying things offline)")
    p.add_argument("--method", default="gradcam", choices=sorted(METHODS))
    p.add_argument("--layer", default=None,
                   help="layer for cam/gradcam/guided_gradcam (default: the last layer giving feature maps)")
    p.add_argument("--target", type=int, default=None, help="class to explain (default: the predicted class)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``nnlab explain``; returns the exit code (0: at least one image explained)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    from nnlab.attribution.cam import last_feature_layer
    from nnlab.core.hooks import get_layer
    from nnlab.viz import images as plot

    try:
        model, inner, classes, (channels, size) = load_model(args.model, args.weights)
    except (ValueError, FileNotFoundError) as err:
        print(f"nnlab explain: {err}", file=sys.stderr)
        return 1
    if args.weights.lower() == "none" and args.model not in _lab_models():
        print("nnlab explain: random weights: the maps explain an untrained network", file=sys.stderr)
    model = model.to(args.device)
    layer = None
    if args.method in LAYER_METHODS:
        try:
            layer = get_layer(inner, args.layer) if args.layer else \
                get_layer(model, last_feature_layer(model, torch.zeros(1, channels, size, size, device=args.device)))
            method = build_method(args.method, model, layer)
        except ValueError as err:
            print(f"nnlab explain: {err}", file=sys.stderr)
            return 1
    else:
        method = build_method(args.method, model, None)

    args.out.mkdir(parents=True, exist_ok=True)
    rows, done, skipped = [], 0, 0
    for path in tqdm(args.images, desc=f"explain ({args.method})", unit="image", disable=args.no_progress):
        try:
            x = read_image(path, channels, size).to(args.device)
        except (ValueError, FileNotFoundError) as err:
            tqdm.write(f"skipped {path}: {err}", file=sys.stderr)
            skipped += 1
            continue
        with torch.no_grad():
            probs = model(x).softmax(1)[0].cpu()
        top = probs.topk(min(5, len(probs)))
        for rank, (p, k) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
            rows.append({"image": str(path), "rank": rank, "class_index": k, "class": classes[k],
                         "probability": f"{p:.6f}"})
        target = args.target if args.target is not None else int(top.indices[0])
        try:
            attr = method.attribute(x, target)
        except ValueError as err:   # e.g. CAM on a model without GAP + linear
            print(f"nnlab explain: {err}", file=sys.stderr)
            return 1
        fig, axes = plt.subplots(1, 2, figsize=(6, 3.3))
        plot.show_image(x[0].cpu(), axes[0], title=path.name)
        plot.overlay(x[0].cpu(), attr[0].cpu(), axes[1], mode=METHODS[args.method][1], reduce="abs_max",
                     title=f"{args.method}: {classes[target]} ({probs[target]:.2f})")
        fig.tight_layout()
        fig.savefig(args.out / f"{path.stem}_{args.method}.png", dpi=100)
        plt.close(fig)
        done += 1
    with open(args.out / "top5.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "rank", "class_index", "class", "probability"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"nnlab explain: {done} image(s) explained, {skipped} skipped; results in {args.out}", file=sys.stderr)
    return 0 if done else 1


def _lab_models() -> set:
    from nnlab import models

    return set(models.REGISTRY)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m nnlab.cli.explain IMAGES ...`` (the same as ``nnlab explain IMAGES ...``)."""
    parser = argparse.ArgumentParser(prog="nnlab")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["explain", *(sys.argv[1:] if argv is None else argv)])
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
