"""Layout figures for the package: modules, lines per module, the largest functions.

    python bench/bench_layout.py [--before DIR]   # writes bench/results/layout.md

``--before`` compares with another checkout of ``nnlab/`` (e.g. ``git archive REV nnlab | tar -x -C DIR``).
"""
import argparse
import ast
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def figures(pkg: Path) -> dict:
    modules = sorted(p for p in pkg.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    lines = {str(p.relative_to(pkg)): len(p.read_text().splitlines()) for p in modules}
    functions = []
    for p in modules:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{p.relative_to(pkg)}:{node.name}"))
    functions.sort(reverse=True)
    return {"modules": len(modules), "total": sum(lines.values()), "median": statistics.median(lines.values()),
            "largest_module": max(lines.items(), key=lambda kv: kv[1]), "functions": functions[:5]}


def table(name: str, f: dict) -> str:
    top = "; ".join(f"{n} ({k} lines)" for k, n in f["functions"])
    return (f"| {name} | {f['modules']} | {f['total']} | {f['median']:.0f} | {f['largest_module'][0]} "
            f"({f['largest_module'][1]}) | {top} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a folder holding an older nnlab/ to compare with")
    args = parser.parse_args()
    rows = ["| tree | modules | lines | median lines/module | largest module | largest functions |",
            "|---|---|---|---|---|---|"]
    if args.before:
        rows.append(table("before", figures(args.before / "nnlab")))
    rows.append(table("now", figures(ROOT / "nnlab")))
    text = "# Package layout\n\n" + "\n".join(rows) + "\n"
    out = ROOT / "bench" / "results" / "layout.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
