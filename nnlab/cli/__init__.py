"""The ``nnlab`` command: ``nnlab <command> ...``.

Commands:
    explain   attribution overlays and top-5 predictions for image files (:mod:`nnlab.cli.explain`)
    grade     execute and grade submitted lab notebooks (:mod:`nnlab.course.grade`)

Each command lives in its own module with ``add_parser(subparsers)`` (which sets ``run``) and ``run(args)``
returning the exit code. Add a command with one line in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from typing import List, Optional

#: command modules, in the order ``nnlab --help`` lists them (``grade`` goes here too)
COMMANDS = {"explain": "nnlab.cli.explain", "grade": "nnlab.course.grade",
            "review": "nnlab.course.review"}  # adds `review` and `review-merge`


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="nnlab", description="nnlab: labs on how neural networks see")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        import_module(module).add_parser(subparsers)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
