"""Grade submitted lab notebooks: ``nnlab grade SUBMISSIONS... [--csv out.csv] [-j N] [--timeout 600]``.

Trust stays in the grader's process. For each submission the grader (1) reads the notebook and finds the lab by
its content, the ``# Exercise N.k: ...`` cells, cross-checked with the file name (a mismatch is reported);
(2) copies it into a private temporary folder and runs it in a sandboxed process (:mod:`nnlab.course.sandbox`,
:mod:`nnlab.course.kernel`) that keeps the function each *exercise cell* defined (never what a check cell later
rebound), calls it on the fixed inputs the grader sent and sends the outputs back as data only
(``torch.load(weights_only=True)``); (3) computes the reference on the same inputs in its own process and
compares. Ids and points come from the grader's exercise registry, so nothing the notebook prints or patches
sets a verdict, and points never exceed an exercise's points. An exercise cell that reaches for nnlab's
reference (``EXERCISES``, ``.reference``, ``nnlab.``) is flagged for the instructor in the ``flag`` column.

One row per submission and exercise (columns :data:`FIELDS`): passed / failed / not attempted / not graded, with
points; a submission that cannot be read, crashes, loops or was cut down still gets its rows.
"""
from __future__ import annotations

import ast
import csv
import re
import shutil
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from nnlab.course import exercises
from nnlab.course import sandbox

#: the CSV columns; the first six are the historical ones (instructors' spreadsheets read them): add, never rename
FIELDS = ["submission", "exercise", "status", "points", "max_points", "message", "lab", "flag"]
HEADER = re.compile(r"#\s*Exercise\s+(\d+)\.(\d+)\b")
MAX_RESULTS_BYTES = 256 * 2**20
#: tokens that, in an exercise cell, mean the function may just call nnlab's own answer
REFERENCE_TOKENS = ("EXERCISES", ".reference", "_reference", "nnlab", "check(", "verify(")
#: tokens that, anywhere in a notebook, mean it reaches into the grading machinery
TAMPER_TOKENS = ("EXERCISES", ".reference", "nnlab.course.kernel", "results.pt", "job.pt", "gc.get_referrers",
                 "_getframe", "pre_run_cell", "post_run_cell")


def lab_of(path: Path, nb) -> Optional[str]:
    """The lab a file *says* it is: from the metadata the build wrote, else from a ``NN_`` file-name prefix."""
    lab = nb.get("metadata", {}).get("nnlab", {}).get("lab")
    if lab:
        return f"{int(lab):02d}"
    match = re.match(r"(\d+)_", Path(path).name)
    return f"{int(match.group(1)):02d}" if match else None


def exercise_cells(nb) -> Dict[str, int]:
    """``{exercise id: index of the code cell whose first line is "# Exercise N.k: ..."}`` (the last such cell
    when there are several), for every registered id found."""
    found = {}
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        lines = str(cell.get("source", "")).lstrip().splitlines()
        match = HEADER.match(lines[0]) if lines else None
        if match and f"{int(match.group(1))}.{int(match.group(2))}" in exercises.EXERCISES:
            found[f"{int(match.group(1))}.{int(match.group(2))}"] = index
    return found


def identify_lab(path: Path, nb) -> Tuple[Optional[str], str]:
    """``(lab, note)``: the lab its exercise cells belong to (the most common lab among them); when it has none,
    the lab its name/metadata says, with a note; a note also when the content and the name disagree."""
    found = exercise_cells(nb)
    claimed = lab_of(path, nb)
    if not found:
        return claimed, ("no exercise cell found; lab taken from the file name/metadata" if claimed else "")
    lab = f"{int(Counter(i.split('.')[0] for i in found).most_common(1)[0][0]):02d}"
    if claimed and claimed != lab:
        return lab, f"lab mismatch: its exercise cells are lab {lab}, its file name/metadata says lab {claimed}"
    return lab, ""


def _defining_cell(nb, function: str) -> Optional[int]:
    """The last code cell with a top-level ``def function(`` (when the exercise header was deleted)."""
    pattern = re.compile(rf"^def\s+{re.escape(function)}\s*\(", re.M)
    index = None
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "code" and pattern.search(str(cell.get("source", ""))):
            index = i
    return index


def _flags(nb, cell_index: Optional[int]) -> str:
    notes = []
    if cell_index is not None:
        source = str(nb["cells"][cell_index].get("source", ""))
        body = "\n".join(l for l in source.splitlines()[1:] if not l.lstrip().startswith("#"))
        hits = [t for t in REFERENCE_TOKENS if t in body]
        if hits:
            notes.append(f"the exercise cell uses {', '.join(hits)}: it may call nnlab's reference")
    everywhere = "\n".join(str(c.get("source", "")) for c in nb.get("cells", []) if c.get("cell_type") == "code")
    tamper = [t for t in TAMPER_TOKENS if t in everywhere]
    if tamper:
        notes.append(f"the notebook mentions {', '.join(tamper)}: review it")
    return "; ".join(notes)


def _cases(ex) -> list:
    out = []
    for case in ex.cases():
        args, kwargs = case if (len(case) == 2 and isinstance(case[1], dict) and isinstance(case[0], tuple)) \
            else (case, {})
        out.append((tuple(args), dict(kwargs)))
    return out


def _judge(ex, cases, sent) -> Tuple[str, str]:
    """(status, message) of one exercise from what the sandbox sent back, compared in this process."""
    from nnlab.course.kernel import to_data, _clone

    if sent == "missing" or sent is None:
        return "not attempted", f"no function {ex.function}() after its exercise cell ran"
    if not isinstance(sent, list) or not sent:
        return "failed", "no output came back"
    for number, ((args, kwargs), row) in enumerate(zip(cases, sent), 1):
        if not isinstance(row, tuple) or not row:
            return "failed", f"case {number}: no output came back"
        if row[0] == "not implemented":
            return "not attempted", "not done yet (it raises NotImplementedError)"
        if row[0] == "raised" and len(row) == 3:
            return "failed", f"case {number} of {len(cases)} raised {row[1]}: {row[2]}"
        if row[0] != "ok" or len(row) != 3:
            return "failed", f"case {number}: no output came back"
        expected = to_data(ex.reference(*_clone(args), **_clone(kwargs)))
        problem = exercises.compare(row[1], expected, ex.rtol, ex.atol)
        if problem and isinstance(row[1], str) and row[1].startswith("<"):
            problem += f" ({row[1][1:-1]})"
        if problem is None:
            problem = exercises.compare(row[2], to_data((args, kwargs)), 0, 0, "your function's input")
            if problem:
                problem = "it changed its input in place (" + problem + ")"
        if problem:
            return "failed", f"case {number} of {len(cases)}: {problem}"
    if len(sent) < len(cases):
        return "failed", f"only {len(sent)} of {len(cases)} cases came back"
    return "passed", f"all {len(cases)} cases match the reference"


_STAGED: Dict[str, Path] = {}


def _staged(src: str) -> Path:
    """A folder holding world-readable copies of the files of ``src`` that the unprivileged user cannot read
    (made once per grading process; the shared folder itself is never changed)."""
    import os
    import stat

    if src not in _STAGED:
        import atexit

        staged = Path(tempfile.mkdtemp(prefix="nnlab-grade-staged-"))
        atexit.register(shutil.rmtree, staged, True)
        os.chmod(staged, 0o755)
        for root, _, files in os.walk(src):
            for name in files:
                f = Path(root) / name
                if not f.stat().st_mode & stat.S_IROTH and not name.endswith(".lock"):
                    target = staged / f.relative_to(src)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    for parent in [target.parent, *target.parent.parents]:
                        if parent == staged.parent:
                            break
                        os.chmod(parent, 0o755)
                    shutil.copyfile(f, target)
                    os.chmod(target, 0o644)
        _STAGED[src] = staged
    return _STAGED[src]


def _mirror(src: str, dst: Path) -> None:
    """``dst``: a writable tree of symbolic links to the files of ``src`` (or to their staged readable copies), so
    that the notebook reads the shared data and model cache, and writes (lock files) only into its own copy."""
    import os
    import stat

    staged = _staged(src)
    for root, _, files in os.walk(src):
        rel = Path(root).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            if name.endswith(".lock"):
                continue
            f = Path(root) / name
            readable = f.stat().st_mode & stat.S_IROTH
            os.symlink(f if readable else staged / rel / name, dst / rel / name)


def _shared_dirs() -> Dict[str, str]:
    """``{environment variable: real folder}`` for the data and model-cache folders the labs read."""
    import os

    return {n: os.path.realpath(os.environ[n]) for n in ("NNLAB_DATA", "NNLAB_CACHE")
            if os.environ.get(n) and os.path.isdir(os.environ[n])}


def _kernel_env() -> Dict[str, str]:
    env = {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "MPLCONFIGDIR": "{work}/.mpl"}
    for name in _shared_dirs():
        env[name] = "{work}/.shared/" + name
    return env


def _read_only_dirs() -> List[str]:
    import os

    dirs = list(_shared_dirs().values()) + [str(_staged(d)) for d in _shared_dirs().values()]
    try:
        import skimage

        dirs.append(os.path.dirname(skimage.__file__))
    except ImportError:
        pass
    return dirs


def grade_one(path: Path, timeout: int = 600, cell_timeout: int = 300, mode: Optional[str] = None,
              limits: Optional[sandbox.Limits] = None) -> List[dict]:
    """Grade one submission; one row per exercise of its lab (one ``error`` row when it is no notebook)."""
    import nbformat

    base = {"submission": str(path), "lab": "", "flag": ""}
    try:
        nb = nbformat.read(str(path), as_version=4)
        cells = [str(c.get("source", "")) if c.get("cell_type") == "code" else "" for c in nb.cells]
    except Exception as err:  # noqa: BLE001
        return [dict(base, exercise="-", status="error", points=0.0, max_points=0.0,
                     message=f"not a readable notebook ({type(err).__name__}: {err})"[:500])]
    lab, note = identify_lab(path, nb)
    expected = exercises.lab_exercises(lab) if lab else []
    if not expected:
        return [dict(base, exercise="-", status="error", points=0.0, max_points=0.0,
                     message="cannot tell which lab this is (no exercise cell, no NN_ file-name prefix)")]
    base["lab"] = lab
    found = exercise_cells(nb)
    where: Dict[str, Optional[int]] = {e.id: found.get(e.id, _defining_cell(nb, e.function)) for e in expected}
    job_cells: Dict[int, list] = {}
    for e in expected:
        if where[e.id] is not None:
            job_cells.setdefault(where[e.id], []).append((e.id, e.function))
    cases = {e.id: _cases(e) for e in expected}
    rows_note = (note + "; ") if note else ""

    tmp = Path(tempfile.mkdtemp(prefix="nnlab-grade-"))
    try:
        work = tmp / "copy"
        work.mkdir()
        shutil.copyfile(path, work / "submission.ipynb")
        (work / ".mpl").mkdir()
        for name, folder in _shared_dirs().items():
            _mirror(folder, work / ".shared" / name)
        try:
            import matplotlib

            for f in Path(matplotlib.get_cachedir()).glob("fontlist*.json"):
                shutil.copyfile(f, work / ".mpl" / f.name)
        except Exception:  # noqa: BLE001 - only a speed-up
            pass
        torch.save({"cells": cells, "exercise_cells": job_cells, "cell_timeout": cell_timeout,
                    "cases": {i: c for i, c in cases.items() if any(i == x for v in job_cells.values()
                                                                      for x, _ in v)}}, work / "job.pt")
        result = sandbox.run(["python", "-m", "nnlab.course.kernel", "{work}"], work, timeout,
                             limits=limits, env=_kernel_env(), read_only=_read_only_dirs(), mode=mode)
        results_file = work / "out" / "results.pt"
        sent, problem = None, None
        if result.timed_out:
            problem = f"time limit of {timeout} s exceeded"
        elif not results_file.is_file():
            problem = f"the notebook's process ended without results (exit code {result.returncode})"
        elif results_file.stat().st_size > MAX_RESULTS_BYTES:
            problem = "its results are too large"
        else:
            try:
                sent = torch.load(results_file, weights_only=True, map_location="cpu")
                if not isinstance(sent, dict) or not isinstance(sent.get("exercises", {}), dict):
                    raise TypeError("not a dict")
            except Exception as err:  # noqa: BLE001 - a pickle that would run code, or garbage
                problem = f"its results are not plain data ({type(err).__name__})"
                sent = None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for e in expected:
        flag = "; ".join(x for x in (note if note.startswith("lab mismatch") else "", _flags(nb, where[e.id])) if x)
        row = dict(base, exercise=e.id, max_points=float(e.points), flag=flag)
        if where[e.id] is None:
            rows.append(dict(row, status="not attempted", points=0.0,
                             message=rows_note + f"no exercise cell for {e.id} (no '# Exercise {e.id}' cell, "
                                                 f"no def {e.function})"))
            continue
        if problem:
            rows.append(dict(row, status="not graded", points=0.0, message=rows_note + problem))
            continue
        try:
            status, message = _judge(e, cases[e.id], sent["exercises"].get(e.id))
        except Exception as err:  # noqa: BLE001 - what came back was malformed
            status, message = "failed", f"its output could not be compared ({type(err).__name__}: {err})"[:500]
        errors = sent.get("errors", 0)
        if isinstance(errors, int) and errors:
            message += f" ({errors} cell(s) raised errors"
            firsts = sent.get("first_errors")
            if isinstance(firsts, list) and firsts and isinstance(firsts[0], str):
                message += f", the first: {firsts[0][:200]}"
            message += ")"
        rows.append(dict(row, status=status, points=float(e.points) if status == "passed" else 0.0,
                         message=rows_note + message))
    return rows


def grade(paths: List[Path], timeout: int = 600, cell_timeout: int = 300, progress: bool = True, jobs: int = 1,
          mode: Optional[str] = None) -> List[dict]:
    """Grade every submission (see :func:`grade_one`), ``jobs`` at a time, each in its own sandbox; the rows
    come in the order of ``paths``."""
    from tqdm.auto import tqdm

    def one(p):
        try:
            return grade_one(Path(p), timeout, cell_timeout, mode=mode)
        except Exception as err:  # noqa: BLE001 - one broken submission never stops the run
            return [{"submission": str(p), "exercise": "-", "status": "error", "points": 0.0, "max_points": 0.0,
                     "message": f"grading failed: {type(err).__name__}: {err}"[:500], "lab": "", "flag": ""}]

    with ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:
        results = list(tqdm(pool.map(one, paths), total=len(paths), desc="grading", disable=not progress))
    return [row for rows in results for row in rows]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("grade", help="execute and grade submitted lab notebooks",
                              description=__doc__.splitlines()[0])
    p.add_argument("submissions", nargs="+", type=Path, help="submitted .ipynb files")
    p.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    p.add_argument("-j", "--jobs", type=int, default=1, help="submissions graded in parallel (default 1)")
    p.add_argument("--timeout", type=int, default=600, help="seconds allowed per submission (default 600)")
    p.add_argument("--cell-timeout", type=int, default=300, help="seconds allowed per cell (default 300)")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.jobs < 1:
        raise ValueError(f"-j/--jobs must be at least 1, got {args.jobs}")
    rows = grade(args.submissions, args.timeout, args.cell_timeout, jobs=args.jobs)
    width = max(len(r["submission"]) for r in rows)
    for r in rows:
        print(f"{r['submission']:<{width}}  {r['exercise']:>5}  {r['status']:<13} "
              f"{r['points']:g}/{r['max_points']:g}  {r['message']}" + (f"  [FLAG: {r['flag']}]" if r["flag"] else ""))
    totals = {}
    for r in rows:
        got, most = totals.get(r["submission"], (0.0, 0.0))
        totals[r["submission"]] = (got + r["points"], most + r["max_points"])
    for sub, (got, most) in totals.items():
        print(f"total {sub}: {got:g}/{most:g}")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    return 0
