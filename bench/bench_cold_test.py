"""A cold `make test`: a fresh clone of this checkout's HEAD, a new virtual environment, pip without its cache, then
`make test` -> bench/results/cold_test.md (issue 19: under 10 minutes on 2 cores, the install included).

    python bench/bench_cold_test.py [--newcomer] [--write] [--keep]

Without ``--newcomer`` the run sees ``NNLAB_DATA`` as this shell has it (what CI runs). With it: no datasets
(``NNLAB_DATA`` unset), ``NNLAB_OFFLINE=1`` and an empty ``NNLAB_CACHE``, as a student's fresh clone. Each mode is
one section of the results file. The clone lives in a temporary folder, removed unless ``--keep``.

Whether bubblewrap (which ``make test`` installs with apt-get for the grading sandbox) was already on the machine is
recorded: apt-get's time counts only on a machine's first run. The time of each tier comes from the clone's
``test-output/tiers.txt``, written by the Makefile.
"""
import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "cold_test.md"
GOAL = 600.0           # seconds, install included
TITLE = "# A cold `make test`: a fresh clone to every unit test and notebook passed"


def _run(command, cwd, env, log):
    """Run ``command`` (a list) with its output appended to ``log``; return (seconds, exit status)."""
    start = time.perf_counter()
    with open(log, "a") as out:
        rc = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    return time.perf_counter() - start, rc


def _summary(log):
    """pytest's last summary line in ``log`` (``1213 passed, 15 skipped ... in 222.29s``), or '' when none."""
    lines = [line.strip("= \n") for line in Path(log).read_text(errors="replace").splitlines()
             if re.search(r"\d+ (passed|failed)", line) and " in " in line]
    return lines[-1] if lines else ""


def _section(mode, rows, total, rc, summary, bwrap_before, commit, load):
    met = "met" if rc == 0 and total < GOAL else "**not met**"
    heading = {"data": "## With the datasets (`NNLAB_DATA` set: what CI runs)",
               "newcomer": "## A newcomer: no datasets, offline, an empty cache"}[mode]
    return "\n".join([
        heading, "",
        f"Commit `{commit}`, {platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.1f} before and "
        f"{load[1]:.1f} after; pip without its cache (`PIP_NO_CACHE_DIR=1`); bubblewrap "
        f"{'already installed' if bwrap_before else 'not installed: apt-get installed it during the run'}.", "",
        "| step | time |", "|---|---:|", *rows,
        f"| **total** | **{total:.0f} s ({total / 60:.1f} min)** |", "",
        f"`make test` exit status {rc}; pytest: {summary or 'no summary line'}. "
        f"Goal: under {GOAL / 60:.0f} minutes, the install included: {met}.", ""])


def _write(mode, text):
    old = RESULTS.read_text() if RESULTS.exists() else TITLE + "\n\n`python bench/bench_cold_test.py [--newcomer] --write`.\n\n"
    parts = re.split(r"(?m)^(?=## )", old)
    key = text.splitlines()[0]
    kept = [p for p in parts[1:] if p.splitlines()[0] != key]
    sections = sorted(kept + [text + "\n"], key=lambda p: not p.startswith("## With the datasets"))
    RESULTS.write_text(parts[0] + "".join(s.rstrip("\n") + "\n\n" for s in sections).rstrip("\n") + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--newcomer", action="store_true", help="no datasets, NNLAB_OFFLINE=1, an empty cache")
    parser.add_argument("--write", action="store_true", help=f"write this mode's section of {RESULTS.relative_to(ROOT)}")
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = parser.parse_args(argv)
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                      text=True).stdout.strip():
        print("bench_cold_test: the working tree has uncommitted changes; the clone holds HEAD only", file=sys.stderr)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    folder = Path(tempfile.mkdtemp(prefix="nnlab-cold-test-"))
    clone, log = folder / "nnlab", folder / "make.log"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PIP_NO_CACHE_DIR="1", MPLBACKEND="Agg", TQDM_MININTERVAL="30")
    if args.newcomer:
        env.pop("NNLAB_DATA", None)
        env.update(NNLAB_OFFLINE="1", NNLAB_CACHE=str(folder / "cache"))
    mode = "newcomer" if args.newcomer else "data"
    bwrap_before = shutil.which("bwrap") is not None
    load_before = os.getloadavg()[0]
    print(f"bench_cold_test: {mode}, clone {clone}, log {log}", flush=True)

    install, rc = _run(["make", ".venv/.nnlab-installed"], clone, env, log)
    if rc:
        sys.exit(f"bench_cold_test: the install failed (exit {rc}); see {log}")
    test, rc = _run(["make", "test"], clone, env, log)
    tiers = {}
    tiers_file = clone / "test-output" / "tiers.txt"
    for line in (tiers_file.read_text().splitlines() if tiers_file.exists() else []):
        name, seconds = re.fullmatch(r"tier (\w+): (\d+) s", line.strip()).groups()
        tiers[name] = float(seconds)
    rows = [f"| install (`make .venv/.nnlab-installed`: a new venv, `pip install -e '.[dev,bench,browser]'`) | {install:.0f} s |",
            f"| bubblewrap check or install, make's own work | {test - sum(tiers.values()):.0f} s |"]
    rows += [f"| tier {name} | {seconds:.0f} s |" for name, seconds in tiers.items()]
    text = _section(mode, rows, install + test, rc, _summary(log), bwrap_before, commit,
                    (load_before, os.getloadavg()[0]))
    print(text)
    if args.write:
        _write(mode, text)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"bench_cold_test: kept {folder}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
