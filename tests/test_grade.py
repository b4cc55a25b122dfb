"""nnlab grade: one row per submission and exercise, whatever the submission does."""
import csv

import nbformat
import pytest

from nnlab import cli
from nnlab.course import grade as grade

GOOD = "def flatten(x):\n    return x.reshape(len(x), -1)\n"
WRONG = "def unflatten(v, shape):\n    return v\n"


def _submission(path, *sources, lab="00"):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["nnlab"] = {"lab": lab}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    d = tmp_path_factory.mktemp("submissions")
    paths = [
        _submission(d / "alice.ipynb", GOOD, "raise RuntimeError('a crash in the middle')", WRONG),
        _submission(d / "bob.ipynb", "import time\nwhile True:\n    time.sleep(0.1)"),
        _submission(d / "carol.ipynb", "x = 1  # deleted every exercise cell"),
    ]
    (d / "dave.ipynb").write_text("this is not a notebook")
    paths.append(d / "dave.ipynb")
    out = d / "grades.csv"
    code = cli.main([
        "grade", *map(str, paths), "--csv", str(out), "--timeout", "90", "--cell-timeout", "8"])
    assert code == 0
    with open(out) as f:
        return {(r["submission"].rsplit("/", 1)[-1], r["exercise"]): r for r in csv.DictReader(f)}


def test_a_crash_mid_notebook_still_grades_every_exercise(graded):
    assert graded[("alice.ipynb", "0.1")]["status"] == "passed"
    assert float(graded[("alice.ipynb", "0.1")]["points"]) == 1.0
    assert graded[("alice.ipynb", "0.2")]["status"] == "failed"
    assert "raised errors" in graded[("alice.ipynb", "0.2")]["message"]


def test_a_loop_is_cut_by_the_time_limit_and_gets_rows(graded):
    rows = [graded[("bob.ipynb", e)] for e in ("0.1", "0.2")]
    assert all(r["status"] == "not attempted" for r in rows)  # the loop cell timed out, the rest was graded


def test_deleted_cells_mean_not_attempted(graded):
    assert graded[("carol.ipynb", "0.1")]["status"] == "not attempted"
    assert "no function named flatten" in graded[("carol.ipynb", "0.1")]["message"]


def test_an_unreadable_file_gets_an_error_row(graded):
    assert graded[("dave.ipynb", "-")]["status"] == "error"


def test_lab_number_from_metadata_or_file_name(tmp_path):
    assert grade.lab_of(tmp_path / "05_saliency.ipynb", {"metadata": {}}) == "05"
    assert grade.lab_of(tmp_path / "whatever.ipynb", {"metadata": {"nnlab": {"lab": "03"}}}) == "03"
    assert grade.lab_of(tmp_path / "whatever.ipynb", {"metadata": {}}) is None


def test_a_whole_notebook_over_its_time_limit_is_reported(tmp_path):
    path = _submission(tmp_path / "eve.ipynb", "import time\ntime.sleep(60)")
    rows = grade.grade_one(path, timeout=5, cell_timeout=120)
    assert {r["status"] for r in rows} == {"not graded"} and "time limit" in rows[0]["message"]
