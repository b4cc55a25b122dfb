"""The first minute of a student: from a fresh checkout (no datasets, offline, an empty cache) to the first executed
cells of lab 06 -> bench/results/first_minute.md (the part after the install; the install is timed by the caller).

    python bench/bench_first_minute.py [--lab 06_class_activation_maps] [--cells 4]

Steps timed: building labs/ from solutions/ (what ``make lab`` does before JupyterLab opens), starting a kernel,
then each of the first ``--cells`` code cells of the student's lab (seconds after the kernel started). Afterwards
the cache folder is checked: no lab model may have been trained (``pretrained`` loads the shipped, verified file).
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "first_minute.md"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="06_class_activation_maps")
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--install-seconds", type=float, default=None, help="the install time measured by the caller")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    cache = Path(tempfile.mkdtemp(prefix="nnlab-first-minute-"))
    env = {k: v for k, v in os.environ.items() if k != "NNLAB_DATA"}
    env.update(NNLAB_OFFLINE="1", NNLAB_CACHE=str(cache), MPLBACKEND="Agg")
    os.environ.clear()
    os.environ.update(env)   # the kernel inherits this environment

    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nnlab.course.build"], check=True, cwd=ROOT, capture_output=True)
    build = time.perf_counter() - start

    import nbformat
    from nbclient import NotebookClient

    path = ROOT / "labs" / f"{args.lab}.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"][:args.cells]
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "labs")}})
    start = time.perf_counter()
    done = []
    with client.setup_kernel():
        kernel = time.perf_counter() - start
        for index, cell in enumerate(nb.cells):
            if cell in code:
                client.execute_cell(cell, index)
                done.append((time.perf_counter() - start, cell.source.splitlines()[0][:60]))
    trained = sorted(p.name for p in cache.rglob("*.pt"))
    load = os.getloadavg()[0]
    rows = [f"| build `labs/` from `solutions/` (`python -m nnlab.course.build`) | {build:.1f} s |",
            f"| kernel started | {kernel:.1f} s |"]
    rows += [f"| code cell {i} (`{first}`) done | {t:.1f} s after the kernel started |" for i, (t, first) in enumerate(done)]
    total = build + done[-1][0]
    install = f"{args.install_seconds:.0f} s + " if args.install_seconds else ""
    lines = ["# The first minute: a fresh checkout to the first executed cells of lab 06", "",
             f"`python bench/bench_first_minute.py` on {platform.machine()}, {os.cpu_count()} cores, load average "
             f"{load:.1f} at the end; offline (`NNLAB_OFFLINE=1`), `NNLAB_DATA` unset, an empty `NNLAB_CACHE`.", "",
             "| step | time |", "|---|---|", *rows, "",
             f"Total, build + kernel + {len(done)} cells: **{total:.1f} s** (goal: install {install}under 30 s).",
             f"Models trained into the empty cache: {', '.join(trained) or 'none'} (the shipped weights were used)."]
    if args.install_seconds:
        lines.insert(4, f"Install before it (`make` creating `.venv` and `pip install -e '.[dev,bench,browser]'` "
                        f"in a fresh venv): {args.install_seconds:.0f} s.\n")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        RESULTS.write_text(text)
    assert not trained, trained
    return 0


if __name__ == "__main__":
    sys.exit(main())
