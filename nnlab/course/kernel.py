"""The untrusted side of grading: run one submission's cells, then call its functions on the grader's inputs.

    python -m nnlab.course.kernel DIR

runs inside the sandbox (:mod:`nnlab.course.sandbox`), as an unprivileged user, in the private copy ``DIR``. It
reads ``DIR/job.pt`` (written by the grader *before* any student code runs: the cell sources, which cell defines
which exercise's function, the fixed inputs of every case), executes the cells one by one in an IPython shell
(each cell with a time limit), keeps the function each exercise cell defined *right after that cell ran* (so a
later ``flatten = check("0.1", flatten)`` rebinding the name changes nothing), then calls each kept function on
the grader's inputs and writes ``DIR/out/results.pt``: for every case ``("ok", output, inputs after the call)``,
``("not implemented",)`` or ``("raised", error type, message)``, in a data-only form (tensors, numbers,
strings, tuples, lists, dicts; see :func:`to_data`) that the grader reads back with
``torch.load(weights_only=True)``.

Nothing here decides a verdict: the grader computes the reference in its own process and compares. Whatever the
student's code does to this process (patching this module, ``print``, IPython hooks, ``sys.exit``) can at most
change the outputs it sends, which the grader then judges like any other output.
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import numpy as np
import torch

#: outputs larger than this many elements (in all) are replaced by a note, not sent
MAX_ELEMENTS = 20_000_000
MAX_DEPTH = 8


def to_data(value, depth: int = 0, budget=None):
    """``value`` as plain data that ``torch.load(weights_only=True)`` accepts: tensors (detached, on the CPU),
    numpy arrays (as tensors), numbers, strings, None, tuples, lists and dicts of them; an ``nn.Module`` becomes
    ``{"__module__": class name, **state_dict}``; anything else a string ``"<unsupported: TYPE>"``."""
    budget = budget if budget is not None else [MAX_ELEMENTS]
    if depth > MAX_DEPTH:
        return "<unsupported: nested too deep>"
    if isinstance(value, np.ndarray) and value.dtype != object:
        value = torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        if value.numel() > budget[0]:
            return f"<too large: tensor of shape {tuple(value.shape)}>"
        budget[0] -= value.numel()
        return value.detach().cpu().clone().contiguous()
    if isinstance(value, torch.nn.Module):
        state = {"__module__": type(value).__name__}
        state.update({k: to_data(v, depth + 1, budget) for k, v in value.state_dict().items()})
        return state
    if value is None or type(value) in (bool, int, float, str):
        return value[:10_000] if isinstance(value, str) else value
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if type(value) in (tuple, list):
        if len(value) > 10_000:
            return f"<too large: {type(value).__name__} of {len(value)} items>"
        return type(value)(to_data(v, depth + 1, budget) for v in value)
    if type(value) is dict:
        if len(value) > 10_000:
            return f"<too large: dict of {len(value)} items>"
        return {str(k): to_data(v, depth + 1, budget) for k, v in value.items()}
    return f"<unsupported: {type(value).__name__}>"


def _clone(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (tuple, list)):
        return type(value)(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


class _CellTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise _CellTimeout("time limit of this cell exceeded")


def main(directory: str) -> int:
    work = Path(directory)
    job = torch.load(work / "job.pt", weights_only=False)   # written by the grader: trusted
    out_dir = work / "out"
    out_dir.mkdir(exist_ok=True)
    signal.signal(signal.SIGALRM, _alarm)
    try:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # an oversized write raises instead of killing
    except (AttributeError, ValueError):
        pass
    torch.set_num_threads(1)

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.enable_gui = lambda gui=None: None            # `%matplotlib inline` without a GUI event loop
    kept = {}                                           # exercise id -> the function its cell defined
    errors, first = 0, []
    for index, source in enumerate(job["cells"]):
        signal.alarm(max(1, int(job["cell_timeout"])))
        try:
            result = shell.run_cell(source, store_history=False)
            if not result.success:
                errors += 1
                err = result.error_in_exec or result.error_before_exec
                first.append(f"cell {index + 1}: {type(err).__name__}: {str(err)[:200]}")
        except BaseException as err:                     # noqa: BLE001 - a timeout between IPython's handlers
            errors += 1
            first.append(f"cell {index + 1}: {type(err).__name__}: {str(err)[:200]}")
        finally:
            signal.alarm(0)
        for id, function in job["exercise_cells"].get(index, []):
            kept[id] = shell.user_ns.get(function)

    results = {"errors": errors, "first_errors": first[:3], "exercises": {}}
    for id, cases in job["cases"].items():
        fn = kept.get(id)
        if not callable(fn):
            results["exercises"][id] = "missing"
            continue
        rows = []
        for args, kwargs in cases:
            args, kwargs = _clone(args), _clone(kwargs)
            signal.alarm(max(1, int(job["cell_timeout"])))
            try:
                got = fn(*args, **kwargs)
                rows.append(("ok", to_data(got), to_data((args, kwargs))))
            except NotImplementedError:
                rows.append(("not implemented",))
            except BaseException as err:                 # noqa: BLE001 - SystemExit too: it is the student's
                rows.append(("raised", type(err).__name__, str(err)[:500]))
            finally:
                signal.alarm(0)
            if rows[-1][0] == "not implemented":
                break
        results["exercises"][id] = rows
    try:
        torch.save(results, out_dir / "results.pt")
    except OSError:                                      # e.g. the file-size limit
        torch.save({"errors": errors, "exercises": {}, "note": "the results were too large to write"},
                   out_dir / "results.pt")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
