"""Review sheets for the written answers, and merging the instructor's points into the grades.

    nnlab review alice/05_*.ipynb bob/05_*.ipynb --out review/ [--grades grades.csv]
    nnlab review-merge review/05_*_review.csv --grades grades.csv --out merged.csv

``nnlab review`` writes, for every lab found among the submissions, ``DIR/NN_topic_review.html`` (one self-contained
page: per question, the question, the model answer and every student's answer, with an empty points column; and
each student's code-exercise results from ``--grades``) and ``DIR/NN_topic_review.csv`` (one row per submission and
question, with empty ``points`` and ``comment`` columns for the instructor to fill).

The questions come from ``solutions/NN_topic.ipynb``: each markdown cell tagged ``answer`` holds a model answer;
its question is the ``**Question N.k**`` text of the markdown cell before it, its id in the CSVs is ``QN.k``. A
question is worth 1 point unless the answer cell's metadata says otherwise: ``"nnlab": {"points": 2}``. The build
keeps cell ids, so a student's answer is the cell with the model answer's id. Student text is data, never markup:
it is shown escaped and verbatim (no Markdown rendering), cut at ``MAX_CHARS`` characters.

``nnlab review-merge`` adds one row per submission and question to the grades CSV (``exercise`` = ``QN.k``,
``status`` ``reviewed``, or ``not reviewed`` with 0 points when the sheet's points are empty, the comment in
``message``), keeping
its rows and columns; merging again replaces the rows of an earlier merge. Points that are not a number, negative
or above the question's maximum stop the merge with an error naming the row.
"""
from __future__ import annotations

import csv
import html
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import nbformat

from nnlab.course.build import ANSWER_PLACEHOLDER, ROOT

SOLUTIONS = ROOT / "solutions"
#: longest answer shown (HTML and CSV); the rest is cut with a note (a CSV cell holds at most 32,767 characters)
MAX_CHARS = 10_000
QUESTION = re.compile(r"\*\*Question\s+(\d+\.\d+)\*\*")
GRADE_FIELDS = ["submission", "exercise", "status", "points", "max_points", "message"]
REVIEW_FIELDS = ["lab", "question", "submission", "answer_status", "answer", "max_points", "points", "comment"]


@dataclass
class Question:
    id: str            # "Q5.1"
    cell_id: str       # id of the answer cell, kept by the build in the student's lab
    text: str
    model_answer: str
    points: float


def _points(cell, where: str) -> float:
    points = cell.metadata.get("nnlab", {}).get("points", 1)
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not math.isfinite(points) or points <= 0:
        raise ValueError(f"{where}: metadata nnlab.points must be a positive number, got {points!r}")
    return float(points)


def questions(solution: Path) -> List[Question]:
    """The written questions of a solution notebook, in order (see the module docstring)."""
    nb = nbformat.read(str(solution), as_version=4)
    found: List[Question] = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown" or "answer" not in cell.metadata.get("tags", []):
            continue
        before = nb.cells[i - 1].source if i and nb.cells[i - 1].cell_type == "markdown" else ""
        match = QUESTION.search(before)
        where = f"{solution.name}, answer cell {cell.get('id')!r}"
        if not match or not cell.get("id"):
            raise ValueError(f"{where}: expected a cell id and a '**Question N.k**' markdown cell just before it")
        qid = f"Q{match.group(1)}"
        if any(q.id == qid for q in found):
            raise ValueError(f"{where}: {qid} is asked twice")
        found.append(Question(qid, cell.id, before[match.start():].strip(), cell.source, _points(cell, where)))
    return found


def lab_of(path: Path, nb=None) -> Optional[str]:
    """A submission's lab number ``"NN"``: the build's metadata, else the ``NN_`` file name prefix."""
    meta = nb.get("metadata") if nb is not None else None
    meta = meta.get("nnlab") if isinstance(meta, dict) else None
    lab = str(meta.get("lab", "")) if isinstance(meta, dict) else ""
    if not re.fullmatch(r"\d\d", lab):
        match = re.match(r"(\d\d)_", path.name)
        lab = match.group(1) if match else ""
    return lab or None


def solution_of(lab: str, solutions: Path = SOLUTIONS) -> Optional[Path]:
    found = sorted(solutions.glob(f"{lab}_*.ipynb"))
    return found[0] if found else None


def _cut(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    return text[:MAX_CHARS] + f"\n[... cut: {len(text):,} characters in all, read the submission]"


def answers(path: Path, qs: List[Question], nb=None, error: str = "") -> Dict[str, tuple]:
    """``{question id: (status, text)}`` for one submission; status is answered / blank / missing / unreadable."""
    if nb is None:
        return {q.id: ("unreadable", error) for q in qs}
    try:
        cells = {}
        for cell in nb.cells:
            cells.setdefault(cell.get("id"), cell)
    except Exception as err:  # noqa: BLE001 - hostile or broken structure
        return {q.id: ("unreadable", f"the notebook's cells cannot be read ({type(err).__name__})") for q in qs}
    out = {}
    for q in qs:
        cell = cells.get(q.cell_id)
        source = cell.get("source", "") if cell is not None else None
        if isinstance(source, list):
            source = "".join(str(s) for s in source)
        if cell is None:
            out[q.id] = ("missing", f"no cell with id {q.cell_id!r} (deleted or replaced)")
        elif not isinstance(source, str):
            out[q.id] = ("unreadable", f"the answer cell holds {type(source).__name__}, not text")
        elif source.strip() in ("", ANSWER_PLACEHOLDER):
            out[q.id] = ("blank", "")
        else:
            out[q.id] = ("answered", _cut(source))
    return out


def read_grades(path: Path) -> List[dict]:
    """The rows of a ``nnlab grade`` CSV; ``ValueError`` naming the columns it lacks."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in GRADE_FIELDS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a grades CSV, expected the columns {', '.join(GRADE_FIELDS)}; "
                             f"missing {', '.join(missing)}")
        return list(reader)


def _same_file(a: str, b: Path) -> bool:
    return a == str(b) or Path(a).resolve() == b.resolve()


_CSS = """body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #bbb;padding:.4em;vertical-align:top;text-align:left}.text{white-space:pre-wrap;
font-family:monospace;max-height:30em;overflow:auto;margin:0}.model{background:#eef6ee}.blank,.missing,
.unreadable{color:#a00}.points{width:6em}"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def render_html(lab_name: str, qs: List[Question], subs: List[Path], got: Dict[Path, dict],
                grades: Dict[Path, List[dict]]) -> str:
    """The review page of one lab; every piece of text is escaped."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Review {_e(lab_name)}</title>"
             f"<style>{_CSS}</style></head><body><h1>Review of {_e(lab_name)}</h1>",
             f"<p>{len(subs)} submission(s), {len(qs)} written question(s), "
             f"{sum(q.points for q in qs):g} point(s). Fill the <code>points</code> column of the CSV.</p>"]
    exercises = sorted({r["exercise"] for rows in grades.values() for r in rows})
    if exercises:
        parts.append("<h2>Code exercises</h2><table><tr><th>submission</th>"
                     + "".join(f"<th>{_e(x)}</th>" for x in exercises) + "</tr>")
        for sub in subs:
            by = {r["exercise"]: r for r in grades.get(sub, [])}
            cells = "".join(f"<td>{_e(by[x]['status'])} {_e(by[x]['points'])}/{_e(by[x]['max_points'])}</td>"
                            if x in by else "<td class='missing'>no grade</td>" for x in exercises)
            parts.append(f"<tr><td>{_e(sub)}</td>{cells}</tr>")
        parts.append("</table>")
    for q in qs:
        parts.append(f"<h2>{_e(q.id)} ({q.points:g} point{'s' if q.points != 1 else ''})</h2>"
                     f"<pre class='text'>{_e(q.text)}</pre><h3>Model answer</h3>"
                     f"<pre class='text model'>{_e(q.model_answer)}</pre><table><tr><th>submission</th>"
                     f"<th>answer</th><th class='points'>points / {q.points:g}</th></tr>")
        for sub in subs:
            status, text = got[sub][q.id]
            body = f"<pre class='text'>{_e(text)}</pre>" if status == "answered" else \
                f"<span class='{status}'>{_e(status)}{': ' + _e(text) if text else ''}</span>"
            parts.append(f"<tr><td>{_e(sub)}</td><td>{body}</td><td></td></tr>")
        parts.append("</table>")
    return "\n".join(parts + ["</body></html>\n"])


def review(paths: List[Path], out: Path, grades_csv: Optional[Path] = None,
           solutions: Path = SOLUTIONS) -> tuple:
    """Write the sheets; return ``(written files, [(submission, why it was skipped)])``."""
    grade_rows = read_grades(grades_csv) if grades_csv else []
    by_lab: Dict[str, list] = {}
    skipped = []
    for path in dict.fromkeys(Path(p) for p in paths):     # each file once, in order
        try:
            nb, error = nbformat.read(str(path), as_version=4), ""
        except Exception as err:  # noqa: BLE001 - a broken file is listed, never a crash
            nb, error = None, f"not a readable notebook ({type(err).__name__}: {err})"
        lab = lab_of(path, nb)
        if lab is None:
            skipped.append((path, "cannot tell which lab this is (no nnlab metadata, no NN_ file name prefix)"))
        elif solution_of(lab, solutions) is None:
            skipped.append((path, f"lab {lab} has no solution in {solutions}"))
        else:
            by_lab.setdefault(lab, []).append((path, nb, error))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for lab, subs in sorted(by_lab.items()):
        solution = solution_of(lab, solutions)
        qs = questions(solution)
        got = {p: answers(p, qs, nb, error) for p, nb, error in subs}
        names = [p for p, _, _ in subs]
        grades = {p: [r for r in grade_rows if _same_file(r["submission"], p) and not r["exercise"].startswith("Q")]
                  for p in names}
        page = out / f"{solution.stem}_review.html"
        page.write_text(render_html(solution.stem, qs, names, got, grades), encoding="utf-8")
        sheet = out / f"{solution.stem}_review.csv"
        with open(sheet, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=REVIEW_FIELDS)
            writer.writeheader()
            for q in qs:
                for p in names:
                    status, text = got[p][q.id]
                    writer.writerow(dict(lab=lab, question=q.id, submission=str(p), answer_status=status,
                                         answer=text, max_points=f"{q.points:g}", points="", comment=""))
        written += [page, sheet]
    return written, skipped


def merge(review_csvs: List[Path], grades_csv: Path, solutions: Path = SOLUTIONS) -> tuple:
    """``(fieldnames, rows)``: the grades rows with one row per reviewed submission and question added."""
    with open(grades_csv, newline="") as f:
        fields = csv.DictReader(f).fieldnames
    rows = read_grades(grades_csv)
    spelling = {}                                        # a file -> how the grades CSV names it
    for g in rows:
        spelling.setdefault(Path(g["submission"]).resolve(), g["submission"])
    maxima: Dict[str, Dict[str, float]] = {}
    new: Dict[tuple, dict] = {}
    for sheet in review_csvs:
        with open(sheet, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("lab", "question", "submission", "points", "comment")
                       if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{sheet}: not a review CSV, missing the columns {', '.join(missing)}")
            for number, r in enumerate(reader, start=2):    # row 1 is the header
                where = f"{sheet} row {number} ({r['submission']}, {r['question']})"
                lab = r["lab"]
                if lab not in maxima:
                    solution = solution_of(lab, solutions) if re.fullmatch(r"\d\d", lab or "") else None
                    if solution is None:
                        raise ValueError(f"{where}: lab {lab!r} has no solution in {solutions}")
                    maxima[lab] = {q.id: q.points for q in questions(solution)}
                if r["question"] not in maxima[lab]:
                    raise ValueError(f"{where}: lab {lab} has no question {r['question']!r}; "
                                     f"expected one of {', '.join(maxima[lab])}")
                most = maxima[lab][r["question"]]
                text = (r["points"] or "").strip()
                if text:
                    try:
                        points = float(text)
                    except ValueError:
                        raise ValueError(f"{where}: points must be a number from 0 to {most:g}, "
                                         f"got {text!r}") from None
                    if not 0 <= points <= most:      # also rejects nan
                        raise ValueError(f"{where}: points must be from 0 to {most:g}, got {text}")
                submission = spelling.get(Path(r["submission"]).resolve(), r["submission"])
                key = (submission, r["question"])
                if key in new:
                    raise ValueError(f"{where}: {key[0]} {key[1]} is reviewed twice")
                comment = (r["comment"] or "").strip()
                new[key] = {**{c: "" for c in fields}, "submission": submission, "exercise": r["question"],
                            "status": "reviewed" if text else "not reviewed",
                            "points": f"{points:g}" if text else "0", "max_points": f"{most:g}",
                            "message": comment or ("written answer" if text else "written answer not reviewed")}
    kept = [r for r in rows if (r["submission"], r["exercise"]) not in new]
    return fields, kept + list(new.values())


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("review", help="review sheets (HTML + CSV) of the written answers, per lab",
                              description=__doc__.splitlines()[0])
    p.add_argument("submissions", nargs="+", type=Path, help="submitted .ipynb files")
    p.add_argument("--out", type=Path, required=True, help="folder for NN_topic_review.html and .csv")
    p.add_argument("--grades", type=Path, help="CSV of `nnlab grade`, for the code-exercise results")
    p.add_argument("--solutions", type=Path, default=SOLUTIONS, help="folder of the solution notebooks")
    p.set_defaults(run=run)
    m = subparsers.add_parser("review-merge", help="merge the points of review CSVs into a grades CSV",
                              description=__doc__.splitlines()[0])
    m.add_argument("reviews", nargs="+", type=Path, help="review CSVs with the points filled in")
    m.add_argument("--grades", type=Path, required=True, help="CSV of `nnlab grade`")
    m.add_argument("--out", type=Path, required=True, help="the merged CSV")
    m.add_argument("--solutions", type=Path, default=SOLUTIONS, help="folder of the solution notebooks")
    m.set_defaults(run=run_merge)


def run(args) -> int:
    """``nnlab review``: exit code 1 when a submission was skipped or nothing could be written."""
    try:
        written, skipped = review(args.submissions, args.out, args.grades, args.solutions)
    except (OSError, ValueError) as err:
        print(f"nnlab review: {err}", file=sys.stderr)
        return 1
    for path, why in skipped:
        print(f"nnlab review: skipped {path}: {why}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return 1 if skipped or not written else 0


def run_merge(args) -> int:
    """``nnlab review-merge``: exit code 1 (and nothing written) on any bad row."""
    try:
        fields, rows = merge(args.reviews, args.grades, args.solutions)
    except (OSError, ValueError) as err:
        print(f"nnlab review-merge: {err}", file=sys.stderr)
        return 1
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0
