"""Grade submitted lab notebooks: ``nnlab grade SUBMISSIONS... [--csv out.csv] [--timeout 600]``.

Each submission is executed top to bottom in a fresh kernel (in a separate process with a time limit, errors
allowed), then every exercise of its lab is verified against the reference by looking up the student's function
by name in the kernel (so deleting or skipping a check cell changes nothing). One row per student file and
exercise: passed / failed / not attempted, with points. A submission that cannot be read, crashes, loops or was
cut down still gets its rows, and never stops the run.
"""
from __future__ import annotations

import csv
import json
import multiprocessing as mp
import re
from pathlib import Path
from typing import List, Optional

from nnlab.course import exercises

RESULT_MARK = "NNLAB-GRADE-RESULT:"

_VERIFY_CELL = """
import json as _json, nnlab.course.exercises as _ex
_rows = []
for _e in _ex.lab_exercises({lab!r}):
    _v = _ex.verify(_e.id, globals().get(_e.function) if callable(globals().get(_e.function)) else None)
    _rows.append(dict(id=_v.id, status=_v.status, message=_v.message, points=_v.points, max_points=_v.max_points))
print({mark!r} + _json.dumps(_rows))
"""


def lab_of(path: Path, nb) -> Optional[str]:
    """The lab number of a submission: from the metadata the build wrote, else from a ``NN_`` file name prefix."""
    lab = nb.get("metadata", {}).get("nnlab", {}).get("lab")
    if lab:
        return str(lab)
    match = re.match(r"(\d+)_", path.name)
    return match.group(1) if match else None


def _execute(path: str, lab: str, cell_timeout: int, queue) -> None:
    """Child process: run the notebook, then the verification cell; put the rows (or an error) on ``queue``."""
    try:
        import nbformat
        from nbclient import NotebookClient

        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(_VERIFY_CELL.format(lab=lab, mark=RESULT_MARK)))
        client = NotebookClient(nb, timeout=cell_timeout, allow_errors=True, interrupt_on_timeout=True,
                                kernel_name="python3",
                                resources={"metadata": {"path": str(Path(path).parent)}})
        client.execute()
        errors = sum(1 for c in nb.cells[:-1] if c.cell_type == "code"
                     for o in c.get("outputs", []) if o.get("output_type") == "error")
        for output in nb.cells[-1].get("outputs", []):
            text = output.get("text", "")
            if RESULT_MARK in text:
                rows = json.loads(text.split(RESULT_MARK, 1)[1].strip().splitlines()[0])
                queue.put({"rows": rows, "errors": errors})
                return
        queue.put({"error": "the notebook could not be verified (its kernel died or the check cell failed)"})
    except Exception as err:  # noqa: BLE001 - any failure becomes a row, never a crash
        queue.put({"error": f"{type(err).__name__}: {err}"})


def grade_one(path: Path, timeout: int = 600, cell_timeout: int = 300) -> List[dict]:
    """Grade one submission; return one row per exercise of its lab (or one row saying why it could not run)."""
    import nbformat

    base = {"submission": str(path)}
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as err:  # noqa: BLE001
        return [dict(base, exercise="-", status="error", points=0.0, max_points=0.0,
                     message=f"not a readable notebook ({type(err).__name__}: {err})")]
    lab = lab_of(path, nb)
    if lab is None or not exercises.lab_exercises(lab):
        return [dict(base, exercise="-", status="error", points=0.0, max_points=0.0,
                     message="cannot tell which lab this is (no nnlab metadata, no NN_ file name prefix)")]
    expected = exercises.lab_exercises(lab)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_execute, args=(str(path), lab, cell_timeout, queue), daemon=True)
    proc.start()
    proc.join(timeout)
    result = None
    if proc.is_alive():
        proc.kill()
        proc.join()
        result = {"error": f"time limit of {timeout} s exceeded"}
    if result is None:
        try:
            result = queue.get(timeout=5)
        except Exception:  # noqa: BLE001
            result = {"error": f"the grading process died (exit code {proc.exitcode})"}
    if "error" in result:
        return [dict(base, exercise=e.id, status="not graded", points=0.0, max_points=e.points,
                     message=result["error"]) for e in expected]
    note = f" ({result['errors']} cell(s) raised errors)" if result["errors"] else ""
    return [dict(base, exercise=r["id"], status=r["status"], points=r["points"], max_points=r["max_points"],
                 message=r["message"] + note) for r in result["rows"]]


def grade(paths: List[Path], timeout: int = 600, cell_timeout: int = 300, progress: bool = True) -> List[dict]:
    """Grade every submission (see :func:`grade_one`)."""
    from tqdm.auto import tqdm

    rows = []
    for path in tqdm(paths, desc="grading", disable=not progress):
        rows.extend(grade_one(Path(path), timeout, cell_timeout))
    return rows


FIELDS = ["submission", "exercise", "status", "points", "max_points", "message"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("grade", help="execute and grade submitted lab notebooks",
                              description=__doc__.splitlines()[0])
    p.add_argument("submissions", nargs="+", type=Path, help="submitted .ipynb files")
    p.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    p.add_argument("--timeout", type=int, default=600, help="seconds allowed per submission (default 600)")
    p.add_argument("--cell-timeout", type=int, default=300, help="seconds allowed per cell (default 300)")
    p.set_defaults(run=run)


def run(args) -> int:
    rows = grade(args.submissions, args.timeout, args.cell_timeout)
    width = max(len(r["submission"]) for r in rows)
    for r in rows:
        print(f"{r['submission']:<{width}}  {r['exercise']:>5}  {r['status']:<13} "
              f"{r['points']:g}/{r['max_points']:g}  {r['message']}")
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

