"""pytest configuration shared by tests/, solutions/ and labs/: PyTorch threads under pytest-xdist.

`make test` runs one xdist worker per core, and nbval starts a notebook kernel from each worker. Left alone, every
worker and every kernel runs PyTorch with one thread per core: on 2 cores, 2 workers x 2 threads, whose OpenMP
threads spin waiting for each other. Lab 09 (solution and lab, ``-n 2``, load ~3 from other jobs) took 200 s that
way and 59 s with one thread per worker; its ImageNet cell 8 went from 68 s to 7 s.

So each worker gets ``cores // workers`` threads (at least 1) through ``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS``, which the kernels it starts inherit. A value the user has set is kept; without xdist nothing
changes.
"""
from __future__ import annotations

import os
import sys
from typing import Mapping, Optional

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def threads_per_worker(environ: Mapping[str, str], cores: Optional[int]) -> Optional[int]:
    """The number of PyTorch threads an xdist worker should use, or None to leave the defaults alone
    (not an xdist worker, or ``OMP_NUM_THREADS`` already set by the user)."""
    workers = environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers or "OMP_NUM_THREADS" in environ:
        return None
    return max(1, (cores or 1) // max(1, int(workers)))


def _limit_threads() -> None:
    threads = threads_per_worker(os.environ, os.cpu_count())
    if threads is None:
        return
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
    if "torch" in sys.modules:                    # already imported (by a plugin): its pool is sized, resize it
        sys.modules["torch"].set_num_threads(threads)


_limit_threads()
