"""The course machinery: build (solutions -> labs), exercises and their checks, grading, widgets.

May import: every room but nnlab.cli.
"""

from importlib import import_module

_MODULES = {"build", "exercises", "gallery", "grade", "kernel", "review", "sandbox", "widgets"}


def __getattr__(name):
    if name in _MODULES:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
