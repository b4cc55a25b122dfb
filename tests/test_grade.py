"""nnlab grade: the student's own function is graded, one row per submission and exercise, whatever it does."""
import csv
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from nnlab import cli
from nnlab.course import exercises
from nnlab.course import grade as grade

ROOT = Path(__file__).resolve().parents[1]
GOOD = "# Exercise 0.1: flatten\ndef flatten(x):\n    return x.reshape(len(x), -1)\n"
WRONG = "# Exercise 0.2: unflatten\ndef unflatten(v, shape):\n    return v\n"
STUB = "# Exercise 0.1: flatten\ndef flatten(x):\n    raise NotImplementedError('Exercise 0.1')\n"
CHECK = "from nnlab.course.exercises import check\nflatten = check('0.1', flatten)\nunflatten = check('0.2', unflatten)"


def _submission(path, *sources, lab="00"):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    if lab:
        nb.metadata["nnlab"] = {"lab": lab}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    d = tmp_path_factory.mktemp("submissions")
    paths = [
        _submission(d / "alice.ipynb", GOOD, "raise RuntimeError('a crash in the middle')", WRONG),
        _submission(d / "bob.ipynb", "import time\nwhile True:\n    time.sleep(0.1)", GOOD),
        _submission(d / "carol.ipynb", "x = 1  # deleted every exercise cell"),
        _submission(d / "frank.ipynb", STUB, WRONG.replace("return v", "raise NotImplementedError"), CHECK),
        _submission(d / "grace.ipynb", "# Exercise 0.1: flatten\ndef flatten(x):\n    return x.flatten()\n",
                    CHECK),
    ]
    (d / "dave.ipynb").write_text("this is not a notebook")
    paths.insert(3, d / "dave.ipynb")
    out = d / "grades.csv"
    code = cli.main(["grade", *map(str, paths), "--csv", str(out), "--timeout", "120", "--cell-timeout", "6",
                     "-j", "2"])
    assert code == 0
    with open(out) as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        assert reader.fieldnames[:6] == ["submission", "exercise", "status", "points", "max_points", "message"]
    assert [r["submission"].rsplit("/", 1)[-1] for r in rows][::2][:4] == \
        ["alice.ipynb", "bob.ipynb", "carol.ipynb", "dave.ipynb"]          # in the order given, with -j 2
    return {(r["submission"].rsplit("/", 1)[-1], r["exercise"]): r for r in rows}


def test_the_csv_keeps_its_columns_and_adds_lab_and_flag():
    assert grade.FIELDS[:6] == ["submission", "exercise", "status", "points", "max_points", "message"]
    assert {"lab", "flag"} <= set(grade.FIELDS)


def test_a_crash_mid_notebook_still_grades_every_exercise(graded):
    assert graded[("alice.ipynb", "0.1")]["status"] == "passed"
    assert float(graded[("alice.ipynb", "0.1")]["points"]) == 1.0
    assert graded[("alice.ipynb", "0.2")]["status"] == "failed"
    assert float(graded[("alice.ipynb", "0.2")]["points"]) == 0.0
    assert "raised errors" in graded[("alice.ipynb", "0.2")]["message"]


def test_a_loop_is_cut_by_the_cell_time_limit_and_the_rest_is_graded(graded):
    assert graded[("bob.ipynb", "0.1")]["status"] == "passed"
    assert graded[("bob.ipynb", "0.2")]["status"] == "not attempted"


def test_deleted_cells_mean_not_attempted(graded):
    assert graded[("carol.ipynb", "0.1")]["status"] == "not attempted"
    assert "no exercise cell" in graded[("carol.ipynb", "0.1")]["message"]


def test_an_unreadable_file_gets_an_error_row(graded):
    assert graded[("dave.ipynb", "-")]["status"] == "error"


def test_a_check_cell_rebinding_the_name_changes_nothing(graded):
    """The bug of issue 17: check() returns the reference for an unsolved exercise, the name is rebound, and the
    old grader verified the reference against itself."""
    for ex in ("0.1", "0.2"):
        assert graded[("frank.ipynb", ex)]["status"] == "not attempted"
        assert float(graded[("frank.ipynb", ex)]["points"]) == 0.0
    assert graded[("grace.ipynb", "0.1")]["status"] == "failed"      # x.flatten() flattens the batch too
    assert "shape" in graded[("grace.ipynb", "0.1")]["message"]


def test_lab_number_from_metadata_or_file_name(tmp_path):
    assert grade.lab_of(tmp_path / "05_saliency.ipynb", {"metadata": {}}) == "05"
    assert grade.lab_of(tmp_path / "whatever.ipynb", {"metadata": {"nnlab": {"lab": "03"}}}) == "03"
    assert grade.lab_of(tmp_path / "whatever.ipynb", {"metadata": {}}) is None


def test_the_lab_is_found_by_content_and_a_renamed_file_is_reported(tmp_path):
    nb = nbformat.read(ROOT / "labs" / "00_getting_started.ipynb", as_version=4)
    nb.metadata.pop("nnlab", None)
    assert grade.identify_lab(tmp_path / "00_alice.ipynb", nb) == ("00", "")
    lab, note = grade.identify_lab(tmp_path / "05_alice.ipynb", nb)
    assert lab == "00" and "mismatch" in note and "05" in note
    empty = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    assert grade.identify_lab(tmp_path / "03_bob.ipynb", empty)[0] == "03"
    assert grade.identify_lab(tmp_path / "bob.ipynb", empty) == (None, "")


def test_a_renamed_submission_is_graded_as_its_content_and_flagged(tmp_path):
    path = _submission(tmp_path / "05_alice.ipynb", GOOD, WRONG, lab=None)
    rows = grade.grade_one(path, timeout=120, cell_timeout=30)
    assert [r["exercise"] for r in rows] == ["0.1", "0.2"]
    assert all("lab mismatch" in r["flag"] and "lab mismatch" in r["message"] and r["lab"] == "00" for r in rows)


def test_a_submission_without_any_lab_gets_an_error_row(tmp_path):
    rows = grade.grade_one(_submission(tmp_path / "anon.ipynb", "x = 1", lab=None))
    assert len(rows) == 1 and rows[0]["status"] == "error" and "which lab" in rows[0]["message"]


def test_a_whole_notebook_over_its_time_limit_is_reported(tmp_path):
    path = _submission(tmp_path / "eve.ipynb", GOOD, "import time\ntime.sleep(60)")
    rows = grade.grade_one(path, timeout=8, cell_timeout=120)
    by_id = {r["exercise"]: r for r in rows}
    assert by_id["0.1"]["status"] == "not graded" and "time limit" in by_id["0.1"]["message"]
    assert by_id["0.2"]["status"] == "not attempted"             # no exercise cell at all
    assert all(float(r["points"]) == 0.0 for r in rows)


def test_jobs_below_one_are_refused():
    with pytest.raises(ValueError, match="-j/--jobs must be at least 1, got 0"):
        cli.main(["grade", "x.ipynb", "-j", "0"])


# ------------------------------------------------------------------ every lab: handed out 0, solution full, broken
def _broken(nb, ex_id):
    """The solution with exercise ``ex_id`` broken: its function raises right after the BEGIN SOLUTION line."""
    index = grade.exercise_cells(nb)[ex_id]
    source = nb.cells[index].source
    nb.cells[index].source = re.sub(r"(\n(\s*)### BEGIN SOLUTION\n)", r"\1\2raise ValueError('broken on purpose')\n",
                                    source, count=1)
    assert nb.cells[index].source != source
    return nb


@pytest.mark.slow
def test_every_lab_handed_out_scores_zero_the_solution_full_and_a_broken_exercise_fails(tmp_path):
    paths, expect = [], {}
    for solution in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        lab = solution.name[:2]
        ids = [e.id for e in exercises.lab_exercises(lab)]
        assert ids, lab
        handed = tmp_path / f"{lab}_handed_out.ipynb"
        shutil.copyfile(ROOT / "labs" / solution.name, handed)
        full = tmp_path / f"{lab}_solution.ipynb"
        shutil.copyfile(solution, full)
        broken = tmp_path / f"{lab}_broken.ipynb"
        nbformat.write(_broken(nbformat.read(solution, as_version=4), ids[-1]), broken)
        paths += [handed, full, broken]
        expect[str(handed)] = {i: "not attempted" for i in ids}
        expect[str(full)] = {i: "passed" for i in ids}
        expect[str(broken)] = {i: ("failed" if i == ids[-1] else "passed") for i in ids}
    rows = grade.grade(paths, timeout=300, cell_timeout=120, progress=False, jobs=2)
    got = {}
    for r in rows:
        got.setdefault(r["submission"], {})[r["exercise"]] = r["status"]
        if r["status"] == "passed":
            assert r["points"] == r["max_points"] > 0
        else:
            assert r["points"] == 0.0
    assert got == expect
