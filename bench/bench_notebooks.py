"""Build the labs and execute every notebook (solutions/ and labs/) once: wall time per notebook
-> bench/results/notebooks.md. Goal: under 60 s per lab once the lab models are cached.

    python bench/bench_notebooks.py
"""
import os
import platform
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "notebooks.md"


def run(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - start


def main():
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
    rows = []
    for path in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        sol = run(path)
        lab = run(ROOT / "labs" / path.name)
        rows.append((path.stem, sol, lab))
        print(f"{path.stem}: solution {sol:.1f} s, lab {lab:.1f} s", flush=True)
    lines = [
        "# Notebooks: build and execution time",
        "",
        f"One run of `python bench/bench_notebooks.py` on {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} at the end, lab models cached. Build of labs/: {build_seconds:.1f} s.",
        "Each time includes starting the kernel. Goal: under 60 s per lab.",
        "",
        "| lab | solution (s) | student lab (s) | under 60 s |",
        "|---|---:|---:|:-:|",
    ]
    for stem, sol, lab in rows:
        lines.append(f"| {stem} | {sol:.1f} | {lab:.1f} | {'yes' if max(sol, lab) < 60 else 'NO'} |")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
