"""The package is a house with rooms: imports only go down, every module is on CONTRIBUTING.md's map, and the
names and old module paths that labs and users import keep working."""
import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import nnlab

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "nnlab"
# a room may import the rooms of a lower level (and its own room); the middle row does not import itself
LEVEL = {"core": 0, "data": 1, "models": 2, "attribution": 3, "features": 3, "featurevis": 3, "embedding": 3,
         "templates": 3, "evaluation": 3, "viz": 4, "course": 5, "cli": 6}


def modules():
    return sorted(p for p in PKG.rglob("*.py") if p.parent != PKG)


def nnlab_imports(path: Path):
    """(line, imported module) for every import of nnlab in ``path``, at any depth (lazy imports count)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "nnlab":
            if node.module == "nnlab":
                for alias in node.names:
                    yield node.lineno, f"nnlab.{alias.name}"
            else:
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "nnlab":
                    yield node.lineno, alias.name


def room_of(module: str):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def arrows_back_up(path: Path):
    room = path.relative_to(PKG).parts[0]
    bad = []
    for line, module in nnlab_imports(path):
        target = room_of(module)
        if target is None:
            bad.append(f"{path.relative_to(ROOT)}:{line} imports the top-level nnlab package")
        elif target not in LEVEL:
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}, which is not a room (an old flat name?)")
        elif target != room and LEVEL[target] >= LEVEL[room]:
            bad.append(f"{path.relative_to(ROOT)}:{line} ({room}) imports {module} ({target}): the arrow runs up")
    return bad


def test_every_room_is_a_level():
    rooms = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms == set(LEVEL) == set(nnlab.ROOMS)
    assert not [p.name for p in PKG.glob("*.py") if p.name != "__init__.py"], "no flat modules outside the rooms"


def test_imports_only_go_down():
    bad = [b for path in modules() for b in arrows_back_up(path)]
    assert not bad, "\n".join(bad)


def test_the_import_check_sees_an_arrow_up(tmp_path):
    """The checker itself fails on a wrong import (a check never seen failing proves nothing)."""
    fake = PKG / "core" / "_tmp_layout_probe.py"
    fake.write_text("def f():\n    from nnlab.viz.images import show_image\n    import nnlab.attribution.cam\n")
    try:
        bad = arrows_back_up(fake)
    finally:
        fake.unlink()
    assert len(bad) == 2 and "arrow runs up" in bad[0]


def test_every_room_says_what_it_holds_and_may_import():
    for room in LEVEL:
        doc = ast.get_docstring(ast.parse((PKG / room / "__init__.py").read_text()))
        assert doc, f"nnlab/{room}/__init__.py has no docstring"
        if room != "cli":
            assert "import" in doc.lower(), f"nnlab/{room}/__init__.py does not say what it may import"


def test_every_module_is_on_the_map():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    missing = []
    for path in modules():
        if path.name in ("__init__.py", "__main__.py"):
            continue
        row = next((l for l in text.splitlines() if l.startswith(f"| `{path.parent.name}/`")), "")
        if f"`{path.name}`" not in row:
            missing.append(str(path.relative_to(PKG)))
    assert not missing, f"CONTRIBUTING.md's layout map does not list {missing}"


def test_every_module_has_a_docstring():
    assert not [str(p.relative_to(PKG)) for p in modules() if not ast.get_docstring(ast.parse(p.read_text()))]


@pytest.mark.parametrize("name", sorted(nnlab._LAZY))
def test_public_names_resolve(name):
    assert getattr(nnlab, name) is getattr(importlib.import_module(f"nnlab.{nnlab._LAZY[name]}"), name)


@pytest.mark.parametrize("old", sorted(nnlab.MOVED))
def test_old_module_paths_still_import(old):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module(f"nnlab.{old}")
    assert module is importlib.import_module(f"nnlab.{nnlab.MOVED[old]}")
    assert module.__spec__.name == f"nnlab.{nnlab.MOVED[old]}"  # the alias did not overwrite the real spec


def test_old_paths_warn_with_the_new_place():
    code = ("import warnings; warnings.simplefilter('error')\n"
            "try:\n    import nnlab.cam\nexcept DeprecationWarning as w:\n    print(w)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "nnlab.attribution.cam" in out


def test_an_unknown_module_still_fails():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("nnlab.no_such_module")
