"""labs/ is exactly what the build makes from solutions/, and no solution text leaks into a lab."""
import nbformat
import pytest

from nnlab.course import build as build

SOLUTIONS = sorted(build.ROOT.glob("solutions/[0-9][0-9]_*.ipynb"))


def test_labs_are_up_to_date():
    differing = build.build(check=True, verbose=False)
    assert not differing, f"labs/ differs from the build, run `make labs`: {differing}"


def test_every_lab_has_a_solution_source():
    labs = {p.name for p in build.ROOT.glob("labs/*.ipynb")}
    assert labs == {p.name for p in SOLUTIONS}


def _solution_lines(source):
    inside, lines = False, []
    for line in source.splitlines():
        if line.strip() == build.BEGIN:
            inside = True
        elif line.strip() == build.END:
            inside = False
        elif inside and line.strip() and not line.strip().startswith("#"):
            lines.append(line.strip())
    return lines


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_no_solution_leaks_into_the_lab(solution):
    sol = nbformat.read(solution, as_version=4)
    lab = nbformat.read(build.ROOT / "labs" / solution.name, as_version=4)
    lab_code = "\n".join(c.source for c in lab.cells if c.cell_type == "code")
    lab_text = "\n".join(c.source for c in lab.cells)
    for cell in sol.cells:
        if cell.cell_type == "code":
            for line in _solution_lines(cell.source):
                # a solution line may legitimately equal a line elsewhere in the lab (e.g. "return x"); it must not
                # appear in the exercise cell that replaced it
                exercise_cells = [c.source for c in lab.cells if c.get("id") == cell.get("id")]
                assert all(line not in src.splitlines() for src in exercise_cells), f"{line!r} leaks"
            assert build.BEGIN not in lab_code and build.END not in lab_code
        elif "answer" in cell.metadata.get("tags", []) and len(cell.source) > 40:
            assert cell.source not in lab_text, "a written answer leaks into the lab"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(solution):
    for path in (solution, build.ROOT / "labs" / solution.name):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


def test_strip_solutions_makes_a_stub_named_after_the_exercise():
    source = "# Exercise 3.2: a receptive field\ndef f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
    stub = build.strip_solutions(source)
    assert "return x + 1" not in stub
    assert '    raise NotImplementedError("Exercise 3.2: a receptive field")' in stub
    compiled = {}
    exec(stub, compiled)
    with pytest.raises(NotImplementedError, match="Exercise 3.2"):
        compiled["f"](1)


def test_unbalanced_markers_are_an_error():
    with pytest.raises(ValueError, match="without"):
        build.strip_solutions("### BEGIN SOLUTION\nx = 1\n")
    with pytest.raises(ValueError, match="without"):
        build.strip_solutions("x = 1\n### END SOLUTION\n")


def test_build_writes_labs_and_reports_stale_files(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "labs").mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("# Exercise 9.1: double\ndef f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
        nbformat.v4.new_markdown_cell("The answer is 42.", metadata={"tags": ["answer"]}),
    ])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="old output")]
    nbformat.write(nb, tmp_path / "solutions" / "09_demo.ipynb")
    (tmp_path / "labs" / "99_orphan.ipynb").write_text("{}")
    assert set(build.build(tmp_path, check=True, verbose=False)) == {"09_demo.ipynb", "99_orphan.ipynb"}
    build.build(tmp_path, verbose=False)
    assert build.build(tmp_path, check=True, verbose=False) == []
    lab = nbformat.read(tmp_path / "labs" / "09_demo.ipynb", as_version=4)
    assert "generated" in lab.cells[0].source
    assert "return 2 * x" not in lab.cells[1].source and "NotImplementedError" in lab.cells[1].source
    assert lab.cells[2].source == build.ANSWER_PLACEHOLDER
    assert lab.metadata["nnlab"]["lab"] == "09"
    solution = nbformat.read(tmp_path / "solutions" / "09_demo.ipynb", as_version=4)
    assert solution.cells[0].outputs == []  # solutions are stored cleared too
    assert not (tmp_path / "labs" / "99_orphan.ipynb").exists()
