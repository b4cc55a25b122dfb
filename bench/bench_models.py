"""Train every lab model from scratch on this CPU: time and test metrics -> bench/results/models.md.

    python bench/bench_models.py [NAME ...]

Uses a temporary cache, so the real cache (data/cache/models) is left alone. Goal for the MNIST CNN:
at least 99.0% test accuracy in under 90 s on a 2-core CPU.
"""
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "models.md"


def main(names):
    os.environ["NNLAB_CACHE"] = tempfile.mkdtemp(prefix="nnlab-bench-models-")
    from nnlab import models

    rows = []
    for name in names or list(models.REGISTRY):
        start = time.perf_counter()
        try:
            model = models.pretrained(name, progress=False, retrain=True)
        except FileNotFoundError as err:
            print(f"{name}: skipped ({err})")
            continue
        seconds = time.perf_counter() - start
        metrics = {k: v for k, v in model.metrics.items() if k not in ("data", "train_seconds")}
        rows.append((name, seconds, metrics, models.REGISTRY[name].description))
        print(f"{name}: {seconds:.1f} s {metrics}", flush=True)
    load = os.getloadavg()[0]
    lines = [
        "# Lab models: training time and test metrics on this CPU",
        "",
        f"One run of `python bench/bench_models.py` on {platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads, load average {load:.1f} at the end; torch {torch.__version__}.",
        "Time includes building the data set and evaluating. Goal: MNIST CNN >= 99.0% in under 90 s.",
        "",
        "| model | recipe | time (s) | test metrics |",
        "|---|---|---:|---|",
    ]
    for name, seconds, metrics, description in rows:
        lines.append(f"| {name} | {description} | {seconds:.1f} | {metrics} |")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main(sys.argv[1:])
