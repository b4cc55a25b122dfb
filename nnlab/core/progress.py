"""Progress bars that vanish when done inside notebooks: ``progress_bar(iterable, desc=..., disable=...)``.

Every long loop of nnlab reports through this one wrapper of ``tqdm.auto``. In a Jupyter kernel the bar is a
widget that is removed when the loop ends (``leave=False``), so an executed lab does not keep a "0%" or "100%" bar
in its saved outputs; in a terminal the finished bar stays (``leave=True``), as a log line. ``TQDM_*`` environment
variables (e.g. ``TQDM_MININTERVAL``, ``TQDM_DISABLE``) still apply.

Example::

    from nnlab.core.progress import progress_bar
    for batch in progress_bar(loader, desc="top-9 conv2", disable=not show):
        ...
"""
from __future__ import annotations

from typing import Iterable, Optional


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython ``ZMQInteractiveShell``)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


def progress_bar(iterable: Optional[Iterable] = None, *, desc: Optional[str] = None, total: Optional[int] = None,
             disable: bool = False, leave: Optional[bool] = None, **kwargs):
    """A ``tqdm.auto`` bar over ``iterable`` (or a manual one with ``total``), ``leave=False`` in notebooks
    unless ``leave`` says otherwise. Other keyword arguments go to tqdm (``unit``, ``position`` ...)."""
    from tqdm.auto import tqdm

    if leave is None:
        leave = not in_notebook()
    return tqdm(iterable, desc=desc, total=total, disable=disable, leave=leave, **kwargs)
