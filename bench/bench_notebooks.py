"""Build the labs and execute every notebook (solutions/ and labs/) once: wall time per notebook, the time of its
ImageNet (photo) sections and its slowest cells -> bench/results/notebooks.md. Goal: under 60 s per lab once the
lab models are cached.

    python bench/bench_notebooks.py [--labs 03,05]

A cell's time is nbclient's record (``metadata.execution``: from ``iopub.execute_input`` to ``shell.execute_reply``).
A photo section is a ``## `` section whose heading names ImageNet (every lab puts its EfficientNet-Lite0 part there).
"""
import argparse
import os
import platform
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "notebooks.md"


def _seconds(cell) -> float:
    t = cell.metadata.get("execution", {})
    if "iopub.execute_input" not in t or "shell.execute_reply" not in t:
        return 0.0
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (parse(t["shell.execute_reply"]) - parse(t["iopub.execute_input"])).total_seconds()


def run(path: Path):
    """Execute ``path``: (wall seconds, seconds in photo sections, [(seconds, code cell number, first line)])."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    wall = time.perf_counter() - start
    photo, in_photo, cells, number = 0.0, False, [], 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    in_photo = "imagenet" in line.lower()
            continue
        if cell.cell_type != "code":
            continue
        s = _seconds(cell)
        photo += s if in_photo else 0.0
        first = next((l for l in cell.source.splitlines() if l.strip() and not l.startswith("#")), "")
        cells.append((s, number, first.strip()[:60]))
        number += 1
    return wall, photo, sorted(cells, reverse=True)[:3]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", default="", help="comma-separated lab numbers (default: all)")
    args = parser.parse_args(argv)
    from nnlab import models
    from nnlab.course import build as build

    start = time.perf_counter()
    build.build(verbose=False)
    build_seconds = time.perf_counter() - start
    for name in models.REGISTRY:  # shipped models (verified); a model not shipped is trained into the cache first
        try:
            models.pretrained(name, progress=False)
        except FileNotFoundError:
            pass
    wanted = {f"{int(l):02d}" for l in args.labs.split(",") if l}
    rows = []
    load_before = os.getloadavg()[0]
    for path in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        if wanted and path.name[:2] not in wanted:
            continue
        sol, photo, slowest = run(path)
        lab, _, _ = run(ROOT / "labs" / path.name)
        rows.append((path.stem, sol, lab, photo, slowest))
        print(f"{path.stem}: solution {sol:.1f} s (ImageNet sections {photo:.1f} s), lab {lab:.1f} s", flush=True)
    lines = [
        "# Notebooks: build and execution time",
        "",
        f"One run of `python bench/bench_notebooks.py` on {platform.machine()}, {os.cpu_count()} cores, one notebook "
        f"at a time, load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} at the end, lab models "
        f"shipped (verified). Build of labs/: {build_seconds:.1f} s.",
        "Each time includes starting the kernel. Goal: under 60 s per lab. ImageNet sections: the cells of the lab's "
        "EfficientNet-Lite0 part (the `## ` section whose heading names ImageNet), solution notebook.",
        "",
        "| lab | solution (s) | student lab (s) | ImageNet sections (s) | under 60 s | slowest cells of the solution (s) |",
        "|---|---:|---:|---:|:-:|---|",
    ]
    for stem, sol, lab, photo, slowest in rows:
        cells = "; ".join(f"#{n} {s:.1f}: `{first}`" for s, n, first in slowest)
        lines.append(f"| {stem} | {sol:.1f} | {lab:.1f} | {photo:.1f} | {'yes' if max(sol, lab) < 60 else 'NO'} "
                     f"| {cells.replace('|', '/')} |")
    if not wanted:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text("\n".join(lines) + "\n")
        print(f"wrote {RESULTS}")
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
