"""Build the student labs from the single source in ``solutions/``.

``python -m nnlab.course.build`` (or ``make labs``) writes ``labs/NN_topic.ipynb`` for every ``solutions/NN_topic.ipynb``:

- code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes ``raise NotImplementedError("Exercise N.k: ...")``
  (the exercise is named by the cell's ``# Exercise N.k: title`` comment line);
- markdown cells tagged ``answer`` become an empty "Your answer:" cell;
- every output is cleared, and a first cell says the file is generated.

The solutions are normalised in place too (outputs cleared), so both are stored without outputs.
``python -m nnlab.course.build --check`` only compares and exits 1 when ``labs/`` is not what the build produces.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
EXERCISE_LINE = re.compile(r"#\s*Exercise\s+(\d+\.\d+)\s*:?\s*(.*)")
ANSWER_PLACEHOLDER = "**Your answer:** *(write your answer here)*"


def _exercise_name(source: str) -> str:
    for line in source.splitlines():
        match = EXERCISE_LINE.search(line)
        if match:
            return f"Exercise {match.group(1)}: {match.group(2).strip()}".rstrip(": ")
    return "Exercise"


def strip_solutions(source: str) -> str:
    """Replace each ``### BEGIN SOLUTION`` .. ``### END SOLUTION`` region with a ``NotImplementedError`` stub
    at the indentation of the ``BEGIN`` line."""
    name = _exercise_name(source)
    out, inside = [], False
    for number, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside another solution region")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# YOUR CODE HERE")
            out.append(f'{indent}raise NotImplementedError("{name}")')
        elif stripped == END:
            if not inside:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(out)


def _clean(cell) -> None:
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None
    cell.metadata.pop("execution", None)
    cell.metadata.pop("collapsed", None)
    cell.metadata.pop("scrolled", None)


def normalise_solution(nb) -> "nbformat.NotebookNode":
    """The solution notebook as stored: outputs cleared, cell ids kept."""
    for cell in nb.cells:
        _clean(cell)
    return nb


def lab_from_solution(nb, solution_name: str) -> "nbformat.NotebookNode":
    """The student version of a solution notebook."""
    lab = copy.deepcopy(nb)
    cells = []
    note = nbformat.v4.new_markdown_cell(
        f"*This notebook is generated from `solutions/{solution_name}` by `make labs`. "
        f"Work in it freely; instructors edit the solution, never this file.*")
    note.id = "generated-note"
    note.metadata["tags"] = ["generated"]
    cells.append(note)
    for cell in lab.cells:
        _clean(cell)
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "markdown" and "answer" in tags:
            cell.source = ANSWER_PLACEHOLDER
        elif cell.cell_type == "code" and BEGIN in cell.source:
            cell.source = strip_solutions(cell.source)
        cells.append(cell)
    lab.cells = cells
    lab.metadata["nnlab"] = {"generated_from": f"solutions/{solution_name}", "lab": solution_name[:2]}
    return lab


def _dump(nb) -> str:
    return nbformat.writes(nb, version=4) + "\n"


def build(root: Path = ROOT, check: bool = False, verbose: bool = True) -> list[str]:
    """Build every lab; return the names of the labs that differed from what is on disk (written unless ``check``)."""
    solutions, labs = root / "solutions", root / "labs"
    labs.mkdir(exist_ok=True)
    differing = []
    expected = set()
    for path in sorted(solutions.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        solution_text = _dump(normalise_solution(nb))
        if not check and path.read_text() != solution_text:
            path.write_text(solution_text)
        lab_text = _dump(lab_from_solution(nb, path.name))
        target = labs / path.name
        expected.add(target.name)
        if not target.exists() or target.read_text() != lab_text:
            differing.append(target.name)
            if not check:
                target.write_text(lab_text)
        if verbose:
            print(f"{'checked' if check else 'built'} labs/{target.name}")
    for stray in sorted(labs.glob("*.ipynb")):
        if stray.name not in expected:
            differing.append(stray.name)
            if verbose:
                print(f"labs/{stray.name} has no source in solutions/" + ("" if check else " (removed)"))
            if not check:
                stray.unlink()
    return differing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnlab.course.build", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if labs/ is out of date")
    args = parser.parse_args(argv)
    differing = build(check=args.check)
    if args.check and differing:
        print("labs/ is out of date, run `make labs`: " + ", ".join(differing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
