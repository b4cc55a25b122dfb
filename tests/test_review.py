"""`nnlab review` and `nnlab review-merge`: review sheets of the written answers and merging the points back.

Three made-up submissions of a made-up lab 42: alice answered, bob handed in the lab as handed out, mallory wrote
HTML/script and a huge answer; eve's file is not a notebook."""
import csv
import html
import re
from pathlib import Path

import nbformat
import pytest

from nnlab.cli import main
from nnlab.course import review as rv
from nnlab.course.build import ROOT, lab_from_solution

HOSTILE = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>"
HUGE = "A" * 200_000


def _solution(points2=2):
    nb = nbformat.v4.new_notebook()
    cells = [nbformat.v4.new_markdown_cell("# Lab 42"),
             nbformat.v4.new_markdown_cell("Some text.\n\n**Question 42.1** — Why is <b>this</b> so?"),
             nbformat.v4.new_markdown_cell("Because a < b & c."),
             nbformat.v4.new_code_cell("# Exercise 42.1: add\ndef add(a, b):\n    ### BEGIN SOLUTION\n"
                                       "    return a + b\n    ### END SOLUTION\n"),
             nbformat.v4.new_markdown_cell("**Question 42.2** — And that?"),
             nbformat.v4.new_markdown_cell("Model answer two.")]
    for cell, cid in zip(cells, ["t", "q1", "a1", "x1", "q2", "a2"]):
        cell.id = cid
    cells[2].metadata["tags"] = ["answer"]
    cells[5].metadata["tags"] = ["answer"]
    cells[5].metadata["nnlab"] = {"points": points2}
    nb.cells = cells
    return nb


def _submit(lab, path: Path, answers=None):
    nb = nbformat.from_dict(lab)
    for cell in nb.cells:
        if cell.get("id") in (answers or {}):
            cell.source = answers[cell.id]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def course(tmp_path):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    nb = _solution()
    nbformat.write(nb, str(solutions / "42_fake.ipynb"))
    lab = lab_from_solution(nb, "42_fake.ipynb")
    subs = {"alice": _submit(lab, tmp_path / "alice" / "42_fake.ipynb",
                             {"a1": "Alice says: it is a > b.", "a2": "Alice's second answer."}),
            "bob": _submit(lab, tmp_path / "bob" / "42_fake.ipynb"),
            "mallory": _submit(lab, tmp_path / "mallory" / "42_fake.ipynb", {"a1": HOSTILE, "a2": HUGE})}
    subs["eve"] = tmp_path / "eve" / "42_fake.ipynb"
    subs["eve"].parent.mkdir()
    subs["eve"].write_text("{ this is not json")
    grades = tmp_path / "grades.csv"
    with open(grades, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=rv.GRADE_FIELDS)
        writer.writeheader()
        writer.writerow(dict(submission=str(subs["alice"]), exercise="42.1", status="passed", points="1.0",
                             max_points="1.0", message="matches the reference"))
        writer.writerow(dict(submission=str(subs["bob"]), exercise="42.1", status="not attempted", points="0.0",
                             max_points="1.0", message="NotImplementedError"))
    return dict(root=tmp_path, solutions=solutions, subs=subs, grades=grades)


def _review(course, *extra):
    out = course["root"] / "review"
    rc = main(["review", *map(str, course["subs"].values()), *extra, "--out", str(out),
               "--grades", str(course["grades"]), "--solutions", str(course["solutions"])])
    return rc, out


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_questions_are_read_from_the_solution_with_their_points(course):
    qs = rv.questions(course["solutions"] / "42_fake.ipynb")
    assert [(q.id, q.cell_id, q.points) for q in qs] == [("Q42.1", "a1", 1.0), ("Q42.2", "a2", 2.0)]
    assert qs[0].text == "**Question 42.1** — Why is <b>this</b> so?"
    assert qs[0].model_answer == "Because a < b & c."


def test_every_real_solution_has_numbered_questions_and_the_handed_out_lab_is_all_blank(tmp_path):
    for solution in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        qs = rv.questions(solution)
        assert qs and all(re.fullmatch(rf"Q{int(solution.name[:2])}\.\d+", q.id) for q in qs), solution.name
    lab = ROOT / "labs" / "05_saliency_and_guided_backprop.ipynb"
    assert main(["review", str(lab), "--out", str(tmp_path)]) == 0
    rows = _rows(tmp_path / "05_saliency_and_guided_backprop_review.csv")
    assert [r["question"] for r in rows] == [q.id for q in rv.questions(ROOT / "solutions" / lab.name)]
    assert {r["answer_status"] for r in rows} == {"blank"}


@pytest.mark.parametrize("points", ["two", -1, 0, True, float("nan")])
def test_bad_points_in_the_solution_metadata_are_rejected(tmp_path, points):
    path = tmp_path / "42_fake.ipynb"
    nbformat.write(_solution(points2=points), str(path))
    with pytest.raises(ValueError, match=r"42_fake.ipynb, answer cell 'a2': metadata nnlab.points must be a "
                                         r"positive number"):
        rv.questions(path)


def test_an_answer_without_its_question_cell_is_rejected(tmp_path):
    nb = _solution()
    nb.cells[1].source = "No question label here."
    path = tmp_path / "42_fake.ipynb"
    nbformat.write(nb, str(path))
    with pytest.raises(ValueError, match=r"answer cell 'a1': expected .*'\*\*Question N.k\*\*'"):
        rv.questions(path)


def test_the_html_sheet_escapes_everything_and_holds_every_answer(course):
    rc, out = _review(course)
    assert rc == 0
    page = (out / "42_fake_review.html").read_text(encoding="utf-8")
    # self-contained and inert: inline CSS, no script, no image, no link, no external asset
    assert "<style>" in page
    tags = re.findall(r"<\s*/?\s*([^\s>/]+)([^>]*)>", page)
    assert {name.lower() for name, _ in tags} <= {"!doctype", "html", "head", "meta", "title", "style", "body", "h1",
                                                  "h2", "h3", "p", "code", "table", "tr", "th", "td", "pre", "span"}
    assert {attrs for _, attrs in tags} <= {"", " html", " charset='utf-8'", " class='text'", " class='text model'",
                                            " class='points'", " class='blank'", " class='unreadable'",
                                            " class='missing'"}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "Why is &lt;b&gt;this&lt;/b&gt; so?" in page and "Because a &lt; b &amp; c." in page
    assert "Alice says: it is a &gt; b." in page and "Alice&#x27;s second answer." in page
    assert "Q42.2 (2 points)" in page and "points / 2" in page and "Q42.1 (1 point)" in page
    # the huge answer is cut, with a note
    assert "A" * rv.MAX_CHARS in page and "A" * (rv.MAX_CHARS + 1) not in page
    assert "cut: 200,000 characters in all" in page
    assert len(page) < 5 * rv.MAX_CHARS
    # bob's blank lab, eve's broken file, and the code-exercise results from the grades CSV
    assert page.count(f"<tr><td>{html.escape(str(course['subs']['bob']))}</td><td><span class='blank'>blank"
                      "</span></td><td></td></tr>") == 2
    assert page.count("<span class='unreadable'>unreadable: not a readable notebook") == 2
    assert "<td>passed 1.0/1.0</td>" in page and "<td>not attempted 0.0/1.0</td>" in page
    assert page.count("<td class='missing'>no grade</td>") == 2     # mallory and eve


def test_the_csv_sheet_has_a_row_per_submission_and_question_with_empty_points(course):
    _, out = _review(course)
    rows = _rows(out / "42_fake_review.csv")
    subs = course["subs"]
    got = {(r["submission"], r["question"]): r for r in rows}
    assert len(rows) == 8 and list(rows[0]) == rv.REVIEW_FIELDS
    assert {r["points"] for r in rows} == {""} and {r["lab"] for r in rows} == {"42"}
    assert [r["max_points"] for r in rows if r["submission"] == str(subs["alice"])] == ["1", "2"]
    assert got[str(subs["alice"]), "Q42.1"]["answer"] == "Alice says: it is a > b."
    assert got[str(subs["alice"]), "Q42.1"]["answer_status"] == "answered"
    assert {got[str(subs["bob"]), q]["answer_status"] for q in ("Q42.1", "Q42.2")} == {"blank"}
    assert got[str(subs["mallory"]), "Q42.1"]["answer"] == HOSTILE       # CSV holds the text as written
    assert got[str(subs["mallory"]), "Q42.2"]["answer"].startswith("A" * rv.MAX_CHARS + "\n[... cut: 200,000")
    assert got[str(subs["eve"]), "Q42.2"]["answer_status"] == "unreadable"


def test_a_deleted_answer_cell_is_listed_as_missing(course, tmp_path):
    lab = lab_from_solution(_solution(), "42_fake.ipynb")
    lab.cells = [c for c in lab.cells if c.id != "a2"]
    path = _submit(lab, tmp_path / "carol" / "42_fake.ipynb")
    status = rv.answers(path, rv.questions(course["solutions"] / "42_fake.ipynb"),
                        nbformat.read(str(path), as_version=4))
    assert status == {"Q42.1": ("blank", ""), "Q42.2": ("missing", "no cell with id 'a2' (deleted or replaced)")}


def test_submissions_of_no_known_lab_are_skipped_and_reported(course, capsys):
    stray = course["root"] / "notes.ipynb"
    stray.write_text("{}")
    other = _submit(nbformat.v4.new_notebook(), course["root"] / "77_other.ipynb")
    hostile_meta = nbformat.v4.new_notebook(metadata={"nnlab": {"lab": "../../etc"}})
    traversal = _submit(hostile_meta, course["root"] / "frank" / "42_fake.ipynb")
    rc, out = _review(course, str(stray), str(other))
    err = capsys.readouterr().err
    assert rc == 1
    assert f"skipped {stray}: cannot tell which lab this is" in err
    assert f"skipped {other}: lab 77 has no solution in {course['solutions']}" in err
    assert sorted(p.name for p in out.iterdir()) == ["42_fake_review.csv", "42_fake_review.html"]
    assert rv.lab_of(traversal, nbformat.read(str(traversal), as_version=4)) == "42"   # name, not the metadata


def test_a_grades_csv_without_the_grade_columns_is_rejected(course, capsys):
    course["grades"].write_text("student,score\nalice,3\n")
    rc, _ = _review(course)
    assert rc == 1
    assert "grades.csv: not a grades CSV, expected the columns submission, exercise, status, points, max_points, " \
           "message; missing submission, exercise, status, points, max_points, message" in capsys.readouterr().err


def _filled(course, points, comments=None):
    """Review sheet of lab 42 with ``points[(name, question)]`` filled in."""
    _, out = _review(course)
    sheet = out / "42_fake_review.csv"
    rows = _rows(sheet)
    names = {str(p): n for n, p in course["subs"].items()}
    for r in rows:
        r["points"] = points.get((names[r["submission"]], r["question"]), "")
        r["comment"] = (comments or {}).get((names[r["submission"]], r["question"]), "")
    with open(sheet, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=rv.REVIEW_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return sheet


def _merge(course, *sheets, grades=None):
    merged = course["root"] / "merged.csv"
    rc = main(["review-merge", *map(str, sheets), "--grades", str(grades or course["grades"]), "--out", str(merged),
               "--solutions", str(course["solutions"])])
    return rc, merged


def test_merge_adds_a_row_per_submission_and_question_and_keeps_the_grades(course):
    sheet = _filled(course, {("alice", "Q42.1"): "1", ("alice", "Q42.2"): "1.5", ("bob", "Q42.1"): "0",
                             ("mallory", "Q42.1"): "0.5"}, {("mallory", "Q42.1"): "see me"})
    rc, merged = _merge(course, sheet)
    assert rc == 0
    rows, before = _rows(merged), _rows(course["grades"])
    assert list(rows[0]) == rv.GRADE_FIELDS and rows[:2] == before
    got = {(Path(r["submission"]).parent.name, r["exercise"]): r for r in rows[2:]}
    assert len(rows) == 2 + 8
    assert {k: (r["status"], r["points"], r["max_points"]) for k, r in got.items() if k[0] != "eve"} == {
        ("alice", "Q42.1"): ("reviewed", "1", "1"), ("alice", "Q42.2"): ("reviewed", "1.5", "2"),
        ("bob", "Q42.1"): ("reviewed", "0", "1"), ("bob", "Q42.2"): ("not reviewed", "0", "2"),
        ("mallory", "Q42.1"): ("reviewed", "0.5", "1"), ("mallory", "Q42.2"): ("not reviewed", "0", "2")}
    assert got["mallory", "Q42.1"]["message"] == "see me"
    assert got["bob", "Q42.2"]["message"] == "written answer not reviewed"
    # merging an updated sheet into the merged CSV replaces the earlier review rows
    sheet = _filled(course, {("bob", "Q42.2"): "2"})
    rc, again = _merge(course, sheet, grades=merged.rename(course["root"] / "first.csv"))
    rows = _rows(again)
    assert rc == 0 and len(rows) == 10 and rows[:2] == before
    assert [(r["status"], r["points"]) for r in rows if r["exercise"] == "Q42.2" and "bob" in r["submission"]] \
        == [("reviewed", "2")]


@pytest.mark.parametrize("question, points, error", [
    ("Q42.1", "abc", "points must be a number from 0 to 1, got 'abc'"),
    ("Q42.1", "1.5", "points must be from 0 to 1, got 1.5"),
    ("Q42.2", "2.01", "points must be from 0 to 2, got 2.01"),
    ("Q42.2", "-1", "points must be from 0 to 2, got -1"),
    ("Q42.2", "nan", "points must be from 0 to 2, got nan"),
])
def test_merge_rejects_bad_points_naming_the_row(course, capsys, question, points, error):
    sheet = _filled(course, {("alice", "Q42.1"): "1", ("bob", question): points})
    rc, merged = _merge(course, sheet)
    row = 2 + [(q, n) for q in ("Q42.1", "Q42.2") for n in ("alice", "bob", "mallory", "eve")].index((question, "bob"))
    assert rc == 1 and not merged.exists()
    assert f"{sheet} row {row} ({course['subs']['bob']}, {question}): {error}" in capsys.readouterr().err


def test_merge_rejects_unknown_questions_labs_duplicates_and_foreign_csvs(course, capsys):
    sheet = _filled(course, {})
    rows = _rows(sheet)

    def write(rows, fields=rv.REVIEW_FIELDS):
        with open(sheet, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    write([dict(rows[0], question="Q42.9")])
    assert _merge(course, sheet)[0] == 1
    assert "row 2 (" in (err := capsys.readouterr().err) and "lab 42 has no question 'Q42.9'; expected one of " \
        "Q42.1, Q42.2" in err
    write([dict(rows[0], lab="../42")])
    assert _merge(course, sheet)[0] == 1
    assert "lab '../42' has no solution in" in capsys.readouterr().err
    write([rows[0], rows[0]])
    assert _merge(course, sheet)[0] == 1
    assert f"row 3 ({rows[0]['submission']}, Q42.1): {rows[0]['submission']} Q42.1 is reviewed twice" \
        in capsys.readouterr().err
    write(rows, fields=["lab", "question", "submission"])
    assert _merge(course, sheet)[0] == 1
    assert "not a review CSV, missing the columns points, comment" in capsys.readouterr().err


def test_a_submission_spelt_differently_in_the_grades_is_the_same_file(course):
    other = str(course["subs"]["alice"].parent / ".." / "alice" / "42_fake.ipynb")
    rows = _rows(course["grades"])
    rows[0]["submission"] = other
    with open(course["grades"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=rv.GRADE_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    sheet = _filled(course, {("alice", "Q42.1"): "1"})
    page = (sheet.parent / "42_fake_review.html").read_text(encoding="utf-8")
    assert "<td>passed 1.0/1.0</td>" in page
    rc, merged = _merge(course, sheet)
    assert rc == 0
    assert [r["exercise"] for r in _rows(merged) if r["submission"] == other] == ["42.1", "Q42.1", "Q42.2"]
