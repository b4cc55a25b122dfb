"""Time the top-k scan (Zeiler-Fergus top-9 patches) over 10,000 MNIST test images, all features of one layer.

There is no peer library for this, so the baseline is the naive way, measured in the same run: one image at a
time through the network, a Python list of the best k per feature, and one deconvnet projection per top
activation. Both sides give the same top-k values (checked; tied images may come in another order). Goal: under 20 s for one layer on this CPU.

    python bench/bench_topk.py [--layers conv1 conv2 conv3] [--n 10000] [--baseline-n 2000]

The naive loop is timed on ``--baseline-n`` images and scaled to ``--n`` (it is linear in the number of images).
Writes ``bench/results/topk.md``.
"""
from __future__ import annotations

import argparse
import heapq
import platform
import time
from pathlib import Path

import torch

from nnlab.data import mnist
from nnlab.features import project
from nnlab.core import capture, eval_mode
from nnlab.models import pretrained
from nnlab.features import top_activations

GOAL_SECONDS = 20.0


def naive_top_k(model, images, layer, k=9):
    """The naive baseline: image by image, a heap of the best k per feature; then one projection at a time."""
    heaps = None
    with torch.no_grad(), eval_mode(model), capture(model, [layer]) as acts:
        for i in range(len(images)):
            model(images[i:i + 1])
            maps = acts[layer][0]                                     # (C, H, W)
            heaps = heaps or [[] for _ in range(len(maps))]
            for c, m in enumerate(maps):
                value, where = m.flatten().max(0)
                item = (value.item(), -i, where.item())
                if len(heaps[c]) < k:
                    heapq.heappush(heaps[c], item)
                else:
                    heapq.heappushpop(heaps[c], item)
    width = acts[layer].shape[-1]
    values = torch.tensor([[v for v, _, _ in sorted(h, reverse=True)] for h in heaps])
    for c, h in enumerate(heaps):
        for _, i, where in sorted(h, reverse=True):
            project(model, images[-i:-i + 1], layer, feature=c, keep="max", position=(where // width, where % width))
    return values


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="+", default=["conv1", "conv2", "conv3"])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--baseline-n", type=int, default=2000)
    parser.add_argument("--k", type=int, default=9)
    args = parser.parse_args()

    model = pretrained("mnist_cnn")
    images = mnist("test").images[:args.n]
    rows = []
    for layer in args.layers:
        start = time.perf_counter()
        top = top_activations(model, images, layer, k=args.k, progress=False)
        ours = time.perf_counter() - start
        subset = images[:args.baseline_n]
        start = time.perf_counter()
        naive_values = naive_top_k(model, subset, layer, args.k)
        naive = (time.perf_counter() - start) * len(images) / len(subset)
        check = top_activations(model, subset, layer, k=args.k, projections=False, progress=False)
        # values, not indices: saturated digits tie exactly (e.g. on conv1), and ties may be ordered either way
        same = torch.allclose(check.values, naive_values, rtol=1e-4, atol=1e-5)
        rows.append((layer, top.values.shape[0], ours, naive, naive / ours, same))
        print(f"{layer}: {top.values.shape[0]} features, nnlab {ours:.2f} s, naive loop {naive:.1f} s "
              f"(x{naive / ours:.0f}), same top-{args.k}: {same}", flush=True)

    lines = [
        "# Top-k activations (Zeiler-Fergus top-9 patches): 10,000 MNIST images, all features of one layer",
        "",
        f"Model: pretrained MnistCNN; k = {args.k}; scan + receptive-field patches + deconvnet projections of every "
        f"top activation. Machine: {platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads (2 shared cores). Naive loop timed on {args.baseline_n} images, "
        f"scaled to {len(images)}. Goal: nnlab under {GOAL_SECONDS:.0f} s.",
        "",
        "| layer | features | nnlab (s) | naive per-image loop (s) | speed-up | same top-k | goal met |",
        "|---|---|---|---|---|---|---|",
    ]
    for layer, n_features, ours, naive, ratio, same in rows:
        lines.append(f"| {layer} | {n_features} | {ours:.2f} | {naive:.1f} | x{ratio:.0f} | {same} | "
                     f"{'yes' if ours < GOAL_SECONDS else 'no'} |")
    out = Path(__file__).parent / "results" / "topk.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
