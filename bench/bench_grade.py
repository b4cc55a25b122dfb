"""Time ``nnlab grade``: seconds per submission for each lab, and class-scale throughput, ``-j 1`` against ``-j 2``.

Each submission is a copy of a lab's solution notebook (the full lab runs, then every exercise is verified),
graded in its own sandbox (:mod:`nnlab.course.sandbox`). Part 1 grades one submission of every lab, sequentially
(seconds per submission per lab) and then all of them with ``-j 2``. Part 2 grades ``--count`` submissions of lab
05 with ``-j 1`` and with ``-j 2`` (throughput, submissions per minute; the ratio is -j 2 / -j 1 wall time).
No peer library is measured: nbgrader and Otter-Grader are not installed here (and run in the student's kernel).

    python bench/bench_grade.py [--count 40] [--labs 00,05,...]

Writes ``bench/results/grade.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from nnlab.course import grade, sandbox

ROOT = Path(__file__).resolve().parents[1]


def _timed(paths, jobs):
    start = time.perf_counter()
    rows = grade.grade(paths, timeout=600, cell_timeout=300, progress=False, jobs=jobs)
    seconds = time.perf_counter() - start
    bad = [r for r in rows if r["status"] != "passed"]
    assert not bad, bad[:3]
    return seconds


def _part2(tmp, count):
    """Markdown lines of part 2: ``count`` copies of the lab 05 solution graded with -j 1, then with -j 2."""
    lab05 = next(s for s in sorted((ROOT / "solutions").glob("05_*.ipynb")))
    subs = []
    for i in range(count):
        p = tmp / f"05_student{i:02d}.ipynb"
        shutil.copyfile(lab05, p)
        subs.append(p)
    lines = ["", f"## Part 2: {count} submissions of lab 05", "",
             "| jobs | wall s | s / submission | submissions / min | load average (5 min) at the end |",
             "|---|---|---|---|---|"]
    walls = {}
    for jobs in (1, 2):
        walls[jobs] = _timed(subs, jobs)
        print(f"lab 05 x {count}, -j {jobs}: {walls[jobs]:.1f} s", flush=True)
        lines.append(f"| {jobs} | {walls[jobs]:.1f} | {walls[jobs] / count:.1f} | "
                     f"{60 * count / walls[jobs]:.1f} | {os.getloadavg()[1]:.1f} |")
    lines += ["", f"ratio -j 2 / -j 1 (wall): {walls[2] / walls[1]:.2f}"]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, 
                        help="submissions of lab 05 in part 2 (default 40; 0: part 1 only)")
    parser.add_argument("--labs", default="", help="comma-separated labs for part 1 (default: all)")
    parser.add_argument("--skip-parallel-labs", action="store_true", help="part 1 sequentially only")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "grade.md"), help="where to write")
    args = parser.parse_args(argv)
    solutions = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    if args.labs:
        wanted = {f"{int(l):02d}" for l in args.labs.split(",")}
        solutions = [s for s in solutions if s.name[:2] in wanted]
    tmp = Path(tempfile.mkdtemp(prefix="bench-grade-"))
    lines = ["# nnlab grade: seconds per submission", "",
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, sandbox: "
             f"load average {os.getloadavg()[0]:.1f} at the start, {'bubblewrap' if sandbox.have_bubblewrap() else 'fallback (no bubblewrap)'}; "
             f"each submission is a copy of the lab's solution (every exercise passes).", "",
             "## Part 1: each lab, sequentially (-j 1, one submission) and in parallel (-j 2, two submissions)", "",
             "| lab | -j 1: s / submission | -j 2: s / submission | ratio |", "|---|---|---|---|"]
    try:
        paths, seq, par = [], {}, {}
        warm = tmp / "warm-up.ipynb"                      # first sandbox + kernel start (caches), not recorded
        shutil.copyfile(solutions[0], warm)
        _timed([warm], 1)
        for s in solutions:
            p = tmp / s.name
            shutil.copyfile(s, p)
            paths.append(p)
            lab = s.name[:2]
            seq[lab] = _timed([p], 1)
            if not args.skip_parallel_labs:
                twin = tmp / f"{lab}_twin.ipynb"
                shutil.copyfile(s, twin)
                par[lab] = _timed([p, twin], 2) / 2
            print(f"lab {lab}: -j 1 {seq[lab]:.1f} s" + (f", -j 2 {par[lab]:.1f} s per submission" if par else ""),
                  flush=True)
            lines.append(f"| {lab} | {seq[lab]:.1f} | " + (f"{par[lab]:.1f} | {par[lab] / seq[lab]:.2f} |" if par
                                                           else "- | - |"))
        lines += ["", f"sum of the labs, -j 1: {sum(seq.values()):.1f} s"
                  + (f"; -j 2: {sum(par.values()):.1f} s per submission of each lab" if par else "")
                  + f"; load average (5 min) at the end {os.getloadavg()[1]:.1f}"]
        if args.count > 0:
            lines += _part2(tmp, args.count)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
