"""Time nnlab's evaluation of saliency maps against Quantus and against the naive per-step loops, side by side.

The two measurements of issue #9, on the trained MNIST CNN (``pretrained("mnist_cnn")``), explaining the true
class with ``Saliency`` maps:

1. **cascading check**: a full cascading model-randomisation check of one method on 16 test digits (the original
   maps + one recomputation per layer, 4 layers). nnlab: ``model_randomisation`` (Spearman of |attr| and SSIM).
   Peers: Quantus ``MPRT(layer_order="top_down")`` (Spearman of |attr|, its default), and the naive loop: a
   fresh deep copy of the model per step, the layers re-initialised up to this step, ``scipy.stats.spearmanr`` per
   image.
2. **deletion curves** on 100 test digits, 28 pixels per step (29 points per curve), maps precomputed. nnlab:
   ``deletion``. Peers: Quantus ``PixelFlipping(features_in_step=28, perturb_baseline="black")`` (one forward
   pass per step for the whole batch), and the loop of the RISE paper's code (one image, one step, one forward
   pass at a time).

Each timing is the minimum over ``--repeats`` runs after a warm-up, the contenders interleaved in one process, so
that machine load affects them alike; ratio = nnlab time / peer time. The deletion curves are also compared
numerically (the same pixels, the same probabilities). Quantus is optional: ``pip install --no-deps quantus``
(pure Python; it needs pandas, opencv-python, scikit-image, scipy, which the course environment has); without it
only the naive loops are timed.

    python bench/bench_evaluate.py [--repeats 3] [--threads 1]

Writes ``bench/results/evaluate.md``.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nnlab import data
from nnlab.attribution import Saliency
from nnlab.evaluation import deletion
from nnlab.models import pretrained
from nnlab.evaluation import model_randomisation, randomisable_layers, reinitialise


# --------------------------------------------------------------------------- the naive baselines
def naive_cascading(model, x, target):
    """Per step: deep-copy the model, re-initialise the top k layers, recompute the maps, scipy per image."""
    from scipy.stats import spearmanr

    layers = list(reversed(randomisable_layers(model)))
    original = Saliency(model).attribute(x, target).abs().flatten(1).numpy()
    means = [1.0]
    for k in range(1, len(layers) + 1):
        randomised = copy.deepcopy(model)
        for step, name in enumerate(layers[:k]):
            reinitialise(getattr(randomised, name), step)
        maps = Saliency(randomised).attribute(x, target).abs().flatten(1).numpy()
        means.append(float(np.mean([spearmanr(original[i], maps[i])[0] for i in range(len(x))])))
    return means


def naive_deletion(model, x, attr, target, step):
    """The RISE code's CausalMetric.single_run (deletion, black substrate), one image at a time."""
    n, channels, height, width = x.shape
    curves = []
    for i in range(n):
        order = attr[i].sum(0).flatten().argsort(descending=True)
        n_steps = (height * width + step - 1) // step
        current = x[i].clone()
        scores = []
        for k in range(n_steps + 1):
            with torch.no_grad():
                scores.append(F.softmax(model(current[None]), 1)[0, target[i]].item())
            current.view(channels, -1)[:, order[k * step:(k + 1) * step]] = 0
        curves.append(scores)
    return torch.tensor(curves)


# --------------------------------------------------------------------------- Quantus
def quantus_or_none():
    try:
        import quantus
        return quantus
    except Exception:  # not installed
        return None


def quantus_cascading(quantus, model, x, target):
    def explain(model, inputs, targets, **kwargs):
        inputs = torch.as_tensor(inputs, dtype=torch.float32)
        return Saliency(model).attribute(inputs, torch.as_tensor(targets)).numpy()

    metric = quantus.MPRT(layer_order="top_down", seed=0, disable_warnings=True, display_progressbar=False)
    scores = metric(model=model, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=None, explain_func=explain,
                    device="cpu", batch_size=len(x))
    return [float(np.mean(v)) for v in scores.values()]


def quantus_deletion(quantus, model, x, attr, target, step):
    metric = quantus.PixelFlipping(features_in_step=step, perturb_baseline="black", normalise=False, abs=False,
                                   disable_warnings=True, display_progressbar=False)
    curves = metric(model=model, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=attr.numpy(), device="cpu",
                    softmax=True, batch_size=len(x))
    return torch.tensor(curves)


# --------------------------------------------------------------------------- timing
def best_time(fn, repeats):
    fn()                                   # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every contender")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "evaluate.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    model = pretrained("mnist_cnn", progress=False)
    digits = data.mnist("test")
    quantus = quantus_or_none()
    rows, notes = [], []

    # 1. cascading check, 16 images
    x16, y16 = digits.images[:16], digits.labels[:16]
    ours = lambda: model_randomisation(Saliency(model), x16, y16, order="cascading")   # noqa: E731
    contenders = {"naive loop (deepcopy per step, scipy)": lambda: naive_cascading(model, x16, y16)}
    if quantus is not None:
        contenders["Quantus MPRT (top_down)"] = lambda: quantus_cascading(quantus, model, x16, y16)
    t_ours = best_time(ours, args.repeats)
    result = ours()
    notes.append("nnlab cascading, mean Spearman |attr| per step (original, fc, conv3, conv2, conv1): "
                 + ", ".join(f"{v:.2f}" for v in result.mean("spearman_abs").tolist()))
    for name, fn in contenders.items():
        t_peer = best_time(fn, args.repeats)
        rows.append(("cascading check, Saliency, 16 images (5 map computations)", name, t_ours, t_peer, ""))
        notes.append(f"{name}, mean Spearman |attr| per step: " + ", ".join(f"{v:.2f}" for v in fn()))

    # 2. deletion curves, 100 images
    x100, y100 = digits.images[:100], digits.labels[:100]
    attr = Saliency(model).attribute(x100, y100)
    ours = lambda: deletion(model, x100, attr, y100, step=28)   # noqa: E731
    reference = ours().scores
    t_ours = best_time(ours, args.repeats)
    contenders = {"RISE per-image per-step loop": lambda: naive_deletion(model, x100, attr, y100, 28)}
    if quantus is not None:
        contenders["Quantus PixelFlipping"] = lambda: quantus_deletion(quantus, model, x100, attr, y100, 28)
    for name, fn in contenders.items():
        t_peer = best_time(fn, args.repeats)
        curves = fn()
        ref = reference if curves.shape[1] == reference.shape[1] else reference[:, 1:]   # Quantus: no step 0
        diff = (curves.float() - ref).abs().max().item()
        rows.append(("deletion curves, 100 images, 29 steps", name, t_ours, t_peer, f"{diff:.1e}"))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    versions = f"torch {torch.__version__}" + (f", quantus {quantus.__version__}" if quantus else ", quantus not installed")
    lines = [
        "# Evaluating saliency maps: nnlab vs Quantus and the naive loops",
        "",
        f"Trained MnistCNN, `Saliency` maps of the true class, CPU, {args.threads} thread(s) for every contender, "
        f"min of {args.repeats} runs after a warm-up, contenders interleaved in one process; {versions}, "
        f"{platform.machine()}, load average {load:.1f} at the end (shared machine). Ratio = nnlab / peer "
        "(below 1: nnlab is faster). `diff`: max |nnlab - peer| over every point of every deletion curve.",
        "",
        "| task | peer | nnlab (s) | peer (s) | ratio | diff |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for task, peer, t_ours, t_peer, diff in rows:
        lines.append(f"| {task} | {peer} | {t_ours:.3f} | {t_peer:.3f} | {t_ours / t_peer:.2f} | {diff} |")
    lines += ["", "Similarities found (the peers draw other random weights, so only the trend is comparable):", ""]
    lines += [f"* {n}" for n in notes]
    lines += ["", "nnlab's cascading check also computes SSIM (skimage) for every map, which the peers do not; the "
              "deletion curves run all images and several steps per forward pass (`batch_size` perturbed images)."]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
